"""`echo-bench report`: the figures of earlier runs (their `--json` files) side by side."""

import argparse
import json
import sys
from pathlib import Path

from echo_bench.output import AUDIO_ROWS, PING_ROWS, Row, summary_table

__all__ = ["add_parser", "load_result", "report_table"]

KINDS = ("ping", "audio")
HEADER_ROWS: list[Row] = [
    ("kind", "kind", "text"),
    ("date", "date", "text"),
    ("sessions", "sessions", "int"),
]


class ReportError(Exception):
    """A file is not an echo-bench result."""


def load_result(path: str | Path) -> dict:
    """Read one `--json` file of `echo-bench ping` or `audio`.

    Raises:
        ReportError: unreadable, not JSON, or not an echo-bench result.
    """
    try:
        result = json.loads(Path(path).read_text())
    except OSError as e:
        raise ReportError(f"{path}: {e.strerror or e}") from None
    except ValueError:
        raise ReportError(f"{path}: not a JSON file") from None
    if (
        not isinstance(result, dict)
        or result.get("kind") not in KINDS
        or not isinstance(result.get("summary"), dict)
    ):
        raise ReportError(f"{path}: not an echo-bench ping or audio result")
    return result


def _titles(results: list[dict]) -> list[str]:
    """Column titles: the platform, numbered when several files share one."""
    platforms = [str(r.get("platform", "?")) for r in results]
    titles = []
    for index, platform in enumerate(platforms):
        if platforms.count(platform) > 1:
            platform = f"{platform} #{platforms[: index + 1].count(platform)}"
        titles.append(platform)
    return titles


def report_table(results: list[dict]) -> str:
    """Every result's summary in one column, rows for the kinds present."""
    kinds = {r["kind"] for r in results}
    rows = list(HEADER_ROWS)
    if "ping" in kinds:
        rows += PING_ROWS
    if "audio" in kinds:
        rows += [row for row in AUDIO_ROWS if row not in rows]
    columns = []
    for title, result in zip(_titles(results), results, strict=True):
        header = {
            "kind": result["kind"],
            "date": str(result.get("date") or "")[:16].replace("T", " ") or None,
            "sessions": result.get("params", {}).get("sessions", 1),
        }
        columns.append((title, {**header, **result["summary"]}))
    return summary_table(columns, rows)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `echo-bench report`."""
    parser = subparsers.add_parser(
        "report",
        help="show earlier runs (--json files) side by side",
        description="Print the figures of earlier ping/audio runs side by side, one column "
        "per file (e.g. daily vs livekit vs webrtc).",
    )
    parser.add_argument("files", nargs="+", metavar="FILE.json")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code."""
    try:
        results = [load_result(path) for path in args.files]
    except ReportError as e:
        print(f"echo-bench: error: {e}", file=sys.stderr)
        return 1
    for title, path in zip(_titles(results), args.files, strict=True):
        print(f"{title}: {path}")
    print()
    print(report_table(results))
    return 0
