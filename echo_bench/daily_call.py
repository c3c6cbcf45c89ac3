"""daily-python plumbing shared by echo-bench's Daily client and the converse participant."""

import asyncio
from collections.abc import Callable
from typing import Any

from daily import Daily

__all__ = ["completion", "init_daily", "join_settings"]

_initialized = False


def init_daily() -> None:
    """Initialize daily-python, once per process."""
    global _initialized
    if not _initialized:
        Daily.init()
        _initialized = True


def join_settings(microphone_track_id: str | None) -> dict[str, Any]:
    """`client_settings` for a join: no camera; a mono custom microphone when a track is given."""
    microphone = microphone_track_id is not None
    return {
        "inputs": {
            "camera": {"isEnabled": False},
            "microphone": {
                "isEnabled": microphone,
                "settings": {"customTrack": {"id": microphone_track_id or "no-microphone-track"}},
            },
        },
        "publishing": {
            "camera": {"isPublishing": False},
            "microphone": {
                "isPublishing": microphone,
                "sendSettings": {"channelConfig": "mono"},
            },
        },
    }


def completion(loop: asyncio.AbstractEventLoop, future: asyncio.Future) -> Callable[..., None]:
    """A daily-python completion (called on its thread) that resolves `future` on `loop`.

    The result is the single argument, the tuple of several, or None without any.
    """

    def resolve(*args) -> None:
        if not future.done():
            future.set_result(args if len(args) > 1 else (args[0] if args else None))

    return lambda *args: loop.call_soon_threadsafe(resolve, *args)
