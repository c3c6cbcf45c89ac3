"""What every benchmark report shares: when and where it ran, and where it goes."""

import os
import platform
import time
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


def steal_seconds() -> float:
    """CPU time the hypervisor took from this machine's cores so far (/proc/stat), seconds."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class StealMeter:
    """Steal over a run, in % of one core: a busy host slows every figure of the run."""

    def __enter__(self) -> "StealMeter":
        self._start = (time.monotonic(), steal_seconds())
        return self

    def __exit__(self, *_) -> None:
        wall = time.monotonic() - self._start[0]
        self.percent = (steal_seconds() - self._start[1]) / wall * 100 if wall > 0 else 0.0

    def line(self) -> str:
        """`Steal during the run: x % of one core.`"""
        return f"Hypervisor steal during the run: {self.percent:.1f} % of one core."


def publish(text: str, markdown: str | None) -> None:
    """Print the report and, when `markdown` names a file, append it there."""
    print(text)
    if markdown:
        with open(markdown, "a") as f:
            f.write(f"\n{text}\n")
