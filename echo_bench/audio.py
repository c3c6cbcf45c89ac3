"""`echo-bench audio`: audio round trip through the echo agent in `loopback` mode."""

import argparse

import aiohttp

from echo_bench.bursts import AudioRun, BurstSignal, measure_bursts, summarize_bursts
from echo_bench.clients import open_session, wait_until_answering
from echo_bench.options import (
    add_connection_arguments,
    now_iso,
    positive_int,
    progress_bar,
    run_command,
)
from echo_bench.output import AUDIO_ROWS, setup_table, summary_table, write_json
from echo_bench.stats import summarize_setup

__all__ = ["add_parser", "audio_result", "audio_session"]


async def audio_session(
    server: str,
    platform: str,
    count: int,
    interval: float = 1.0,
    *,
    join_timeout: float = 30.0,
    on_burst=None,
) -> AudioRun:
    """`/connect` a loopback room on `platform`, join it with a burst microphone, measure.

    Raises:
        BenchError: the room could not be made or joined, or no audio came back.
    """
    signal = BurstSignal()
    async with aiohttp.ClientSession() as http:
        client, info = await open_session(
            server, platform, "loopback", http, signal=signal, join_timeout=join_timeout
        )
        try:
            await wait_until_answering(client, info, join_timeout)
            bursts = await measure_bursts(
                client, signal, count, interval, join_timeout=join_timeout, on_burst=on_burst
            )
        finally:
            await client.close()
    return AudioRun(bursts, info.room, info.setup["total"], signal, info.setup)


def audio_result(runs: list[AudioRun], **context) -> dict:
    """Everything about audio runs (one per `--repeat`) as one JSON-able dict.

    `summary` pools the bursts of every run; `setup_ms` has each setup phase's p50, min
    and max over the runs; `runs` has each run's room and figures. `context`: platform...
    """
    summary = summarize_bursts([b for run in runs for b in run.bursts], runs[0].signal)
    firsts = [run.connect_to_first_pong for run in runs if run.connect_to_first_pong is not None]
    summary["connect_to_first_pong_ms"] = sum(firsts) / len(firsts) * 1000 if firsts else None
    return {
        "kind": "audio",
        **context,
        "room": runs[0].room,
        "summary": summary,
        "setup_ms": summarize_setup([run.setup for run in runs]),
        "runs": [
            {"run": index, "room": run.room, "summary": run.summary()}
            for index, run in enumerate(runs)
        ],
        "bursts": [
            {
                "run": index,
                "index": b.index,
                "sent_time": b.sent_time,
                "latency_ms": None if b.latency is None else b.latency * 1000,
                "level_dbfs": b.level_dbfs,
            }
            for index, run in enumerate(runs)
            for b in run.bursts
        ],
    }


def plot_result(path: str, result: dict) -> None:
    """Round trip per burst and its CDF, titled with platform, count and date."""
    from echo_bench.plots import plot_series

    bursts = result["bursts"]
    plot_series(
        path,
        f"echo-bench audio: {result['platform']}, {len(bursts)} bursts, {result['date']}",
        [("audio round trip", list(range(len(bursts))), [b["latency_ms"] for b in bursts])],
        x_label="burst",
        y_label="audio round trip (ms)",
    )


def _interval(text: str) -> float:
    value = float(text)
    if value < 0.2:
        raise argparse.ArgumentTypeError("must be at least 0.2 s")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `echo-bench audio`."""
    parser = subparsers.add_parser(
        "audio",
        help="audio round trip (tone bursts echoed by a loopback bot)",
        description="Send tone bursts to a loopback bot and time them in the audio that "
        "comes back: both directions, both jitter buffers and codecs.",
    )
    add_connection_arguments(parser)
    parser.add_argument(
        "--count", type=positive_int, default=20, help="bursts to send (default: %(default)s)"
    )
    parser.add_argument(
        "--interval",
        type=_interval,
        default=1.0,
        help="seconds between bursts; also the longest round trip measured (default: 1)",
    )
    parser.add_argument("--json", metavar="FILE", help="write summary and every burst as JSON")
    parser.add_argument("--plot", metavar="FILE.png", help="plot round trip per burst and CDF")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code."""
    date = now_iso()
    total = args.count * args.repeat
    bar = progress_bar(args, total, total * args.interval, "burst")

    async def benchmark():
        return [
            await audio_session(
                args.server,
                args.platform,
                args.count,
                args.interval,
                join_timeout=args.join_timeout,
                on_burst=bar.update,
            )
            for _ in range(args.repeat)
        ]

    def report(runs: list[AudioRun]) -> int:
        bar.close()
        result = audio_result(
            runs,
            platform=args.platform,
            server=args.server,
            date=date,
            params={"count": args.count, "interval": args.interval, "repeat": args.repeat},
        )
        print(f"echo-bench audio: {args.platform} via {args.server}, {date}")
        columns = [("all runs" if len(runs) > 1 else args.platform, result["summary"])]
        if len(runs) > 1:
            columns += [(f"run {r['run'] + 1}", r["summary"]) for r in result["runs"]]
        print(summary_table(columns, AUDIO_ROWS))
        print()
        print(setup_table(result["setup_ms"]))
        if args.json:
            write_json(args.json, result)
        if args.plot:
            plot_result(args.plot, result)
        return 0

    try:
        return run_command(args, benchmark, report)
    finally:
        bar.close()
