"""Run a peer with timestamps on its ping path: `python -m benchmarks.stage_probe SCRIPT ARGS`.

Patches aioice/aiortc (the parts both the agent and the bare peer run) to time each
ping from its UDP datagram to its pong's UDP datagram, in three stages, and writes
the medians (microseconds) as JSON to `$STAGE_PROBE_OUT` every 10 pings and when the
process exits. The agent answers pings in its worker processes, which start from a
forkserver: the probe is added to the forkserver's preload, so every worker runs
patched (run the agent with `WORKERS=1`: each process writes the same file).
For `benchmarks/ping_stages.py`; never imported by the agent itself.
"""

import atexit
import json
import multiprocessing.context
import os
import runpy
import signal
import statistics
import sys
import time

import aioice.ice
from aiortc import rtcdatachannel, rtcsctptransport

STAGES = {
    "udp_to_channel": "UDP datagram in -> SCTP hands the message to the data channel",
    "channel_to_send": "data channel message -> pong handed to RTCDataChannel.send",
    "send_to_udp": "RTCDataChannel.send -> pong's UDP datagram out",
}
_now = time.perf_counter_ns
_marks: dict[str, int] = {}
_samples: dict[str, list[float]] = {stage: [] for stage in STAGES}


def _wrap(owner, name, before):
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        before(*args)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def _datagram_in(_protocol, data, _addr=None):
    _marks.clear()
    _marks["udp"] = _now()


def _channel_receive(*_args):
    _marks["channel"] = _now()


def _send(*_args):
    if "channel" in _marks and "send" not in _marks:
        _marks["send"] = _now()
        _samples["udp_to_channel"].append((_marks["channel"] - _marks["udp"]) / 1000)
        _samples["channel_to_send"].append((_marks["send"] - _marks["channel"]) / 1000)


def _chunk_out(_transport, chunk, *_args):
    # The pong's DATA chunk, not the ping's SACK: with the eager send the pong leaves
    # first, inside `send`, and the SACK after the handler returns.
    if "send" in _marks and isinstance(chunk, rtcsctptransport.DataChunk):
        _marks["pong_chunk"] = _now()


def _datagram_out(*_args):
    # The first datagram after the pong's chunk was handed to DTLS is the pong.
    if "send" in _marks and _marks.pop("pong_chunk", None) is not None:
        _samples["send_to_udp"].append((_now() - _marks.pop("send")) / 1000)
        if len(_samples["send_to_udp"]) % 10 == 0:
            _write()  # after the pong left; a worker ends without atexit (os._exit)


def _write() -> None:
    if not any(_samples.values()):
        return
    medians = {
        stage: {"median_us": statistics.median(values), "n": len(values)}
        for stage, values in _samples.items()
        if values
    }
    with open(os.environ["STAGE_PROBE_OUT"], "w") as f:
        json.dump(medians, f)


def _preload_in_workers() -> None:
    """Have forkserver-started processes (the agent's workers) import this probe too."""
    context = multiprocessing.context.ForkServerContext
    original = context.set_forkserver_preload

    def set_forkserver_preload(self, module_names):
        original(self, [*module_names, "benchmarks.stage_probe"])

    context.set_forkserver_preload = set_forkserver_preload


def _on_sigterm(signum, _frame):
    # uvicorn re-raises SIGTERM after its graceful shutdown, so atexit would not run.
    _write()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


_wrap(aioice.ice.StunProtocol, "datagram_received", _datagram_in)
_wrap(rtcsctptransport.RTCSctpTransport, "_data_channel_receive", _channel_receive)
_wrap(rtcdatachannel.RTCDataChannel, "send", _send)
_wrap(rtcsctptransport.RTCSctpTransport, "_send_chunk", _chunk_out)
_wrap(aioice.ice.StunProtocol, "send_data", _datagram_out)

if __name__ == "__main__":
    _preload_in_workers()
    atexit.register(_write)
    signal.signal(signal.SIGTERM, _on_sigterm)
    script, *sys.argv[1:] = sys.argv[1:]
    sys.argv[0] = script
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
