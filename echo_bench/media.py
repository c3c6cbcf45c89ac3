"""Audio as every participant sends and receives it: 48 kHz mono int16 in 20 ms blocks.

A `Signal` is what a microphone plays; a `SignalClock` releases it in real time and records
when each block went out; `ReceivedAudio` records what came in, with arrival times. All
times are `time.perf_counter()` readings.
"""

import asyncio
import time
from collections.abc import Callable

import numpy as np

__all__ = [
    "FRAME_SAMPLES",
    "MAX_LAG_SECS",
    "SAMPLE_RATE",
    "ReceivedAudio",
    "Signal",
    "SignalClock",
    "first_channel",
    "silence",
]

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz

MAX_LAG_SECS = 0.5
"""A sender further behind real time than this resynchronises instead of sending a burst."""

Signal = Callable[[int, int], np.ndarray]
"""signal(first_sample, count) -> `count` int16 samples starting at `first_sample`."""


def silence(_start: int, count: int) -> np.ndarray:
    """The silent signal."""
    return np.zeros(count, dtype=np.int16)


def first_channel(samples: np.ndarray, channels: int) -> np.ndarray:
    """The first channel of interleaved int16 samples (a mono block is returned as is)."""
    return samples.reshape(-1, channels)[:, 0] if channels > 1 else samples


class SignalClock:
    """Releases a signal block by block at its real-time instants.

    `sent` records (perf_counter just before the block is handed over, first sample) for
    every block, so what was sent when can be matched against what comes back.
    """

    def __init__(self, signal: Signal = silence):
        self.signal = signal
        self.sent: list[tuple[float, int]] = []
        self._start: float | None = None
        self._sample = 0

    async def next_block(self) -> tuple[int, np.ndarray]:
        """(first sample, samples) of the next 20 ms, once its instant has come."""
        now = time.perf_counter()
        if self._start is None:
            self._start = now
        lag = now - (self._start + self._sample / SAMPLE_RATE)
        if lag < 0:
            await asyncio.sleep(-lag)
        elif lag > MAX_LAG_SECS:
            self._start += lag
        first = self._sample
        samples = np.asarray(self.signal(first, FRAME_SAMPLES), dtype=np.int16)
        self.sent.append((time.perf_counter(), first))
        self._sample += FRAME_SAMPLES
        return first, samples


class ReceivedAudio:
    """Audio received: mono int16 blocks with their perf_counter arrival times."""

    def __init__(self):
        self.blocks: list[tuple[float, np.ndarray]] = []

    def add(self, arrival: float, samples: np.ndarray) -> None:
        """Record one block that arrived at `arrival`."""
        self.blocks.append((arrival, samples))

    def samples(self) -> np.ndarray:
        """Everything received, concatenated."""
        if not self.blocks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate([b for _, b in self.blocks])
