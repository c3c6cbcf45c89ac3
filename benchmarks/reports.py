"""What every benchmark report shares: when and where it ran, and where it goes."""

import os
import platform
from datetime import UTC, datetime
from pathlib import Path


def run_line() -> str:
    """`Run <date> UTC on <host> (<CPU model>, <n> cores, <arch>, Python <version>)`."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip() + ", "
                break
    except OSError:
        pass
    return (
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} ({model}"
        f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()})"
    )


def publish(text: str, markdown: str | None) -> None:
    """Print the report and, when `markdown` names a file, append it there."""
    print(text)
    if markdown:
        with open(markdown, "a") as f:
            f.write(f"\n{text}\n")
