"""What one flooding session costs another session's pings, with and without the rate bound.

Method (printed with the figures; issue 13 point 4):
- The agent (`server.py`) runs per condition, unpinned (scheduled as a deployment on
  this machine would be): `WORKERS=1` with the default bound (`MAX_MESSAGES_PER_SECOND`
  1000), `WORKERS=1` with the bound off (10**6), `WORKERS=2` with the default bound. With
  one worker both sessions share its event loop, the case the bound is for; with two the
  pool puts them on different workers and only the cores are shared.
- Two local WebRTC sessions: a probe (`pinger.PingClient`, pings at 50/s all run long)
  and a flooder in its own process (`--flooder`, pings at `--rate`/s, 2400 by default,
  in 10 ms ticks), which floods only during the flood windows.
- Windows of `--window` s alternate quiet / flood, `--blocks` pairs, the order swapped
  every pair (q f f q q f ...) so drift falls on both. The figure is the probe's RTT
  p99 in the flood windows over its p99 in the quiet windows, per condition, in one run
  (goal: < 2x on this 2-core machine). The flooder's answered rate shows what the bound
  let through.

    uv run python benchmarks/flood.py [--rate 2400] [--window 4] [--blocks 5] [--markdown FILE]
"""

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.peers import PeerProcess  # noqa: E402
from benchmarks.pinger import PingClient, percentile  # noqa: E402
from benchmarks.reports import publish, run_line  # noqa: E402
from ice_addresses import restrict_ice_addresses  # noqa: E402

PROBE_INTERVAL = 0.02
TICK = 0.01
CONDITIONS = [  # name, environment of the agent
    ("1 worker, bound 1000/s", {"WORKERS": "1"}),
    ("1 worker, bound off", {"WORKERS": "1", "MAX_MESSAGES_PER_SECOND": "1000000"}),
    ("2 workers, bound 1000/s", {"WORKERS": "2"}),
]


# -- the flooder process -----------------------------------------------------------------


async def flooder(offer_url: str, rate: int) -> None:
    """Connect, then flood while stdin says `on`; print what came back at stdin's end."""
    restrict_ice_addresses(["127.0.0.1"])
    client = FloodClient()
    async with aiohttp.ClientSession() as http:
        await client.connect(offer_url, http)
    print("ready", flush=True)
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    flooding: asyncio.Task | None = None
    while line := (await reader.readline()).decode().strip():
        if line == "on" and flooding is None:
            flooding = asyncio.create_task(client.flood(rate))
        elif line == "off" and flooding is not None:
            flooding.cancel()
            flooding = None
        print(line, flush=True)
    print(json.dumps(client.counts), flush=True)
    await client.close()


class FloodClient(PingClient):
    """A `PingClient` that sends pings as fast as told and only counts the replies."""

    def __init__(self):
        super().__init__("flooder")
        self.counts = {"sent": 0, "pongs": 0, "errors": 0}
        self._channel.remove_all_listeners("message")
        self._channel.on("message", self._count)

    def _count(self, message) -> None:
        data = json.loads(message)
        if data.get("type") == "pong":
            if data.get("seq", 0) < 0:
                self._probed.set()
            else:
                self.counts["pongs"] += 1
        elif data.get("type") == "error":
            self.counts["errors"] += 1

    async def flood(self, rate: int) -> None:
        """Send `rate` pings a second, in 10 ms ticks, until cancelled."""
        per_tick, start, tick = max(1, round(rate * TICK)), time.perf_counter(), 0
        while True:
            for _ in range(per_tick):
                self.counts["sent"] += 1
                self._channel.send(json.dumps({"type": "ping", "timestamp": time.time(), "seq": 1}))
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * TICK - time.perf_counter()))


# -- the benchmark -----------------------------------------------------------------------


async def send_line(process: asyncio.subprocess.Process, line: str) -> None:
    """Tell the flooder `line` and wait for its echo."""
    process.stdin.write(f"{line}\n".encode())
    await process.stdin.drain()
    while (await process.stdout.readline()).decode().strip() != line:
        pass


async def condition(name: str, env: dict, rate: int, window: float, blocks: int, http) -> dict:
    """One agent process: probe and flooder sessions, alternating quiet and flood windows."""
    server = PeerProcess(name, [sys.executable, "server.py"], env, pinned=False)
    probe = PingClient("probe")
    process = None
    try:
        await server.wait_ready(http)
        await probe.connect(server.offer_url(), http)
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--flooder", server.offer_url(), "--rate", str(rate),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        if (await process.stdout.readline()).decode().strip() != "ready":
            raise RuntimeError("the flooder did not connect")
        phases = ["quiet", "flood", "flood", "quiet"] * ((blocks + 1) // 2)
        windows = []
        seq, next_at = 0, time.perf_counter()
        for phase in phases[: 2 * blocks]:
            await send_line(process, "on" if phase == "flood" else "off")
            first, ends = seq, time.perf_counter() + window
            while time.perf_counter() < ends:
                probe.ping(seq)
                seq += 1
                next_at += PROBE_INTERVAL
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            windows.append((phase, first, seq))
        await send_line(process, "off")
        await asyncio.sleep(1.0)
        async with http.get(f"{server.base}/rooms") as response:
            rooms = (await response.json())["rooms"]
        process.stdin.close()
        counts = json.loads((await process.stdout.readline()).decode())
        await process.wait()
    finally:
        await probe.close()
        if process is not None and process.returncode is None:
            process.kill()
        server.stop()
    rtts = {"quiet": [], "flood": []}
    lost = {"quiet": 0, "flood": 0}
    for phase, first, end in windows:
        for k in range(first, end):
            rtt = probe.samples[k].rtt
            if rtt is None:
                lost[phase] += 1
            else:
                rtts[phase].append(rtt * 1000)
    flood_secs = window * blocks
    return {
        "name": name,
        "p50": {p: percentile(v, 50) for p, v in rtts.items()},
        "p99": {p: percentile(v, 99) for p, v in rtts.items()},
        "pings": {p: len(v) for p, v in rtts.items()},
        "lost": lost,
        "flooder": counts,
        "answered_per_sec": counts["pongs"] / flood_secs,
        "dropped": sum(r.get("messages_dropped", 0) for r in rooms),
    }


def report(results: list[dict], rate: int, window: float, blocks: int) -> str:
    """The Markdown report: the method line, one table row per condition."""
    lines = [
        "## Flood: another session's ping p99 with one session flooding (issue 13)",
        "",
        run_line(),
        f"`uv run python benchmarks/flood.py --rate {rate} --window {window:g} "
        f"--blocks {blocks}`: probe pings at 50/s; the flooder at {rate}/s in "
        f"{blocks} flood windows of {window:g} s alternating with as many quiet ones.",
        "",
        "| agent | probe p50 quiet / flood (ms) | probe p99 quiet / flood (ms) | p99 ratio "
        "| probe pongs lost | flooder answered /s | errors to flooder | dropped |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = r["p99"]["flood"] / r["p99"]["quiet"]
        lines.append(
            f"| {r['name']} | {r['p50']['quiet']:.2f} / {r['p50']['flood']:.2f} "
            f"| {r['p99']['quiet']:.2f} / {r['p99']['flood']:.2f} | **{ratio:.2f}x** "
            f"| {r['lost']['quiet']} / {r['lost']['flood']} | {r['answered_per_sec']:.0f} "
            f"| {r['flooder']['errors']} | {r['dropped']} |"
        )
    return "\n".join(lines)


async def measure(rate: int, window: float, blocks: int) -> list[dict]:
    """Every condition, one after the other."""
    restrict_ice_addresses(["127.0.0.1"])
    results = []
    async with aiohttp.ClientSession() as http:
        for name, env in CONDITIONS:
            result = await condition(name, env, rate, window, blocks, http)
            ratio = result["p99"]["flood"] / result["p99"]["quiet"]
            print(f"{name}: p99 ratio {ratio:.2f}", file=sys.stderr)
            results.append(result)
    return results


def main() -> None:
    """Run the benchmark (or, with `--flooder URL`, be its flooding client)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=2400, help="flooder pings/s (2400)")
    parser.add_argument("--window", type=float, default=4.0, help="seconds per window (4)")
    parser.add_argument("--blocks", type=int, default=5, help="quiet+flood window pairs (5)")
    parser.add_argument("--markdown", help="append the report to this Markdown file")
    parser.add_argument("--flooder", metavar="OFFER_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rate < 1 or args.window <= 0 or args.blocks < 1:
        parser.error("--rate, --window and --blocks must be positive")
    if args.flooder:
        asyncio.run(flooder(args.flooder, args.rate))
        return
    results = asyncio.run(measure(args.rate, args.window, args.blocks))
    publish(report(results, args.rate, args.window, args.blocks), args.markdown)


if __name__ == "__main__":
    main()
