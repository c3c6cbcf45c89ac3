"""transports/webrtc.py pieces: eager message delivery and ICE address restriction."""

import asyncio

import aioice.ice

from transports.webrtc import restrict_ice_addresses, start_eagerly


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
