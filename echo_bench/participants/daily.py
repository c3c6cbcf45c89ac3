"""Daily (daily-python): a participant in a Daily room.

daily-python calls back on its own threads while holding the GIL; calling a `CallClient`
method from inside a callback and waiting on it deadlocks, so callbacks only take the
arrival time and hand the rest to the event loop.
"""

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from daily import AudioData, CallClient, CustomAudioSource, CustomAudioTrack, Daily, EventHandler
from loguru import logger

from echo_bench.media import FRAME_SAMPLES, SAMPLE_RATE, Signal, first_channel
from echo_bench.participants.base import Participant, scrub

__all__ = ["DailyParticipant", "completion", "init_daily", "join_settings"]

LEAVE_TIMEOUT_SECS = 10.0

_initialized = False


def init_daily() -> None:
    """Initialize daily-python, once per process."""
    global _initialized
    if not _initialized:
        Daily.init()
        _initialized = True


def join_settings(microphone_track_id: str | None) -> dict[str, Any]:
    """`client_settings` for a join: no camera; a mono custom microphone when a track is given."""
    microphone = microphone_track_id is not None
    return {
        "inputs": {
            "camera": {"isEnabled": False},
            "microphone": {
                "isEnabled": microphone,
                "settings": {"customTrack": {"id": microphone_track_id or "no-microphone-track"}},
            },
        },
        "publishing": {
            "camera": {"isPublishing": False},
            "microphone": {
                "isPublishing": microphone,
                "sendSettings": {"channelConfig": "mono"},
            },
        },
    }


def completion(loop: asyncio.AbstractEventLoop, future: asyncio.Future) -> Callable[..., None]:
    """A daily-python completion (called on its thread) that resolves `future` on `loop`.

    The result is the single argument, the tuple of several, or None without any.
    """

    def resolve(*args) -> None:
        if not future.done():
            future.set_result(args if len(args) > 1 else (args[0] if args else None))

    return lambda *args: loop.call_soon_threadsafe(resolve, *args)


class _Events(EventHandler):
    """daily-python's callbacks, forwarded to the participant on its event loop."""

    def __init__(self, owner: "DailyParticipant", loop: asyncio.AbstractEventLoop):
        super().__init__()
        self._owner = owner
        self._loop = loop

    def _post(self, handler: Callable[..., None], *args) -> None:
        self._loop.call_soon_threadsafe(handler, *args)

    def on_app_message(self, message: Any, sender: str) -> None:
        self._post(self._owner.deliver, time.perf_counter(), message)

    def on_call_state_updated(self, state: str) -> None:
        self._post(self._owner.log, f"call state {state}")

    def on_participant_joined(self, participant: dict[str, Any]) -> None:
        self._post(self._owner._on_joined, dict(participant))

    def on_participant_left(self, participant: dict[str, Any], reason: str) -> None:
        self._post(self._owner._on_left, dict(participant), reason)

    def on_error(self, message: str) -> None:
        self._post(self._owner._on_error, str(message))


class DailyParticipant(Participant):
    """One participant in a Daily room.

    App messages are broadcast to the room. The microphone is a custom audio track fed in
    real time; the other participants' microphones (only `listen_to`'s, by user name, when
    given) are rendered at 48 kHz mono in 20 ms blocks.
    """

    platform = "daily"

    def __init__(self, signal: Signal | None = None, *, name: str | None = None, **options):
        """Initialize the participant; `name` is its user name in the room.

        `options` are `Participant`'s (`receive_audio`, `label`, `listen_to`, `received`).
        """
        super().__init__(signal, **options)
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: CallClient | None = None
        self._source: CustomAudioSource | None = None
        self._rendering: set[str] = set()
        self._joined = False

    async def connect(self, room_url: str, token: str | None, join_timeout: float = 30.0) -> None:
        """Join the room and start the microphone; `setup` gets `join`.

        Raises:
            ParticipantError: the join failed or timed out.
        """
        init_daily()
        self._loop = asyncio.get_running_loop()
        self._client = CallClient(event_handler=_Events(self, self._loop))
        track_id = None
        if self._clock is not None:
            self._source = CustomAudioSource(SAMPLE_RATE, 1)
            track_id = CustomAudioTrack(self._source).id
        self._client.update_subscription_profiles(
            {"base": {"camera": "unsubscribed", "screenVideo": "unsubscribed"}}
        )
        if self._name:
            self._client.set_user_name(self._name)
        action = f"join room {room_url.rstrip('/').rsplit('/', 1)[-1]}"
        started = time.perf_counter()
        joined = self._loop.create_future()
        self._client.join(
            room_url,
            meeting_token=token,
            client_settings=join_settings(track_id),
            completion=completion(self._loop, joined),
        )
        try:
            _data, error = await asyncio.wait_for(joined, join_timeout)
        except TimeoutError:
            raise self.error(action, f"timed out after {join_timeout:g} s") from None
        if error:
            raise self.error(action, str(error), token or "")
        self.setup = {"join": time.perf_counter() - started}
        self._joined = True
        self.log(f"joined the Daily room{f' as {self._name}' if self._name else ''}")
        if self._source is not None:
            self.play(self._write)
        for participant_id, participant in self._client.participants().items():
            if participant_id != "local":
                self.spawn(self._listen(dict(participant)))

    async def send(self, message: dict) -> None:
        """Broadcast one app message.

        Raises:
            ParticipantError: not in a room.
        """
        if self._client is None or not self._joined:
            raise self.error("send", "not in a Daily room")
        self._client.send_app_message(message, None)

    async def close(self) -> None:
        """Stop the microphone, leave and release the call client."""
        await self.stop_tasks()
        if self._client is None:
            return
        client, self._client = self._client, None
        if self._joined:
            left = self._loop.create_future()
            client.leave(completion=completion(self._loop, left))
            try:
                await asyncio.wait_for(left, LEAVE_TIMEOUT_SECS)
            except TimeoutError:
                self.log("leaving the Daily room timed out")
        # Returns only once a join still under way has ended (~20 s for an unreachable room).
        await asyncio.to_thread(client.release)

    async def _write(self, samples: np.ndarray) -> None:
        done = self._loop.create_future()
        self._source.write_frames(samples.tobytes(), completion=completion(self._loop, done))
        await done

    async def _listen(self, participant: dict[str, Any]) -> None:
        """Subscribe to `participant`'s microphone and render it, if it is to be heard."""
        participant_id = participant.get("id")
        info = participant.get("info", {})
        name = info.get("userName")
        if (
            not participant_id
            or info.get("isLocal")
            or participant_id in self._rendering
            or not self.listens_to(name)
            or self._client is None
        ):
            return
        self._rendering.add(participant_id)
        subscribed = self._loop.create_future()
        self._client.update_subscriptions(
            participant_settings={participant_id: {"media": {"microphone": "subscribed"}}},
            completion=completion(self._loop, subscribed),
        )
        await subscribed
        self._client.set_audio_renderer(
            participant_id,
            self._on_audio,
            audio_source="microphone",
            sample_rate=SAMPLE_RATE,
            callback_interval_ms=FRAME_SAMPLES * 1000 // SAMPLE_RATE,
        )
        self.log(f"subscribed to {name or participant_id}'s microphone")

    def _on_audio(self, _participant_id: str, audio: AudioData, _source: str) -> None:
        # On a daily-python thread: stamp, copy and hand over.
        arrival = time.perf_counter()
        if audio.sample_rate != SAMPLE_RATE:
            return
        samples = np.frombuffer(audio.audio_frames, dtype=np.int16)
        samples = first_channel(samples, audio.num_channels).copy()
        self._loop.call_soon_threadsafe(self.received.add, arrival, samples)

    def _on_joined(self, participant: dict[str, Any]) -> None:
        self.log(f"{participant.get('info', {}).get('userName')} joined")
        self.spawn(self._listen(participant))

    def _on_left(self, participant: dict[str, Any], reason: str) -> None:
        self.log(f"{participant.get('info', {}).get('userName')} left ({reason})")
        self._rendering.discard(participant.get("id"))

    def _on_error(self, message: str) -> None:
        logger.error(f"{self.label}: Daily error: {scrub(message)}")
