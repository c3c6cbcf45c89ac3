"""The overhead benchmarks' client: plain aiortc peers pinged at once, interleaved.

Part of the instrument, like `bare_echo.py`: it imports nothing of the agent and nothing
of Pipecat (echo-bench's client restricts ICE through the agent's `transports.webrtc`,
which imports Pipecat and so changes aiortc in the client process too). Every sample
keeps both clocks (`perf_counter` and `time.time`) and the peer's pong times, so RTT,
wall-clock RTT and net RTT (RTT minus the peer's hold) come from the same pings.
"""

import asyncio
import fractions
import json
import math
import time
from dataclasses import dataclass

import aiohttp
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

__all__ = [
    "PingClient",
    "Sample",
    "SilenceTrack",
    "percentile",
    "ping_interleaved",
    "summarize",
]

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960
PROBE_INTERVAL = 0.1


@dataclass
class Sample:
    """One ping and its pong (times in seconds; arrival None while unanswered)."""

    seq: int
    sent_perf: float
    sent_wall: float
    arrival_perf: float | None = None
    arrival_wall: float | None = None
    hold: float | None = None
    """The peer's `server_send_time - server_receive_time`."""

    @property
    def rtt(self) -> float | None:
        """Round trip on `perf_counter`."""
        return None if self.arrival_perf is None else self.arrival_perf - self.sent_perf

    @property
    def rtt_wall(self) -> float | None:
        """Round trip on `time.time` (the ping's own timestamp to the pong's arrival)."""
        return None if self.arrival_wall is None else self.arrival_wall - self.sent_wall

    @property
    def net(self) -> float | None:
        """Round trip minus the peer's hold."""
        if self.rtt is None or self.hold is None:
            return None
        return self.rtt - self.hold


class SilenceTrack(MediaStreamTrack):
    """A microphone sending 20 ms of silence every 20 ms, in real time."""

    kind = "audio"

    def __init__(self):
        """Start at the first `recv`."""
        super().__init__()
        self._start: float | None = None
        self._sample = 0

    async def recv(self) -> AudioFrame:
        """The next 20 ms frame, at its real-time instant."""
        if self._start is None:
            self._start = time.perf_counter()
        wait = self._start + self._sample / SAMPLE_RATE - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        frame = AudioFrame.from_ndarray(
            np.zeros((1, FRAME_SAMPLES), dtype=np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._sample
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._sample += FRAME_SAMPLES
        return frame


class PingClient:
    """One aiortc connection to a peer's offer URL: a data channel, audio optional.

    With `audio`, the client sends silence and drains whatever audio comes back.
    """

    def __init__(self, name: str, audio: bool = False, async_listener: bool = False):
        """Prepare the connection to the peer called `name`.

        `async_listener` receives pongs in a coroutine listener, which aiortc runs as a
        new task (a client that does so adds that hop to every RTT; A/B only).
        """
        self.name = name
        self.pc = RTCPeerConnection()
        self.samples: dict[int, Sample] = {}
        self.answer_sdp = ""
        self._audio = audio
        self._drains: set[asyncio.Task] = set()
        self._probed = asyncio.Event()
        self._opened = asyncio.Event()
        self._channel = self.pc.createDataChannel("echo", ordered=True)
        self._channel.on("open", self._opened.set)
        self._channel.on("message", self._on_message_async if async_listener else self._on_message)
        self.pc.on("track", self._on_track)

    def _on_message(self, message) -> None:
        arrival_perf = time.perf_counter()
        arrival_wall = time.time()
        try:
            data = json.loads(message)
        except (TypeError, ValueError):
            return
        if not isinstance(data, dict) or data.get("type") != "pong":
            return
        seq = data.get("seq")
        if not isinstance(seq, int):
            return
        if seq < 0:
            self._probed.set()
            return
        sample = self.samples.get(seq)
        if sample is None or sample.arrival_perf is not None:
            return
        sample.arrival_perf, sample.arrival_wall = arrival_perf, arrival_wall
        received, sent = data.get("server_receive_time"), data.get("server_send_time")
        if _is_time(received) and _is_time(sent):
            sample.hold = sent - received

    async def _on_message_async(self, message) -> None:
        self._on_message(message)

    def _on_track(self, track: MediaStreamTrack) -> None:
        async def drain():
            try:
                while True:
                    await track.recv()
            except MediaStreamError:
                return

        task = asyncio.ensure_future(drain())
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    async def connect(self, offer_url: str, http: aiohttp.ClientSession, within: float = 30.0):
        """Offer, answer, wait for the data channel, then until a probe ping is answered.

        Raises:
            ConnectionError: the offer was refused.
            TimeoutError: the channel did not open or no probe was answered in time.
        """
        if self._audio:
            self.pc.addTrack(SilenceTrack())
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = {"sdp": self.pc.localDescription.sdp, "type": self.pc.localDescription.type}
        async with http.post(offer_url, json=offer) as response:
            if response.status != 200:
                raise ConnectionError(f"offer refused: HTTP {response.status}")
            answer = await response.json()
        self.answer_sdp = answer["sdp"]
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        deadline = time.perf_counter() + within
        await asyncio.wait_for(self._opened.wait(), within)
        seq = 0
        while not self._probed.is_set():
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{self.name} answered no ping within {within:g} s")
            seq -= 1
            self._channel.send(json.dumps({"type": "ping", "timestamp": time.time(), "seq": seq}))
            try:
                await asyncio.wait_for(self._probed.wait(), PROBE_INTERVAL)
            except TimeoutError:
                pass

    def ping(self, seq: int) -> None:
        """Send ping `seq` now."""
        sent_wall = time.time()
        text = json.dumps({"type": "ping", "timestamp": sent_wall, "seq": seq})
        self.samples[seq] = Sample(seq, time.perf_counter(), sent_wall)
        self._channel.send(text)

    def answered(self) -> list[Sample]:
        """The samples with a pong, by seq."""
        return [s for _, s in sorted(self.samples.items()) if s.arrival_perf is not None]

    async def close(self) -> None:
        """Close the connection."""
        await self.pc.close()
        for task in list(self._drains):
            task.cancel()


def _is_time(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


async def ping_interleaved(
    clients: list[PingClient], count: int, interval: float, pong_timeout: float = 2.0
) -> None:
    """Ping every client `count` times every `interval` s, their pings interleaved.

    Client i's ping k leaves at `start + k * interval + i * interval / len(clients)`, in
    one loop, so a round trip (~1-2 ms on loopback) never overlaps another and the order
    within an interval is the order of `clients`. Returns when all are answered or
    `pong_timeout` s after the last ping.
    """
    spacing = interval / len(clients)
    start = time.perf_counter() + 0.05
    for k in range(count):
        for i, client in enumerate(clients):
            wait = start + k * interval + i * spacing - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            client.ping(k)
    deadline = time.perf_counter() + pong_timeout
    while time.perf_counter() < deadline:
        if all(len(c.answered()) == count for c in clients):
            return
        await asyncio.sleep(0.01)


def percentile(values: list[float], q: float) -> float:
    """The `q`th percentile (NaN when empty)."""
    return float(np.percentile(values, q)) if values else float("nan")


def summarize(samples: list[Sample]) -> dict:
    """p50/p99 of RTT, p50 of wall-clock RTT, net RTT and hold, in ms; the pong count."""

    def ms(values):
        return [v * 1000 for v in values if v is not None]

    rtt, wall = ms(s.rtt for s in samples), ms(s.rtt_wall for s in samples)
    net, hold = ms(s.net for s in samples), ms(s.hold for s in samples)
    return {
        "pongs": len(rtt),
        "rtt_p50": percentile(rtt, 50),
        "rtt_p99": percentile(rtt, 99),
        "rtt_wall_p50": percentile(wall, 50),
        "net_p50": percentile(net, 50),
        "hold_p50": percentile(hold, 50),
    }
