"""A bare aiortc client peer for end-to-end message tests: one data channel, raw sends.

Independent of echo_bench on purpose: these tests send what no benchmark client would
(bytes, broken JSON, floods) and read every reply as it came.
"""

import asyncio
import json
import time
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription


class Peer:
    """A client peer connected to the agent's offer URL, with its data channel."""

    def __init__(self):
        self.pc = RTCPeerConnection()
        self.channel = self.pc.createDataChannel("tests")
        self.replies: asyncio.Queue[tuple[float, Any]] = asyncio.Queue()
        self.pc_id: str | None = None

        @self.channel.on("message")
        def on_message(message):
            self.replies.put_nowait((time.time(), json.loads(message)))

    async def connect(self, offer_url: str, open_within: float = 15.0) -> "Peer":
        """Offer, apply the answer, wait for the data channel to open."""
        opened = asyncio.Event()
        self.channel.on("open", opened.set)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = {"sdp": self.pc.localDescription.sdp, "type": "offer"}
        async with aiohttp.ClientSession() as http:
            async with http.post(offer_url, json=offer) as response:
                response.raise_for_status()
                answer = await response.json()
        self.pc_id = answer["pc_id"]
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        await asyncio.wait_for(opened.wait(), open_within)
        return self

    def send(self, message: Any) -> None:
        """Send a dict/list as JSON, a str or bytes as they are."""
        if not isinstance(message, str | bytes):
            message = json.dumps(message)
        self.channel.send(message)

    async def drain(self, within: float = 5.0) -> None:
        """Wait until aiortc has handed everything sent to the network."""
        deadline = time.monotonic() + within
        while self.channel.bufferedAmount > 0:  # noqa: ASYNC110 (aiortc's counter, no event at 0)
            if self.channel.readyState != "open" or time.monotonic() > deadline:
                raise AssertionError(f"data channel {self.channel.readyState}, send stalled")
            await asyncio.sleep(0.005)

    async def collect(self, done, within: float = 10.0, quiet: float = 0.5) -> list[Any]:
        """Replies until `done(replies)` holds (then `quiet` more seconds) or `within` s."""
        replies: list[Any] = []
        deadline = time.monotonic() + within
        satisfied_at = None
        while time.monotonic() < deadline:
            if satisfied_at is None and done(replies):
                satisfied_at = time.monotonic()
            if satisfied_at is not None and time.monotonic() - satisfied_at >= quiet:
                break
            try:
                _, reply = await asyncio.wait_for(self.replies.get(), 0.1)
                replies.append(reply)
            except TimeoutError:
                pass
        return replies

    async def close(self) -> None:
        """Close the peer connection."""
        await self.pc.close()
