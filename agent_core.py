"""The agent's bottom layer: echo modes, message limits, frame metadata and the hand-off.

Both `transports/` and `processors/` import this module and nothing above it imports
it back; it imports no agent module and nothing heavier than Pipecat's frames.
"""

import math
from enum import StrEnum
from typing import Any

from pipecat.frames.frames import Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

__all__ = [
    "DEFAULT_TONE_HZ",
    "MAX_MESSAGE_BYTES",
    "MAX_TONE_HZ",
    "MIN_TONE_HZ",
    "PONG_TO_STAMP",
    "RATE_LIMITED",
    "RECEIVED_AT",
    "EchoMode",
    "hand_downstream",
    "stamp_send_time",
    "tone_hz_problem",
]


class EchoMode(StrEnum):
    """What a session echoes besides pongs."""

    PONG = "pong"
    LOOPBACK = "loopback"
    TONE = "tone"


DEFAULT_TONE_HZ = 550.0
MIN_TONE_HZ = 20.0
MAX_TONE_HZ = 20000.0


def tone_hz_problem(tone_hz: Any) -> str | None:
    """What is wrong with a tone frequency, or None when it is a number in range."""
    if (
        isinstance(tone_hz, bool)
        or not isinstance(tone_hz, int | float)
        or not math.isfinite(tone_hz)
        or not MIN_TONE_HZ <= tone_hz <= MAX_TONE_HZ
    ):
        return f"tone_hz must be a number in {MIN_TONE_HZ:g}..{MAX_TONE_HZ:g}, got {tone_hz!r}"
    return None


MAX_MESSAGE_BYTES = 64 * 1024
"""App messages larger than this are dropped unread."""

# Keys of `Frame.metadata` on the message path.
RECEIVED_AT = "server_receive_time"
"""Input message frames: Unix time the transport's first code saw the message."""
PONG_TO_STAMP = "pong_to_stamp"
"""Reply frames: the pong object whose `server_send_time` the output transport sets."""
RATE_LIMITED = "rate_limited"
"""Input message frames: the message was dropped by the session's rate bound; the
value is the error text the sender gets instead of an answer."""


def stamp_send_time(frame: Frame, now: float) -> None:
    """Set the reply's `server_send_time`, if it carries a pong, just before it is sent."""
    pong = frame.metadata.get(PONG_TO_STAMP)
    if pong is not None:
        pong["server_send_time"] = now


async def hand_downstream(processor: FrameProcessor, frame: Frame) -> None:
    """Queue `frame` on the processor after `processor`, as `push_frame` would.

    `push_frame` also runs the sender's push events, formats a trace line and records
    the push for observers, on every hop. On the ping path that bookkeeping was a
    third of what the agent adds to a round trip on loopback (benchmarks/RESULTS.md),
    so pings and pongs skip it. The next processor handles the frame exactly as after
    `push_frame`: at once in direct mode, through its queue otherwise, and observers
    still see it processed.
    """
    receiver = processor.next
    if receiver is not None:
        await receiver.queue_frame(frame, FrameDirection.DOWNSTREAM)
