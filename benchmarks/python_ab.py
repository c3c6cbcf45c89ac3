"""The echo agent under other Python versions, A/B against the project's, in one run.

Issue 15 point 4. The agent (`server.py`, pong mode) runs once per interpreter given, the
bare aiortc echo (`bare_echo.py`) under this benchmark's own interpreter as the common
reference; everything else is `overhead.py`'s method: peers pinned to one core, the
client to the other, a fresh data-channel-only connection per peer and run, pings at 50/s
interleaved across all peers, the order rotated from run to run, the peer processes
started `--starts` times. Per interpreter: the median over the runs of agent p50 / bare
p50 (raw and net), with the min-max spread. An interpreter's environment is made with

    UV_PROJECT_ENVIRONMENT=/tmp/venv-3.12 uv sync --locked --python 3.12

    uv run python benchmarks/python_ab.py --python 3.12=/tmp/venv-3.12/bin/python \
        [--python 3.13=...] [--runs 12] [--pings 200] [--starts 3] [--markdown FILE]

PATH may also be a script that runs another checkout of the agent under this project's
interpreter (`cd /tmp/old && exec /path/to/.venv/bin/python "$@"`): an A/B of two
versions of the agent in one run.
"""

import argparse
import asyncio
import statistics
import subprocess
import sys
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.overhead import PING_INTERVAL, ping_run, spread  # noqa: E402
from benchmarks.peers import CLIENT_CPUS, PEER_CPUS, PeerProcess, pin_client  # noqa: E402
from benchmarks.reports import publish, run_line  # noqa: E402
from ice_addresses import restrict_ice_addresses  # noqa: E402


def version(python: str) -> str:
    """`3.12.1` for an interpreter's path."""
    out = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


async def measure(agents: dict[str, str], runs: int, pings: int, starts: int) -> list[dict]:
    """Every run: each agent and the bare peer, interleaved, the order rotated."""
    restrict_ice_addresses(["127.0.0.1"])
    pin_client()
    names = [*agents, "bare"]
    results = []
    async with aiohttp.ClientSession() as http:
        for start in range(starts):
            peers = {
                name: PeerProcess(name, [python, "server.py"]) for name, python in agents.items()
            }
            peers["bare"] = PeerProcess("bare", [sys.executable, "benchmarks/bare_echo.py"])
            try:
                for peer in peers.values():
                    await peer.wait_ready(http)
                for run in range(start * runs // starts, (start + 1) * runs // starts):
                    shift = run % len(names)
                    order = names[shift:] + names[:shift]
                    result = await ping_run(peers, order, pings, http)
                    results.append(result)
                    print(
                        f"run {run + 1}/{runs}: "
                        + ", ".join(
                            f"{name} {result[name]['rtt_p50'] / result['bare']['rtt_p50']:.3f}"
                            for name in agents
                        ),
                        file=sys.stderr,
                    )
            finally:
                for peer in peers.values():
                    peer.stop()
    return results


def report(results: list[dict], agents: dict[str, str], runs: int, pings: int, starts: int) -> str:
    """The method and one row per interpreter, as Markdown."""
    lines = [
        f"{run_line()}, 127.0.0.1.",
        "",
        f"`benchmarks/python_ab.py`: {runs} runs x {pings} pings per peer at 50/s, all "
        f"{len(agents) + 1} peers interleaved ({PING_INTERVAL * 1000 / (len(agents) + 1):.1f} "
        f"ms apart), the order rotated per run, processes started {starts} times; peers on "
        f"CPU {PEER_CPUS}, client on CPU {CLIENT_CPUS}; bare peer under Python "
        f"{version(sys.executable)}.",
        "",
        "| agent | ping RTT p50 (ms) | agent/bare p50: median (min-max) "
        "| net RTT p50 (ms) | net agent/bare | hold p50 (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for name, python in agents.items():

        def ratios(key, name=name):
            return [r[name][key] / r["bare"][key] for r in results]

        def median(key, name=name):
            return statistics.median(r[name][key] for r in results)

        lines.append(
            f"| {name} (Python {version(python)}) | {median('rtt_p50'):.3f} "
            f"| {spread(ratios('rtt_p50'))} "
            f"| {median('net_p50'):.3f} | {spread(ratios('net_p50'))} | {median('hold_p50'):.3f} |"
        )
    bare = statistics.median(r["bare"]["rtt_p50"] for r in results)
    lines.append(f"| bare aiortc (reference) | {bare:.3f} | 1 | | | |")
    return "\n".join(lines)


def main() -> None:
    """Run the A/B and print (optionally append) the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="another interpreter for the agent (repeatable)",
    )
    parser.add_argument("--runs", type=int, default=12, help="ping runs (12)")
    parser.add_argument("--pings", type=int, default=200, help="pings per peer and run (200)")
    parser.add_argument("--starts", type=int, default=3, help="process starts (3)")
    parser.add_argument("--markdown", help="append the report to this Markdown file")
    args = parser.parse_args()
    agents = {f"agent {version(sys.executable)}": sys.executable}
    for item in args.python:
        label, sep, path = item.partition("=")
        if not sep or not Path(path).exists():
            parser.error(f"--python wants LABEL=PATH to an interpreter, got {item!r}")
        agents[f"agent {label}"] = path
    if args.runs < 1 or args.pings < 1 or not 1 <= args.starts <= args.runs:
        parser.error("--runs and --pings must be positive, --starts between 1 and --runs")
    results = asyncio.run(measure(agents, args.runs, args.pings, args.starts))
    publish(report(results, agents, args.runs, args.pings, args.starts), args.markdown)


if __name__ == "__main__":
    main()
