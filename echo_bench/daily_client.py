"""A Daily client of the echo agent (daily-python): app messages, microphone, speaker.

daily-python calls back from its own threads; everything is handed to the asyncio
loop with the arrival time taken in the callback, before any queueing.
"""

import asyncio
import time
from typing import Any

import numpy as np
from daily import CallClient, CustomAudioSource, CustomAudioTrack, EventHandler

from echo_bench.clients import BenchError, SignalPlayer
from echo_bench.daily_call import completion, init_daily, join_settings
from echo_bench.webrtc_client import SAMPLE_RATE, ReceivedAudio, Signal

__all__ = ["DailyBenchClient"]


class _Events(EventHandler):
    """Forwards daily-python's callbacks to the client, on its event loop."""

    def __init__(self, owner: "DailyBenchClient", loop: asyncio.AbstractEventLoop):
        super().__init__()
        self._owner = owner
        self._loop = loop

    def on_app_message(self, message: Any, sender: str):
        arrival = time.perf_counter()
        self._loop.call_soon_threadsafe(self._owner._on_app_message, arrival, message)

    def on_participant_joined(self, participant):
        self._loop.call_soon_threadsafe(self._owner._on_participant, dict(participant))

    def on_participant_left(self, participant, reason):
        self._loop.call_soon_threadsafe(self._owner._on_participant_left, dict(participant))

    def on_error(self, message):
        self._loop.call_soon_threadsafe(self._owner._on_error, str(message))


class DailyBenchClient:
    """One participant in a Daily room made by `/connect`, talking to the bot.

    App messages are broadcast (the bot is the room's only other participant) and
    the bot answers this participant only. The microphone is a custom audio track
    fed in real time from `signal`; the bot's microphone is rendered at 48 kHz mono.
    """

    def __init__(self, signal: Signal | None = None, receive_audio: bool = False):
        self.received = ReceivedAudio()
        self.messages: asyncio.Queue[tuple[float, dict]] = asyncio.Queue()
        self._signal = signal
        self._receive_audio = receive_audio or signal is not None
        self._client: CallClient | None = None
        self._source: CustomAudioSource | None = None
        self._player: SignalPlayer | None = None
        self._rendering: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.errors: list[str] = []

    @property
    def sent_audio(self) -> list[tuple[float, int]]:
        """What the microphone sent, when."""
        return self._player.sent if self._player else []

    async def connect(self, room_url: str, token: str, join_timeout: float = 30.0) -> None:
        """Join the room and start the microphone.

        Raises:
            BenchError: the join failed or timed out.
        """
        init_daily()
        self._loop = asyncio.get_running_loop()
        self._client = CallClient(event_handler=_Events(self, self._loop))
        track_id = None
        if self._signal is not None:
            self._source = CustomAudioSource(SAMPLE_RATE, 1, True)
            track_id = CustomAudioTrack(self._source).id
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
            raise BenchError(f"joining the Daily room timed out after {join_timeout:g} s") from None
        if error:
            raise BenchError(f"joining the Daily room failed: {error}")
        for participant_id, participant in self._client.participants().items():
            if participant_id != "local":
                self._on_participant(dict(participant))
        if self._signal is not None:
            self._player = SignalPlayer(self._signal, self._write)
            self._player.start()

    async def send(self, message: dict) -> None:
        """Broadcast one app message."""
        if self._client is None:
            raise BenchError("not connected to Daily")
        self._client.send_app_message(message, None)

    async def next_message(self) -> tuple[float, dict]:
        """The next app message, with its arrival time."""
        return await self.messages.get()

    async def close(self) -> None:
        """Stop the microphone, leave and release the call client."""
        if self._player:
            await self._player.stop()
        if self._client is None:
            return
        client, self._client = self._client, None
        loop = asyncio.get_running_loop()
        left = loop.create_future()
        client.leave(completion=completion(loop, left))
        try:
            await asyncio.wait_for(left, 10)
        except TimeoutError:
            pass
        await asyncio.to_thread(client.release)

    async def _write(self, samples: np.ndarray) -> None:
        done = self._loop.create_future()
        self._source.write_frames(samples.tobytes(), completion=completion(self._loop, done))
        await done

    def _on_app_message(self, arrival: float, message: Any) -> None:
        if isinstance(message, dict):
            self.messages.put_nowait((arrival, message))

    def _on_participant(self, participant: dict) -> None:
        participant_id = participant.get("id")
        if not participant_id or participant.get("info", {}).get("isLocal"):
            return
        if self._receive_audio and participant_id not in self._rendering and self._client:
            self._rendering.add(participant_id)
            self._client.set_audio_renderer(
                participant_id,
                self._on_audio,
                audio_source="microphone",
                sample_rate=SAMPLE_RATE,
                callback_interval_ms=20,
            )

    def _on_participant_left(self, participant: dict) -> None:
        self._rendering.discard(participant.get("id"))

    def _on_error(self, message: str) -> None:
        self.errors.append(message)

    def _on_audio(self, _participant_id: str, audio, _source: str) -> None:
        # Called on a daily-python thread.
        arrival = time.perf_counter()
        data = np.frombuffer(audio.audio_frames, dtype=np.int16)
        if audio.num_channels > 1:
            data = data.reshape(-1, audio.num_channels)[:, 0]
        if audio.sample_rate != SAMPLE_RATE:
            return
        self._loop.call_soon_threadsafe(self.received.blocks.append, (arrival, data.copy()))
