"""How fast a bot worker is ready, and what it costs in memory, per multiprocessing start method.

Starts `--workers` workers (`worker.worker_main`, exactly as the pool does) one after the
other with each method and times `Process.start()` until the worker's "ready" message,
then reads each worker's RSS from /proc. The first forkserver start includes starting the
forkserver itself (it imports the bot once); it is reported apart.

    uv run python benchmarks/worker_start.py [--workers 6] [--markdown FILE]
"""

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.reports import publish, run_line  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pss_mib(pid: int) -> float:
    """Proportional set size: shared pages split between the processes that share them."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def measure(method: str, count: int) -> dict:
    import worker

    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["worker"])
    times, workers = [], []
    for _ in range(count):
        parent, child = context.Pipe()
        started = time.perf_counter()
        process = context.Process(
            target=worker.worker_main, args=(child, dict(os.environ)), daemon=True
        )
        process.start()
        child.close()
        message = parent.recv()
        assert message["op"] == "ready"
        times.append((time.perf_counter() - started) * 1000)
        workers.append((process, parent))
    time.sleep(0.5)
    rss = [rss_mib(p.pid) for p, _ in workers]
    pss = [pss_mib(p.pid) for p, _ in workers]
    for _, conn in workers:
        conn.send({"op": "shutdown"})
    for process, _ in workers:
        process.join(10)
    return {"first": times[0], "rest": times[1:], "rss": rss, "pss": pss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--markdown")
    args = parser.parse_args()
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("WEBRTC_ICE_ADDRESSES", "127.0.0.1")
    import worker  # noqa: F401  (fork inherits an imported bot, like the forkserver)

    rows = []
    for method in ("fork", "forkserver", "spawn"):
        figures = measure(method, args.workers)
        rows.append(
            f"| {method} | {figures['first']:.0f} | {statistics.median(figures['rest']):.0f} | "
            f"{statistics.median(figures['rss']):.0f} | {statistics.median(figures['pss']):.0f} |"
        )
    text = "\n".join(
        [
            f"### Worker start-up, {args.workers} workers per method",
            "",
            run_line(),
            "",
            "| start method | first ready (ms) | next ready, p50 (ms) | RSS per worker (MiB) "
            "| PSS per worker (MiB) |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    publish(text, args.markdown)


if __name__ == "__main__":
    main()
