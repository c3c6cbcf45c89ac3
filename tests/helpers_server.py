"""The real echo agent as a subprocess on 127.0.0.1, for echo-bench's end-to-end tests."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class EchoServer:
    """A running server and where to reach it."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        """Everything the server logged so far."""
        return self.log_path.read_text(errors="replace")


@contextmanager
def echo_server(workdir: Path, *, clouds: bool = False, **env: str) -> Iterator[EchoServer]:
    """Start `server.py` on a free 127.0.0.1 port with ICE on loopback.

    Without `clouds` no cloud platform is configured: DAILY_* and LIVEKIT_* are left
    out, and it runs in `workdir`, where no `.env` of the checkout is found.
    """
    port = free_port()
    log_path = workdir / f"server-{port}.log"
    cloud = ("DAILY_", "LIVEKIT_")
    full_env = {
        **{k: v for k, v in os.environ.items() if clouds or not k.startswith(cloud)},
        "WEBRTC_ICE_ADDRESSES": "127.0.0.1",
        "PYTHONPATH": str(ROOT),
        **env,
    }
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "server.py"), "--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = EchoServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        _wait_healthy(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(server: EchoServer, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not healthy within {timeout} s:\n{server.log()}")
