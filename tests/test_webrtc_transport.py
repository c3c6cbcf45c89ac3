"""transports/webrtc.py pieces: eager message delivery, routing, ICE address restriction."""

import asyncio
import json

import aioice.ice
import pytest

from transports.webrtc import PromptWebRTCConnection, restrict_ice_addresses, start_eagerly


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
        raise_later = asyncio.sleep(0)
        await raise_later

    start_eagerly(handler())
    assert steps == ["before"]
    gate.set()
    await asyncio.sleep(0.05)
    assert steps == ["before", "after"]


async def test_errors_are_logged_not_raised(logs):
    async def fails():
        raise ValueError("bad message")

    start_eagerly(fails())
    assert any("bad message" in line for line in logs)


async def test_a_cancelled_handler_is_unwound_even_before_its_task_ran():
    from transports import webrtc

    unwound = []

    async def waits_forever():
        try:
            await asyncio.Event().wait()
        finally:
            unwound.append(True)

    for delay in (None, 0.01):
        start_eagerly(waits_forever())
        [task] = webrtc._unfinished
        if delay:
            await asyncio.sleep(delay)
        task.cancel()
        await asyncio.sleep(0.01)
        assert not webrtc._unfinished
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


@pytest.fixture
async def routed():
    """A connection with a sink registered: (connection, to_sink, to_pipecat, deliver)."""
    connection = PromptWebRTCConnection()
    to_sink, to_pipecat = [], []

    async def sink(message):
        to_sink.append(message)

    async def pipecat_listener(message):
        to_pipecat.append(message)

    connection.deliver_app_messages(sink)
    connection.is_connected = lambda: True
    yield connection, to_sink, to_pipecat, lambda m: connection._on_message(pipecat_listener, m)
    await connection.pc.close()


async def test_app_messages_go_straight_to_the_sink_decoded(routed):
    _, to_sink, to_pipecat, deliver = routed
    ping = {"type": "ping", "timestamp": 1.5, "seq": 3}
    for message in [json.dumps(ping), '{"no": "type"}', "[1, 2]", "not json", b"\xff"]:
        deliver(message)
    assert to_sink == [ping, {"no": "type"}, [1, 2], "not json", b"\xff"]
    assert to_pipecat == []


async def test_keepalives_and_signalling_take_pipecats_path(routed):
    _, to_sink, to_pipecat, deliver = routed
    signalling = json.dumps({"type": "signalling", "message": {"type": "renegotiate"}})
    deliver("ping")
    deliver("ping-1700000000")
    deliver(signalling)
    assert to_pipecat == ["ping", "ping-1700000000", signalling]
    assert to_sink == []


async def test_before_the_peer_is_connected_messages_take_pipecats_path(routed):
    connection, to_sink, to_pipecat, deliver = routed
    connection.is_connected = lambda: False  # Pipecat queues these until it connects
    deliver('{"type": "ping", "timestamp": 1}')
    assert to_pipecat == ['{"type": "ping", "timestamp": 1}']
    assert to_sink == []


async def test_without_a_sink_every_message_takes_pipecats_path():
    connection = PromptWebRTCConnection()
    seen = []

    async def pipecat_listener(message):
        seen.append(message)

    connection.is_connected = lambda: True
    connection._on_message(pipecat_listener, '{"type": "ping", "timestamp": 1}')
    assert seen == ['{"type": "ping", "timestamp": 1}']
    await connection.pc.close()
