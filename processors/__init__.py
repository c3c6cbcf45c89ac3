"""Echo processors: pong on app messages, audio loopback, tone generator."""

# EchoMode and the tone range live in agent_core (the layer below transports and
# processors); they are re-exported here for callers that import them from processors.
from agent_core import DEFAULT_TONE_HZ, MAX_MESSAGE_BYTES, MAX_TONE_HZ, MIN_TONE_HZ, EchoMode
from processors.loopback import AudioLoopbackProcessor
from processors.pong import PongProcessor
from processors.tone import ToneGeneratorProcessor

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
