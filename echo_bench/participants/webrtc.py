"""Local WebRTC (aiortc): a peer that offers to an offer URL, or to / from another peer.

The peer creates the data channel (`echo`, ordered) and offers; a peer made with
`data_channel=False` answers instead and takes the channel its offerer made.
"""

import asyncio
import fractions
import json
import time

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import InvalidStateError
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from echo_bench.media import SAMPLE_RATE, Signal, SignalClock, first_channel, silence
from echo_bench.participants.base import Participant, ParticipantError, network_reason

__all__ = ["SignalTrack", "WebRTCParticipant"]


class SignalTrack(MediaStreamTrack):
    """An aiortc microphone track that plays a signal in real time, 20 ms per frame."""

    kind = "audio"

    def __init__(self, signal: Signal | SignalClock = silence):
        super().__init__()
        self.clock = signal if isinstance(signal, SignalClock) else SignalClock(signal)

    @property
    def sent(self) -> list[tuple[float, int]]:
        """(perf_counter send time, first sample) of every frame."""
        return self.clock.sent

    async def recv(self) -> AudioFrame:
        """The next 20 ms of the signal, released at its real-time instant."""
        first, samples = await self.clock.next_block()
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = first
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        return frame


class WebRTCParticipant(Participant):
    """One aiortc peer connection: data channel, microphone, the peer's audio.

    Attributes:
        pc: The aiortc peer connection.
        pc_id: The peer connection's id at the agent (after `connect`).
        microphone: The track published, if any.
    """

    platform = "webrtc"

    def __init__(
        self,
        signal: Signal | None = None,
        *,
        microphone: MediaStreamTrack | None = None,
        receive_audio: bool = False,
        data_channel: bool = True,
        **options,
    ):
        """Initialize the peer (nothing is sent before `offer` or `answer`).

        Args:
            signal: What the microphone plays.
            microphone: An aiortc track to publish instead of a `signal`.
            receive_audio: Ask for the peer's audio even without a microphone.
            data_channel: Create the data channel (the offerer does); False waits for
                the peer's.
            **options: `Participant`'s `label`, `listen_to` (the peer's name, for the
                logs) and `received`.
        """
        super().__init__(signal, receive_audio=receive_audio or microphone is not None, **options)
        self.pc = RTCPeerConnection()
        self.pc_id: str | None = None
        self.microphone = microphone or (SignalTrack(self._clock) if self._clock else None)
        if isinstance(self.microphone, SignalTrack):
            self._clock = self.microphone.clock
        if self.microphone is not None:
            self.pc.addTrack(self.microphone)
        self._opened = asyncio.Event()
        self._channel = None
        if data_channel:
            self._adopt(self.pc.createDataChannel("echo", ordered=True))
        self.pc.on("datachannel", self._adopt)
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    async def offer(self) -> RTCSessionDescription:
        """Create and apply the local offer."""
        if self.microphone is None and self._receive_audio:
            self.pc.addTransceiver("audio", direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription

    async def answer(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        """Apply a peer's offer and create and apply the answer."""
        await self.pc.setRemoteDescription(offer)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription

    async def accept(self, answer: RTCSessionDescription) -> None:
        """Apply the peer's answer to our offer."""
        await self.pc.setRemoteDescription(answer)

    async def connect(
        self, offer_url: str, http: aiohttp.ClientSession, join_timeout: float = 30.0
    ) -> None:
        """Offer to the agent's `offer_url` and wait until the data channel is open.

        `setup` gets `offer` (creating the offer until the answer is back) and `ice_dtls`
        (the answer applied until the data channel is open: ICE, DTLS, SCTP).

        Raises:
            ParticipantError: the offer was refused or failed, or the channel did not open.
        """
        action = f"connect to {offer_url}"
        try:
            async with asyncio.timeout(join_timeout):
                started = time.perf_counter()
                offer = await self.offer()
                async with http.post(offer_url, json={"sdp": offer.sdp, "type": offer.type}) as r:
                    if r.status != 200:
                        raise self.error(action, f"offer refused: HTTP {r.status} {await r.text()}")
                    answer = await r.json()
                answered = time.perf_counter()
                self.pc_id = answer["pc_id"]
                await self.accept(RTCSessionDescription(answer["sdp"], answer["type"]))
                await self._opened.wait()
        except TimeoutError:
            raise self.error(
                action, f"the data channel did not open within {join_timeout:g} s"
            ) from None
        except aiohttp.ClientError as e:
            raise self.error(action, f"the offer failed: {network_reason(e)}") from None
        except (KeyError, TypeError, ValueError):
            raise self.error(action, "the answer to the offer is malformed") from None
        self.setup = {"offer": answered - started, "ice_dtls": time.perf_counter() - answered}

    async def wait_connected(self) -> None:
        """Wait until the peer connection is connected.

        Raises:
            ParticipantError: it failed or closed first.
        """
        changed = asyncio.Event()
        self.pc.on("connectionstatechange", changed.set)
        while self.pc.connectionState != "connected":
            if self.pc.connectionState in ("failed", "closed"):
                raise self.error("connect", f"the peer connection {self.pc.connectionState}")
            changed.clear()
            await changed.wait()

    def send_nowait(self, message: dict | str) -> None:
        """Send one app message on the data channel at once (dicts as JSON).

        Raises:
            ParticipantError: the data channel is not open.
        """
        try:
            if self._channel is None:
                raise InvalidStateError
            self._channel.send(message if isinstance(message, str) else json.dumps(message))
        except InvalidStateError:
            raise ParticipantError("the WebRTC data channel closed") from None

    async def send(self, message: dict) -> None:
        """Send one app message on the data channel."""
        self.send_nowait(message)

    async def close(self) -> None:
        """Close the peer connection (the peer sees this participant leave)."""
        await self.pc.close()
        await self.stop_tasks()

    async def rtp_stats(self) -> dict[str, int]:
        """RTP packets and bytes sent, packets received and lost, from aiortc's counters."""
        figures = {}
        for stats in (await self.pc.getStats()).values():
            if stats.type == "outbound-rtp":
                figures["rtp_packets_sent"] = stats.packetsSent
                figures["rtp_bytes_sent"] = stats.bytesSent
            elif stats.type == "inbound-rtp":
                figures["rtp_packets_received"] = stats.packetsReceived
                figures["rtp_packets_lost"] = stats.packetsLost
        return figures

    def _adopt(self, channel) -> None:
        if self._channel is not None:
            return
        self._channel = channel
        channel.on("message", self._on_message)
        channel.on("open", self._opened.set)
        if channel.readyState == "open":
            self._opened.set()

    def _on_message(self, message) -> None:
        self.deliver(time.perf_counter(), message)

    def _on_state(self) -> None:
        self.log(f"connection {self.pc.connectionState}")

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._receive_audio:
            self.log(f"subscribed to {self._listen_to or 'the peer'}'s audio track")
            self.spawn(self._record(track))

    async def _record(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            arrival = time.perf_counter()
            if frame.sample_rate != SAMPLE_RATE:
                raise RuntimeError(f"unexpected sample rate {frame.sample_rate}")
            samples = first_channel(frame.to_ndarray().reshape(-1), len(frame.layout.channels))
            self.received.add(arrival, samples.astype("int16"))
