"""AudioLoopbackProcessor: input audio comes back out unchanged."""

from pipecat.frames.frames import InputAudioRawFrame, OutputAudioRawFrame, TextFrame
from pipecat.tests.utils import run_test

from processors import AudioLoopbackProcessor


async def test_input_audio_goes_back_out_unchanged():
    audio = bytes(range(256)) * 15  # 3840 bytes: 40 ms of 48 kHz mono int16
    down, _ = await run_test(
        AudioLoopbackProcessor(),
        frames_to_send=[
            InputAudioRawFrame(audio=audio, sample_rate=48000, num_channels=1),
            TextFrame("kept"),
        ],
        expected_down_frames=[OutputAudioRawFrame, TextFrame],
    )
    assert down[0].audio == audio
    assert (down[0].sample_rate, down[0].num_channels) == (48000, 1)
    assert down[1].text == "kept"
