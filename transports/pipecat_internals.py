"""Every Pipecat private the agent relies on, in one place. Written against pipecat-ai 1.14.0.

Pipecat's Daily and LiveKit transports build their SDK client, their input and their
output inside their own constructors and offer no seam to pass others in. The echo
agent needs three things there that only these privates give:

- its own input and output processors (`_client`, `_params`, `_input`, `_output`, and
  `BaseTransport._input_name` / `_output_name`): the input hands app messages downstream
  only, the output stamps a pong's `server_send_time` right before the SDK's send;
- the SDK's own message callback, to stamp `server_receive_time` the moment the SDK
  hands a message over and to skip Pipecat's per-message task/queue hops:
  daily-python calls `DailyTransportClient.on_app_message` by name on its thread (the
  `daily.EventHandler` interface, public), and LiveKit's `Room` calls the listener
  `LiveKitTransportClient._on_data_received_wrapper` that Pipecat registers in
  `LiveKitTransportClient.setup` (private);
- local WebRTC: `transports/webrtc.py` uses `SmallWebRTCConnection.pc` and the public
  `SmallWebRTCClient`/`SmallWebRTCInputTransport`/`SmallWebRTCOutputTransport`; one private:
  the connection's `pc_id` (which lets a client renegotiate and trickle candidates into a
  session) is minted anew with 128 random bits (`mint_peer_id`, from the connection's
  `_initialize`, which also runs on an ICE restart), where Pipecat's carries a uuid4 (122).
  It does rely on one behaviour: the connection's own "datachannel" listener adds
  exactly one "message" listener to the channel (its keepalive and signalling handling).

`PRIVATES` lists each one; tests/test_pipecat_privates.py fails, naming it, when a
Pipecat upgrade moves one. Nothing else in the project touches a Pipecat private.
"""

import secrets
from collections.abc import Callable
from typing import Any

from pipecat.processors.frame_processor import FrameProcessor
from pipecat.transports.base_transport import BaseTransport
from pipecat.transports.daily.transport import DailyTransport
from pipecat.transports.livekit.transport import LiveKitTransport
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection

__all__ = [
    "PIPECAT_VERSION",
    "PRIVATES",
    "intercept_daily_app_messages",
    "intercept_livekit_data_packets",
    "mint_peer_id",
    "own_input",
    "own_output",
    "sdk_client",
]

PIPECAT_VERSION = "1.14.0"

PRIVATES: dict[str, tuple[str, ...]] = {
    # where -> the names used there (instance attributes of a constructed object, or
    # methods of the class)
    "DailyTransport (instance)": (
        "_client",
        "_params",
        "_input",
        "_output",
        "_input_name",
        "_output_name",
    ),  # fmt: skip
    "LiveKitTransport (instance)": (
        "_client",
        "_params",
        "_input",
        "_output",
        "_input_name",
        "_output_name",
    ),  # fmt: skip
    "LiveKitTransportClient": ("_on_data_received_wrapper",),
    "SmallWebRTCConnection (instance)": ("_initialize", "_pc_id"),
}

InputFactory = Callable[[Any, Any, str | None], FrameProcessor]
"""Builds an input or output processor from (client, params, name)."""


def own_input(transport: DailyTransport | LiveKitTransport, make: InputFactory):
    """`transport.input()` built by `make` instead of Pipecat's class (once, then cached)."""
    if transport._input is None:
        transport._input = make(transport._client, transport._params, _name(transport, "input"))
    return transport._input


def own_output(transport: DailyTransport | LiveKitTransport, make: InputFactory):
    """`transport.output()` built by `make` instead of Pipecat's class (once, then cached)."""
    if transport._output is None:
        transport._output = make(transport._client, transport._params, _name(transport, "output"))
    return transport._output


def mint_peer_id(connection: SmallWebRTCConnection) -> None:
    """Give `connection` a `pc_id` with 128 random bits (`<name>-<32 hex>`)."""
    connection._pc_id = f"{connection.name}-{secrets.token_hex(16)}"


def sdk_client(transport: DailyTransport | LiveKitTransport):
    """Pipecat's SDK client of a transport, for tests that drive its SDK callbacks."""
    return transport._client


def _name(transport: BaseTransport, side: str) -> str | None:
    return transport._input_name if side == "input" else transport._output_name


def intercept_daily_app_messages(
    transport: DailyTransport, handler: Callable[[Any, str], None]
) -> None:
    """daily-python's app-message callback goes to `handler(message, sender)` instead.

    It is called on daily-python's thread. daily-python looks `on_app_message` up by name
    on the event handler (its client) for each message, so an instance attribute takes it.
    """
    transport._client.on_app_message = handler


def intercept_livekit_data_packets(
    transport: LiveKitTransport, handler: Callable[[Any], None]
) -> None:
    """LiveKit's "data_received" event goes to `handler(packet)` instead of Pipecat's.

    Pipecat's client registers `self._on_data_received_wrapper` on the room in `setup()`
    (which runs later, when the pipeline starts), so an instance attribute set now is
    what gets registered. It is called on the event loop with an `rtc.DataPacket`.
    """
    transport._client._on_data_received_wrapper = handler
