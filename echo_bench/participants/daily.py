"""Daily: a room made through the REST API, both speakers in it with daily-python, then deleted.

daily-python calls back on its own threads while holding the GIL; calling a `CallClient`
method from inside a callback and waiting on it deadlocks, so callbacks only hand work to
the event loop.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import numpy as np
from daily import AudioData, CallClient, CustomAudioSource, CustomAudioTrack, EventHandler
from loguru import logger

from echo_bench.daily_call import completion, init_daily, join_settings
from echo_bench.participants.base import ConverseError, Room, Speaker, pump, scrub
from echo_bench.tones import FRAME_SAMPLES, SAMPLE_RATE
from transports.daily import DailyRooms
from transports.errors import PlatformAPIError

__all__ = ["join"]

ROOM_TTL_MARGIN_SECS = 300.0


@asynccontextmanager
async def join(
    customer: Speaker,
    support: Speaker,
    api_key: str,
    api_url: str,
    connect_timeout: float,
    duration: float,
) -> AsyncIterator[Room]:
    """Both speakers in a new private room named `converse-<hex>`, deleted on the way out.

    The customer joins with a participant token, support with an owner token.

    Raises:
        ConverseError: the room could not be made, or a speaker could not join.
    """
    init_daily()
    name = f"converse-{uuid.uuid4().hex[:12]}"
    async with aiohttp.ClientSession() as session, AsyncExitStack() as stack:
        rooms = DailyRooms(api_key, api_url, session)
        try:
            room = await rooms.create(
                name,
                ttl=duration + connect_timeout + ROOM_TTL_MARGIN_SECS,
                private=True,
                bot_name=support.identity,
            )
        except PlatformAPIError as e:
            raise ConverseError(str(e)) from None
        logger.info(f"Daily room {room.name} created")
        stack.push_async_callback(_delete, rooms, room.name)
        for speaker, token in ((customer, room.client_token), (support, room.bot_token)):
            participant = _Participant(speaker)
            stack.push_async_callback(participant.leave)
            await participant.join(room.url, token, connect_timeout)
        yield Room(room.name)


async def _delete(rooms: DailyRooms, name: str) -> None:
    if await rooms.delete(name):
        logger.info(f"Daily room {name} deleted")


class _Handler(EventHandler):
    """Forwards daily-python's events to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, forward: Callable[..., None]):
        super().__init__()
        self._loop = loop
        self._forward = forward

    def _post(self, *args) -> None:
        self._loop.call_soon_threadsafe(self._forward, *args)

    def on_call_state_updated(self, state: str) -> None:
        self._post("state", state)

    def on_participant_joined(self, participant: dict[str, Any]) -> None:
        self._post("joined", participant)

    def on_participant_left(self, participant: dict[str, Any], reason: str) -> None:
        self._post("left", participant, reason)

    def on_error(self, message: str) -> None:
        self._post("error", message)


class _Participant:
    """One speaker in a Daily room: a custom microphone track and the other's audio heard."""

    def __init__(self, speaker: Speaker):
        self._speaker = speaker
        self._loop = asyncio.get_running_loop()
        self._client = CallClient(event_handler=_Handler(self._loop, self._on_event))
        self._source = CustomAudioSource(SAMPLE_RATE, 1)
        self._track = CustomAudioTrack(self._source)
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._listening_to: str | None = None
        self._joined = False

    async def join(self, url: str, token: str, connect_timeout: float) -> None:
        role = self._speaker.role
        self._client.update_subscription_profiles(
            {"base": {"camera": "unsubscribed", "screenVideo": "unsubscribed"}}
        )
        self._client.set_user_name(self._speaker.identity)
        future = self._loop.create_future()
        self._client.join(
            url,
            token,
            client_settings=join_settings(self._track.id),
            completion=completion(self._loop, future),
        )
        try:
            _data, error = await asyncio.wait_for(future, connect_timeout)
        except TimeoutError:
            raise ConverseError(
                f"daily: {role} could not join within {connect_timeout:g} s"
            ) from None
        if error:
            raise ConverseError(f"daily: {role} could not join: {scrub(str(error), token)}")
        self._joined = True
        logger.info(f"{role}: joined the Daily room as {self._speaker.identity}")
        self._spawn(pump(self._speaker.voice, self._send, self._stop))
        for participant_id, participant in self._client.participants().items():
            if participant_id != "local":
                await self._maybe_listen(participant)

    async def leave(self) -> None:
        self._stop.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._joined:
            future = self._loop.create_future()
            self._client.leave(completion=completion(self._loop, future))
            try:
                await asyncio.wait_for(future, 10.0)
            except TimeoutError:
                logger.warning(f"{self._speaker.role}: leaving the Daily room timed out")
        # Returns only once a join still under way has ended (~20 s for an unreachable room).
        await asyncio.to_thread(self._client.release)

    async def _send(self, samples: np.ndarray) -> None:
        future = self._loop.create_future()
        self._source.write_frames(samples.tobytes(), completion=completion(self._loop, future))
        await future

    async def _maybe_listen(self, participant: dict[str, Any]) -> None:
        """Subscribe to `participant`'s microphone if it is the other speaker."""
        name = participant.get("info", {}).get("userName")
        participant_id = participant.get("id")
        if name != self._speaker.listens_to or not participant_id or self._listening_to:
            return
        self._listening_to = participant_id
        future = self._loop.create_future()
        self._client.update_subscriptions(
            participant_settings={participant_id: {"media": {"microphone": "subscribed"}}},
            completion=completion(self._loop, future),
        )
        await future
        self._client.set_audio_renderer(
            participant_id,
            self._on_audio,
            audio_source="microphone",
            sample_rate=SAMPLE_RATE,
            callback_interval_ms=FRAME_SAMPLES * 1000 // SAMPLE_RATE,
        )
        logger.info(f"{self._speaker.role}: subscribed to {name}'s microphone")

    def _on_audio(self, _participant_id: str, audio: AudioData, _source: str) -> None:
        # On a daily-python thread: only record.
        samples = np.frombuffer(audio.audio_frames, dtype=np.int16)
        if audio.num_channels > 1:
            samples = samples.reshape(-1, audio.num_channels)[:, 0]
        self._speaker.hear(samples.copy())

    def _on_event(self, kind: str, *args) -> None:
        role = self._speaker.role
        if kind == "state":
            logger.info(f"{role}: call state {args[0]}")
        elif kind == "joined":
            name = args[0].get("info", {}).get("userName")
            logger.info(f"{role}: {name} joined")
            self._spawn(self._maybe_listen(args[0]))
        elif kind == "left":
            name = args[0].get("info", {}).get("userName")
            logger.info(f"{role}: {name} left ({args[1]})")
        elif kind == "error":
            logger.error(f"{role}: Daily error: {scrub(str(args[0]))}")

    def _spawn(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
