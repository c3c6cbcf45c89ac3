"""What the echo agent adds over a bare aiortc echo peer, measured on 127.0.0.1.

Method (printed with the figures; why each part: `benchmarks/RESULTS.md`, issue 16):
- Symmetric peers: the agent (`server.py`, pong mode) and `bare_echo.py` (plain aiortc,
  no Pipecat, same pong fields), each its own process, both pinned to one core; the
  client (`pinger.py`, plain aiortc, no Pipecat either) pinned to the other core.
- One data-channel-only connection per peer and run, made fresh for every run; no audio
  on the ping connections (audio to one peer and not the other moves the ratio 0.9-1.4).
- `--pings` pings per peer and run at 50/s, interleaved: one peer's ping half an interval
  (10 ms) after the other's, so both see the machine in the same state. Which peer goes
  first alternates from run to run.
- The peer processes are started `--starts` times, the runs split between the starts: a
  process instance can sit a few hundredths off for its whole life (memory layout, which
  worker takes the bot), so one start is one sample too.
- `--runs` runs; a run's figure is agent p50 / bare p50 of its RTTs (`perf_counter`).
  The headline is the median of the runs' ratios, printed with their min-max spread
  (one run's ratio moves by several hundredths from connection to connection).
- Net ratio: per ping, net RTT = RTT - (server_send_time - server_receive_time) from
  that peer's own pong; p50 agent net / p50 bare net, median over the runs (issue 15).
- Audio round trip (agent in `loopback` mode against the bare peer, which echoes any
  audio): `--bursts` tone bursts per peer in silence, alternating in blocks, detected
  in the returned audio (both jitter buffers and Opus codecs included).

    uv run python benchmarks/overhead.py [--runs 20] [--pings 200] [--starts 4] [--bursts 20]
        [--markdown FILE]
"""

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.peers import CLIENT_CPUS, PEER_CPUS, PeerProcess, pin_client  # noqa: E402
from benchmarks.pinger import PingClient, ping_interleaved, summarize  # noqa: E402
from benchmarks.reports import StealMeter, publish, run_line  # noqa: E402
from echo_bench.bursts import measure_audio_roundtrip  # noqa: E402
from ice_addresses import restrict_ice_addresses  # noqa: E402

PING_INTERVAL = 0.02
AUDIO_BLOCKS = 4
PEERS = ("agent", "bare")


async def ping_run(peers: dict[str, PeerProcess], order: list[str], pings: int, http) -> dict:
    """One run: a fresh data-channel connection per peer, pinged interleaved in `order`."""
    clients = [PingClient(name) for name in order]
    try:
        for client in clients:
            await client.connect(peers[client.name].offer_url(), http)
        await ping_interleaved(clients, pings, PING_INTERVAL)
    finally:
        for client in clients:
            await client.close()
    return {client.name: summarize(client.answered()) for client in clients}


def start_peers() -> dict[str, PeerProcess]:
    """The agent and the bare peer, each a new process."""
    return {
        "agent": PeerProcess("agent", [sys.executable, "server.py"]),
        "bare": PeerProcess("bare", [sys.executable, "benchmarks/bare_echo.py"]),
    }


async def measure(runs: int, pings: int, bursts: int, starts: int) -> dict:
    """Ping runs over `starts` fresh pairs of peer processes, then audio bursts.

    The order alternates from run to run; the audio blocks run on the last pair.
    """
    restrict_ice_addresses(["127.0.0.1"])
    pin_client()
    results, audio = [], {name: [] for name in PEERS}
    async with aiohttp.ClientSession() as http:
        for start in range(starts):
            peers = start_peers()
            try:
                for peer in peers.values():
                    await peer.wait_ready(http)
                for run in range(start * runs // starts, (start + 1) * runs // starts):
                    order = list(PEERS) if run % 2 == 0 else list(reversed(PEERS))
                    result = await ping_run(peers, order, pings, http)
                    result["first"], result["start"] = order[0], start
                    results.append(result)
                    ratio = result["agent"]["rtt_p50"] / result["bare"]["rtt_p50"]
                    print(
                        f"run {run + 1}/{runs} (processes {start + 1}/{starts}, {order[0]} "
                        f"first): ratio {ratio:.3f}",
                        file=sys.stderr,
                    )
                if start == starts - 1:
                    await measure_audio(peers, bursts, http, audio)
            finally:
                for peer in peers.values():
                    peer.stop()
    return {"runs": results, "audio": audio, "starts": starts}


async def measure_audio(peers: dict[str, PeerProcess], bursts: int, http, audio: dict) -> None:
    """`bursts` audio bursts per peer, the peers alternating in blocks (agent in loopback)."""
    for block in range(AUDIO_BLOCKS if bursts else 0):
        for name in PEERS if block % 2 == 0 else reversed(PEERS):
            query = "?mode=loopback" if name == "agent" else ""
            result = await measure_audio_roundtrip(
                peers[name].offer_url(query),
                http,
                count=max(1, bursts // AUDIO_BLOCKS),
                interval=0.5,
            )
            audio[name] += [b.latency for b in result.bursts if b.latency is not None]


def figures(data: dict) -> dict:
    """Per-run ratios and their median and spread; p50s; audio round trip figures."""
    runs = data["runs"]

    def ratios(key):
        return [r["agent"][key] / r["bare"][key] for r in runs]

    def median(role, key):
        return statistics.median(r[role][key] for r in runs)

    out = {
        "ratio": ratios("rtt_p50"),
        "net_ratio": ratios("net_p50"),
        "p99_ratio": ratios("rtt_p99"),
        "difference_us": [1000 * (r["agent"]["rtt_p50"] - r["bare"]["rtt_p50"]) for r in runs],
        "per_start": [
            statistics.median(
                r["agent"]["rtt_p50"] / r["bare"]["rtt_p50"] for r in runs if r["start"] == start
            )
            for start in range(data["starts"])
            if any(r["start"] == start for r in runs)
        ],
        "per_order": {
            first: [
                r["agent"]["rtt_p50"] / r["bare"]["rtt_p50"] for r in runs if r["first"] == first
            ]
            for first in PEERS
        },
    }
    for role in PEERS:
        out[role] = {
            key: median(role, key) for key in ("rtt_p50", "rtt_p99", "net_p50", "hold_p50")
        }
        out[role]["pongs"] = sum(r[role]["pongs"] for r in runs)
        audio = np.array(data["audio"][role]) * 1000
        out[role]["bursts"] = len(audio)
        out[role]["audio_p50"] = float(np.percentile(audio, 50)) if len(audio) else float("nan")
        out[role]["audio_mean"] = float(np.mean(audio)) if len(audio) else float("nan")
    out["audio_ratio"] = {
        key: out["agent"][key] / out["bare"][key] for key in ("audio_p50", "audio_mean")
    }
    return out


def spread(values: list[float]) -> str:
    """`median (min-max)` of a list of ratios."""
    if not values:
        return "-"
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def spread_us(values: list[float]) -> str:
    """`median (min-max)` of a list of microsecond figures."""
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def report(result: dict, runs: int, pings: int, bursts: int, starts: int) -> str:
    """The method and the figures, as Markdown."""
    agent, bare = result["agent"], result["bare"]
    audio = result["audio_ratio"]
    pings_total = runs * pings
    lines = [
        f"{run_line()}, 127.0.0.1.",
        "",
        f"Method: {runs} runs x {pings} pings per peer at 50/s, interleaved (10 ms apart), "
        "the first peer alternating between runs; a fresh data-channel-only connection per "
        f"peer and run, no audio; the peer processes started {starts} times (the runs split "
        "evenly between the starts); agent (`server.py`, pong mode) and bare aiortc echo "
        "(`bare_echo.py`, no Pipecat) pinned to CPU "
        f"{PEER_CPUS}, client (plain aiortc) to CPU {CLIENT_CPUS}; RTT on perf_counter; "
        "ratio = agent p50 / bare p50 per run, median over the runs (min-max); net RTT = "
        "RTT - (server_send_time - server_receive_time) of each peer's pong. "
        f"Audio: {bursts} bursts per peer, agent in loopback mode, in {AUDIO_BLOCKS} "
        "alternating blocks.",
        "",
        "| figure | echo agent | bare aiortc | agent/bare: median (min-max over runs) | target |",
        "|---|---|---|---|---|",
        f"| pongs received | {agent['pongs']}/{pings_total} | {bare['pongs']}/{pings_total} | | |",
        f"| **ping RTT p50 (ms)** | {agent['rtt_p50']:.3f} | {bare['rtt_p50']:.3f} "
        f"| **{spread(result['ratio'])}** | <= 1.10 |",
        f"| ping RTT p50 agent - bare (us) | | | {spread_us(result['difference_us'])} | |",
        "| ping RTT p50 ratio per start of the processes (median of its runs) | | | "
        + " / ".join(f"{x:.3f}" for x in result["per_start"])
        + " | |",
        f"| ping RTT p50, agent first / bare first | | "
        f"| {spread(result['per_order']['agent'])} / {spread(result['per_order']['bare'])} | |",
        f"| hold (server_send - server_receive) p50 (ms) | {agent['hold_p50']:.3f} "
        f"| {bare['hold_p50']:.3f} | | |",
        f"| **net ping RTT p50 (ms)** | {agent['net_p50']:.3f} | {bare['net_p50']:.3f} "
        f"| **{spread(result['net_ratio'])}** | <= 1.03 |",
        f"| ping RTT p99 (ms) | {agent['rtt_p99']:.3f} | {bare['rtt_p99']:.3f} "
        f"| {spread(result['p99_ratio'])} | |",
        f"| bursts detected | {agent['bursts']} | {bare['bursts']} | | |",
        f"| audio round trip p50 (ms) | {agent['audio_p50']:.1f} | {bare['audio_p50']:.1f} "
        f"| {audio['audio_p50']:.3f} | <= 1.10 |",
        f"| audio round trip mean (ms) | {agent['audio_mean']:.1f} | {bare['audio_mean']:.1f} "
        f"| {audio['audio_mean']:.3f} | |",
        "",
        "Per-run ratios: " + " ".join(f"{x:.3f}" for x in result["ratio"]) + ".",
    ]
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark and print (optionally append) the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20, help="ping runs (default 20)")
    parser.add_argument("--pings", type=int, default=200, help="pings per peer and run (200)")
    parser.add_argument("--bursts", type=int, default=20, help="audio bursts per peer (0: none)")
    parser.add_argument(
        "--starts", type=int, default=4, help="times the peer processes are started (4)"
    )
    parser.add_argument("--markdown", help="append the report to this Markdown file")
    args = parser.parse_args()
    if args.runs < 1 or args.pings < 1 or args.bursts < 0 or not 1 <= args.starts <= args.runs:
        parser.error(
            "--runs and --pings must be positive, --bursts not negative, "
            "--starts between 1 and --runs"
        )
    with StealMeter() as steal:
        data = asyncio.run(measure(args.runs, args.pings, args.bursts, args.starts))
    text = report(figures(data), args.runs, args.pings, args.bursts, args.starts)
    publish(f"{text}\n\n{steal.line()}", args.markdown)


if __name__ == "__main__":
    main()
