"""A benchmark session through the echo agent's API, on any platform.

`open_session(server, platform, mode, http)` calls `POST /connect`, joins the room it
returns with that platform's participant (`echo_bench.participants`) and gives it back,
with how long each setup phase took.
"""

import importlib.metadata
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from echo_bench.media import Signal
from echo_bench.participants import Participant, ParticipantError, network_reason
from echo_bench.participants.webrtc import WebRTCParticipant
from echo_bench.wire import RTVI, SEED, Pong, Wire, parse_reply
from ice_addresses import restrict_ice_addresses

__all__ = [
    "PLATFORMS",
    "BenchClient",
    "BenchError",
    "SessionInfo",
    "WebRTCBenchClient",
    "configure_ice",
    "connect_room",
    "offer_session",
    "open_session",
    "wait_for_bot_ready",
    "wait_for_pong",
    "wait_until_answering",
]

PLATFORMS = ("webrtc", "daily", "livekit")
PROBE_INTERVAL = 0.05
"""Seconds between the probe pings that find out when the bot answers."""
HTTP_TIMEOUT = 30.0

BenchClient = Participant
"""What a benchmark needs from a client, whatever the platform."""
WebRTCBenchClient = WebRTCParticipant
"""The local WebRTC participant, under the name `benchmarks/` imports."""


class BenchError(Exception):
    """A benchmark cannot run; the message is meant for the user as is."""


@dataclass
class SessionInfo:
    """A joined session: which room, when `/connect` was called, how long setup took.

    Attributes:
        platform: `webrtc`, `daily` or `livekit`.
        room: The room (or session id) joined.
        connect_started: perf_counter just before `POST /connect` (or the offer).
        joined: perf_counter when the participant had joined.
        setup: Seconds per setup phase: `connect` (the `/connect` request), `join` and
            the participant's own steps (`offer`, `ice_dtls`; `publish`), then from
            `wait_until_answering` `bot_ready` (RTVI), `first_pong` and `total`.
    """

    platform: str
    room: str
    connect_started: float
    joined: float = 0.0
    setup: dict[str, float] = field(default_factory=dict)


def configure_ice(addresses: list[str] | None) -> None:
    """Restrict this process' WebRTC host candidates (e.g. to 127.0.0.1).

    `addresses` None reads `WEBRTC_ICE_ADDRESSES` (comma separated); nothing set
    leaves aiortc's default (every interface but loopback).
    """
    if addresses is None:
        addresses = [a.strip() for a in os.environ.get("WEBRTC_ICE_ADDRESSES", "").split(",")]
    addresses = [a for a in addresses if a]
    if addresses:
        restrict_ice_addresses(addresses)


async def connect_room(server: str, platform: str, mode: str, http: aiohttp.ClientSession) -> dict:
    """`POST /connect` for one platform; returns that platform's credentials.

    Raises:
        BenchError: the server is down or refused (its `detail` is quoted).
    """
    url = f"{server.rstrip('/')}/connect"
    try:
        async with http.post(
            url,
            json={"platforms": [platform], "mode": mode},
            timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT),
        ) as response:
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = None
            if response.status != 200:
                detail = body.get("detail") if isinstance(body, dict) else None
                raise BenchError(
                    f"POST {url} failed (HTTP {response.status}): "
                    f"{detail or response.reason or 'no detail'}"
                )
    except aiohttp.ClientConnectorError as e:
        raise BenchError(
            f"cannot reach the echo agent at {server}: {network_reason(e)} (is the server running?)"
        ) from None
    except TimeoutError:
        raise BenchError(f"POST {url} got no answer within {HTTP_TIMEOUT:g} s") from None
    except aiohttp.ClientError as e:
        raise BenchError(f"POST {url} failed: {network_reason(e)}") from None
    credentials = body.get(platform) if isinstance(body, dict) else None
    if not isinstance(credentials, dict):
        raise BenchError(f"POST {url} returned no {platform} room")
    return credentials


async def open_session(
    server: str,
    platform: str,
    mode: str,
    http: aiohttp.ClientSession,
    *,
    signal: Signal | None = None,
    receive_audio: bool = False,
    join_timeout: float = 30.0,
) -> tuple[Participant, SessionInfo]:
    """Create a room with a bot through `/connect` and join it as a client.

    Args:
        server: The echo agent's base URL.
        platform: `webrtc`, `daily` or `livekit`.
        mode: The bot's echo mode (`pong`, `loopback`, `tone`).
        http: Shared HTTP session.
        signal: What the client's microphone plays; None publishes no microphone.
        receive_audio: Subscribe to the bot's audio even without a microphone.
        join_timeout: Seconds allowed to join.

    Raises:
        BenchError: the room could not be created or joined.
    """
    if platform not in PLATFORMS:
        raise BenchError(f"unknown platform {platform!r} (one of {', '.join(PLATFORMS)})")
    started = time.perf_counter()
    credentials = await connect_room(server, platform, mode, http)
    info = SessionInfo(platform, "", started, setup={"connect": time.perf_counter() - started})
    joining = time.perf_counter()
    if platform == "webrtc":
        offer_url = _field(credentials, "offer_url")
        client = WebRTCParticipant(signal, receive_audio=receive_audio)
        info.room = str(credentials.get("session_id", ""))
        join = client.connect(offer_url, http, join_timeout)
    elif platform == "daily":
        from echo_bench.participants.daily import DailyParticipant

        room_url, token = _field(credentials, "room_url"), _field(credentials, "token")
        client = DailyParticipant(signal, receive_audio=receive_audio)
        info.room = room_url.rstrip("/").rsplit("/", 1)[-1]
        join = client.connect(room_url, token, join_timeout)
    else:
        from echo_bench.participants.livekit import LiveKitParticipant

        server_url, token = _field(credentials, "server_url"), _field(credentials, "token")
        client = LiveKitParticipant(signal, receive_audio=receive_audio)
        info.room = str(credentials.get("room_name", ""))
        join = client.connect(server_url, token, join_timeout, room=info.room)
    try:
        await join
    except BaseException as e:
        await client.close()
        if isinstance(e, ParticipantError):
            raise BenchError(str(e)) from None
        raise
    info.joined = time.perf_counter()
    info.setup |= {"join": info.joined - joining, **client.setup}
    return client, info


async def offer_session(
    offer_url: str,
    http: aiohttp.ClientSession,
    *,
    signal: Signal | None = None,
    join_timeout: float = 30.0,
) -> tuple[WebRTCParticipant, SessionInfo]:
    """Join any peer that answers the agent's offer protocol at `offer_url` (aiortc).

    Raises:
        BenchError: the offer failed or the data channel did not open.
    """
    client = WebRTCParticipant(signal)
    started = time.perf_counter()
    try:
        await client.connect(offer_url, http, join_timeout)
    except BaseException as e:
        await client.close()
        if isinstance(e, ParticipantError):
            raise BenchError(str(e)) from None
        raise
    joined = time.perf_counter()
    setup = {"join": joined - started, **client.setup}
    return client, SessionInfo("webrtc", client.pc_id or "", started, joined, setup)


async def wait_for_pong(client: Participant, join_timeout: float, wire: Wire = SEED) -> float:
    """Probe with pings (negative seqs) until the bot answers; returns the arrival time.

    Raises:
        BenchError: no pong within `join_timeout` seconds, or the client cannot send.
    """

    def answers(message: dict) -> bool:
        reply = parse_reply(wire.reply(message))
        return isinstance(reply, Pong) and reply.seq < 0

    return await _probe(client, join_timeout, lambda n: wire.ping(-n), answers, "answer a ping")


async def wait_for_bot_ready(client: Participant, join_timeout: float) -> float:
    """RTVI: send `client-ready` until the bot answers `bot-ready`; returns its arrival.

    Each `client-ready` (one per probe interval, until the bot has started) has its own
    id; a `bot-ready` answering any of them counts.

    Raises:
        BenchError: no `bot-ready` within `join_timeout` seconds.
    """
    asked: set[str] = set()

    def client_ready(n: int) -> dict:
        asked.add(f"client-ready-{n}")
        return RTVI.client_ready(f"client-ready-{n}", "echo-bench", _version())

    return await _probe(
        client,
        join_timeout,
        client_ready,
        lambda message: RTVI.bot_ready_id(message) in asked,
        "answer client-ready with bot-ready",
    )


async def _probe(
    client: Participant,
    join_timeout: float,
    probe: Callable[[int], dict],
    answers: Callable[[dict], bool],
    what: str,
) -> float:
    """Send `probe(n)` (n = 1, 2...) every `PROBE_INTERVAL` s until a message `answers`.

    Returns the answer's arrival time; other messages are dropped.

    Raises:
        BenchError: no answer within `join_timeout` seconds, or the client cannot send.
    """
    deadline = time.perf_counter() + join_timeout
    n = 0
    while (remaining := deadline - time.perf_counter()) > 0:
        n += 1
        await send(client, probe(n))
        probe_end = time.perf_counter() + min(PROBE_INTERVAL, remaining)
        while (wait := probe_end - time.perf_counter()) > 0:
            try:
                arrival, message = await client.next_message(wait)
            except TimeoutError:
                break
            if answers(message):
                return arrival
    raise BenchError(f"the bot did not {what} within {join_timeout:g} s")


async def wait_until_answering(
    client: Participant, info: SessionInfo, join_timeout: float, wire: Wire = SEED
) -> float:
    """After joining: the bot's `bot-ready` (RTVI only), then its first pong.

    Adds `bot_ready`, `first_pong` (each from the step before) and `total` (from
    `/connect` to the first pong) to `info.setup`; returns the first pong's arrival.

    Raises:
        BenchError: the bot did not answer within `join_timeout` seconds.
    """
    start = info.joined
    if wire.rtvi:
        ready = await wait_for_bot_ready(client, join_timeout)
        info.setup["bot_ready"] = ready - start
        start = ready
    first_pong = await wait_for_pong(client, join_timeout, wire)
    info.setup["first_pong"] = first_pong - start
    info.setup["total"] = first_pong - info.connect_started
    return first_pong


def _version() -> str:
    try:
        return importlib.metadata.version("echo-agent")
    except importlib.metadata.PackageNotFoundError:
        return "0"


async def send(client: Participant, message: dict) -> None:
    """Send one app message; a participant's failure becomes a `BenchError`."""
    try:
        await client.send(message)
    except ParticipantError as e:
        raise BenchError(str(e)) from None


def _field(credentials: dict, name: str) -> str:
    """A string field of `/connect`'s answer for a platform."""
    value = credentials.get(name)
    if not isinstance(value, str) or not value:
        raise BenchError(f"/connect returned no {name}")
    return value
