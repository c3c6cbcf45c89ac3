"""The rooms of `echo-bench converse`: both speakers in one new room, one function per platform.

Each `join_<platform>(customer, support, ...)` is an async context manager that brings both
speakers into one room as participants (`echo_bench.participants`), publishes each one's
`Voice`, records what each hears from the other into its `heard`, and yields a `Room`;
leaving the block leaves the room (and deletes it where the platform keeps rooms). A
platform's SDK is imported only when its room is joined.
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import aiohttp
from loguru import logger

from echo_bench.media import ReceivedAudio
from echo_bench.participants import ParticipantError
from echo_bench.tones import Voice
from ice_addresses import restrict_ice_addresses

__all__ = [
    "ConverseError",
    "DailyAPI",
    "Room",
    "Speaker",
    "join_daily",
    "join_livekit",
    "join_local",
    "livekit_token",
    "unique_identity",
]

TTL_MARGIN_SECS = 300.0
"""Rooms and tokens outlive the conversation by this much."""
DAILY_API_TIMEOUT_SECS = 10.0


class ConverseError(Exception):
    """A participant could not join, publish or subscribe; the message says which and why."""


@dataclass
class Speaker:
    """One side of the conversation.

    Attributes:
        role: "customer" or "support".
        identity: the participant identity in the room.
        voice: what this speaker publishes.
        listens_to: the identity of the other speaker, whose audio it subscribes to.
        heard: the audio received from the other speaker, with arrival times.
    """

    role: str
    identity: str
    voice: Voice
    listens_to: str = ""
    heard: ReceivedAudio = field(default_factory=ReceivedAudio)


@dataclass
class Room:
    """A room both speakers are in.

    Attributes:
        name: the room's name on the platform.
        transport_stats: optional coroutine giving, per role, packet figures the transport
            itself counted (e.g. RTP packets sent and received).
    """

    name: str
    transport_stats: Callable[[], Awaitable[dict[str, dict]]] | None = None


def unique_identity(prefix: str) -> str:
    """A participant identity no other connection uses (LiveKit evicts duplicates)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@contextmanager
def _platform_errors() -> Iterator[None]:
    """A participant's failure as a `ConverseError` (same message)."""
    try:
        yield
    except ParticipantError as e:
        raise ConverseError(str(e)) from None


def _room_name() -> str:
    return f"converse-{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def join_local(
    customer: Speaker, support: Speaker, connect_timeout: float
) -> AsyncIterator[Room]:
    """The customer's aiortc peer (offerer) connected to the support's (answerer) on 127.0.0.1.

    Raises:
        ConverseError: the peers did not connect within `connect_timeout` seconds.
    """
    from echo_bench.participants.webrtc import WebRTCParticipant

    restrict_ice_addresses(["127.0.0.1"])
    name = f"local-{uuid.uuid4().hex[:12]}"
    peers = {
        speaker.role: WebRTCParticipant(
            speaker.voice,
            data_channel=speaker is customer,
            label=speaker.role,
            listen_to=speaker.listens_to,
            received=speaker.heard,
        )
        for speaker in (customer, support)
    }
    offerer, answerer = peers[customer.role], peers[support.role]
    try:
        logger.info(
            f"{customer.role} ({customer.identity}) calls {support.role} ({support.identity})"
        )
        await offerer.accept(await answerer.answer(await offerer.offer()))
        try:
            async with asyncio.timeout(connect_timeout):
                await asyncio.gather(*(peer.wait_connected() for peer in peers.values()))
        except TimeoutError:
            states = ", ".join(f"{role} {p.pc.connectionState}" for role, p in peers.items())
            raise ConverseError(
                f"local: the peers did not connect within {connect_timeout:g} s ({states})"
            ) from None
        except ParticipantError as e:
            raise ConverseError(str(e)) from None

        async def rtp_stats() -> dict[str, dict]:
            return {role: await peer.rtp_stats() for role, peer in peers.items()}

        yield Room(name, transport_stats=rtp_stats)
    finally:
        for peer in peers.values():
            await peer.close()


def livekit_token(api_key: str, api_secret: str, room: str, identity: str, ttl: float) -> str:
    """A JWT to join `room` as `identity`: publish, subscribe and send data."""
    from livekit import api

    grants = api.VideoGrants(
        room_join=True, room=room, can_publish=True, can_subscribe=True, can_publish_data=True
    )
    return (
        api.AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_name(identity)
        .with_grants(grants)
        .with_ttl(timedelta(seconds=ttl))
        .to_jwt()
    )


@asynccontextmanager
async def join_livekit(
    customer: Speaker,
    support: Speaker,
    url: str,
    api_key: str,
    api_secret: str,
    connect_timeout: float,
    duration: float,
) -> AsyncIterator[Room]:
    """Both speakers in a new LiveKit room named `converse-<hex>` (made by the first join).

    Raises:
        ConverseError: a speaker could not connect or publish.
    """
    from echo_bench.participants.livekit import LiveKitParticipant

    name = _room_name()
    ttl = duration + connect_timeout + TTL_MARGIN_SECS
    async with AsyncExitStack() as stack:
        for speaker in (customer, support):
            participant = LiveKitParticipant(
                speaker.voice,
                label=speaker.role,
                track_name=f"{speaker.role}-tone",
                listen_to=speaker.listens_to,
                received=speaker.heard,
            )
            stack.push_async_callback(participant.close)
            token = livekit_token(api_key, api_secret, name, speaker.identity, ttl)
            with _platform_errors():
                await participant.connect(url, token, connect_timeout, room=name)
        yield Room(name)


class DailyAPI:
    """The few calls of Daily's REST API a conversation needs: rooms and meeting tokens.

    Errors are `ConverseError`s that say which call failed and how, never quoting the key
    or Daily's answer.
    """

    def __init__(self, api_key: str, api_url: str, http: aiohttp.ClientSession):
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._url = api_url.rstrip("/")
        self._http = http

    async def create_room(self, name: str, expires_at: float) -> str:
        """Create private room `name`, expiring at `expires_at` (Unix time); returns its URL."""
        body = {
            "name": name,
            "privacy": "private",
            "properties": {"exp": expires_at, "eject_at_room_exp": True},
        }
        room = await self._call("creating the room", "POST", "/rooms", body)
        url = room.get("url")
        if not isinstance(url, str) or not url:
            raise ConverseError("daily: Daily API returned no room URL creating the room")
        return url

    async def token(
        self, room: str, expires_at: float, owner: bool, user_name: str | None = None
    ) -> str:
        """A meeting token for `room` (an owner token when `owner`)."""
        properties = {
            "room_name": room,
            "is_owner": owner,
            "exp": int(expires_at),
            "eject_at_token_exp": True,
        }
        if user_name:
            properties["user_name"] = user_name
        answer = await self._call(
            "minting a meeting token", "POST", "/meeting-tokens", {"properties": properties}
        )
        token = answer.get("token")
        if not isinstance(token, str) or not token:
            raise ConverseError("daily: Daily API returned no meeting token")
        return token

    async def delete_room(self, name: str) -> bool:
        """Delete a room; best effort: a failure is logged, never raised."""
        try:
            await self._call("deleting the room", "DELETE", f"/rooms/{name}", None)
        except ConverseError as e:
            logger.warning(f"Could not delete Daily room {name}: {e}")
            return False
        return True

    async def _call(self, what: str, method: str, path: str, body: dict | None) -> dict:
        try:
            async with self._http.request(
                method,
                self._url + path,
                json=body,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=DAILY_API_TIMEOUT_SECS),
            ) as response:
                if response.status == 404 and method == "DELETE":
                    return {}
                if response.status != 200:
                    raise ConverseError(f"daily: Daily API failed {what} (HTTP {response.status})")
                answer = await response.json(content_type=None)
        except TimeoutError:
            raise ConverseError(
                f"daily: Daily API timed out after {DAILY_API_TIMEOUT_SECS:g} s {what}"
            ) from None
        except aiohttp.ClientError as e:
            problem = f"daily: Daily API unreachable {what} ({type(e).__name__})"
            raise ConverseError(problem) from None
        except ValueError:
            raise ConverseError(f"daily: Daily API answered {what} with no JSON") from None
        if not isinstance(answer, dict):
            raise ConverseError(f"daily: Daily API answered {what} out of shape")
        return answer


@asynccontextmanager
async def join_daily(
    customer: Speaker,
    support: Speaker,
    api_key: str,
    api_url: str,
    connect_timeout: float,
    duration: float,
) -> AsyncIterator[Room]:
    """Both speakers in a new private Daily room named `converse-<hex>`, deleted on the way out.

    The customer joins with a participant token, support with an owner token.

    Raises:
        ConverseError: the room could not be made, or a speaker could not join.
    """
    from echo_bench.participants.daily import DailyParticipant

    name = _room_name()
    expires_at = time.time() + duration + connect_timeout + TTL_MARGIN_SECS
    async with aiohttp.ClientSession() as http, AsyncExitStack() as stack:
        rooms = DailyAPI(api_key, api_url, http)
        url = await rooms.create_room(name, expires_at)
        logger.info(f"Daily room {name} created")

        async def delete() -> None:
            if await rooms.delete_room(name):
                logger.info(f"Daily room {name} deleted")

        stack.push_async_callback(delete)
        tokens = {
            customer.role: await rooms.token(name, expires_at, owner=False),
            support.role: await rooms.token(
                name, expires_at, owner=True, user_name=support.identity
            ),
        }
        for speaker in (customer, support):
            participant = DailyParticipant(
                speaker.voice,
                label=speaker.role,
                name=speaker.identity,
                listen_to=speaker.listens_to,
                received=speaker.heard,
            )
            stack.push_async_callback(participant.close)
            with _platform_errors():
                await participant.connect(url, tokens[speaker.role], connect_timeout)
        yield Room(name)
