"""Where a ping's time goes inside the echo agent and inside the bare aiortc peer.

Runs both peers under `benchmarks/stage_probe.py`, pings each (in alternating blocks,
50/s, 127.0.0.1) with echo-bench's aiortc client, and prints the median time of each
stage from the ping's UDP datagram in to the pong's UDP datagram out, per peer.

    uv run python benchmarks/ping_stages.py [--pings 1000] [--markdown FILE]
"""

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.peers import CLIENT_CPUS, PEER_CPUS, PeerProcess, pin_client  # noqa: E402
from benchmarks.reports import publish, run_line  # noqa: E402
from benchmarks.stage_probe import STAGES  # noqa: E402
from echo_bench.clients import configure_ice  # noqa: E402
from echo_bench.ping import ping_offer_url  # noqa: E402

BLOCKS = 10
PEERS = {"agent": "server.py", "bare": "benchmarks/bare_echo.py"}


async def measure(pings: int, out: Path) -> dict:
    """Stage medians per peer, from the probes' files."""
    configure_ice(["127.0.0.1"])
    pin_client()
    peers = {
        name: PeerProcess(
            name,
            [sys.executable, "-m", "benchmarks.stage_probe", script],
            env={"STAGE_PROBE_OUT": str(out / f"{name}.json")},
        )
        for name, script in PEERS.items()
    }
    try:
        async with aiohttp.ClientSession() as http:
            for peer in peers.values():
                await peer.wait_ready(http)
            for block in range(BLOCKS):
                for name in sorted(peers, reverse=block % 2 == 1):
                    await ping_offer_url(
                        peers[name].offer_url(), http, count=pings // BLOCKS, interval=0.02
                    )
    finally:
        for peer in peers.values():
            peer.stop()
    return {name: json.loads((out / f"{name}.json").read_text()) for name in peers}


def report(stages: dict, pings: int) -> str:
    """The medians as a Markdown table, with date and machine."""
    lines = [
        f"{run_line()}, 127.0.0.1; {pings} pings at 50/s per peer, blocks alternating; "
        f"client pinned to CPU {CLIENT_CPUS}, peers to CPU {PEER_CPUS}.",
        "",
        "| stage (median, us) | echo agent | bare aiortc | agent - bare |",
        "|---|---|---|---|",
    ]
    totals = {"agent": 0.0, "bare": 0.0}
    for stage, label in STAGES.items():
        agent, bare = stages["agent"][stage]["median_us"], stages["bare"][stage]["median_us"]
        totals["agent"] += agent
        totals["bare"] += bare
        lines.append(f"| {label} | {agent:.0f} | {bare:.0f} | {agent - bare:+.0f} |")
    agent, bare = totals["agent"], totals["bare"]
    lines.append(f"| sum | {agent:.0f} | {bare:.0f} | {agent - bare:+.0f} |")
    return "\n".join(lines)


def main() -> None:
    """Run the probes and print (optionally append) the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pings", type=int, default=1000)
    parser.add_argument("--markdown", help="append the table to this Markdown file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        text = report(asyncio.run(measure(args.pings, Path(out))), args.pings)
    publish(text, args.markdown)


if __name__ == "__main__":
    main()
