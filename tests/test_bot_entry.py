"""`bot(runner_args)`, the entry Pipecat Cloud and the runner call: transports and modes.

Transports are constructed, never joined: `run_bot` is replaced by a recorder, so the
tests see exactly the transport and options a real session would run with.
"""

from dataclasses import dataclass

import pytest
from pipecat.runner.types import (
    DailyRunnerArguments,
    LiveKitRunnerArguments,
    RunnerArguments,
    SmallWebRTCRunnerArguments,
)
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection

import bot
from config import get_settings
from processors import (
    DEFAULT_TONE_HZ,
    AudioLoopbackProcessor,
    EchoMode,
    PongProcessor,
    ToneGeneratorProcessor,
)
from transports import daily, livekit
from transports.daily import EchoDailyTransport
from transports.livekit import EchoLiveKitTransport
from transports.media import transport_params
from transports.webrtc import EchoWebRTCTransport

ROOM_URL = "https://echo-test.daily.co/benchmark-123"
LIVEKIT_URL = "ws://127.0.0.1:7880"
LIVEKIT_SESSION = {"url": LIVEKIT_URL, "room_name": "benchmark-456", "token": "lk-agent-jwt"}

# Audio per mode: (input enabled, output enabled); rates are 48 kHz wherever audio flows.
AUDIO = {
    EchoMode.PONG: (False, False),
    EchoMode.LOOPBACK: (True, True),
    EchoMode.TONE: (False, True),
}


@pytest.fixture(autouse=True)
def settings(monkeypatch, tmp_path):
    """Known settings: no developer .env, a recognisable Daily bot name."""
    monkeypatch.chdir(tmp_path)
    for name in ("DAILY_API_KEY", "LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAILY_AGENT_NAME", "echo-under-test")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@dataclass
class Started:
    """What `run_bot` was called with."""

    transport: object
    options: bot.BotOptions


@pytest.fixture
def started(monkeypatch) -> list[Started]:
    """Every `run_bot` call; nothing is run, so no transport joins anything."""
    calls: list[Started] = []

    async def record(transport, options):
        calls.append(Started(transport, options))
        return "recorded"

    monkeypatch.setattr(bot, "run_bot", record)
    return calls


def daily_args(body=None, cls=DailyRunnerArguments):
    return cls(room_url=ROOM_URL, token="daily-bot-token", body=body)


def livekit_args(body=None):
    return LiveKitRunnerArguments(
        room_name="benchmark-789", url=LIVEKIT_URL, token="lk-jwt", body=body
    )


def webrtc_args(body=None):
    return SmallWebRTCRunnerArguments(webrtc_connection=SmallWebRTCConnection(), body=body)


def assert_audio(transport, mode: EchoMode):
    """The transport was built with the mode's audio (from the one mode table)."""
    assert transport.audio is bot.MODES[mode].audio
    assert (transport.audio.receive, transport.audio.send) == AUDIO[mode]


@pytest.mark.parametrize("mode", list(EchoMode))
def test_each_modes_audio_becomes_48khz_transport_params_without_video(mode):
    params = transport_params(bot.MODES[mode].audio)
    audio_in, audio_out = AUDIO[mode]
    assert params["audio_in_enabled"] is audio_in
    assert params["audio_out_enabled"] is audio_out
    assert params["audio_in_sample_rate"] == (48000 if audio_in else None)
    assert params["audio_out_sample_rate"] == (48000 if audio_out else None)
    # An echo leaves as soon as it arrives; a generated tone never stutters.
    assert params["audio_out_auto_silence"] is (mode != EchoMode.LOOPBACK)
    assert params["video_in_enabled"] is False and params["video_out_enabled"] is False


# ---------------------------------------------------------------------------
# parse_body


@pytest.mark.parametrize("body", [None, {}, {"mode": None}])
def test_empty_body_means_pong(body):
    assert bot.parse_body(body) == (EchoMode.PONG, DEFAULT_TONE_HZ)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"mode": "loopback"}, (EchoMode.LOOPBACK, DEFAULT_TONE_HZ)),
        ({"mode": "tone", "tone_hz": 880}, (EchoMode.TONE, 880.0)),
        ({"mode": "tone", "tone_hz": 1234.5}, (EchoMode.TONE, 1234.5)),
        ({"mode": "pong", "tone_hz": 500}, (EchoMode.PONG, 500.0)),
    ],
)
def test_body_gives_mode_and_tone(body, expected):
    assert bot.parse_body(body) == expected


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("loopback", "JSON object"),
        (["loopback"], "JSON object"),
        ({"mode": "shout"}, "unknown mode"),
        ({"mode": "tone", "tone_hz": "loud"}, "tone_hz"),
        ({"mode": "tone", "tone_hz": True}, "tone_hz"),
        ({"mode": "tone", "tone_hz": float("nan")}, "tone_hz"),
        ({"mode": "tone", "tone_hz": 1e9}, "tone_hz"),
    ],
)
def test_malformed_body_is_rejected_with_a_reason(body, problem):
    with pytest.raises(bot.InvalidSessionError, match=problem):
        bot.parse_body(body)


# ---------------------------------------------------------------------------
# session_transport: the right transport with the right parameters


@pytest.mark.parametrize("mode", list(EchoMode))
def test_daily_arguments_build_a_daily_transport(mode, settings):
    session = bot.session_transport(daily_args(), mode)

    transport = session.transport
    assert isinstance(transport, EchoDailyTransport)
    assert (session.platform, session.room) == ("daily", "benchmark-123")
    assert session.reply_frame is daily.reply_frame
    assert transport.arguments == daily.DailyArguments(
        ROOM_URL, "daily-bot-token", settings.daily_agent_name
    )
    assert settings.daily_agent_name == "echo-under-test"
    assert_audio(transport, mode)


@pytest.mark.parametrize("mode", list(EchoMode))
def test_livekit_arguments_build_a_livekit_transport(mode):
    session = bot.session_transport(livekit_args(), mode)

    transport = session.transport
    assert isinstance(transport, EchoLiveKitTransport)
    assert (session.platform, session.room) == ("livekit", "benchmark-789")
    assert session.reply_frame is livekit.reply_frame
    assert transport.arguments == livekit.LiveKitArguments(LIVEKIT_URL, "lk-jwt", "benchmark-789")
    assert_audio(transport, mode)


@pytest.mark.parametrize("mode", list(EchoMode))
def test_webrtc_arguments_build_a_smallwebrtc_transport(mode):
    args = webrtc_args()
    session = bot.session_transport(args, mode)

    transport = session.transport
    assert isinstance(transport, EchoWebRTCTransport)
    assert (session.platform, session.room) == ("webrtc", args.webrtc_connection.pc_id)
    assert transport.connection is args.webrtc_connection
    assert_audio(transport, mode)


def test_pipecat_cloud_daily_session_arguments_are_daily():
    # The base image passes pipecatcloud's DailySessionArguments, a DailyRunnerArguments
    # subclass (it also carries the session id).
    @dataclass
    class DailySessionArguments(DailyRunnerArguments):
        pass

    args = daily_args({"mode": "loopback"}, cls=DailySessionArguments)
    args.session_id = "0f1e2d3c-pcc-session"
    session = bot.session_transport(args, EchoMode.LOOPBACK)
    assert isinstance(session.transport, EchoDailyTransport)


# ---------------------------------------------------------------------------
# bot(): the body's mode reaches the echo processors


@pytest.fixture
def tone_spy(monkeypatch) -> list[dict]:
    """The keyword arguments of every tone generator bot.py builds."""
    made: list[dict] = []

    class Spy(ToneGeneratorProcessor):
        def __init__(self, **kwargs):
            made.append(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr(bot, "ToneGeneratorProcessor", Spy)
    return made


ARGS = {"daily": daily_args, "livekit": livekit_args, "webrtc": webrtc_args}
TRANSPORTS = {
    "daily": EchoDailyTransport,
    "livekit": EchoLiveKitTransport,
    "webrtc": EchoWebRTCTransport,
}


@pytest.mark.parametrize("platform", list(ARGS))
async def test_bot_runs_loopback_from_the_body(platform, started):
    await bot.bot(ARGS[platform]({"mode": "loopback"}))

    [call] = started
    assert isinstance(call.transport, TRANSPORTS[platform])
    assert call.options.mode == EchoMode.LOOPBACK
    assert call.options.platform == platform
    assert_audio(call.transport, EchoMode.LOOPBACK)
    processors = bot.echo_processors(call.options)
    assert [type(p) for p in processors] == [PongProcessor, AudioLoopbackProcessor]


@pytest.mark.parametrize("platform", list(ARGS))
async def test_bot_runs_the_tone_from_the_body(platform, started, tone_spy):
    await bot.bot(ARGS[platform]({"mode": "tone", "tone_hz": 880}))

    [call] = started
    assert call.options.mode == EchoMode.TONE
    assert call.options.tone_hz == 880.0
    processors = bot.echo_processors(call.options)
    assert [type(p).__mro__[1] for p in processors[1:]] == [ToneGeneratorProcessor]
    assert isinstance(processors[0], PongProcessor)
    # In direct mode like every echo processor: the pong passes it in the caller's turn.
    assert tone_spy == [
        {"frequency": 880.0, "sample_rate": 48000, "name": "tone", "enable_direct_mode": True}
    ]
    assert not any(isinstance(p, AudioLoopbackProcessor) for p in processors)


@pytest.mark.parametrize("platform", list(ARGS))
async def test_bot_without_body_answers_pings_only(platform, started, tone_spy):
    await bot.bot(ARGS[platform](None))

    [call] = started
    assert call.options.mode == EchoMode.PONG
    processors = bot.echo_processors(call.options)
    assert [type(p) for p in processors] == [PongProcessor]
    assert tone_spy == []


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("loopback", "JSON object"),
        ({"mode": "shout"}, "unknown mode 'shout'"),
        ({"mode": "tone", "tone_hz": "loud"}, "tone_hz"),
        ({"tone_hz": 1e9}, "tone_hz"),
    ],
)
async def test_malformed_body_ends_the_session_with_one_clear_line(body, problem, started, logs):
    await bot.bot(daily_args(body))  # must not raise

    assert started == []
    errors = [line for line in logs if line.startswith(("ERROR", "CRITICAL"))]
    assert len(errors) == 1, logs
    assert problem in errors[0]
    assert "Traceback" not in "".join(logs)


# ---------------------------------------------------------------------------
# Pipecat Cloud sessions without a Daily room: LiveKit from the body


@pytest.mark.parametrize("mode", list(EchoMode))
async def test_session_without_daily_room_joins_livekit_from_the_body(mode, started, logs):
    # What the base image passes when the session was started without a Daily room:
    # plain runner arguments (pipecatcloud's PipecatSessionArguments) and the body.
    await bot.bot(RunnerArguments(body={"mode": mode.value, "livekit": LIVEKIT_SESSION}))

    [call] = started
    assert isinstance(call.transport, EchoLiveKitTransport)
    transport = call.transport
    assert transport.arguments == livekit.LiveKitArguments(
        LIVEKIT_URL, "lk-agent-jwt", "benchmark-456"
    )
    assert (call.options.platform, call.options.room) == ("livekit", "benchmark-456")
    assert call.options.mode == mode
    assert_audio(transport, mode)


@pytest.mark.parametrize(
    "livekit_body",
    [
        {"url": LIVEKIT_URL, "room_name": "benchmark-456"},  # no token
        {"url": LIVEKIT_URL, "room_name": "", "token": "t"},
        {"url": 7880, "room_name": "benchmark-456", "token": "t"},
        "wss://lk.example",
    ],
)
async def test_malformed_livekit_body_ends_the_session_with_one_clear_line(
    livekit_body, started, logs
):
    await bot.bot(RunnerArguments(body={"mode": "pong", "livekit": livekit_body}))

    assert started == []
    errors = [line for line in logs if line.startswith(("ERROR", "CRITICAL"))]
    assert len(errors) == 1, logs
    assert "livekit" in errors[0].lower()
    assert "Traceback" not in "".join(logs)


async def test_session_without_room_or_livekit_body_ends_with_one_clear_line(started, logs):
    await bot.bot(RunnerArguments(body={"mode": "pong"}))

    assert started == []
    errors = [line for line in logs if line.startswith(("ERROR", "CRITICAL"))]
    assert len(errors) == 1, logs
    assert "Traceback" not in "".join(logs)
