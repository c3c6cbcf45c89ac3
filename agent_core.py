"""The agent's bottom layer: echo modes, message limits, frame metadata and the hand-off.

Both `transports/` and `processors/` import this module and nothing above it imports
it back; it imports no agent module and nothing heavier than Pipecat's frames.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pipecat.frames.frames import Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

__all__ = [
    "DEFAULT_MAX_MESSAGES_PER_SECOND",
    "DEFAULT_TONE_HZ",
    "MAX_MESSAGE_BYTES",
    "MAX_TONE_HZ",
    "MIN_TONE_HZ",
    "PONG_TO_STAMP",
    "RECEIVED_AT",
    "EchoMode",
    "MessageBound",
    "RateLimitNotice",
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

DEFAULT_MAX_MESSAGES_PER_SECOND = 1000
"""Ten times the rate of `echo-bench ping --interval 0.01` (the server's default is
`MAX_MESSAGES_PER_SECOND` in config.py)."""


@dataclass(frozen=True)
class RateLimitNotice:
    """Stands in for an app message: tells the sender that its messages are dropped."""

    error: str


class MessageBound:
    """A session's bound on incoming app messages: a token bucket and what it dropped.

    Up to `per_second` messages a second pass, in bursts of up to one second's worth;
    the transport drops the rest before decoding them. Messages of every sender of the
    session share the bucket.

    Attributes:
        per_second: The sustained rate let through.
        dropped: Messages dropped so far (over the rate or over `MAX_MESSAGE_BYTES`).
    """

    def __init__(
        self,
        per_second: float = DEFAULT_MAX_MESSAGES_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ):
        """Start with a full bucket; `clock` tells the time in seconds."""
        self.per_second = per_second
        self.dropped = 0
        self._clock = clock
        self._tokens = float(per_second)
        self._filled_at = clock()
        self._noticed_at = -math.inf

    def admit(self) -> bool:
        """Take one message; False (and counted as dropped) when over the rate."""
        now = self._clock()
        refill = (now - self._filled_at) * self.per_second
        self._tokens = min(float(self.per_second), self._tokens + refill)
        self._filled_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.dropped += 1
        return False

    def notice(self) -> RateLimitNotice | None:
        """What to tell the sender of a dropped message: at most one notice a second."""
        now = self._clock()
        if now - self._noticed_at < 1.0:
            return None
        self._noticed_at = now
        return RateLimitNotice(
            f"rate limit: over {self.per_second:g} messages per second in this session, "
            "messages dropped"
        )


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
