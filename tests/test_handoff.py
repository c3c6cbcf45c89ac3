"""hand_downstream: a frame reaches the next processor as after push_frame."""

from pipecat.frames.frames import Frame, OutputTransportMessageUrgentFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from agent_core import hand_downstream


class Recorder(FrameProcessor):
    """Records what it processes."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.frames: list[tuple[Frame, FrameDirection]] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        self.frames.append((frame, direction))


async def test_a_direct_mode_receiver_has_processed_the_frame_when_it_returns():
    sender, receiver = FrameProcessor(), Recorder(enable_direct_mode=True)
    sender.link(receiver)
    pushed = []
    sender.add_event_handler("on_before_push_frame", lambda _p, frame: pushed.append(frame))
    frame = OutputTransportMessageUrgentFrame(message={"type": "pong"})

    await hand_downstream(sender, frame)

    assert receiver.frames == [(frame, FrameDirection.DOWNSTREAM)]
    assert pushed == []  # the sender's push bookkeeping is what it skips


async def test_an_error_in_the_receiver_is_its_own_not_the_senders(logs):
    class Failing(FrameProcessor):
        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            raise RuntimeError("send failed")

    sender, receiver = FrameProcessor(), Failing(enable_direct_mode=True)
    sender.link(receiver)
    await hand_downstream(sender, OutputTransportMessageUrgentFrame(message={}))
    assert any("send failed" in line for line in logs)
