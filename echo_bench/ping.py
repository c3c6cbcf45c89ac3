"""`echo-bench ping`: app-message round trips through the echo agent, per platform.

The reusable parts: `run_pings(client, ...)` on any joined `BenchClient`,
`ping_session(server, platform, ...)` for one room made by `/connect`, and
`ping_offer_url(offer_url, http, ...)` for any peer that answers the echo agent's
offer protocol (the echo agent's own offer URL, or a bare aiortc echo peer).
"""

import argparse
import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from echo_bench.clients import (
    BenchClient,
    BenchError,
    SessionInfo,
    offer_session,
    open_session,
    send,
    wait_until_answering,
)
from echo_bench.options import (
    add_connection_arguments,
    now_iso,
    positive_float,
    positive_int,
    progress_bar,
    run_command,
)
from echo_bench.output import PING_ROWS, setup_table, summary_table, write_csv, write_json
from echo_bench.stats import PingLog, one_way, session_offset, summarize, summarize_setup
from echo_bench.wire import RTVI, SEED, Wire

__all__ = [
    "PingRun",
    "add_parser",
    "ping_offer_url",
    "ping_result",
    "ping_session",
    "ping_sessions",
    "run_pings",
]


@dataclass
class PingRun:
    """The pings of one session.

    Attributes:
        log: Every ping and the pong matched to it.
        room: The room (or peer connection) the session ran in.
        connect_to_first_pong: Seconds from `/connect` (or the offer) to the first
            pong; None when the run did not wait for one.
        setup: Seconds per setup phase (`SessionInfo.setup`).
        repeat: Which `--repeat` run the session belongs to, from 0.
    """

    log: PingLog
    room: str = ""
    connect_to_first_pong: float | None = None
    setup: dict[str, float] = field(default_factory=dict)
    repeat: int = 0

    def summary(self) -> dict:
        """The session's figures (times in ms)."""
        summary = summarize([self.log])
        summary["connect_to_first_pong_ms"] = _ms(self.connect_to_first_pong)
        summary["setup_ms"] = {phase: _ms(seconds) for phase, seconds in self.setup.items()}
        return summary


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000.0


def _is_probe_reply(message: dict) -> bool:
    """A reply to one of `wait_for_pong`'s probes (negative seq), late or repeated."""
    seq = message.get("seq")
    return isinstance(seq, int) and not isinstance(seq, bool) and seq < 0


async def run_pings(
    client: BenchClient,
    count: int,
    interval: float,
    pong_timeout: float = 5.0,
    *,
    wire: Wire = SEED,
    on_sent: Callable[[], None] | None = None,
) -> PingLog:
    """Send `count` pings (seq 0..count-1) every `interval` s and match the pongs.

    Returns when every ping is answered or `pong_timeout` s after the last one.
    Replies are matched by `seq` (see `PingLog`); round trips use
    `time.perf_counter()`.
    """
    log = PingLog(timeout=pong_timeout)
    settled = asyncio.Event()

    async def receive():
        while True:
            arrival, message = await client.next_message()
            reply = wire.reply(message)
            if reply is None or _is_probe_reply(reply):
                continue
            log.received(arrival, reply)
            if log.answered == count:
                settled.set()

    receiver = asyncio.create_task(receive())
    try:
        start = time.perf_counter()
        for seq in range(count):
            wait = start + seq * interval - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            sent_time = time.time()
            message = wire.ping(seq, sent_time)
            log.sent(seq, sent_time, time.perf_counter())
            await send(client, message)
            if on_sent:
                on_sent()
        last = max((s.sent_perf for s in log.samples.values()), default=time.perf_counter())
        remaining = last + pong_timeout - time.perf_counter()
        if not settled.is_set() and remaining > 0:
            try:
                await asyncio.wait_for(settled.wait(), remaining)
            except TimeoutError:
                pass
    finally:
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
    return log


async def ping_session(
    server: str,
    platform: str,
    http: aiohttp.ClientSession,
    count: int,
    interval: float,
    pong_timeout: float = 5.0,
    *,
    join_timeout: float = 30.0,
    wire: Wire = SEED,
    on_sent: Callable[[], None] | None = None,
) -> PingRun:
    """`/connect` a pong room on `platform`, join it, wait for the bot and ping it.

    With `wire=RTVI` the client first asks for `bot-ready` and pings in RTVI messages.

    Raises:
        BenchError: the room could not be made or joined, or the bot never answered.
    """
    client, info = await open_session(server, platform, "pong", http, join_timeout=join_timeout)
    try:
        await wait_until_answering(client, info, join_timeout, wire)
        log = await run_pings(client, count, interval, pong_timeout, wire=wire, on_sent=on_sent)
    finally:
        await client.close()
    return _run(log, info)


def _run(log: PingLog, info: SessionInfo) -> PingRun:
    return PingRun(log, info.room, info.setup.get("total"), info.setup)


async def ping_sessions(
    server: str,
    platform: str,
    count: int,
    interval: float,
    pong_timeout: float = 5.0,
    *,
    sessions: int = 1,
    join_timeout: float = 30.0,
    wire: Wire = SEED,
    on_sent: Callable[[], None] | None = None,
) -> list[PingRun]:
    """Run `sessions` ping sessions at once, each in its own room.

    Raises:
        BenchError: any session failed (the others are stopped).
    """
    async with aiohttp.ClientSession() as http:
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(
                        ping_session(
                            server,
                            platform,
                            http,
                            count,
                            interval,
                            pong_timeout,
                            join_timeout=join_timeout,
                            wire=wire,
                            on_sent=on_sent,
                        )
                    )
                    for _ in range(sessions)
                ]
        except* BenchError as group_error:
            raise group_error.exceptions[0] from None
    return [task.result() for task in tasks]


async def ping_offer_url(
    offer_url: str,
    http: aiohttp.ClientSession,
    count: int = 100,
    interval: float = 0.1,
    pong_timeout: float = 5.0,
    *,
    join_timeout: float = 30.0,
) -> PingRun:
    """Ping a peer reached by POSTing an SDP offer to `offer_url` (aiortc client).

    The peer must answer `{"type": "ping", "seq": n, ...}` on the data channel with a
    pong carrying the same `seq` (or return the ping unchanged). The first pong of the
    probe pings times `connect_to_first_pong` from the offer.

    Raises:
        BenchError: the offer failed or the peer never answered.
    """
    client, info = await offer_session(offer_url, http, join_timeout=join_timeout)
    try:
        await wait_until_answering(client, info, join_timeout)
        log = await run_pings(client, count, interval, pong_timeout)
    finally:
        await client.close()
    return _run(log, info)


def sample_rows(runs: list[PingRun]) -> list[dict]:
    """One row per ping, every session: what `--json` and `--csv` record."""
    rows = []
    for index, run in enumerate(runs):
        ordered = run.log.ordered()
        origin = ordered[0].sent_perf if ordered else 0.0
        offset, problem = session_offset(run.log)
        for s in ordered:
            processing = s.server_processing
            up, down = (one_way(s, offset) if problem is None else None) or (None, None)
            rows.append(
                {
                    "session": index,
                    "run": run.repeat,
                    "seq": s.seq,
                    "sent_time": s.sent_time,
                    "sent_offset_s": s.sent_perf - origin,
                    "status": s.status,
                    "rtt_ms": _ms(s.rtt),
                    "late_rtt_ms": _ms(s.late_rtt),
                    "server_receive_time": s.server_receive_time,
                    "server_send_time": s.server_send_time,
                    "server_processing_ms": _ms(processing),
                    "net_rtt_ms": _ms(s.net_rtt),
                    "client_to_agent_ms": _ms(up),
                    "agent_to_client_ms": _ms(down),
                    "duplicates": s.duplicates,
                }
            )
    return rows


def ping_result(runs: list[PingRun], **context) -> dict:
    """Everything about a ping run as one JSON-able dict (`context`: platform, params...).

    `summary` pools every session; `setup_ms` has each setup phase's p50, min and max over
    the sessions; with several `--repeat` runs, `runs` has each run's pooled summary.
    """
    pooled = _pooled(runs)
    rows = sample_rows(runs)
    result = {
        "kind": "ping",
        **context,
        "summary": pooled,
        "setup_ms": summarize_setup([run.setup for run in runs]),
        "sessions": [
            {
                "session": index,
                "run": run.repeat,
                "room": run.room,
                "summary": run.summary(),
                "samples": [r for r in rows if r["session"] == index],
            }
            for index, run in enumerate(runs)
        ],
    }
    repeats = sorted({run.repeat for run in runs})
    if len(repeats) > 1:
        result["runs"] = [
            {"run": r, "summary": _pooled([run for run in runs if run.repeat == r])}
            for r in repeats
        ]
    return result


def _pooled(runs: list[PingRun]) -> dict:
    pooled = summarize([run.log for run in runs])
    firsts = [run.connect_to_first_pong for run in runs if run.connect_to_first_pong is not None]
    pooled["connect_to_first_pong_ms"] = _ms(sum(firsts) / len(firsts)) if firsts else None
    pooled["connect_to_first_pong_max_ms"] = _ms(max(firsts)) if firsts else None
    return pooled


def result_table(result: dict) -> str:
    """The table `ping` prints: pooled figures, and each run or session when there are several.

    Then the setup phases, and why one-way delays are missing when they are.
    """
    sessions, runs = result["sessions"], result.get("runs", [])
    several = len(sessions) > 1
    columns = [("all sessions" if several else result["platform"], result["summary"])]
    if runs:
        columns += [(f"run {r['run'] + 1}", r["summary"]) for r in runs]
    elif several:
        columns += [(f"session {s['session'] + 1}", s["summary"]) for s in sessions]
    lines = [summary_table(columns, PING_ROWS)]
    if note := result["summary"].get("one_way_not_given"):
        lines.append(f"one-way delays not given: {note}")
    lines += ["", setup_table(result["setup_ms"])]
    return "\n".join(lines)


def plot_result(path: str, result: dict) -> None:
    """RTT and net RTT over time and their CDFs, titled with platform, count and date."""
    from echo_bench.plots import plot_series

    series, net = [], []
    for session in result["sessions"]:
        samples = session["samples"]
        times = [s["sent_offset_s"] for s in samples]
        label = f"session {session['session'] + 1}"
        series.append((label, times, [s["rtt_ms"] for s in samples]))
        net.append((f"{label}, net", times, [s["net_rtt_ms"] for s in samples]))
    params = result["params"]
    sessions = f" x {params['sessions']} sessions" if params["sessions"] > 1 else ""
    title = f"echo-bench ping: {result['platform']}, {params['count']} pings{sessions}, "
    plot_series(
        path,
        title + result["date"],
        series,
        x_label="time since first ping (s)",
        y_label="round trip (ms)",
        compare=net,
    )


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `echo-bench ping`."""
    parser = subparsers.add_parser(
        "ping",
        help="app-message round trips (ping/pong) through the echo agent",
        description="Ping the echo bot over app messages and report RTT, jitter and loss.",
    )
    add_connection_arguments(parser)
    parser.add_argument(
        "--count", type=positive_int, default=100, help="pings per session (default: %(default)s)"
    )
    parser.add_argument(
        "--interval",
        type=positive_float,
        default=0.1,
        help="seconds between pings (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=5.0,
        help="seconds before a ping counts as lost (default: %(default)s)",
    )
    parser.add_argument(
        "--sessions",
        type=positive_int,
        default=1,
        help="clients at once, each in its own room (default: %(default)s)",
    )
    parser.add_argument(
        "--rtvi",
        action="store_true",
        help="speak RTVI: client-ready / bot-ready first, then pings as client messages",
    )
    parser.add_argument("--json", metavar="FILE", help="write summary and every sample as JSON")
    parser.add_argument("--csv", metavar="FILE", help="write one row per ping as CSV")
    parser.add_argument("--plot", metavar="FILE.png", help="plot RTT over time and its CDF")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code."""
    date = now_iso()
    bar = progress_bar(
        args,
        args.count * args.sessions * args.repeat,
        (args.count * args.interval + args.timeout) * args.repeat,
        "ping",
    )

    async def benchmark():
        runs = []
        for repeat in range(args.repeat):
            sessions = await ping_sessions(
                args.server,
                args.platform,
                args.count,
                args.interval,
                args.timeout,
                sessions=args.sessions,
                join_timeout=args.join_timeout,
                wire=RTVI if args.rtvi else SEED,
                on_sent=bar.update,
            )
            for session in sessions:
                session.repeat = repeat
            runs += sessions
        return runs

    def report(runs: list[PingRun]) -> int:
        bar.close()
        result = ping_result(
            runs,
            platform=args.platform,
            server=args.server,
            date=date,
            params={
                "count": args.count,
                "interval": args.interval,
                "timeout": args.timeout,
                "sessions": args.sessions,
                "repeat": args.repeat,
                "rtvi": args.rtvi,
            },
        )
        print(f"echo-bench ping: {args.platform} via {args.server}, {date}")
        print(result_table(result))
        if args.json:
            write_json(args.json, result)
        if args.csv:
            write_csv(args.csv, sample_rows(runs))
        if args.plot:
            plot_result(args.plot, result)
        return 0

    try:
        return run_command(args, benchmark, report)
    finally:
        bar.close()
