"""run_bot's own rules for ending a session, not Pipecat's idle timeout."""

import asyncio
import time

import pytest
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.transports.base_transport import BaseTransport

import bot


class SilentTransport(BaseTransport):
    """A transport with no peer: nothing ever joins, nothing is sent."""

    def __init__(self):
        super().__init__()
        self._in = FrameProcessor(name="in")
        self._out = FrameProcessor(name="out")
        self._register_event_handler("on_client_connected")
        self._register_event_handler("on_client_disconnected")

    def get_client_id(self, client):
        return client["id"]

    def input(self):
        return self._in

    def output(self):
        return self._out


@pytest.fixture
def workers(monkeypatch):
    created = []
    original = PipelineWorker.__init__

    def spy(self, *args, **kwargs):
        created.append(kwargs)
        original(self, *args, **kwargs)

    monkeypatch.setattr(PipelineWorker, "__init__", spy)
    return created


async def test_pipecat_idle_timeout_and_rtvi_are_off(workers):
    options = bot.BotOptions(join_timeout=0.2)
    assert await bot.run_bot(SilentTransport(), options) == "no client joined within 0.2 s"
    [kwargs] = workers
    assert kwargs["idle_timeout_secs"] is None
    assert kwargs["cancel_on_idle_timeout"] is False
    assert kwargs["enable_rtvi"] is False


async def test_session_ends_at_expiry_after_a_client_joined():
    transport = SilentTransport()
    options = bot.BotOptions(join_timeout=5, expires_at=time.time() + 0.5)
    task = asyncio.create_task(bot.run_bot(transport, options))
    await asyncio.sleep(0.1)
    await transport._call_event_handler("on_client_connected", {"id": "client-1"})
    await asyncio.sleep(0.1)
    assert options.state.clients == 1
    assert await asyncio.wait_for(task, 3) == "session expired"
    assert options.state.clients == 0


async def test_session_ends_when_the_last_client_leaves():
    transport = SilentTransport()
    options = bot.BotOptions(join_timeout=5)
    task = asyncio.create_task(bot.run_bot(transport, options))
    await asyncio.sleep(0.1)
    for client in ({"id": "a"}, {"id": "b"}):
        await transport._call_event_handler("on_client_connected", client)
    await asyncio.sleep(0.05)
    assert options.state.clients == 2
    await transport._call_event_handler("on_client_disconnected", {"id": "a"})
    await asyncio.sleep(0.1)
    assert not task.done()
    left = time.monotonic()
    await transport._call_event_handler("on_client_disconnected", {"id": "b"})
    assert await asyncio.wait_for(task, 2) == "last client left"
    assert time.monotonic() - left < 2
