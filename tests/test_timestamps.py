"""Where the pong's two times are taken, on each transport's code path (issue 15 point 1).

`server_receive_time`: the first moment the agent's code sees the message (local WebRTC:
aiortc's data-channel listener, before decoding; Daily: daily-python's app-message
callback, on its thread; LiveKit: the room's "data_received" event). `server_send_time`:
right before the SDK's send (local WebRTC: right before Pipecat encodes the message
for aiortc's `RTCDataChannel.send`; Daily and LiveKit: in the output's `send_message`).
The pipeline in between is the real one: transport input -> a spy -> pong processor ->
transport output. Daily and LiveKit run without a server: their SDK callbacks are driven
directly with a message, and the SDK send is captured.
"""

import asyncio
import json
import threading
import time
from types import SimpleNamespace

import pytest
from aiortc import RTCPeerConnection
from pipecat.frames.frames import (
    Frame,
    InputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.daily.transport import DailyTransportClient
from pipecat.transports.livekit.transport import LiveKitTransportClient
from pipecat.transports.smallwebrtc import connection as smallwebrtc_connection
from pipecat.transports.smallwebrtc.transport import SmallWebRTCOutputTransport

from agent_core import PONG_TO_STAMP
from processors import PongProcessor
from transports import daily, livekit, pipecat_internals, webrtc
from transports.media import NO_AUDIO

PING = {"type": "ping", "timestamp": 1.25, "seq": 9}


class Spy(FrameProcessor):
    """Notes when the ping reaches the processors, then passes it on."""

    def __init__(self):
        super().__init__(enable_direct_mode=True)
        self.seen_at: list[float] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, InputTransportMessageFrame):
            self.seen_at.append(time.time())
        await self.push_frame(frame, direction)


def pipeline(transport, reply_frame=None) -> Spy:
    spy = Spy()
    kwargs = {"reply_frame": reply_frame} if reply_frame else {}
    pong = PongProcessor(enable_direct_mode=True, **kwargs)
    transport.input().link(spy)
    spy.link(pong)
    pong.link(transport.output())
    return spy


def assert_in_order(start, pong, spy, sent_at, end):
    assert start <= pong["server_receive_time"] <= spy.seen_at[0]
    assert spy.seen_at[0] <= pong["server_send_time"] <= sent_at <= end
    assert (pong["client_timestamp"], pong["seq"], pong["message_count"]) == (1.25, 9, 1)


async def test_webrtc_stamps_at_the_data_channel_before_decoding_and_before_encoding(
    monkeypatch,
):
    connection = webrtc.EchoWebRTCConnection()
    transport = webrtc.create_transport(connection, NO_AUDIO)
    spy = pipeline(transport)
    connection.messages.deliver_to(transport.input().receive_app_message)
    decoded_at, sending_at, sent = [], [], []

    class TimedJson:
        @staticmethod
        def loads(text):
            decoded_at.append(time.time())
            return json.loads(text)

        @staticmethod
        def dumps(message):  # Pipecat's encoding, right before aiortc's send
            sent.append((time.time(), json.dumps(message)))
            return sent[-1][1]

    pipecat_send = SmallWebRTCOutputTransport.send_message

    async def send_message(self, frame):
        sending_at.append(time.time())
        await pipecat_send(self, frame)

    monkeypatch.setattr(webrtc, "json", TimedJson)
    monkeypatch.setattr(smallwebrtc_connection, "json", TimedJson)
    monkeypatch.setattr(SmallWebRTCOutputTransport, "send_message", send_message)
    other = RTCPeerConnection()
    channel = other.createDataChannel("x")
    connection.pc.emit("datachannel", channel)

    start = time.time()
    channel.emit("message", json.dumps(PING))  # aiortc's data-channel event
    end = time.time()

    [(sent_at, text)] = sent  # sent in the same turn
    pong = json.loads(text)
    assert_in_order(start, pong, spy, sent_at, end)
    assert pong["server_receive_time"] <= decoded_at[0]
    assert sending_at[0] <= pong["server_send_time"]  # after Pipecat's output took it
    await other.close()
    await connection.pc.close()


async def test_webrtc_stamps_only_the_pong_of_its_own_send():
    connection = webrtc.EchoWebRTCConnection()
    pong = {"type": "pong", "server_send_time": 0.0}
    frame = OutputTransportMessageUrgentFrame(message=pong)
    frame.metadata[PONG_TO_STAMP] = pong
    with connection.stamping(frame):
        connection.send_app_message(pong)
    assert pong["server_send_time"] > 0
    stamped = pong["server_send_time"]
    connection.send_app_message({"type": "other"})  # outside the block: no stamp
    assert pong["server_send_time"] == stamped
    await connection.pc.close()


async def test_daily_stamps_in_daily_pythons_callback_thread_and_at_the_send(monkeypatch):
    transport = daily.create_transport("https://x.daily.co/room", None, "bot", NO_AUDIO)
    spy = pipeline(transport, daily.reply_frame)
    sent = []

    async def send_message(client, frame):
        sent.append((time.time(), frame.participant_id, json.loads(json.dumps(frame.message))))

    monkeypatch.setattr(DailyTransportClient, "send_message", send_message)
    client = pipecat_internals.sdk_client(transport)

    start = time.time()
    # What daily-python does for an app message: call on_app_message on its own thread.
    thread = threading.Thread(target=client.on_app_message, args=(dict(PING), "alice"))
    thread.start()
    thread.join()
    for _ in range(100):
        if sent:
            break
        await asyncio.sleep(0.01)
    end = time.time()

    [(sent_at, participant, pong)] = sent
    assert participant == "alice"
    assert_in_order(start, pong, spy, sent_at, end)


async def test_livekit_stamps_in_the_rooms_data_event_and_at_the_send(monkeypatch):
    transport = livekit.create_transport("ws://127.0.0.1:9", "t", "room", NO_AUDIO)
    spy = pipeline(transport, livekit.reply_frame)
    sent = []

    async def send_data(client, data, participant_id=None):
        sent.append((time.time(), participant_id, json.loads(data)))

    monkeypatch.setattr(LiveKitTransportClient, "send_data", send_data)
    client = pipecat_internals.sdk_client(transport)
    # The listener Pipecat's client registers on the room at setup, with a data packet.
    packet = SimpleNamespace(
        data=json.dumps(PING).encode(), participant=SimpleNamespace(identity="bob")
    )

    start = time.time()
    client._on_data_received_wrapper(packet)
    end = time.time()

    [(sent_at, participant, pong)] = sent  # in the event's turn
    assert participant == "bob"
    assert_in_order(start, pong, spy, sent_at, end)


@pytest.mark.parametrize("junk", [b"\xff\xfe", b"[" * 5000, b"x" * (64 * 1024 + 1)])
async def test_livekit_junk_packets_are_dropped_and_the_next_ping_answered(monkeypatch, junk):
    transport = livekit.create_transport("ws://127.0.0.1:9", "t", "room", NO_AUDIO)
    pipeline(transport, livekit.reply_frame)
    sent = []

    async def send_data(client, data, participant_id=None):
        sent.append(json.loads(data))

    monkeypatch.setattr(LiveKitTransportClient, "send_data", send_data)
    client = pipecat_internals.sdk_client(transport)
    for data in (junk, json.dumps(PING).encode()):
        client._on_data_received_wrapper(SimpleNamespace(data=data, participant=None))
    assert [p["seq"] for p in sent] == [9]
