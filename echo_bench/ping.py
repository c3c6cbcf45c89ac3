"""`echo-bench ping` (placeholder until its issue lands)."""

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the subcommand."""
    parser = subparsers.add_parser("ping", help="not implemented yet")
    parser.set_defaults(func=lambda args: 2)
    return parser
