"""A bare aiortc echo peer (no Pipecat): the baseline the echo agent is measured against.

It speaks the same offer protocol as the agent (`POST /api/offer` with `{"sdp", "type"}`),
answers pings straight from the data-channel listener and sends received audio frames
back as they are decoded.

    python benchmarks/bare_echo.py --port 8090
"""

import argparse
import asyncio
import json
import time
import uuid

from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from transports.webrtc import restrict_ice_addresses


class EchoTrack(MediaStreamTrack):
    """Returns each received audio frame as soon as it is decoded."""

    kind = "audio"

    def __init__(self, source: MediaStreamTrack):
        super().__init__()
        self._source = source

    async def recv(self):
        return await self._source.recv()


async def offer(request: web.Request) -> web.Response:
    params = await request.json()
    pc = RTCPeerConnection()
    pcs: set = request.app["pcs"]
    pcs.add(pc)
    counts = {"pings": 0}

    @pc.on("datachannel")
    def on_datachannel(channel):
        @channel.on("message")
        def on_message(message):
            receive_time = time.time()
            try:
                data = json.loads(message)
            except ValueError:
                return
            if isinstance(data, dict) and data.get("type") == "ping":
                counts["pings"] += 1
                pong = {
                    "type": "pong",
                    "client_timestamp": data.get("timestamp"),
                    "server_receive_time": receive_time,
                    "server_send_time": time.time(),
                    "message_count": counts["pings"],
                }
                if "seq" in data:
                    pong["seq"] = data["seq"]
                channel.send(json.dumps(pong))

    @pc.on("track")
    def on_track(track):
        if track.kind == "audio":
            pc.addTrack(EchoTrack(track))

    @pc.on("connectionstatechange")
    async def on_state():
        if pc.connectionState in ("failed", "closed"):
            await pc.close()
            pcs.discard(pc)

    await pc.setRemoteDescription(RTCSessionDescription(params["sdp"], params["type"]))
    await pc.setLocalDescription(await pc.createAnswer())
    return web.json_response(
        {
            "sdp": pc.localDescription.sdp,
            "type": pc.localDescription.type,
            "pc_id": str(uuid.uuid4()),
        }
    )


async def health(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def on_shutdown(app: web.Application):
    await asyncio.gather(*(pc.close() for pc in app["pcs"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    restrict_ice_addresses(["127.0.0.1"])
    app = web.Application()
    app["pcs"] = set()
    app.router.add_post("/api/offer", offer)
    app.router.add_get("/health", health)
    app.on_shutdown.append(on_shutdown)
    web.run_app(app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
