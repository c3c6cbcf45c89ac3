"""Daily: rooms and meeting tokens through Daily's REST API, and the Pipecat transport."""

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from loguru import logger
from pipecat.frames.frames import Frame
from pipecat.transports.daily.transport import (
    DailyInputTransport,
    DailyInputTransportMessageFrame,
    DailyOutputTransport,
    DailyOutputTransportMessageUrgentFrame,
    DailyParams,
    DailyTransport,
)
from pipecat.transports.daily.utils import (
    DailyMeetingTokenParams,
    DailyMeetingTokenProperties,
    DailyRESTHelper,
    DailyRoomParams,
    DailyRoomProperties,
)

from agent_core import RECEIVED_AT, MessageBound, hand_downstream, stamp_send_time
from transports import pipecat_internals
from transports.eager import send_guarded, start_eagerly
from transports.errors import PlatformAPIError
from transports.media import AudioSpec, transport_params

__all__ = ["DailyRoom", "DailyRooms", "EchoDailyTransport", "create_transport", "reply_frame"]

API_TIMEOUT_SECS = 10.0


@dataclass(frozen=True)
class DailyRoom:
    """A room made for one session, with a token for the client and one for the bot."""

    name: str
    url: str
    client_token: str
    bot_token: str
    expires_at: float


class DailyRooms:
    """Creates and deletes temporary Daily rooms through Pipecat's `DailyRESTHelper`."""

    def __init__(self, api_key: str, api_url: str, session: aiohttp.ClientSession):
        self._helper = DailyRESTHelper(
            daily_api_key=api_key, daily_api_url=api_url, aiohttp_session=session
        )

    async def create(self, name: str, ttl: float, private: bool, bot_name: str) -> DailyRoom:
        """Create room `name` expiring in `ttl` seconds, and mint both tokens.

        Raises:
            PlatformAPIError: Daily failed, timed out or answered out of shape; a room
                that was created before the failure is deleted again.
        """
        expires_at = time.time() + ttl
        params = DailyRoomParams(
            name=name,
            privacy="private" if private else "public",
            properties=DailyRoomProperties(exp=expires_at, eject_at_room_exp=True),
        )
        room = await self._call("creating the room", self._helper.create_room(params))
        try:
            client_token = await self._token(room.url, expires_at, owner=False)
            bot_token = await self._token(room.url, expires_at, owner=True, user_name=bot_name)
        except PlatformAPIError:
            await self.delete(room.name)
            raise
        return DailyRoom(room.name, room.url, client_token, bot_token, expires_at)

    async def bot_token(self, room_url: str, ttl: float, bot_name: str) -> str:
        """An owner token for the bot to join an existing room."""
        return await self._token(room_url, time.time() + ttl, owner=True, user_name=bot_name)

    async def delete(self, name: str) -> bool:
        """Delete a room; best effort: a failure is logged, never raised."""
        try:
            await self._call("deleting the room", self._helper.delete_room_by_name(name))
            return True
        except PlatformAPIError as e:
            logger.warning(f"Could not delete Daily room {name}: {e}")
            return False

    async def _token(
        self, room_url: str, expires_at: float, owner: bool, user_name: str | None = None
    ) -> str:
        params = DailyMeetingTokenParams(
            properties=DailyMeetingTokenProperties(user_name=user_name)
        )
        token = await self._call(
            "minting a meeting token",
            self._helper.get_token(
                room_url,
                expiry_time=expires_at - time.time(),
                eject_at_token_exp=True,
                owner=owner,
                params=params,
            ),
        )
        if not isinstance(token, str) or not token:
            raise PlatformAPIError("daily", "Daily API returned no meeting token")
        return token

    async def _call(self, what: str, request):
        try:
            return await asyncio.wait_for(request, API_TIMEOUT_SECS)
        except TimeoutError:
            raise PlatformAPIError(
                "daily", f"Daily API timed out after {API_TIMEOUT_SECS:g} s {what}"
            ) from None
        except aiohttp.ClientError as e:
            raise PlatformAPIError(
                "daily", f"Daily API unreachable {what} ({type(e).__name__})"
            ) from None
        except Exception as e:
            # DailyRESTHelper raises bare Exceptions that quote the response body.
            logger.debug(f"Daily API error {what}: {e}")
            raise PlatformAPIError("daily", f"Daily API failed {what}") from None


@dataclass(frozen=True)
class DailyArguments:
    """What a Daily transport joins with."""

    room_url: str
    token: str | None
    bot_name: str


class EchoDailyInput(DailyInputTransport):
    """Daily input that hands app messages to the echo processor, downstream only."""

    def __init__(self, transport: "EchoDailyTransport", client, params: DailyParams, **kwargs):
        """Initialize the input; arguments as for `DailyInputTransport`."""
        super().__init__(transport, client, params, **kwargs)
        self._echo_transport = transport

    async def setup(self, setup):
        """Set up the input; from now on messages are handed to this event loop."""
        await super().setup(setup)
        self._echo_transport.deliver_on(asyncio.get_running_loop())

    async def receive_app_message(self, message: Any, sender: str, received_at: float):
        """Hand one app message, stamped when daily-python delivered it, downstream."""
        frame = DailyInputTransportMessageFrame(message=message, participant_id=sender)
        frame.metadata[RECEIVED_AT] = received_at
        await hand_downstream(self, frame)

    async def push_app_message(self, message: Any, sender: str):
        """Pipecat's own message path (unused while the SDK callback is taken over)."""
        await self.receive_app_message(message, sender, time.time())


class EchoDailyOutput(DailyOutputTransport):
    """Daily output that stamps a pong's `server_send_time` right before the SDK's send."""

    async def send_message(self, frame):
        """Stamp the pong, if any, then hand the message to daily-python."""
        stamp_send_time(frame, time.time())
        await send_guarded(super().send_message, frame)


class EchoDailyTransport(DailyTransport):
    """Pipecat's Daily transport with the echo agent's message path.

    daily-python's app-message callback is taken over (`pipecat_internals`): on its
    thread the message is stamped and checked against the session's message bound,
    then handed to the event loop in one hop and run through the pipeline at once,
    instead of Pipecat's queue and callback task.

    Attributes:
        arguments: The room, token and bot name it was built with.
        audio: The audio it carries.
    """

    def __init__(
        self,
        room_url: str,
        token: str | None,
        bot_name: str,
        audio: AudioSpec,
        bound: MessageBound | None = None,
    ):
        """Initialize the transport (nothing is joined until the pipeline starts)."""
        params = transport_params(audio)
        super().__init__(
            room_url,
            token,
            bot_name,
            params=DailyParams(
                **params, camera_out_enabled=False, microphone_out_enabled=audio.send
            ),
        )
        self.arguments = DailyArguments(room_url, token, bot_name)
        self.audio = audio
        self._bound = bound or MessageBound()
        self._loop = _running_loop()
        pipecat_internals.intercept_daily_app_messages(self, self._on_sdk_app_message)

    def input(self) -> EchoDailyInput:
        """The input transport, handing app messages downstream only."""
        return pipecat_internals.own_input(
            self, lambda client, params, name: EchoDailyInput(self, client, params, name=name)
        )

    def output(self) -> EchoDailyOutput:
        """The output transport, in direct mode (a pong is sent in the caller's turn)."""
        return pipecat_internals.own_output(
            self,
            lambda client, params, name: EchoDailyOutput(
                self, client, params, name=name, enable_direct_mode=True
            ),
        )

    def deliver_on(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand app messages from daily-python's thread to `loop`."""
        self._loop = loop

    def _on_sdk_app_message(self, message: Any, sender: str) -> None:
        # daily-python's thread.
        received_at = time.time()
        loop = self._loop
        if loop is None:
            return
        if not self._bound.admit():  # dropped here, before the hop to the loop
            if (notice := self._bound.notice()) is None:
                return
            message = notice
        try:
            loop.call_soon_threadsafe(self._deliver, message, sender, received_at)
        except RuntimeError:
            pass  # the loop is closed: the session is over

    def _deliver(self, message: Any, sender: str, received_at: float) -> None:
        start_eagerly(self.input().receive_app_message(message, sender, received_at))


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def create_transport(
    room_url: str,
    token: str | None,
    bot_name: str,
    audio: AudioSpec,
    bound: MessageBound | None = None,
) -> EchoDailyTransport:
    """The Pipecat transport for a Daily room (nothing is joined until it starts)."""
    return EchoDailyTransport(room_url, token, bot_name, audio, bound)


def reply_frame(message: dict, sender: str | None) -> Frame:
    """An urgent app-message to the participant who sent the ping."""
    return DailyOutputTransportMessageUrgentFrame(message=message, participant_id=sender)
