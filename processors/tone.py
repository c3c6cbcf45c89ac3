"""A continuous, phase-continuous sine tone on the output audio track."""

import asyncio
import math
import time

import numpy as np
from pipecat.frames.frames import CancelFrame, EndFrame, Frame, OutputAudioRawFrame, StartFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from agent_core import DEFAULT_TONE_HZ


class SineWave:
    """Phase-continuous sine samples: consecutive blocks join without a click."""

    def __init__(self, frequency: float, sample_rate: int, amplitude: float = 0.3):
        self._step = 2 * math.pi * frequency / sample_rate
        self._amplitude = amplitude * 32767
        self._phase = 0.0

    def next_block(self, samples: int) -> bytes:
        """The next `samples` 16-bit mono samples."""
        phases = self._phase + self._step * np.arange(samples)
        self._phase = (self._phase + self._step * samples) % (2 * math.pi)
        return (self._amplitude * np.sin(phases)).astype(np.int16).tobytes()


class ToneGeneratorProcessor(FrameProcessor):
    """Pushes a sine tone downstream in real time, from `StartFrame` until the end."""

    def __init__(
        self,
        *,
        frequency: float = DEFAULT_TONE_HZ,
        sample_rate: int = 48000,
        frame_ms: int = 20,
        **kwargs,
    ):
        """Initialize the generator.

        Args:
            frequency: Tone frequency in Hz (checked by the caller: `agent_core.tone_hz_problem`).
            sample_rate: Output sample rate in Hz.
            frame_ms: Duration of each pushed audio frame.
            **kwargs: Passed on to `FrameProcessor`.
        """
        super().__init__(**kwargs)
        self._wave = SineWave(frequency, sample_rate)
        self._sample_rate = sample_rate
        self._frame_samples = sample_rate * frame_ms // 1000
        self._frame_secs = frame_ms / 1000
        self._task: asyncio.Task | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Start the tone on `StartFrame`, stop it on `EndFrame`/`CancelFrame`."""
        await super().process_frame(frame, direction)
        if isinstance(frame, EndFrame | CancelFrame):
            await self._stop()
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame) and not self._task:
            self._task = self.create_task(self._generate())

    async def cleanup(self):
        """Stop the tone when the pipeline is torn down."""
        await super().cleanup()
        await self._stop()

    async def _stop(self):
        if self._task:
            await self.cancel_task(self._task)
            self._task = None

    async def _generate(self):
        # Paced on the wall clock from one start time, so the tone does not drift.
        start = time.monotonic()
        sent = 0
        while True:
            await self.push_frame(
                OutputAudioRawFrame(
                    audio=self._wave.next_block(self._frame_samples),
                    sample_rate=self._sample_rate,
                    num_channels=1,
                )
            )
            sent += 1
            await asyncio.sleep(max(0.0, start + (sent - 1) * self._frame_secs - time.monotonic()))
