"""Bot worker processes: placement, a worker's death, Daily isolation, /metrics.

Every test runs the real server as a subprocess with real worker processes and talks
to it over HTTP and real aiortc peers on 127.0.0.1.
"""

import asyncio
import os
import signal
import time

import aiohttp
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from echo_bench.webrtc_client import EchoClient
from tests.conftest import LIVEKIT, free_port, run_server
from tests.fakes.daily import FakeDailyServer


def worker_pids(server) -> set[int]:
    """The pids of the server's bot workers (children of the server process)."""
    children = f"/proc/{server.process.pid}/task/{server.process.pid}/children"
    with open(children) as f:
        pids = {int(p) for p in f.read().split()}
    # The forkserver is a child too; workers are its children.
    for pid in list(pids):
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                pids |= {int(p) for p in f.read().split()}
        except FileNotFoundError:
            pass
    return pids


def metrics(server) -> dict[tuple[str, tuple], float]:
    """`GET /metrics`, parsed by prometheus-client's own parser."""
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def webrtc_session(http: aiohttp.ClientSession, url: str) -> tuple[str, EchoClient]:
    async with http.post(f"{url}/connect", json={"platforms": ["webrtc"]}) as response:
        assert response.status == 200
        credentials = (await response.json())["webrtc"]
    client = EchoClient()
    await client.connect(credentials["offer_url"], http)
    return credentials["session_id"], client


async def ping(client: EchoClient, seq: int) -> dict:
    client.send({"type": "ping", "timestamp": time.time(), "seq": seq})
    while True:
        _, message = await asyncio.wait_for(client.next_message(), 5.0)
        if message.get("seq") == seq:
            return message


async def test_sessions_spread_over_workers_and_a_killed_worker_takes_only_its_own(tmp_path):
    with run_server(tmp_path, WORKERS="2") as running:
        async with aiohttp.ClientSession() as http:
            sessions = [await webrtc_session(http, running.url) for _ in range(4)]
            rooms = await asyncio.to_thread(
                running.wait_rooms, lambda rs: len(rs) == 4 and all(r["clients"] for r in rs)
            )
            by_pid: dict[int, list[str]] = {}
            for room in rooms:
                by_pid.setdefault(room["worker_pid"], []).append(room["id"])
            # Least loaded first: two sessions on each of the two workers.
            assert sorted(len(ids) for ids in by_pid.values()) == [2, 2]
            assert running.process.pid not in by_pid
            assert set(by_pid) <= worker_pids(running)
            for n, (_, client) in enumerate(sessions):
                assert (await ping(client, n))["type"] == "pong"

            victim = next(iter(by_pid))
            survivors = [c for sid, c in sessions if sid not in by_pid[victim]]
            killed_at = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            rooms = await asyncio.to_thread(
                running.wait_rooms,
                lambda rs: {r["worker_pid"] for r in rs} == set(by_pid) - {victim},
            )
            assert time.monotonic() - killed_at < 5.0
            assert sorted(r["id"] for r in rooms) == sorted(
                sid for pid, ids in by_pid.items() if pid != victim for sid in ids
            )
            # The other worker's sessions keep answering.
            for n, client in enumerate(survivors):
                assert (await ping(client, 100 + n))["type"] == "pong"
            # A replacement worker starts and /connect keeps working.
            sid, fresh = await webrtc_session(http, running.url)
            assert (await ping(fresh, 200))["type"] == "pong"
            values = metrics(running)
            assert values[("echo_worker_restarts_total", ())] == 1
            assert values[("echo_workers_alive", ())] == 2
            assert victim not in worker_pids(running)
            for _, client in sessions:
                await client.close()
            await fresh.close()
        assert "exited (killed by SIGKILL)" in running.log()


async def test_metrics_count_sessions_pings_and_connect_latency(tmp_path):
    with run_server(tmp_path, WORKERS="1") as running:
        before = metrics(running)
        assert before[("echo_sessions", (("platform", "webrtc"), ("status", "running")))] == 0
        assert before[("echo_workers_alive", ())] == 1
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{running.url}/connect", json={"platforms": ["webrtc"]}) as r:
                assert r.status == 200
            waiting = metrics(running)
            assert waiting[("echo_sessions", (("platform", "webrtc"), ("status", "waiting")))] == 1
            _, client = await webrtc_session(http, running.url)
            for n in range(5):
                await ping(client, n)
            values = metrics(running)
            assert values[("echo_sessions", (("platform", "webrtc"), ("status", "running")))] == 1
            assert values[("echo_pings_answered_total", ())] == 5
            assert values[("echo_connect_seconds_count", (("outcome", "ok"),))] == 2
            assert values[("echo_sessions_limit", ())] == 50
            await client.close()
            await asyncio.to_thread(running.wait_rooms, lambda rs: len(rs) == 1)
        # The ended session's pongs still count.
        assert metrics(running)[("echo_pings_answered_total", ())] == 5


@pytest.fixture
def fake_daily():
    with FakeDailyServer() as daily:
        yield daily


def test_each_daily_session_gets_a_process_of_its_own(tmp_path, fake_daily):
    env = {"DAILY_API_KEY": fake_daily.api_key, "DAILY_API_URL": fake_daily.url, "WORKERS": "1"}
    with run_server(tmp_path, **env) as running:
        shared = worker_pids(running)
        names = []
        for _ in range(3):
            response = httpx.post(
                f"{running.url}/connect", json={"platforms": ["daily", "webrtc"]}, timeout=15
            )
            assert response.status_code == 200
            names.append(response.json()["daily"]["room_url"].rsplit("/", 1)[-1])
        # A Daily session's process is started for it: its pid shows once it runs.
        rooms = running.wait_rooms(lambda rs: all(r["worker_pid"] for r in rs), 10.0)
        daily_pids = [r["worker_pid"] for r in rooms if r["platform"] == "daily"]
        webrtc_pids = {r["worker_pid"] for r in rooms if r["platform"] == "webrtc"}
        # Never two Daily sessions in one process, and none in a shared worker.
        assert len(set(daily_pids)) == 3
        assert not set(daily_pids) & webrtc_pids
        assert webrtc_pids <= worker_pids(running)
        assert metrics(running)[("echo_workers_alive", ())] == 4

        # A Daily process that dies: its session ends and its room is deleted.
        room = next(r for r in rooms if r["platform"] == "daily")
        os.kill(room["worker_pid"], signal.SIGKILL)
        running.wait_rooms(lambda rs: room["id"] not in {r["id"] for r in rs}, 5.0)
        deadline = time.monotonic() + 5
        while room["id"] not in fake_daily.deleted_rooms() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert room["id"] in fake_daily.deleted_rooms()
        # Dedicated processes are not replaced; the shared worker is untouched.
        assert metrics(running)[("echo_worker_restarts_total", ())] == 0
        assert shared <= worker_pids(running)


def test_shutdown_with_livekit_connects_in_flight_exits_cleanly(tmp_path):
    """A LiveKit connect in flight at exit once aborted the process (livekit 1.2.1, rc 134).

    Each round starts LiveKit bots against a port that accepts nothing, then stops the
    server while they are still connecting: every worker must exit cleanly.
    """
    for round_ in range(5):
        env = {**LIVEKIT, "LIVEKIT_URL": f"ws://127.0.0.1:{free_port()}", "WORKERS": "2"}
        (tmp_path / f"round-{round_}").mkdir()
        with run_server(tmp_path / f"round-{round_}", clouds=True, **env) as running:
            for _ in range(2):
                response = httpx.post(f"{running.url}/connect", json={"platforms": ["livekit"]})
                assert response.status_code == 200
            time.sleep(0.1 * round_)
            running.process.send_signal(signal.SIGTERM)
            running.process.wait(timeout=15)
            log = running.log()
        assert "Connecting to benchmark-" in log
        assert "exited while stopping" not in log, log
        assert "panicked" not in log, log
