"""How many bots the echo agent holds with its worker pool against one bot process.

One run, one condition per `--workers` value (1 and 2 by default): `server.py` with
`WORKERS=w`, scheduled freely over the machine's cores (pinning it to one core would
deny the pool its point), answers local WebRTC sessions opened by aiortc clients in
this process, on 127.0.0.1. Per condition, two ramps:

- loopback: N concurrent `loopback` sessions, each sending audio all the time (silence
  with a tone burst every second) and 10 pings/s. At each N, over a window of ~10 s:
  the CPU of the agent (the server and every worker, % of one core, from /proc/PID/stat),
  of its busiest process, of the client and of the rest of the machine (/proc/stat);
  the agent's PSS and each worker's RSS; the audio round trip of every burst, bursts
  missed, ping RTT p50/p99 and pongs lost. The ramp stops once something saturates (a
  worker's core or every core >= 95 %, a burst missed, audio p50 > 2x that of N = 1, or
  the client's own core).
- pong: `pong` sessions (no audio), 10 pings/s each, until ping p99 >= 20 ms.

Held = the most loopback sessions with audio p90 within 10 % of N = 1 and nothing
saturated; the most ping-only sessions with p99 < 20 ms.

    uv run python benchmarks/capacity.py [--workers 1,2] [--loopback-steps 1,2,4,...]
        [--pong-steps 50,100,200,300] [--markdown FILE]
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

from benchmarks.peers import CLIENT_CPUS, PEER_CPUS, PeerProcess, descendants, parent  # noqa: E402
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
DISTURBED_CPU = 20.0
RETRIES = 2
"""A window in which the rest of the machine (the hypervisor's steal, another process)
took more than `DISTURBED_CPU` % of a core is measured again, up to `RETRIES` times."""
PONG_P99_MS = 20.0
"""Ping-only sessions are held while ping RTT p99 stays under this."""
"""The conclusion also names the most sessions whose audio p90 stays within 10 % of N = 1."""
CONNECT_BATCH = 10

TICKS = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


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


def rss_pss_mib(pid: int) -> tuple[float, float]:
    """Resident and proportional (shared pages split among their users) memory, MiB."""
    rss = pss = 0.0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) / 1024
    except OSError:
        pass  # the process ended
    return rss, pss


class CpuMeter:
    """CPU use over a window, in % of one core: every process of the agent (the server and
    its bot workers), this process (the clients), and everything else on the machine."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid

    def _read(self) -> tuple[float, dict[int, float], float, float]:
        agent = {}
        for pid in descendants(self.server_pid):
            try:
                agent[pid] = cpu_seconds(pid)
            except OSError:
                pass  # ended meanwhile
        return time.perf_counter(), agent, cpu_seconds(), machine_busy_seconds()

    def __enter__(self) -> "CpuMeter":
        self._start = self._read()
        return self

    def __exit__(self, *_) -> None:
        wall, agent, client, machine = self._read()
        wall -= self._start[0]
        start = self._start[1]
        per_process = {pid: (t - start.get(pid, 0.0)) / wall * 100 for pid, t in agent.items()}
        self.seconds = wall
        self.agent = sum(per_process.values())
        self.busiest = max(per_process.values(), default=0.0)
        self.client = (client - self._start[2]) / wall * 100
        machine_pct = (machine - self._start[3]) / wall * 100
        self.machine = machine_pct
        self.other = max(0.0, machine_pct - self.agent - self.client)


class Server(PeerProcess):
    """The echo agent (`server.py` with `WORKERS` bot workers), pinned or scheduled freely."""

    def __init__(self, workers: int, pinned: bool, max_sessions: int, log: str | None):
        env = {"MAX_SESSIONS": str(max_sessions), "WORKERS": str(workers)}
        super().__init__("server", [sys.executable, "server.py"], env, log, pinned=pinned)
        self.workers = workers
        self.label = f"WORKERS={workers}" + (f", pinned to CPU {PEER_CPUS}" if pinned else "")

    async def room_list(self, http: aiohttp.ClientSession) -> list[dict]:
        """`/rooms`."""
        async with http.get(f"{self.base}/rooms") as response:
            return (await response.json())["rooms"]

    async def rooms(self, http: aiohttp.ClientSession) -> int:
        """How many sessions `/rooms` lists."""
        return len(await self.room_list(http))

    async def wait_empty(self, http: aiohttp.ClientSession, within: float = 30.0) -> None:
        """Wait until every session has ended."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not await self.rooms(http):
                return
            await asyncio.sleep(0.5)

    async def memory(self, http: aiohttp.ClientSession) -> dict:
        """PSS summed over every agent process; RSS of each bot worker; workers in use."""
        busy = {r["worker_pid"] for r in await self.room_list(http) if r.get("worker_pid")}
        agent = descendants(self.process.pid)
        # Workers are forked by the forkserver (the server's child), so they sit two below.
        top = (self.process.pid, None)
        workers = [pid for pid in agent if pid != self.process.pid and parent(pid) not in top]
        return {
            "pss": sum(rss_pss_mib(pid)[1] for pid in agent),
            "worker_rss": [rss_pss_mib(pid)[0] for pid in sorted(workers)],
            "workers_used": len(busy),
        }


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


async def measure_step(sessions: list[Session], server: Server, http) -> dict:
    """One window on every session at once: CPU, memory, audio round trips, pings."""
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
        "agent_cpu": cpu.agent,
        "busiest_cpu": cpu.busiest,
        "client_cpu": cpu.client,
        "machine_cpu": cpu.machine,
        "other_cpu": cpu.other,
        "seconds": cpu.seconds,
        **await server.memory(http),
        "bursts": bursts,
        "missed": bursts - len(latencies),
        "audio_p50": float(np.percentile(latencies, 50)) if latencies else float("nan"),
        "audio_p90": float(np.percentile(latencies, 90)) if latencies else float("nan"),
        "pings": sent,
        "lost": sent - len(rtts),
        "rtt_p50": float(np.percentile(rtts, 50)) if rtts else float("nan"),
        "rtt_p99": float(np.percentile(rtts, 99)) if rtts else float("nan"),
    }


async def idle(server: Server, http: aiohttp.ClientSession) -> dict:
    """The agent's CPU and memory with no session."""
    with CpuMeter(server.process.pid) as cpu:
        await asyncio.sleep(IDLE_SECS)
    return {"cpu": cpu.agent, **await server.memory(http)}


def verdict(step: dict, first: dict | None) -> str:
    """Why this step saturates something ('' when nothing is)."""
    reasons = []
    if step["busiest_cpu"] >= SATURATED_CPU:
        reasons.append("a worker's core")
    if step["machine_cpu"] >= SATURATED_CPU * CORES:
        reasons.append("every core")
    if step["missed"]:
        reasons.append("bursts missed")
    if first and step["audio_p50"] > LATENCY_FACTOR * first["audio_p50"]:
        reasons.append(f"audio > {LATENCY_FACTOR:g}x N=1")
    if not step["bursts"] and step["rtt_p99"] >= PONG_P99_MS:
        reasons.append(f"ping p99 >= {PONG_P99_MS:g} ms")
    if step["client_cpu"] >= SATURATED_CPU:
        reasons.append("client CPU")
    return ", ".join(reasons)


async def close_all(sessions: list[Session], server: Server, http: aiohttp.ClientSession) -> None:
    """Close every client and wait until the server has ended their bots."""
    await asyncio.gather(*(s.client.close() for s in sessions), return_exceptions=True)
    sessions.clear()
    await server.wait_empty(http)


async def ramp(
    kind: str, steps: list[int], server: Server, http: aiohttp.ClientSession
) -> list[dict]:
    """Add sessions step by step until something saturates; then close them all."""
    audio = kind == "loopback"
    url = f"{server.base}/api/offer?mode={kind}"
    sessions: list[Session] = []
    out: list[dict] = []
    try:
        for n in steps:
            await open_sessions(sessions, n, audio, url, http)
            step = await measure_step(sessions, server, http)
            for _ in range(RETRIES):
                if step["other_cpu"] <= DISTURBED_CPU:
                    break
                print(
                    f"N={n}: other CPU {step['other_cpu']:.0f} %, measured again", file=sys.stderr
                )
                step = await measure_step(sessions, server, http)
            step["verdict"] = verdict(step, out[0] if out and audio else None)
            out.append(step)
            print(_progress(server.label, kind, step), file=sys.stderr)
            if step["verdict"]:
                break
    finally:
        await close_all(sessions, server, http)
    return out


async def condition(
    spec: str, loopback_steps: list[int], pong_steps: list[int], log: str | None
) -> dict:
    """Both ramps against one agent: `spec` is the WORKERS value, `p` after it pins.

    Pinned, the agent runs on `PEER_CPUS` and the clients on `CLIENT_CPUS` (the old
    one-process method); otherwise both are scheduled over every core.
    """
    workers, pinned = int(spec.rstrip("p")), spec.endswith("p") and bool(PEER_CPUS)
    os.sched_setaffinity(0, CLIENT_CPUS if pinned else set(range(CORES)))
    server = Server(workers, pinned, max([*loopback_steps, *pong_steps]), log)
    try:
        async with aiohttp.ClientSession() as http:
            await server.wait_ready(http)
            out = {"label": server.label, "idle": await idle(server, http)}
            out["loopback"] = await ramp("loopback", loopback_steps, server, http)
            out["idle_after"] = await idle(server, http)
            out["pong"] = await ramp("pong", pong_steps, server, http)
            return out
    finally:
        server.stop()


async def measure(
    specs: list[str], loopback_steps: list[int], pong_steps: list[int], log: str | None
) -> list[dict]:
    """Every condition, one after the other, in one run."""
    configure_ice(["127.0.0.1"])
    return [await condition(spec, loopback_steps, pong_steps, log) for spec in specs]


def _progress(label: str, kind: str, step: dict) -> str:
    return (
        f"{label} {kind} N={step['n']}: agent {step['agent_cpu']:.0f} % "
        f"(busiest {step['busiest_cpu']:.0f} %), client {step['client_cpu']:.0f} %, "
        f"audio p50/p90 {step['audio_p50']:.1f}/{step['audio_p90']:.1f} ms, "
        f"missed {step['missed']}, ping p50/p99 {step['rtt_p50']:.2f}/{step['rtt_p99']:.2f} ms, "
        f"lost {step['lost']}" + (f" -> {step['verdict']}" if step["verdict"] else "")
    )


def held(data: dict) -> dict:
    """What one condition holds, by the issue's criteria.

    Loopback: the most sessions with nothing saturated and audio p90 within
    `KNEE_FACTOR` of N = 1. Pong: the most sessions with ping p99 < `PONG_P99_MS` and
    nothing saturated.
    """
    loopback, pong = data["loopback"], data["pong"]
    first = loopback[0]
    ok = [
        s
        for s in loopback
        if not s["verdict"] and s["audio_p90"] <= KNEE_FACTOR * first["audio_p90"]
    ]
    pongs = [s for s in pong if not s["verdict"]]
    k = ok[-1] if ok else None
    idle = data["idle"]
    return {
        "loopback": k["n"] if k else 0,
        "loopback_step": k,
        "loopback_cpu_per_session": (k["agent_cpu"] - idle["cpu"]) / k["n"] if k else float("nan"),
        "loopback_pss_per_session": (k["pss"] - idle["pss"]) / k["n"] if k else float("nan"),
        "pong": pongs[-1]["n"] if pongs else 0,
        "pong_untested_above": bool(pongs) and pongs[-1] is pong[-1],
        "pong_cpu_per_session": _pong_slope(data),
        "worker_rss": float(np.mean(idle["worker_rss"] or [float("nan")])),
    }


def _pong_slope(data: dict) -> float:
    """Agent CPU per pong session: slope of a line through idle and every pong step."""
    n = [0] + [s["n"] for s in data["pong"]]
    cpu = [data["idle_after"]["cpu"]] + [s["agent_cpu"] for s in data["pong"]]
    return float(np.polyfit(n, cpu, 1)[0]) if len(n) > 1 else float("nan")


def _table(steps: list[dict], audio: bool) -> list[str]:
    head = "| sessions | workers used | agent CPU | busiest process | client CPU | other CPU "
    head += "| agent PSS (MiB) | worker RSS (MiB) "
    if audio:
        head += "| audio RTT p50 (ms) | audio RTT p90 (ms) | bursts missed "
    head += "| ping RTT p50 (ms) | ping RTT p99 (ms) | pongs lost | saturated |"
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for s in steps:
        row = (
            f"| {s['n']} | {s['workers_used']} | {s['agent_cpu']:.1f} % | {s['busiest_cpu']:.1f} % "
            f"| {s['client_cpu']:.1f} % | {s['other_cpu']:.1f} % | {s['pss']:.0f} "
            f"| {' + '.join(f'{r:.0f}' for r in s['worker_rss'])} "
        )
        if audio:
            row += f"| {s['audio_p50']:.1f} | {s['audio_p90']:.1f} | {s['missed']}/{s['bursts']} "
        row += (
            f"| {s['rtt_p50']:.2f} | {s['rtt_p99']:.2f} | {s['lost']}/{s['pings']} "
            f"| {s['verdict'] or '-'} |"
        )
        lines.append(row)
    return lines


def report(results: list[dict]) -> str:
    """Every condition's ramps as Markdown tables, then the comparison."""
    lines = [
        "## Capacity: the worker pool against one bot process",
        "",
        f"{run_line()}, 127.0.0.1; agent and clients scheduled freely over the machine's "
        f"{CORES} cores (the pool needs every core), except where a condition says pinned "
        f"(agent on CPU {PEER_CPUS}, clients on CPU {CLIENT_CPUS}). Loopback ramp: every "
        f"session sends audio all the time, a {BurstSignal().burst.size}-sample tone burst every "
        f"{BURST_INTERVAL:g} s ({WINDOW_BURSTS} per window) and {1 / PING_INTERVAL:g} pings/s "
        f"({WINDOW_PINGS} per window). Pong ramp: no audio, {1 / PING_INTERVAL:g} pings/s per "
        "session. CPU in % of one core: agent = the server and all its workers, busiest = its "
        "busiest process, client = the benchmark's one client process, other = the rest of the "
        "machine. PSS sums every agent process (shared pages split); worker RSS is per worker "
        "holding a session.",
    ]
    summary = []
    for data in results:
        w = data["label"]
        h = held(data)
        idle = data["idle"]
        lines += [
            "",
            f"### {w}",
            "",
            f"Idle: agent {idle['cpu']:.1f} % CPU, {idle['pss']:.0f} MiB PSS.",
            "",
            *_table(data["loopback"], True),
            "",
            *_table(data["pong"], False),
        ]
        summary.append((w, h))
    lines += [
        "",
        "| agent | loopback sessions held (audio p90 within 10 % of N=1) "
        "| agent CPU per loopback session there | agent PSS per session (MiB) "
        f"| ping-only sessions with p99 < {PONG_P99_MS:g} ms | agent CPU per ping-only session "
        "| RSS per idle worker (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for w, h in summary:
        pong = f"{h['pong']}" + (" (ramp's last step)" if h["pong_untested_above"] else "")
        lines.append(
            f"| {w} | {h['loopback']} | {h['loopback_cpu_per_session']:.1f} % "
            f"| {h['loopback_pss_per_session']:.1f} | {pong} | {h['pong_cpu_per_session']:.2f} % "
            f"| {h['worker_rss']:.0f} |"
        )
    return "\n".join(lines)


def _counts(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n.strip()]


def main() -> None:
    """Run both ramps per condition and print (optionally append) the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workers",
        default="1p,1,2",
        help="conditions: WORKERS values, `p` after one pins agent and clients apart (1p,1,2)",
    )
    parser.add_argument("--max", type=int, default=60, help="most loopback sessions")
    parser.add_argument(
        "--loopback-steps",
        default="1,2,4,8,12,16,20,24,28,32,36,40,44,48,52,56,60",
        help="loopback session counts, comma separated (up to --max)",
    )
    parser.add_argument(
        "--pong-steps",
        default="50,100,200,300",
        help="pong session counts, comma separated (MAX_SESSIONS follows the largest)",
    )
    parser.add_argument("--server-log", help="write the server's output to this file")
    parser.add_argument("--markdown", help="append the report to this Markdown file")
    args = parser.parse_args()
    loopback = sorted(n for n in _counts(args.loopback_steps) if n <= args.max)
    specs = [w.strip() for w in args.workers.split(",") if w.strip()]
    if (
        not loopback
        or not specs
        or not all(w.rstrip("p").isdigit() and int(w.rstrip("p")) >= 1 for w in specs)
    ):
        parser.error("need a loopback step within --max and WORKERS >= 1")
    data = asyncio.run(measure(specs, loopback, sorted(_counts(args.pong_steps)), args.server_log))
    publish(report(data), args.markdown)


if __name__ == "__main__":
    main()
