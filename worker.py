"""A bot worker process: runs the bots the server's pool places on it.

The server (`pool.py`) starts each worker with one end of a pipe and talks to it in
small dicts (`op` names what they are). A worker runs its bots on its own event loop and
core, answers local WebRTC offers for its sessions (the media then flows between the
client and this process), and reports when each session starts and ends. It exits when
told to, or when the pipe closes because the server is gone.

Server -> worker: `start` (a Daily or LiveKit session), `reserve` (a local WebRTC
session waiting for its offer), `offer`, `candidates`, `end`, `stats`, `shutdown`.
Worker -> server: `ready`, `reply` (to the requests with an `rid`), `running`, `ended`.
"""

import asyncio
import os
import signal
from collections.abc import Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from loguru import logger
from pipecat.runner.types import (
    DailyRunnerArguments,
    LiveKitRunnerArguments,
    RunnerArguments,
    SmallWebRTCRunnerArguments,
)

import bot
from config import configure_logging, get_settings
from ice_addresses import restrict_ice_addresses
from transports import webrtc
from transports.errors import InvalidOfferError

__all__ = ["RemoteError", "WorkerSession", "worker_main"]

END_TIMEOUT_SECS = 5.0


class RemoteError(Exception):
    """A request the worker could not serve; `kind` tells the server how to answer."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


@dataclass
class WorkerSession:
    """A session on this worker: its live figures, its bot task, its peer (WebRTC)."""

    id: str
    platform: str
    state: bot.SessionState = field(default_factory=bot.SessionState)
    task: asyncio.Task | None = None
    connection: asyncio.Future | None = None

    def stats(self) -> dict:
        """What the server shows of the session."""
        return {
            "clients": self.state.clients,
            "pings_answered": self.state.pings_answered,
            "messages_dropped": self.state.messages_dropped,
        }


def worker_main(conn: Connection, env: dict[str, str]) -> None:
    """Process entry: the server's environment, then bots until told to stop."""
    # Ctrl-C reaches the whole process group; the server decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.clear()
    os.environ.update(env)
    get_settings.cache_clear()
    settings = get_settings()
    configure_logging(settings.log_level)
    restrict_ice_addresses(settings.webrtc_ice_addresses)
    asyncio.run(BotWorker(conn).run())


class BotWorker:
    """Runs the sessions of one worker process and answers the server's requests."""

    def __init__(self, conn: Connection):
        self._conn = conn
        self._sessions: dict[str, WorkerSession] = {}
        self._offers = webrtc.WebRTCOffers()
        self._tasks: set[asyncio.Task] = set()
        self._stop = asyncio.Event()

    async def run(self) -> None:
        """Serve the pipe until `shutdown` or until the server goes away."""
        loop = asyncio.get_running_loop()
        loop.add_reader(self._conn.fileno(), self._on_readable)
        self._send({"op": "ready", "pid": os.getpid()})
        logger.info(f"Bot worker {os.getpid()} ready")
        try:
            await self._stop.wait()
        finally:
            loop.remove_reader(self._conn.fileno())
            await self._end_all()
            await self._offers.close()
            logger.info(f"Bot worker {os.getpid()} stopped")

    # -- the pipe ------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            while self._conn.poll():
                self._handle(self._conn.recv())
        except (EOFError, OSError):
            logger.warning("Server gone: ending every session")
            self._stop.set()

    def _send(self, message: dict) -> None:
        try:
            self._conn.send(message)
        except (BrokenPipeError, OSError):
            self._stop.set()

    def _spawn(self, coro: Coroutine) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _handle(self, message: dict) -> None:
        op = message["op"]
        if op == "shutdown":
            self._stop.set()
        elif op == "start":
            self._start(message)
        elif op == "reserve":
            self._reserve(message)
        elif op == "end":
            self._end(message["sid"], message.get("reason") or "ended by the server")
        elif op in ("offer", "candidates", "stats"):
            self._spawn(self._reply(message))
        else:
            logger.warning(f"Unknown request from the server: {op!r}")

    async def _reply(self, message: dict) -> None:
        handler = {"offer": self._offer, "candidates": self._candidates, "stats": self._stats}
        try:
            result = await handler[message["op"]](message)
            self._send({"op": "reply", "rid": message["rid"], "result": result})
        except RemoteError as e:
            self._send({"op": "reply", "rid": message["rid"], "error": [e.kind, str(e)]})
        except InvalidOfferError as e:
            self._send({"op": "reply", "rid": message["rid"], "error": ["invalid_offer", str(e)]})
        except Exception as e:
            logger.exception(f"Request {message['op']} failed: {e}")
            error = ["failed", f"{message['op']} failed in the worker"]
            self._send({"op": "reply", "rid": message["rid"], "error": error})

    # -- sessions ------------------------------------------------------------

    def _start(self, message: dict) -> None:
        """A Daily or LiveKit session: its bot joins the room now."""
        args = message["args"]
        if message["platform"] == "daily":
            runner_args: RunnerArguments = DailyRunnerArguments(
                room_url=args["room_url"], token=args["token"], body=message["body"]
            )
        else:
            runner_args = LiveKitRunnerArguments(
                room_name=args["room_name"],
                url=args["url"],
                token=args["token"],
                body=message["body"],
            )
        session = WorkerSession(message["sid"], message["platform"])
        self._run(session, runner_args, message)

    def _reserve(self, message: dict) -> None:
        """A local WebRTC session: its bot starts when the peer's offer arrives."""
        session = WorkerSession(message["sid"], "webrtc")
        session.connection = asyncio.get_running_loop().create_future()
        self._run(session, None, message)

    def _run(self, session: WorkerSession, runner_args: RunnerArguments | None, message: dict):
        self._sessions[session.id] = session
        session.task = self._spawn(self._session(session, runner_args, message))

    async def _session(
        self, session: WorkerSession, runner_args: RunnerArguments | None, message: dict
    ) -> None:
        reason = "pipeline finished"
        with logger.contextualize(room=message.get("room", session.id), platform=session.platform):
            try:
                if runner_args is None:
                    runner_args = await self._await_peer(session, message)
                if runner_args is not None:
                    reason = await bot.run_session(
                        runner_args,
                        expires_at=message["expires_at"],
                        join_timeout=message["join_timeout"],
                        state=session.state,
                    )
                else:
                    reason = f"no offer within {message['join_timeout']:g} s"
            except asyncio.CancelledError:
                reason = session.state.end_reason or "ended by the server"
            except bot.InvalidSessionError as e:
                reason = f"session not started: {e}"
                logger.error(reason)
            except Exception as e:
                reason = f"bot failed: {type(e).__name__}"
                logger.exception(f"Session {session.id} failed: {e}")
            finally:
                self._sessions.pop(session.id, None)
                self._send({"op": "ended", "sid": session.id, "reason": reason, **session.stats()})

    async def _await_peer(self, session: WorkerSession, message: dict):
        try:
            connection = await asyncio.wait_for(
                asyncio.shield(session.connection), message["join_timeout"]
            )
        except TimeoutError:
            logger.info(f"Reservation {session.id} unused for {message['join_timeout']:g} s")
            return None
        self._send({"op": "running", "sid": session.id})
        return SmallWebRTCRunnerArguments(webrtc_connection=connection, body=message["body"])

    def _end(self, session_id: str, reason: str) -> None:
        session = self._sessions.get(session_id)
        if session and session.task:
            session.state.end_reason = session.state.end_reason or reason
            session.task.cancel()

    async def _end_all(self) -> None:
        sessions = list(self._sessions.values())
        for session in sessions:
            self._end(session.id, "server shutting down")
        tasks = [s.task for s in sessions if s.task]
        if tasks:
            await asyncio.wait(tasks, timeout=END_TIMEOUT_SECS)

    # -- requests ------------------------------------------------------------

    async def _offer(self, message: dict) -> dict:
        """Answer a peer's offer; a new peer without a reserved session gets a new one."""
        sid = message.get("sid")
        reserved = self._sessions.get(sid) if sid else None
        if sid and (reserved is None or reserved.connection is None):
            raise RemoteError("not_found", f"no session {sid}")
        if reserved and reserved.connection.done() and not message.get("pc_id"):
            raise RemoteError("conflict", f"session {sid} already has a peer")
        created: list[str] = []

        async def on_connection(connection):
            if reserved is None:
                session = WorkerSession(connection.pc_id, "webrtc")
                session.connection = asyncio.get_running_loop().create_future()
                session.connection.set_result(connection)
                created.append(session.id)
                self._run(session, None, {**message["new"], "room": connection.pc_id})
            elif reserved.connection.done():
                await connection.disconnect()
                raise RemoteError("conflict", f"session {sid} already has a peer")
            else:
                reserved.connection.set_result(connection)

        answer = await self._offers.answer(
            message["sdp"],
            message["type"],
            on_connection,
            pc_id=message.get("pc_id"),
            restart_pc=message.get("restart_pc"),
        )
        return {**answer, "session_id": created[0] if created else sid}

    async def _candidates(self, message: dict) -> dict:
        try:
            await self._offers.add_candidates(message["pc_id"], message["candidates"])
        except Exception as e:
            if getattr(e, "status_code", None) == 404:
                raise RemoteError("not_found", f"no peer connection {message['pc_id']}") from None
            raise
        return {}

    async def _stats(self, _message: dict) -> dict[str, Any]:
        return {sid: session.stats() for sid, session in self._sessions.items()}
