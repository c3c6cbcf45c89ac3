"""Audio round trip by tone bursts: a burst signal, its detection, and the measurement.

The client's microphone plays silence with short tone bursts; each burst is looked
for in the audio that comes back. The round trip of a burst is the time its first
sample is found in the received audio minus the time that sample was handed to the
client's WebRTC stack; both times come from the client's `time.perf_counter()`.

`measure_bursts(client, ...)` works on any joined `BenchClient` whose microphone plays
a `BurstSignal`; `measure_audio_roundtrip(offer_url, http, ...)` measures any peer
that speaks the echo agent's offer protocol and sends the client's audio back.
"""

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiohttp
import numpy as np

from echo_bench.clients import BenchClient, BenchError, offer_session, wait_until_answering
from echo_bench.media import FRAME_SAMPLES, SAMPLE_RATE, ReceivedAudio
from echo_bench.stats import describe

__all__ = [
    "AudioRun",
    "BurstResult",
    "BurstSignal",
    "analyse_bursts",
    "burst_waveform",
    "detect_onset",
    "level_dbfs",
    "measure_audio_roundtrip",
    "measure_bursts",
    "summarize_bursts",
]

BURST_HZ = 1000.0
BURST_SECS = 0.04
BURST_AMPLITUDE = 0.5
RAMP_SECS = 0.002
THRESHOLD = 0.2
"""A sample counts as burst when it reaches this fraction of the burst's received peak."""
MIN_LEVEL = 0.05
"""A burst received below this fraction of its sent amplitude (-26 dB) counts as missed."""
SUSTAIN_SECS = 0.005
SUSTAIN_FRACTION = 0.3
"""An onset must be followed by this fraction of loud samples over `SUSTAIN_SECS`: no clicks."""
LEAD_SECS = 0.5
"""Silence between the bot being ready and the first burst."""


def burst_waveform(
    frequency: float = BURST_HZ,
    duration: float = BURST_SECS,
    amplitude: float = BURST_AMPLITUDE,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """One int16 tone burst with raised-cosine ramps (no click at either end)."""
    n = np.arange(round(duration * sample_rate))
    burst = amplitude * 32767 * np.sin(2 * np.pi * frequency * n / sample_rate)
    ramp = round(RAMP_SECS * sample_rate)
    envelope = np.ones(len(n))
    envelope[:ramp] = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    envelope[len(n) - ramp :] = envelope[:ramp][::-1]
    return (burst * envelope).astype(np.int16)


def detect_onset(
    samples: np.ndarray, threshold: float, sample_rate: int = SAMPLE_RATE
) -> int | None:
    """Index of the first sample of a burst in `samples`, or None.

    The onset is the first sample whose magnitude reaches `threshold` and is followed,
    over `SUSTAIN_SECS`, by at least `SUSTAIN_FRACTION` of samples that do too.
    """
    loud = np.abs(samples.astype(np.int32)) >= threshold
    if not loud.any():
        return None
    window = max(1, round(SUSTAIN_SECS * sample_rate))
    counts = np.concatenate(([0], np.cumsum(loud)))
    for index in np.flatnonzero(loud):
        end = min(len(loud), index + window)
        if counts[end] - counts[index] >= SUSTAIN_FRACTION * window:
            return int(index)
    return None


def level_dbfs(samples: np.ndarray) -> float | None:
    """RMS level in dB relative to int16 full scale; None for no samples or silence."""
    if len(samples) == 0:
        return None
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    return 20 * math.log10(rms / 32768) if rms > 0 else None


class BurstSignal:
    """Silence with a tone burst at each scheduled sample: a microphone `Signal`.

    Bursts are scheduled once the peer is ready (`schedule`), so none is lost to
    connection set-up.
    """

    def __init__(
        self,
        frequency: float = BURST_HZ,
        duration: float = BURST_SECS,
        amplitude: float = BURST_AMPLITUDE,
    ):
        self.burst = burst_waveform(frequency, duration, amplitude)
        self.amplitude = amplitude * 32767
        self.starts: list[int] = []
        onset = detect_onset(self.burst, self.threshold)
        self.onset_offset = onset or 0
        """Samples from a burst's start to where `detect_onset` finds it in the clean
        signal; subtracted so the codec-free detection delay does not count."""

    @property
    def threshold(self) -> float:
        """Detection threshold for the burst as sent, in int16 units."""
        return THRESHOLD * self.amplitude

    def find(self, samples: np.ndarray) -> int | None:
        """Where a burst starts in `samples` (received audio), or None.

        The threshold follows the level received (the 99.5th percentile of the
        magnitudes, which a burst dominates), so attenuation on the way does not
        move the onset along the burst's ramp.
        """
        if len(samples) == 0:
            return None
        peak = float(np.percentile(np.abs(samples.astype(np.int32)), 99.5))
        if peak < MIN_LEVEL * self.amplitude:
            return None
        return detect_onset(samples, THRESHOLD * peak)

    def schedule(self, first_sample: int, count: int, interval: float) -> list[int]:
        """Put `count` bursts `interval` s apart from `first_sample` on."""
        step = round(interval * SAMPLE_RATE)
        self.starts = [first_sample + i * step for i in range(count)]
        return self.starts

    def __call__(self, start: int, count: int) -> np.ndarray:
        """`count` samples from sample `start`."""
        out = np.zeros(count, dtype=np.int16)
        for burst_start in self.starts:
            lo, hi = max(start, burst_start), min(start + count, burst_start + len(self.burst))
            if lo < hi:
                out[lo - start : hi - start] = self.burst[lo - burst_start : hi - burst_start]
        return out


@dataclass
class BurstResult:
    """One burst: when it was sent, and its round trip if it came back.

    Attributes:
        index: Burst number, from 0.
        sent_perf: perf_counter when the burst's first sample was handed over (None
            if the microphone never played it).
        sent_time: The same instant on the wall clock, for the record.
        latency: Round trip in seconds; None when the burst was not found.
        level_dbfs: RMS level of the burst as received.
    """

    index: int
    sent_perf: float | None
    sent_time: float | None
    latency: float | None = None
    level_dbfs: float | None = None


def analyse_bursts(
    signal: BurstSignal,
    sent_audio: Sequence[tuple[float, int]],
    received: ReceivedAudio,
    window: float,
    *,
    clock_offset: float = 0.0,
) -> list[BurstResult]:
    """Find each scheduled burst in the received audio.

    A burst is looked for in what arrived from its send time to `window` s later;
    a received block's sample k is taken to arrive at the block's arrival time plus
    k / 48000 (the sender's frames are timed the same way).

    Args:
        signal: The burst signal the microphone played.
        sent_audio: (perf_counter, first sample) per microphone frame.
        received: The audio received back.
        window: Seconds after sending within which a burst must come back.
        clock_offset: time.time() - time.perf_counter(), to record wall-clock times.
    """
    frames = {first: sent_at for sent_at, first in sent_audio}
    blocks = [(arrival, block) for arrival, block in received.blocks if len(block)]
    arrivals = np.array([arrival for arrival, _ in blocks])
    longest = max((len(block) for _, block in blocks), default=0) / SAMPLE_RATE
    results = []
    for index, start in enumerate(signal.starts):
        first = start - start % FRAME_SAMPLES
        if first not in frames:
            results.append(BurstResult(index, None, None))
            continue
        sent = frames[first] + (start - first) / SAMPLE_RATE
        result = BurstResult(index, sent, sent + clock_offset)
        results.append(result)
        lo, hi = np.searchsorted(arrivals, [sent - longest, sent + window])
        if lo >= hi:
            continue
        samples = np.concatenate([block for _, block in blocks[lo:hi]])
        times = np.concatenate(
            [arrival + np.arange(len(block)) / SAMPLE_RATE for arrival, block in blocks[lo:hi]]
        )
        selected = np.flatnonzero((times >= sent) & (times < sent + window))
        onset = signal.find(samples[selected])
        if onset is not None:
            result.latency = float(times[selected[onset]]) - (
                sent + signal.onset_offset / SAMPLE_RATE
            )
            body = samples[selected[onset : onset + len(signal.burst) - 2 * signal.onset_offset]]
            result.level_dbfs = level_dbfs(body)
    return results


def summarize_bursts(bursts: Sequence[BurstResult], signal: BurstSignal | None = None) -> dict:
    """Bursts sent, detected and missed, round trip figures (ms) and levels."""
    latencies = [b.latency for b in bursts if b.latency is not None]
    levels = [b.level_dbfs for b in bursts if b.level_dbfs is not None]
    signal = signal or BurstSignal()
    clean = signal.burst[signal.onset_offset : len(signal.burst) - signal.onset_offset]
    return {
        "bursts": len(bursts),
        "detected": len(latencies),
        "missed": len(bursts) - len(latencies),
        "latency_ms": {k: None if v is None else v * 1000 for k, v in describe(latencies).items()},
        "received_level_dbfs": float(np.mean(levels)) if levels else None,
        "sent_level_dbfs": level_dbfs(clean),
    }


@dataclass
class AudioRun:
    """The bursts of one audio session.

    Attributes:
        bursts: Every burst sent, with its round trip when detected.
        room: The room (or peer connection) of the session.
        connect_to_first_pong: Seconds from `/connect` to the first pong, if waited for.
        signal: The burst signal played.
        setup: Seconds per setup phase (`SessionInfo.setup`).
    """

    bursts: list[BurstResult]
    room: str = ""
    connect_to_first_pong: float | None = None
    signal: BurstSignal = field(default_factory=BurstSignal)
    setup: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict:
        """The session's figures."""
        summary = summarize_bursts(self.bursts, self.signal)
        first = self.connect_to_first_pong
        summary["connect_to_first_pong_ms"] = None if first is None else first * 1000
        summary["setup_ms"] = {phase: seconds * 1000 for phase, seconds in self.setup.items()}
        return summary


async def _wait_until(condition: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.perf_counter() + seconds
    while not condition():
        if time.perf_counter() > deadline:
            raise BenchError(f"{what} within {seconds:g} s")
        await asyncio.sleep(0.01)


async def measure_bursts(
    client: BenchClient,
    signal: BurstSignal,
    count: int,
    interval: float = 1.0,
    *,
    join_timeout: float = 30.0,
    on_burst: Callable[[], None] | None = None,
) -> list[BurstResult]:
    """Play `count` bursts `interval` s apart on a joined client and time their echoes.

    Waits first until the microphone sends and audio comes back, then leaves
    `LEAD_SECS` of silence. A burst not back within `interval` s is missed.

    Raises:
        BenchError: the microphone never started or no audio ever came back.
    """
    await _wait_until(lambda: client.sent_audio, join_timeout, "the microphone did not start")
    await _wait_until(
        lambda: client.received.blocks, join_timeout, "no audio came back from the bot"
    )
    _, last = client.sent_audio[-1]
    starts = signal.schedule(last + FRAME_SAMPLES + round(LEAD_SECS * SAMPLE_RATE), count, interval)
    for start in starts:
        # The microphone runs in real time: wait until this burst's window is over.
        sent_at, first = client.sent_audio[-1]
        ends_at = sent_at + (start - first) / SAMPLE_RATE + interval
        await asyncio.sleep(max(0.0, ends_at - time.perf_counter()))
        if on_burst:
            on_burst()
    clock_offset = time.time() - time.perf_counter()
    return analyse_bursts(
        signal, client.sent_audio, client.received, interval, clock_offset=clock_offset
    )


async def measure_audio_roundtrip(
    offer_url: str,
    http: aiohttp.ClientSession,
    count: int = 20,
    interval: float = 1.0,
    *,
    join_timeout: float = 30.0,
    wait_for_bot_pong: bool = False,
    on_burst: Callable[[], None] | None = None,
) -> AudioRun:
    """Audio round trip of any peer that answers the offer protocol at `offer_url`.

    The peer must send the client's audio back (the echo agent in `loopback` mode,
    or a bare aiortc echo peer). With `wait_for_bot_pong`, the peer is first pinged
    until it answers (the echo agent does; `connect_to_first_pong` is then set).

    Raises:
        BenchError: the offer failed, or the peer never sent audio back.
    """
    signal = BurstSignal()
    client, info = await offer_session(offer_url, http, signal=signal, join_timeout=join_timeout)
    try:
        if wait_for_bot_pong:
            await wait_until_answering(client, info, join_timeout)
        bursts = await measure_bursts(
            client, signal, count, interval, join_timeout=join_timeout, on_burst=on_burst
        )
    finally:
        await client.close()
    return AudioRun(bursts, info.room, info.setup.get("total"), signal, info.setup)
