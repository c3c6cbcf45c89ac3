"""Local WebRTC (Pipecat's SmallWebRTC over aiortc): offers, ICE addresses, transport."""

from collections.abc import Awaitable, Callable

import aioice.ice
from aiortc.sdp import SessionDescription
from loguru import logger
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.request_handler import (
    IceCandidate,
    SmallWebRTCPatchRequest,
    SmallWebRTCRequest,
    SmallWebRTCRequestHandler,
)
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport

from processors import EchoMode
from transports.errors import InvalidOfferError
from transports.media import media_params

__all__ = [
    "WebRTCOffers",
    "create_transport",
    "restrict_ice_addresses",
    "validate_offer",
]

_aioice_host_addresses = aioice.ice.get_host_addresses


def restrict_ice_addresses(addresses: list[str]) -> None:
    """Offer only these host addresses as ICE candidates (all interfaces when empty).

    aiortc leaves loopback out by default; `["127.0.0.1"]` keeps a session on loopback.
    aioice looks the function up at gathering time, so replacing it is how its host
    candidates are chosen.
    """
    if not addresses:
        aioice.ice.get_host_addresses = _aioice_host_addresses
        return

    def configured(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in addresses if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = configured
    logger.info(f"WebRTC ICE host candidates restricted to {', '.join(addresses)}")


def validate_offer(sdp: str, sdp_type: str) -> None:
    """Reject what aiortc would silently accept and never connect.

    Raises:
        InvalidOfferError: with a message that says what is wrong.
    """
    if sdp_type != "offer":
        raise InvalidOfferError(f"type must be 'offer', got {sdp_type!r}")
    if not sdp.lstrip().startswith("v=0"):
        raise InvalidOfferError("sdp is not a session description (it must start with 'v=0')")
    try:
        description = SessionDescription.parse(sdp)
    except Exception as e:
        raise InvalidOfferError(f"sdp cannot be parsed: {type(e).__name__}") from None
    if not description.media:
        raise InvalidOfferError("sdp offers no media section (m=)")
    for media in description.media:
        ice = media.ice or description.ice
        if not ice or not ice.usernameFragment or not ice.password:
            raise InvalidOfferError(f"sdp media '{media.kind}' has no ICE credentials")
        dtls = media.dtls or description.dtls
        if not dtls or not dtls.fingerprints:
            raise InvalidOfferError(f"sdp media '{media.kind}' has no DTLS fingerprint")


class WebRTCOffers:
    """SDP offer/answer and trickled ICE, through Pipecat's `SmallWebRTCRequestHandler`."""

    def __init__(self):
        self._handler = SmallWebRTCRequestHandler()

    async def answer(
        self,
        sdp: str,
        sdp_type: str,
        on_connection: Callable[[SmallWebRTCConnection], Awaitable[None]],
        pc_id: str | None = None,
        restart_pc: bool | None = None,
    ) -> dict:
        """Answer an offer; `on_connection` is awaited for a new peer, before the answer.

        Raises:
            InvalidOfferError: the offer is malformed; no connection is made.
        """
        validate_offer(sdp, sdp_type)
        request = SmallWebRTCRequest(sdp=sdp, type=sdp_type, pc_id=pc_id, restart_pc=restart_pc)
        return await self._handler.handle_web_request(request, on_connection)

    async def add_candidates(self, pc_id: str, candidates: list[dict]) -> None:
        """Add trickled ICE candidates to a known peer connection."""
        await self._handler.handle_patch_request(
            SmallWebRTCPatchRequest(pc_id=pc_id, candidates=[IceCandidate(**c) for c in candidates])
        )

    async def close(self) -> None:
        """Close every peer connection still open."""
        await self._handler.close()


def create_transport(connection: SmallWebRTCConnection, mode: EchoMode) -> SmallWebRTCTransport:
    """The Pipecat transport for one local WebRTC peer."""
    return SmallWebRTCTransport(
        webrtc_connection=connection, params=TransportParams(**media_params(mode))
    )
