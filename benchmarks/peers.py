"""Peer processes for the benchmarks: started on a free port, pinned, stopped.

Peers run on one core and the benchmark's client on the other (when there are two):
where the scheduler puts them otherwise changes from one connection to the next and
moves the figures more than what is being measured.
"""

import asyncio
import os
import socket
import subprocess
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent

CLIENT_CPUS, PEER_CPUS = ({0}, {1}) if len(os.sched_getaffinity(0)) >= 2 else (None, None)


def pin_client() -> None:
    """Pin this (the client's) process to `CLIENT_CPUS`."""
    if CLIENT_CPUS:
        os.sched_setaffinity(0, CLIENT_CPUS)


def parent(pid: int) -> int | None:
    """The parent's pid (None once the process has ended)."""
    try:
        # The second field after the parenthesised name.
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (the echo agent's bots run in worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (up := parent(int(entry.name))) is not None:
            children.setdefault(up, []).append(int(entry.name))
    pids, frontier = [pid], [pid]
    while frontier:
        found = children.get(frontier.pop(), [])
        pids += found
        frontier += found
    return pids


def set_affinity(pid: int, cpus: set[int]) -> None:
    """Move every thread of process `pid` and of its descendants onto `cpus`."""
    for process in descendants(pid):
        try:
            threads = [int(t) for t in os.listdir(f"/proc/{process}/task")]
        except OSError:
            continue
        for thread in threads:
            try:
                os.sched_setaffinity(thread, cpus)
            except OSError:
                pass  # the thread ended meanwhile


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PeerProcess:
    """A peer answering offers on 127.0.0.1 (`command --host --port`), pinned to `PEER_CPUS`.

    With `pinned=False` the scheduler places it, as in a deployment.
    """

    def __init__(
        self,
        name: str,
        command: list[str],
        env: dict | None = None,
        log: str | None = None,
        pinned: bool = True,
    ):
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT,
            env={
                **os.environ,
                "WEBRTC_ICE_ADDRESSES": "127.0.0.1",
                "LOG_LEVEL": "WARNING",
                **(env or {}),
            },
            stdout=self._log,
            stderr=self._log,
            preexec_fn=(
                (lambda: os.sched_setaffinity(0, PEER_CPUS)) if PEER_CPUS and pinned else None
            ),
        )

    def offer_url(self, query: str = "") -> str:
        """Where to POST an offer."""
        return f"{self.base}/api/offer{query}"

    async def wait_ready(self, http: aiohttp.ClientSession) -> None:
        """Wait for `/health`."""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                async with http.get(f"{self.base}/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start within 90 s")

    def stop(self) -> None:
        """Terminate the process."""
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self._log is not subprocess.DEVNULL:
            self._log.close()
