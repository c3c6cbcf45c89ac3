"""The overhead benchmark's instrument: the bare echo peer, the ping client, the arithmetic."""

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from benchmarks import overhead
from benchmarks.peers import PeerProcess, set_affinity
from benchmarks.pinger import PingClient, Sample, ping_interleaved, summarize

ROOT = Path(__file__).resolve().parent.parent
AGENT_MODULES = ("bot", "server", "processors", "transports", "config", "pipecat", "pool", "worker")
PONG_FIELDS = [
    "type",
    "client_timestamp",
    "server_receive_time",
    "server_send_time",
    "message_count",
    "seq",
]


def imported_by(module: str) -> list[str]:
    """Agent or Pipecat modules loaded by importing `module`, in a fresh interpreter."""
    code = (
        "import json, sys, importlib\n"
        f"importlib.import_module({module!r})\n"
        f"banned = {AGENT_MODULES!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in banned)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.parametrize("module", ["benchmarks.bare_echo", "benchmarks.pinger", "ice_addresses"])
def test_instrument_imports_nothing_of_the_agent_or_pipecat(module):
    assert imported_by(module) == []


def test_the_check_sees_pipecat_when_it_is_imported():
    # The check itself can fail: the preimport runner's target does load Pipecat.
    assert "pipecat" in imported_by("transports.webrtc")


async def test_bare_echo_pongs_like_the_agent():
    peer = PeerProcess("bare", [sys.executable, "benchmarks/bare_echo.py"])
    try:
        async with aiohttp.ClientSession() as http:
            await peer.wait_ready(http)
            client = PingClient("bare")
            pongs = []
            original = client._on_message

            def record(message):
                pongs.append(json.loads(message))
                original(message)

            client._channel.remove_all_listeners("message")
            client._channel.on("message", record)
            try:
                await client.connect(peer.offer_url(), http)
                await ping_interleaved([client], 5, 0.02)
            finally:
                await client.close()
    finally:
        peer.stop()
    answered = client.answered()
    assert [s.seq for s in answered] == [0, 1, 2, 3, 4]
    measured = [p for p in pongs if p["seq"] >= 0]
    assert [list(p) for p in measured] == [PONG_FIELDS] * 5
    probes = len(pongs) - len(measured)
    assert [p["message_count"] for p in measured] == list(range(probes + 1, probes + 6))
    for pong, sample in zip(measured, answered, strict=True):
        assert pong["type"] == "pong"
        assert pong["client_timestamp"] == sample.sent_wall
        assert sample.sent_wall <= pong["server_receive_time"] <= pong["server_send_time"]
        assert pong["server_send_time"] <= sample.arrival_wall
        assert 0 <= sample.hold < sample.rtt


async def test_bare_echo_rejects_a_body_that_is_no_offer():
    peer = PeerProcess("bare", [sys.executable, "benchmarks/bare_echo.py"])
    try:
        async with aiohttp.ClientSession() as http:
            await peer.wait_ready(http)
            async with http.post(peer.offer_url(), json={"sdp": "v=0"}) as response:
                assert response.status == 400
                assert "sdp, type" in (await response.json())["detail"]
    finally:
        peer.stop()


def sample(seq: int, rtt_ms: float, hold_ms: float) -> Sample:
    return Sample(
        seq,
        sent_perf=10.0,
        sent_wall=1000.0,
        arrival_perf=10.0 + rtt_ms / 1000,
        arrival_wall=1000.0 + rtt_ms / 1000 + 0.0001,
        hold=hold_ms / 1000,
    )


def test_summarize_net_rtt_is_rtt_minus_hold():
    figures = summarize([sample(0, 1.0, 0.1), sample(1, 2.0, 0.5), sample(2, 3.0, 0.2)])
    assert figures["pongs"] == 3
    assert figures["rtt_p50"] == pytest.approx(2.0)
    assert figures["net_p50"] == pytest.approx(1.5)  # nets 0.9, 1.5, 2.8
    assert figures["hold_p50"] == pytest.approx(0.2)
    assert figures["rtt_wall_p50"] == pytest.approx(2.1)


def test_unanswered_pings_are_left_out():
    figures = summarize([sample(0, 1.0, 0.1), Sample(1, sent_perf=1.0, sent_wall=1.0)])
    assert figures["pongs"] == 1
    assert figures["rtt_p50"] == pytest.approx(1.0)


def run_figures(
    agent_ms: float, bare_ms: float, first: str, hold_ms: float = 0.0, start: int = 0
) -> dict:
    figures = {
        "rtt_p50": agent_ms,
        "rtt_p99": 2 * agent_ms,
        "net_p50": agent_ms - hold_ms,
        "hold_p50": hold_ms,
        "pongs": 250,
    }
    bare = {"rtt_p50": bare_ms, "rtt_p99": 2 * bare_ms, "net_p50": bare_ms, "hold_p50": 0.0}
    return {"agent": figures, "bare": {**bare, "pongs": 250}, "first": first, "start": start}


def test_overhead_ratio_is_the_median_of_the_runs_with_spread():
    data = {
        "runs": [
            run_figures(1.2, 1.0, "agent", hold_ms=0.1),
            run_figures(1.0, 1.0, "bare"),
            run_figures(1.5, 1.0, "agent", hold_ms=0.2, start=1),
        ],
        "starts": 2,
        "audio": {"agent": [0.18, 0.2], "bare": [0.18, 0.18]},
    }
    result = overhead.figures(data)
    assert result["ratio"] == pytest.approx([1.2, 1.0, 1.5])
    assert result["net_ratio"] == pytest.approx([1.1, 1.0, 1.3])
    assert result["difference_us"] == pytest.approx([200, 0, 500])
    assert result["per_start"] == pytest.approx([1.1, 1.5])
    assert result["per_order"]["agent"] == pytest.approx([1.2, 1.5])
    assert result["per_order"]["bare"] == pytest.approx([1.0])
    assert result["audio_ratio"]["audio_p50"] == pytest.approx(0.19 / 0.18)
    text = overhead.report(result, runs=3, pings=250, bursts=2, starts=2)
    assert "**1.200 (1.000-1.500)**" in text
    assert "**1.100 (1.000-1.300)**" in text
    assert "Method: 3 runs x 250 pings per peer" in text
    assert "| ping RTT p50 agent - bare (us) | | | 200 (0-500) | |" in text
    assert "| 1.100 / 1.500 | |" in text
    assert "the peer processes started 2 times" in text
    assert "Per-run ratios: 1.200 1.000 1.500." in text


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_set_affinity_moves_the_process_and_its_children():
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(30)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = None
    try:
        child = int(parent.stdout.readline())
        cpu = max(os.sched_getaffinity(0))
        set_affinity(parent.pid, {cpu})
        deadline = time.monotonic() + 5
        while os.sched_getaffinity(child) != {cpu} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.sched_getaffinity(parent.pid) == {cpu}
        assert os.sched_getaffinity(child) == {cpu}
    finally:
        parent.kill()
        parent.wait()
        if child is not None:
            os.kill(child, 9)


def test_pinger_interleaves_in_client_order():
    sent: list[tuple[str, int, float]] = []

    class Recorder:
        def __init__(self, name):
            self.name = name

        def ping(self, seq):
            sent.append((self.name, seq, time.perf_counter()))

        def answered(self):
            return [None] * sum(1 for name, _, _ in sent if name == self.name)

    before = time.perf_counter()
    asyncio.run(ping_interleaved([Recorder("a"), Recorder("b")], 3, 0.02))
    assert [(name, seq) for name, seq, _ in sent] == [
        ("a", 0),
        ("b", 0),
        ("a", 1),
        ("b", 1),
        ("a", 2),
        ("b", 2),
    ]
    # Never early: ping j (of both clients, in order) leaves at its slot, 10 ms apart, or later.
    for j, (_, _, at) in enumerate(sent):
        assert at >= before + 0.05 + j * 0.01 - 1e-6, (j, at - before)


def test_ping_stages_times_the_agents_worker_and_the_bare_peer(tmp_path):
    # The agent answers in a worker process started from a forkserver: the probe must
    # be running there, or the agent writes no stage file and the script fails.
    table = tmp_path / "stages.md"
    done = subprocess.run(
        [sys.executable, "benchmarks/ping_stages.py", "--pings", "100", "--markdown", table],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split("|")[1:-1] for line in table.read_text().splitlines() if "->" in line]
    assert len(rows) == 3  # the three stages, each timed in both peers
    for _label, agent, bare, _difference in rows:
        assert float(agent) > 0 and float(bare) > 0
