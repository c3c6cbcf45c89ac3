"""The echo bot: one Pipecat pipeline per room, transport in -> echo -> transport out.

`bot(runner_args)` is the Pipecat Cloud / Pipecat runner entry. `python bot.py -u URL`
joins one Daily or LiveKit room by hand; without `-u` Pipecat's development runner
takes over.
"""

import argparse
import asyncio
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import aiohttp
from loguru import logger
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.runner.types import (
    DailyRunnerArguments,
    LiveKitRunnerArguments,
    RunnerArguments,
    SmallWebRTCRunnerArguments,
)
from pipecat.transports.base_transport import BaseTransport
from pipecat.workers.runner import WorkerRunner

from agent_core import DEFAULT_TONE_HZ, EchoMode, MessageBound, tone_hz_problem
from config import PlatformNotConfiguredError, configure_logging, get_settings
from processors import AudioLoopbackProcessor, PongProcessor, ToneGeneratorProcessor
from processors.pong import ReplyFrameFactory, urgent_reply
from transports import daily, livekit, webrtc
from transports.errors import PlatformAPIError
from transports.media import NO_AUDIO, SAMPLE_RATE, AudioSpec


class InvalidSessionError(ValueError):
    """The session cannot start: bad body or runner arguments."""


@dataclass
class SessionState:
    """Live figures of a running session, updated by the bot, read by the server."""

    clients: int = 0
    ping_counts: Counter = field(default_factory=Counter)
    bound: MessageBound = field(default_factory=MessageBound)
    end_reason: str | None = None

    @property
    def pings_answered(self) -> int:
        """Pongs sent in this session (the pong processor counts them per sender)."""
        return self.ping_counts.total()

    @property
    def messages_dropped(self) -> int:
        """App messages the transport dropped (over the rate or the size limit)."""
        return self.bound.dropped


@dataclass(frozen=True)
class BotOptions:
    """How one bot runs: what it echoes and when it ends."""

    mode: EchoMode = EchoMode.PONG
    tone_hz: float = DEFAULT_TONE_HZ
    join_timeout: float = 60.0
    expires_at: float | None = None
    room: str = ""
    platform: str = ""
    reply_frame: ReplyFrameFactory = urgent_reply
    state: SessionState = field(default_factory=SessionState)


@dataclass(frozen=True)
class SessionTransport:
    """A platform's transport with what the bot must know about it."""

    transport: BaseTransport
    platform: str
    room: str
    reply_frame: ReplyFrameFactory = urgent_reply


def parse_body(body: Any) -> tuple[EchoMode, float]:
    """Mode and tone frequency from a session body (`{"mode": ..., "tone_hz": ...}`).

    Raises:
        InvalidSessionError: the body or one of its fields is malformed.
    """
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InvalidSessionError(f"session body must be a JSON object, got {type(body).__name__}")
    try:
        mode = EchoMode(body.get("mode") or EchoMode.PONG)
    except ValueError:
        modes = ", ".join(m.value for m in EchoMode)
        raise InvalidSessionError(f"unknown mode {body.get('mode')!r} (one of {modes})") from None
    tone_hz = body.get("tone_hz", DEFAULT_TONE_HZ)
    if problem := tone_hz_problem(tone_hz):
        raise InvalidSessionError(problem)
    return mode, float(tone_hz)


@dataclass(frozen=True)
class ModeSpec:
    """What a mode means: the audio its transport carries and what echoes it.

    Attributes:
        audio: The transport's audio in and out.
        echo: The processors after the pong processor (every mode answers pings).
    """

    audio: AudioSpec
    echo: Callable[[BotOptions], list[FrameProcessor]]


# Every processor runs in direct mode: pings, pongs and echoed audio are handled in the
# caller's turn, never queued behind another task.
MODES: dict[EchoMode, ModeSpec] = {
    EchoMode.PONG: ModeSpec(audio=NO_AUDIO, echo=lambda options: []),
    EchoMode.LOOPBACK: ModeSpec(
        audio=AudioSpec(receive=True, send=True, auto_silence=False),
        echo=lambda options: [AudioLoopbackProcessor(name="loopback", enable_direct_mode=True)],
    ),
    EchoMode.TONE: ModeSpec(
        audio=AudioSpec(send=True, auto_silence=True),
        echo=lambda options: [
            ToneGeneratorProcessor(
                frequency=options.tone_hz,
                sample_rate=SAMPLE_RATE,
                name="tone",
                enable_direct_mode=True,
            )
        ],
    ),
}


def echo_processors(options: BotOptions) -> list[FrameProcessor]:
    """The processors between transport input and output for the session's mode."""
    pong = PongProcessor(
        reply_frame=options.reply_frame,
        ping_counts=options.state.ping_counts,
        name="pong",
        enable_direct_mode=True,
    )
    return [pong, *MODES[options.mode].echo(options)]


async def run_bot(transport: BaseTransport, options: BotOptions) -> str:
    """Run one echo session until it ends; returns why it ended.

    It ends when the last client leaves, when no client joined within
    `options.join_timeout`, or at `options.expires_at`; never on Pipecat's idle timeout.
    """
    with logger.contextualize(room=options.room, platform=options.platform):
        pipeline = Pipeline([transport.input(), *echo_processors(options), transport.output()])
        worker = PipelineWorker(
            pipeline,
            params=PipelineParams(
                audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE
            ),
            enable_rtvi=False,
            enable_turn_tracking=False,
            idle_timeout_secs=None,
            cancel_on_idle_timeout=False,
        )
        state = options.state
        clients: set[str] = set()
        joined = asyncio.Event()

        async def end(reason: str):
            if state.end_reason is None:
                state.end_reason = reason
                logger.info(f"Ending session: {reason}")
            await worker.cancel(reason=reason)

        @transport.event_handler("on_client_connected")
        async def on_client_connected(transport, client):
            clients.add(transport.get_client_id(client))
            state.clients = len(clients)
            joined.set()
            logger.info(f"Client connected ({len(clients)} in the session)")

        @transport.event_handler("on_client_disconnected")
        async def on_client_disconnected(transport, client):
            clients.discard(transport.get_client_id(client))
            state.clients = len(clients)
            logger.info(f"Client left ({len(clients)} in the session)")
            if not clients:
                await end("last client left")

        @worker.event_handler("on_pipeline_error")
        async def on_pipeline_error(worker, frame):
            # A transport that fails before anyone joined (e.g. it cannot join the
            # room) will not recover: end now rather than at the join timeout.
            from_transport = frame.processor in (transport.input(), transport.output())
            if frame.fatal or (from_transport and not joined.is_set()):
                await end(f"{'transport' if from_transport else 'pipeline'} error: {frame.error}")

        async def join_deadline():
            try:
                await asyncio.wait_for(joined.wait(), options.join_timeout)
            except TimeoutError:
                await end(f"no client joined within {options.join_timeout:g} s")

        async def expiry():
            if options.expires_at is not None:
                await asyncio.sleep(max(0.0, options.expires_at - time.time()))
                await end("session expired")

        timers = [asyncio.create_task(join_deadline()), asyncio.create_task(expiry())]
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        logger.info(f"Echo bot starting in {options.mode} mode")
        try:
            await runner.run()
        finally:
            for timer in timers:
                timer.cancel()
            state.clients = 0
        reason = state.end_reason or "pipeline finished"
        logger.info(f"Echo bot ended: {reason}")
        return reason


def session_transport(
    runner_args: RunnerArguments, mode: EchoMode, bound: MessageBound | None = None
) -> SessionTransport:
    """Build the platform's transport from the runner arguments' type.

    `bound` limits the session's incoming app messages (default: the default rate).

    Raises:
        InvalidSessionError: unsupported runner arguments.
    """
    settings = get_settings()
    audio = MODES[mode].audio
    match runner_args:
        case DailyRunnerArguments(room_url=room_url, token=token):
            return SessionTransport(
                transport=daily.create_transport(
                    room_url, token, settings.daily_agent_name, audio, bound
                ),
                platform="daily",
                room=urlparse(room_url).path.lstrip("/"),
                reply_frame=daily.reply_frame,
            )
        case LiveKitRunnerArguments(room_name=room_name, url=url, token=token):
            return SessionTransport(
                transport=livekit.create_transport(url, token, room_name, audio, bound),
                platform="livekit",
                room=room_name,
                reply_frame=livekit.reply_frame,
            )
        case SmallWebRTCRunnerArguments(webrtc_connection=connection):
            return SessionTransport(
                transport=webrtc.create_transport(connection, audio, bound),
                platform="webrtc",
                room=connection.pc_id,
            )
    if isinstance(runner_args.body, dict) and "livekit" in runner_args.body:
        return session_transport(livekit_arguments(runner_args.body), mode, bound)
    raise InvalidSessionError(
        f"unsupported runner arguments: {type(runner_args).__name__} without a Daily room "
        'and without a "livekit" entry in the body'
    )


def livekit_arguments(body: dict) -> LiveKitRunnerArguments:
    """LiveKit runner arguments from a session body's `"livekit"` entry.

    Pipecat Cloud sessions started without a Daily room carry
    `{"livekit": {"url", "room_name", "token"}}` in their body.

    Raises:
        InvalidSessionError: the entry is not an object of three non-empty strings.
    """
    entry = body.get("livekit")
    if not isinstance(entry, dict):
        raise InvalidSessionError('body "livekit" must be an object {"url", "room_name", "token"}')
    for key in ("url", "room_name", "token"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise InvalidSessionError(f'body "livekit.{key}" must be a non-empty string')
    if urlparse(entry["url"]).scheme not in ("ws", "wss", "http", "https"):
        raise InvalidSessionError('body "livekit.url" must be a ws(s):// or http(s):// URL')
    return LiveKitRunnerArguments(
        room_name=entry["room_name"], url=entry["url"], token=entry["token"], body=body
    )


async def run_session(
    runner_args: RunnerArguments,
    *,
    expires_at: float | None = None,
    join_timeout: float | None = None,
    state: SessionState | None = None,
) -> str:
    """Run one bot for the runner arguments; mode and tone come from their body.

    Raises:
        InvalidSessionError: the body or the runner arguments are malformed.
    """
    settings = get_settings()
    mode, tone_hz = parse_body(runner_args.body)
    state = state or SessionState()
    state.bound = MessageBound(settings.max_messages_per_second)
    session = session_transport(runner_args, mode, state.bound)
    options = BotOptions(
        mode=mode,
        tone_hz=tone_hz,
        join_timeout=join_timeout or settings.join_timeout,
        expires_at=expires_at or time.time() + settings.room_ttl,
        room=session.room,
        platform=session.platform,
        reply_frame=session.reply_frame,
        state=state,
    )
    return await run_bot(session.transport, options)


async def bot(runner_args: RunnerArguments):
    """Pipecat Cloud / Pipecat runner entry: one session per call."""
    try:
        await run_session(_with_runner_defaults(runner_args))
    except InvalidSessionError as e:
        logger.error(f"Session not started: {e}")


def _manual_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Join one Daily or LiveKit room as the echo bot.",
        epilog="Without -u, Pipecat's development runner starts instead.",
    )
    parser.add_argument("-u", "--room-url", required=True, help="Daily room URL or LiveKit URL")
    parser.add_argument("--token", help="Daily meeting token / LiveKit token")
    parser.add_argument("--room", help="LiveKit room name")
    parser.add_argument("--mode", default="pong", choices=[m.value for m in EchoMode])
    parser.add_argument("--tone-hz", type=float, default=DEFAULT_TONE_HZ)
    return parser


async def _manual_runner_args(args: argparse.Namespace) -> RunnerArguments:
    """Runner arguments for a manual run, minting a token where none was given."""
    settings = get_settings()
    body = {"mode": args.mode, "tone_hz": args.tone_hz}
    if urlparse(args.room_url).scheme in ("ws", "wss"):
        if not args.room:
            raise SystemExit("error: --room NAME is required to join a LiveKit room")
        token = args.token
        if not token:
            missing = [v for v in settings.missing("livekit") if v != "LIVEKIT_URL"]
            if missing:
                raise PlatformNotConfiguredError("livekit", missing)
            token = livekit.agent_token(
                settings.livekit_api_key.get_secret_value(),
                settings.livekit_api_secret.get_secret_value(),
                args.room,
                livekit.unique_identity(settings.livekit_agent_name),
                settings.room_ttl,
            )
        return LiveKitRunnerArguments(
            room_name=args.room, url=args.room_url, token=token, body=body
        )
    token = args.token
    if not token and settings.daily_api_key:
        async with aiohttp.ClientSession() as http:
            rooms = daily.DailyRooms(
                settings.daily_api_key.get_secret_value(), settings.daily_api_url, http
            )
            token = await rooms.bot_token(
                args.room_url, settings.room_ttl, settings.daily_agent_name
            )
    return DailyRunnerArguments(room_url=args.room_url, token=token, body=body)


def _run_pipecat_runner(argv: list[str]) -> None:
    """Pipecat's development runner (prebuilt UI at `/client`) with the echo options.

    `--mode` and `--tone-hz` are ours, added to the runner's own options; they apply to
    every session whose body names no mode (the prebuilt UI sends none).
    """
    from pipecat.runner.run import main as pipecat_main

    from ice_addresses import restrict_ice_addresses

    parser = argparse.ArgumentParser(
        description="Pipecat's development runner with the echo bot "
        "(python bot.py -u URL joins one Daily or LiveKit room instead)."
    )
    echo = parser.add_argument_group("echo bot")
    echo.add_argument(
        "--mode",
        dest="echo_mode",
        default=EchoMode.PONG.value,
        choices=[m.value for m in EchoMode],
        help="echo mode of sessions whose body names none (default: pong)",
    )
    echo.add_argument(
        "--tone-hz",
        dest="echo_tone_hz",
        type=float,
        default=DEFAULT_TONE_HZ,
        help=f"tone frequency for --mode tone (default: {DEFAULT_TONE_HZ:g})",
    )
    restrict_ice_addresses(get_settings().webrtc_ice_addresses)
    sys.argv = [sys.argv[0], *argv]  # the runner parses sys.argv
    pipecat_main(parser)


def _with_runner_defaults(runner_args: RunnerArguments) -> RunnerArguments:
    """Runner arguments whose body has the runner's `--mode`/`--tone-hz` where it has none."""
    cli = getattr(runner_args, "cli_args", None)
    mode = getattr(cli, "echo_mode", None)
    body = runner_args.body
    if mode is None or not (body is None or isinstance(body, dict)):
        return runner_args
    runner_args.body = {"mode": mode, "tone_hz": cli.echo_tone_hz, **(body or {})}
    return runner_args


def main(argv: list[str] | None = None) -> int:
    """`python bot.py -u URL ...` joins one room; without `-u` Pipecat's runner starts."""
    argv = sys.argv[1:] if argv is None else argv
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("-u", "--room-url")
    known, _ = probe.parse_known_args(argv)
    if not known.room_url:
        _run_pipecat_runner(argv)
        return 0

    args = _manual_parser().parse_args(argv)
    configure_logging(get_settings().log_level)

    async def run():
        await run_session(await _manual_runner_args(args))

    try:
        asyncio.run(run())
    except PlatformNotConfiguredError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (InvalidSessionError, PlatformAPIError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
