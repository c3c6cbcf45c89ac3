"""The two halves' wire format agree: the agent's PongProcessor answers what echo_bench.wire
builds, and echo_bench.wire reads what the agent sends, field by field and type by type."""

import time

from pipecat.frames.frames import InputTransportMessageFrame, OutputTransportMessageUrgentFrame
from pipecat.tests.utils import run_test

from echo_bench import wire
from echo_bench.stats import PingLog, PingOutcome
from processors.pong import PongProcessor


async def agent_replies(*messages: dict) -> list[dict]:
    """What the agent's pong processor sends back for each message."""
    down, _ = await run_test(
        PongProcessor(),
        frames_to_send=[InputTransportMessageFrame(message=m) for m in messages],
        expected_down_frames=[OutputTransportMessageUrgentFrame] * len(messages),
    )
    return [frame.message for frame in down]


async def test_the_agent_answers_a_client_ping_with_every_field_the_client_reads():
    before = time.time()
    [pong] = await agent_replies(wire.ping(7))
    for name, kind in wire.PONG_FIELDS.items():
        assert name in pong, f"the agent's pong has no {name!r}"
        assert isinstance(pong[name], kind), f"{name}: {type(pong[name]).__name__}"
    reply = wire.parse_reply(pong)
    assert isinstance(reply, wire.Pong)
    assert reply.seq == 7
    assert reply.message_count == 1
    assert before <= reply.client_timestamp <= reply.server_receive_time
    assert reply.server_receive_time <= reply.server_send_time <= time.time()


async def test_the_client_counts_the_agents_pong_as_a_sample():
    ping = wire.ping(3)
    log = PingLog(timeout=5.0)
    sent = log.sent(3, ping["timestamp"], time.perf_counter())
    [pong] = await agent_replies(ping)
    assert log.received(time.perf_counter(), pong) == PingOutcome.SAMPLE
    assert sent.server_receive_time == pong["server_receive_time"]
    assert sent.server_send_time == pong["server_send_time"]


async def test_the_agents_error_reply_is_read_as_an_error():
    [error] = await agent_replies({"type": "ping", "timestamp": "not a number", "seq": 1})
    reply = wire.parse_reply(error)
    assert isinstance(reply, wire.ErrorReply)
    assert "timestamp" in reply.error


def test_the_client_ping_is_the_seed_format():
    ping = wire.ping(5, 1760000000.5)
    assert ping == {"type": "ping", "timestamp": 1760000000.5, "seq": 5}
    assert wire.SEED.ping(5, 1.0) == {"type": "ping", "timestamp": 1.0, "seq": 5}


def test_replies_out_of_shape_are_not_pongs():
    assert wire.parse_reply({"type": "pong"}) is None  # no seq
    assert wire.parse_reply({"type": "pong", "seq": True}) is None
    assert wire.parse_reply({"type": "hello", "seq": 1}) is None
    assert wire.parse_reply("pong") is None
    reply = wire.parse_reply({"type": "pong", "seq": 1, "server_send_time": float("nan")})
    assert reply == wire.Pong(seq=1)
    # A peer that returns the ping unchanged (a bare echo) is answered, without server times.
    assert wire.parse_reply(wire.ping(2, 9.0)) == wire.Pong(seq=2)


def test_rtvi_ping_and_its_server_response():
    ping = wire.RTVI.ping(4, 12.5)
    assert ping == {
        "label": "rtvi-ai",
        "type": "client-message",
        "id": "ping-4",
        "data": {"t": "ping", "d": {"timestamp": 12.5, "seq": 4}},
    }
    pong = {"type": "pong", "seq": 4, "client_timestamp": 12.5}
    response = {"label": "rtvi-ai", "type": "server-response", "id": "ping-4"}
    assert wire.RTVI.reply({**response, "data": {"t": "ping", "d": pong}}) == pong
    assert wire.RTVI.reply({**response, "data": {"t": "other", "d": pong}}) is None
    assert wire.RTVI.reply(pong) is None  # no RTVI label
    error = {"label": "rtvi-ai", "type": "error-response", "id": "x", "data": {"error": "bad"}}
    assert wire.RTVI.reply(error) == {"type": "error", "error": "bad"}


def test_rtvi_client_ready_and_bot_ready():
    ready = wire.RTVI.client_ready("ready-1", "echo-bench", "0.1.0")
    assert ready["label"] == "rtvi-ai" and ready["type"] == "client-ready"
    assert ready["id"] == "ready-1"
    assert ready["data"]["version"] == "2.0.0"
    assert ready["data"]["about"]["library"] == "echo-bench"
    bot_ready = {"label": "rtvi-ai", "type": "bot-ready", "id": "ready-1", "data": {}}
    assert wire.RTVI.bot_ready_id({**bot_ready, "data": {"version": "2.2.0"}}) == "ready-1"
    assert wire.RTVI.bot_ready_id({**bot_ready, "data": {"version": "1.0.0"}}) is None
    assert wire.RTVI.bot_ready_id({**bot_ready, "type": "bot-llm-text"}) is None


async def test_the_agent_answers_the_clients_rtvi_handshake_and_pings():
    ready, pong_response = await agent_replies(
        wire.RTVI.client_ready("client-ready-1", "echo-bench", "0.1.0"), wire.RTVI.ping(9)
    )
    assert wire.RTVI.bot_ready_id(ready) == "client-ready-1"
    assert pong_response["id"] == "ping-9"
    pong = wire.RTVI.reply(pong_response)
    for name, kind in wire.PONG_FIELDS.items():
        assert isinstance(pong.get(name), kind), f"{name} in the RTVI pong: {pong.get(name)!r}"
    reply = wire.parse_reply(pong)
    assert isinstance(reply, wire.Pong) and reply.seq == 9
    assert reply.server_receive_time <= reply.server_send_time
