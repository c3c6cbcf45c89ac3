"""Local: the two speakers as two aiortc peers connected directly on 127.0.0.1, no server."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiortc import RTCPeerConnection
from loguru import logger

from echo_bench.participants.base import ConverseError, Room, Speaker
from echo_bench.webrtc_client import SignalTrack
from transports.webrtc import restrict_ice_addresses

__all__ = ["join"]


@asynccontextmanager
async def join(customer: Speaker, support: Speaker, connect_timeout: float) -> AsyncIterator[Room]:
    """Connect the customer's peer (offerer) to the support's peer (answerer) on loopback.

    Raises:
        ConverseError: the peers did not connect within `connect_timeout` seconds.
    """
    restrict_ice_addresses(["127.0.0.1"])
    name = f"local-{uuid.uuid4().hex[:12]}"
    tasks: set[asyncio.Task] = set()
    peers = {speaker.role: _peer(speaker, tasks) for speaker in (customer, support)}
    offerer, answerer = peers[customer.role], peers[support.role]
    try:
        logger.info(
            f"{customer.role} ({customer.identity}) calls {support.role} ({support.identity})"
        )
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        await answerer.setLocalDescription(await answerer.createAnswer())
        await offerer.setRemoteDescription(answerer.localDescription)
        try:
            await asyncio.wait_for(
                asyncio.gather(*(_connected(pc) for pc in peers.values())), connect_timeout
            )
        except TimeoutError:
            states = ", ".join(f"{role} {pc.connectionState}" for role, pc in peers.items())
            raise ConverseError(
                f"local: the peers did not connect within {connect_timeout:g} s ({states})"
            ) from None
        yield Room(name, transport_stats=lambda: _rtp_stats(peers))
    finally:
        for pc in peers.values():
            await pc.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _peer(speaker: Speaker, tasks: set[asyncio.Task]) -> RTCPeerConnection:
    pc = RTCPeerConnection()
    pc.addTrack(SignalTrack(speaker.voice))

    @pc.on("track")
    def on_track(track):
        if track.kind != "audio":
            return
        logger.info(f"{speaker.role}: subscribed to {speaker.listens_to}'s audio track")
        task = asyncio.ensure_future(speaker.heard.record(track))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    @pc.on("connectionstatechange")
    def on_state():
        logger.info(f"{speaker.role}: connection {pc.connectionState}")

    return pc


async def _connected(pc: RTCPeerConnection) -> None:
    changed = asyncio.Event()
    pc.on("connectionstatechange", changed.set)
    while pc.connectionState != "connected":
        if pc.connectionState in ("failed", "closed"):
            raise ConverseError(f"local: the peer connection {pc.connectionState}")
        changed.clear()
        await changed.wait()


async def _rtp_stats(peers: dict[str, RTCPeerConnection]) -> dict[str, dict]:
    """RTP packets each peer sent, received and lost, from aiortc's own counters."""
    figures = {}
    for role, pc in peers.items():
        role_figures = {}
        for stats in (await pc.getStats()).values():
            if stats.type == "outbound-rtp":
                role_figures["rtp_packets_sent"] = stats.packetsSent
                role_figures["rtp_bytes_sent"] = stats.bytesSent
            elif stats.type == "inbound-rtp":
                role_figures["rtp_packets_received"] = stats.packetsReceived
                role_figures["rtp_packets_lost"] = stats.packetsLost
        figures[role] = role_figures
    return figures
