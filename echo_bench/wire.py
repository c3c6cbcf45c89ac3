"""The client's side of the echo agent's wire format, written once.

Seed format (every platform's app messages, JSON objects):

- ping, client -> bot: `{"type": "ping", "timestamp": <client wall clock>, "seq": <int>}`
- pong, bot -> client: `{"type": "pong", "client_timestamp", "server_receive_time",
  "server_send_time", "message_count", "seq"}` (times: the server's Unix clock, seconds)
- error, bot -> client: `{"type": "error", "error": "<what was wrong>"}`

RTVI (what Pipecat's JS clients speak): every message is `{"label": "rtvi-ai", "type",
"id", "data"}`. The client sends `client-ready` and the bot answers `bot-ready` with the
same id; a ping travels as a `client-message` `{"t": "ping", "d": {"timestamp", "seq"}}`
and its pong comes back as a `server-response` with the same id, `{"t": "ping", "d": <pong>}`.
"""

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PONG_FIELDS",
    "RTVI",
    "RTVI_LABEL",
    "RTVI_VERSION",
    "SEED",
    "ErrorReply",
    "Pong",
    "RtviWire",
    "SeedWire",
    "Wire",
    "parse_reply",
    "ping",
]

PONG_FIELDS: dict[str, type | tuple[type, ...]] = {
    "type": str,
    "client_timestamp": (int, float),
    "server_receive_time": float,
    "server_send_time": float,
    "message_count": int,
    "seq": int,
}
"""Every field of a pong the client reads, with its JSON type."""

RTVI_LABEL = "rtvi-ai"
RTVI_VERSION = "2.0.0"


def ping(seq: int, timestamp: float | None = None) -> dict:
    """A seed-format ping; `timestamp` defaults to the client's wall clock now."""
    stamp = time.time() if timestamp is None else timestamp
    return {"type": "ping", "timestamp": stamp, "seq": seq}


@dataclass(frozen=True)
class Pong:
    """A reply to a ping: the agent's pong, or the ping itself from a peer that echoes.

    Attributes:
        seq: The ping's sequence number.
        server_receive_time: The server's clock when the ping arrived (None if absent).
        server_send_time: The server's clock just before the pong left (None if absent).
        message_count: The sender's pings counted by the bot so far (None if absent).
        client_timestamp: The ping's `timestamp`, echoed.
    """

    seq: int
    server_receive_time: float | None = None
    server_send_time: float | None = None
    message_count: int | None = None
    client_timestamp: float | None = None


@dataclass(frozen=True)
class ErrorReply:
    """The bot's answer to a ping it could not read."""

    error: str


def parse_reply(message: Any) -> Pong | ErrorReply | None:
    """A seed-format reply as a `Pong` or `ErrorReply`; None for anything else.

    A pong (or an echoed ping) needs an integer `seq`; its other fields are read when
    they are finite numbers and left None otherwise.
    """
    if not isinstance(message, dict):
        return None
    kind = message.get("type")
    if kind == "error":
        return ErrorReply(str(message.get("error", "")))
    seq = message.get("seq")
    if kind not in ("pong", "ping") or not _is_int(seq):
        return None
    count = message.get("message_count")
    return Pong(
        seq=seq,
        server_receive_time=_number(message.get("server_receive_time")),
        server_send_time=_number(message.get("server_send_time")),
        message_count=count if _is_int(count) else None,
        client_timestamp=_number(message.get("client_timestamp")),
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


class Wire(ABC):
    """How pings go out and replies come in on one connection."""

    rtvi = False

    @abstractmethod
    def ping(self, seq: int, timestamp: float | None = None) -> dict:
        """The message that carries ping `seq`."""

    @abstractmethod
    def reply(self, message: dict) -> dict | None:
        """The seed-format reply a received message carries, or None."""


class SeedWire(Wire):
    """The seed format: pings and pongs as they are."""

    def ping(self, seq: int, timestamp: float | None = None) -> dict:
        """A seed-format ping."""
        return ping(seq, timestamp)

    def reply(self, message: dict) -> dict | None:
        """The message itself."""
        return message


class RtviWire(Wire):
    """Pings as RTVI client messages, pongs out of RTVI server responses."""

    rtvi = True

    def ping(self, seq: int, timestamp: float | None = None) -> dict:
        """`client-message` `{"t": "ping", "d": <seed ping without its type>}`."""
        body = ping(seq, timestamp)
        del body["type"]
        return rtvi_message("client-message", f"ping-{seq}", {"t": "ping", "d": body})

    def reply(self, message: dict) -> dict | None:
        """The pong of a `server-response` to a ping, or the error of an `error-response`."""
        if message.get("label") != RTVI_LABEL:
            return None
        data = message.get("data")
        if not isinstance(data, dict):
            return None
        if message.get("type") == "error-response":
            return {"type": "error", "error": str(data.get("error", ""))}
        if message.get("type") == "server-response" and data.get("t") == "ping":
            pong = data.get("d")
            return pong if isinstance(pong, dict) else None
        return None

    @staticmethod
    def client_ready(message_id: str, library: str, version: str) -> dict:
        """The `client-ready` that asks the bot for `bot-ready`."""
        about = {"library": library, "library_version": version, "platform": "python"}
        return rtvi_message("client-ready", message_id, {"version": RTVI_VERSION, "about": about})

    @staticmethod
    def bot_ready_id(message: dict) -> str | None:
        """The id of a `bot-ready` whose RTVI major version is ours, else None."""
        if message.get("label") != RTVI_LABEL or message.get("type") != "bot-ready":
            return None
        data = message.get("data")
        version = str(data.get("version", "")) if isinstance(data, dict) else ""
        if version.split(".")[0] != RTVI_VERSION.split(".")[0]:
            return None
        return str(message.get("id"))


def rtvi_message(kind: str, message_id: str, data: dict) -> dict:
    """One RTVI message."""
    return {"label": RTVI_LABEL, "type": kind, "id": message_id, "data": data}


SEED = SeedWire()
RTVI = RtviWire()
