"""Every Pipecat private in transports/pipecat_internals.py still exists, and behaves.

When a Pipecat upgrade moves one, this fails naming it: fix pipecat_internals.py (and
only it) against the new version.
"""

import inspect
from importlib.metadata import version

import daily as daily_python
import pytest
from aiortc import RTCPeerConnection
from pipecat.transports.daily.transport import DailyTransport, DailyTransportClient
from pipecat.transports.livekit.transport import LiveKitTransport, LiveKitTransportClient
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection

from transports import pipecat_internals
from transports.livekit import EchoLiveKitTransport
from transports.media import NO_AUDIO

INSTALLED = version("pipecat-ai")


def moved(where: str, name: str) -> str:
    return (
        f"Pipecat private {where}.{name} is gone or changed: transports/pipecat_internals.py "
        f"was written against pipecat-ai {pipecat_internals.PIPECAT_VERSION}, "
        f"pipecat-ai {INSTALLED} is installed"
    )


OWNERS = {
    "DailyTransport (instance)": lambda: DailyTransport("https://x.daily.co/y", None, "bot"),
    "LiveKitTransport (instance)": lambda: LiveKitTransport("ws://127.0.0.1:9", "t", "room"),
    "LiveKitTransportClient": lambda: LiveKitTransportClient,
    "SmallWebRTCConnection (instance)": lambda: SmallWebRTCConnection(),
}


@pytest.mark.parametrize(
    ("where", "name"),
    [(where, name) for where, names in pipecat_internals.PRIVATES.items() for name in names],
)
def test_each_private_is_still_there(where, name):
    owner = OWNERS[where]()
    assert hasattr(owner, name), moved(where, name)


def test_every_private_listed_is_checked():
    assert set(OWNERS) == set(pipecat_internals.PRIVATES)


def test_livekit_registers_its_data_listener_by_attribute_at_setup():
    # intercept_livekit_data_packets relies on setup() looking the listener up then.
    source = inspect.getsource(LiveKitTransportClient.setup)
    assert 'self.room.on("data_received")(self._on_data_received_wrapper)' in source, moved(
        "LiveKitTransportClient.setup", "_on_data_received_wrapper registration"
    )
    transport = EchoLiveKitTransport("ws://127.0.0.1:9", "t", "room", NO_AUDIO)
    handler = transport._client._on_data_received_wrapper
    assert handler.__func__ is EchoLiveKitTransport._on_data_packet


def test_daily_delivers_app_messages_through_the_event_handler_interface():
    # intercept_daily_app_messages replaces the client's EventHandler method by name.
    assert issubclass(DailyTransportClient, daily_python.EventHandler)
    assert "on_app_message" in vars(daily_python.EventHandler), moved(
        "daily.EventHandler", "on_app_message"
    )
    assert "on_app_message" in vars(DailyTransportClient), moved(
        "DailyTransportClient", "on_app_message"
    )


async def test_smallwebrtc_adds_exactly_one_message_listener_per_data_channel():
    # transports.webrtc.DataChannelRouter takes that listener over (keepalives, signalling).
    connection = SmallWebRTCConnection()
    other = RTCPeerConnection()
    channel = other.createDataChannel("x")
    connection.pc.emit("datachannel", channel)
    assert len(channel.listeners("message")) == 1, moved(
        "SmallWebRTCConnection", "datachannel 'message' listener"
    )
    await other.close()
    await connection.pc.close()
