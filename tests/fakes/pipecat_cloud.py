"""A fake Pipecat Cloud REST API: a real aiohttp HTTP server on 127.0.0.1.

It serves what the echo agent uses, in Pipecat Cloud's shapes:
- public API:  POST /v1/public/{agent}/start           (Bearer public key)
- private API: DELETE /v1/agents/{agent}/sessions/{id} (Bearer private key)

`api_url` is the public base (`PIPECAT_CLOUD_API_URL`); the private base is next to it.
Switches make it fail (`fail_with`), hang (`delay`) or answer out of shape (`malformed`),
and `requests` records everything it received.
"""

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

Malformed = Literal["not-json", "no-session-id", "no-daily-room", "json-list"]


@dataclass
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any


@dataclass
class FakeSession:
    """A session the fake started (and maybe stopped)."""

    session_id: str
    agent_name: str
    body: Any
    daily_room: str | None
    daily_token: str | None
    daily_room_properties: dict | None
    stopped: bool = False


@dataclass
class FakePipecatCloud:
    """The fake API; `async with FakePipecatCloud() as cloud:` serves it on a free port."""

    public_key: str = "pk_fake_public_key_0123456789"
    private_key: str = "sk_fake_private_key_0123456789"
    agents: set[str] = field(default_factory=lambda: {"echo-agent"})
    fail_with: int | None = None
    delay: float = 0.0
    malformed: Malformed | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    sessions: dict[str, FakeSession] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _port: int = 0

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        """The public API base, as `PIPECAT_CLOUD_API_URL` takes it."""
        return f"{self.base_url}/v1/public"

    @property
    def private_api_url(self) -> str:
        """The private API base."""
        return f"{self.base_url}/v1"

    def running(self) -> list[FakeSession]:
        """Sessions started and not stopped."""
        return [s for s in self.sessions.values() if not s.stopped]

    async def start(self) -> "FakePipecatCloud":
        """Serve on a free 127.0.0.1 port."""
        app = web.Application()
        app.router.add_post("/v1/public/{agent}/start", self._start)
        app.router.add_delete("/v1/agents/{agent}/sessions/{session_id}", self._stop)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        """Stop serving."""
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "FakePipecatCloud":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _record(self, request: web.Request) -> RecordedRequest:
        try:
            body = await request.json() if request.can_read_body else None
        except ValueError:
            body = await request.text()
        recorded = RecordedRequest(request.method, request.path, dict(request.headers), body)
        self.requests.append(recorded)
        return recorded

    async def _switches(self) -> web.Response | None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_with is not None:
            return web.json_response(
                {"error": "Internal server error", "code": str(self.fail_with)},
                status=self.fail_with,
            )
        return None

    @staticmethod
    def _authorized(request: web.Request, key: str) -> bool:
        return request.headers.get("Authorization") == f"Bearer {key}"

    async def _start(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        if failure := await self._switches():
            return failure
        if not self._authorized(request, self.public_key):
            return web.json_response({"error": "Unauthorized", "code": "401"}, status=401)
        agent = request.match_info["agent"]
        if agent not in self.agents:
            return web.json_response(
                {"error": f"Service {agent} not found", "code": "PCC-404"}, status=404
            )
        payload = recorded.json
        if not isinstance(payload, dict) or not isinstance(
            payload.get("createDailyRoom", False), bool
        ):
            return web.json_response({"error": "Invalid request", "code": "400"}, status=400)

        session_id = str(uuid.uuid4())
        create_room = payload.get("createDailyRoom", False)
        room_name = uuid.uuid4().hex[:20]
        session = FakeSession(
            session_id=session_id,
            agent_name=agent,
            body=payload.get("body"),
            daily_room=f"https://cloud-fake.daily.co/{room_name}" if create_room else None,
            daily_token=f"fake-daily-token-{room_name}" if create_room else None,
            daily_room_properties=payload.get("dailyRoomProperties"),
        )
        self.sessions[session_id] = session
        answer: dict[str, Any] = {"sessionId": session_id}
        if create_room:
            answer.update(dailyRoom=session.daily_room, dailyToken=session.daily_token)

        match self.malformed:
            case "not-json":
                return web.Response(text="<html>Bad gateway</html>", content_type="text/html")
            case "json-list":
                return web.json_response([answer])
            case "no-session-id":
                answer.pop("sessionId")
            case "no-daily-room":
                answer.pop("dailyRoom", None)
        return web.json_response(answer)

    async def _stop(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        if failure := await self._switches():
            return failure
        if not self._authorized(request, self.private_key):
            return web.json_response({"error": "Unauthorized", "code": "401"}, status=401)
        session = self.sessions.get(request.match_info["session_id"])
        if session is None or session.stopped or session.agent_name != request.match_info["agent"]:
            return web.json_response({"error": "Session not found", "code": "404"}, status=404)
        session.stopped = True
        return web.json_response({"status": "terminated", "session_id": session.session_id})
