"""Local WebRTC (Pipecat's SmallWebRTC over aiortc): offers, ICE addresses, transport."""

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aioice.ice
from aiortc.sdp import SessionDescription
from loguru import logger
from pipecat.frames.frames import InputTransportMessageFrame
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc import request_handler
from pipecat.transports.smallwebrtc.connection import SIGNALLING_TYPE, SmallWebRTCConnection
from pipecat.transports.smallwebrtc.request_handler import (
    IceCandidate,
    SmallWebRTCPatchRequest,
    SmallWebRTCRequest,
    SmallWebRTCRequestHandler,
)
from pipecat.transports.smallwebrtc.transport import (
    SmallWebRTCInputTransport,
    SmallWebRTCOutputTransport,
    SmallWebRTCTransport,
)

from processors import EchoMode
from processors.handoff import hand_downstream
from transports.errors import InvalidOfferError
from transports.media import media_params

__all__ = [
    "PromptWebRTCConnection",
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


def start_eagerly(coro: Coroutine[Any, Any, Any]) -> None:
    """Run `coro` now, in the caller's turn, up to its first real wait; a task does the rest.

    Python 3.12's eager tasks do this for every task; this does it for one coroutine.
    """
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return
    except Exception as e:
        logger.exception(f"Data-channel message handler failed: {e}")
        return
    task = asyncio.ensure_future(_finish(coro, waiting_on))
    _unfinished.add(task)

    def finished(task: asyncio.Future):
        _unfinished.discard(task)
        coro.close()  # a no-op once it returned; unwinds it if the task was cancelled first

    task.add_done_callback(finished)


_unfinished: set[asyncio.Future] = set()
"""Tasks finishing eagerly started coroutines, kept so they are not garbage collected."""


class _Resumed:
    """Awaitable that drives a coroutine already started by `start_eagerly`."""

    def __init__(self, coro: Coroutine, waiting_on: Any):
        self._coro = coro
        self._waiting_on = waiting_on

    def __await__(self):
        coro, waiting_on = self._coro, self._waiting_on
        while True:
            try:
                result = yield waiting_on
            except BaseException as e:  # delivered into the coroutine, as a Task does
                try:
                    waiting_on = coro.throw(e)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    waiting_on = coro.send(result)
                except StopIteration as stop:
                    return stop.value


async def _finish(coro: Coroutine, waiting_on: Any) -> Any:
    return await _Resumed(coro, waiting_on)


AppMessageSink = Callable[[Any], Coroutine[Any, Any, None]]
"""Takes one app message from the client (decoded JSON, or the text) into the pipeline."""


class PromptWebRTCConnection(SmallWebRTCConnection):
    """A SmallWebRTC connection that hands each app message to the pipeline at once.

    Pipecat's connection handles a message in a new task twice over (aiortc's async
    listener, then the "app-message" event), so a ping first waits while aiortc sends
    its SCTP acknowledgement and other ready tasks run: 0.45 ms of a 1.1 ms loopback
    round trip, measured. Here an app message runs from aiortc's listener through the
    pipeline to the data-channel send in one go; only something that must wait
    continues in a task. Once a transport registers with `deliver_app_messages`, every
    message goes straight to it, decoded when it is JSON (Pipecat's path logs an error
    for text that is not a JSON object). Keepalives, signalling and messages that
    arrive before the peer is connected take Pipecat's own path.
    """

    def __init__(self, *args, **kwargs):
        """Initialize the connection; arguments as for `SmallWebRTCConnection`."""
        super().__init__(*args, **kwargs)
        self._app_message_sink: AppMessageSink | None = None

    def deliver_app_messages(self, sink: AppMessageSink) -> None:
        """Hand app messages to `sink` instead of raising the "app-message" event."""
        self._app_message_sink = sink

    def _register_event_handler(self, event_name: str, sync: bool = False):
        super()._register_event_handler(event_name, sync=sync or event_name == "app-message")

    def _setup_listeners(self):
        super()._setup_listeners()

        @self._pc.on("datachannel")
        def deliver_promptly(channel):
            # Registered after Pipecat's own "datachannel" listener, so its "message"
            # listener exists now: replace it with one that runs in aiortc's turn.
            for listener in channel.listeners("message"):
                channel.remove_listener("message", listener)
                channel.on("message", functools.partial(self._on_message, listener))

    def _on_message(self, pipecat_listener: Callable[[Any], Coroutine], message: Any) -> None:
        sink = self._app_message_sink
        if sink is None or _is_keepalive(message) or not self.is_connected():
            start_eagerly(pipecat_listener(message))
            return
        try:
            app_message = json.loads(message)
        except (TypeError, ValueError):
            app_message = message  # not JSON: the echo processor ignores it (debug log)
        if isinstance(app_message, dict) and app_message.get("type") == SIGNALLING_TYPE:
            start_eagerly(pipecat_listener(message))
            return
        start_eagerly(sink(app_message))

    async def initialize(self, sdp: str, type: str):
        """Answer the offer; aiortc's tasks for this peer log with its room.

        aiortc creates its ICE, DTLS and SCTP tasks here and they inherit this context,
        so messages handled on them carry the room without a per-message cost.
        """
        with logger.contextualize(room=self.pc_id, platform="webrtc"):
            await super().initialize(sdp=sdp, type=type)


def _is_keepalive(message: Any) -> bool:
    """Whether this is a SmallWebRTC keepalive (bare text starting with "ping")."""
    return isinstance(message, str) and message.startswith("ping")


# Pipecat's request handler builds its connections through this module-level name.
request_handler.SmallWebRTCConnection = PromptWebRTCConnection


class EchoWebRTCInputTransport(SmallWebRTCInputTransport):
    """SmallWebRTC input that hands app messages to the echo processor, downstream only.

    Pipecat also sends a copy upstream for RTVI, which the echo pipeline does not run.
    That copy would be pushed after the pong is handed to aiortc but before aiortc's
    send task runs, delaying every pong.
    """

    async def push_app_message(self, message: Any):
        """Hand an incoming app message to the echo processor."""
        await hand_downstream(self, InputTransportMessageFrame(message=message))


class EchoWebRTCTransport(SmallWebRTCTransport):
    """SmallWebRTC transport tuned for echoing: prompt app messages, direct-mode output.

    App messages come straight from a `PromptWebRTCConnection`. The output sends a
    pong or an echoed audio frame as soon as it is handed over, instead of waiting for
    the output transport's queue task to be scheduled.
    """

    def __init__(self, webrtc_connection: SmallWebRTCConnection, **kwargs):
        """Initialize the transport; arguments as for `SmallWebRTCTransport`."""
        super().__init__(webrtc_connection=webrtc_connection, **kwargs)
        self._connection = webrtc_connection
        if isinstance(webrtc_connection, PromptWebRTCConnection):
            webrtc_connection.deliver_app_messages(self._deliver_app_message)

    async def _deliver_app_message(self, message: Any) -> None:
        # What Pipecat's connection -> client -> transport callbacks would end in.
        await self._on_app_message(message, self._connection.pc_id)

    def input(self) -> SmallWebRTCInputTransport:
        """The input transport, handing app messages downstream only."""
        if not self._input:
            self._input = EchoWebRTCInputTransport(
                self._client, self._params, name=self._input_name
            )
        return self._input

    def output(self) -> SmallWebRTCOutputTransport:
        """The output transport, in direct mode."""
        if not self._output:
            self._output = SmallWebRTCOutputTransport(
                self._client, self._params, name=self._output_name, enable_direct_mode=True
            )
        return self._output


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
    return EchoWebRTCTransport(
        webrtc_connection=connection, params=TransportParams(**media_params(mode))
    )
