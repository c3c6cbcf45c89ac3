"""LiveKit: access tokens with room grants, and the Pipecat transport."""

import json
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from livekit import api
from loguru import logger
from pipecat.frames.frames import Frame
from pipecat.transports.livekit.transport import (
    LiveKitInputTransport,
    LiveKitInputTransportMessageFrame,
    LiveKitOutputTransport,
    LiveKitOutputTransportMessageUrgentFrame,
    LiveKitParams,
    LiveKitTransport,
)

from agent_core import (
    MAX_MESSAGE_BYTES,
    RECEIVED_AT,
    MessageBound,
    hand_downstream,
    stamp_send_time,
)
from transports import pipecat_internals
from transports.eager import send_guarded, start_eagerly
from transports.media import AudioSpec, transport_params

__all__ = [
    "EchoLiveKitTransport",
    "agent_token",
    "client_token",
    "create_transport",
    "reply_frame",
    "unique_identity",
]


def unique_identity(prefix: str) -> str:
    """A participant identity no other connection uses (LiveKit evicts duplicates)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def client_token(api_key: str, api_secret: str, room: str, identity: str, ttl: float) -> str:
    """A JWT for a benchmark client: join, publish, subscribe and send data in `room`."""
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        can_publish=True,
        can_subscribe=True,
        can_publish_data=True,
    )
    return _token(api_key, api_secret, identity, grants, ttl)


def agent_token(api_key: str, api_secret: str, room: str, identity: str, ttl: float) -> str:
    """A JWT for the echo bot: the client grants plus `agent`."""
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        can_publish=True,
        can_subscribe=True,
        can_publish_data=True,
        agent=True,
    )
    return _token(api_key, api_secret, identity, grants, ttl)


def _token(api_key: str, api_secret: str, identity: str, grants, ttl: float) -> str:
    return (
        api.AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_name(identity)
        .with_grants(grants)
        .with_ttl(timedelta(seconds=ttl))
        .to_jwt()
    )


@dataclass(frozen=True)
class LiveKitArguments:
    """What a LiveKit transport joins with."""

    url: str
    token: str
    room_name: str


class EchoLiveKitInput(LiveKitInputTransport):
    """LiveKit input that hands data packets to the echo processor, downstream only."""

    def __init__(self, transport, client, params, bound: MessageBound, **kwargs):
        """Initialize the input; `bound` limits the session's data packets."""
        super().__init__(transport, client, params, **kwargs)
        self._bound = bound

    async def receive_packet(self, data: bytes, sender: str | None, received_at: float):
        """Decode one data packet (JSON) and hand it downstream, stamped at its arrival."""
        if not self._bound.admit():
            if (notice := self._bound.notice()) is not None:
                await self.receive_app_message(notice, sender, received_at)
            return
        if len(data) > MAX_MESSAGE_BYTES:
            self._bound.dropped += 1
            logger.warning(f"Dropping app message of {len(data)} bytes (limit {MAX_MESSAGE_BYTES})")
            return
        try:
            message = json.loads(data)
        except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
            logger.debug(f"Ignoring data packet from {sender} that is not JSON: {type(e).__name__}")
            return
        await self.receive_app_message(message, sender, received_at)

    async def receive_app_message(self, message: Any, sender: str | None, received_at: float):
        """Hand one decoded app message downstream."""
        frame = LiveKitInputTransportMessageFrame(message=message, participant_id=sender)
        frame.metadata[RECEIVED_AT] = received_at
        await hand_downstream(self, frame)

    async def push_app_message(self, message: Any, sender: str | None):
        """Pipecat's own message path (unused while the room's event is taken over)."""
        await self.receive_app_message(message, sender, time.time())


class EchoLiveKitOutput(LiveKitOutputTransport):
    """LiveKit output that stamps a pong's `server_send_time` right before it is encoded."""

    async def send_message(self, frame):
        """Stamp the pong, if any, then publish the data packet."""
        stamp_send_time(frame, time.time())
        await send_guarded(super().send_message, frame)


class EchoLiveKitTransport(LiveKitTransport):
    """Pipecat's LiveKit transport with the echo agent's message path.

    The room's "data_received" event is taken over (`pipecat_internals`): each packet is
    stamped and run through the pipeline at once, in the event's turn, instead of in a
    new task per packet.

    Attributes:
        arguments: The server URL, token and room it was built with.
        audio: The audio it carries.
        bound: The session's message bound, applied before a packet is decoded.
    """

    def __init__(
        self,
        url: str,
        token: str,
        room_name: str,
        audio: AudioSpec,
        bound: MessageBound | None = None,
    ):
        """Initialize the transport (nothing is joined until the pipeline starts)."""
        super().__init__(url, token, room_name, params=LiveKitParams(**transport_params(audio)))
        self.arguments = LiveKitArguments(url, token, room_name)
        self.audio = audio
        self.bound = bound or MessageBound()
        pipecat_internals.intercept_livekit_data_packets(self, self._on_data_packet)

    def input(self) -> EchoLiveKitInput:
        """The input transport, handing data packets downstream only."""
        return pipecat_internals.own_input(
            self,
            lambda client, params, name: EchoLiveKitInput(
                self, client, params, self.bound, name=name
            ),
        )

    def output(self) -> EchoLiveKitOutput:
        """The output transport, in direct mode (a pong is sent in the caller's turn)."""
        return pipecat_internals.own_output(
            self,
            lambda client, params, name: EchoLiveKitOutput(
                self, client, params, name=name, enable_direct_mode=True
            ),
        )

    def _on_data_packet(self, packet) -> None:
        # The room's "data_received" event (an rtc.DataPacket), on the event loop.
        received_at = time.time()
        sender = packet.participant.identity if packet.participant else None
        start_eagerly(self.input().receive_packet(packet.data, sender, received_at))


def create_transport(
    url: str, token: str, room_name: str, audio: AudioSpec, bound: MessageBound | None = None
) -> EchoLiveKitTransport:
    """The Pipecat transport for a LiveKit room (nothing is joined until it starts)."""
    return EchoLiveKitTransport(url, token, room_name, audio, bound)


def reply_frame(message: dict, sender: str | None) -> Frame:
    """An urgent data packet to the participant who sent the ping."""
    return LiveKitOutputTransportMessageUrgentFrame(message=message, participant_id=sender)
