"""What the echo agent adds over a bare aiortc echo peer, measured in one run on 127.0.0.1.

Both peers run as their own processes and are measured by the same aiortc client
(echo-bench's): ping RTT over `--pings` pings at 50/s to each, and audio round trip
over `--bursts` tone bursts sent in silence (detected in the returned audio). Pings go
to both peers at once, alternating (one peer's ping half an interval after the
other's), so both see the machine in the same state; audio alternates between the
peers in blocks. The ratios agent/bare are what to read.

    uv run python benchmarks/overhead.py [--pings 1000] [--bursts 20] [--markdown FILE]
"""

import argparse
import asyncio
import sys
from pathlib import Path

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.peers import CLIENT_CPUS, PEER_CPUS, PeerProcess, pin_client  # noqa: E402
from benchmarks.reports import publish, run_line  # noqa: E402
from echo_bench.bursts import measure_audio_roundtrip  # noqa: E402
from echo_bench.clients import WebRTCBenchClient, configure_ice, wait_for_pong  # noqa: E402
from echo_bench.ping import run_pings  # noqa: E402

PING_INTERVAL = 0.02
BLOCKS = 10


async def ping_both(offer_urls: dict[str, str], http: aiohttp.ClientSession, count: int) -> dict:
    """Ping every peer `count` times at 50/s on its own connection, at the same time.

    The peers' pings interleave: the second peer's go half an interval after the
    first's, so a round trip (~1 ms) never overlaps another. Returns RTTs per peer.
    """
    clients = {name: WebRTCBenchClient() for name in offer_urls}
    try:
        for name, client in clients.items():
            await client.connect(offer_urls[name], http)
            await wait_for_pong(client, 30.0)

        async def pings(client: WebRTCBenchClient, delay: float):
            await asyncio.sleep(delay)
            return await run_pings(client, count, PING_INTERVAL)

        logs = await asyncio.gather(
            *(pings(c, i * PING_INTERVAL / 2) for i, c in enumerate(clients.values()))
        )
    finally:
        for client in clients.values():
            await client.close()
    return {
        name: [s.rtt for s in log.ordered() if s.rtt is not None]
        for name, log in zip(clients, logs, strict=True)
    }


async def measure(pings: int, bursts: int) -> dict:
    """Ping RTTs and audio round trips of both peers, in blocks."""
    configure_ice(["127.0.0.1"])
    pin_client()
    agent = PeerProcess("agent", [sys.executable, "server.py"])
    bare = PeerProcess("bare", [sys.executable, "benchmarks/bare_echo.py"])
    peers = {"agent": (agent, "?mode=loopback"), "bare": (bare, "")}
    rtts = {"agent": [], "bare": []}
    block_p50 = {"agent": [], "bare": []}
    audio = {"agent": [], "bare": []}
    try:
        async with aiohttp.ClientSession() as http:
            await agent.wait_ready(http)
            await bare.wait_ready(http)
            for block in range(BLOCKS):
                # Which peer goes first alternates from block to block.
                order = ["agent", "bare"] if block % 2 == 0 else ["bare", "agent"]
                offer_urls = {name: peers[name][0].offer_url() for name in order}
                block_rtts = await ping_both(offer_urls, http, pings // BLOCKS)
                for name in order:
                    rtts[name] += block_rtts[name]
                    block_p50[name].append(float(np.percentile(block_rtts[name], 50)))
                    peer, query = peers[name]
                    result = await measure_audio_roundtrip(
                        peer.offer_url(query), http, count=bursts // BLOCKS, interval=0.5
                    )
                    audio[name] += [b.latency for b in result.bursts if b.latency is not None]
                print(f"block {block + 1}/{BLOCKS} done", file=sys.stderr)
    finally:
        agent.stop()
        bare.stop()
    return {"rtts": rtts, "block_p50": block_p50, "audio": audio}


def figures(data: dict) -> dict:
    """p50/p99 RTT, audio round trip p50/mean, counts, and the ratios agent/bare."""
    out = {}
    for name in ("agent", "bare"):
        rtt = np.array(data["rtts"][name]) * 1000
        audio = np.array(data["audio"][name]) * 1000
        out[name] = {
            "pongs": len(rtt),
            "rtt_p50": float(np.percentile(rtt, 50)),
            "rtt_p99": float(np.percentile(rtt, 99)),
            "bursts": len(audio),
            "audio_p50": float(np.percentile(audio, 50)) if len(audio) else float("nan"),
            "audio_mean": float(np.mean(audio)) if len(audio) else float("nan"),
        }
    out["ratio"] = {
        key: out["agent"][key] / out["bare"][key]
        for key in ("rtt_p50", "rtt_p99", "audio_p50", "audio_mean")
    }
    # The same figure block by block: how much the machine's noise moves it within one run.
    block_ratios = np.array(data["block_p50"]["agent"]) / np.array(data["block_p50"]["bare"])
    out["block_ratio"] = {
        "min": float(block_ratios.min()),
        "median": float(np.median(block_ratios)),
        "max": float(block_ratios.max()),
    }
    return out


def report(result: dict, pings: int, bursts: int) -> str:
    """The figures as a Markdown table, with date and machine."""
    agent, bare, ratio = result["agent"], result["bare"], result["ratio"]
    blocks = result["block_ratio"]
    lines = [
        f"{run_line()}, 127.0.0.1; {pings} pings at 50/s (interleaved) and {bursts} "
        f"audio bursts per peer; client pinned to CPU {CLIENT_CPUS}, peers to CPU {PEER_CPUS}.",
        "",
        "| figure | echo agent | bare aiortc | agent/bare | target |",
        "|---|---|---|---|---|",
        f"| pongs received | {agent['pongs']} | {bare['pongs']} | | |",
        f"| ping RTT p50 (ms) | {agent['rtt_p50']:.3f} | {bare['rtt_p50']:.3f} "
        f"| {ratio['rtt_p50']:.3f} | <= 1.10 |",
        f"| ping RTT p50 ratio per block (min / median / max) | | | "
        f"{blocks['min']:.2f} / {blocks['median']:.2f} / {blocks['max']:.2f} | |",
        f"| ping RTT p99 (ms) | {agent['rtt_p99']:.3f} | {bare['rtt_p99']:.3f} "
        f"| {ratio['rtt_p99']:.3f} | |",
        f"| bursts detected | {agent['bursts']} | {bare['bursts']} | | |",
        f"| audio round trip p50 (ms) | {agent['audio_p50']:.1f} | {bare['audio_p50']:.1f} "
        f"| {ratio['audio_p50']:.3f} | <= 1.10 |",
        f"| audio round trip mean (ms) | {agent['audio_mean']:.1f} | {bare['audio_mean']:.1f} "
        f"| {ratio['audio_mean']:.3f} | |",
    ]
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark and print (optionally append) the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pings", type=int, default=1000)
    parser.add_argument("--bursts", type=int, default=20)
    parser.add_argument("--markdown", help="append the report to this Markdown file")
    args = parser.parse_args()
    data = asyncio.run(measure(args.pings, args.bursts))
    publish(report(figures(data), args.pings, args.bursts), args.markdown)


if __name__ == "__main__":
    main()
