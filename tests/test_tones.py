import numpy as np
import pytest

from echo_bench.tones import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    ToneCounter,
    Voice,
    conversation_turns,
    detect_frames,
    dominant_frequency,
)


def tone(freq: float, seconds: float = 1.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def play(voice: Voice, frames: int, first: int = 0) -> np.ndarray:
    blocks = [voice(i * FRAME_SAMPLES, FRAME_SAMPLES) for i in range(first, first + frames)]
    return np.concatenate(blocks)


def test_440_is_detected_as_440_and_not_550():
    samples = tone(440)
    assert detect_frames(samples, 440).all()
    assert not detect_frames(samples, 550).any()
    assert dominant_frequency(samples) == pytest.approx(440, abs=0.5)


def test_550_is_detected_as_550_and_not_440():
    samples = tone(550)
    assert detect_frames(samples, 550).all()
    assert not detect_frames(samples, 440).any()
    assert dominant_frequency(samples) == pytest.approx(550, abs=0.5)


def test_a_quiet_tone_is_still_found():
    samples = tone(440, amplitude=0.003)  # about -50 dBFS
    assert detect_frames(samples, 440).all()
    assert dominant_frequency(samples) == pytest.approx(440, abs=0.5)


@pytest.mark.parametrize(
    "samples",
    [
        np.zeros(SAMPLE_RATE, dtype=np.int16),
        np.random.default_rng(1).integers(-20, 20, SAMPLE_RATE).astype(np.int16),  # hiss
        np.random.default_rng(2).normal(0, 5000, 2 * SAMPLE_RATE).astype(np.int16),  # loud noise
    ],
    ids=["silence", "hiss", "noise"],
)
def test_silence_and_noise_detect_nothing(samples):
    assert not detect_frames(samples, 440).any()
    assert not detect_frames(samples, 550).any()
    assert dominant_frequency(samples) is None


def test_empty_audio_detects_nothing():
    assert dominant_frequency(np.zeros(0, dtype=np.int16)) is None
    assert len(detect_frames(np.zeros(100, dtype=np.int16), 440)) == 0


def test_turns_alternate_like_speech():
    turns = conversation_turns(60, seed=3)
    assert [t.speaker for t in turns[:4]] == [0, 1, 0, 1]
    for turn, following in zip(turns, turns[1:], strict=False):
        assert turn.start % FRAME_SAMPLES == 0 and turn.end % FRAME_SAMPLES == 0
        assert 0.2 <= (following.start - turn.end) / SAMPLE_RATE <= 0.6
    for turn in turns[:-1]:
        assert 1.0 <= (turn.end - turn.start) / SAMPLE_RATE <= 2.0
    assert turns[-1].end == 60 * SAMPLE_RATE
    assert conversation_turns(60, seed=3) == turns


def test_voice_is_silent_until_started_then_talks_in_turns():
    turns = [(0, 50 * FRAME_SAMPLES), (100 * FRAME_SAMPLES, 150 * FRAME_SAMPLES)]
    voice = Voice(440, turns, length=200 * FRAME_SAMPLES)
    assert not play(voice, 10).any()
    assert not voice.started
    voice.start()
    audio = play(voice, 210, first=10).reshape(-1, FRAME_SAMPLES)
    heard = detect_frames(audio, 440)
    assert heard[:50].all() and heard[100:150].all()
    assert not audio[50:100].any() and not audio[150:].any()
    assert voice.talk_frames == 100
    assert voice.chunks == 220 and voice.bytes == 220 * FRAME_SAMPLES * 2
    assert voice.finished


def test_a_silent_voice_keeps_its_talk_time_but_sends_nothing():
    voice = Voice(550, [(0, 50 * FRAME_SAMPLES)], length=60 * FRAME_SAMPLES, silent=True)
    voice.start()
    assert not play(voice, 60).any()
    assert voice.talk_frames == 50


@pytest.mark.parametrize("shift", [0, 123, 300, 700])
def test_counter_counts_one_frame_per_talk_frame_whatever_the_alignment(shift):
    turns = [(0, 75 * FRAME_SAMPLES), (120 * FRAME_SAMPLES, 170 * FRAME_SAMPLES)]
    voice = Voice(440, turns, 200 * FRAME_SAMPLES)
    voice.start()
    received = np.concatenate([np.zeros(shift, dtype=np.int16), play(voice, 200)])
    counter = ToneCounter(440)
    for block in np.array_split(received, 333):  # blocks of any size
        counter.feed(block)
    assert counter.tone_frames == pytest.approx(voice.talk_frames, abs=1)
    assert counter.voiced_frames >= counter.tone_frames
    other = ToneCounter(550)
    other.feed(received)
    assert other.tone_frames == 0
