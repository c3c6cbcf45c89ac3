"""What every platform's participants share: the speaker, the room, the send loop."""

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from echo_bench.tones import FRAME_SAMPLES, SAMPLE_RATE, Voice
from echo_bench.webrtc_client import ReceivedAudio

_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")

MAX_LAG_SECS = 0.5
"""A send loop further behind than this resynchronises instead of sending a burst."""


class ConverseError(Exception):
    """A participant could not join, publish or subscribe; the message says which and why."""


@dataclass
class Speaker:
    """One side of the conversation.

    Attributes:
        role: "customer" or "support".
        identity: the participant identity in the room.
        voice: what this speaker publishes.
        listens_to: the identity of the other speaker, whose audio it subscribes to.
        heard: the audio received from the other speaker, with arrival times.
    """

    role: str
    identity: str
    voice: Voice
    listens_to: str = ""
    heard: ReceivedAudio = field(default_factory=ReceivedAudio)

    def hear(self, samples: np.ndarray) -> None:
        """Record a block received from the other speaker (callable from any thread)."""
        self.heard.blocks.append((time.perf_counter(), samples))


@dataclass
class Room:
    """A room both speakers are in.

    Attributes:
        name: the room's name on the platform.
        transport_stats: optional coroutine giving, per role, packet figures the transport
            itself counted (e.g. RTP packets sent and received).
    """

    name: str
    transport_stats: Callable[[], Awaitable[dict[str, dict]]] | None = None


async def pump(
    voice: Voice,
    write: Callable[[np.ndarray], Awaitable[object]],
    stop: asyncio.Event,
) -> None:
    """Feed `voice` to `write` in 20 ms blocks at real-time pace until `stop` is set."""
    start = time.perf_counter()
    sample = 0
    while not stop.is_set():
        lag = time.perf_counter() - (start + sample / SAMPLE_RATE)
        if lag < 0:
            await asyncio.sleep(-lag)
        elif lag > MAX_LAG_SECS:
            start += lag
        await write(voice(sample, FRAME_SAMPLES))
        sample += FRAME_SAMPLES


def scrub(message: str, *secrets: str) -> str:
    """An SDK's error message without the tokens or keys it may quote."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "<redacted>")
    return _JWT.sub("<token>", message)
