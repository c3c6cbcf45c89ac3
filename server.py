"""The echo agent's HTTP API: rooms on demand, local WebRTC offers, running sessions.

`POST /connect` makes a room per platform and starts one bot in each; `POST /api/offer`
answers a local WebRTC peer with a bot; `GET /rooms` lists the running sessions.
No pipeline code and no platform SDK calls here: this asks `transports/` and `bot.py`.
"""

import argparse
import asyncio
import secrets
import signal
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import aiohttp
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from loguru import logger
from pipecat.runner.types import DailyRunnerArguments, LiveKitRunnerArguments, RunnerArguments
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field

import guards
from config import PlatformNotConfiguredError, Settings, configure_logging, get_settings
from guards import errors
from metrics import AgentMetrics
from pool import SessionStats, WorkerError, WorkerPool
from processors import DEFAULT_TONE_HZ, MAX_TONE_HZ, MIN_TONE_HZ, EchoMode
from transports import daily, livekit, pipecat_cloud
from transports.errors import InvalidOfferError, PlatformAPIError

Platform = Literal["daily", "livekit", "webrtc"]
CLOUD_PLATFORMS: tuple[Platform, ...] = ("daily", "livekit")
SHUTDOWN_TIMEOUT_SECS = 5.0


class CapacityError(Exception):
    """`MAX_SESSIONS` bots are running."""


class SessionNotFoundError(Exception):
    """No running session has this id."""


# ---------------------------------------------------------------------------
# Running sessions


@dataclass
class Session:
    """One room and its bot, from `/connect` (or an offer) until the bot ends."""

    id: str
    platform: Platform
    room: str
    mode: EchoMode
    tone_hz: float
    expires_at: float
    created_at: float = field(default_factory=time.time)
    stats: SessionStats = field(default_factory=SessionStats)
    task: asyncio.Task | None = None
    on_end: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    pipecat_cloud_session_id: str | None = None

    def body(self) -> dict:
        """The bot's session body: what it echoes."""
        return {"mode": self.mode.value, "tone_hz": self.tone_hz}

    def describe(self) -> dict:
        """What `/rooms` shows of the session (never a token)."""
        return {
            "id": self.id,
            "platform": self.platform,
            "room": self.room,
            "mode": self.mode.value,
            "tone_hz": self.tone_hz if self.mode == EchoMode.TONE else None,
            "status": self.stats.status,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "clients": self.stats.clients,
            "pings_answered": self.stats.pings_answered,
            "messages_dropped": self.stats.messages_dropped,
            "worker_pid": self.stats.worker_pid,
            "pipecat_cloud_session_id": self.pipecat_cloud_session_id,
        }


class SessionRegistry:
    """The running bot tasks; each removes itself, and cleans up its room, when it ends."""

    def __init__(self, max_sessions: int):
        self._max_sessions = max_sessions
        self._sessions: dict[str, Session] = {}
        self._reserved = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._sessions

    def list(self) -> list[Session]:
        """The sessions, oldest first."""
        return sorted(self._sessions.values(), key=lambda s: s.created_at)

    def get(self, session_id: str) -> Session:
        """The session with this id.

        Raises:
            SessionNotFoundError: no such session is running.
        """
        try:
            return self._sessions[session_id]
        except KeyError:
            raise SessionNotFoundError(session_id) from None

    def reserve(self, count: int) -> "_Reservation":
        """Hold `count` slots while rooms are made, so concurrent calls cannot overshoot.

        Raises:
            CapacityError: the slots are not free.
        """
        if len(self._sessions) + self._reserved + count > self._max_sessions:
            raise CapacityError()
        return _Reservation(self, count)

    def start(self, session: Session, run: Awaitable[Any]) -> None:
        """Register the session and run its bot as a task."""
        self._sessions[session.id] = session
        session.task = asyncio.create_task(self._run(session, run), name=f"session-{session.id}")

    async def end(self, session_id: str) -> None:
        """End one session early and wait until it is cleaned up.

        Raises:
            SessionNotFoundError: no such session is running.
        """
        session = self.get(session_id)
        if session.task:
            session.stats.end_reason = session.stats.end_reason or "ended by request"
            session.task.cancel()
            await asyncio.wait([session.task])

    async def shutdown(self) -> None:
        """End every session; rooms of bots that do not stop in time are deleted anyway."""
        sessions = list(self._sessions.values())
        for session in sessions:
            session.stats.end_reason = session.stats.end_reason or "server shutting down"
            if session.task:
                session.task.cancel()
        tasks = [s.task for s in sessions if s.task]
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_TIMEOUT_SECS)
        for session in sessions:
            if session.task and not session.task.done():
                logger.warning(f"Session {session.id} did not stop in time; cleaning up")
                await self._cleanup(session)

    async def _run(self, session: Session, run: Awaitable[Any]) -> None:
        with logger.contextualize(room=session.room, platform=session.platform):
            try:
                reason = await run
                logger.info(f"Session {session.id} ended: {reason}")
            except asyncio.CancelledError:
                logger.info(f"Session {session.id} cancelled: {session.stats.end_reason}")
            except Exception as e:
                logger.exception(f"Session {session.id} failed: {e}")
            finally:
                await asyncio.shield(self._cleanup(session))

    async def _cleanup(self, session: Session) -> None:
        """Forget the session and delete its room, once."""
        if self._sessions.pop(session.id, None) is None:
            return
        for cleanup in session.on_end:
            try:
                await cleanup()
            except Exception as e:
                logger.warning(f"Cleanup of session {session.id} failed: {e}")
        logger.info(f"Session {session.id} removed")


class _Reservation:
    def __init__(self, registry: SessionRegistry, count: int):
        self._registry = registry
        self._count = count

    def __enter__(self):
        self._registry._reserved += self._count
        return self

    def __exit__(self, *exc):
        self._registry._reserved -= self._count


# ---------------------------------------------------------------------------
# Request and response models


class OfferRequest(BaseModel):
    """An SDP offer, as Pipecat's SmallWebRTC clients send it."""

    sdp: str
    type: str
    pc_id: str | None = None
    restart_pc: bool | None = None
    request_data: Any | None = None


class OfferAnswer(BaseModel):
    """The SDP answer and the id of the peer connection."""

    sdp: str
    type: str
    pc_id: str


class IceCandidateModel(BaseModel):
    """One trickled ICE candidate."""

    candidate: str
    sdp_mid: str
    sdp_mline_index: int


class IcePatch(BaseModel):
    """Trickled ICE candidates for a peer connection."""

    pc_id: str
    candidates: list[IceCandidateModel]


class ConnectRequest(BaseModel):
    """What `POST /connect` may ask for."""

    platforms: list[Platform] | None = Field(default=None, min_length=1)
    mode: EchoMode = EchoMode.PONG
    tone_hz: float = Field(default=DEFAULT_TONE_HZ, ge=MIN_TONE_HZ, le=MAX_TONE_HZ)


class StartBody(BaseModel):
    """The session body of a `/start` call: what the bot echoes."""

    mode: EchoMode = EchoMode.PONG
    tone_hz: float = Field(default=DEFAULT_TONE_HZ, ge=MIN_TONE_HZ, le=MAX_TONE_HZ)


class StartRequest(BaseModel):
    """`POST /start`, as Pipecat's runner and `startBotAndConnect` send it.

    Other runner fields (`enableDefaultIceServers`, `createDailyRoom`, ...) are accepted
    and ignored: rooms are always created here.
    """

    transport: Platform = "webrtc"
    body: StartBody = Field(default_factory=StartBody)


class StartResponse(BaseModel):
    """The runner's `StartBotResult` fields for the transport started."""

    sessionId: str  # noqa: N815 (the runner's field names)
    dailyRoom: str | None = None  # noqa: N815
    dailyToken: str | None = None  # noqa: N815
    url: str | None = None
    token: str | None = None


class DailyCredentials(BaseModel):
    """How a client joins the Daily room."""

    room_url: str
    token: str
    expires_at: float


class LiveKitCredentials(BaseModel):
    """How a client joins the LiveKit room."""

    server_url: str
    room_name: str
    token: str
    expires_at: float


class WebRTCCredentials(BaseModel):
    """Where a client sends its offer for the reserved local session."""

    offer_url: str
    session_id: str
    expires_at: float


class ConnectResponse(BaseModel):
    """One entry per platform created."""

    daily: DailyCredentials | None = None
    livekit: LiveKitCredentials | None = None
    webrtc: WebRTCCredentials | None = None


class HealthResponse(BaseModel):
    """`GET /health`: the API answers."""

    status: Literal["ok"] = "ok"
    service: str = "echo-agent-api"


class RoomInfo(BaseModel):
    """One running session, as `GET /rooms` lists it (never a token)."""

    model_config = ConfigDict(extra="allow")  # a field added to Session.describe() shows too

    id: str
    platform: Platform
    room: str
    mode: EchoMode
    tone_hz: float | None
    status: str
    created_at: float
    expires_at: float
    clients: int
    pings_answered: int
    messages_dropped: int = 0
    worker_pid: int | None = None
    pipecat_cloud_session_id: str | None


class RoomsResponse(BaseModel):
    """`GET /rooms`: the running sessions, oldest first."""

    rooms: list[RoomInfo]


class DeletedResponse(BaseModel):
    """`DELETE /rooms/{id}`: the session that was ended."""

    deleted: str


class CandidatesAdded(BaseModel):
    """Trickled ICE candidates were handed to the peer connection."""

    status: Literal["ok"] = "ok"


# ---------------------------------------------------------------------------
# App


@asynccontextmanager
async def lifespan(app: FastAPI):
    """Shared clients live here; shutdown ends every bot and deletes its room."""
    settings = get_settings()
    app.state.registry = SessionRegistry(settings.max_sessions)
    app.state.pool = WorkerPool(settings.workers)
    app.state.http = aiohttp.ClientSession()
    app.state.metrics = AgentMetrics(
        lambda: [(s.platform, s.stats.status) for s in app.state.registry.list()],
        app.state.pool,
        settings.max_sessions,
    )
    await app.state.pool.start()
    try:
        yield
    finally:
        logger.info(f"Shutting down: ending {len(app.state.registry)} session(s)")
        await app.state.registry.shutdown()
        await app.state.pool.close()
        await app.state.http.close()


app = FastAPI(title="Echo agent", lifespan=lifespan)
guards.install(app)

SettingsDep = Annotated[Settings, Depends(get_settings)]


def _registry(request: Request) -> SessionRegistry:
    return request.app.state.registry


RegistryDep = Annotated[SessionRegistry, Depends(_registry)]


def _pool(request: Request) -> WorkerPool:
    return request.app.state.pool


PoolDep = Annotated[WorkerPool, Depends(_pool)]


@app.exception_handler(RequestValidationError)
async def _invalid_request(_request: Request, exc: RequestValidationError):
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        problems.append(f"{where}: {error.get('msg')}")
    return JSONResponse(status_code=400, content={"detail": "; ".join(problems)})


@app.exception_handler(PlatformNotConfiguredError)
async def _not_configured(_request: Request, exc: PlatformNotConfiguredError):
    return JSONResponse(status_code=400, content={"detail": str(exc)})


@app.exception_handler(PlatformAPIError)
async def _platform_failed(_request: Request, exc: PlatformAPIError):
    return JSONResponse(status_code=502, content={"detail": str(exc), "platform": exc.platform})


@app.exception_handler(InvalidOfferError)
async def _invalid_offer(_request: Request, exc: InvalidOfferError):
    return JSONResponse(status_code=400, content={"detail": f"invalid offer: {exc}"})


@app.exception_handler(CapacityError)
async def _capacity(request: Request, _exc: CapacityError):
    limit = get_settings().max_sessions
    return JSONResponse(
        status_code=503,
        headers={"Retry-After": "30"},
        content={"detail": f"session limit reached ({limit} running); retry later"},
    )


_WORKER_ERRORS = {"invalid_offer": 400, "not_found": 404, "conflict": 409}


@app.exception_handler(WorkerError)
async def _worker_refused(_request: Request, exc: WorkerError):
    status = _WORKER_ERRORS.get(exc.kind, 503)
    detail = f"invalid offer: {exc}" if exc.kind == "invalid_offer" else str(exc)
    return JSONResponse(status_code=status, content={"detail": detail})


@app.exception_handler(SessionNotFoundError)
async def _not_found(_request: Request, exc: SessionNotFoundError):
    return JSONResponse(status_code=404, content={"detail": f"no session {exc}"})


@app.get("/health")
async def health() -> HealthResponse:
    """Liveness: the API answers."""
    return HealthResponse()


# The benchmark page: committed static files (static/), no build step at run time.
STATIC_DIR = Path(__file__).resolve().parent / "static"
app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


@app.get("/", include_in_schema=False)
async def page() -> FileResponse:
    """The browser benchmark page."""
    # Cross-origin isolated: the page's performance.now() then ticks in 5 us, not 100 us.
    isolation = {
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Embedder-Policy": "require-corp",
    }
    return FileResponse(STATIC_DIR / "index.html", headers=isolation)


@app.get("/metrics", response_class=PlainTextResponse, responses=errors(503))
async def metrics(request: Request, pool: PoolDep) -> Response:
    """Prometheus metrics: sessions, pings, drops, workers, `/connect` latency."""
    await pool.refresh()
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@app.get("/rooms", responses=errors(503))
async def rooms(registry: RegistryDep, pool: PoolDep) -> RoomsResponse:
    """The running sessions."""
    await pool.refresh()
    return RoomsResponse(rooms=[RoomInfo(**s.describe()) for s in registry.list()])


@app.delete("/rooms/{session_id}", responses=errors(404))
async def delete_room(session_id: str, registry: RegistryDep) -> DeletedResponse:
    """End a session early: the bot leaves and its room is deleted."""
    await registry.end(session_id)
    return DeletedResponse(deleted=session_id)


# ---------------------------------------------------------------------------
# Local WebRTC


def _webrtc_session(settings: Settings, mode: EchoMode, tone_hz: float, session_id: str) -> Session:
    """A local session whose bot starts when its peer connection arrives."""
    return Session(
        id=session_id,
        platform="webrtc",
        room=session_id,
        mode=mode,
        tone_hz=tone_hz,
        expires_at=time.time() + settings.room_ttl,
        stats=SessionStats(status="waiting"),
    )


def _session_terms(session: Session, settings: Settings) -> dict:
    """How long a bot lives: its expiry and how long it waits for a client."""
    return {"expires_at": session.expires_at, "join_timeout": settings.join_timeout}


def _offer_fields(offer: OfferRequest) -> dict:
    return {
        "sdp": offer.sdp,
        "type": offer.type,
        "pc_id": offer.pc_id,
        "restart_pc": offer.restart_pc,
    }


@app.post("/api/offer", responses=errors(400, 404, 409, 503))
async def offer(
    body: OfferRequest,
    settings: SettingsDep,
    registry: RegistryDep,
    pool: PoolDep,
    mode: Annotated[EchoMode, Query()] = EchoMode.PONG,
    tone_hz: Annotated[float, Query(ge=MIN_TONE_HZ, le=MAX_TONE_HZ)] = DEFAULT_TONE_HZ,
) -> OfferAnswer:
    """Answer a local WebRTC peer and start its bot (mode from the query string)."""
    with registry.reserve(0 if body.pc_id else 1):
        session = _webrtc_session(settings, mode, tone_hz, "")
        new = {"body": session.body(), **_session_terms(session, settings)}
        answer = await pool.offer(None, _offer_fields(body), new=new)
        if answer["session_id"] not in registry:
            session.id = session.room = answer["session_id"]
            session.stats.status = "running"
            pool.adopt(session.id, session.stats)
            registry.start(session, pool.until_ended(session.id, session.stats))
    return OfferAnswer(sdp=answer["sdp"], type=answer["type"], pc_id=answer["pc_id"])


@app.patch("/api/offer", responses=errors(400, 404, 503))
async def offer_candidates(patch: IcePatch, pool: PoolDep) -> CandidatesAdded:
    """Add trickled ICE candidates to a peer connection."""
    await pool.add_candidates(patch.pc_id, [c.model_dump() for c in patch.candidates])
    return CandidatesAdded()


@app.post("/sessions/{session_id}/api/offer", responses=errors(400, 404, 409, 503))
async def session_offer(
    session_id: str, body: OfferRequest, registry: RegistryDep, pool: PoolDep
) -> OfferAnswer:
    """Answer the offer for a session reserved by `/connect` (or `/start`)."""
    session = registry.get(session_id)
    if session.platform != "webrtc":
        raise HTTPException(400, f"session {session_id} is a {session.platform} session")
    answer = await pool.offer(session_id, _offer_fields(body))
    return OfferAnswer(sdp=answer["sdp"], type=answer["type"], pc_id=answer["pc_id"])


@app.patch("/sessions/{session_id}/api/offer", responses=errors(400, 404, 503))
async def session_offer_candidates(
    session_id: str, patch: IcePatch, registry: RegistryDep, pool: PoolDep
) -> CandidatesAdded:
    """Add trickled ICE candidates for a reserved session's peer."""
    registry.get(session_id)
    return await offer_candidates(patch, pool)


# ---------------------------------------------------------------------------
# POST /connect


def _session_links(pointer: str) -> dict:
    """OpenAPI links from an answer naming a session to the routes that take its id."""
    session_id = {"session_id": f"$response.body#{pointer}"}
    offer = "#/paths/~1sessions~1{session_id}~1api~1offer/post"
    end = "#/paths/~1rooms~1{session_id}/delete"
    links = {
        "offer": {"operationRef": offer, "parameters": session_id},
        "end": {"operationRef": end, "parameters": session_id},
    }
    return {200: {"links": links}}


def new_room_name() -> str:
    """A unique room name, also among calls made in the same second."""
    # 128 random bits: a session id is what lets a client join (offer) or end (DELETE) it.
    return f"benchmark-{int(time.time())}-{secrets.token_hex(16)}"


@app.post(
    "/connect",
    response_model_exclude_none=True,
    responses={**errors(400, 502, 503), **_session_links("/webrtc/session_id")},
)
async def connect(
    request: Request,
    settings: SettingsDep,
    registry: RegistryDep,
    body: ConnectRequest | None = None,
) -> ConnectResponse:
    """Create a room on each platform asked for (default: all configured) with a bot."""
    body = body or ConnectRequest()
    platforms = list(dict.fromkeys(body.platforms or _default_platforms(settings)))
    outcome = "error"
    started_at = time.perf_counter()
    try:
        response, _ = await _create_sessions(request, settings, registry, platforms, body)
        outcome = "ok"
        return response
    finally:
        request.app.state.metrics.connect_seconds.labels(outcome).observe(
            time.perf_counter() - started_at
        )


@app.post(
    "/start",
    response_model_exclude_none=True,
    responses={**errors(400, 502, 503), **_session_links("/sessionId")},
)
async def start(
    request: Request, settings: SettingsDep, registry: RegistryDep, body: StartRequest
) -> StartResponse:
    """Pipecat's runner convention (`startBotAndConnect`): one session on one transport.

    A `webrtc` client then offers to `/sessions/{sessionId}/api/offer`.
    """
    options = ConnectRequest(mode=body.body.mode, tone_hz=body.body.tone_hz)
    response, [session] = await _create_sessions(
        request, settings, registry, [body.transport], options
    )
    if response.daily:
        return StartResponse(
            sessionId=session.id, dailyRoom=response.daily.room_url, dailyToken=response.daily.token
        )
    if response.livekit:
        return StartResponse(
            sessionId=session.id, url=response.livekit.server_url, token=response.livekit.token
        )
    return StartResponse(sessionId=session.id)


async def _create_sessions(
    request: Request,
    settings: Settings,
    registry: SessionRegistry,
    platforms: list[Platform],
    body: ConnectRequest,
) -> tuple[ConnectResponse, list[Session]]:
    """A room and a bot on each platform; all or nothing."""
    for platform in platforms:
        settings.require(platform)
    response = ConnectResponse()
    started: list[Session] = []
    with registry.reserve(len(platforms)):
        try:
            for platform in platforms:
                session, credentials = await _CREATORS[platform](request, settings, body)
                started.append(session)
                setattr(response, platform, credentials)
        except BaseException:
            for session in started:
                await registry.end(session.id)
            raise
    return response, started


def _default_platforms(settings: Settings) -> list[Platform]:
    return [p for p in CLOUD_PLATFORMS if settings.is_configured(p)] + ["webrtc"]


def _start_bot(
    request: Request, session: Session, runner_args: RunnerArguments, settings: Settings
) -> None:
    """Run the session's bot in a worker process (`SESSION_LAUNCHER=local`)."""
    request.app.state.registry.start(
        session,
        request.app.state.pool.run_session(
            runner_args,
            **_session_terms(session, settings),
            stats=session.stats,
            session_id=session.id,
        ),
    )


def _cloud_agent(request: Request, settings: Settings) -> pipecat_cloud.PipecatCloudAgent:
    settings.require("pipecat-cloud")
    private_key = settings.pipecat_cloud_private_api_key
    return pipecat_cloud.PipecatCloudAgent(
        settings.pipecat_cloud_api_key.get_secret_value(),
        settings.pipecat_cloud_agent_name,
        request.app.state.http,
        api_url=settings.pipecat_cloud_api_url,
        private_api_key=private_key.get_secret_value() if private_key else None,
    )


async def _start_cloud_bot(
    request: Request,
    settings: Settings,
    session: Session,
    *,
    livekit_room: dict | None = None,
) -> pipecat_cloud.PipecatCloudSession:
    """Start the session's bot on Pipecat Cloud (`SESSION_LAUNCHER=pipecat-cloud`).

    Without `livekit_room` ({"url", "room_name", "token"}) Pipecat Cloud makes a Daily room.

    The session stays listed until its expiry or `DELETE /rooms/{id}`, which stops the
    remote bot through the API: the public API does not report when a bot ends.
    """
    agent = _cloud_agent(request, settings)
    create_daily_room = livekit_room is None
    body = session.body() if create_daily_room else {**session.body(), "livekit": livekit_room}
    started = await agent.start(
        body, create_daily_room=create_daily_room, expires_at=session.expires_at
    )
    session.pipecat_cloud_session_id = started.session_id
    if create_daily_room:
        session.room = started.room_url.rstrip("/").rsplit("/", 1)[-1]

    async def until_expiry():
        await asyncio.sleep(max(0.0, session.expires_at - time.time()))

    async def stop():
        if time.time() < session.expires_at:
            await agent.stop(started.session_id)

    session.on_end.append(stop)
    request.app.state.registry.start(session, until_expiry())
    return started


async def _create_daily(request: Request, settings: Settings, body: ConnectRequest):
    if settings.session_launcher == "pipecat-cloud":
        return await _create_daily_on_pipecat_cloud(request, settings, body)
    rooms = daily.DailyRooms(
        settings.daily_api_key.get_secret_value(), settings.daily_api_url, request.app.state.http
    )
    room = await rooms.create(
        new_room_name(), settings.room_ttl, settings.daily_private_rooms, settings.daily_agent_name
    )
    session = Session(
        id=room.name,
        platform="daily",
        room=room.name,
        mode=body.mode,
        tone_hz=body.tone_hz,
        expires_at=room.expires_at,
    )
    session.on_end.append(lambda: rooms.delete(room.name))
    runner_args = DailyRunnerArguments(room_url=room.url, token=room.bot_token, body=session.body())
    _start_bot(request, session, runner_args, settings)
    return session, DailyCredentials(
        room_url=room.url, token=room.client_token, expires_at=room.expires_at
    )


async def _create_daily_on_pipecat_cloud(
    request: Request, settings: Settings, body: ConnectRequest
):
    expires_at = time.time() + settings.room_ttl
    session = Session(
        id=new_room_name(),  # our own unguessable id; the room is named by Pipecat Cloud
        platform="daily",
        room="",
        mode=body.mode,
        tone_hz=body.tone_hz,
        expires_at=expires_at,
    )
    started = await _start_cloud_bot(request, settings, session)
    return session, DailyCredentials(
        room_url=started.room_url, token=started.token, expires_at=expires_at
    )


async def _create_livekit(request: Request, settings: Settings, body: ConnectRequest):
    name = new_room_name()
    expires_at = time.time() + settings.room_ttl
    key = settings.livekit_api_key.get_secret_value()
    secret = settings.livekit_api_secret.get_secret_value()
    client = livekit.client_token(
        key, secret, name, livekit.unique_identity("client"), settings.room_ttl
    )
    agent = livekit.agent_token(
        key, secret, name, livekit.unique_identity(settings.livekit_agent_name), settings.room_ttl
    )
    session = Session(
        id=name,
        platform="livekit",
        room=name,
        mode=body.mode,
        tone_hz=body.tone_hz,
        expires_at=expires_at,
    )
    if settings.session_launcher == "pipecat-cloud":
        livekit_room = {"url": settings.livekit_url, "room_name": name, "token": agent}
        await _start_cloud_bot(request, settings, session, livekit_room=livekit_room)
    else:
        runner_args = LiveKitRunnerArguments(
            room_name=name, url=settings.livekit_url, token=agent, body=session.body()
        )
        _start_bot(request, session, runner_args, settings)
    return session, LiveKitCredentials(
        server_url=settings.livekit_url, room_name=name, token=client, expires_at=expires_at
    )


async def _create_webrtc(request: Request, settings: Settings, body: ConnectRequest):
    session = _webrtc_session(settings, body.mode, body.tone_hz, new_room_name())
    run = request.app.state.pool.run_webrtc_session(
        session.id, session.body(), **_session_terms(session, settings), stats=session.stats
    )
    request.app.state.registry.start(session, run)
    offer_url = str(request.url_for("session_offer", session_id=session.id))
    return session, WebRTCCredentials(
        offer_url=offer_url, session_id=session.id, expires_at=session.expires_at
    )


_CREATORS = {"daily": _create_daily, "livekit": _create_livekit, "webrtc": _create_webrtc}


# ---------------------------------------------------------------------------
# Entry point


def _exit_cleanly(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> None:
    """`python server.py [--host H] [--port P]`: serve the API (defaults from settings)."""
    settings = get_settings()
    parser = argparse.ArgumentParser(description="Echo agent API server")
    parser.add_argument("--host", default=settings.api_host)
    parser.add_argument("--port", type=int, default=settings.api_port)
    args = parser.parse_args(argv)
    configure_logging(settings.log_level)
    guards.warn_if_open(args.host, settings)
    # uvicorn re-raises the SIGTERM it shut down for; answered here, a stop exits 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    # The plain asyncio loop, not uvloop: aiortc's UDP path answered pings 3-10 % faster
    # on it (benchmarks/RESULTS.md).
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="asyncio",
        log_level="warning",
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
