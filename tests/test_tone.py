"""ToneGeneratorProcessor and its sine: frequency, phase continuity, real-time pacing."""

import asyncio

import numpy as np
from pipecat.frames.frames import OutputAudioRawFrame
from pipecat.tests.utils import SleepFrame, run_test

from processors import ToneGeneratorProcessor
from processors.tone import SineWave
from tests.audio import dominant_frequency


def test_sine_blocks_join_without_a_phase_jump():
    wave = SineWave(550, 48000)
    joined = np.concatenate(
        [np.frombuffer(wave.next_block(n), dtype=np.int16) for n in (960, 333, 960, 17, 960)]
    )
    whole = np.frombuffer(SineWave(550, 48000).next_block(len(joined)), dtype=np.int16)
    assert np.max(np.abs(joined.astype(int) - whole.astype(int))) <= 1
    assert abs(dominant_frequency(joined) - 550) < 20


async def test_generator_pushes_real_time_20ms_frames_of_the_tone():
    down, _ = await run_test(
        ToneGeneratorProcessor(frequency=440, sample_rate=48000),
        frames_to_send=[SleepFrame(sleep=1.0)],
    )
    frames = [f for f in down if isinstance(f, OutputAudioRawFrame)]
    # One second at 20 ms per frame, one frame ahead: about 51 frames.
    assert 45 <= len(frames) <= 56
    assert all(len(f.audio) == 960 * 2 and f.sample_rate == 48000 for f in frames)
    samples = np.frombuffer(b"".join(f.audio for f in frames), dtype=np.int16)
    assert abs(dominant_frequency(samples) - 440) < 3


async def test_generator_stops_at_the_end_of_the_pipeline():
    processor = ToneGeneratorProcessor(frequency=440)
    await run_test(processor, frames_to_send=[SleepFrame(sleep=0.1)])
    await asyncio.sleep(0.1)
    assert processor._task is None
