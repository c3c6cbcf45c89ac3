"""The aiortc participant under the names the agent's end-to-end tests use.

`EchoClient` is `WebRTCParticipant` with a synchronous `send` (aiortc's data channel
sends at once); new code uses `echo_bench.participants.webrtc` directly.
"""

from echo_bench.participants.webrtc import SignalTrack, WebRTCParticipant

__all__ = ["EchoClient", "SignalTrack"]


class EchoClient(WebRTCParticipant):
    """A `WebRTCParticipant` whose `send` is `send_nowait`."""

    send = WebRTCParticipant.send_nowait
