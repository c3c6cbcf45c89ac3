"""What the `ping` and `audio` subcommands share: arguments, logging, errors, progress."""

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from loguru import logger
from tqdm import tqdm

from echo_bench.clients import PLATFORMS, BenchError, configure_ice

__all__ = [
    "add_connection_arguments",
    "now_iso",
    "positive_float",
    "positive_int",
    "progress_bar",
    "run_command",
]

DEFAULT_SERVER = "http://127.0.0.1:8080"
LONG_RUN_SECS = 3.0
"""Runs expected to take longer than this show a progress bar (on a terminal)."""


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """--server, --platform, --join-timeout, --repeat, --ice-address, --no-progress, --verbose."""
    parser.add_argument(
        "--server",
        default=os.environ.get("ECHO_AGENT_URL", DEFAULT_SERVER),
        help="the echo agent's URL (default: $ECHO_AGENT_URL or %(default)s)",
    )
    parser.add_argument(
        "--platform", choices=PLATFORMS, default="webrtc", help="(default: %(default)s)"
    )
    parser.add_argument(
        "--join-timeout",
        type=float,
        default=30.0,
        help="seconds to join and get the bot's first pong (default: %(default)s)",
    )
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        help="run the whole measurement this many times, one after the other, and pool "
        "the results (default: %(default)s)",
    )
    parser.add_argument(
        "--ice-address",
        action="append",
        metavar="ADDR",
        help="offer only this local address as WebRTC ICE candidate (repeatable; "
        "default: $WEBRTC_ICE_ADDRESSES, else every interface but loopback)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number greater than 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def now_iso() -> str:
    """The current UTC time, ISO 8601, to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def progress_bar(args: argparse.Namespace, total: int, seconds: float, unit: str) -> tqdm:
    """A progress bar on stderr for runs longer than a few seconds, else a silent one."""
    show = not args.no_progress and seconds >= LONG_RUN_SECS
    return tqdm(total=total, unit=unit, disable=None if show else True, leave=False)


def run_command(
    args: argparse.Namespace, benchmark: Callable[[], Awaitable[Any]], report: Callable[[Any], int]
) -> int:
    """Run `benchmark()` and pass its result to `report`; errors become one line.

    Returns the exit code: `report`'s, 1 for a benchmark that cannot run, 130 on ^C.
    """
    logger.remove()
    logger.add(sys.stderr, level="DEBUG" if args.verbose else "WARNING")
    try:
        configure_ice(args.ice_address)
        result = asyncio.run(benchmark())
    except BenchError as e:
        print(f"echo-bench: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("echo-bench: interrupted", file=sys.stderr)
        return 130
    return report(result)
