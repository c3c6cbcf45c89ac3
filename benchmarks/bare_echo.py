"""A bare aiortc echo peer: the reference the echo agent is measured against.

It imports nothing of the agent (`bot`, `server`, `processors`, `transports`, `config`)
and nothing of Pipecat: importing Pipecat changes aiortc (its SCTP chunk size) and the
agent's transport module patches Pipecat, and the reference must be plain aiortc
(`tests/test_benchmarks.py` checks this in a subprocess). ICE restriction comes from the
neutral `ice_addresses` module.

It speaks the agent's offer protocol (`POST /api/offer` with `{"sdp", "type"}`), answers
pings straight from the data-channel listener with the agent's pong fields, and sends
received audio frames back as they are decoded. `server_receive_time` is taken at the
first moment this code sees the data-channel message and `server_send_time` as late as
possible before `channel.send` (the pong is then encoded and sent), as the agent does
(issue 15), so `server_send_time - server_receive_time` is each peer's hold. Like the
agent, it starts aiortc's SCTP flush eagerly inside `channel.send`, so the pong's
datagram leaves at once instead of a loop turn later (`--send stock` for aiortc's own
scheduling, for A/B runs).

    python benchmarks/bare_echo.py --port 8090
"""

import argparse
import asyncio
import json
import sys
import time
import uuid
from contextlib import nullcontext
from pathlib import Path

from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eager_tasks import eager_task_creation  # noqa: E402
from ice_addresses import restrict_ice_addresses  # noqa: E402


class EchoTrack(MediaStreamTrack):
    """Returns each received audio frame as soon as it is decoded."""

    kind = "audio"

    def __init__(self, source: MediaStreamTrack):
        """Echo `source`."""
        super().__init__()
        self._source = source

    async def recv(self):
        """The next frame received."""
        return await self._source.recv()


def answer_pings(channel, listener: str = "sync", send: str = "eager") -> None:
    """Answer pings on `channel` from its message listener, as the agent's pong says.

    `listener="async"` registers a coroutine instead: aiortc then runs it as a new task,
    after it has sent its SCTP acknowledgement (how Pipecat's own listener runs); for
    `benchmarks/method_ab.py` only, the reference answers in aiortc's turn. `send="stock"`
    leaves aiortc's SCTP flush to its own task (A/B only).
    """
    pings = 0

    def on_message(message):
        nonlocal pings
        receive_time = time.time()
        try:
            data = json.loads(message)
        except (TypeError, ValueError):
            return
        if not isinstance(data, dict) or data.get("type") != "ping":
            return
        pings += 1
        pong = {
            "type": "pong",
            "client_timestamp": data.get("timestamp"),
            "server_receive_time": receive_time,
            "server_send_time": 0.0,
            "message_count": pings,
        }
        if "seq" in data:
            pong["seq"] = data["seq"]
        with eager_task_creation() if send == "eager" else nullcontext():
            pong["server_send_time"] = time.time()  # like the agent: right before encoding
            channel.send(json.dumps(pong))

    async def on_message_async(message):
        on_message(message)

    channel.on("message", on_message_async if listener == "async" else on_message)


async def offer(request: web.Request) -> web.Response:
    """Answer one offer with a new peer connection."""
    try:
        params = await request.json()
        description = RTCSessionDescription(params["sdp"], params["type"])
    except (ValueError, KeyError, TypeError):
        return web.json_response({"detail": "body must be {sdp, type}"}, status=400)
    pc = RTCPeerConnection()
    pcs: set = request.app["pcs"]
    pcs.add(pc)

    listener, send = request.app["listener"], request.app["send"]
    pc.on("datachannel", lambda channel: answer_pings(channel, listener, send))

    @pc.on("track")
    def on_track(track):
        if track.kind == "audio":
            pc.addTrack(EchoTrack(track))

    @pc.on("connectionstatechange")
    async def on_state():
        if pc.connectionState in ("failed", "closed"):
            await pc.close()
            pcs.discard(pc)

    await pc.setRemoteDescription(description)
    await pc.setLocalDescription(await pc.createAnswer())
    return web.json_response(
        {
            "sdp": pc.localDescription.sdp,
            "type": pc.localDescription.type,
            "pc_id": str(uuid.uuid4()),
        }
    )


async def health(_request: web.Request) -> web.Response:
    """Liveness."""
    return web.json_response({"status": "ok"})


async def on_shutdown(app: web.Application):
    """Close every peer connection."""
    await asyncio.gather(*(pc.close() for pc in app["pcs"]))


def main():
    """Serve offers on `--host`:`--port`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument(
        "--listener",
        choices=("sync", "async"),
        default="sync",
        help="answer in aiortc's turn (default) or from a coroutine listener (A/B only)",
    )
    parser.add_argument(
        "--send",
        choices=("eager", "stock"),
        default="eager",
        help="start aiortc's SCTP flush inside send, as the agent does (default), "
        "or leave it to aiortc's own task (A/B only)",
    )
    args = parser.parse_args()
    restrict_ice_addresses(["127.0.0.1"])
    app = web.Application()
    app["pcs"] = set()
    app["listener"] = args.listener
    app["send"] = args.send
    app.router.add_post("/api/offer", offer)
    app.router.add_get("/health", health)
    app.on_shutdown.append(on_shutdown)
    web.run_app(app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
