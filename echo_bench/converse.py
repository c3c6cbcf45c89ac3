"""`echo-bench converse`: a customer and a support agent talk through one room with tones.

Two programmatic participants join one room, each publishes a tone in speech-like turns
(customer 440 Hz, support 550 Hz) and subscribes to the other's track. The proof at the
end says, for each direction, what was sent, what arrived, and in how much of the
sender's talk time the receiver heard the sender's tone. The exit code is 0 only when
both directions carried the tone through at least `--min-heard` percent of the talk time.

Exit codes: 0 both directions passed, 1 a direction failed, 2 bad arguments, config or
missing credentials, 3 the platform failed (room, join, publish).
"""

import argparse
import asyncio
import json
import math
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from loguru import logger
from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from echo_bench.rooms import (
    ConverseError,
    Room,
    Speaker,
    join_daily,
    join_livekit,
    join_local,
    unique_identity,
)
from echo_bench.tones import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    ToneCounter,
    Voice,
    conversation_turns,
    dominant_frequency,
    is_valid_tone,
)

__all__ = ["add_parser", "converse", "load_credentials", "run"]

PLATFORMS = ("livekit", "daily", "local")
STATS_INTERVAL_SECS = 5.0
DRAIN_SECS = 1.0
"""After the last turn, both keep sending silence this long so the tail can arrive."""
FINISH_GRACE_SECS = 5.0
MIN_DURATION_SECS = 4.0
MIN_TONE_SPACING_HZ = 100.0

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PLATFORM = 3
EXIT_INTERRUPTED = 130


class Environment(BaseSettings):
    """The credentials converse reads from the environment and `.env` (names case-insensitive)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    livekit_url: str | None = None
    livekit_api_key: str | None = None
    livekit_api_secret: SecretStr | None = None
    daily_api_key: SecretStr | None = None
    daily_api_url: str = "https://api.daily.co/v1"


class CredentialsError(Exception):
    """Credentials or the config file are missing or unreadable; the message is one line."""


@dataclass(frozen=True)
class LiveKitCredentials:
    """Where and as whom to reach a LiveKit server."""

    url: str
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)


@dataclass(frozen=True)
class DailyCredentials:
    """Daily's REST API key and base URL."""

    api_key: str = field(repr=False)
    api_url: str


@dataclass(frozen=True)
class Options:
    """What one conversation test runs with."""

    platform: str
    duration: float
    customer_hz: float = 440.0
    support_hz: float = 550.0
    min_heard: float = 90.0
    silent: str | None = None
    connect_timeout: float = 30.0
    seed: int = 0


@dataclass
class Direction:
    """What flowed from one speaker to the other, and whether the tone came through."""

    sender: str
    receiver: str
    sender_identity: str
    receiver_identity: str
    tone_hz: float
    chunks_sent: int
    bytes_sent: int
    frames_received: int
    bytes_received: int
    seconds_received: float
    talk_frames: int
    tone_frames: int
    heard_percent: float
    dominant_hz: float | None
    passed: bool
    transport: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        """E.g. "customer -> support"."""
        return f"{self.sender} -> {self.receiver}"

    def verdict(self, min_heard: float) -> str:
        """One line saying whether this direction passed, and why not."""
        heard = (
            f"{self.receiver} heard {self.sender}'s {self.tone_hz:g} Hz in "
            f"{self.heard_percent:.1f} % of {self.sender}'s talk time (needs {min_heard:g} %)"
        )
        if self.passed:
            return f"PASS {self.label}: {heard}"
        if self.frames_received == 0:
            why = "no audio arrived"
        elif self.dominant_hz is None:
            why = "audio arrived but carried no tone"
        else:
            why = f"the strongest tone that arrived was {self.dominant_hz:.1f} Hz"
        return f"FAIL {self.label}: {heard}; {why}"


@dataclass
class Conversation:
    """The outcome of one conversation test."""

    platform: str
    room: str
    duration: float
    min_heard: float
    directions: list[Direction]

    @property
    def passed(self) -> bool:
        """Whether audio carried the tone both ways."""
        return all(d.passed for d in self.directions)

    def to_dict(self) -> dict:
        """The result as JSON-ready data."""
        data = asdict(self)
        data["passed"] = self.passed
        return data


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the subcommand."""
    parser = subparsers.add_parser(
        "converse",
        help="two participants talk through one room with test tones; proves audio "
        "flowed both ways",
        description="A customer and a support agent join one room and talk to each other "
        "with test tones in speech-like turns. Prints what flowed each way and exits 0 "
        "only when each side heard the other's tone in enough of the other's talk time.",
    )
    parser.add_argument("--platform", choices=PLATFORMS, required=True)
    parser.add_argument(
        "--duration",
        type=_duration,
        default=120.0,
        help="seconds of conversation (default 120, at least 4)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help='JSON credentials: {"livekit": {"url", "api_key", "api_secret"}, '
        '"daily": {"api_key", "api_url"}}; they override the environment',
    )
    parser.add_argument("--json", type=Path, dest="json_path", help="also write the result here")
    parser.add_argument(
        "--customer-hz", type=float, default=440.0, help="customer's tone (default 440)"
    )
    parser.add_argument(
        "--support-hz", type=float, default=550.0, help="support's tone (default 550)"
    )
    parser.add_argument(
        "--min-heard",
        type=float,
        default=90.0,
        help="percent of the other's talk time each side must hear its tone in (default 90)",
    )
    parser.add_argument(
        "--silent",
        choices=("customer", "support"),
        help="self-test: this side publishes silence instead of its tone, so its direction "
        "must fail",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=30.0,
        help="seconds to wait for joining and for audio to flow (default 30)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the turn schedule")
    parser.add_argument("--log-level", default="INFO", help="log level on stderr (default INFO)")
    parser.set_defaults(func=run, parser=parser)
    return parser


def _duration(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < MIN_DURATION_SECS:
        raise argparse.ArgumentTypeError(
            f"must be at least {MIN_DURATION_SECS:g} s so both sides get a turn"
        )
    return value


def run(args: argparse.Namespace) -> int:
    """Run the conversation test from parsed arguments; returns the exit code."""
    problem = _check_arguments(args)
    if problem:
        print(f"echo-bench converse: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        credentials = load_credentials(args.platform, args.config)
    except CredentialsError as e:
        print(f"echo-bench converse: {e}", file=sys.stderr)
        return EXIT_USAGE
    logger.remove()
    logger.add(sys.stderr, level=args.log_level.upper(), format="{time:HH:mm:ss.SSS} | {message}")
    options = Options(
        platform=args.platform,
        duration=args.duration,
        customer_hz=args.customer_hz,
        support_hz=args.support_hz,
        min_heard=args.min_heard,
        silent=args.silent,
        connect_timeout=args.connect_timeout,
        seed=args.seed,
    )
    try:
        result = asyncio.run(converse(options, credentials))
    except ConverseError as e:
        print(f"echo-bench converse: {e}", file=sys.stderr)
        return EXIT_PLATFORM
    except KeyboardInterrupt:
        print("echo-bench converse: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(format_proof(result))
    if args.json_path:
        args.json_path.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    for direction in result.directions:
        print(direction.verdict(result.min_heard))
    if result.passed:
        return EXIT_PASSED
    failed = ", ".join(d.label for d in result.directions if not d.passed)
    print(f"echo-bench converse: failed: {failed}", file=sys.stderr)
    return EXIT_FAILED


def _check_arguments(args: argparse.Namespace) -> str | None:
    for role, freq in (("customer", args.customer_hz), ("support", args.support_hz)):
        if not is_valid_tone(freq):
            return f"--{role}-hz must be between 100 and 8000 Hz"
    if abs(args.customer_hz - args.support_hz) < MIN_TONE_SPACING_HZ:
        return f"--customer-hz and --support-hz must be at least {MIN_TONE_SPACING_HZ:g} Hz apart"
    if not 0 < args.min_heard <= 100:
        return "--min-heard must be a percentage above 0 and at most 100"
    if not args.connect_timeout > 0:
        return "--connect-timeout must be positive"
    if args.json_path and not args.json_path.parent.is_dir():
        return f"--json {args.json_path}: directory {args.json_path.parent} does not exist"
    return None


def load_credentials(
    platform: str, config_path: Path | None
) -> LiveKitCredentials | DailyCredentials | None:
    """The platform's credentials: from `--config` first, then the environment (and `.env`).

    Raises:
        CredentialsError: the config file is unreadable, or a credential is missing; the
            message names every missing variable and never quotes a value.
    """
    if platform == "local":
        return None
    section = _config_section(platform, config_path)
    try:
        settings = Environment()
    except ValidationError as e:
        fields = ", ".join(str(err["loc"][0]).upper() for err in e.errors() if err["loc"])
        raise CredentialsError(f"invalid settings in the environment: {fields}") from None

    def pick(key: str, env_value) -> str:
        value = section.get(key)
        if value is None and env_value is not None:
            value = (
                env_value.get_secret_value()
                if hasattr(env_value, "get_secret_value")
                else env_value
            )
        return value.strip() if isinstance(value, str) else ""

    if platform == "livekit":
        values = {
            "url": (pick("url", settings.livekit_url), "LIVEKIT_URL"),
            "api_key": (pick("api_key", settings.livekit_api_key), "LIVEKIT_API_KEY"),
            "api_secret": (pick("api_secret", settings.livekit_api_secret), "LIVEKIT_API_SECRET"),
        }
    else:
        values = {
            "api_key": (pick("api_key", settings.daily_api_key), "DAILY_API_KEY"),
            "api_url": (pick("api_url", settings.daily_api_url), "DAILY_API_URL"),
        }
    missing = [(key, env) for key, (value, env) in values.items() if not value]
    if missing:
        names = ", ".join(env for _, env in missing)
        keys = ", ".join(f"{platform}.{key}" for key, _ in missing)
        raise CredentialsError(
            f"{platform} credentials missing: set {names} in the environment, "
            f"or {keys} in a --config file"
        )
    kwargs = {key: value for key, (value, _) in values.items()}
    return LiveKitCredentials(**kwargs) if platform == "livekit" else DailyCredentials(**kwargs)


def _config_section(platform: str, config_path: Path | None) -> dict:
    if config_path is None:
        return {}
    try:
        data = json.loads(config_path.read_text())
    except OSError as e:
        raise CredentialsError(f"cannot read --config {config_path}: {e.strerror}") from None
    except ValueError:
        raise CredentialsError(f"--config {config_path} is not valid JSON") from None
    if not isinstance(data, dict):
        raise CredentialsError(f"--config {config_path} must hold a JSON object")
    section = data.get(platform, {})
    if not isinstance(section, dict):
        raise CredentialsError(f'--config {config_path}: "{platform}" must be an object')
    return section


class _Ear:
    """What one speaker heard from the other so far: frames, bytes, frames with the tone."""

    def __init__(self, speaker: Speaker, tone_hz: float):
        self._speaker = speaker
        self.counter = ToneCounter(tone_hz)
        self.frames = 0
        self.samples = 0

    def update(self) -> None:
        blocks = self._speaker.heard.blocks
        new = blocks[self.frames : len(blocks)]
        self.frames += len(new)
        for _, samples in new:
            self.counter.feed(samples)
            self.samples += len(samples)


async def converse(
    options: Options, credentials: LiveKitCredentials | DailyCredentials | None
) -> Conversation:
    """Run one conversation test and measure it.

    Raises:
        ConverseError: the platform failed to set the conversation up.
    """
    turns = conversation_turns(options.duration, seed=options.seed)
    length = round(options.duration * SAMPLE_RATE / FRAME_SAMPLES) * FRAME_SAMPLES
    speakers = []
    for index, (role, prefix, tone_hz) in enumerate(
        (
            ("customer", "customer", options.customer_hz),
            ("support", "support-agent", options.support_hz),
        )
    ):
        own_turns = [(t.start, t.end) for t in turns if t.speaker == index]
        voice = Voice(tone_hz, own_turns, length, silent=options.silent == role)
        speakers.append(Speaker(role, unique_identity(prefix), voice))
    customer, support = speakers
    customer.listens_to, support.listens_to = support.identity, customer.identity
    ears = {
        customer.role: _Ear(customer, support.voice.tone_hz),
        support.role: _Ear(support, customer.voice.tone_hz),
    }
    for speaker in speakers:
        silent = " (silent: self-test)" if speaker.voice.silent else ""
        logger.info(
            f"{speaker.role} is {speaker.identity}, talks at {speaker.voice.tone_hz:g} Hz{silent}"
        )

    with logger.contextualize(platform=options.platform):
        async with _join(options, credentials, customer, support) as room:
            with logger.contextualize(room=room.name):
                await _wait_for_audio(customer, support, options.connect_timeout)
                for speaker in speakers:
                    speaker.voice.start()
                logger.info(f"conversation started: {options.duration:g} s of turns")
                await _talk(options.duration, speakers, ears)
                logger.info(f"conversation over; {DRAIN_SECS:g} s for the last audio to arrive")
                await asyncio.sleep(DRAIN_SECS)
                for ear in ears.values():
                    ear.update()
                transport = await room.transport_stats() if room.transport_stats else {}
                name = room.name
    logger.info(f"left room {name}")

    directions = []
    for sender, receiver in ((customer, support), (support, customer)):
        ear = ears[receiver.role]
        talk = sender.voice.talk_frames
        heard = min(ear.counter.tone_frames, talk) / talk * 100 if talk else 0.0
        directions.append(
            Direction(
                sender=sender.role,
                receiver=receiver.role,
                sender_identity=sender.identity,
                receiver_identity=receiver.identity,
                tone_hz=sender.voice.tone_hz,
                chunks_sent=sender.voice.chunks,
                bytes_sent=sender.voice.bytes,
                frames_received=ear.frames,
                bytes_received=2 * ear.samples,
                seconds_received=ear.samples / SAMPLE_RATE,
                talk_frames=talk,
                tone_frames=ear.counter.tone_frames,
                heard_percent=heard,
                dominant_hz=dominant_frequency(receiver.heard.samples()),
                passed=talk > 0 and heard >= options.min_heard,
                transport=_transport_figures(transport, sender.role, receiver.role),
            )
        )
    return Conversation(options.platform, name, options.duration, options.min_heard, directions)


@asynccontextmanager
async def _join(
    options: Options,
    credentials: LiveKitCredentials | DailyCredentials | None,
    customer: Speaker,
    support: Speaker,
) -> AsyncIterator[Room]:
    """Both speakers in one room of the chosen platform (SDKs are imported only if used)."""
    if options.platform == "local":
        room = join_local(customer, support, options.connect_timeout)
    elif options.platform == "livekit":
        room = join_livekit(
            customer,
            support,
            credentials.url,
            credentials.api_key,
            credentials.api_secret,
            options.connect_timeout,
            options.duration,
        )
    else:
        room = join_daily(
            customer,
            support,
            credentials.api_key,
            credentials.api_url,
            options.connect_timeout,
            options.duration,
        )
    async with room as joined:
        yield joined


async def _wait_for_audio(customer: Speaker, support: Speaker, connect_timeout: float) -> None:
    """Wait until each side receives audio, so no turn is spoken into an unconnected room."""
    deadline = time.perf_counter() + connect_timeout
    while time.perf_counter() < deadline:
        if customer.heard.blocks and support.heard.blocks:
            logger.info("audio flows both ways")
            return
        await asyncio.sleep(0.05)
    for speaker in (customer, support):
        if not speaker.heard.blocks:
            logger.warning(
                f"{speaker.role} has received no audio after {connect_timeout:g} s; "
                "starting the conversation anyway"
            )


async def _talk(duration: float, speakers: list[Speaker], ears: dict[str, _Ear]) -> None:
    """Let the turns play, logging live statistics every few seconds."""
    started = time.perf_counter()
    deadline = started + duration + FINISH_GRACE_SECS
    next_stats = started + STATS_INTERVAL_SECS
    while not all(s.voice.finished for s in speakers):
        now = time.perf_counter()
        if now >= deadline:
            late = ", ".join(s.role for s in speakers if not s.voice.finished)
            logger.warning(f"{late} did not finish sending the conversation in time")
            return
        await asyncio.sleep(min(0.1, max(next_stats - now, 0.0)))
        if time.perf_counter() >= next_stats:
            next_stats += STATS_INTERVAL_SECS
            for ear in ears.values():
                ear.update()
            elapsed = time.perf_counter() - started
            logger.info(f"after {elapsed:.0f} s: {_live_stats(speakers, ears)}")


def _live_stats(speakers: list[Speaker], ears: dict[str, _Ear]) -> str:
    customer, support = speakers
    parts = []
    for sender, receiver in ((customer, support), (support, customer)):
        ear = ears[receiver.role]
        parts.append(
            f"{sender.role} -> {receiver.role}: {sender.voice.chunks} chunks "
            f"({sender.voice.bytes / 1000:.0f} kB) sent, {ear.frames} frames "
            f"({2 * ear.samples / 1000:.0f} kB) received, tone in "
            f"{ear.counter.tone_frames}/{sender.voice.talk_frames} talk frames"
        )
    return " | ".join(parts)


def _transport_figures(transport: dict[str, dict], sender: str, receiver: str) -> dict:
    sent = transport.get(sender, {})
    received = transport.get(receiver, {})
    figures = {}
    for key in ("rtp_packets_sent", "rtp_bytes_sent"):
        if key in sent:
            figures[key] = sent[key]
    for key in ("rtp_packets_received", "rtp_packets_lost"):
        if key in received:
            figures[key] = received[key]
    return figures


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def format_proof(result: Conversation) -> str:
    """The proof table: one column per direction."""
    first, second = result.directions
    rows: list[tuple[str, str, str]] = []

    def row(name: str, value) -> None:
        rows.append((name, value(first), value(second)))

    row("chunks sent (20 ms)", lambda d: f"{d.chunks_sent:,}")
    row("bytes sent", lambda d: f"{d.bytes_sent:,}")
    if first.transport or second.transport:
        row("RTP packets sent", lambda d: _count(d.transport.get("rtp_packets_sent")))
        row("RTP bytes sent", lambda d: _count(d.transport.get("rtp_bytes_sent")))
        row("RTP packets received", lambda d: _count(d.transport.get("rtp_packets_received")))
        row("RTP packets lost", lambda d: _count(d.transport.get("rtp_packets_lost")))
    row("audio frames received", lambda d: f"{d.frames_received:,}")
    row("bytes received", lambda d: f"{d.bytes_received:,}")
    row("audio received (s)", lambda d: f"{d.seconds_received:.2f}")
    row("sender's talk frames", lambda d: f"{d.talk_frames:,}")
    row("frames with its tone", lambda d: f"{d.tone_frames:,}")
    row("tone heard in talk time", lambda d: f"{d.heard_percent:.1f} %")
    row(
        "dominant frequency heard",
        lambda d: "none" if d.dominant_hz is None else f"{d.dominant_hz:.1f} Hz",
    )
    row("tone sent", lambda d: f"{d.tone_hz:g} Hz")
    row("result", lambda d: "PASS" if d.passed else "FAIL")

    width = max(len(name) for name, _, _ in rows)
    columns = [
        max(len(first.label), *(len(a) for _, a, _ in rows)),
        max(len(second.label), *(len(b) for _, _, b in rows)),
    ]
    lines = [
        f"Conversation proof: {result.platform} room {result.room}, {result.duration:g} s of turns",
        f"  customer = {first.sender_identity}, support = {first.receiver_identity}",
        "",
        f"{'':{width}}   {first.label:>{columns[0]}}   {second.label:>{columns[1]}}",
    ]
    lines += [f"{name:{width}}   {a:>{columns[0]}}   {b:>{columns[1]}}" for name, a, b in rows]
    sent = sum(d.bytes_sent for d in result.directions)
    received = sum(d.bytes_received for d in result.directions)
    lines += [
        "",
        f"total data: {sent:,} bytes sent, {received:,} bytes received "
        f"({sum(d.chunks_sent for d in result.directions):,} chunks sent, "
        f"{sum(d.frames_received for d in result.directions):,} frames received)",
    ]
    return "\n".join(lines)
