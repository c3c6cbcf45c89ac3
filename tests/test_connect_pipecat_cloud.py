"""POST /connect with SESSION_LAUNCHER=pipecat-cloud, against a fake Pipecat Cloud API."""

import asyncio
import re
import threading

import jwt
import pytest
from fastapi.testclient import TestClient

import server
from tests.conftest import LIVEKIT, LIVEKIT_SECRET
from tests.fakes.pipecat_cloud import FakePipecatCloud


@pytest.fixture
def cloud():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    fake = asyncio.run_coroutine_threadsafe(FakePipecatCloud().start(), loop).result(10)
    yield fake
    asyncio.run_coroutine_threadsafe(fake.close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


@pytest.fixture
def cloud_env(cloud) -> dict:
    return {
        "SESSION_LAUNCHER": "pipecat-cloud",
        "PIPECAT_CLOUD_API_KEY": cloud.public_key,
        "PIPECAT_CLOUD_PRIVATE_API_KEY": cloud.private_key,
        "PIPECAT_CLOUD_AGENT_NAME": "echo-agent",
        "PIPECAT_CLOUD_API_URL": cloud.api_url,
    }


def test_daily_room_comes_from_pipecat_cloud(configure, cloud, cloud_env, bots):
    configure(**cloud_env, ROOM_TTL="300")
    with TestClient(server.app) as client:
        response = client.post("/connect", json={"platforms": ["daily"], "mode": "loopback"})
        assert response.status_code == 200, response.text
        daily = response.json()["daily"]
        [session] = cloud.running()
        assert daily["room_url"] == session.daily_room
        assert daily["token"] == session.daily_token
        assert session.body == {"mode": "loopback", "tone_hz": 550.0}
        assert session.daily_room_properties["exp"] == pytest.approx(daily["expires_at"], abs=1)
        assert session.daily_room_properties["eject_at_room_exp"] is True
        assert bots.started == []  # no bot in this process

        [room] = client.get("/rooms").json()["rooms"]
        assert room["pipecat_cloud_session_id"] == session.session_id
        assert room["platform"] == "daily"
        # The room is named by Pipecat Cloud; the session id is ours, with 128 random bits.
        assert room["room"] == daily["room_url"].rsplit("/", 1)[-1]
        assert re.fullmatch(r"benchmark-\d+-[0-9a-f]{32}", room["id"]), room["id"]
        assert client.delete(f"/rooms/{room['id']}").status_code == 200
        assert cloud.running() == []
        assert client.get("/rooms").json()["rooms"] == []


def test_livekit_bot_gets_its_token_and_room_in_the_body(configure, cloud, cloud_env, bots):
    configure(**cloud_env, **LIVEKIT)
    with TestClient(server.app) as client:
        livekit = client.post("/connect", json={"platforms": ["livekit"]}).json()["livekit"]
        [session] = cloud.running()
        entry = session.body["livekit"]
        assert (entry["url"], entry["room_name"]) == (LIVEKIT["LIVEKIT_URL"], livekit["room_name"])
        claims = jwt.decode(entry["token"], LIVEKIT_SECRET, algorithms=["HS256"])
        assert claims["video"]["agent"] is True
        assert claims["video"]["room"] == livekit["room_name"]
        assert session.daily_room is None
        assert bots.started == []


def test_pipecat_cloud_failure_is_502_and_leaves_nothing(configure, cloud, cloud_env, bots):
    configure(**cloud_env, **LIVEKIT)
    cloud.fail_with = 500
    with TestClient(server.app) as client:
        response = client.post("/connect", json={"platforms": ["webrtc", "daily"]})
        assert response.status_code == 502
        assert response.json()["platform"] == "pipecat-cloud"
        assert "Pipecat Cloud" in response.json()["detail"]
        assert cloud.private_key not in response.text and cloud.public_key not in response.text
        assert client.get("/rooms").json()["rooms"] == []
    assert cloud.running() == []


def test_pipecat_cloud_launcher_without_its_keys_is_400(configure, bots):
    configure(SESSION_LAUNCHER="pipecat-cloud")
    with TestClient(server.app) as client:
        response = client.post("/connect", json={"platforms": ["daily"]})
        assert response.status_code == 400
        assert "PIPECAT_CLOUD_API_KEY" in response.json()["detail"]
        assert "PIPECAT_CLOUD_AGENT_NAME" in response.json()["detail"]
