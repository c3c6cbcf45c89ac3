"""One participant per SDK, used by `ping`, `audio` and `converse` alike.

A participant joins a room, sends and receives app messages, publishes and receives
48 kHz audio, and leaves.

| module | SDK | participant |
|---|---|---|
| `echo_bench.participants.webrtc` | aiortc | `WebRTCParticipant` |
| `echo_bench.participants.daily` | daily-python | `DailyParticipant` |
| `echo_bench.participants.livekit` | livekit (rtc) | `LiveKitParticipant` |

Each SDK module is imported only by whoever uses that platform; this package imports
none of them.
"""

from echo_bench.participants.base import Participant, ParticipantError, network_reason, scrub

__all__ = ["Participant", "ParticipantError", "network_reason", "scrub"]
