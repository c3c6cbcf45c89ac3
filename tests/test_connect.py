"""POST /connect: rooms on every platform, one bot each, nothing left behind on failure.

Daily runs against the fake Daily API on 127.0.0.1. Bots that would join a real cloud
room are replaced by recording stand-ins here (they cannot join from this machine);
tests at the end run the real bots in a real server process.
"""

import asyncio
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import httpx
import jwt
import pytest
from fastapi.testclient import TestClient
from pipecat.runner.types import DailyRunnerArguments, LiveKitRunnerArguments

import server
from echo_bench.webrtc_client import EchoClient, SignalTrack
from tests.audio import dominant_frequency, rms, tone
from tests.conftest import LIVEKIT, LIVEKIT_SECRET, free_port, run_server
from tests.fakes.daily import FakeDailyServer


@pytest.fixture
def fake_daily():
    with FakeDailyServer() as daily:
        yield daily


@pytest.fixture
def daily_env(fake_daily) -> dict:
    return {"DAILY_API_KEY": fake_daily.api_key, "DAILY_API_URL": fake_daily.url}


def wait_until(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_daily_room_tokens_and_one_bot(configure, fake_daily, daily_env, bots):
    configure(**daily_env, ROOM_TTL="120")
    with TestClient(server.app) as client:
        before = time.time()
        response = client.post("/connect", json={"platforms": ["daily"], "mode": "loopback"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"daily"}
        daily = body["daily"]
        name = daily["room_url"].rsplit("/", 1)[-1]
        assert name.startswith("benchmark-")
        assert before + 119 < daily["expires_at"] < time.time() + 121

        created = fake_daily.requests_to("POST", "/rooms")
        assert len(created) == 1
        assert created[0].authorization == f"Bearer {fake_daily.api_key}"
        assert created[0].body["name"] == name
        assert created[0].body["privacy"] == "public"
        assert created[0].body["properties"]["eject_at_room_exp"] is True
        assert created[0].body["properties"]["exp"] == pytest.approx(daily["expires_at"], abs=1)

        tokens = [r.body["properties"] for r in fake_daily.requests_to("POST", "/meeting-tokens")]
        assert [(t["room_name"], t["is_owner"]) for t in tokens] == [(name, False), (name, True)]
        assert tokens[1]["user_name"] == "echo-daily"
        assert all(t["exp"] == pytest.approx(daily["expires_at"], abs=2) for t in tokens)

        # The bot is already starting when the response arrives: exactly one, own token.
        [args] = bots.of(DailyRunnerArguments)
        assert len(bots.started) == 1
        assert args.room_url == daily["room_url"]
        assert args.token and args.token != daily["token"]
        assert args.body == {"mode": "loopback", "tone_hz": 550.0}
        [room] = client.get("/rooms").json()["rooms"]
        assert (room["id"], room["platform"], room["mode"]) == (name, "daily", "loopback")

        bots.end(name)
        wait_until(lambda: client.get("/rooms").json()["rooms"] == [])
        wait_until(lambda: fake_daily.deleted_rooms() == [name])
        assert fake_daily.rooms == {}


def test_private_rooms_when_configured(configure, fake_daily, daily_env, bots):
    configure(**daily_env, DAILY_PRIVATE_ROOMS="true")
    with TestClient(server.app) as client:
        assert client.post("/connect", json={"platforms": ["daily"]}).status_code == 200
    assert fake_daily.requests_to("POST", "/rooms")[0].body["privacy"] == "private"
    # Shutdown ended the bot and deleted its room.
    assert fake_daily.rooms == {}


def test_livekit_tokens_are_real_jwts_with_room_grants(configure, bots):
    configure(**LIVEKIT, ROOM_TTL="300")
    with TestClient(server.app) as client:
        response = client.post("/connect", json={"platforms": ["livekit"], "mode": "tone"})
        assert response.status_code == 200, response.text
        livekit = response.json()["livekit"]
        assert livekit["server_url"] == LIVEKIT["LIVEKIT_URL"]
        assert livekit["room_name"].startswith("benchmark-")

        claims = jwt.decode(livekit["token"], LIVEKIT_SECRET, algorithms=["HS256"])
        assert claims["iss"] == LIVEKIT["LIVEKIT_API_KEY"]
        assert claims["sub"].startswith("client-")
        video = claims["video"]
        assert video["roomJoin"] is True
        assert video["room"] == livekit["room_name"]
        assert video["canPublish"] is video["canSubscribe"] is video["canPublishData"] is True
        assert not video.get("agent")
        assert claims["exp"] == pytest.approx(livekit["expires_at"], abs=2)

        [args] = bots.of(LiveKitRunnerArguments)
        assert (args.url, args.room_name) == (livekit["server_url"], livekit["room_name"])
        assert args.body["mode"] == "tone"
        agent = jwt.decode(args.token, LIVEKIT_SECRET, algorithms=["HS256"])
        assert agent["sub"].startswith("echo-livekit-")
        assert agent["sub"] != claims["sub"]
        assert agent["video"]["agent"] is True
        assert agent["video"]["room"] == livekit["room_name"]
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(livekit["token"], "another-secret-another-secret-0123", algorithms=["HS256"])


def test_no_body_means_every_configured_platform_plus_webrtc(
    configure, fake_daily, daily_env, bots
):
    configure(**daily_env, **LIVEKIT)
    with TestClient(server.app) as client:
        body = client.post("/connect").json()
        assert set(body) == {"daily", "livekit", "webrtc"}
        assert body["webrtc"]["offer_url"].endswith(
            f"/sessions/{body['webrtc']['session_id']}/api/offer"
        )
        rooms = client.get("/rooms").json()["rooms"]
        assert sorted(r["platform"] for r in rooms) == ["daily", "livekit", "webrtc"]
        assert len({r["room"] for r in rooms}) == 3
        assert len(bots.started) == 2


def test_only_webrtc_without_cloud_keys(configure, bots):
    configure()
    with TestClient(server.app) as client:
        assert set(client.post("/connect", json={}).json()) == {"webrtc"}


@pytest.mark.parametrize(
    ("platform", "missing"),
    [
        ("daily", ["DAILY_API_KEY"]),
        ("livekit", ["LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"]),
    ],
)
def test_platform_asked_for_but_not_configured_is_400_naming_variables(
    configure, bots, platform, missing
):
    configure()
    with TestClient(server.app) as client:
        response = client.post("/connect", json={"platforms": ["webrtc", platform]})
        assert response.status_code == 400
        for variable in missing:
            assert variable in response.json()["detail"]
        assert client.get("/rooms").json()["rooms"] == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"platforms": ["zoom"]}, "platforms.0"),
        ({"platforms": []}, "platforms"),
        ({"mode": "karaoke"}, "mode"),
        ({"mode": "tone", "tone_hz": 5}, "tone_hz"),
        ({"mode": "tone", "tone_hz": 30000}, "tone_hz"),
        ({"tone_hz": "loud"}, "tone_hz"),
    ],
)
def test_bad_requests_are_400_with_a_message(configure, bots, body, message):
    configure()
    with TestClient(server.app) as client:
        response = client.post("/connect", json=body)
        assert response.status_code == 400
        assert message in response.json()["detail"]
        assert client.get("/rooms").json()["rooms"] == []


def test_malformed_json_is_400(configure, bots):
    configure()
    with TestClient(server.app) as client:
        response = client.post(
            "/connect", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert response.status_code == 400


@pytest.mark.parametrize(
    ("route", "how"),
    [
        ("POST /rooms", "500"),
        ("POST /rooms", "malformed"),
        ("POST /meeting-tokens", "500"),
        ("POST /meeting-tokens", "malformed"),
    ],
)
def test_daily_failure_is_502_naming_daily_and_leaves_nothing(
    configure, fake_daily, daily_env, bots, route, how
):
    configure(**daily_env, **LIVEKIT)
    fake_daily.fail[route] = how
    with TestClient(server.app) as client:
        response = client.post("/connect", json={"platforms": ["webrtc", "livekit", "daily"]})
        assert response.status_code == 502
        assert response.json()["platform"] == "daily"
        assert "Daily" in response.json()["detail"]
        assert fake_daily.api_key not in response.text
        wait_until(lambda: client.get("/rooms").json()["rooms"] == [])
    # The LiveKit bot started before Daily failed was ended; no Daily room is left.
    assert fake_daily.rooms == {}
    assert bots.of(DailyRunnerArguments) == []


def test_daily_timeout_is_502_after_10s(configure, fake_daily, daily_env, bots):
    configure(**daily_env)
    fake_daily.fail["POST /rooms"] = "slow"
    with TestClient(server.app) as client:
        started = time.monotonic()
        response = client.post("/connect", json={"platforms": ["daily"]})
        assert 9 < time.monotonic() - started < 14
        assert response.status_code == 502
        assert "timed out" in response.json()["detail"]
        assert client.get("/rooms").json()["rooms"] == []


def test_wrong_daily_key_is_502(configure, fake_daily, bots):
    configure(DAILY_API_KEY="wrong-key-wrong-key", DAILY_API_URL=fake_daily.url)
    with TestClient(server.app) as client:
        response = client.post("/connect", json={"platforms": ["daily"]})
        assert response.status_code == 502
        assert "wrong-key-wrong-key" not in response.text


def test_session_limit_is_503_with_retry_after_and_creates_no_room(
    configure, fake_daily, daily_env, bots
):
    configure(**daily_env, MAX_SESSIONS="2")
    with TestClient(server.app) as client:
        assert client.post("/connect", json={"platforms": ["daily", "webrtc"]}).status_code == 200
        response = client.post("/connect", json={"platforms": ["daily"]})
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) > 0
        assert len(fake_daily.requests_to("POST", "/rooms")) == 1
        assert len(client.get("/rooms").json()["rooms"]) == 2


def test_delete_room_ends_the_session_and_deletes_the_daily_room(
    configure, fake_daily, daily_env, bots
):
    configure(**daily_env)
    with TestClient(server.app) as client:
        name = client.post("/connect", json={"platforms": ["daily"]}).json()["daily"]["room_url"]
        name = name.rsplit("/", 1)[-1]
        assert client.delete(f"/rooms/{name}").status_code == 200
        assert client.get("/rooms").json()["rooms"] == []
        assert fake_daily.deleted_rooms() == [name]
        assert client.delete(f"/rooms/{name}").status_code == 404
        assert client.delete("/rooms/no-such-room").status_code == 404


def test_a_failing_room_deletion_is_logged_not_raised(configure, fake_daily, daily_env, bots):
    configure(**daily_env)
    with TestClient(server.app) as client:
        url = client.post("/connect", json={"platforms": ["daily"]}).json()["daily"]["room_url"]
        fake_daily.fail["DELETE /rooms/{name}"] = "500"
        assert client.delete(f"/rooms/{url.rsplit('/', 1)[-1]}").status_code == 200
        assert client.get("/rooms").json()["rooms"] == []


def test_50_concurrent_connects_give_50_distinct_rooms(configure, fake_daily, daily_env, bots):
    configure(**daily_env)
    with TestClient(server.app) as client:
        with ThreadPoolExecutor(50) as pool:
            responses = list(
                pool.map(
                    lambda _: client.post("/connect", json={"platforms": ["daily"]}), range(50)
                )
            )
        assert [r.status_code for r in responses] == [200] * 50
        urls = {r.json()["daily"]["room_url"] for r in responses}
        assert len(urls) == 50
        rooms = client.get("/rooms").json()["rooms"]
        assert {r["id"] for r in rooms} == {u.rsplit("/", 1)[-1] for u in urls}
        assert len(bots.started) == 50
        for room in rooms:
            assert client.delete(f"/rooms/{room['id']}").status_code == 200
        assert client.get("/rooms").json()["rooms"] == []
    assert sorted(fake_daily.deleted_rooms()) == sorted(r["id"] for r in rooms)
    assert fake_daily.rooms == {}


def test_secrets_never_leave_the_server(configure, fake_daily, daily_env, bots, logs):
    configure(**daily_env, **LIVEKIT)
    with TestClient(server.app) as client:
        texts = [
            client.post("/connect").text,
            client.get("/rooms").text,
            client.get("/health").text,
            client.post("/connect", json={"platforms": ["zoom"]}).text,
        ]
        fake_daily.fail["POST /rooms"] = "500"
        texts.append(client.post("/connect", json={"platforms": ["daily"]}).text)
    assert len(logs) > 5
    everything = "\n".join(texts + logs)
    assert fake_daily.api_key not in everything
    assert LIVEKIT_SECRET not in everything
    assert "Bearer" not in "\n".join(logs)


# ---------------------------------------------------------------------------
# Real bots, real server process


async def test_webrtc_through_connect_gets_a_bot_in_the_requested_mode(tmp_path):
    with run_server(tmp_path) as running:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{running.url}/connect", json={"platforms": ["webrtc"], "mode": "loopback"}
            ) as response:
                assert response.status == 200
                webrtc = (await response.json())["webrtc"]
            [room] = running.rooms()
            assert (room["id"], room["mode"], room["status"]) == (
                webrtc["session_id"],
                "loopback",
                "waiting",
            )
            client = EchoClient(microphone=SignalTrack(tone(1000)))
            await client.connect(webrtc["offer_url"], http)
            client.send({"type": "ping", "timestamp": 1.0})
            assert (await client.next_message())[1]["type"] == "pong"
            await asyncio.sleep(2.5)
            [room] = running.rooms()
            assert (room["status"], room["clients"], room["pings_answered"]) == ("running", 1, 1)

            # A second peer cannot take over the session.
            other = EchoClient()
            await other.pc.setLocalDescription(await other.pc.createOffer())
            offer = {"sdp": other.pc.localDescription.sdp, "type": "offer"}
            async with http.post(webrtc["offer_url"], json=offer) as response:
                assert response.status == 409
            await other.pc.close()

            await client.close()
            await asyncio.to_thread(running.wait_rooms, lambda rooms: rooms == [], 5.0)
        samples = client.received.samples()[48000:]
        assert rms(samples) > 1000
        assert abs(dominant_frequency(samples) - 1000) < 10


def test_unused_webrtc_reservation_expires_after_join_timeout(tmp_path):
    with run_server(tmp_path, JOIN_TIMEOUT="2") as running:
        webrtc = httpx.post(f"{running.url}/connect", json={"platforms": ["webrtc"]}).json()
        assert [r["id"] for r in running.rooms()] == [webrtc["webrtc"]["session_id"]]
        running.wait_rooms(lambda rooms: rooms == [], 5.0)
        response = httpx.post(webrtc["webrtc"]["offer_url"], json={"sdp": "v=0", "type": "offer"})
        assert response.status_code == 404


def test_daily_bot_that_cannot_join_ends_cleanly(tmp_path, fake_daily):
    env = {"DAILY_API_KEY": fake_daily.api_key, "DAILY_API_URL": fake_daily.url}
    with run_server(tmp_path, **env) as running:
        response = httpx.post(f"{running.url}/connect", json={"platforms": ["daily"]}, timeout=15)
        assert response.status_code == 200
        name = response.json()["daily"]["room_url"].rsplit("/", 1)[-1]
        assert [r["id"] for r in running.rooms()] == [name]
        # The room URL points at 127.0.0.1: the join fails locally (~20 s in daily-python).
        running.wait_rooms(lambda rooms: rooms == [], 40.0)
        wait_until(lambda: fake_daily.deleted_rooms() == [name])
        assert "transport error" in running.log()
        assert fake_daily.api_key not in running.log()


def test_sigterm_ends_every_bot_deletes_rooms_and_exits_within_10s(tmp_path, fake_daily):
    env = {"DAILY_API_KEY": fake_daily.api_key, "DAILY_API_URL": fake_daily.url}
    with run_server(tmp_path, **env) as running:
        body = httpx.post(
            f"{running.url}/connect", json={"platforms": ["daily", "webrtc"]}, timeout=15
        ).json()
        name = body["daily"]["room_url"].rsplit("/", 1)[-1]
        assert len(running.rooms()) == 2
        started = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        running.process.wait(timeout=10)
        assert time.monotonic() - started < 10
        assert running.process.returncode == 0  # a clean stop, not "killed by signal 15"
        assert fake_daily.deleted_rooms() == [name]
        assert fake_daily.rooms == {}


def test_livekit_bot_that_cannot_join_ends_cleanly(tmp_path):
    env = {**LIVEKIT, "LIVEKIT_URL": f"ws://127.0.0.1:{free_port()}"}
    with run_server(tmp_path, clouds=True, **env) as running:
        response = httpx.post(f"{running.url}/connect", json={"platforms": ["livekit"]})
        assert response.status_code == 200
        name = response.json()["livekit"]["room_name"]
        assert [r["id"] for r in running.rooms()] == [name]
        running.wait_rooms(lambda rooms: rooms == [], 15.0)
        assert "transport error" in running.log()
        assert LIVEKIT_SECRET not in running.log()
