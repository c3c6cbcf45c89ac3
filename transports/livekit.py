"""LiveKit: access tokens with room grants, and the Pipecat transport."""

import uuid
from datetime import timedelta

from livekit import api
from pipecat.frames.frames import Frame
from pipecat.transports.livekit.transport import (
    LiveKitOutputTransportMessageUrgentFrame,
    LiveKitParams,
    LiveKitTransport,
)

from processors import EchoMode
from transports.media import media_params

__all__ = ["agent_token", "client_token", "create_transport", "reply_frame", "unique_identity"]


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


def create_transport(url: str, token: str, room_name: str, mode: EchoMode) -> LiveKitTransport:
    """The Pipecat transport for a LiveKit room (nothing is joined until it starts)."""
    return LiveKitTransport(url, token, room_name, params=LiveKitParams(**media_params(mode)))


def reply_frame(message: dict, sender: str | None) -> Frame:
    """An urgent data packet to the participant who sent the ping."""
    return LiveKitOutputTransportMessageUrgentFrame(message=message, participant_id=sender)
