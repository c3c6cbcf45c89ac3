"""LiveKit: both speakers join one room (created by the first join) with the rtc SDK."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import numpy as np
from livekit import rtc
from livekit.rtc.participant import PublishTrackError
from loguru import logger

from echo_bench.participants.base import ConverseError, Room, Speaker, pump, scrub
from echo_bench.tones import SAMPLE_RATE
from transports.livekit import client_token

__all__ = ["join"]

TOKEN_TTL_MARGIN_SECS = 300.0


@asynccontextmanager
async def join(
    customer: Speaker,
    support: Speaker,
    url: str,
    api_key: str,
    api_secret: str,
    connect_timeout: float,
    duration: float,
) -> AsyncIterator[Room]:
    """Both speakers in a new room named `converse-<hex>`, publishing and subscribed.

    Raises:
        ConverseError: a speaker could not connect or publish.
    """
    name = f"converse-{uuid.uuid4().hex[:12]}"
    ttl = duration + connect_timeout + TOKEN_TTL_MARGIN_SECS
    async with AsyncExitStack() as stack:
        for speaker in (customer, support):
            token = client_token(api_key, api_secret, name, speaker.identity, ttl)
            participant = _Participant(speaker, url, token)
            stack.push_async_callback(participant.leave)
            await participant.connect(name, connect_timeout)
        yield Room(name)


class _Participant:
    """One speaker in a LiveKit room: a published tone track and the other's track heard."""

    def __init__(self, speaker: Speaker, url: str, token: str):
        self._speaker = speaker
        self._url = url
        self._token = token
        self._room = rtc.Room()
        self._source: rtc.AudioSource | None = None
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._room.on("connection_state_changed", self._on_state)
        self._room.on("participant_connected", self._on_joined)
        self._room.on("participant_disconnected", self._on_left)
        self._room.on("track_subscribed", self._on_track)
        self._room.on("disconnected", self._on_disconnected)

    async def connect(self, room_name: str, connect_timeout: float) -> None:
        role = self._speaker.role
        try:
            await asyncio.wait_for(
                self._room.connect(self._url, self._token, rtc.RoomOptions(auto_subscribe=True)),
                connect_timeout,
            )
        except TimeoutError:
            raise ConverseError(
                f"livekit: {role} could not join room {room_name} within {connect_timeout:g} s"
            ) from None
        except rtc.ConnectError as e:
            raise ConverseError(
                f"livekit: {role} could not join room {room_name}: {scrub(e.message, self._token)}"
            ) from None
        logger.info(f"{role}: joined LiveKit room {room_name} as {self._speaker.identity}")
        self._source = rtc.AudioSource(SAMPLE_RATE, 1)
        track = rtc.LocalAudioTrack.create_audio_track(f"{role}-tone", self._source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        try:
            await asyncio.wait_for(
                self._room.local_participant.publish_track(track, options), connect_timeout
            )
        except (TimeoutError, PublishTrackError) as e:
            raise ConverseError(
                f"livekit: {role} could not publish its audio track ({type(e).__name__})"
            ) from None
        logger.info(f"{role}: published {track.name} ({self._speaker.voice.tone_hz:g} Hz)")
        self._spawn(pump(self._speaker.voice, self._send, self._stop))

    async def leave(self) -> None:
        self._stop.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._room.disconnect()
        if self._source is not None:
            await self._source.aclose()

    async def _send(self, samples: np.ndarray) -> None:
        frame = rtc.AudioFrame(samples.tobytes(), SAMPLE_RATE, 1, len(samples))
        await self._source.capture_frame(frame)

    async def _hear(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=1)
        try:
            async for event in stream:
                samples = np.frombuffer(event.frame.data, dtype=np.int16).copy()
                self._speaker.hear(samples)
        finally:
            await stream.aclose()

    def _on_track(self, track, publication, participant) -> None:
        if (
            track.kind != rtc.TrackKind.KIND_AUDIO
            or participant.identity != self._speaker.listens_to
        ):
            return
        logger.info(f"{self._speaker.role}: subscribed to {participant.identity}'s {track.name}")
        self._spawn(self._hear(track))

    def _on_joined(self, participant) -> None:
        logger.info(f"{self._speaker.role}: {participant.identity} joined")

    def _on_left(self, participant) -> None:
        logger.info(f"{self._speaker.role}: {participant.identity} left")

    def _on_state(self, state) -> None:
        logger.info(f"{self._speaker.role}: connection {rtc.ConnectionState.Name(state)}")

    def _on_disconnected(self, reason) -> None:
        logger.info(f"{self._speaker.role}: disconnected ({rtc.DisconnectReason.Name(reason)})")

    def _spawn(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
