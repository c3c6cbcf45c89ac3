"""`echo-bench`: command line of the benchmark client.

Each subcommand lives in its own module, which exposes `add_parser(subparsers)`;
the parser it adds sets `func(args) -> int` (the exit code).
"""

import argparse
import sys

from echo_bench import audio, converse, ping, report


def build_parser() -> argparse.ArgumentParser:
    """The `echo-bench` parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="echo-bench",
        description="Measure the latency, jitter and loss a real-time transport adds.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in (ping, audio, report, converse):
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns its exit code."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
