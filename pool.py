"""The server's pool of bot worker processes (`worker.py`): placing, relaying, watching.

Workers are started ahead of time from a forkserver that has already imported the bot
(Pipecat, aiortc, daily-python), so a new one is ready in tens of milliseconds
(benchmarks/WORKERS.md). Placement rules:

- a Daily session gets a process of its own (daily-python runs one call per process);
- local WebRTC and LiveKit sessions go to the pool worker with the fewest sessions.

A worker that dies takes only its own sessions: they end at once (their rooms are cleaned
up by the server) and a pool worker is replaced.
"""

import asyncio
import contextlib
import itertools
import multiprocessing
import os
import signal
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from loguru import logger
from pipecat.runner.types import DailyRunnerArguments, LiveKitRunnerArguments, RunnerArguments

import worker

__all__ = ["SessionStats", "WorkerError", "WorkerPool"]

READY_TIMEOUT_SECS = 30.0
REQUEST_TIMEOUT_SECS = 15.0
STATS_TIMEOUT_SECS = 1.0
STOP_TIMEOUT_SECS = 8.0


class WorkerError(Exception):
    """A worker refused a request (`kind`: invalid_offer, conflict, not_found, failed, gone)."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


@dataclass
class SessionStats:
    """The server's view of a session on a worker, refreshed from the worker."""

    status: str = "running"
    clients: int = 0
    pings_answered: int = 0
    messages_dropped: int = 0
    worker_pid: int | None = None
    end_reason: str | None = None


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    conn: Connection
    dedicated: bool
    ready: asyncio.Future
    sessions: dict[str, SessionStats] = field(default_factory=dict)
    ended: dict[str, asyncio.Future] = field(default_factory=dict)
    replies: dict[int, asyncio.Future] = field(default_factory=dict)
    alive: bool = True
    reaper: asyncio.Task | None = None
    """The one task that waits for the process (multiprocessing's poll is not thread-safe)."""

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def ended_future(self, sid: str) -> asyncio.Future:
        if sid not in self.ended:
            self.ended[sid] = asyncio.get_running_loop().create_future()
        return self.ended[sid]


class WorkerPool:
    """Bot worker processes: `size` shared ones, plus one per Daily session."""

    def __init__(self, size: int, *, start_method: str = "forkserver"):
        """Prepare the pool; `start()` starts the workers.

        Args:
            size: Number of shared workers (local WebRTC and LiveKit sessions).
            start_method: multiprocessing start method; forkserver measured cheapest
                among the safe ones (fork copies the server's threads and loop).
        """
        self._size = size
        self._context = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            self._context.set_forkserver_preload(["worker"])
        self._shared: list[_Worker] = []
        self._dedicated: set[_Worker] = set()
        self._keys: dict[str, tuple[_Worker, str]] = {}  # session id or pc_id -> (worker, sid)
        self._rids = itertools.count(1)
        self._closing = False
        self._tasks: set[asyncio.Task] = set()
        self.restarts = 0
        self.ended_pings = 0
        self.ended_dropped = 0

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Start the shared workers and wait until each is ready."""
        workers = [self._launch(dedicated=False) for _ in range(self._size)]
        self._shared = workers
        await asyncio.gather(*(self._wait_ready(w) for w in workers))
        logger.info(f"{len(workers)} bot worker(s) ready: pids {[w.pid for w in workers]}")

    async def close(self) -> None:
        """Stop every worker: their sessions end, then the processes exit."""
        self._closing = True
        workers = [w for w in [*self._shared, *self._dedicated] if w.alive]
        for w in workers:
            self._send(w, {"op": "shutdown"})
        await asyncio.gather(*(self._reaper(w) for w in workers))

    @property
    def workers_alive(self) -> int:
        """Worker processes running now (shared and dedicated)."""
        return sum(w.alive for w in [*self._shared, *self._dedicated])

    def totals(self) -> tuple[int, int]:
        """Pings answered and messages dropped by every session so far (ended and live)."""
        live = [stats for w in [*self._shared, *self._dedicated] for stats in w.sessions.values()]
        pings = self.ended_pings + sum(stats.pings_answered for stats in live)
        return pings, self.ended_dropped + sum(stats.messages_dropped for stats in live)

    def pids(self) -> list[int]:
        """The pids of the live workers, shared first."""
        return [w.pid for w in [*self._shared, *self._dedicated] if w.alive]

    def _launch(self, *, dedicated: bool) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=worker.worker_main,
            args=(child, dict(os.environ)),
            name="echo-bot-worker",
            daemon=True,
        )
        process.start()
        child.close()
        w = _Worker(process, parent, dedicated, asyncio.get_running_loop().create_future())
        asyncio.get_running_loop().add_reader(parent.fileno(), self._on_readable, w)
        return w

    async def _wait_ready(self, w: _Worker) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(w.ready), READY_TIMEOUT_SECS)
        except TimeoutError:
            message = f"bot worker {w.pid} not ready in {READY_TIMEOUT_SECS:g} s"
            raise WorkerError("failed", message) from None

    def _reaper(self, w: _Worker) -> asyncio.Task:
        if w.reaper is None:
            w.reaper = asyncio.create_task(self._reap(w))
            self._tasks.add(w.reaper)
            w.reaper.add_done_callback(self._finished)
        return w.reaper

    async def _reap(self, w: _Worker) -> None:
        """Wait for the process to exit (killing it after a while), then end its sessions."""
        await asyncio.to_thread(w.process.join, STOP_TIMEOUT_SECS)
        if w.process.exitcode is None:
            logger.warning(
                f"Bot worker {w.pid} did not stop in {STOP_TIMEOUT_SECS:g} s: killing it"
            )
            w.process.kill()
            await asyncio.to_thread(w.process.join, 2.0)
        self._gone(w)
        self._ended(w, w.process.exitcode)

    # -- the pipes -----------------------------------------------------------

    def _send(self, w: _Worker, message: dict) -> None:
        if not w.alive:
            raise WorkerError("gone", f"bot worker {w.pid} is gone")
        try:
            w.conn.send(message)
        except (BrokenPipeError, OSError):
            self._gone(w)
            raise WorkerError("gone", f"bot worker {w.pid} is gone") from None

    def _on_readable(self, w: _Worker) -> None:
        try:
            while w.alive and w.conn.poll():
                self._handle(w, w.conn.recv())
        except (EOFError, OSError):
            self._gone(w)

    def _handle(self, w: _Worker, message: dict) -> None:
        op = message["op"]
        if op == "ready":
            if not w.ready.done():
                w.ready.set_result(None)
        elif op == "reply":
            future = w.replies.pop(message["rid"], None)
            if future and not future.done():
                if "error" in message:
                    future.set_exception(WorkerError(*message["error"]))
                else:
                    future.set_result(message["result"])
        elif op == "running":
            if stats := w.sessions.get(message["sid"]):
                stats.status = "running"
        elif op == "ended":
            sid = message["sid"]
            self.ended_pings += message.get("pings_answered", 0)
            self.ended_dropped += message.get("messages_dropped", 0)
            if stats := w.sessions.pop(sid, None):
                _update(stats, message)
            future = w.ended_future(sid)
            if not future.done():
                future.set_result(message["reason"])
            if w.dedicated and not w.sessions and not self._closing:
                # A Daily session's own process ends with it.
                with contextlib.suppress(WorkerError):
                    self._send(w, {"op": "shutdown"})
                self._reaper(w)

    def _gone(self, w: _Worker) -> None:
        """The worker's pipe closed: no more requests; its process is reaped."""
        if not w.alive:
            return
        w.alive = False
        asyncio.get_running_loop().remove_reader(w.conn.fileno())
        w.conn.close()
        for future in w.replies.values():
            if not future.done():
                future.set_exception(WorkerError("gone", f"bot worker {w.pid} is gone"))
        self._reaper(w)

    def _ended(self, w: _Worker, exitcode: int | None) -> None:
        """The worker's process exited: its sessions end with it; a shared one is replaced."""
        if not w.ready.done():
            w.ready.set_exception(WorkerError("failed", f"bot worker exited with {exitcode}"))
        reason = f"bot worker {w.pid} exited ({_describe_exit(exitcode)})"
        for sid, stats in w.sessions.items():
            self.ended_pings += stats.pings_answered
            self.ended_dropped += stats.messages_dropped
            future = w.ended_future(sid)
            if not future.done():
                future.set_result(reason)
        self._forget(lambda owner, _sid: owner is w)
        self._dedicated.discard(w)
        if self._closing:
            if exitcode:
                logger.warning(
                    f"Bot worker {w.pid} exited while stopping ({_describe_exit(exitcode)})"
                )
            return
        if w in self._shared:
            logger.error(f"{reason}: {len(w.sessions)} session(s) lost; starting a replacement")
            self.restarts += 1
            index = self._shared.index(w)
            self._shared[index] = replacement = self._launch(dedicated=False)
            self._spawn(self._wait_ready(replacement))
        elif w.sessions:
            logger.error(f"{reason}: its session ended")

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception():
            logger.error(f"Bot worker task failed: {task.exception()}")

    async def _request(self, w: _Worker, message: dict, within: float = REQUEST_TIMEOUT_SECS):
        rid = next(self._rids)
        future = asyncio.get_running_loop().create_future()
        w.replies[rid] = future
        try:
            self._send(w, {**message, "rid": rid})
            return await asyncio.wait_for(future, within)
        except TimeoutError:
            raise WorkerError("failed", f"bot worker {w.pid} did not answer in time") from None
        finally:
            w.replies.pop(rid, None)

    # -- placement -----------------------------------------------------------

    async def _place(self, platform: str) -> _Worker:
        if platform == "daily":
            w = self._launch(dedicated=True)
            self._dedicated.add(w)
            await self._wait_ready(w)
            return w
        candidates = [w for w in self._shared if w.alive and w.ready.done()]
        if not candidates:
            await asyncio.gather(*(self._wait_ready(w) for w in self._shared if w.alive))
            candidates = [w for w in self._shared if w.alive]
        return min(candidates, key=lambda w: len(w.sessions))

    def _register(self, w: _Worker, sid: str, stats: SessionStats) -> None:
        stats.worker_pid = w.pid
        w.sessions[sid] = stats
        self._keys[sid] = (w, sid)

    def _forget(self, matches) -> None:
        self._keys = {k: v for k, v in self._keys.items() if not matches(*v)}

    def _owner(self, key: str | None) -> _Worker | None:
        owner = self._keys.get(key or "")
        return owner[0] if owner and owner[0].alive else None

    async def _until_ended(self, w: _Worker, sid: str, stats: SessionStats) -> str:
        """Wait for the session's end; cancelling asks the worker to end it first."""
        try:
            reason = await asyncio.shield(w.ended_future(sid))
        except asyncio.CancelledError:
            if w.alive:
                try:
                    self._send(w, {"op": "end", "sid": sid, "reason": stats.end_reason})
                    await asyncio.wait_for(asyncio.shield(w.ended_future(sid)), STOP_TIMEOUT_SECS)
                except (WorkerError, TimeoutError):
                    pass
            raise
        finally:
            w.ended.pop(sid, None)
            w.sessions.pop(sid, None)
            self._forget(lambda owner, owned: owner is w and owned == sid)
        stats.end_reason = stats.end_reason or reason
        return reason

    # -- sessions ------------------------------------------------------------

    async def run_session(
        self,
        runner_args: RunnerArguments,
        *,
        expires_at: float,
        join_timeout: float,
        stats: SessionStats,
        session_id: str,
    ) -> str:
        """Run a Daily or LiveKit bot on a worker until it ends; returns why it ended."""
        if isinstance(runner_args, DailyRunnerArguments):
            platform = "daily"
            args = {"room_url": runner_args.room_url, "token": runner_args.token}
        elif isinstance(runner_args, LiveKitRunnerArguments):
            platform = "livekit"
            args = {
                "room_name": runner_args.room_name,
                "url": runner_args.url,
                "token": runner_args.token,
            }
        else:
            raise TypeError(f"unsupported runner arguments {type(runner_args).__name__}")
        w = await self._place(platform)
        self._register(w, session_id, stats)
        message = {
            "op": "start",
            "sid": session_id,
            "platform": platform,
            "args": args,
            "body": runner_args.body,
            "expires_at": expires_at,
            "join_timeout": join_timeout,
        }
        self._send(w, message)
        return await self._until_ended(w, session_id, stats)

    async def run_webrtc_session(
        self,
        session_id: str,
        body: dict,
        *,
        expires_at: float,
        join_timeout: float,
        stats: SessionStats,
    ) -> str:
        """Reserve a local WebRTC session on a worker; its bot starts with the offer."""
        w = await self._place("webrtc")
        self._register(w, session_id, stats)
        stats.status = "waiting"
        message = {
            "op": "reserve",
            "sid": session_id,
            "body": body,
            "expires_at": expires_at,
            "join_timeout": join_timeout,
        }
        self._send(w, message)
        return await self._until_ended(w, session_id, stats)

    async def offer(self, session_id: str | None, offer: dict, new: dict | None = None) -> dict:
        """Relay an SDP offer to the worker that owns the session (or its peer).

        Without a session, a new peer goes to the least loaded worker and gets a session
        there (`new`: its body, expiry and join timeout). Returns the answer with the
        `session_id` the peer belongs to.

        Raises:
            WorkerError: the worker refused the offer (see its `kind`).
        """
        w = self._owner(session_id) or self._owner(offer.get("pc_id"))
        if w is None:
            if session_id:
                raise WorkerError("not_found", f"no session {session_id}")
            w = await self._place("webrtc")
        answer = await self._request(w, {"op": "offer", "sid": session_id, "new": new, **offer})
        self._keys[answer["pc_id"]] = (w, answer["session_id"])
        return answer

    def adopt(self, session_id: str, stats: SessionStats) -> None:
        """Register a session that a worker created for a new peer (see `offer`)."""
        w = self._owner(session_id)
        if w is None:
            raise WorkerError("gone", f"the worker of session {session_id} is gone")
        self._register(w, session_id, stats)

    async def until_ended(self, session_id: str, stats: SessionStats) -> str:
        """Wait for the end of an adopted session."""
        w = self._owner(session_id)
        if w is None:
            return f"the worker of session {session_id} is gone"
        return await self._until_ended(w, session_id, stats)

    async def add_candidates(self, pc_id: str, candidates: list[dict]) -> None:
        """Relay trickled ICE candidates to the worker that owns the peer.

        Raises:
            WorkerError: no worker knows the peer (`not_found`).
        """
        w = self._owner(pc_id)
        if w is None:
            raise WorkerError("not_found", f"no peer connection {pc_id}")
        await self._request(w, {"op": "candidates", "pc_id": pc_id, "candidates": candidates})

    async def refresh(self) -> None:
        """Fetch every session's live figures from its worker (stale ones stay as they were)."""
        workers = [w for w in [*self._shared, *self._dedicated] if w.alive and w.sessions]

        async def one(w: _Worker):
            try:
                figures = await self._request(w, {"op": "stats"}, STATS_TIMEOUT_SECS)
            except WorkerError:
                return
            for sid, values in figures.items():
                if stats := w.sessions.get(sid):
                    _update(stats, values)

        await asyncio.gather(*(one(w) for w in workers))


def _update(stats: SessionStats, values: dict[str, Any]) -> None:
    stats.clients = values.get("clients", stats.clients)
    stats.pings_answered = values.get("pings_answered", stats.pings_answered)
    stats.messages_dropped = values.get("messages_dropped", stats.messages_dropped)


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "unknown status"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"
