"""transports/webrtc.py and transports/eager.py: eager delivery, data-channel routing, offers."""

import asyncio
import json
import time

import aioice.ice
import pytest
from aiortc import RTCPeerConnection
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection

from ice_addresses import restrict_ice_addresses
from transports import eager
from transports.eager import eager_task_creation, start_eagerly
from transports.errors import UnknownPeerError
from transports.media import NO_AUDIO
from transports.webrtc import (
    MAX_EARLY_MESSAGES,
    DataChannelRouter,
    EchoWebRTCConnection,
    WebRTCOffers,
    create_transport,
)

# ---------------------------------------------------------------------------
# start_eagerly


async def test_tasks_created_in_an_eager_block_run_their_first_step_at_once():
    # What aiortc's `RTCDataChannel.send` does: `ensure_future(flush())`; inside the
    # block the flush has run (the datagram is out) before `ensure_future` returns.
    steps = []
    gate = asyncio.Event()

    async def flush(name):
        steps.append(f"{name} sent")
        await gate.wait()
        steps.append(f"{name} finished")

    loop = asyncio.get_running_loop()
    factory = loop.get_task_factory()
    with eager_task_creation():
        inside = asyncio.ensure_future(flush("inside"))
        assert steps == ["inside sent"]
    assert loop.get_task_factory() is factory
    outside = asyncio.ensure_future(flush("outside"))
    assert steps == ["inside sent"]  # an ordinary task waits for a loop turn
    await asyncio.sleep(0)
    gate.set()
    await asyncio.wait_for(asyncio.gather(inside, outside), 1)
    assert sorted(steps) == ["inside finished", "inside sent", "outside finished", "outside sent"]


async def test_a_handler_that_never_waits_runs_entirely_in_the_callers_turn():
    done = []

    async def handler():
        done.append("ran")

    start_eagerly(handler())
    assert done == ["ran"]


async def test_a_handler_that_waits_runs_up_to_the_wait_then_finishes_in_a_task():
    steps = []
    gate = asyncio.Event()

    async def handler():
        steps.append("before")
        await gate.wait()
        steps.append("after")
        await asyncio.sleep(0)

    start_eagerly(handler())
    assert steps == ["before"]
    gate.set()
    await asyncio.sleep(0.05)
    assert steps == ["before", "after"]


async def test_errors_are_logged_not_raised_before_and_after_the_first_wait(logs):
    async def fails_at_once():
        raise ValueError("bad message")

    async def fails_later():
        await asyncio.sleep(0)
        raise ValueError("bad later")

    start_eagerly(fails_at_once())
    start_eagerly(fails_later())
    await asyncio.sleep(0.05)
    assert any("bad message" in line for line in logs)
    assert any("bad later" in line for line in logs)


async def test_a_cancelled_handler_is_unwound_even_before_its_task_ran():
    unwound = []

    async def waits_forever():
        try:
            await asyncio.Event().wait()
        finally:
            unwound.append(True)

    for delay in (None, 0.01):
        start_eagerly(waits_forever())
        [task] = eager._unfinished
        if delay:
            await asyncio.sleep(delay)
        task.cancel()
        await asyncio.sleep(0.01)
        assert not eager._unfinished
    assert unwound == [True, True]


def test_ice_addresses_are_restricted_and_restored():
    original = aioice.ice.get_host_addresses
    try:
        restrict_ice_addresses(["127.0.0.1", "::1"])
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1", "::1"]
        restrict_ice_addresses([])
        assert "127.0.0.1" not in aioice.ice.get_host_addresses(True, False)
    finally:
        restrict_ice_addresses(["127.0.0.1"])
        assert aioice.ice.get_host_addresses is not original


# ---------------------------------------------------------------------------
# DataChannelRouter: a real aiortc data channel announced on the connection's pc


@pytest.fixture
async def channel():
    """(connection, data channel as the bot sees it, messages the sink got)."""
    connection = EchoWebRTCConnection()
    other = RTCPeerConnection()
    data_channel = other.createDataChannel("anything")
    got: list[tuple[object, float]] = []

    async def sink(message, received_at):
        got.append((message, received_at))

    connection.messages.deliver_to(sink)
    connection.pc.emit("datachannel", data_channel)  # what aiortc does for the peer's channel
    yield connection, data_channel, got
    await other.close()
    await connection.pc.close()


async def test_app_messages_go_straight_to_the_sink_decoded_with_their_arrival_time(channel):
    _, data_channel, got = channel
    ping = {"type": "ping", "timestamp": 1.5, "seq": 3}
    before = time.time()
    for message in [json.dumps(ping), '{"no": "type"}', "[1, 2]", "not json", b"\xff"]:
        data_channel.emit("message", message)
    # Handled in the emitter's turn: no task, no wait.
    assert [m for m, _ in got] == [ping, {"no": "type"}, [1, 2], "not json", b"\xff"]
    assert all(before <= t <= time.time() for _, t in got)


async def test_keepalives_reach_pipecats_keepalive_handling_not_the_sink(channel):
    connection, data_channel, got = channel
    await connection.connect()  # the pipeline would: from now on keepalives count
    assert not connection.is_connected()  # aiortc never connected
    data_channel.emit("message", "ping: 1700000000000")
    assert connection.is_connected()  # Pipecat saw a keepalive within the last 3 s
    assert got == []


async def test_signalling_reaches_pipecat_not_the_sink(channel):
    connection, data_channel, got = channel
    statuses = []

    @connection.event_handler("track-status")
    async def on_track_status(_connection, receiver_index, enabled):
        statuses.append((receiver_index, enabled))

    message = {"type": "trackStatus", "receiver_index": 1, "enabled": False}
    data_channel.emit("message", json.dumps({"type": "signalling", "message": message}))
    await asyncio.sleep(0.05)
    assert statuses == [(1, False)]
    assert got == []


async def test_messages_before_the_pipeline_started_are_kept_then_delivered_in_order(logs):
    connection = EchoWebRTCConnection()
    other = RTCPeerConnection()
    data_channel = other.createDataChannel("x")
    connection.pc.emit("datachannel", data_channel)
    for seq in range(MAX_EARLY_MESSAGES + 5):
        data_channel.emit("message", json.dumps({"type": "ping", "timestamp": 1, "seq": seq}))
    got = []

    async def sink(message, received_at):
        got.append(message["seq"])

    connection.messages.deliver_to(sink)
    assert got == list(range(MAX_EARLY_MESSAGES))
    await other.close()
    await connection.pc.close()


async def test_oversized_messages_are_dropped_before_decoding(channel, logs):
    _, data_channel, got = channel

    def text(chars: int) -> str:  # 2 bytes of UTF-8 per character
        return json.dumps({"type": "ping", "timestamp": 1, "p": "é" * chars}, ensure_ascii=False)

    data_channel.emit("message", text(40000))  # 40 K characters, 80 KB
    data_channel.emit("message", b"x" * (64 * 1024 + 1))
    data_channel.emit("message", text(30000))  # 60 KB: kept
    assert [m["type"] for m, _ in got] == ["ping"]
    assert sum("Dropping app message" in line for line in logs) == 2


async def test_a_pipecat_connection_gets_a_router_when_its_transport_is_built():
    connection = SmallWebRTCConnection()  # e.g. from Pipecat's development runner
    transport = create_transport(connection, NO_AUDIO)
    assert transport.connection is connection
    routers = [h for h in connection.pc.listeners("datachannel") if _is_router(h)]
    assert len(routers) == 1
    await connection.pc.close()


def _is_router(handler) -> bool:
    return isinstance(getattr(handler, "__self__", None), DataChannelRouter)


# ---------------------------------------------------------------------------
# WebRTCOffers: real offers from an aiortc peer


async def _offer() -> tuple[RTCPeerConnection, dict]:
    pc = RTCPeerConnection()
    pc.createDataChannel("echo")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, {"sdp": pc.localDescription.sdp, "sdp_type": "offer"}


async def test_an_offer_makes_a_routed_connection_and_a_restart_is_routed_again():
    offers = WebRTCOffers()
    connections = []

    async def on_connection(connection):
        connections.append(connection)

    client, offer = await _offer()
    answer = await offers.answer(**offer, on_connection=on_connection)
    [connection] = connections
    assert isinstance(connection, EchoWebRTCConnection)
    assert answer["pc_id"] == connection.pc_id and answer["type"] == "answer"
    first_pc = connection.pc

    again, offer = await _offer()
    restarted = await offers.answer(
        **offer, on_connection=on_connection, pc_id=answer["pc_id"], restart_pc=True
    )
    assert len(connections) == 1  # the same session, renegotiated
    assert connection.pc is not first_pc
    assert sum(_is_router(h) for h in connection.pc.listeners("datachannel")) == 1
    await offers.add_candidates(restarted["pc_id"], [{"candidate": "", "sdp_mid": "0"}])
    for pc in (client, again):
        await pc.close()
    await offers.close()


async def test_a_failing_session_start_closes_the_connection_and_propagates():
    offers = WebRTCOffers()
    made = []

    async def refuses(connection):
        made.append(connection)
        raise LookupError("session already has a peer")

    client, offer = await _offer()
    with pytest.raises(LookupError, match="already has a peer"):
        await offers.answer(**offer, on_connection=refuses)
    assert made[0].pc.connectionState == "closed"
    with pytest.raises(UnknownPeerError) as unknown:
        await offers.add_candidates(made[0].pc_id, [])
    assert unknown.value.status_code == 404
    await client.close()
