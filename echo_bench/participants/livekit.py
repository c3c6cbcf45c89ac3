"""LiveKit (the rtc SDK): a participant in a LiveKit room."""

import asyncio
import json
import time

import numpy as np
from livekit import rtc
from livekit.rtc.participant import PublishDataError, PublishTrackError

from echo_bench.media import FRAME_SAMPLES, SAMPLE_RATE, Signal
from echo_bench.participants.base import Participant

__all__ = ["LiveKitParticipant"]

SOURCE_QUEUE_MS = 100


class LiveKitParticipant(Participant):
    """One participant in a LiveKit room.

    App messages are reliable data packets (JSON) to the whole room. The microphone is an
    `AudioSource` fed in real time; the other participants' audio tracks (only
    `listen_to`'s, by identity, when given) are received at 48 kHz mono.
    """

    platform = "livekit"

    def __init__(self, signal: Signal | None = None, *, track_name: str = "microphone", **options):
        """Initialize the participant; `track_name` names its published audio track.

        `options` are `Participant`'s (`receive_audio`, `label`, `listen_to`, `received`).
        """
        super().__init__(signal, **options)
        self._track_name = track_name
        self._room: rtc.Room | None = None
        self._source: rtc.AudioSource | None = None
        self._tracks: set[str] = set()

    async def connect(
        self, server_url: str, token: str, join_timeout: float = 30.0, room: str = ""
    ) -> None:
        """Join the room (`room` names it in errors) and publish the microphone.

        `setup` gets `join` (connected) and, with a microphone, `publish`.

        Raises:
            ParticipantError: the connection or the publication failed or timed out.
        """
        self._room = rtc.Room()
        self._room.on("data_received", self._on_data)
        self._room.on("track_subscribed", self._on_track)
        self._room.on("connection_state_changed", self._on_state)
        self._room.on("participant_connected", self._on_joined)
        self._room.on("participant_disconnected", self._on_left)
        self._room.on("disconnected", self._on_disconnected)
        action = f"join room {room}" if room else "join the LiveKit room"
        started = time.perf_counter()
        try:
            await asyncio.wait_for(
                self._room.connect(server_url, token, rtc.RoomOptions(auto_subscribe=True)),
                join_timeout,
            )
        except TimeoutError:
            raise self.error(action, f"timed out after {join_timeout:g} s") from None
        except rtc.ConnectError as e:
            raise self.error(action, e.message, token) from None
        self.setup = {"join": time.perf_counter() - started}
        identity = self._room.local_participant.identity
        self.log(f"joined LiveKit room {self._room.name} as {identity}")
        if self._clock is not None:
            await self._publish(join_timeout)
        for participant in self._room.remote_participants.values():
            for publication in participant.track_publications.values():
                if publication.track is not None:
                    self._on_track(publication.track, publication, participant)

    async def _publish(self, within: float) -> None:
        started = time.perf_counter()
        self._source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=SOURCE_QUEUE_MS)
        track = rtc.LocalAudioTrack.create_audio_track(self._track_name, self._source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        try:
            publishing = self._room.local_participant.publish_track(track, options)
            await asyncio.wait_for(publishing, within)
        except (TimeoutError, PublishTrackError) as e:
            raise self.error("publish its audio track", type(e).__name__) from None
        self.setup["publish"] = time.perf_counter() - started
        self.log(f"published {self._track_name}")
        self.play(self._write)

    async def send(self, message: dict) -> None:
        """Publish one reliable data packet to the room.

        Raises:
            ParticipantError: not connected, or LiveKit refused the packet.
        """
        if self._room is None:
            raise self.error("send", "not in a LiveKit room")
        try:
            await self._room.local_participant.publish_data(json.dumps(message), reliable=True)
        except PublishDataError as e:
            raise self.error("send a data packet", e.message) from None

    async def close(self) -> None:
        """Stop the microphone and the audio streams, and disconnect."""
        await self.stop_tasks()
        if self._room is not None:
            room, self._room = self._room, None
            await room.disconnect()
        if self._source is not None:
            source, self._source = self._source, None
            await source.aclose()

    async def _write(self, samples: np.ndarray) -> None:
        frame = rtc.AudioFrame(samples.tobytes(), SAMPLE_RATE, 1, FRAME_SAMPLES)
        await self._source.capture_frame(frame)

    def _on_data(self, packet: rtc.DataPacket) -> None:
        self.deliver(time.perf_counter(), packet.data)

    def _on_track(self, track, _publication, participant) -> None:
        if track.kind != rtc.TrackKind.KIND_AUDIO or not self.listens_to(participant.identity):
            return
        if track.sid in self._tracks:
            return
        self._tracks.add(track.sid)
        self.log(f"subscribed to {participant.identity}'s {track.name}")
        stream = rtc.AudioStream.from_track(track=track, sample_rate=SAMPLE_RATE, num_channels=1)
        self.spawn(self._record(stream))

    async def _record(self, stream: rtc.AudioStream) -> None:
        try:
            async for event in stream:
                arrival = time.perf_counter()
                self.received.add(arrival, np.frombuffer(event.frame.data, dtype=np.int16).copy())
        finally:
            await stream.aclose()

    def _on_joined(self, participant) -> None:
        self.log(f"{participant.identity} joined")

    def _on_left(self, participant) -> None:
        self.log(f"{participant.identity} left")

    def _on_state(self, state) -> None:
        self.log(f"connection {rtc.ConnectionState.Name(state)}")

    def _on_disconnected(self, reason) -> None:
        self.log(f"disconnected ({rtc.DisconnectReason.Name(reason)})")
