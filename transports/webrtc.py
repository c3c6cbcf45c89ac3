"""Local WebRTC (Pipecat's SmallWebRTC over aiortc): offers, data channels, the transport.

The agent answers offers itself (`WebRTCOffers`, a small version of Pipecat's
`SmallWebRTCRequestHandler`) so that each connection gets a `DataChannelRouter` from
the start: app messages go from aiortc's data-channel listener straight to the echo
input, in aiortc's turn; SmallWebRTC keepalives and signalling still take Pipecat's own
handling. The transport is built from Pipecat's public SmallWebRTC parts.
"""

import json
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from aiortc.sdp import SessionDescription, candidate_from_sdp
from loguru import logger
from pipecat.frames.frames import ClientConnectedFrame, Frame, InputTransportMessageFrame
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.transports.smallwebrtc.connection import SIGNALLING_TYPE, SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import (
    SmallWebRTCCallbacks,
    SmallWebRTCClient,
    SmallWebRTCInputTransport,
    SmallWebRTCOutputTransport,
)

from agent_core import (
    MAX_MESSAGE_BYTES,
    RECEIVED_AT,
    MessageBound,
    hand_downstream,
    stamp_send_time,
)
from ice_addresses import restrict_ice_addresses
from transports.eager import eager_task_creation, send_guarded, start_eagerly
from transports.errors import InvalidOfferError, UnknownPeerError
from transports.media import AudioSpec, transport_params
from transports.pipecat_internals import mint_peer_id

__all__ = [
    "DataChannelRouter",
    "EchoWebRTCConnection",
    "EchoWebRTCTransport",
    "WebRTCOffers",
    "create_transport",
    "restrict_ice_addresses",  # re-exported from ice_addresses for the server
    "validate_offer",
]

MAX_EARLY_MESSAGES = 50
"""App messages kept while the pipeline is not started yet (Pipecat keeps as many)."""


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


MessageSink = Callable[[Any, float], Coroutine[Any, Any, None]]
"""Takes one app message (decoded JSON, or the raw text/bytes) and its arrival time."""


class DataChannelRouter:
    """Takes over a connection's data channels so app messages reach the pipeline at once.

    Pipecat's connection handles a message in a new task twice over (aiortc's async
    listener, then its "app-message" event), so a ping first waits while aiortc sends
    its SCTP acknowledgement and other ready tasks run: 0.45 ms of a 1.1 ms loopback
    round trip, measured. Here a message runs from aiortc's listener through the
    pipeline to the data-channel send in one go (`start_eagerly`). Keepalives (bare
    text starting with "ping") and signalling go to Pipecat's own listener.

    Attributes:
        bound: The session's message bound, applied before a message is decoded
            (keepalives are exempt: Pipecat's liveness check needs them).
    """

    def __init__(self, connection: SmallWebRTCConnection):
        """Route the data channels of `connection` (and of its later peer connections)."""
        self._connection = connection
        self._pc = None
        self._pipecat_listeners: list[Callable[[Any], Coroutine]] = []
        self._sink: MessageSink | None = None
        self._early: list[tuple[Any, float]] = []
        self.bound = MessageBound()
        self.attach()

    def attach(self) -> None:
        """Listen on the connection's current peer connection (again after a restart)."""
        pc = self._connection.pc
        if pc is not self._pc:
            self._pc = pc
            pc.on("datachannel", self._on_datachannel)

    def deliver_to(self, sink: MessageSink | None) -> None:
        """Hand app messages to `sink` from now on (None: keep them until there is one)."""
        self._sink = sink
        if sink is not None:
            early, self._early = self._early, []
            for message, received_at in early:
                start_eagerly(sink(message, received_at))

    def _on_datachannel(self, channel) -> None:
        # Registered after Pipecat's own "datachannel" listener (the connection's
        # constructor adds it), which has just added its "message" listener.
        self._pipecat_listeners = list(channel.listeners("message"))
        for listener in self._pipecat_listeners:
            channel.remove_listener("message", listener)
        channel.on("message", self.on_message)

    def on_message(self, message: str | bytes) -> None:
        """Aiortc's data-channel "message" event: the first code to see a message."""
        received_at = time.time()
        if isinstance(message, str) and message.startswith("ping"):
            self._to_pipecat(message)  # SmallWebRTC keepalive
            return
        if not self.bound.admit():
            if (notice := self.bound.notice()) is not None:
                self._deliver(notice, received_at)
            return
        size = len(message)
        if size > MAX_MESSAGE_BYTES // 4 and isinstance(message, str):
            size = len(message.encode("utf-8", errors="surrogatepass"))
        if size > MAX_MESSAGE_BYTES:
            self.bound.dropped += 1
            logger.warning(f"Dropping app message of {size} bytes (limit {MAX_MESSAGE_BYTES})")
            return
        try:
            decoded = json.loads(message)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            decoded = message  # not JSON: the echo processor ignores it (debug log)
        if type(decoded) is dict and decoded.get("type") == SIGNALLING_TYPE:
            self._to_pipecat(message)
            return
        self._deliver(decoded, received_at)

    def _deliver(self, decoded: Any, received_at: float) -> None:
        sink = self._sink
        if sink is None:
            if len(self._early) < MAX_EARLY_MESSAGES:
                self._early.append((decoded, received_at))
            return
        start_eagerly(sink(decoded, received_at))

    def _to_pipecat(self, message: str) -> None:
        for listener in self._pipecat_listeners:
            start_eagerly(listener(message))


class EchoWebRTCConnection(SmallWebRTCConnection):
    """A SmallWebRTC connection whose data channels are routed by a `DataChannelRouter`."""

    def __init__(self, *args, **kwargs):
        """Initialize the connection; arguments as for `SmallWebRTCConnection`."""
        super().__init__(*args, **kwargs)
        self.messages = DataChannelRouter(self)
        self._room = self.pc_id

    _stamp_on_send: Frame | None = None

    @contextmanager
    def stamping(self, frame: Frame) -> Iterator[None]:
        """App messages sent inside this block stamp `frame`'s pong, if it carries one."""
        self._stamp_on_send = frame
        try:
            yield
        finally:
            self._stamp_on_send = None

    def send_app_message(self, message: Any):
        """Pipecat's send; inside `stamping(frame)`, the frame's pong gets its send time first.

        The stamp is taken right before Pipecat encodes the message and hands it to
        aiortc's `RTCDataChannel.send`: all of the agent's own work is before it, in the
        pong's hold; what follows is what a bare aiortc peer does too.
        """
        if self._stamp_on_send is not None:
            stamp_send_time(self._stamp_on_send, time.time())
        super().send_app_message(message)

    def _initialize(self):
        """Pipecat's set-up of a new peer connection, then a `pc_id` with 128 random bits.

        A Pipecat private (transports/pipecat_internals.py); it runs again on an ICE restart.
        """
        super()._initialize()
        mint_peer_id(self)

    async def initialize(self, sdp: str, type: str):
        """Answer the offer; aiortc's tasks for this peer log with its room.

        aiortc creates its ICE, DTLS and SCTP tasks here and they inherit this context,
        so messages handled on them carry the room without a per-message cost.
        """
        with logger.contextualize(room=self._room, platform="webrtc"):
            await super().initialize(sdp=sdp, type=type)

    async def renegotiate(self, sdp: str, type: str, restart_pc: bool = False):
        """Renegotiate; a restarted peer connection is routed too."""
        with logger.contextualize(room=self._room, platform="webrtc"):
            await super().renegotiate(sdp=sdp, type=type, restart_pc=restart_pc)
        self.messages.attach()


def router_of(connection: SmallWebRTCConnection) -> DataChannelRouter:
    """The connection's router; a connection made elsewhere gets one now."""
    router = getattr(connection, "messages", None)
    if isinstance(router, DataChannelRouter):
        return router
    # e.g. Pipecat's development runner's connections. A channel that is open already
    # stays on Pipecat's path, which ends in the transport's on_app_message callback.
    return DataChannelRouter(connection)


class EchoWebRTCInput(SmallWebRTCInputTransport):
    """SmallWebRTC input that hands app messages to the echo processor, downstream only.

    Pipecat also sends a copy upstream for RTVI, which the echo pipeline does not run.
    That copy would be pushed after the pong is handed to aiortc but before aiortc's
    send task runs, delaying every pong.
    """

    def __init__(self, client, params: TransportParams, router: DataChannelRouter, **kwargs):
        """Initialize the input; `router` delivers the connection's app messages."""
        super().__init__(client, params, **kwargs)
        self._router = router

    async def start(self, frame):
        """Start the input; app messages flow from now on."""
        await super().start(frame)
        self._router.deliver_to(self.receive_app_message)

    async def stop(self, frame):
        """Stop the input and its message delivery."""
        self._router.deliver_to(None)
        await super().stop(frame)

    async def cancel(self, frame):
        """Cancel the input and its message delivery."""
        self._router.deliver_to(None)
        await super().cancel(frame)

    async def receive_app_message(self, message: Any, received_at: float):
        """Hand one app message, stamped at the data channel, downstream."""
        frame = InputTransportMessageFrame(message=message)
        frame.metadata[RECEIVED_AT] = received_at
        await hand_downstream(self, frame)

    async def push_app_message(self, message: Any):
        """Pipecat's own message path (only for connections routed late)."""
        await self.receive_app_message(message, time.time())


class EchoWebRTCOutput(SmallWebRTCOutputTransport):
    """SmallWebRTC output whose pongs get `server_send_time` right before their send."""

    def __init__(self, client, params: TransportParams, connection, **kwargs):
        """Initialize the output of `connection`."""
        super().__init__(client, params, **kwargs)
        self._connection = connection

    async def send_message(self, frame):
        """Hand the message to the data channel; a pong is stamped on the way."""
        # Pipecat's send is synchronous down to aiortc's `RTCDataChannel.send`.
        with eager_task_creation(), self._stamping(frame):
            await send_guarded(super().send_message, frame)

    def _stamping(self, frame) -> AbstractContextManager:
        if isinstance(self._connection, EchoWebRTCConnection):
            return self._connection.stamping(frame)
        # A connection made elsewhere (Pipecat's development runner): stamp it here.
        stamp_send_time(frame, time.time())
        return nullcontext()


class EchoWebRTCTransport(BaseTransport):
    """The local WebRTC transport of one peer, from Pipecat's public SmallWebRTC parts.

    Messages come from the connection's `DataChannelRouter`. The output is in direct
    mode: a pong or an echoed audio frame is sent as soon as it is handed over, instead
    of waiting for the output transport's queue task to be scheduled.

    Events:
        on_client_connected(transport, connection), on_client_disconnected(...).

    Attributes:
        connection, audio: what the transport was built with.
    """

    def __init__(self, connection: SmallWebRTCConnection, audio: AudioSpec):
        """Initialize the transport for `connection` carrying `audio`."""
        super().__init__()
        self.connection, self.audio = connection, audio
        params = TransportParams(**transport_params(audio))
        client = SmallWebRTCClient(
            connection,
            SmallWebRTCCallbacks(
                on_app_message=self._on_pipecat_app_message,
                on_client_connected=self._on_client_connected,
                on_client_disconnected=self._on_client_disconnected,
                on_track_status=self._on_track_status,
            ),
        )
        self._in = EchoWebRTCInput(client, params, router_of(connection))
        self._out = EchoWebRTCOutput(client, params, connection, enable_direct_mode=True)
        self._register_event_handler("on_client_connected")
        self._register_event_handler("on_client_disconnected")

    def input(self) -> EchoWebRTCInput:
        """The input transport."""
        return self._in

    def output(self) -> EchoWebRTCOutput:
        """The output transport, in direct mode."""
        return self._out

    def get_client_id(self, client: SmallWebRTCConnection) -> str:
        """The peer connection's id."""
        return client.pc_id

    async def _on_pipecat_app_message(self, message: Any, sender: str):
        await self._in.push_app_message(message)

    async def _on_client_connected(self, connection: SmallWebRTCConnection):
        await self._call_event_handler("on_client_connected", connection)
        await self._in.push_frame(ClientConnectedFrame())

    async def _on_client_disconnected(self, connection: SmallWebRTCConnection):
        await self._call_event_handler("on_client_disconnected", connection)

    async def _on_track_status(self, source: str, enabled: bool):
        logger.debug(f"Peer turned {source} {'on' if enabled else 'off'}")


def create_transport(
    connection: SmallWebRTCConnection, audio: AudioSpec, bound: MessageBound | None = None
) -> EchoWebRTCTransport:
    """The transport for one local WebRTC peer; `bound` limits its app messages."""
    if bound is not None:
        router_of(connection).bound = bound
    return EchoWebRTCTransport(connection, audio)


class WebRTCOffers:
    """SDP offer/answer and trickled ICE for local WebRTC peers.

    The same protocol as Pipecat's `SmallWebRTCRequestHandler` (a known `pc_id`
    renegotiates, `restart_pc` restarts its peer connection), with this module's
    connections; an error in `on_connection` closes the new connection and propagates.
    """

    def __init__(self):
        self._peers: dict[str, EchoWebRTCConnection] = {}

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
        connection = self._peers.get(pc_id) if pc_id else None
        if connection is not None:
            logger.info(f"Renegotiating peer connection {pc_id}")
            await connection.renegotiate(sdp=sdp, type=sdp_type, restart_pc=bool(restart_pc))
        else:
            connection = EchoWebRTCConnection()
            await connection.initialize(sdp=sdp, type=sdp_type)

            @connection.event_handler("closed")
            async def forget(closed: SmallWebRTCConnection):
                for known in [k for k, peer in self._peers.items() if peer is closed]:
                    del self._peers[known]

            try:
                await on_connection(connection)
            except BaseException:
                await connection.disconnect()
                raise
        answer = connection.get_answer()
        if answer is None:
            raise InvalidOfferError("the offer produced no SDP answer")
        self._peers[answer["pc_id"]] = connection
        return answer

    async def add_candidates(self, pc_id: str, candidates: list[dict]) -> None:
        """Add trickled ICE candidates to a known peer connection.

        Raises:
            UnknownPeerError: no peer connection `pc_id`.
        """
        connection = self._peers.get(pc_id)
        if connection is None:
            raise UnknownPeerError(pc_id)
        for c in candidates:
            if c.get("candidate"):
                candidate = candidate_from_sdp(c["candidate"])
                candidate.sdpMid = c.get("sdp_mid")
                candidate.sdpMLineIndex = c.get("sdp_mline_index")
            else:
                candidate = None  # end of candidates (RFC 8840), as aiortc takes it
            await connection.add_ice_candidate(candidate)

    async def close(self) -> None:
        """Close every peer connection still open."""
        peers = {id(peer): peer for peer in self._peers.values()}
        self._peers.clear()
        for peer in peers.values():
            await peer.disconnect()
