"""echo-bench: burst detection, the ping loop, tables, and end to end on 127.0.0.1."""

import asyncio
import csv
import json
import shutil
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from echo_bench import cli
from echo_bench.bursts import (
    BurstSignal,
    analyse_bursts,
    detect_onset,
    measure_audio_roundtrip,
    summarize_bursts,
)
from echo_bench.clients import PROBE_INTERVAL, SessionInfo, wait_until_answering
from echo_bench.media import FRAME_SAMPLES, SAMPLE_RATE, ReceivedAudio
from echo_bench.ping import ping_offer_url, run_pings
from echo_bench.report import report_table
from echo_bench.stats import describe, jitter
from echo_bench.wire import RTVI
from tests.conftest import ROOT, free_port, run_server

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------
# Bursts


def test_detect_onset_finds_a_burst_and_ignores_a_click():
    signal = BurstSignal()
    samples = np.zeros(4800, dtype=np.int16)
    samples[500] = 30000  # a click: loud, but not sustained
    samples[2000 : 2000 + len(signal.burst)] = signal.burst
    onset = detect_onset(samples, signal.threshold)
    assert onset == 2000 + signal.onset_offset
    assert signal.onset_offset < 0.003 * SAMPLE_RATE
    assert detect_onset(np.zeros(960, dtype=np.int16), signal.threshold) is None


def loop_audio(signal, delay, frames, drop=()):
    """What a perfect echo `delay` s later sends back, as sent/received logs."""
    sent_audio, received = [], ReceivedAudio()
    for n in range(frames):
        first = n * FRAME_SAMPLES
        sent_at = 100.0 + first / SAMPLE_RATE
        sent_audio.append((sent_at, first))
        block = signal(first, FRAME_SAMPLES)
        if any(first < s + len(signal.burst) and s < first + FRAME_SAMPLES for s in drop):
            block = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        received.blocks.append((sent_at + delay, block // 2))  # 6 dB quieter on the way
    return sent_audio, received


def test_analyse_bursts_measures_a_known_delay_and_a_missed_burst():
    signal = BurstSignal()
    starts = signal.schedule(4800 + 123, 4, 0.5)
    sent_audio, received = loop_audio(signal, 0.1234, frames=150, drop=[starts[2]])
    bursts = analyse_bursts(signal, sent_audio, received, window=0.5)
    assert [b.latency is not None for b in bursts] == [True, True, False, True]
    for burst in (bursts[0], bursts[1], bursts[3]):
        assert burst.latency == pytest.approx(0.1234, abs=1e-4)
        assert burst.level_dbfs == pytest.approx(-9.2 - 6.0, abs=0.3)
    assert bursts[1].sent_perf == pytest.approx(100.0 + starts[1] / SAMPLE_RATE)
    summary = summarize_bursts(bursts, signal)
    assert (summary["bursts"], summary["detected"], summary["missed"]) == (4, 3, 1)
    assert summary["latency_ms"]["p50"] == pytest.approx(123.4, abs=0.1)
    assert summary["sent_level_dbfs"] == pytest.approx(-9.2, abs=0.2)


def test_a_burst_later_than_the_window_is_missed():
    signal = BurstSignal()
    signal.schedule(4800, 2, 0.3)
    sent_audio, received = loop_audio(signal, 0.35, frames=80)
    bursts = analyse_bursts(signal, sent_audio, received, window=0.3)
    assert bursts[0].latency is None


# ---------------------------------------------------------------------------
# The ping loop, against a scripted client


class ScriptedClient:
    """Answers each ping after `delays[seq]` (None: never), `copies[seq]` times."""

    def __init__(self, delays, copies=None):
        self.delays = delays
        self.copies = copies or {}
        self.messages = asyncio.Queue()
        self.sent = []

    async def send(self, message):
        self.sent.append(message)
        seq = message["seq"]
        delay = self.delays.get(seq, 0.001)
        if delay is not None:
            for _ in range(self.copies.get(seq, 1)):
                asyncio.get_running_loop().call_later(delay, self._reply, seq)

    def _reply(self, seq):
        now = time.time()
        self.messages.put_nowait(
            (
                time.perf_counter(),
                {"type": "pong", "seq": seq, "server_receive_time": now, "server_send_time": now},
            )
        )

    async def next_message(self):
        return await self.messages.get()


async def test_run_pings_counts_lost_late_and_duplicate_pongs():
    client = ScriptedClient({2: None, 4: 0.5}, copies={1: 3})
    log = await run_pings(client, count=6, interval=0.01, pong_timeout=0.2)
    assert [m["seq"] for m in client.sent] == list(range(6))
    assert all(m["type"] == "ping" and isinstance(m["timestamp"], float) for m in client.sent)
    statuses = [s.status for s in log.ordered()]
    assert statuses == ["ok", "ok", "lost", "ok", "lost", "ok"]  # 4's pong is late
    assert log.samples[1].duplicates == 2
    assert log.duplicates == 2
    assert all(s.rtt < 0.1 for s in log.ordered() if s.rtt is not None)


class ScriptedRtviBot:
    """An RTVI bot: answers the second client-ready with bot-ready, pings as server responses."""

    def __init__(self):
        self.messages = asyncio.Queue()
        self.sent = []

    async def send(self, message):
        self.sent.append(message)
        reply = None
        if message["type"] == "client-ready" and len(self.sent) >= 2:
            reply = {"label": "rtvi-ai", "type": "bot-ready", "id": message["id"],
                     "data": {"version": "2.2.0"}}  # fmt: skip
        elif message["type"] == "client-message":
            ping = message["data"]["d"]
            now = time.time()
            pong = {"type": "pong", "seq": ping["seq"], "client_timestamp": ping["timestamp"],
                    "server_receive_time": now, "server_send_time": now}  # fmt: skip
            reply = {"label": "rtvi-ai", "type": "server-response", "id": message["id"],
                     "data": {"t": "ping", "d": pong}}  # fmt: skip
        if reply:
            self.messages.put_nowait((time.perf_counter(), reply))

    async def next_message(self, within=None):
        return await asyncio.wait_for(self.messages.get(), within)


async def test_an_rtvi_client_waits_for_bot_ready_then_pings_in_rtvi_messages():
    bot = ScriptedRtviBot()
    info = SessionInfo("webrtc", "room", connect_started=time.perf_counter() - 0.5)
    info.joined = time.perf_counter()
    await wait_until_answering(bot, info, join_timeout=5, wire=RTVI)
    log = await run_pings(bot, count=4, interval=0.01, wire=RTVI)
    readies = [m for m in bot.sent if m["type"] == "client-ready"]
    assert len(readies) == 2 and readies[0]["id"] != readies[1]["id"]
    assert readies[0]["data"]["version"] == "2.0.0"
    assert bot.sent[2]["type"] == "client-message" and bot.sent[2]["data"]["t"] == "ping"
    assert [s.status for s in log.ordered()] == ["ok"] * 4
    assert set(info.setup) == {"bot_ready", "first_pong", "total"}
    assert info.setup["bot_ready"] >= PROBE_INTERVAL  # the first client-ready went unanswered
    assert info.setup["total"] >= 0.5 + info.setup["bot_ready"] + info.setup["first_pong"]


async def test_run_pings_returns_as_soon_as_every_pong_is_back():
    started = time.perf_counter()
    log = await run_pings(ScriptedClient({}), count=5, interval=0.01, pong_timeout=10)
    assert time.perf_counter() - started < 1.0
    assert log.answered == 5


# ---------------------------------------------------------------------------
# Tables and report


def result(kind, platform, summary):
    return {
        "kind": kind,
        "platform": platform,
        "date": "2026-01-02T03:04:05+00:00",
        "summary": summary,
        "params": {"sessions": 1},
    }


def test_report_puts_runs_side_by_side(tmp_path, capsys):
    ping = {
        "sent": 10,
        "received": 9,
        "lost": 1,
        "loss_pct": 10.0,
        "rtt_ms": {"p50": 1.234, "p99": 5.0},
        "jitter_ms": 0.5,
    }
    files = []
    for name, data in [
        ("daily", result("ping", "daily", ping)),
        ("livekit", result("ping", "livekit", {**ping, "received": 10})),
        (
            "webrtc",
            result(
                "audio",
                "webrtc",
                {"bursts": 5, "detected": 5, "missed": 0, "latency_ms": {"p50": 180.0}},
            ),
        ),
    ]:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        files.append(str(path))
    assert cli.main(["report", *files]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "daily" in line and "livekit" in line)
    assert header.split() == ["daily", "livekit", "webrtc"]
    p50 = next(line for line in out.splitlines() if line.startswith("RTT p50"))
    assert p50.split()[-3:] == ["1.23", "1.23", "-"]
    audio = next(line for line in out.splitlines() if line.startswith("audio RTT p50"))
    assert audio.split()[-3:] == ["-", "-", "180.00"]
    assert "2026-01-02 03:04" in out


def test_report_names_duplicate_platforms():
    table = report_table([result("ping", "webrtc", {"sent": 1}), result("ping", "webrtc", {})])
    assert "webrtc #1" in table and "webrtc #2" in table


def test_report_rejects_a_file_that_is_not_a_result(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    assert cli.main(["report", str(bad)]) == 1
    assert "not an echo-bench ping or audio result" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path / "missing.json")]) == 1
    assert "No such file" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# End to end: the real server on 127.0.0.1, local WebRTC


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with run_server(tmp_path_factory.mktemp("echo-bench"), JOIN_TIMEOUT="10") as running:
        yield running


def console_script() -> list[str]:
    """The installed `echo-bench` console script (what `uv run echo-bench` runs)."""
    script = Path(sys.executable).parent / "echo-bench"
    if not script.exists():
        found = shutil.which("echo-bench")
        assert found, "the echo-bench console script is not installed"
        script = Path(found)
    return [str(script)]


def test_ping_console_script_200_pings(server, tmp_path):
    json_path, csv_path, png_path = tmp_path / "p.json", tmp_path / "p.csv", tmp_path / "p.png"
    run = subprocess.run(
        [
            *console_script(),
            "ping",
            "--server", server.url,
            "--platform", "webrtc",
            "--count", "200",
            "--interval", "0.02",
            "--ice-address", "127.0.0.1",
            "--json", str(json_path),
            "--csv", str(csv_path),
            "--plot", str(png_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    table = {
        line.rsplit(None, 1)[0].strip(): line.split()[-1]
        for line in run.stdout.split("\n\n")[0].splitlines()[2:]
    }
    assert table["received"] == "200"
    assert table["lost"] == "0"

    data = json.loads(json_path.read_text())
    summary = data["summary"]
    assert (summary["sent"], summary["received"], summary["lost"]) == (200, 200, 0)
    assert summary["loss_pct"] == 0.0
    samples = data["sessions"][0]["samples"]
    assert [s["seq"] for s in samples] == list(range(200))
    rtts = [s["rtt_ms"] for s in samples]
    assert all(s["status"] == "ok" for s in samples)
    for key, value in describe(rtts).items():
        assert summary["rtt_ms"][key] == pytest.approx(value, rel=1e-9), key
    assert summary["jitter_ms"] == pytest.approx(jitter(rtts), rel=1e-9)
    processing = [s["server_send_time"] - s["server_receive_time"] for s in samples]
    assert summary["server_processing_ms"]["p50"] == pytest.approx(
        1000 * float(np.percentile(processing, 50)), rel=1e-6
    )
    assert 0 < summary["rtt_ms"]["min"] <= summary["rtt_ms"]["p50"] < 50
    assert 0 < summary["connect_to_first_pong_ms"] < 10_000
    assert data["platform"] == "webrtc"
    assert data["params"]["count"] == 200

    with csv_path.open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 200
    assert float(rows[7]["rtt_ms"]) == pytest.approx(rtts[7])

    # Net RTT: each sample's RTT minus the agent's hold, and its percentiles.
    net = [s["rtt_ms"] - s["server_processing_ms"] for s in samples]
    assert [s["net_rtt_ms"] for s in samples] == pytest.approx(net)
    assert float(rows[7]["net_rtt_ms"]) == pytest.approx(net[7])
    for q in (50, 95, 99):
        assert summary["net_rtt_ms"][f"p{q}"] == pytest.approx(float(np.percentile(net, q)))
    assert "net RTT p99 (ms)" in table
    # Client and agent share this machine's clock: the true offset, 0, lies within the bound.
    offset = summary["clock_offset_ms"]
    assert abs(offset["offset"]) <= offset["bound"] + 0.05, offset
    assert 0 < offset["bound"] <= summary["net_rtt_ms"]["min"] / 2 + 1e-3, offset
    if summary["one_way_not_given"] is None:
        up = [s["client_to_agent_ms"] for s in samples]
        down = [s["agent_to_client_ms"] for s in samples]
        # (Unix times in float carry ~0.2 us each: equal to 1 us.)
        assert [u + d for u, d in zip(up, down, strict=True)] == pytest.approx(net, abs=1e-3)
        assert "client -> agent p50 (ms)" in table
    else:
        assert "one-way delays not given: the clock offset is known to" in run.stdout
    # Setup phases, each from the end of the one before.
    setup = data["sessions"][0]["summary"]["setup_ms"]
    assert set(setup) == {"connect", "join", "offer", "ice_dtls", "first_pong", "total"}
    assert setup["offer"] + setup["ice_dtls"] <= setup["join"]
    assert setup["total"] >= setup["connect"] + setup["join"] + setup["first_pong"]
    assert setup["total"] == pytest.approx(summary["connect_to_first_pong_ms"])
    assert data["setup_ms"]["join"]["count"] == 1
    assert "ICE + DTLS until data channel open" in run.stdout

    png = png_path.read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", png[16:24])
    assert png[12:16] == b"IHDR" and width > 500 and height > 200


def test_ping_five_sessions_at_once(server, tmp_path, capsys):
    json_path = tmp_path / "sessions.json"
    code = cli.main(
        ["ping", "--server", server.url, "--count", "20", "--interval", "0.02",
         "--sessions", "5", "--ice-address", "127.0.0.1", "--json", str(json_path)]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "session 5" in out and "all sessions" in out
    data = json.loads(json_path.read_text())
    sessions = data["sessions"]
    assert len(sessions) == 5
    assert len({s["room"] for s in sessions}) == 5
    assert all(s["summary"]["received"] == 20 for s in sessions)
    assert data["summary"]["received"] == 100
    assert data["summary"]["lost"] == 0


def test_ping_repeated_runs_and_their_setup_phases(server, tmp_path, capsys):
    json_path = tmp_path / "repeat.json"
    code = cli.main(
        ["ping", "--server", server.url, "--count", "5", "--interval", "0.02", "--sessions", "2",
         "--repeat", "2", "--ice-address", "127.0.0.1", "--json", str(json_path)]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "all sessions" in line)
    assert header.split() == ["all", "sessions", "run", "1", "run", "2"]
    assert "setup (ms), 4 sessions" in out
    data = json.loads(json_path.read_text())
    assert [s["run"] for s in data["sessions"]] == [0, 0, 1, 1]
    assert [r["summary"]["received"] for r in data["runs"]] == [10, 10]
    assert data["summary"]["received"] == 20
    joins = [s["summary"]["setup_ms"]["join"] for s in data["sessions"]]
    assert data["setup_ms"]["join"]["p50"] == pytest.approx(float(np.percentile(joins, 50)))
    assert data["setup_ms"]["join"]["max"] == pytest.approx(max(joins))


def test_ping_over_rtvi_measures_bot_ready(server, tmp_path, capsys):
    json_path = tmp_path / "rtvi.json"
    code = cli.main(
        ["ping", "--server", server.url, "--count", "20", "--interval", "0.02", "--rtvi",
         "--join-timeout", "5", "--ice-address", "127.0.0.1", "--json", str(json_path)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert "bot-ready (RTVI)" in capsys.readouterr().out
    data = json.loads(json_path.read_text())
    assert data["params"]["rtvi"] is True
    assert data["summary"]["received"] == 20
    assert data["summary"]["net_rtt_ms"]["p50"] > 0
    setup = data["sessions"][0]["summary"]["setup_ms"]
    assert setup["bot_ready"] > 0 and setup["first_pong"] > 0


def test_audio_detects_every_burst(server, tmp_path, capsys):
    json_path, png_path = tmp_path / "a.json", tmp_path / "a.png"
    code = cli.main(
        ["audio", "--server", server.url, "--platform", "webrtc", "--count", "5",
         "--interval", "0.5", "--ice-address", "127.0.0.1",
         "--json", str(json_path), "--plot", str(png_path)]
    )  # fmt: skip
    assert code == 0
    assert "bursts detected" in capsys.readouterr().out
    data = json.loads(json_path.read_text())
    summary = data["summary"]
    assert (summary["bursts"], summary["detected"], summary["missed"]) == (5, 5, 0)
    latencies = [b["latency_ms"] for b in data["bursts"]]
    assert all(20 < latency < 500 for latency in latencies)
    assert summary["latency_ms"]["p50"] == pytest.approx(float(np.percentile(latencies, 50)))
    assert -30 < summary["received_level_dbfs"] < 0
    assert png_path.read_bytes().startswith(PNG_SIGNATURE)
    setup = data["runs"][0]["summary"]["setup_ms"]
    assert set(setup) == {"connect", "join", "offer", "ice_dtls", "first_pong", "total"}
    assert data["setup_ms"]["total"]["p50"] == pytest.approx(setup["total"])


def test_connect_error_is_one_clear_line(server, capsys):
    code = cli.main(["ping", "--server", server.url, "--platform", "daily", "--count", "3"])
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("echo-bench: error: ")
    assert "HTTP 400" in err[-1] and "DAILY_API_KEY" in err[-1]


def test_server_down_is_one_clear_line(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert cli.main(["audio", "--server", url, "--count", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"echo-bench: error: cannot reach the echo agent at {url}: connection refused "
        "(is the server running?)"
    )


class _Busy(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = json.dumps({"detail": "session limit reached (50 running); retry later"}).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_server_error_through_python_m_echo_bench():
    busy = ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    thread = threading.Thread(target=busy.serve_forever, daemon=True)
    thread.start()
    try:
        run = subprocess.run(
            [sys.executable, "-m", "echo_bench", "ping", "--count", "1",
             "--server", f"http://127.0.0.1:{busy.server_address[1]}"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )  # fmt: skip
    finally:
        busy.shutdown()
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        f"echo-bench: error: POST http://127.0.0.1:{busy.server_address[1]}/connect failed "
        "(HTTP 503): session limit reached (50 running); retry later"
    )


async def test_benchmark_functions_on_an_offer_url(server):
    async with aiohttp.ClientSession() as http:
        pings = await ping_offer_url(
            f"{server.url}/api/offer?mode=pong", http, count=30, interval=0.01
        )
        audio = await measure_audio_roundtrip(
            f"{server.url}/api/offer?mode=loopback", http, count=3, interval=0.4
        )
    summary = pings.summary()
    assert summary["received"] == 30
    assert summary["server_processing_ms"]["count"] == 30
    assert pings.connect_to_first_pong > 0
    assert pings.room
    audio_summary = audio.summary()
    assert audio_summary["detected"] == 3
    assert 20 < audio_summary["latency_ms"]["max"] < 400
