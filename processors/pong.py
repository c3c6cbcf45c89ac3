"""Ping -> pong over app messages (Daily app-message, LiveKit data, WebRTC data channel).

Two formats side by side: the seed's own (`{"type": "ping", ...}` -> `{"type": "pong",
...}`) and RTVI, which Pipecat's clients speak (`client-ready` -> `bot-ready`, a
`client-message` `ping` -> a `server-response` carrying the same pong).
"""

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any

import pipecat.processors.frameworks.rtvi.models as RTVI
from loguru import logger
from pipecat import version as pipecat_version
from pipecat.frames.frames import (
    Frame,
    InputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from agent_core import (
    MAX_MESSAGE_BYTES,
    PONG_TO_STAMP,
    RECEIVED_AT,
    RateLimitNotice,
    hand_downstream,
)

ReplyFrameFactory = Callable[[dict, str | None], Frame]
"""Builds the urgent frame that carries `message` back to participant `sender`."""


def urgent_reply(message: dict, sender: str | None) -> Frame:
    """The default reply: an urgent message to whoever the transport talks to."""
    return OutputTransportMessageUrgentFrame(message=message)


class PongProcessor(FrameProcessor):
    """Answers `{"type": "ping", "timestamp": n}` app messages with a pong, and RTVI pings.

    RTVI (`"label": "rtvi-ai"`): `client-ready` gets `bot-ready` (same id, protocol
    2.x), a `client-message` with `data.t == "ping"` gets a `server-response` whose
    `data.d` is the pong; both kinds of ping count in `message_count`. An unsupported
    `client-message` gets an RTVI `error-response`; other RTVI types are ignored.
    Other app messages are ignored (debug log); a ping with a bad timestamp gets an
    error message back; messages over 64 KiB are dropped with a warning. When the
    transport drops messages over the session's rate bound, it hands on a
    `RateLimitNotice` (at most one a second), which the sender gets as an error. Nothing a
    client sends can stop the processor. App messages are consumed here; every other
    frame is forwarded. Replies are handed on with `hand_downstream`.

    Events:
        on_ping: called with (processor, sender) after each pong is pushed.
    """

    def __init__(
        self,
        *,
        reply_frame: ReplyFrameFactory = urgent_reply,
        ping_counts: Counter[Hashable] | None = None,
        **kwargs,
    ):
        """Initialize the processor.

        Args:
            reply_frame: Builds the reply frame; transports that can target one
                participant pass their own urgent message frame here.
            ping_counts: Valid pings per sender, counted here; pass one to read it
                from outside without an event per ping.
            **kwargs: Passed on to `FrameProcessor`.
        """
        super().__init__(**kwargs)
        self._reply_frame = reply_frame
        self._ping_counts: Counter[Hashable] = Counter() if ping_counts is None else ping_counts
        self._register_event_handler("on_ping", sync=True)

    @property
    def pings_answered(self) -> int:
        """Number of pongs sent in this session."""
        return self._ping_counts.total()

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Answer pings; forward everything that is not an incoming app message."""
        await super().process_frame(frame, direction)
        if isinstance(frame, InputTransportMessageFrame):
            if direction == FrameDirection.DOWNSTREAM:
                await self._handle_message(frame)
            return
        await self.push_frame(frame, direction)

    async def _handle_message(self, frame: InputTransportMessageFrame):
        try:
            await self._answer(frame)
        except Exception as e:
            # Whatever a client sent, the session goes on (tests/test_fuzz.py).
            logger.debug(f"Ignoring app message that could not be handled: {type(e).__name__}")

    async def _answer(self, frame: InputTransportMessageFrame):
        # Stamped by the transport's first code to see the message (agent_core.RECEIVED_AT).
        receive_time = frame.metadata.get(RECEIVED_AT) or time.time()
        sender = getattr(frame, "participant_id", None)
        if isinstance(frame.message, RateLimitNotice):
            logger.warning(f"Dropping app messages: {frame.message.error}")
            await self._reply({"type": "error", "error": frame.message.error}, sender)
            return
        size = _encoded_size(frame.message)
        if size is None:
            logger.debug("Ignoring app message that cannot be encoded as JSON")
            return
        if size > MAX_MESSAGE_BYTES:
            logger.warning(f"Dropping app message of {size} bytes (limit {MAX_MESSAGE_BYTES})")
            return
        message = _as_object(frame.message)
        if message is None:
            logger.debug("Ignoring app message that is not a JSON object")
            return
        kind = message.get("type")
        if kind == "ping":
            await self._answer_ping(message, sender, receive_time)
        elif message.get("label") == RTVI.MESSAGE_LABEL:
            await self._answer_rtvi(message, sender, receive_time)
        else:
            logger.debug(f"Ignoring app message of type {kind!r}")

    async def _answer_ping(self, message: dict, sender: Hashable, receive_time: float):
        if problem := _ping_problem(message):
            await self._reply({"type": "error", "error": problem}, sender)
            return
        pong = self._pong(message, sender, receive_time)
        await self._send_pong(self._reply_frame(pong, sender), pong)
        await self._call_event_handler("on_ping", sender)

    async def _answer_rtvi(self, message: dict, sender: Hashable, receive_time: float):
        kind, msg_id, data = message.get("type"), message.get("id"), message.get("data")
        if not isinstance(msg_id, str):
            logger.debug(f"Ignoring RTVI message {kind!r} without a string id")
            return
        if kind == "client-message" and isinstance(data, dict) and data.get("t") == "ping":
            ping = data.get("d")
            if not isinstance(ping, dict):
                await self._rtvi_error(
                    msg_id, "ping data must be an object {timestamp, seq?}", sender
                )
            elif problem := _ping_problem(ping):
                await self._rtvi_error(msg_id, problem, sender)
            else:
                pong = self._pong(ping, sender, receive_time)
                response = {
                    "label": RTVI.MESSAGE_LABEL,
                    "type": "server-response",
                    "id": msg_id,
                    "data": {"t": "ping", "d": pong},
                }
                await self._send_pong(self._reply_frame(response, sender), pong)
                await self._call_event_handler("on_ping", sender)
        elif kind == "client-ready":
            await self._answer_client_ready(msg_id, data, sender)
        elif kind == "client-message":
            # The client may be waiting on this id (sendClientRequest): say it won't come.
            t = data.get("t") if isinstance(data, dict) else None
            await self._rtvi_error(msg_id, f"unsupported client message {t!r}", sender)
        else:
            logger.debug(f"Ignoring RTVI message of type {kind!r}")

    async def _answer_client_ready(self, msg_id: str, data: Any, sender: Hashable):
        version = data.get("version") if isinstance(data, dict) else None
        if not _same_major(version, RTVI.PROTOCOL_VERSION):
            # As Pipecat's RTVIProcessor does: say so, and be ready anyway.
            problem = (
                f"RTVI version {version!r} is not compatible with server protocol "
                f"{RTVI.PROTOCOL_VERSION}. Compatibility issues may occur."
            )
            await self._rtvi_error(msg_id, problem, sender)
        ready = RTVI.BotReady(
            id=msg_id,
            data=RTVI.BotReadyData(
                version=RTVI.PROTOCOL_VERSION,
                about={"library": "pipecat-ai", "library_version": pipecat_version()},
            ),
        )
        await self._reply(ready.model_dump(exclude_none=True), sender)

    async def _rtvi_error(self, msg_id: str, error: str, sender: Hashable):
        response = RTVI.ErrorResponse(id=msg_id, data=RTVI.ErrorResponseData(error=error))
        await self._reply(response.model_dump(), sender)

    def _pong(self, ping: dict, sender: Hashable, receive_time: float) -> dict:
        """The pong for a valid ping (seed fields + seq), counted for its sender."""
        self._ping_counts[sender] += 1
        pong = {
            "type": "pong",
            "client_timestamp": ping["timestamp"],
            "server_receive_time": receive_time,
            "server_send_time": 0.0,
            "message_count": self._ping_counts[sender],
        }
        if "seq" in ping:
            pong["seq"] = ping["seq"]
        return pong

    async def _send_pong(self, reply: Frame, pong: dict) -> None:
        # The output transport sets server_send_time again right before its send
        # (agent_core.stamp_send_time); this one holds where nothing does, e.g. in tests.
        reply.metadata[PONG_TO_STAMP] = pong
        pong["server_send_time"] = time.time()
        await hand_downstream(self, reply)

    async def _reply(self, message: dict, sender: Hashable) -> None:
        await hand_downstream(self, self._reply_frame(message, sender))


def _as_object(message: Any) -> dict | None:
    """The message as a dict, decoding JSON text; None when it is not a JSON object."""
    if isinstance(message, bytes | bytearray):
        message = message.decode("utf-8", errors="replace")
    if isinstance(message, str):
        try:
            message = json.loads(message)
        except (ValueError, RecursionError):
            return None
    return message if isinstance(message, dict) else None


MAX_SEQ_DEPTH = 32
"""A ping's `seq` is echoed; nesting deeper than this is refused (it could not be sent)."""


def _shallow(value: Any, depth: int = 0) -> bool:
    """Whether `value` nests lists/objects at most `MAX_SEQ_DEPTH` deep (scalars: at once)."""
    if not isinstance(value, list | dict):
        return True
    if depth >= MAX_SEQ_DEPTH:
        return False
    items = value.values() if isinstance(value, dict) else value
    return all(_shallow(item, depth + 1) for item in items)


def _encoded_size(message: Any) -> int | None:
    """Size of the message as it travelled, in bytes (its JSON encoding for objects).

    None when it cannot be encoded at all (nested too deeply, an integer too long).

    A flat object of scalars and strings (every ping) is bounded without encoding it:
    this runs on every message, in the path of every pong.
    """
    if isinstance(message, bytes | bytearray):
        return len(message)
    if isinstance(message, str):
        return len(message.encode())
    if isinstance(message, dict) and len(message) < 256:
        bound = 2
        for key, value in message.items():
            if isinstance(value, str):
                bound += 6 * len(value) + 8  # worst case: every character \u-escaped
            elif value is None or isinstance(value, int | float):
                bound += 32
            else:
                break
            bound += 6 * len(str(key)) + 8
        else:
            if bound <= MAX_MESSAGE_BYTES:
                return bound
    try:
        return len(json.dumps(message, separators=(",", ":"), default=str).encode())
    except (TypeError, ValueError, RecursionError):
        return None


def _same_major(version: Any, ours: str) -> bool:
    """Whether an RTVI version string (e.g. "2.1.0") has the same major as ours."""
    return isinstance(version, str) and version.split(".", 1)[0] == ours.split(".", 1)[0]


def _ping_problem(ping: dict) -> str | None:
    """What makes a ping unanswerable (its timestamp, its seq), or None."""
    if problem := _timestamp_problem(ping.get("timestamp")):
        return problem
    if "seq" in ping and not _shallow(ping["seq"]):
        return f"ping seq nested deeper than {MAX_SEQ_DEPTH}"
    return None


def _timestamp_problem(timestamp: Any) -> str | None:
    """What is wrong with a ping's timestamp, or None when it is a finite number."""
    if timestamp is None:
        return "ping has no timestamp"
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        return f"ping timestamp must be a number, got {type(timestamp).__name__}"
    try:
        finite = math.isfinite(timestamp)
    except OverflowError:  # an integer beyond any float, e.g. 10**400
        finite = False
    if not finite:
        return "ping timestamp must be a finite number"
    return None
