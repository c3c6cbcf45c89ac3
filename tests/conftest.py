"""Fixtures: the real server as a subprocess on 127.0.0.1, a client on loopback."""

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from loguru import logger
from pipecat.runner.types import DailyRunnerArguments

import pool
from config import get_settings
from ice_addresses import restrict_ice_addresses

ROOT = Path(__file__).resolve().parent.parent

# Every test peer offers loopback only, like the servers the tests start.
restrict_ice_addresses(["127.0.0.1"])


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningServer:
    """A server subprocess and where to reach it."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        """Everything the server logged so far."""
        return self.log_path.read_text(errors="replace")

    def rooms(self) -> list[dict]:
        """`GET /rooms`."""
        return httpx.get(f"{self.url}/rooms", timeout=5).json()["rooms"]

    def wait_rooms(self, predicate, timeout: float = 5.0) -> list[dict]:
        """Poll `/rooms` until `predicate(rooms)` holds; fail after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            rooms = self.rooms()
            if predicate(rooms):
                return rooms
            if time.monotonic() > deadline:
                raise AssertionError(f"/rooms never matched within {timeout} s: {rooms}")
            time.sleep(0.1)


@contextmanager
def run_server(tmp_path: Path, *, clouds: bool = False, **env: str) -> Iterator[RunningServer]:
    """Start `server.py` on a free 127.0.0.1 port with `env` and stop it afterwards.

    It runs in `tmp_path`, where no `.env` of the checkout is found. Without `clouds`
    no cloud platform is configured: DAILY_* and LIVEKIT_* are left out.
    """
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    cloud = ("DAILY_", "LIVEKIT_")
    full_env = {
        **{k: v for k, v in os.environ.items() if clouds or not k.startswith(cloud)},
        "WEBRTC_ICE_ADDRESSES": "127.0.0.1",
        "LOG_LEVEL": "DEBUG",
        "PYTHONPATH": str(ROOT),
        **env,
    }
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "server.py"), "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = RunningServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_healthy(server)
        yield server
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it is still running 15 s later."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_healthy(server, timeout: float = 30.0, error: type[Exception] = RuntimeError) -> None:
    """Wait for `GET {server.url}/health`; raise `error` with the server's log if it never comes.

    `server` is anything with `url`, `process` and `log()`: a test server or a replayed image.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise error(f"server exited with {server.process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise error(f"server not healthy within {timeout:g} s:\n{server.log()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[RunningServer]:
    """The echo agent with default settings (a shorter join timeout), local WebRTC only."""
    with run_server(tmp_path_factory.mktemp("server"), JOIN_TIMEOUT="10") as running:
        yield running


LIVEKIT_SECRET = "livekit-test-secret-that-is-long-enough-0123456789"
LIVEKIT = {
    "LIVEKIT_URL": "wss://echo-test.livekit.invalid",
    "LIVEKIT_API_KEY": "APItestkey",
    "LIVEKIT_API_SECRET": LIVEKIT_SECRET,
}


class RecordedBots:
    """Stand-in for `bot.run_session`: records each start, runs until told to end."""

    def __init__(self):
        self.started: list[tuple[object, dict]] = []
        self._end: set[str] = set()
        self._lock = threading.Lock()

    async def run_session(self, runner_args, **kwargs):
        with self._lock:
            self.started.append((runner_args, kwargs))
        room = _room_of(runner_args)
        while room not in self._end:  # noqa: ASYNC110 (set from the test's thread)
            await asyncio.sleep(0.01)
        return "ended by test"

    def end(self, room: str) -> None:
        self._end.add(room)

    def of(self, kind) -> list:
        return [args for args, _ in self.started if isinstance(args, kind)]


def _room_of(runner_args) -> str:
    if isinstance(runner_args, DailyRunnerArguments):
        return runner_args.room_url.rsplit("/", 1)[-1]
    return getattr(runner_args, "room_name", "")


@pytest.fixture
def bots(monkeypatch) -> RecordedBots:
    """Records the Daily and LiveKit bots the pool is asked to run, instead of running them."""
    recorded = RecordedBots()

    async def run_session(_pool, runner_args, **kwargs):
        return await recorded.run_session(runner_args, **kwargs)

    monkeypatch.setattr(pool.WorkerPool, "run_session", run_session)
    return recorded


@pytest.fixture
def configure(monkeypatch):
    """Set the environment for the app and reload its settings."""

    def apply(**env: str):
        for name in list(LIVEKIT) + ["DAILY_API_KEY", "DAILY_API_URL"]:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield apply
    get_settings.cache_clear()


@pytest.fixture
def logs():
    """Every loguru record of the test as `LEVEL|message`, with any traceback."""
    lines: list[str] = []
    sink = logger.add(lines.append, level="TRACE", format="{level}|{message}\n{exception}")
    yield lines
    logger.remove(sink)
