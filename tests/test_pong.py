"""PongProcessor through Pipecat's run_test: message contents, errors, bad input."""

import json
import time
from collections import Counter

import pytest
from pipecat.frames.frames import (
    InputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
    TextFrame,
)
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
from transports import daily, livekit


def ping(**fields) -> InputTransportMessageFrame:
    return InputTransportMessageFrame(message={"type": "ping", **fields})


async def test_ping_gets_pong_with_exactly_the_specified_fields():
    before = time.time()
    down, up = await run_test(
        PongProcessor(),
        frames_to_send=[ping(timestamp=1.5)],
        expected_down_frames=[OutputTransportMessageUrgentFrame],
    )
    pong = down[0].message
    assert set(pong) == {
        "type",
        "client_timestamp",
        "server_receive_time",
        "server_send_time",
        "message_count",
    }
    assert pong["type"] == "pong"
    assert pong["client_timestamp"] == 1.5
    assert before <= pong["server_receive_time"] <= pong["server_send_time"] <= time.time()
    assert pong["message_count"] == 1
    assert up == []


async def test_seq_is_copied_back_unchanged_and_count_increases():
    seqs = [7, "abc", {"nested": [1, 2]}, None]
    down, _ = await run_test(
        PongProcessor(),
        frames_to_send=[ping(timestamp=i, seq=seq) for i, seq in enumerate(seqs)],
        expected_down_frames=[OutputTransportMessageUrgentFrame] * 4,
    )
    assert [f.message["seq"] for f in down] == seqs
    assert [f.message["message_count"] for f in down] == [1, 2, 3, 4]
    assert [f.message["client_timestamp"] for f in down] == [0, 1, 2, 3]


async def test_message_count_is_per_sender_and_replies_target_the_sender():
    frames = [
        DailyInputTransportMessageFrame(
            message={"type": "ping", "timestamp": 1}, participant_id=sender
        )
        for sender in ["alice", "bob", "alice", "alice", "bob"]
    ]
    down, _ = await run_test(
        PongProcessor(reply_frame=daily.reply_frame),
        frames_to_send=frames,
        expected_down_frames=[DailyOutputTransportMessageUrgentFrame] * 5,
    )
    assert [(f.participant_id, f.message["message_count"]) for f in down] == [
        ("alice", 1),
        ("bob", 1),
        ("alice", 2),
        ("alice", 3),
        ("bob", 2),
    ]


async def test_livekit_replies_target_the_sender():
    down, _ = await run_test(
        PongProcessor(reply_frame=livekit.reply_frame),
        frames_to_send=[
            LiveKitInputTransportMessageFrame(
                message={"type": "ping", "timestamp": 2}, participant_id="client-1"
            )
        ],
        expected_down_frames=[LiveKitOutputTransportMessageUrgentFrame],
    )
    assert down[0].participant_id == "client-1"
    assert down[0].message["client_timestamp"] == 2


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({}, "ping has no timestamp"),
        ({"timestamp": None}, "ping has no timestamp"),
        ({"timestamp": "12"}, "ping timestamp must be a number, got str"),
        ({"timestamp": True}, "ping timestamp must be a number, got bool"),
        ({"timestamp": [1]}, "ping timestamp must be a number, got list"),
        ({"timestamp": float("nan")}, "ping timestamp must be a finite number"),
        ({"timestamp": float("inf")}, "ping timestamp must be a finite number"),
    ],
)
async def test_bad_timestamp_gets_an_error_and_later_pings_still_work(fields, error):
    down, _ = await run_test(
        PongProcessor(),
        frames_to_send=[ping(**fields), ping(timestamp=3.0)],
        expected_down_frames=[OutputTransportMessageUrgentFrame] * 2,
    )
    assert down[0].message == {"type": "error", "error": error}
    assert down[1].message["type"] == "pong"
    assert down[1].message["message_count"] == 1


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        "[1, 2]",
        42,
        None,
        ["ping"],
        {"timestamp": 1},
        {"type": "pong", "timestamp": 1},
        {"type": None},
        b"\xff\xfe",
    ],
)
async def test_non_pings_are_ignored(message):
    down, _ = await run_test(
        PongProcessor(),
        frames_to_send=[InputTransportMessageFrame(message=message), ping(timestamp=1)],
        expected_down_frames=[OutputTransportMessageUrgentFrame],
    )
    assert down[0].message["message_count"] == 1


async def test_json_text_pings_are_answered():
    down, _ = await run_test(
        PongProcessor(),
        frames_to_send=[
            InputTransportMessageFrame(message=json.dumps({"type": "ping", "timestamp": 4}))
        ],
        expected_down_frames=[OutputTransportMessageUrgentFrame],
    )
    assert down[0].message["client_timestamp"] == 4


async def test_messages_over_64_kib_are_dropped():
    big = "x" * (64 * 1024)
    down, _ = await run_test(
        PongProcessor(),
        frames_to_send=[
            ping(timestamp=1, pad=big),
            InputTransportMessageFrame(
                message=json.dumps({"type": "ping", "timestamp": 1, "p": big})
            ),
            ping(timestamp=2, pad="x" * (60 * 1024)),
        ],
        expected_down_frames=[OutputTransportMessageUrgentFrame],
    )
    assert down[0].message["client_timestamp"] == 2
    assert down[0].message["message_count"] == 1


async def test_other_frames_pass_through_and_pings_are_counted():
    processor = PongProcessor()
    answered = []
    processor.event_handler("on_ping")(lambda _p, sender: answered.append(sender))
    down, _ = await run_test(
        processor, frames_to_send=[TextFrame("hello"), ping(timestamp=1), ping(timestamp=2)]
    )
    # Urgent (system) frames may overtake the queued text frame: compare by type.
    assert [f.text for f in down if isinstance(f, TextFrame)] == ["hello"]
    pongs = [f for f in down if isinstance(f, OutputTransportMessageUrgentFrame)]
    assert [f.message["client_timestamp"] for f in pongs] == [1, 2]
    assert processor.pings_answered == 2
    assert answered == [None, None]


async def test_pings_are_counted_per_sender_in_the_counter_passed_in():
    counts = Counter()
    await run_test(
        PongProcessor(ping_counts=counts),
        frames_to_send=[
            DailyInputTransportMessageFrame(
                message={"type": "ping", "timestamp": 1}, participant_id="a"
            ),
            DailyInputTransportMessageFrame(
                message={"type": "ping", "timestamp": 2}, participant_id="b"
            ),
            DailyInputTransportMessageFrame(
                message={"type": "ping", "timestamp": 3}, participant_id="a"
            ),
            ping(),  # no timestamp: answered with an error, not counted
        ],
    )
    assert counts == {"a": 2, "b": 1}


@pytest.mark.parametrize(
    "message",
    [
        "[" * 5000 + "]" * 5000,  # RecursionError in json.loads
        b'{"type": "ping", "timestamp": 1, "x": ' + b"[" * 3000 + b"]" * 3000 + b"}",
        {"type": "ping", "timestamp": 1, "x": [[[[]]]], "deep": None},
        '{"type": "ping", "timestamp": 1' + "0" * 5000 + "}",  # over the int digit limit
        b"\xc3\x28\xa0\xa1",  # invalid UTF-8
    ],
)
async def test_undecodable_messages_are_ignored_and_the_next_ping_answered(message):
    deep: object = []
    for _ in range(3000):
        deep = [deep]
    if isinstance(message, dict):
        message = {**message, "deep": deep}  # cannot even be encoded to measure it
    down, _ = await run_test(
        PongProcessor(),
        frames_to_send=[InputTransportMessageFrame(message=message), ping(timestamp=1)],
        expected_down_frames=[OutputTransportMessageUrgentFrame],
    )
    assert down[0].message["message_count"] == 1


async def test_a_timestamp_beyond_any_float_is_an_error_not_a_crash():
    down, _ = await run_test(
        PongProcessor(),
        frames_to_send=[
            InputTransportMessageFrame(message='{"type": "ping", "timestamp": 1' + "0" * 400 + "}"),
            ping(timestamp=10**400),
            ping(timestamp=2),
        ],
        expected_down_frames=[OutputTransportMessageUrgentFrame] * 3,
    )
    assert [f.message for f in down[:2]] == [
        {"type": "error", "error": "ping timestamp must be a finite number"}
    ] * 2
    assert down[2].message["client_timestamp"] == 2


async def test_a_seq_nested_too_deeply_to_echo_gets_an_error():
    deep: object = 7
    for _ in range(40):
        deep = [deep]
    shallow = {"a": [[{"b": [1]}]]}
    down, _ = await run_test(
        PongProcessor(),
        frames_to_send=[ping(timestamp=1, seq=deep), ping(timestamp=2, seq=shallow)],
        expected_down_frames=[OutputTransportMessageUrgentFrame] * 2,
    )
    assert down[0].message == {"type": "error", "error": "ping seq nested deeper than 32"}
    assert down[1].message["seq"] == shallow
    assert down[1].message["message_count"] == 1
