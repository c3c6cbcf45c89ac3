"""How many bots one echo agent process holds, measured on 127.0.0.1.

One server process (pinned to one core) answers local WebRTC sessions opened by aiortc
clients in this process (pinned to the other core). Two ramps:

- loopback: N = 1, 2, ..., 8, then larger steps, concurrent `loopback` sessions, each
  sending audio all the time (silence with a tone burst every second) and 10 pings/s.
  At each N, over a window of ~10 s: the server's and the client's CPU (% of one core,
  from /proc/PID/stat; the rest of the machine's from /proc/stat), the audio round trip
  of every burst of every session, bursts missed, ping RTT p50/p99 and pongs lost. The
  ramp stops once the server is saturated (CPU >= 95 % of its core, a burst missed, or
  audio round trip p50 > 2x that of N = 1), or once the client's own core is saturated
  (then the figures say more about the client than about the server).
- pong: `pong` sessions (no audio) in larger steps, 10 pings/s each; the server's CPU
  per session.

    uv run python benchmarks/capacity.py [--max 40] [--loopback-steps 1,2,4,8,...]
        [--pong-steps 10,25,50,100] [--markdown FILE]
"""

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.peers import CLIENT_CPUS, PEER_CPUS, PeerProcess, pin_client  # noqa: E402
from benchmarks.reports import publish, run_line  # noqa: E402
from echo_bench.bursts import BurstSignal, measure_bursts  # noqa: E402
from echo_bench.clients import WebRTCBenchClient, configure_ice, wait_for_pong  # noqa: E402
from echo_bench.ping import run_pings  # noqa: E402

WINDOW_BURSTS = 10
BURST_INTERVAL = 1.0
"""One burst a second; a burst not back within the second counts as missed."""
PING_INTERVAL = 0.1
WINDOW_PINGS = 100
PONG_TIMEOUT = 2.0
SETTLE_SECS = 2.0
"""Wait after sessions are added, so their set-up is not in the window."""
IDLE_SECS = 5.0
SATURATED_CPU = 95.0
LATENCY_FACTOR = 2.0
KNEE_FACTOR = 1.1
"""The conclusion also names the most sessions whose audio p90 stays within 10 % of N = 1."""
CONNECT_BATCH = 10

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | str = "self") -> float:
    """utime + stime of a process (all its threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_busy_seconds() -> float:
    """CPU time of the whole machine, every core, not idle (steal included), in seconds."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / TICKS


class CpuMeter:
    """CPU use over a window, in % of one core: the server, this process (the clients),
    and everything else on the machine (a neighbour's load, or the hypervisor's steal)."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid

    def _read(self) -> tuple[float, float, float, float]:
        return (
            time.perf_counter(),
            cpu_seconds(self.server_pid),
            cpu_seconds(),
            machine_busy_seconds(),
        )

    def __enter__(self) -> "CpuMeter":
        self._start = self._read()
        return self

    def __exit__(self, *_) -> None:
        end = self._read()
        wall, server, client, machine = (b - a for a, b in zip(self._start, end, strict=True))
        self.seconds = wall
        self.server = server / wall * 100
        self.client = client / wall * 100
        self.other = max(0.0, machine - server - client) / wall * 100


class Server(PeerProcess):
    """The echo agent as its own process, pinned to `PEER_CPUS`."""

    def __init__(self, max_sessions: int, log: str | None):
        super().__init__(
            "server", [sys.executable, "server.py"], {"MAX_SESSIONS": str(max_sessions)}, log
        )

    async def rooms(self, http: aiohttp.ClientSession) -> int:
        """How many sessions `/rooms` lists."""
        async with http.get(f"{self.base}/rooms") as response:
            return len((await response.json())["rooms"])

    async def wait_empty(self, http: aiohttp.ClientSession, within: float = 30.0) -> None:
        """Wait until every session has ended."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not await self.rooms(http):
                return
            await asyncio.sleep(0.5)


class WindowClient:
    """A `BenchClient` view of a client for one window: its pings' seqs start at `base`.

    `run_pings` numbers pings from 0 every time; here they go out as `base + seq`, and
    pongs of earlier windows (late ones) are dropped instead of being matched.
    """

    def __init__(self, client: WebRTCBenchClient, base: int):
        self.client, self.base = client, base
        self.received, self.sent_audio = client.received, client.sent_audio

    async def send(self, message: dict) -> None:
        seq = message.get("seq")
        if isinstance(seq, int) and seq >= 0:
            message = {**message, "seq": seq + self.base}
        await self.client.send(message)

    async def next_message(self) -> tuple[float, dict]:
        while True:
            arrival, message = await self.client.next_message()
            seq = message.get("seq")
            if not isinstance(seq, int) or seq < 0:
                return arrival, message
            if seq >= self.base:
                return arrival, {**message, "seq": seq - self.base}

    async def close(self) -> None:
        await self.client.close()


class Session:
    """One client session: with `audio`, its microphone plays bursts all the time."""

    def __init__(self, audio: bool):
        self.audio = audio
        self.signal = BurstSignal()
        self.client = WebRTCBenchClient(signal=self.signal if audio else None)
        self.windows = 0

    async def open(self, offer_url: str, http: aiohttp.ClientSession) -> None:
        """Connect and wait for the bot's first pong."""
        await self.client.connect(offer_url, http)
        await wait_for_pong(self.client, 30.0)

    async def window(self, phase: float) -> dict:
        """Pings (and bursts, with audio) over one window; pings start `phase` s late."""
        self.windows += 1
        view = WindowClient(self.client, self.windows * 1_000_000)

        async def staggered():
            await asyncio.sleep(phase)
            return await run_pings(view, WINDOW_PINGS, PING_INTERVAL, PONG_TIMEOUT)

        pings = staggered()
        if not self.audio:
            return {"log": await pings, "bursts": []}
        # Only this window's audio is kept (and searched).
        self.client.sent_audio.clear()
        self.client.received.blocks.clear()
        bursts = measure_bursts(self.client, self.signal, WINDOW_BURSTS, BURST_INTERVAL)
        log, results = await asyncio.gather(pings, bursts)
        return {"log": log, "bursts": results}


async def open_sessions(
    sessions: list[Session], count: int, audio: bool, offer_url: str, http: aiohttp.ClientSession
) -> None:
    """Add sessions until there are `count`, `CONNECT_BATCH` connecting at a time."""
    while len(sessions) < count:
        batch = [Session(audio) for _ in range(min(CONNECT_BATCH, count - len(sessions)))]
        await asyncio.gather(*(s.open(offer_url, http) for s in batch))
        sessions.extend(batch)


async def measure_step(sessions: list[Session], server: Server) -> dict:
    """One window on every session at once: CPU, audio round trips, pings."""
    await asyncio.sleep(SETTLE_SECS)
    with CpuMeter(server.process.pid) as cpu:
        # The sessions' pings spread over the interval, not all at the same instant.
        windows = await asyncio.gather(
            *(s.window(i * PING_INTERVAL / len(sessions)) for i, s in enumerate(sessions))
        )
    latencies = [b.latency * 1000 for w in windows for b in w["bursts"] if b.latency is not None]
    bursts = sum(len(w["bursts"]) for w in windows)
    rtts = [s.rtt * 1000 for w in windows for s in w["log"].samples.values() if s.rtt is not None]
    sent = sum(len(w["log"].samples) for w in windows)
    return {
        "n": len(sessions),
        "server_cpu": cpu.server,
        "client_cpu": cpu.client,
        "other_cpu": cpu.other,
        "seconds": cpu.seconds,
        "bursts": bursts,
        "missed": bursts - len(latencies),
        "audio_p50": float(np.percentile(latencies, 50)) if latencies else float("nan"),
        "audio_p90": float(np.percentile(latencies, 90)) if latencies else float("nan"),
        "pings": sent,
        "lost": sent - len(rtts),
        "rtt_p50": float(np.percentile(rtts, 50)) if rtts else float("nan"),
        "rtt_p99": float(np.percentile(rtts, 99)) if rtts else float("nan"),
    }


async def idle_cpu(server: Server) -> float:
    """The server's CPU with no session."""
    with CpuMeter(server.process.pid) as cpu:
        await asyncio.sleep(IDLE_SECS)
    return cpu.server


def verdict(step: dict, first: dict | None) -> str:
    """Why this step saturates something ('' when nothing is)."""
    reasons = []
    if step["server_cpu"] >= SATURATED_CPU:
        reasons.append("server CPU")
    if step["missed"]:
        reasons.append("bursts missed")
    if first and step["audio_p50"] > LATENCY_FACTOR * first["audio_p50"]:
        reasons.append(f"audio > {LATENCY_FACTOR:g}x N=1")
    if step["client_cpu"] >= SATURATED_CPU:
        reasons.append("client CPU")
    return ", ".join(reasons)


async def close_all(sessions: list[Session], server: Server, http: aiohttp.ClientSession) -> None:
    """Close every client and wait until the server has ended their bots."""
    await asyncio.gather(*(s.client.close() for s in sessions), return_exceptions=True)
    sessions.clear()
    await server.wait_empty(http)


async def measure(loopback_steps: list[int], pong_steps: list[int], server_log: str | None) -> dict:
    """Both ramps against one server process."""
    configure_ice(["127.0.0.1"])
    pin_client()
    server = Server(max([*loopback_steps, *pong_steps]), server_log)
    out = {"loopback": [], "pong": []}
    sessions: list[Session] = []
    try:
        async with aiohttp.ClientSession() as http:
            await server.wait_ready(http)
            out["idle_cpu"] = await idle_cpu(server)
            print(f"idle: server {out['idle_cpu']:.1f} % CPU", file=sys.stderr)
            loopback_url = f"{server.base}/api/offer?mode=loopback"
            for n in loopback_steps:
                await open_sessions(sessions, n, True, loopback_url, http)
                step = await measure_step(sessions, server)
                step["verdict"] = verdict(step, out["loopback"][0] if out["loopback"] else None)
                out["loopback"].append(step)
                print(_progress("loopback", step), file=sys.stderr)
                if step["verdict"]:
                    break
            await close_all(sessions, server, http)
            out["idle_cpu_after"] = await idle_cpu(server)
            pong_url = f"{server.base}/api/offer?mode=pong"
            for n in pong_steps:
                await open_sessions(sessions, n, False, pong_url, http)
                step = await measure_step(sessions, server)
                step["verdict"] = verdict(step, None)
                out["pong"].append(step)
                print(_progress("pong", step), file=sys.stderr)
                if step["verdict"]:
                    break
            await close_all(sessions, server, http)
    finally:
        await asyncio.gather(*(s.client.close() for s in sessions), return_exceptions=True)
        server.stop()
    return out


def _progress(ramp: str, step: dict) -> str:
    return (
        f"{ramp} N={step['n']}: server {step['server_cpu']:.0f} %, "
        f"client {step['client_cpu']:.0f} %, audio p50 {step['audio_p50']:.1f} ms, "
        f"missed {step['missed']}, ping p50 {step['rtt_p50']:.2f} ms, lost {step['lost']}"
        + (f" -> {step['verdict']}" if step["verdict"] else "")
    )


def conclusion(data: dict) -> str:
    """The one-line answer."""
    loopback, pong = data["loopback"], data["pong"]
    first = loopback[0]
    held = [s for s in loopback if not s["verdict"]]
    last = loopback[-1]
    client_bound = "client CPU" in last["verdict"]
    if held:
        k = held[-1]
        within = abs(k["audio_p50"] / first["audio_p50"] - 1) * 100
        text = (
            f"One process holds about {k['n']} loopback sessions with audio round trip "
            f"within {within:.0f} % of one session (server at {k['server_cpu']:.0f} % of a core)"
        )
        close = [s for s in held if s["audio_p90"] <= KNEE_FACTOR * first["audio_p90"]]
        if close and close[-1] is not k:
            text += (
                f"; its p90 stays within {(KNEE_FACTOR - 1) * 100:.0f} % up to "
                f"N={close[-1]['n']} ({k['audio_p90']:.0f} ms at N={k['n']} against "
                f"{first['audio_p90']:.0f} ms at N=1)"
            )
    else:
        text = "Not even one loopback session ran unsaturated"
    if not last["verdict"]:
        text += f"; nothing saturated up to the ramp's last step, N={last['n']}"
    elif client_bound:
        text += (
            f"; at N={last['n']} the client's own core saturated "
            f"({last['client_cpu']:.0f} %, server {last['server_cpu']:.0f} %; {last['verdict']}), "
            f"so that step measures the client as much as the server (a straight line through "
            f"the server's CPU reaches {SATURATED_CPU:g} % at about "
            f"{_extrapolate(loopback, data['idle_cpu']):.0f} sessions)"
        )
    else:
        peak = max(s["client_cpu"] for s in loopback)
        text += (
            f"; N={last['n']} saturates ({last['verdict']}) while the client's core peaked at "
            f"{peak:.0f} %, so the server is the limit"
        )
    if pong:
        text += (
            f"; ping-only sessions cost ~{_pong_slope(data):.2f} % of a core each "
            f"(10 pings/s each, up to {pong[-1]['n']} sessions)"
        )
    return text + "."


def _pong_slope(data: dict) -> float:
    """Server CPU per pong session: slope of a line through idle and every pong step."""
    n = [0] + [s["n"] for s in data["pong"]]
    cpu = [data["idle_cpu_after"]] + [s["server_cpu"] for s in data["pong"]]
    return float(np.polyfit(n, cpu, 1)[0])


def _extrapolate(steps: list[dict], idle: float) -> float:
    """Sessions at which the server would reach `SATURATED_CPU`, on a line through its CPU."""
    n = np.array([s["n"] for s in steps], dtype=float)
    cpu = np.array([s["server_cpu"] for s in steps])
    slope = float(np.polyfit(n, cpu, 1)[0]) if len(n) > 1 else cpu[0] - idle
    return (SATURATED_CPU - idle) / slope if slope > 0 else float("inf")


def report(data: dict) -> str:
    """Both ramps as Markdown tables, with date, machine and the conclusion."""
    lines = [
        f"{run_line()}, 127.0.0.1; "
        f"server pinned to CPU {PEER_CPUS}, clients to CPU {CLIENT_CPUS}. "
        f"Server idle: {data['idle_cpu']:.1f} % CPU before the ramps, "
        f"{data['idle_cpu_after']:.1f} % after the loopback ramp.",
        "",
        f"Loopback ramp: every session sends audio all the time, a {BurstSignal().burst.size}"
        f"-sample tone burst every {BURST_INTERVAL:g} s ({WINDOW_BURSTS} per window), and "
        f"{1 / PING_INTERVAL:g} pings/s ({WINDOW_PINGS} per window); CPU in % of one core; "
        "other = the rest of the machine (another process, the hypervisor's steal).",
        "",
        "| sessions | server CPU | server CPU per session | client CPU | other CPU "
        "| audio RTT p50 (ms) | audio RTT p90 (ms) | bursts missed | ping RTT p50 (ms) "
        "| ping RTT p99 (ms) | pongs lost | saturated |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in data["loopback"]:
        lines.append(
            f"| {s['n']} | {s['server_cpu']:.1f} % | {s['server_cpu'] / s['n']:.1f} % "
            f"| {s['client_cpu']:.1f} % | {s['other_cpu']:.1f} % "
            f"| {s['audio_p50']:.1f} | {s['audio_p90']:.1f} | {s['missed']}/{s['bursts']} "
            f"| {s['rtt_p50']:.2f} | {s['rtt_p99']:.2f} | {s['lost']}/{s['pings']} "
            f"| {s['verdict'] or '-'} |"
        )
    if data["pong"]:
        idle = data["idle_cpu_after"]
        lines += [
            "",
            f"Pong ramp: no audio, {1 / PING_INTERVAL:g} pings/s per session "
            f"({WINDOW_PINGS} per window); CPU per session = (server CPU - idle) / sessions; "
            "the conclusion takes the slope of a line through idle and every step.",
            "",
            "| sessions | server CPU | CPU per session | client CPU | other CPU "
            "| ping RTT p50 (ms) | ping RTT p99 (ms) | pongs lost | saturated |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for s in data["pong"]:
            lines.append(
                f"| {s['n']} | {s['server_cpu']:.1f} % | {(s['server_cpu'] - idle) / s['n']:.2f} % "
                f"| {s['client_cpu']:.1f} % | {s['other_cpu']:.1f} % "
                f"| {s['rtt_p50']:.2f} | {s['rtt_p99']:.2f} "
                f"| {s['lost']}/{s['pings']} | {s['verdict'] or '-'} |"
            )
    lines += ["", conclusion(data)]
    return "\n".join(lines)


def _counts(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n.strip()]


def main() -> None:
    """Run both ramps and print (optionally append) the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max", type=int, default=40, help="most loopback sessions")
    parser.add_argument(
        "--loopback-steps",
        default="1,2,3,4,5,6,7,8,10,12,14,16,20,24,28,32,36,40",
        help="loopback session counts, comma separated (up to --max)",
    )
    parser.add_argument(
        "--pong-steps",
        default="10,25,50,100",
        help="pong session counts, comma separated (MAX_SESSIONS follows the largest)",
    )
    parser.add_argument("--server-log", help="write the server's output to this file")
    parser.add_argument("--markdown", help="append the report to this Markdown file")
    args = parser.parse_args()
    loopback = sorted(n for n in _counts(args.loopback_steps) if n <= args.max)
    if not loopback:
        parser.error("no loopback step within --max")
    data = asyncio.run(measure(loopback, sorted(_counts(args.pong_steps)), args.server_log))
    publish(report(data), args.markdown)


if __name__ == "__main__":
    main()
