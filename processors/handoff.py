"""Handing a frame on the ping path to the next processor."""

from pipecat.frames.frames import Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


async def hand_downstream(processor: FrameProcessor, frame: Frame) -> None:
    """Queue `frame` on the processor after `processor`, as `push_frame` would.

    `push_frame` also runs the sender's push events, formats a trace line and records
    the push for observers, on every hop. On the ping path that bookkeeping was a
    third of what the agent adds to a round trip on loopback (benchmarks/RESULTS.md),
    so pings and pongs skip it. The next processor handles the frame exactly as after
    `push_frame`: at once in direct mode, through its queue otherwise, and observers
    still see it processed.
    """
    receiver = processor.next
    if receiver is not None:
        await receiver.queue_frame(frame, FrameDirection.DOWNSTREAM)
