"""A LiveKit client of the echo agent (LiveKit Python SDK): data packets, mic, speaker."""

import asyncio
import json
import time

import numpy as np
from livekit import rtc
from livekit.rtc.participant import PublishDataError

from echo_bench.clients import BenchError, SignalPlayer
from echo_bench.webrtc_client import FRAME_SAMPLES, SAMPLE_RATE, ReceivedAudio, Signal

__all__ = ["LiveKitBenchClient"]


class LiveKitBenchClient:
    """One participant in a LiveKit room made by `/connect`, talking to the bot.

    App messages are reliable data packets (JSON) to the whole room; the bot answers
    this participant only. The microphone is an `AudioSource` fed in real time from
    `signal`; every remote audio track is received at 48 kHz mono.
    """

    def __init__(self, signal: Signal | None = None, receive_audio: bool = False):
        self.received = ReceivedAudio()
        self.messages: asyncio.Queue[tuple[float, dict]] = asyncio.Queue()
        self._signal = signal
        self._receive_audio = receive_audio or signal is not None
        self._room: rtc.Room | None = None
        self._source: rtc.AudioSource | None = None
        self._player: SignalPlayer | None = None
        self._tasks: set[asyncio.Task] = set()
        self._tracks: set[str] = set()

    @property
    def sent_audio(self) -> list[tuple[float, int]]:
        """What the microphone sent, when."""
        return self._player.sent if self._player else []

    async def connect(self, server_url: str, token: str, join_timeout: float = 30.0) -> None:
        """Join the room and publish the microphone.

        Raises:
            BenchError: the connection or the publication failed or timed out.
        """
        self._room = rtc.Room()
        self._room.on("data_received", self._on_data)
        self._room.on("track_subscribed", self._on_track)
        try:
            await asyncio.wait_for(
                self._room.connect(server_url, token, rtc.RoomOptions(auto_subscribe=True)),
                join_timeout,
            )
            if self._signal is not None:
                self._source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=100)
                track = rtc.LocalAudioTrack.create_audio_track("microphone", self._source)
                options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
                await asyncio.wait_for(
                    self._room.local_participant.publish_track(track, options), join_timeout
                )
        except TimeoutError:
            raise BenchError(
                f"joining the LiveKit room timed out after {join_timeout:g} s"
            ) from None
        except rtc.ConnectError as e:
            raise BenchError(f"joining the LiveKit room failed: {e.message}") from None
        for participant in self._room.remote_participants.values():
            for publication in participant.track_publications.values():
                if publication.track is not None:
                    self._on_track(publication.track, publication, participant)
        if self._signal is not None:
            self._player = SignalPlayer(self._signal, self._write)
            self._player.start()

    async def send(self, message: dict) -> None:
        """Publish one reliable data packet to the room.

        Raises:
            BenchError: not connected, or LiveKit refused the packet.
        """
        if self._room is None:
            raise BenchError("not connected to LiveKit")
        try:
            await self._room.local_participant.publish_data(json.dumps(message), reliable=True)
        except PublishDataError as e:
            raise BenchError(f"LiveKit data packet not sent: {e.message}") from None

    async def next_message(self) -> tuple[float, dict]:
        """The next data packet that is a JSON object, with its arrival time."""
        return await self.messages.get()

    async def close(self) -> None:
        """Stop the microphone and the audio streams, and disconnect."""
        if self._player:
            await self._player.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._room is not None:
            room, self._room = self._room, None
            await room.disconnect()
        if self._source is not None:
            await self._source.aclose()

    async def _write(self, samples: np.ndarray) -> None:
        frame = rtc.AudioFrame(samples.tobytes(), SAMPLE_RATE, 1, FRAME_SAMPLES)
        await self._source.capture_frame(frame)

    def _on_data(self, packet: rtc.DataPacket) -> None:
        arrival = time.perf_counter()
        try:
            message = json.loads(packet.data.decode())
        except (UnicodeDecodeError, ValueError):
            return
        if isinstance(message, dict):
            self.messages.put_nowait((arrival, message))

    def _on_track(self, track, _publication, _participant) -> None:
        if self._receive_audio and track.kind == rtc.TrackKind.KIND_AUDIO:
            if track.sid in self._tracks:
                return
            self._tracks.add(track.sid)
            stream = rtc.AudioStream.from_track(
                track=track, sample_rate=SAMPLE_RATE, num_channels=1
            )
            task = asyncio.create_task(self._record(stream))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _record(self, stream: rtc.AudioStream) -> None:
        try:
            async for event in stream:
                arrival = time.perf_counter()
                data = np.frombuffer(event.frame.data, dtype=np.int16).copy()
                self.received.blocks.append((arrival, data))
        finally:
            await stream.aclose()
