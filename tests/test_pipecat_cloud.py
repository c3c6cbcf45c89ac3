"""The Pipecat Cloud client against a fake Pipecat Cloud API on 127.0.0.1 (real HTTP).

One test talks to the real Pipecat Cloud: it runs when PIPECAT_CLOUD_API_KEY and
PIPECAT_CLOUD_AGENT_NAME are set (env or .env) and is skipped otherwise.
"""

import os
import time

import aiohttp
import pytest

from config import PlatformNotConfiguredError, Settings
from tests.fakes.pipecat_cloud import FakePipecatCloud
from transports.errors import PlatformAPIError
from transports.pipecat_cloud import PipecatCloudAgent, private_api_url_for

BODY = {"mode": "loopback", "tone_hz": 440.0}
LIVEKIT_BODY = {
    "mode": "pong",
    "livekit": {"url": "wss://lk.example", "room_name": "benchmark-1", "token": "lk-agent-jwt"},
}


@pytest.fixture
async def cloud():
    async with FakePipecatCloud() as fake:
        yield fake


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def agent_for(cloud: FakePipecatCloud, http, **overrides) -> PipecatCloudAgent:
    kwargs = {
        "api_url": cloud.api_url,
        "private_api_key": cloud.private_key,
        "timeout": 10.0,
    }
    api_key = overrides.pop("api_key", cloud.public_key)
    agent_name = overrides.pop("agent_name", "echo-agent")
    return PipecatCloudAgent(api_key, agent_name, http, **{**kwargs, **overrides})


def assert_clean(error: PlatformAPIError, cloud: FakePipecatCloud):
    """Names Pipecat Cloud, says no secret."""
    message = str(error)
    assert error.platform == "pipecat-cloud"
    assert "Pipecat Cloud" in message
    assert cloud.public_key not in message and cloud.private_key not in message


# ---------------------------------------------------------------------------
# Starting


async def test_start_with_daily_room_sends_the_public_api_request(cloud, http):
    expires_at = time.time() + 600
    session = await agent_for(cloud, http).start(
        BODY, create_daily_room=True, expires_at=expires_at
    )

    [request] = cloud.requests
    assert request.method == "POST"
    assert request.path == "/v1/public/echo-agent/start"
    assert request.headers["Authorization"] == f"Bearer {cloud.public_key}"
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.json == {
        "createDailyRoom": True,
        "body": BODY,
        "dailyRoomProperties": {"exp": int(expires_at), "eject_at_room_exp": True},
        "dailyMeetingTokenProperties": {"exp": int(expires_at), "eject_at_token_exp": True},
    }
    started = cloud.sessions[session.session_id]
    assert session.room_url == started.daily_room
    assert session.token == started.daily_token
    assert started.body == BODY


async def test_start_without_daily_room_passes_the_livekit_body(cloud, http):
    session = await agent_for(cloud, http).start(LIVEKIT_BODY)

    [request] = cloud.requests
    assert request.json == {"createDailyRoom": False, "body": LIVEKIT_BODY}
    assert session.room_url is None and session.token is None
    assert cloud.sessions[session.session_id].body == LIVEKIT_BODY


async def test_session_repr_hides_the_token(cloud, http):
    session = await agent_for(cloud, http).start(BODY, create_daily_room=True)
    assert session.token and session.token not in repr(session)


async def test_wrong_api_key_is_a_clear_error(cloud, http):
    with pytest.raises(PlatformAPIError) as caught:
        await agent_for(cloud, http, api_key="pk_wrong_key_123").start(BODY)
    assert_clean(caught.value, cloud)
    assert "pk_wrong_key_123" not in str(caught.value)
    assert "HTTP 401" in str(caught.value) and "API key" in str(caught.value)
    assert cloud.running() == []


async def test_unknown_agent_is_a_clear_error(cloud, http):
    with pytest.raises(PlatformAPIError) as caught:
        await agent_for(cloud, http, agent_name="no-such-agent").start(BODY)
    assert_clean(caught.value, cloud)
    assert "no-such-agent" in str(caught.value) and "HTTP 404" in str(caught.value)


async def test_server_error_is_a_clear_error(cloud, http):
    cloud.fail_with = 500
    with pytest.raises(PlatformAPIError) as caught:
        await agent_for(cloud, http).start(BODY, create_daily_room=True)
    assert_clean(caught.value, cloud)
    assert "HTTP 500" in str(caught.value)
    assert cloud.running() == []


async def test_capacity_error_is_named(cloud, http):
    cloud.fail_with = 429
    with pytest.raises(PlatformAPIError, match="at capacity"):
        await agent_for(cloud, http).start(BODY)


async def test_slow_api_times_out(cloud, http):
    cloud.delay = 2.0
    started = time.monotonic()
    with pytest.raises(PlatformAPIError) as caught:
        await agent_for(cloud, http, timeout=0.3).start(BODY)
    assert time.monotonic() - started < 1.5
    assert_clean(caught.value, cloud)
    assert "timed out after 0.3 s" in str(caught.value)


def test_default_timeout_is_10_seconds():
    import inspect

    default = inspect.signature(PipecatCloudAgent).parameters["timeout"].default
    assert default == 10.0


async def test_unreachable_api_is_a_clear_error(http):
    closed = FakePipecatCloud()
    await closed.start()
    url = closed.api_url
    await closed.close()
    agent = PipecatCloudAgent(closed.public_key, "echo-agent", http, api_url=url, timeout=2)
    with pytest.raises(PlatformAPIError) as caught:
        await agent.start(BODY)
    assert_clean(caught.value, closed)
    assert "unreachable" in str(caught.value)


@pytest.mark.parametrize("malformed", ["not-json", "json-list", "no-session-id"])
async def test_malformed_answer_is_a_clear_error(cloud, http, malformed):
    cloud.malformed = malformed
    with pytest.raises(PlatformAPIError) as caught:
        await agent_for(cloud, http).start(BODY, create_daily_room=True)
    assert_clean(caught.value, cloud)
    assert "malformed" in str(caught.value)


async def test_session_started_with_a_malformed_answer_is_stopped_again(cloud, http):
    cloud.malformed = "no-daily-room"
    with pytest.raises(PlatformAPIError, match="no Daily room"):
        await agent_for(cloud, http).start(BODY, create_daily_room=True)
    [session] = cloud.sessions.values()
    assert session.stopped
    assert [r.method for r in cloud.requests] == ["POST", "DELETE"]


async def test_keys_and_tokens_are_never_logged(cloud, http, logs):
    agent = agent_for(cloud, http)
    session = await agent.start(BODY, create_daily_room=True)
    await agent.stop(session.session_id)
    cloud.fail_with = 500
    with pytest.raises(PlatformAPIError):
        await agent.start(BODY)
    text = "\n".join(logs)
    assert session.session_id in text
    for secret in (cloud.public_key, cloud.private_key, session.token):
        assert secret not in text


# ---------------------------------------------------------------------------
# Stopping


async def test_stop_uses_the_private_api(cloud, http):
    agent = agent_for(cloud, http)
    session = await agent.start(BODY, create_daily_room=True)

    assert await agent.stop(session.session_id) is True

    request = cloud.requests[-1]
    assert request.method == "DELETE"
    assert request.path == f"/v1/agents/echo-agent/sessions/{session.session_id}"
    assert request.headers["Authorization"] == f"Bearer {cloud.private_key}"
    assert cloud.running() == []


async def test_stopping_a_session_that_is_gone_returns_false(cloud, http):
    agent = agent_for(cloud, http)
    session = await agent.start(BODY)
    assert await agent.stop(session.session_id) is True
    assert await agent.stop(session.session_id) is False
    assert await agent.stop("00000000-0000-0000-0000-000000000000") is False


async def test_stop_with_a_wrong_private_key_is_a_clear_error(cloud, http):
    agent = agent_for(cloud, http)
    session = await agent.start(BODY)
    wrong = agent_for(cloud, http, private_api_key="sk_wrong_key_456")
    with pytest.raises(PlatformAPIError) as caught:
        await wrong.stop(session.session_id)
    assert_clean(caught.value, cloud)
    assert "sk_wrong_key_456" not in str(caught.value)
    assert "HTTP 401" in str(caught.value)
    assert cloud.running() != []


async def test_stop_failure_is_a_clear_error(cloud, http):
    agent = agent_for(cloud, http)
    session = await agent.start(BODY)
    cloud.fail_with = 503
    with pytest.raises(PlatformAPIError) as caught:
        await agent.stop(session.session_id)
    assert_clean(caught.value, cloud)
    assert "HTTP 503" in str(caught.value)


async def test_stop_without_private_key_names_the_missing_variable(cloud, http):
    agent = agent_for(cloud, http, private_api_key=None)
    assert not agent.can_stop
    session = await agent.start(BODY)
    with pytest.raises(PlatformNotConfiguredError, match="PIPECAT_CLOUD_PRIVATE_API_KEY"):
        await agent.stop(session.session_id)
    assert cloud.requests[-1].method == "POST"  # nothing was sent


def test_private_api_url_is_next_to_the_public_one():
    assert private_api_url_for("https://api.pipecat.daily.co/v1/public") == (
        "https://api.pipecat.daily.co/v1"
    )
    assert private_api_url_for("http://127.0.0.1:9/v1/public/") == "http://127.0.0.1:9/v1"


# ---------------------------------------------------------------------------
# The real Pipecat Cloud


def _real_cloud_settings() -> Settings:
    settings = Settings()
    if not settings.pipecat_cloud_api_key or not settings.pipecat_cloud_agent_name:
        pytest.skip(
            "real Pipecat Cloud test: set PIPECAT_CLOUD_API_KEY (a public key) and"
            " PIPECAT_CLOUD_AGENT_NAME (a deployed echo agent) to run it;"
            " PIPECAT_CLOUD_PRIVATE_API_KEY also tests stopping"
        )
    return settings


async def test_real_pipecat_cloud_starts_and_stops_a_daily_session():
    settings = _real_cloud_settings()
    private_key = getattr(settings, "pipecat_cloud_private_api_key", None)
    if private_key is not None and not isinstance(private_key, str):
        private_key = private_key.get_secret_value()
    private_key = private_key or os.environ.get("PIPECAT_CLOUD_PRIVATE_API_KEY")
    async with aiohttp.ClientSession() as http:
        agent = PipecatCloudAgent(
            settings.pipecat_cloud_api_key.get_secret_value(),
            settings.pipecat_cloud_agent_name,
            http,
            api_url=settings.pipecat_cloud_api_url,
            private_api_key=private_key,
        )
        session = await agent.start(
            {"mode": "pong"}, create_daily_room=True, expires_at=time.time() + 120
        )
        assert session.session_id
        assert session.room_url and session.room_url.startswith("https://")
        assert session.token
        if agent.can_stop:
            assert await agent.stop(session.session_id) is True
