"""Pipecat Cloud: start and stop echo bot sessions of a deployed agent through its REST API.

Starting goes through the public API (`POST {api_url}/{agent}/start`, public key `pk_...`):
Pipecat Cloud starts one bot, optionally in a Daily room it creates, and answers with the
session id (and the room URL and a token for the client).

Stopping is not part of the public API. It is `DELETE {private_api_url}/agents/{agent}/
sessions/{session_id}` on the private API, with a private key (`sk_...`). Without one,
sessions cannot be stopped from here; they still end on their own (last client left, no
client joined, room expiry, the agent's `max_session_duration`).
"""

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
from loguru import logger

from config import PlatformNotConfiguredError
from transports.errors import PlatformAPIError

__all__ = [
    "API_TIMEOUT_SECS",
    "PLATFORM",
    "PUBLIC_API_URL",
    "PipecatCloudAgent",
    "PipecatCloudSession",
    "private_api_url_for",
]

PLATFORM = "pipecat-cloud"
PUBLIC_API_URL = "https://api.pipecat.daily.co/v1/public"
API_TIMEOUT_SECS = 10.0
_MAX_ERROR_CHARS = 200


@dataclass(frozen=True)
class PipecatCloudSession:
    """A session Pipecat Cloud started: its id, and its Daily room when it made one."""

    session_id: str
    room_url: str | None = None
    token: str | None = field(default=None, repr=False)
    """The client's meeting token for `room_url` (the bot gets its own)."""


def private_api_url_for(public_api_url: str) -> str:
    """The private API base next to a public one (`.../v1/public` -> `.../v1`)."""
    url = public_api_url.rstrip("/")
    return url.removesuffix("/public")


class PipecatCloudAgent:
    """Starts and stops sessions of one deployed Pipecat Cloud agent.

    Every failure (HTTP error, timeout, unreachable, malformed answer) raises
    `PlatformAPIError("pipecat-cloud", ...)` with a message naming Pipecat Cloud and no
    key or token in it.
    """

    def __init__(
        self,
        api_key: str,
        agent_name: str,
        session: aiohttp.ClientSession,
        *,
        api_url: str = PUBLIC_API_URL,
        private_api_key: str | None = None,
        private_api_url: str | None = None,
        timeout: float = API_TIMEOUT_SECS,
    ):
        self._api_key = api_key
        self._agent_name = agent_name
        self._session = session
        self._api_url = api_url.rstrip("/")
        self._private_api_key = private_api_key or None
        self._private_api_url = (private_api_url or private_api_url_for(api_url)).rstrip("/")
        self._timeout = timeout

    @property
    def agent_name(self) -> str:
        """The deployed agent's name."""
        return self._agent_name

    @property
    def can_stop(self) -> bool:
        """Whether `stop()` can work: stopping needs the private API key."""
        return self._private_api_key is not None

    async def start(
        self,
        body: dict[str, Any],
        *,
        create_daily_room: bool = False,
        expires_at: float | None = None,
    ) -> PipecatCloudSession:
        """Start one bot session with `body` as its runner arguments' body.

        Args:
            body: what the bot receives as `runner_args.body` (JSON-serializable).
            create_daily_room: Pipecat Cloud creates a Daily room, joins the bot to it and
                returns its URL and a client token.
            expires_at: Unix time at which the Daily room and the client token expire
                (participants are ejected then).

        Raises:
            PlatformAPIError: Pipecat Cloud refused, failed, timed out or answered out of
                shape. A session it started before a malformed answer is stopped again
                when `can_stop`.
        """
        payload: dict[str, Any] = {"createDailyRoom": create_daily_room, "body": body}
        if create_daily_room and expires_at is not None:
            exp = int(expires_at)
            payload["dailyRoomProperties"] = {"exp": exp, "eject_at_room_exp": True}
            payload["dailyMeetingTokenProperties"] = {"exp": exp, "eject_at_token_exp": True}
        url = f"{self._api_url}/{quote(self._agent_name, safe='')}/start"
        what = f"starting agent '{self._agent_name}'"
        started = time.monotonic()
        status, data, headers = await self._request("POST", url, self._api_key, what, payload)
        if status >= 400:
            raise self._http_error(status, data, what)

        if not isinstance(data, dict):
            raise PlatformAPIError(
                PLATFORM,
                f"Pipecat Cloud API answered without a JSON object ({what}, malformed response)",
            )
        session_id = data.get("sessionId") or headers.get("sessionId")
        if not _is_text(session_id):
            raise PlatformAPIError(
                PLATFORM, f"Pipecat Cloud API returned no session id ({what}, malformed response)"
            )
        room_url = data.get("dailyRoom")
        token = data.get("dailyToken")
        if create_daily_room and not (_is_text(room_url) and _is_text(token)):
            await self._stop_quietly(session_id)
            raise PlatformAPIError(
                PLATFORM,
                f"Pipecat Cloud API returned no Daily room or token ({what}, malformed response)",
            )
        logger.info(
            f"Pipecat Cloud session {session_id} started for agent '{self._agent_name}'"
            f" in {time.monotonic() - started:.2f} s"
        )
        return PipecatCloudSession(
            session_id=session_id,
            room_url=room_url if create_daily_room else None,
            token=token if create_daily_room else None,
        )

    async def stop(self, session_id: str) -> bool:
        """Stop a running session; False when Pipecat Cloud no longer knows it.

        Raises:
            PlatformNotConfiguredError: no private API key was given.
            PlatformAPIError: Pipecat Cloud refused, failed or timed out.
        """
        if self._private_api_key is None:
            raise PlatformNotConfiguredError(PLATFORM, ["PIPECAT_CLOUD_PRIVATE_API_KEY"])
        url = (
            f"{self._private_api_url}/agents/{quote(self._agent_name, safe='')}"
            f"/sessions/{quote(session_id, safe='')}"
        )
        what = f"stopping session {session_id} of agent '{self._agent_name}'"
        status, data, _ = await self._request("DELETE", url, self._private_api_key, what)
        if status == 404:
            logger.info(f"Pipecat Cloud session {session_id} was already gone")
            return False
        if status >= 400:
            raise self._http_error(status, data, what)
        logger.info(f"Pipecat Cloud session {session_id} stopped")
        return True

    async def _stop_quietly(self, session_id: str) -> None:
        if not self.can_stop:
            logger.warning(
                f"Pipecat Cloud session {session_id} may be left running: set"
                " PIPECAT_CLOUD_PRIVATE_API_KEY to let the server stop sessions"
            )
            return
        try:
            await self.stop(session_id)
        except PlatformAPIError as e:
            logger.warning(f"Could not stop Pipecat Cloud session {session_id}: {e}")

    async def _request(
        self, method: str, url: str, key: str, what: str, payload: dict | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        """Status, JSON body (None when empty or not JSON) and headers of one call."""
        try:
            async with self._session.request(
                method,
                url,
                json=payload,
                headers={"Authorization": f"Bearer {key}"},
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                text = await response.text(errors="replace")
                return response.status, _json_or_none(text), dict(response.headers)
        except TimeoutError:
            raise PlatformAPIError(
                PLATFORM, f"Pipecat Cloud API timed out after {self._timeout:g} s ({what})"
            ) from None
        except aiohttp.ClientError as e:
            raise PlatformAPIError(
                PLATFORM, f"Pipecat Cloud API unreachable ({what}, {type(e).__name__})"
            ) from None

    def _http_error(self, status: int, data: Any, what: str) -> PlatformAPIError:
        reason = {
            401: "rejected the API key",
            403: "refused the API key",
            404: "found no such agent or session",
            429: "is at capacity",
        }.get(status, "failed")
        detail = ""
        if isinstance(data, dict):
            code = data.get("code")
            error = data.get("error")
            parts = [str(p) for p in (code, error) if p and str(p) != str(status)]
            detail = self._redact(": ".join(parts))[:_MAX_ERROR_CHARS]
        suffix = f": {detail}" if detail else ""
        return PlatformAPIError(
            PLATFORM, f"Pipecat Cloud API {reason} ({what}, HTTP {status}{suffix})"
        )

    def _redact(self, text: str) -> str:
        for secret in (self._api_key, self._private_api_key):
            if secret:
                text = text.replace(secret, "***")
        return text


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return None


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)
