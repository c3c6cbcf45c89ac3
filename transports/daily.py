"""Daily: rooms and meeting tokens through Daily's REST API, and the Pipecat transport."""

import asyncio
import time
from dataclasses import dataclass

import aiohttp
from loguru import logger
from pipecat.frames.frames import Frame
from pipecat.transports.daily.transport import (
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

from processors import EchoMode
from transports.errors import PlatformAPIError
from transports.media import media_params

__all__ = ["DailyRoom", "DailyRooms", "create_transport", "reply_frame"]

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


def create_transport(room_url: str, token: str | None, bot_name: str, mode: EchoMode):
    """The Pipecat transport for a Daily room (nothing is joined until it starts)."""
    params = media_params(mode)
    return DailyTransport(
        room_url,
        token,
        bot_name,
        params=DailyParams(
            **params,
            camera_out_enabled=False,
            microphone_out_enabled=params["audio_out_enabled"],
        ),
    )


def reply_frame(message: dict, sender: str | None) -> Frame:
    """An urgent app-message to the participant who sent the ping."""
    return DailyOutputTransportMessageUrgentFrame(message=message, participant_id=sender)
