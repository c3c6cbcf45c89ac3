"""Why the overhead figure depends on the method: one variable at a time, A/B in one run.

`benchmarks/overhead.py` once gave a ping p50 ratio of 1.13 (agent / bare aiortc echo)
where an independent check gave 1.05-1.07 on the same machine (issue 16). This script
starts the peers once, pinned to the peers' core: the echo agent (`server.py`, pong mode),
the bare echo peer (`bare_echo.py`, plain aiortc) and the same bare peer run after
importing `transports.webrtc` (Pipecat, its SCTP chunk size, the agent's patches), as
`bare_echo.py` was before. Every trial pings the agent and one bare peer at once,
interleaved, 50/s each (`pinger.py`), and gives one ratio of p50s.

The baseline is the independent check's method: the plain bare peer, one data-channel-only
connection per peer, 400 pings, the agent's ping first and the bare peer's 10 ms later,
`perf_counter` RTT, client on CPU 0 and peers on CPU 1. Each variant changes one thing.
Each round runs every condition once, the order rotated from round to round; a
condition's figure is the median over the rounds, with the min-max beside it. From the
baseline's own pings come the clock A/B (`time.time` RTT) and the aggregation A/B (the
p50 of all rounds' pings pooled, as one long run, against the median of the rounds'
ratios). The answer SDPs of both peers are compared too.

    uv run python benchmarks/method_ab.py [--rounds 3] [--only a,b] [--markdown FILE]
"""

import argparse
import asyncio
import contextlib
import dataclasses
import os
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.peers import CLIENT_CPUS, PEER_CPUS, PeerProcess, set_affinity  # noqa: E402
from benchmarks.pinger import PingClient, ping_interleaved, summarize  # noqa: E402
from benchmarks.reports import publish, run_line  # noqa: E402
from ice_addresses import restrict_ice_addresses  # noqa: E402

INTERVAL = 0.02
LOOPBACK_SECS = 1.5
PEER_COMMANDS = {
    "agent": ["server.py"],
    "bare": ["benchmarks/bare_echo.py"],
    "bare_pipecat": ["-m", "benchmarks.preimport", "transports.webrtc", "benchmarks/bare_echo.py"],
    "bare_async": ["benchmarks/bare_echo.py", "--listener", "async"],
    "bare_stock_send": ["benchmarks/bare_echo.py", "--send", "stock"],
}


@dataclass(frozen=True)
class Condition:
    """How one trial measures: which bare peer, order, length, audio, pinning, connections."""

    bare: str = "bare"
    first: str = "agent"
    pings: int = 400
    audio: bool = False
    pinned: bool = True
    connections: int = 1
    after_loopback: bool = False
    client_async: bool = False
    load: str = ""
    """"peers" or "client": a half-busy process on that core (others' tests, say)."""


VARIANTS: dict[str, tuple[dict, str]] = {
    "baseline": ({}, "the independent check's method"),
    "bare_imports_pipecat": (
        {"bare": "bare_pipecat"},
        "bare peer imports transports.webrtc first (Pipecat, SCTP chunk 1100, patches)",
    ),
    "bare_async_listener": (
        {"bare": "bare_async"},
        "the bare peer answers from a coroutine listener (a task after aiortc's SACK)",
    ),
    "bare_stock_send": (
        {"bare": "bare_stock_send"},
        "the bare peer leaves aiortc's SCTP flush to its own task (no eager send)",
    ),
    "client_async_listener": (
        {"client_async": True},
        "the client takes pongs in a coroutine listener (a task hop on every RTT)",
    ),
    "bare_first": ({"first": "bare"}, "the bare peer's ping first in each interval"),
    "pings_1000": ({"pings": 1000}, "1000 pings per run instead of 400"),
    "audio": ({"audio": True}, "the client sends audio (silence) to both peers"),
    "unpinned": ({"pinned": False}, "client and peers free on both cores"),
    "fresh_connections": (
        {"connections": 4},
        "a new connection every 100 pings (the old overhead.py's blocks)",
    ),
    "after_loopback": (
        {"after_loopback": True},
        "a loopback audio session on each peer just before (the old overhead.py's audio "
        "between blocks)",
    ),
    "load_peers": (
        {"load": "peers"},
        "a process busy half the time (3 ms on, 3 ms off) on the peers' core",
    ),
    "load_client": (
        {"load": "client"},
        "a process busy half the time (3 ms on, 3 ms off) on the client's core",
    ),
}

SPINNER = """
import time
while True:
    end = time.perf_counter() + 0.003
    while time.perf_counter() < end:
        pass
    time.sleep(0.003)
"""


@contextlib.contextmanager
def load(where: str):
    """A half-busy process pinned to the peers' or the client's core while in the block."""
    if not where or not CLIENT_CPUS:
        yield
        return
    cpus = PEER_CPUS if where == "peers" else CLIENT_CPUS
    spinner = subprocess.Popen(
        [sys.executable, "-c", SPINNER], preexec_fn=lambda: os.sched_setaffinity(0, cpus)
    )
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


def condition(name: str) -> Condition:
    """The baseline with variant `name`'s one change."""
    return dataclasses.replace(Condition(), **VARIANTS[name][0])


class Peers:
    """The peer processes, started once."""

    def __init__(self, names: set[str]):
        self.processes = {
            name: PeerProcess(name, [sys.executable, *PEER_COMMANDS[name]]) for name in names
        }

    async def wait_ready(self, http: aiohttp.ClientSession) -> None:
        """Wait until every peer answers `/health`."""
        for process in self.processes.values():
            await process.wait_ready(http)

    def pin(self, pinned: bool) -> None:
        """Client on `CLIENT_CPUS` and peers on `PEER_CPUS`, or everything on every core."""
        if not CLIENT_CPUS:
            return
        every = CLIENT_CPUS | PEER_CPUS
        set_affinity(os.getpid(), CLIENT_CPUS if pinned else every)
        for process in self.processes.values():
            set_affinity(process.process.pid, PEER_CPUS if pinned else every)

    def offer_url(self, name: str, query: str = "") -> str:
        """Where peer `name` takes offers."""
        return self.processes[name].offer_url(query)

    def stop(self) -> None:
        """Stop every peer."""
        for process in self.processes.values():
            process.stop()


async def loopback_session(peers: Peers, names: list[str], http: aiohttp.ClientSession) -> None:
    """An audio session on each named peer for `LOOPBACK_SECS`, all at once, then closed."""
    clients = [PingClient(name, audio=True) for name in names]
    try:
        for client in clients:
            query = "?mode=loopback" if client.name == "agent" else ""
            await client.connect(peers.offer_url(client.name, query), http)
        await asyncio.sleep(LOOPBACK_SECS)
    finally:
        for client in clients:
            await client.close()


async def trial(peers: Peers, cond: Condition, http: aiohttp.ClientSession) -> dict:
    """One interleaved ping run of the agent and `cond.bare`; samples and SDPs per role."""
    names = ["agent", cond.bare] if cond.first == "agent" else [cond.bare, "agent"]
    peers.pin(cond.pinned)
    samples: dict[str, list] = {"agent": [], "bare": []}
    answers: dict[str, str] = {}
    try:
        if cond.after_loopback:
            await loopback_session(peers, names, http)
        with load(cond.load):
            await ping_connections(peers, cond, names, http, samples, answers)
    finally:
        peers.pin(True)
    return {"samples": samples, "answers": answers}


async def ping_connections(
    peers: Peers, cond: Condition, names: list[str], http, samples: dict, answers: dict
) -> None:
    """`cond.connections` fresh connections in turn, `cond.pings` pings spread over them."""
    for _ in range(cond.connections):
        clients = [
            PingClient(name, audio=cond.audio, async_listener=cond.client_async) for name in names
        ]
        try:
            for client in clients:
                await client.connect(peers.offer_url(client.name), http)
            await ping_interleaved(clients, cond.pings // cond.connections, INTERVAL)
        finally:
            for client in clients:
                await client.close()
        for client in clients:
            role = "agent" if client.name == "agent" else "bare"
            samples[role] += client.answered()
            answers[role] = client.answer_sdp


def ratio(result: dict, key: str = "rtt_p50") -> float:
    """agent / bare of one figure of a trial."""
    agent, bare = summarize(result["samples"]["agent"]), summarize(result["samples"]["bare"])
    return agent[key] / bare[key]


async def measure(names: list[str], rounds: int) -> dict[str, list[dict]]:
    """Every condition `rounds` times, the order rotated each round."""
    restrict_ice_addresses(["127.0.0.1"])
    peers = Peers({"agent"} | {condition(name).bare for name in names})
    results: dict[str, list[dict]] = {name: [] for name in names}
    try:
        async with aiohttp.ClientSession() as http:
            await peers.wait_ready(http)
            peers.pin(True)
            for r in range(rounds):
                order = names[r % len(names) :] + names[: r % len(names)]
                for name in order:
                    result = await trial(peers, condition(name), http)
                    results[name].append(result)
                    print(
                        f"round {r + 1}/{rounds} {name}: ratio {ratio(result):.3f}",
                        file=sys.stderr,
                    )
    finally:
        peers.stop()
    return results


def sdp_lines(sdp: str) -> list[str]:
    """An answer SDP without what differs per connection (credentials, ports, ids)."""
    volatile = re.compile(
        r"^(o=|a=ice-ufrag|a=ice-pwd|a=fingerprint|a=candidate|a=msid|a=ssrc|a=group|"
        r"a=msid-semantic|a=end-of-candidates)"
    )
    lines = []
    for line in sdp.splitlines():
        if volatile.match(line):
            continue
        lines.append(
            re.sub(r"^m=(\w+) \d+", r"m=\1 PORT", re.sub(r"c=IN IP4 \S+", "c=IN IP4 X", line))
        )
    return lines


def spread(values: list[float]) -> str:
    """`median (min-max)`."""
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def report(results: dict[str, list[dict]], rounds: int) -> str:
    """The A/B table, the clock and aggregation A/B and the SDP comparison, in Markdown."""
    lines = [
        f"{run_line()}, 127.0.0.1; {rounds} rounds, every condition once per round (order "
        f"rotated); 50 pings/s per peer, interleaved; pinned: client CPU {CLIENT_CPUS}, "
        f"peers CPU {PEER_CPUS}.",
        "",
        "| condition | what changes | agent p50 (ms) | bare p50 (ms) | ratio per round "
        "| ratio median (min-max) | vs baseline | agent - bare (us) | net ratio median |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base = (
        statistics.median(ratio(r) for r in results.get("baseline", []))
        if ("baseline" in results)
        else None
    )
    for name, trials in results.items():
        ratios = [ratio(t) for t in trials]
        agent = statistics.median(summarize(t["samples"]["agent"])["rtt_p50"] for t in trials)
        bare = statistics.median(summarize(t["samples"]["bare"])["rtt_p50"] for t in trials)
        net = statistics.median(ratio(t, "net_p50") for t in trials)
        difference = statistics.median(
            1000
            * (
                summarize(t["samples"]["agent"])["rtt_p50"]
                - summarize(t["samples"]["bare"])["rtt_p50"]
            )
            for t in trials
        )
        delta = f"{statistics.median(ratios) - base:+.3f}" if base is not None else ""
        lines.append(
            f"| {name} | {VARIANTS[name][1]} | {agent:.3f} | {bare:.3f} | "
            f"{' '.join(f'{x:.3f}' for x in ratios)} | {spread(ratios)} | {delta} "
            f"| {difference:.0f} | {net:.3f} |"
        )
    if "baseline" in results:
        trials = results["baseline"]
        perf = [ratio(t) for t in trials]
        wall = [ratio(t, "rtt_wall_p50") for t in trials]
        pooled = {
            role: summarize([s for t in trials for s in t["samples"][role]])["rtt_p50"]
            for role in ("agent", "bare")
        }
        lines += [
            "",
            f"Baseline, clock: perf_counter RTT ratio {spread(perf)}, time.time RTT ratio "
            f"{spread(wall)} (same pings).",
            f"Baseline, aggregation: median of the {len(trials)} rounds' ratios "
            f"{statistics.median(perf):.3f}; all rounds' pings pooled as one run "
            f"{pooled['agent'] / pooled['bare']:.3f}.",
        ]
        answers = trials[0]["answers"]
        agent_sdp, bare_sdp = sdp_lines(answers["agent"]), sdp_lines(answers["bare"])
        only_agent = [x for x in agent_sdp if x not in bare_sdp]
        only_bare = [x for x in bare_sdp if x not in agent_sdp]
        lines.append(
            "Answer SDP to the data-channel-only offer (credentials, ports, ids left out): "
            + (
                "the same for both peers."
                if not only_agent and not only_bare
                else f"only the agent's: `{'`, `'.join(only_agent) or '-'}`; "
                f"only the bare peer's: `{'`, `'.join(only_bare) or '-'}`."
            )
        )
    return "\n".join(lines)


def main() -> None:
    """Run the A/B rounds and print (optionally append) the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--only", help=f"comma-separated conditions (default all: {', '.join(VARIANTS)})"
    )
    parser.add_argument("--markdown", help="append the report to this Markdown file")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown condition(s): {', '.join(unknown)}")
    results = asyncio.run(measure(names, args.rounds))
    publish(report(results, args.rounds), args.markdown)


if __name__ == "__main__":
    main()
