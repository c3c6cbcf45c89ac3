"""Echo processors: pong on app messages, audio loopback, tone generator."""

from enum import StrEnum

from processors.loopback import AudioLoopbackProcessor
from processors.pong import MAX_MESSAGE_BYTES, PongProcessor
from processors.tone import DEFAULT_TONE_HZ, MAX_TONE_HZ, MIN_TONE_HZ, ToneGeneratorProcessor


class EchoMode(StrEnum):
    """What a session echoes besides pongs."""

    PONG = "pong"
    LOOPBACK = "loopback"
    TONE = "tone"


__all__ = [
    "DEFAULT_TONE_HZ",
    "MAX_MESSAGE_BYTES",
    "MAX_TONE_HZ",
    "MIN_TONE_HZ",
    "AudioLoopbackProcessor",
    "EchoMode",
    "PongProcessor",
    "ToneGeneratorProcessor",
]
