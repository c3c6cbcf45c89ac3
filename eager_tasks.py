"""Starting a task's first step at once, in the caller's turn, on Python 3.11 and later.

A neutral module: the agent (`transports.eager`) and the bare aiortc echo
(`benchmarks/bare_echo.py`) both use it, and it imports neither of them nor Pipecat.
"""

import asyncio
import sys
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["EAGER_TASKS", "eager_task_creation", "finish"]

EAGER_TASKS = sys.version_info >= (3, 12)
"""Python 3.12+ runs a task's first step eagerly itself (`eager_start=True`)."""


@contextmanager
def eager_task_creation() -> Iterator[None]:
    """Tasks created inside this block run their first step at once, in the caller's turn.

    Around a data-channel send: aiortc's `RTCDataChannel.send` queues the message and
    schedules the SCTP flush as a task, so the pong's datagram waited until the rest of
    the caller's turn (in the agent, the processors' return path) had run. With the flush
    started eagerly the datagram leaves inside `send`. Only for code that does not wait
    while inside the block (the factory would apply to whatever else ran meanwhile).
    """
    loop = asyncio.get_running_loop()
    previous = loop.get_task_factory()
    loop.set_task_factory(_eager_task_factory)
    try:
        yield
    finally:
        loop.set_task_factory(previous)


def _eager_task_factory(loop: asyncio.AbstractEventLoop, coro: Coroutine, **kwargs):
    if EAGER_TASKS:
        return asyncio.eager_task_factory(loop, coro, **kwargs)
    # Python 3.11: drive the first step by hand.
    future = loop.create_future()
    try:
        waiting_on = coro.send(None)
    except StopIteration as stop:
        future.set_result(stop.value)
        return future
    except BaseException as e:
        future.set_exception(e)
        return future
    return asyncio.Task(finish(coro, waiting_on), loop=loop, **kwargs)


class _Resumed:
    """Awaitable that drives a coroutine whose first step already ran by hand."""

    def __init__(self, coro: Coroutine, waiting_on: Any):
        self._coro = coro
        self._waiting_on = waiting_on

    def __await__(self):
        coro, waiting_on = self._coro, self._waiting_on
        while True:
            try:
                result = yield waiting_on
            except BaseException as e:  # delivered into the coroutine, as a Task does
                try:
                    waiting_on = coro.throw(e)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    waiting_on = coro.send(result)
                except StopIteration as stop:
                    return stop.value


async def finish(coro: Coroutine, waiting_on: Any) -> Any:
    """Run the rest of `coro`, which yielded `waiting_on` from a first step run by hand."""
    return await _Resumed(coro, waiting_on)
