"""Joining a room as a benchmark client, on any platform, through the echo agent's API.

`open_session(server, platform, mode, http)` calls `POST /connect`, joins the room it
returns with that platform's client and gives back a `BenchClient`: app messages in
and out, a microphone playing a signal, and the audio received, on one interface.
"""

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import numpy as np
from aiortc.exceptions import InvalidStateError

from echo_bench.webrtc_client import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    EchoClient,
    ReceivedAudio,
    Signal,
    SignalTrack,
)

__all__ = [
    "PLATFORMS",
    "BenchClient",
    "BenchError",
    "SessionInfo",
    "SignalPlayer",
    "WebRTCBenchClient",
    "configure_ice",
    "connect_room",
    "open_session",
    "wait_for_pong",
]

PLATFORMS = ("webrtc", "daily", "livekit")
PROBE_INTERVAL = 0.1
"""Seconds between the probe pings that find out when the bot answers."""
HTTP_TIMEOUT = 30.0


class BenchError(Exception):
    """A benchmark cannot run; the message is meant for the user as is."""


class BenchClient(Protocol):
    """What a benchmark needs from a client, whatever the platform.

    Attributes:
        received: Audio received from the bot, blocks with perf_counter arrival times.
        sent_audio: (perf_counter send time, first sample) of each microphone frame.
    """

    received: ReceivedAudio
    sent_audio: list[tuple[float, int]]

    async def send(self, message: dict) -> None:
        """Send one app message to the bot."""

    async def next_message(self) -> tuple[float, dict]:
        """The next app message from the bot, with its perf_counter arrival time."""

    async def close(self) -> None:
        """Leave the room."""


@dataclass
class SessionInfo:
    """A joined session: which room, and when `/connect` (or the offer) was called."""

    platform: str
    room: str
    connect_started: float
    """perf_counter just before `POST /connect`."""


class WebRTCBenchClient:
    """`EchoClient` (aiortc, local WebRTC) behind the `BenchClient` interface."""

    def __init__(self, signal: Signal | None = None, receive_audio: bool = False):
        self.microphone = SignalTrack(signal) if signal is not None else None
        self.client = EchoClient(microphone=self.microphone, receive_audio=receive_audio)

    @property
    def received(self) -> ReceivedAudio:
        """Audio received from the peer."""
        return self.client.received

    @property
    def sent_audio(self) -> list[tuple[float, int]]:
        """What the microphone sent, when."""
        return self.microphone.sent if self.microphone else []

    async def connect(
        self, offer_url: str, http: aiohttp.ClientSession, join_timeout: float = 30.0
    ) -> None:
        """Offer to `offer_url` and wait for the data channel.

        Raises:
            BenchError: the offer was refused or the connection did not open in time.
        """
        try:
            await self.client.connect(offer_url, http, join_timeout)
        except TimeoutError:
            raise BenchError(f"WebRTC connection did not open within {join_timeout:g} s") from None
        except ConnectionError as e:
            raise BenchError(str(e)) from None
        except aiohttp.ClientError as e:
            raise BenchError(f"offer to {offer_url} failed: {_describe(e)}") from None

    async def send(self, message: dict) -> None:
        """Send one app message on the data channel.

        Raises:
            BenchError: the data channel is no longer open.
        """
        try:
            self.client.send(message)
        except InvalidStateError:
            raise BenchError("the WebRTC data channel closed") from None

    async def next_message(self) -> tuple[float, dict]:
        """The next message from the peer."""
        return await self.client.messages.get()

    async def close(self) -> None:
        """Close the peer connection."""
        await self.client.close()


class SignalPlayer:
    """Plays a signal in real time, 20 ms at a time, into an async `write(samples)`.

    For clients whose SDK takes pushed frames (Daily, LiveKit); `sent` records
    (perf_counter, first sample) of each frame just before it is handed over.
    """

    def __init__(self, signal: Signal, write: Callable[[np.ndarray], Awaitable[None]]):
        self.signal = signal
        self.sent: list[tuple[float, int]] = []
        self._write = write
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start playing."""
        if self._task is None:
            self._task = asyncio.create_task(self._play())

    async def stop(self) -> None:
        """Stop playing."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _play(self) -> None:
        start = time.perf_counter()
        sample = 0
        while True:
            wait = start + sample / SAMPLE_RATE - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            samples = np.asarray(self.signal(sample, FRAME_SAMPLES), dtype=np.int16)
            self.sent.append((time.perf_counter(), sample))
            await self._write(samples)
            sample += FRAME_SAMPLES


def configure_ice(addresses: list[str] | None) -> None:
    """Restrict this process' WebRTC host candidates (e.g. to 127.0.0.1).

    `addresses` None reads `WEBRTC_ICE_ADDRESSES` (comma separated); nothing set
    leaves aiortc's default (every interface but loopback).
    """
    if addresses is None:
        addresses = [a.strip() for a in os.environ.get("WEBRTC_ICE_ADDRESSES", "").split(",")]
    addresses = [a for a in addresses if a]
    if addresses:
        from transports.webrtc import restrict_ice_addresses

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
            f"cannot reach the echo agent at {server}: {_describe(e)} (is the server running?)"
        ) from None
    except TimeoutError:
        raise BenchError(f"POST {url} got no answer within {HTTP_TIMEOUT:g} s") from None
    except aiohttp.ClientError as e:
        raise BenchError(f"POST {url} failed: {_describe(e)}") from None
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
) -> tuple[BenchClient, SessionInfo]:
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
    client: BenchClient
    if platform == "webrtc":
        offer_url = _field(credentials, "offer_url")
        client = WebRTCBenchClient(signal=signal, receive_audio=receive_audio)
        room = str(credentials.get("session_id", ""))
        join = client.connect(offer_url, http, join_timeout)
    elif platform == "daily":
        from echo_bench.daily_client import DailyBenchClient

        room_url, token = _field(credentials, "room_url"), _field(credentials, "token")
        client = DailyBenchClient(signal=signal, receive_audio=receive_audio)
        room = room_url.rstrip("/").rsplit("/", 1)[-1]
        join = client.connect(room_url, token, join_timeout)
    else:
        from echo_bench.livekit_client import LiveKitBenchClient

        server_url, token = _field(credentials, "server_url"), _field(credentials, "token")
        client = LiveKitBenchClient(signal=signal, receive_audio=receive_audio)
        room = str(credentials.get("room_name", ""))
        join = client.connect(server_url, token, join_timeout)
    try:
        await join
    except BaseException:
        await client.close()
        raise
    return client, SessionInfo(platform=platform, room=room, connect_started=started)


async def wait_for_pong(client: BenchClient, join_timeout: float) -> float:
    """Probe with pings (negative seqs) until the bot answers; returns the arrival time.

    Raises:
        BenchError: no pong within `join_timeout` seconds.
    """
    deadline = time.perf_counter() + join_timeout
    seq = 0
    while (remaining := deadline - time.perf_counter()) > 0:
        seq -= 1
        await client.send({"type": "ping", "timestamp": time.time(), "seq": seq})
        probe_end = time.perf_counter() + min(PROBE_INTERVAL, remaining)
        while (wait := probe_end - time.perf_counter()) > 0:
            try:
                arrival, message = await asyncio.wait_for(client.next_message(), wait)
            except TimeoutError:
                break
            probe = message.get("seq")
            if message.get("type") in ("pong", "ping") and isinstance(probe, int) and probe < 0:
                return arrival
    raise BenchError(f"the bot did not answer a ping within {join_timeout:g} s")


def _field(credentials: dict, name: str) -> str:
    """A string field of `/connect`'s answer for a platform."""
    value = credentials.get(name)
    if not isinstance(value, str) or not value:
        raise BenchError(f"/connect returned no {name}")
    return value


def _describe(error: Exception) -> str:
    """A short description of a network error (no internals, no URLs with tokens)."""
    cause = getattr(error, "os_error", None) or error
    if isinstance(cause, socket.gaierror) and cause.strerror:
        return cause.strerror.lower()
    if isinstance(cause, OSError) and cause.errno and cause.errno > 0:
        return os.strerror(cause.errno).lower()
    return str(cause) or type(error).__name__
