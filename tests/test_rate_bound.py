"""The per-session app-message rate bound, `MAX_MESSAGES_PER_SECOND` (issue 13 point 4).

Over the rate, a session's messages are dropped by the transport (local WebRTC and
LiveKit: before decoding; Daily: on daily-python's thread, before the hop to the event
loop), counted, and the sender gets at most one `rate limit` error a second. The unit
tests drive each transport's real message path with a fake clock; the end-to-end test
floods a real data channel of the real server and checks that another session is not
rate limited and that the figures reach `/rooms` and `/metrics`.
"""

import asyncio
import json
import threading
from types import SimpleNamespace

import pytest
from aiortc import RTCPeerConnection
from pipecat.transports.daily.transport import DailyTransportClient
from pipecat.transports.livekit.transport import LiveKitTransportClient

from agent_core import MessageBound
from processors import PongProcessor
from tests.conftest import run_server
from tests.peer import Peer
from tests.test_workers import metrics
from transports import daily, livekit, pipecat_internals, webrtc
from transports.media import NO_AUDIO


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ping(seq: int) -> dict:
    return {"type": "ping", "timestamp": 1.0, "seq": seq}


def is_rate_error(reply: dict) -> bool:
    return reply.get("type") == "error" and reply["error"].startswith("rate limit")


def test_the_bound_passes_a_seconds_worth_then_drops_and_refills():
    clock = Clock()
    bound = MessageBound(10, clock=clock)
    assert [bound.admit() for _ in range(12)] == [True] * 10 + [False] * 2
    assert bound.dropped == 2
    clock.now += 0.25  # a quarter of a second refills 2.5 messages
    assert [bound.admit() for _ in range(3)] == [True, True, False]
    clock.now += 60  # the bucket holds one second's worth, no more
    assert sum(bound.admit() for _ in range(20)) == 10
    assert bound.dropped == 2 + 1 + 10


def test_the_sender_is_told_at_most_once_a_second():
    clock = Clock()
    bound = MessageBound(5, clock=clock)
    notices = [bound.notice() for _ in range(3)]
    assert notices[0].error == (
        "rate limit: over 5 messages per second in this session, messages dropped"
    )
    assert notices[1:] == [None, None]
    clock.now += 0.99
    assert bound.notice() is None
    clock.now += 0.01
    assert bound.notice() is not None


# ---------------------------------------------------------------------------
# Each transport's message path, from the SDK's callback to the SDK's send.


def pipeline(transport, reply_frame=None):
    kwargs = {"reply_frame": reply_frame} if reply_frame else {}
    pong = PongProcessor(enable_direct_mode=True, **kwargs)
    transport.input().link(pong)
    pong.link(transport.output())


async def test_webrtc_drops_over_the_rate_before_decoding(monkeypatch):
    clock = Clock()
    bound = MessageBound(3, clock=clock)
    connection = webrtc.EchoWebRTCConnection()
    transport = webrtc.create_transport(connection, NO_AUDIO, bound)
    pipeline(transport)
    connection.messages.deliver_to(transport.input().receive_app_message)
    decoded, sent = [], []

    class CountingJson:
        @staticmethod
        def loads(text):
            decoded.append(text)
            return json.loads(text)

    monkeypatch.setattr(webrtc, "json", CountingJson)
    connection.send_app_message = lambda message: sent.append(json.loads(json.dumps(message)))
    other = RTCPeerConnection()
    channel = other.createDataChannel("x")
    connection.pc.emit("datachannel", channel)

    for seq in range(10):
        channel.emit("message", json.dumps(ping(seq)))
    channel.emit("message", "ping: keepalive")  # exempt: Pipecat's liveness check
    assert [r.get("seq") for r in sent if r["type"] == "pong"] == [0, 1, 2]
    assert sum(map(is_rate_error, sent)) == 1
    assert len(decoded) == 3  # the 7 dropped were never decoded
    assert bound.dropped == 7
    assert connection._last_received_time is not None

    clock.now += 1.0  # refilled: answered again; a new flood gets one new error
    sent.clear()
    for seq in range(10, 20):
        channel.emit("message", json.dumps(ping(seq)))
    assert [r.get("seq") for r in sent if r["type"] == "pong"] == [10, 11, 12]
    assert sum(map(is_rate_error, sent)) == 1
    await other.close()
    await connection.pc.close()


async def test_daily_drops_on_daily_pythons_thread_and_tells_the_sender(monkeypatch):
    bound = MessageBound(2, clock=Clock())
    transport = daily.create_transport("https://x.daily.co/room", None, "bot", NO_AUDIO, bound)
    pipeline(transport, daily.reply_frame)
    sent = []

    async def send_message(client, frame):
        sent.append((frame.participant_id, json.loads(json.dumps(frame.message))))

    monkeypatch.setattr(DailyTransportClient, "send_message", send_message)
    client = pipecat_internals.sdk_client(transport)

    def flood():  # what daily-python does: on_app_message on its own thread
        for seq in range(6):
            client.on_app_message(ping(seq), "alice")

    thread = threading.Thread(target=flood)
    thread.start()
    thread.join()
    for _ in range(100):
        if len(sent) >= 3:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert [(who, r.get("seq")) for who, r in sent if r["type"] == "pong"] == [
        ("alice", 0),
        ("alice", 1),
    ]
    assert [who for who, r in sent if is_rate_error(r)] == ["alice"]
    assert bound.dropped == 4


async def test_livekit_drops_before_decoding_and_tells_the_sender(monkeypatch):
    bound = MessageBound(2, clock=Clock())
    transport = livekit.create_transport("ws://127.0.0.1:9", "t", "room", NO_AUDIO, bound)
    pipeline(transport, livekit.reply_frame)
    sent = []

    async def send_data(client, data, participant_id=None):
        sent.append((participant_id, json.loads(data)))

    monkeypatch.setattr(LiveKitTransportClient, "send_data", send_data)
    client = pipecat_internals.sdk_client(transport)
    for seq in range(5):
        packet = SimpleNamespace(
            data=json.dumps(ping(seq)).encode(), participant=SimpleNamespace(identity="bob")
        )
        client._on_data_received_wrapper(packet)
    client._on_data_received_wrapper(
        SimpleNamespace(data=b"[" * 5000, participant=None)  # dropped unread: no error
    )
    assert [(who, r.get("seq")) for who, r in sent if r["type"] == "pong"] == [
        ("bob", 0),
        ("bob", 1),
    ]
    assert [who for who, r in sent if is_rate_error(r)] == ["bob"]
    assert bound.dropped == 4


# ---------------------------------------------------------------------------
# End to end: the real server, real data channels.

RATE = 50


@pytest.fixture(scope="module")
def bounded(tmp_path_factory):
    with run_server(
        tmp_path_factory.mktemp("bounded"), MAX_MESSAGES_PER_SECOND=str(RATE), JOIN_TIMEOUT="10"
    ) as running:
        yield running


async def test_a_flooding_session_is_bounded_and_another_is_not(bounded):
    flooder = await Peer().connect(f"{bounded.url}/api/offer")
    other = await Peer().connect(f"{bounded.url}/api/offer")
    sent = 20 * RATE
    for seq in range(sent):
        flooder.send(ping(seq))
    await flooder.drain()
    # The other session's own budget is untouched: RATE pings in one burst, all answered.
    for seq in range(RATE):
        other.send(ping(seq))
    others = await other.collect(lambda r: len(r) >= RATE, within=10)
    assert sorted(r["seq"] for r in others) == list(range(RATE))

    replies = await flooder.collect(lambda r: False, within=3)
    pongs = [r for r in replies if r["type"] == "pong"]
    errors = [r for r in replies if is_rate_error(r)]
    # A second's worth in the burst, plus what the bucket refilled while the flood lasted.
    assert RATE <= len(pongs) < sent // 2
    assert 1 <= len(errors) <= 4  # one per second of flooding, at most
    assert len(pongs) + len(errors) == len(replies)

    await asyncio.sleep(1.0)  # refilled: the flooder is answered again
    flooder.send(ping(-1))
    [answer] = await flooder.collect(lambda r: len(r) >= 1, within=5, quiet=0)
    assert answer["seq"] == -1

    [room] = [r for r in bounded.rooms() if r["id"] == flooder.pc_id]
    assert room["messages_dropped"] == sent - len(pongs)
    assert room["pings_answered"] == len(pongs) + 1
    values = metrics(bounded)
    assert values[("echo_messages_dropped_total", ())] == sent - len(pongs)
    await flooder.close()
    await other.close()


def test_a_rate_below_one_is_refused_at_start(tmp_path):
    with pytest.raises(RuntimeError, match="max_messages_per_second"):
        with run_server(tmp_path, MAX_MESSAGES_PER_SECOND="0"):
            pass
