"""Test tones shaped like speech turns, and how to find them again in received audio.

A conversation is a schedule of turns: the speakers take turns of 1-2 s with short gaps,
so each one talks for a while and then listens, as people do. A `Voice` plays one speaker's
tone during its turns and silence otherwise. On the receiving side, audio is cut into 20 ms
frames and each frame is tested for a tone with a single-bin DFT (the quantity the Goertzel
algorithm computes); `dominant_frequency` finds the strongest tone of a whole recording
with an averaged FFT.
"""

import math
import random
from dataclasses import dataclass

import numpy as np

from echo_bench.media import FRAME_SAMPLES, SAMPLE_RATE

__all__ = [
    "DETECTION_PURITY",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "SILENCE_RMS",
    "ToneCounter",
    "Turn",
    "Voice",
    "conversation_turns",
    "detect_frames",
    "dominant_frequency",
    "frame_rms",
    "tone_purity",
]

FULL_SCALE = 32767

SILENCE_RMS = FULL_SCALE * 10 ** (-60 / 20)
"""Frames quieter than -60 dBFS (RMS) are silence."""

DETECTION_PURITY = 0.5
"""Share of a frame's energy that must be the tone for the tone to count as present.

A frame that holds the tone for a fraction `f` of its length and silence for the rest has
a purity of about `f`, so at 0.5 a frame at the edge of a turn counts only when the tone
fills most of it, and a received turn counts as many frames as the turn that was sent.
"""

RAMP_SECS = 0.005  # fade in and out over 5 ms so a turn starts and stops without a click
SYLLABLE_HZ = 4.0  # a slow loudness wobble, as syllables give speech
SYLLABLE_DEPTH = 0.2


@dataclass(frozen=True)
class Turn:
    """One speaker talking from sample `start` to sample `end` (exclusive)."""

    speaker: int
    start: int
    end: int


def conversation_turns(
    duration: float,
    speakers: int = 2,
    seed: int = 0,
    talk: tuple[float, float] = (1.0, 2.0),
    gap: tuple[float, float] = (0.2, 0.6),
) -> list[Turn]:
    """Turns of `talk` seconds with `gap`s between them, speaker 0 first, in rotation.

    Boundaries fall on 20 ms frames. The schedule is the same for the same seed.
    """
    rng = random.Random(seed)
    end = _frames(duration)
    turns = []
    position = 0
    speaker = 0
    while position < end:
        stop = min(position + _frames(rng.uniform(*talk)), end)
        turns.append(Turn(speaker, position * FRAME_SAMPLES, stop * FRAME_SAMPLES))
        position = stop + _frames(rng.uniform(*gap))
        speaker = (speaker + 1) % speakers
    return turns


def _frames(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE / FRAME_SAMPLES)


class Voice:
    """One speaker's audio: its tone during its turns, silence otherwise.

    The voice is silent until `start()`; the conversation then begins with the next block
    asked for and lasts `length` samples, after which the voice is silent again. Calling it
    as `voice(first_sample, count)` gives the next block (the `Signal` of
    `echo_bench.media`), and counts what was handed to the transport.

    `silent=True` keeps the schedule, and so the talk time the other side should hear, but
    sends silence: the way to check that a direction that carries nothing fails.
    """

    def __init__(
        self,
        tone_hz: float,
        turns: list[tuple[int, int]],
        length: int,
        silent: bool = False,
        amplitude: float = 0.3,
    ):
        self.tone_hz = tone_hz
        self.silent = silent
        self._turns = sorted(turns)
        self._length = length
        self._amplitude = amplitude * FULL_SCALE
        self._start_requested = False
        self._origin: int | None = None
        self._position = 0
        self.chunks = 0
        self.bytes = 0
        self.talk_samples = 0

    @property
    def talk_frames(self) -> int:
        """The 20 ms frames of talk time sent so far (scheduled, even when silent)."""
        return self.talk_samples // FRAME_SAMPLES

    @property
    def started(self) -> bool:
        """Whether the conversation has begun in the audio already sent."""
        return self._origin is not None

    @property
    def finished(self) -> bool:
        """Whether every sample of the conversation has been sent."""
        return self._origin is not None and self._position >= self._origin + self._length

    def start(self) -> None:
        """Begin the conversation with the next block."""
        self._start_requested = True

    def __call__(self, first_sample: int, count: int) -> np.ndarray:
        """`count` int16 samples starting at `first_sample` of this voice's stream."""
        if self._start_requested and self._origin is None:
            self._origin = first_sample
        self._position = first_sample + count
        self.chunks += 1
        self.bytes += 2 * count
        out = np.zeros(count, dtype=np.int16)
        if self._origin is None:
            return out
        # Positions in the conversation, and the part of this block inside it.
        begin = first_sample - self._origin
        end = min(begin + count, self._length)
        for turn_start, turn_end in self._turns:
            lo, hi = max(begin, turn_start), min(end, turn_end)
            if lo >= hi:
                continue
            self.talk_samples += hi - lo
            if not self.silent:
                t = np.arange(lo, hi)
                out[lo - begin : hi - begin] = self._tone(t, turn_start, turn_end)
        return out

    def _tone(self, t: np.ndarray, turn_start: int, turn_end: int) -> np.ndarray:
        ramp = RAMP_SECS * SAMPLE_RATE
        edge = np.clip(np.minimum(t - turn_start, turn_end - 1 - t) / ramp, 0.0, 1.0)
        envelope = 0.5 - 0.5 * np.cos(np.pi * edge)
        seconds = t / SAMPLE_RATE
        wobble = 1.0 - SYLLABLE_DEPTH * 0.5 * (1 - np.cos(2 * np.pi * SYLLABLE_HZ * seconds))
        wave = np.sin(2 * np.pi * self.tone_hz * seconds)
        return (self._amplitude * envelope * wobble * wave).astype(np.int16)


def _as_frames(samples: np.ndarray) -> np.ndarray:
    """Whole 20 ms frames of `samples` as rows of floats (a trailing part is dropped)."""
    samples = np.asarray(samples, dtype=np.float64).reshape(-1)
    n = len(samples) // FRAME_SAMPLES
    return samples[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES)


def frame_rms(frames: np.ndarray) -> np.ndarray:
    """RMS of each row."""
    return np.sqrt(np.mean(np.square(frames), axis=-1))


_probes: dict[tuple[float, int], np.ndarray] = {}


def tone_purity(frames: np.ndarray, freq: float) -> np.ndarray:
    """Share of each row's energy that is a sine at `freq` (about 1 for a pure tone).

    The single-bin DFT at `freq` is what the Goertzel algorithm computes; done as one
    matrix product it costs a few microseconds per frame.
    """
    n = frames.shape[-1]
    key = (freq, n)
    if key not in _probes:
        _probes[key] = np.exp(-2j * np.pi * freq * np.arange(n) / SAMPLE_RATE)
    power = np.abs(frames @ _probes[key]) ** 2
    energy = np.sum(np.square(frames), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        purity = np.where(energy > 0, 2 * power / (n * energy), 0.0)
    return purity


def detect_frames(samples: np.ndarray, freq: float) -> np.ndarray:
    """For each whole 20 ms frame of `samples`: is a tone at `freq` what it holds?"""
    frames = _as_frames(samples)
    return (frame_rms(frames) >= SILENCE_RMS) & (tone_purity(frames, freq) >= DETECTION_PURITY)


def dominant_frequency(samples: np.ndarray, min_share: float = 0.5) -> float | None:
    """The frequency of the strongest tone in `samples`, or None if there is no tone.

    Averages Hann-windowed 1 s FFTs (1 Hz bins) and refines the peak between bins. Silence
    has no tone, and neither has a signal whose peak (+-10 Hz) holds less than `min_share`
    of its energy, such as noise.
    """
    samples = np.asarray(samples, dtype=np.float64).reshape(-1)
    if len(samples) == 0 or np.sqrt(np.mean(np.square(samples))) < SILENCE_RMS / 10:
        return None
    segment = SAMPLE_RATE
    window = np.hanning(segment)
    spectrum = np.zeros(segment // 2 + 1)
    hop = segment // 2
    starts = range(0, max(len(samples) - segment, 0) + 1, hop)
    for start in starts:
        piece = samples[start : start + segment]
        if len(piece) < segment:
            piece = np.pad(piece, (0, segment - len(piece)))
        spectrum += np.abs(np.fft.rfft(piece * window)) ** 2
    spectrum[0] = 0.0  # DC is not a tone
    total = spectrum.sum()
    if total <= 0:
        return None
    peak = int(np.argmax(spectrum))
    band = spectrum[max(peak - 10, 0) : peak + 11].sum()
    if band / total < min_share:
        return None
    offset = 0.0
    if 0 < peak < len(spectrum) - 1:
        a, b, c = np.log(spectrum[peak - 1 : peak + 2] + 1e-12)
        if a - 2 * b + c < 0:
            offset = 0.5 * (a - c) / (a - 2 * b + c)
    return (peak + offset) * SAMPLE_RATE / segment


class ToneCounter:
    """Counts, in a stream of received audio, the 20 ms frames that hold a given tone.

    Blocks of any size go in through `feed`; they are cut into 20 ms frames in arrival
    order.
    """

    def __init__(self, freq: float):
        self.freq = freq
        self.frames = 0
        self.voiced_frames = 0
        self.tone_frames = 0
        self._rest = np.zeros(0, dtype=np.float64)

    def feed(self, samples: np.ndarray) -> None:
        """Add the next received samples."""
        data = np.concatenate([self._rest, np.asarray(samples, dtype=np.float64).reshape(-1)])
        frames = _as_frames(data)
        self._rest = data[len(frames) * FRAME_SAMPLES :]
        if not len(frames):
            return
        voiced = frame_rms(frames) >= SILENCE_RMS
        self.frames += len(frames)
        self.voiced_frames += int(voiced.sum())
        self.tone_frames += int(
            (voiced & (tone_purity(frames, self.freq) >= DETECTION_PURITY)).sum()
        )


def seconds(samples: int) -> float:
    """Samples at 48 kHz as seconds."""
    return samples / SAMPLE_RATE


def is_valid_tone(freq: float) -> bool:
    """Whether `freq` is a tone the detector can tell apart (100 Hz to 8 kHz)."""
    return math.isfinite(freq) and 100.0 <= freq <= 8000.0
