"""RTVI beside the seed format (issue 12 point 1): processor tests and an aiortc session.

Shapes are checked against Pipecat's own RTVI models; what @pipecat-ai/client-js 1.13
needs: `bot-ready` answering `client-ready` (major 2), `server-response` with the
request's id for `sendClientRequest`, the "rtvi-ai" label on everything.
"""

import time

import pipecat.processors.frameworks.rtvi.models as RTVI
import pytest
from pipecat.frames.frames import InputTransportMessageFrame, OutputTransportMessageUrgentFrame
from pipecat.tests.utils import run_test
from pipecat.transports.daily.transport import (
    DailyInputTransportMessageFrame,
    DailyOutputTransportMessageUrgentFrame,
)
from pipecat.transports.livekit.transport import (
    LiveKitInputTransportMessageFrame,
    LiveKitOutputTransportMessageUrgentFrame,
)

from processors import PongProcessor
from tests.peer import Peer
from transports import daily, livekit

CLIENT_READY = {
    "label": "rtvi-ai",
    "type": "client-ready",
    "id": "ready-1",
    "data": {"version": "2.1.0", "about": {"library": "@pipecat-ai/client-js"}},
}


def rtvi_ping(msg_id: str, **d) -> dict:
    return {"label": "rtvi-ai", "type": "client-message", "id": msg_id,
            "data": {"t": "ping", "d": d}}  # fmt: skip


def frame(message) -> InputTransportMessageFrame:
    return InputTransportMessageFrame(message=message)


async def answers(*messages, processor=None, expected: int | None = None) -> list[dict]:
    down, _ = await run_test(
        processor or PongProcessor(),
        frames_to_send=[m if not isinstance(m, dict) else frame(m) for m in messages],
        expected_down_frames=None
        if expected is None
        else [OutputTransportMessageUrgentFrame] * expected,
    )
    return [f.message for f in down]


async def test_client_ready_gets_bot_ready_with_the_same_id_and_protocol_2():
    [ready] = await answers(CLIENT_READY, expected=1)
    parsed = RTVI.BotReady.model_validate(ready)
    assert (parsed.label, parsed.type, parsed.id) == ("rtvi-ai", "bot-ready", "ready-1")
    assert parsed.data.version == RTVI.PROTOCOL_VERSION and parsed.data.version.startswith("2.")
    assert ready["data"]["about"]["library"] == "pipecat-ai"


async def test_a_client_of_another_major_version_is_told_and_still_gets_bot_ready():
    old = {**CLIENT_READY, "data": {"version": "0.3.0"}}
    error, ready = await answers(old, expected=2)
    assert RTVI.ErrorResponse.model_validate(error).id == "ready-1"
    assert "not compatible" in error["data"]["error"]
    assert ready["type"] == "bot-ready"


async def test_an_rtvi_ping_gets_a_server_response_carrying_the_pong():
    before = time.time()
    [response] = await answers(rtvi_ping("req-7", timestamp=12.5, seq=3), expected=1)
    parsed = RTVI.ServerResponse.model_validate(response)
    assert (parsed.id, parsed.data.t) == ("req-7", "ping")
    pong = response["data"]["d"]
    assert set(pong) == {
        "type",
        "client_timestamp",
        "server_receive_time",
        "server_send_time",
        "message_count",
        "seq",
    }
    assert (pong["type"], pong["client_timestamp"], pong["seq"]) == ("pong", 12.5, 3)
    assert before <= pong["server_receive_time"] <= pong["server_send_time"] <= time.time()


async def test_both_kinds_of_ping_count_in_message_count_and_pings_answered():
    processor = PongProcessor()
    replies = await answers(
        {"type": "ping", "timestamp": 1},
        rtvi_ping("a", timestamp=2),
        {"type": "ping", "timestamp": 3},
        rtvi_ping("b", timestamp=4),
        processor=processor,
        expected=4,
    )
    counts = [r.get("message_count") or r["data"]["d"]["message_count"] for r in replies]
    assert counts == [1, 2, 3, 4]
    assert processor.pings_answered == 4


@pytest.mark.parametrize(
    ("d", "error"),
    [
        (None, "ping data must be an object {timestamp, seq?}"),
        ({}, "ping has no timestamp"),
        ({"timestamp": "now"}, "ping timestamp must be a number, got str"),
    ],
)
async def test_a_bad_rtvi_ping_gets_an_error_response_with_its_id(d, error):
    message = {"label": "rtvi-ai", "type": "client-message", "id": "x1",
               "data": {"t": "ping", "d": d}}  # fmt: skip
    [reply] = await answers(message, expected=1)
    parsed = RTVI.ErrorResponse.model_validate(reply)
    assert (parsed.id, parsed.data.error) == ("x1", error)


async def test_unsupported_rtvi_messages_are_answered_or_ignored_never_fatal():
    replies = await answers(
        {"label": "rtvi-ai", "type": "client-message", "id": "m", "data": {"t": "weather"}},
        {"label": "rtvi-ai", "type": "disconnect-bot", "id": "d", "data": {}},
        {"label": "rtvi-ai", "type": "client-ready"},  # no id: nothing to answer
        {"label": "rtvi-ai", "type": "send-text", "id": "t", "data": {"content": "hi"}},
        {"type": "ping", "timestamp": 5},
        expected=2,
    )
    assert (
        replies[0]
        == RTVI.ErrorResponse(
            id="m", data=RTVI.ErrorResponseData(error="unsupported client message 'weather'")
        ).model_dump()
    )
    assert replies[1]["type"] == "pong" and replies[1]["message_count"] == 1


@pytest.mark.parametrize(
    ("platform", "frame_in", "frame_out"),
    [
        (daily, DailyInputTransportMessageFrame, DailyOutputTransportMessageUrgentFrame),
        (livekit, LiveKitInputTransportMessageFrame, LiveKitOutputTransportMessageUrgentFrame),
    ],
)
async def test_rtvi_replies_on_daily_and_livekit_go_to_the_sender(platform, frame_in, frame_out):
    down, _ = await run_test(
        PongProcessor(reply_frame=platform.reply_frame),
        frames_to_send=[
            frame_in(message=CLIENT_READY, participant_id="alice"),
            frame_in(message=rtvi_ping("p", timestamp=1), participant_id="bob"),
        ],
        expected_down_frames=[frame_out, frame_out],
    )
    assert [(f.participant_id, f.message["type"]) for f in down] == [
        ("alice", "bot-ready"),
        ("bob", "server-response"),
    ]


async def test_an_rtvi_client_over_webrtc_gets_bot_ready_and_all_its_pings_answered(server):
    peer = await Peer().connect(f"{server.url}/api/offer")
    peer.send(CLIENT_READY)
    [ready] = await peer.collect(lambda r: len(r) >= 1, within=5, quiet=0)
    assert RTVI.BotReady.model_validate(ready).id == "ready-1"

    for n in range(50):
        peer.send(rtvi_ping(f"req-{n}", timestamp=time.time(), seq=n))
        peer.send({"type": "ping", "timestamp": time.time(), "seq": f"raw-{n}"})
        if n % 10 == 0:
            peer.send(f"ping: {int(time.time() * 1000)}")  # the JS transport's keepalive
    replies = await peer.collect(lambda r: len(r) >= 100, within=10)

    responses = [r for r in replies if r.get("type") == "server-response"]
    raw = [r for r in replies if r.get("type") == "pong"]
    assert [r["id"] for r in responses] == [f"req-{n}" for n in range(50)]
    assert [r["data"]["d"]["seq"] for r in responses] == list(range(50))
    assert [r["seq"] for r in raw] == [f"raw-{n}" for n in range(50)]
    counts = sorted(
        [r["data"]["d"]["message_count"] for r in responses] + [r["message_count"] for r in raw]
    )
    assert counts == list(range(1, 101))
    assert len(replies) == 100  # keepalives are not answered
    [room] = [r for r in server.rooms() if r["id"] == peer.pc_id]
    assert room["pings_answered"] == 100
    await peer.close()
