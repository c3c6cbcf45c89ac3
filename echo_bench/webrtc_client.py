"""A local WebRTC client of the echo agent (aiortc): data channel, microphone, speaker.

The client creates the data channel and offers; audio it sends comes from a signal
function, audio it receives is recorded with arrival times.
"""

import asyncio
import fractions
import json
import time
from collections.abc import Callable

import aiohttp
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz

Signal = Callable[[int, int], np.ndarray]
"""signal(first_sample, count) -> `count` int16 samples starting at `first_sample`."""


def silence(_start: int, count: int) -> np.ndarray:
    """The silent signal."""
    return np.zeros(count, dtype=np.int16)


class SignalTrack(MediaStreamTrack):
    """A microphone track that plays `signal` in real time, 20 ms per frame.

    `sent` records (wall-clock send time, first sample) for every frame, so what was
    sent when can be matched against what comes back.
    """

    kind = "audio"

    def __init__(self, signal: Signal = silence):
        super().__init__()
        self.signal = signal
        self._start: float | None = None
        self._sample = 0
        self.sent: list[tuple[float, int]] = []

    async def recv(self) -> AudioFrame:
        """The next 20 ms of the signal, released at its real-time instant."""
        if self._start is None:
            self._start = time.perf_counter()
        wait = self._start + self._sample / SAMPLE_RATE - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        samples = np.asarray(self.signal(self._sample, FRAME_SAMPLES), dtype=np.int16)
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._sample
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self.sent.append((time.perf_counter(), self._sample))
        self._sample += FRAME_SAMPLES
        return frame


class ReceivedAudio:
    """Audio received from the peer: mono int16 blocks with their arrival times."""

    def __init__(self):
        self.blocks: list[tuple[float, np.ndarray]] = []

    def samples(self) -> np.ndarray:
        """Everything received, concatenated."""
        if not self.blocks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate([b for _, b in self.blocks])

    async def record(self, track: MediaStreamTrack) -> None:
        """Record `track` until it ends."""
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            arrival = time.perf_counter()
            data = frame.to_ndarray().reshape(-1)
            channels = len(frame.layout.channels)
            if channels > 1:
                data = data.reshape(-1, channels)[:, 0]
            if frame.sample_rate != SAMPLE_RATE:
                raise RuntimeError(f"unexpected sample rate {frame.sample_rate}")
            self.blocks.append((arrival, data.astype(np.int16)))


class EchoClient:
    """One aiortc peer talking to an echo agent's offer URL.

    Messages from the agent land in `messages` as (perf_counter arrival, dict).
    """

    def __init__(self, microphone: SignalTrack | None = None, receive_audio: bool = False):
        self.pc = RTCPeerConnection()
        self.microphone = microphone
        self.received = ReceivedAudio()
        self.messages: asyncio.Queue[tuple[float, dict]] = asyncio.Queue()
        self.pc_id: str | None = None
        self._receive_audio = receive_audio or microphone is not None
        self._recorder: asyncio.Task | None = None
        self._channel = self.pc.createDataChannel("echo", ordered=True)
        self._opened = asyncio.Event()
        self._closed = asyncio.Event()
        self._channel.on("open", self._opened.set)
        self._channel.on("close", self._closed.set)
        self._channel.on("message", self._on_message)
        self.pc.on("track", self._on_track)

    def _on_message(self, message):
        arrival = time.perf_counter()
        try:
            data = json.loads(message)
        except (TypeError, ValueError):
            return
        if isinstance(data, dict):
            self.messages.put_nowait((arrival, data))

    def _on_track(self, track):
        if track.kind == "audio" and self._recorder is None:
            self._recorder = asyncio.ensure_future(self.received.record(track))

    async def connect(self, offer_url: str, http: aiohttp.ClientSession, open_within: float = 10.0):
        """Offer, apply the answer and wait until the data channel is open."""
        if self.microphone is not None:
            self.pc.addTrack(self.microphone)
        elif self._receive_audio:
            self.pc.addTransceiver("audio", direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = {"sdp": self.pc.localDescription.sdp, "type": self.pc.localDescription.type}
        async with http.post(offer_url, json=offer) as response:
            if response.status != 200:
                raise ConnectionError(
                    f"offer refused: HTTP {response.status} {await response.text()}"
                )
            answer = await response.json()
        self.pc_id = answer["pc_id"]
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        await asyncio.wait_for(self._opened.wait(), open_within)

    def send(self, message: dict | str) -> None:
        """Send one app message (dicts as JSON)."""
        self._channel.send(message if isinstance(message, str) else json.dumps(message))

    async def next_message(self, within: float = 5.0) -> tuple[float, dict]:
        """The next message from the agent (within `within` s), with its arrival time."""
        return await asyncio.wait_for(self.messages.get(), within)

    async def close(self) -> None:
        """Close the peer connection (the agent sees the client leave)."""
        await self.pc.close()
        if self._recorder:
            self._recorder.cancel()
