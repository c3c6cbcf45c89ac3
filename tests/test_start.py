"""POST /start: Pipecat's runner convention, one session on one transport.

Daily runs against the fake Daily API; Daily and LiveKit bots are recorded, not run
(they cannot join from here). The local WebRTC test runs the real server and a real
aiortc peer that offers where a Pipecat JS client would.
"""

import time

import aiohttp
import jwt
import pytest
from fastapi.testclient import TestClient
from pipecat.runner.types import DailyRunnerArguments, LiveKitRunnerArguments

import server
from echo_bench.webrtc_client import EchoClient
from tests.conftest import LIVEKIT, LIVEKIT_SECRET, run_server
from tests.fakes.daily import FakeDailyServer


@pytest.fixture
def fake_daily():
    with FakeDailyServer() as daily:
        yield daily


def test_daily_answers_the_runner_fields(configure, fake_daily, bots):
    configure(DAILY_API_KEY=fake_daily.api_key, DAILY_API_URL=fake_daily.url)
    with TestClient(server.app) as client:
        response = client.post(
            "/start",
            json={"transport": "daily", "body": {"mode": "tone", "tone_hz": 440}, "x": 1},
        )
        assert response.status_code == 200, response.text
        result = response.json()
        assert set(result) == {"sessionId", "dailyRoom", "dailyToken"}
        assert result["dailyRoom"].rsplit("/", 1)[-1] == result["sessionId"]
        [args] = bots.of(DailyRunnerArguments)
        assert args.room_url == result["dailyRoom"]
        assert args.token != result["dailyToken"]
        assert args.body == {"mode": "tone", "tone_hz": 440.0}
        [room] = client.get("/rooms").json()["rooms"]
        assert (room["id"], room["platform"]) == (result["sessionId"], "daily")


def test_livekit_answers_url_and_a_client_token(configure, bots):
    configure(**LIVEKIT)
    with TestClient(server.app) as client:
        response = client.post("/start", json={"transport": "livekit"})
        assert response.status_code == 200, response.text
        result = response.json()
        assert set(result) == {"sessionId", "url", "token"}
        assert result["url"] == LIVEKIT["LIVEKIT_URL"]
        claims = jwt.decode(result["token"], LIVEKIT_SECRET, algorithms=["HS256"])
        assert claims["video"]["room"] == result["sessionId"]
        assert not claims["video"].get("agent")
        [args] = bots.of(LiveKitRunnerArguments)
        assert args.room_name == result["sessionId"]
        assert args.body == {"mode": "pong", "tone_hz": 550.0}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"transport": "twilio"}, 400, "transport"),
        ({"transport": "webrtc", "body": {"mode": "karaoke"}}, 400, "mode: Input should be"),
        ({"transport": "webrtc", "body": {"tone_hz": 5}}, 400, "tone_hz: Input should be greater"),
        ({"transport": "daily"}, 400, "daily is not configured: set DAILY_API_KEY"),
    ],
)
def test_bad_starts_are_400_with_a_message(configure, bots, body, status, message):
    configure()
    with TestClient(server.app) as client:
        response = client.post("/start", json=body)
        assert response.status_code == status
        assert message in response.json()["detail"]
        assert client.get("/rooms").json()["rooms"] == []


async def test_webrtc_start_then_offer_to_the_session_gets_pongs(tmp_path):
    with run_server(tmp_path) as running:
        async with aiohttp.ClientSession() as http:
            start = {"transport": "webrtc", "body": {"mode": "pong"}}
            async with http.post(f"{running.url}/start", json=start) as response:
                assert response.status == 200
                result = await response.json()
            assert set(result) == {"sessionId"}
            [room] = running.rooms()
            assert (room["id"], room["status"]) == (result["sessionId"], "waiting")
            client = EchoClient()
            await client.connect(f"{running.url}/sessions/{result['sessionId']}/api/offer", http)
            client.send({"type": "ping", "timestamp": time.time(), "seq": 1})
            _, pong = await client.next_message()
            assert (pong["type"], pong["seq"], pong["message_count"]) == ("pong", 1, 1)
            await client.close()
