"""Signals and analysis the tests use on real audio."""

import numpy as np

SAMPLE_RATE = 48000


def tone(frequency: float, amplitude: float = 0.3):
    """A continuous sine as a `SignalTrack` signal."""

    def signal(start: int, count: int) -> np.ndarray:
        n = np.arange(start, start + count)
        return (amplitude * 32767 * np.sin(2 * np.pi * frequency * n / SAMPLE_RATE)).astype(
            np.int16
        )

    return signal


def dominant_frequency(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """The strongest frequency in `samples` (Hann-windowed FFT), in Hz."""
    x = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    spectrum[0] = 0
    return float(np.fft.rfftfreq(len(x), 1 / sample_rate)[np.argmax(spectrum)])


def rms(samples: np.ndarray) -> float:
    """Root mean square level, in int16 units."""
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0
