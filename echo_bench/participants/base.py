"""What every SDK's participant shares: messages in, audio in and out, its tasks, its errors."""

import asyncio
import json
import os
import re
import socket
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import numpy as np
from loguru import logger

from echo_bench.media import ReceivedAudio, Signal, SignalClock

__all__ = ["Participant", "ParticipantError", "network_reason", "scrub"]

_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")


class ParticipantError(Exception):
    """A participant could not join, publish or send; the message says which and why.

    It never quotes a token or key.
    """


def scrub(message: str, *secrets: str) -> str:
    """An SDK's error message without the tokens or keys it may quote."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "<redacted>")
    return _JWT.sub("<token>", message)


def network_reason(error: Exception) -> str:
    """A short description of a network error (no internals, no URLs with tokens)."""
    cause = getattr(error, "os_error", None) or error
    if isinstance(cause, socket.gaierror) and cause.strerror:
        return cause.strerror.lower()
    if isinstance(cause, OSError) and cause.errno and cause.errno > 0:
        return os.strerror(cause.errno).lower()
    return str(cause) or type(error).__name__


class Participant(ABC):
    """One participant in a room, whatever the SDK.

    App messages that are JSON objects land in `messages` as (perf_counter arrival, dict),
    stamped in the SDK's callback before any queueing. The microphone plays `signal` in
    real time, 20 ms at a time (`sent_audio` says what went out when); audio received
    from the other participants (only `listen_to`'s, when given) is recorded in `received`.

    Attributes:
        platform: `webrtc`, `daily` or `livekit`.
        label: Who this participant is in log lines and errors (`client`, `customer`...).
        received: The audio received, blocks with perf_counter arrival times.
        messages: App messages received.
        setup: Seconds each step of joining took (the SDK's own steps), once joined.
    """

    platform = ""

    def __init__(
        self,
        signal: Signal | None = None,
        *,
        receive_audio: bool = False,
        label: str = "client",
        listen_to: str | None = None,
        received: ReceivedAudio | None = None,
    ):
        """Initialize the participant.

        Args:
            signal: What the microphone plays; None publishes no microphone.
            receive_audio: Receive audio even without a microphone.
            label: The participant's name in logs and errors.
            listen_to: Only this participant's audio is received (identity or user name);
                None receives every other participant's.
            received: Where to record the audio received (a new one by default).
        """
        self.label = label
        self.received = received if received is not None else ReceivedAudio()
        self.messages: asyncio.Queue[tuple[float, dict]] = asyncio.Queue()
        self.setup: dict[str, float] = {}
        self._clock = SignalClock(signal) if signal is not None else None
        self._receive_audio = receive_audio or signal is not None or listen_to is not None
        self._listen_to = listen_to
        self._tasks: set[asyncio.Task] = set()

    @property
    def sent_audio(self) -> list[tuple[float, int]]:
        """(perf_counter send time, first sample) of each microphone block."""
        return self._clock.sent if self._clock else []

    @abstractmethod
    async def send(self, message: dict) -> None:
        """Send one app message to the room."""

    @abstractmethod
    async def close(self) -> None:
        """Leave the room and stop everything this participant runs."""

    async def next_message(self, within: float | None = None) -> tuple[float, dict]:
        """The next app message, with its arrival time (waiting at most `within` s)."""
        return await asyncio.wait_for(self.messages.get(), within)

    def deliver(self, arrival: float, message: Any) -> None:
        """Queue a received app message if it is a JSON object (text or bytes are decoded)."""
        if isinstance(message, bytes | bytearray):
            try:
                message = message.decode()
            except UnicodeDecodeError:
                return
        if isinstance(message, str):
            try:
                message = json.loads(message)
            except ValueError:
                return
        if isinstance(message, dict):
            self.messages.put_nowait((arrival, message))

    def listens_to(self, identity: str | None) -> bool:
        """Whether audio from the participant `identity` is to be received."""
        return self._receive_audio and (self._listen_to is None or identity == self._listen_to)

    def spawn(self, coroutine: Coroutine) -> asyncio.Task:
        """Run `coroutine` as a task of this participant (cancelled by `stop_tasks`)."""
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def stop_tasks(self) -> None:
        """Cancel every task of this participant and wait for them."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def play(self, write: Callable[[np.ndarray], Awaitable[object]]) -> None:
        """Feed the microphone's signal to `write` in real time (for SDKs that take frames)."""
        if self._clock is not None:
            self.spawn(self._play(self._clock, write))

    @staticmethod
    async def _play(clock: SignalClock, write: Callable[[np.ndarray], Awaitable[object]]):
        while True:
            _, samples = await clock.next_block()
            await write(samples)

    def error(self, action: str, reason: str, *secrets: str) -> ParticipantError:
        """The error for an `action` (e.g. `join room X`) that failed, scrubbed of secrets."""
        return ParticipantError(
            f"{self.platform}: {self.label} could not {action}: {scrub(reason, *secrets)}"
        )

    def log(self, message: str) -> None:
        """Log an event of this participant."""
        logger.info(f"{self.label}: {message}")
