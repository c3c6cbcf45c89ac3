"""Audio loopback: every received audio frame goes straight back out."""

from pipecat.frames.frames import Frame, InputAudioRawFrame, OutputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


class AudioLoopbackProcessor(FrameProcessor):
    """Turns each `InputAudioRawFrame` into an `OutputAudioRawFrame` of the same audio.

    Sample rate and channels are kept, so with matching transport rates nothing is
    resampled on the loop path.
    """

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Send input audio back; forward every other frame."""
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            await self.push_frame(
                OutputAudioRawFrame(
                    audio=frame.audio,
                    sample_rate=frame.sample_rate,
                    num_channels=frame.num_channels,
                )
            )
            return
        await self.push_frame(frame, direction)
