"""Tables, JSON and CSV files of echo-bench results."""

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "AUDIO_ROWS",
    "PING_ROWS",
    "Row",
    "SETUP_PHASES",
    "format_table",
    "lookup",
    "setup_table",
    "summary_table",
    "write_csv",
    "write_json",
]

Row = tuple[str, str, str]
"""(label, dotted path into a summary, format): `int`, `ms`, `ms3`, `pct`, `db` or `text`."""

PING_ROWS: list[Row] = [
    ("sent", "sent", "int"),
    ("received", "received", "int"),
    ("lost", "lost", "int"),
    ("loss %", "loss_pct", "pct"),
    ("late pongs", "late", "int"),
    ("duplicate pongs", "duplicates", "int"),
    ("RTT min (ms)", "rtt_ms.min", "ms"),
    ("RTT mean (ms)", "rtt_ms.mean", "ms"),
    ("RTT p50 (ms)", "rtt_ms.p50", "ms"),
    ("RTT p95 (ms)", "rtt_ms.p95", "ms"),
    ("RTT p99 (ms)", "rtt_ms.p99", "ms"),
    ("RTT max (ms)", "rtt_ms.max", "ms"),
    ("RTT stdev (ms)", "rtt_ms.stdev", "ms"),
    ("jitter (ms)", "jitter_ms", "ms"),
    ("server processing p50 (ms)", "server_processing_ms.p50", "ms3"),
    ("server processing p99 (ms)", "server_processing_ms.p99", "ms3"),
    ("net RTT p50 (ms)", "net_rtt_ms.p50", "ms"),
    ("net RTT p95 (ms)", "net_rtt_ms.p95", "ms"),
    ("net RTT p99 (ms)", "net_rtt_ms.p99", "ms"),
    ("clock offset (ms)", "clock_offset_ms.offset", "ms3"),
    ("clock offset bound ± (ms)", "clock_offset_ms.bound", "ms3"),
    ("client -> agent p50 (ms)", "one_way_ms.client_to_agent.p50", "ms"),
    ("client -> agent p99 (ms)", "one_way_ms.client_to_agent.p99", "ms"),
    ("agent -> client p50 (ms)", "one_way_ms.agent_to_client.p50", "ms"),
    ("agent -> client p99 (ms)", "one_way_ms.agent_to_client.p99", "ms"),
    ("/connect -> first pong (ms)", "connect_to_first_pong_ms", "ms"),
]

SETUP_PHASES: list[tuple[str, str]] = [
    ("connect", "/connect (HTTP)"),
    ("join", "join"),
    ("offer", "  offer (ICE gathering) and answer (HTTP)"),
    ("ice_dtls", "  ICE + DTLS until data channel open"),
    ("publish", "  microphone published"),
    ("bot_ready", "bot-ready (RTVI)"),
    ("first_pong", "first pong"),
    ("total", "/connect -> first pong"),
]
"""Setup phases in order, with their labels; each is timed from the end of the one before
(indented ones are parts of `join`)."""

AUDIO_ROWS: list[Row] = [
    ("bursts sent", "bursts", "int"),
    ("bursts detected", "detected", "int"),
    ("bursts missed", "missed", "int"),
    ("audio RTT min (ms)", "latency_ms.min", "ms"),
    ("audio RTT p50 (ms)", "latency_ms.p50", "ms"),
    ("audio RTT p95 (ms)", "latency_ms.p95", "ms"),
    ("audio RTT max (ms)", "latency_ms.max", "ms"),
    ("audio RTT mean (ms)", "latency_ms.mean", "ms"),
    ("received level (dBFS)", "received_level_dbfs", "db"),
    ("sent level (dBFS)", "sent_level_dbfs", "db"),
    ("/connect -> first pong (ms)", "connect_to_first_pong_ms", "ms"),
]


def lookup(data: dict, path: str) -> Any:
    """`data["a"]["b"]` for path `a.b`; None where anything is missing."""
    for key in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _format(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == "text":
        return str(value)
    if kind == "int":
        return str(int(value))
    if kind == "pct":
        return f"{value:.2f}"
    if kind == "ms3":
        return f"{value:.3f}"
    if kind == "db":
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: first column left aligned, the others right aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for n, row in enumerate([headers, *rows]):
        cells = [str(row[0]).ljust(widths[0])]
        cells += [str(c).rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_table(columns: Sequence[tuple[str, dict]], rows: Sequence[Row]) -> str:
    """One column per (title, summary); rows absent from every summary are left out."""
    body = []
    for label, path, kind in rows:
        values = [lookup(summary, path) for _, summary in columns]
        if all(v is None for v in values) and path not in ("sent", "bursts"):
            continue
        body.append([label, *(_format(v, kind) for v in values)])
    return format_table(["", *(title for title, _ in columns)], body)


def setup_table(phases: dict[str, dict]) -> str:
    """The setup phases' p50, min and max (ms) over the sessions, like `lk perf`'s join delays."""
    count = max((figures["count"] for figures in phases.values()), default=0)
    body = [
        [label, *(_format(phases[key][k], "ms") for k in ("p50", "min", "max"))]
        for key, label in SETUP_PHASES
        if key in phases
    ]
    title = f"setup (ms), {count} session{'s' if count != 1 else ''}"
    return format_table([title, "p50", "min", "max"], body)


def write_json(path: str | Path, result: dict) -> None:
    """Write a result as indented JSON."""
    Path(path).write_text(json.dumps(result, indent=2) + "\n")


def write_csv(path: str | Path, rows: list[dict]) -> None:
    """Write dict rows (same keys each) as CSV with a header."""
    with Path(path).open("w", newline="") as file:
        if not rows:
            return
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
