"""A fake Daily REST API: real HTTP on 127.0.0.1, the documented request/response shapes.

Routes: `POST /rooms`, `GET /rooms/{name}`, `DELETE /rooms/{name}`, `POST /meeting-tokens`,
with bearer-key checking. `fail` switches a route to answer 500, hang past the client's
timeout, or return a body that is not the documented shape. Room URLs point at
127.0.0.1, so a bot that tries to join one fails locally.
"""

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass, field

from aiohttp import web

from tests.conftest import free_port


@dataclass
class Request:
    """One request the fake received."""

    method: str
    path: str
    authorization: str | None
    body: dict | None


@dataclass
class FakeDaily:
    """The fake API's state; tests read `requests` and `rooms`, and set `fail`."""

    api_key: str = "daily-test-key-do-not-log"
    rooms: dict[str, dict] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    fail: dict[str, str] = field(default_factory=dict)  # route -> "500" | "slow" | "malformed"
    url: str = ""

    def requests_to(self, method: str, path_prefix: str) -> list[Request]:
        """The requests received for a method and path prefix."""
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def deleted_rooms(self) -> list[str]:
        """Names of rooms deleted through the API."""
        return [r.path.removeprefix("/rooms/") for r in self.requests_to("DELETE", "/rooms/")]


def _app(state: FakeDaily) -> web.Application:
    async def record(request: web.Request) -> web.Response | None:
        body = await request.json() if request.can_read_body else None
        state.requests.append(
            Request(request.method, request.path, request.headers.get("Authorization"), body)
        )
        if request.headers.get("Authorization") != f"Bearer {state.api_key}":
            return web.json_response(
                {"error": "authentication-error", "info": "bad API key"}, status=401
            )
        route = f"{request.method} {request.match_info.route.resource.canonical}"
        match state.fail.get(route):
            case "500":
                return web.json_response({"error": "server-error"}, status=500)
            case "slow":
                await asyncio.sleep(12)  # longer than the 10 s client timeout
            case "malformed":
                return web.json_response({"unexpected": True})
        return None

    async def create_room(request: web.Request) -> web.Response:
        if failed := await record(request):
            return failed
        body = state.requests[-1].body or {}
        name = body.get("name") or uuid.uuid4().hex
        room = {
            "id": str(uuid.uuid4()),
            "name": name,
            "api_created": True,
            "privacy": body.get("privacy", "public"),
            "url": f"http://127.0.0.1:9/{name}",
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "config": body.get("properties", {}),
        }
        state.rooms[name] = room
        return web.json_response(room)

    async def get_room(request: web.Request) -> web.Response:
        if failed := await record(request):
            return failed
        room = state.rooms.get(request.match_info["name"])
        if room is None:
            return web.json_response({"error": "not-found"}, status=404)
        return web.json_response(room)

    async def delete_room(request: web.Request) -> web.Response:
        if failed := await record(request):
            return failed
        name = request.match_info["name"]
        if state.rooms.pop(name, None) is None:
            return web.json_response({"error": "not-found"}, status=404)
        return web.json_response({"deleted": True, "name": name})

    async def meeting_token(request: web.Request) -> web.Response:
        if failed := await record(request):
            return failed
        properties = (state.requests[-1].body or {}).get("properties", {})
        if properties.get("room_name") not in state.rooms:
            return web.json_response({"error": "invalid-request-error"}, status=400)
        return web.json_response({"token": f"daily-token-{uuid.uuid4().hex}"})

    app = web.Application()
    app.router.add_post("/rooms", create_room)
    app.router.add_get("/rooms/{name}", get_room)
    app.router.add_delete("/rooms/{name}", delete_room)
    app.router.add_post("/meeting-tokens", meeting_token)
    return app


class FakeDailyServer:
    """Runs the fake on 127.0.0.1 in a thread of its own: `with FakeDailyServer() as daily:`."""

    def __init__(self):
        self.state = FakeDaily()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def __enter__(self) -> FakeDaily:
        self._thread.start()
        port = free_port()
        asyncio.run_coroutine_threadsafe(self._start(port), self._loop).result(10)
        self.state.url = f"http://127.0.0.1:{port}"
        return self.state

    async def _start(self, port: int):
        self._runner = web.AppRunner(_app(self.state))
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(20)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
