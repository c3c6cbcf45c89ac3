"""Statistics of ping runs: loss, percentiles, jitter, net RTT, clock offset, one-way delays.

Round trips are differences of the client's monotonic clock, the agent's hold a difference
of the server's clock. Client and server clocks meet only in the clock offset, estimated
NTP-style from the four timestamps of each ping, with its error bound; one-way delays
are given only when that bound is small enough.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from echo_bench.wire import Pong, parse_reply

__all__ = [
    "ONE_WAY_MAX_BOUND",
    "OFFSET_FASTEST_SHARE",
    "ClockOffset",
    "PingLog",
    "PingOutcome",
    "PingSample",
    "describe",
    "jitter",
    "jitter_rfc3550",
    "clock_offset",
    "one_way",
    "one_way_problem",
    "session_offset",
    "summarize_setup",
    "percentile",
    "summarize",
]


class PingOutcome(StrEnum):
    """What a reply did to the run."""

    SAMPLE = "sample"
    """The first pong of its ping, within the timeout: one RTT sample."""
    LATE = "late"
    """The first pong of its ping, after the timeout: the ping stays lost."""
    DUPLICATE = "duplicate"
    """A further pong of a ping already answered (or already late)."""
    UNEXPECTED = "unexpected"
    """A pong for a seq never sent, or not a pong at all."""


@dataclass
class PingSample:
    """One ping and what came back for it.

    Attributes:
        seq: The ping's sequence number.
        sent_time: Wall-clock send time (`time.time()`), for the record only.
        sent_perf: Monotonic send time (`time.perf_counter()`), for round trips.
        rtt: Round trip in seconds; None when lost (late pongs included).
        late_rtt: Round trip of a pong that came after the timeout.
        server_receive_time: The server's clock when the ping arrived.
        server_send_time: The server's clock when the pong left.
        duplicates: Pongs received after the first one.
    """

    seq: int
    sent_time: float
    sent_perf: float
    rtt: float | None = None
    late_rtt: float | None = None
    server_receive_time: float | None = None
    server_send_time: float | None = None
    duplicates: int = 0

    @property
    def status(self) -> str:
        """`ok`, `late` or `lost`."""
        if self.rtt is not None:
            return "ok"
        return "late" if self.late_rtt is not None else "lost"

    @property
    def server_processing(self) -> float | None:
        """Server send minus server receive time, in seconds (server clock only)."""
        if self.rtt is None or self.server_receive_time is None or self.server_send_time is None:
            return None
        return self.server_send_time - self.server_receive_time

    @property
    def net_rtt(self) -> float | None:
        """The round trip minus the agent's hold (`server_processing`), in seconds."""
        hold = self.server_processing
        return None if hold is None else self.rtt - hold


@dataclass
class PingLog:
    """The pings of one session, and the pongs matched to them by `seq`.

    A pong counts as a sample only if it is the first for its seq and arrived within
    `timeout` of its ping; a later one is `late`, a further one a `duplicate`, one
    for an unknown seq `unexpected`. None of those ever becomes a sample.
    """

    timeout: float
    samples: dict[int, PingSample] = field(default_factory=dict)
    late: int = 0
    duplicates: int = 0
    unexpected: int = 0
    answered: int = 0
    """Pings with a first pong, in time or late."""

    def sent(self, seq: int, sent_time: float, sent_perf: float) -> PingSample:
        """Record a ping just sent."""
        sample = PingSample(seq=seq, sent_time=sent_time, sent_perf=sent_perf)
        self.samples[seq] = sample
        return sample

    def received(self, arrival_perf: float, message: dict) -> PingOutcome:
        """Match one reply (seed format), arrived at `arrival_perf`, to its ping."""
        reply = parse_reply(message)
        sample = self.samples.get(reply.seq) if isinstance(reply, Pong) else None
        if sample is None:
            self.unexpected += 1
            return PingOutcome.UNEXPECTED
        if sample.rtt is not None or sample.late_rtt is not None:
            sample.duplicates += 1
            self.duplicates += 1
            return PingOutcome.DUPLICATE
        rtt = arrival_perf - sample.sent_perf
        if rtt > self.timeout:
            sample.late_rtt = rtt
            self.late += 1
            self.answered += 1
            return PingOutcome.LATE
        sample.rtt = rtt
        self.answered += 1
        sample.server_receive_time = reply.server_receive_time
        sample.server_send_time = reply.server_send_time
        return PingOutcome.SAMPLE

    def ordered(self) -> list[PingSample]:
        """The samples in send order."""
        return sorted(self.samples.values(), key=lambda s: s.sent_perf)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), linear interpolation between closest ranks.

    This is numpy's default ("linear", Hyndman & Fan type 7). None for no values.
    """
    if len(values) == 0:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def jitter(rtts: Sequence[float]) -> float | None:
    """Mean absolute difference of consecutive round trips (RFC 3550's D, unsmoothed).

    `rtts` are the received round trips in send order; lost pings are simply skipped.
    None with fewer than two values.
    """
    if len(rtts) < 2:
        return None
    return float(np.mean(np.abs(np.diff(np.asarray(rtts, dtype=np.float64)))))


def jitter_rfc3550(rtts: Sequence[float]) -> float | None:
    """RFC 3550's running estimate, J += (|D| - J) / 16, after the last value."""
    if len(rtts) < 2:
        return None
    estimate = 0.0
    for previous, current in zip(rtts, rtts[1:], strict=False):
        estimate += (abs(current - previous) - estimate) / 16
    return estimate


def describe(values: Sequence[float]) -> dict[str, float | None]:
    """min, mean, p50, p95, p99, max and (population) stdev of `values`."""
    if len(values) == 0:
        return dict.fromkeys(("min", "mean", "p50", "p95", "p99", "max", "stdev"))
    array = np.asarray(values, dtype=np.float64)
    return {
        "min": float(array.min()),
        "mean": float(array.mean()),
        "p50": percentile(array, 50),
        "p95": percentile(array, 95),
        "p99": percentile(array, 99),
        "max": float(array.max()),
        "stdev": float(array.std()),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000.0


OFFSET_FASTEST_SHARE = 0.1
"""The clock offset comes from this share of the pings with the lowest net RTT (at least 1)."""
ONE_WAY_MAX_BOUND = 0.25
"""One-way delays are given when the offset's error bound is at most this share of the
net RTT p50 (beyond it, how the round trip splits is not known well enough)."""


@dataclass(frozen=True)
class ClockOffset:
    """The server clock minus the client clock, NTP style.

    Attributes:
        offset: Seconds to add to a client time to get the server's clock.
        bound: The true offset lies within `offset` ± `bound` (if the clocks did not
            drift during the run).
        samples: Pings it was estimated from.
    """

    offset: float
    bound: float
    samples: int


def clock_offset(samples: Sequence[PingSample]) -> ClockOffset | None:
    """The clock offset from the pings with the lowest net RTT; None without server times.

    A ping sent at client time t0, received by the server at t1, answered at t2 and back
    at client time t3 = t0 + RTT bounds the offset by causality: t2 - t3 <= offset <=
    t1 - t0 (a window as wide as its net RTT, centred on NTP's ((t1 - t0) + (t2 - t3)) / 2).
    The estimate is the middle of the intersection of the windows of the fastest
    `OFFSET_FASTEST_SHARE` of the pings, its bound half the intersection's width; if
    those windows do not overlap (the clocks drifted), the fastest ping's window alone.
    """
    timed = sorted((s for s in samples if s.net_rtt is not None), key=lambda s: s.net_rtt)
    if not timed:
        return None
    fastest = timed[: max(1, round(len(timed) * OFFSET_FASTEST_SHARE))]
    low = max(s.server_send_time - (s.sent_time + s.rtt) for s in fastest)
    high = min(s.server_receive_time - s.sent_time for s in fastest)
    if low > high:
        best = fastest[0]
        low = best.server_send_time - (best.sent_time + best.rtt)
        high = best.server_receive_time - best.sent_time
        fastest = fastest[:1]
    return ClockOffset((low + high) / 2, (high - low) / 2, len(fastest))


def one_way(sample: PingSample, offset: ClockOffset) -> tuple[float, float] | None:
    """(client -> agent, agent -> client) delay of one ping in seconds; None without times."""
    if sample.net_rtt is None:
        return None
    up = sample.server_receive_time - offset.offset - sample.sent_time
    down = sample.sent_time + sample.rtt - (sample.server_send_time - offset.offset)
    return up, down


def one_way_problem(offset: ClockOffset | None, net_p50: float | None) -> str | None:
    """Why one-way delays are not given for this offset, or None when they are."""
    if offset is None or net_p50 is None:
        return "no pong carried the agent's times"
    if offset.bound > ONE_WAY_MAX_BOUND * net_p50:
        return (
            f"the clock offset is known to ±{offset.bound * 1000:.3f} ms, more than "
            f"{ONE_WAY_MAX_BOUND:.0%} of the net RTT p50 ({net_p50 * 1000:.3f} ms)"
        )
    return None


def session_offset(log: "PingLog") -> tuple[ClockOffset | None, str | None]:
    """A session's clock offset, and why its one-way delays are not given (None: they are)."""
    ordered = log.ordered()
    offset = clock_offset(ordered)
    net_p50 = percentile([n for s in ordered if (n := s.net_rtt) is not None], 50)
    return offset, one_way_problem(offset, net_p50)


def summarize_setup(setups: Sequence[dict[str, float]]) -> dict[str, dict]:
    """p50, min, max (ms) and count of each setup phase over sessions (seconds in)."""
    phases: dict[str, list[float]] = {}
    for setup in setups:
        for phase, seconds in setup.items():
            phases.setdefault(phase, []).append(seconds)
    return {
        phase: {
            "p50": _ms(percentile(values, 50)),
            "min": _ms(min(values)),
            "max": _ms(max(values)),
            "count": len(values),
        }
        for phase, values in phases.items()
    }


def summarize(sessions: Iterable[PingLog]) -> dict:
    """The figures of one or more sessions pooled together; times in milliseconds.

    RTT percentiles pool every sample; jitter pools the consecutive differences of
    each session (never across sessions).
    """
    sessions = list(sessions)
    rtts: list[float] = []
    differences: list[float] = []
    smoothed: list[float] = []
    processing: list[float] = []
    net: list[float] = []
    ups: list[float] = []
    downs: list[float] = []
    offsets: list[ClockOffset | None] = []
    problems: list[str] = []
    sent = late = duplicates = unexpected = 0
    for log in sessions:
        ordered = log.ordered()
        session_rtts = [s.rtt for s in ordered if s.rtt is not None]
        rtts += session_rtts
        differences += list(np.abs(np.diff(session_rtts))) if len(session_rtts) > 1 else []
        if (value := jitter_rfc3550(session_rtts)) is not None:
            smoothed.append(value)
        processing += [p for s in ordered if (p := s.server_processing) is not None]
        net += [n for s in ordered if (n := s.net_rtt) is not None]
        offset, problem = session_offset(log)
        offsets.append(offset)
        if problem:
            problems.append(problem)
        else:
            delays = [d for s in ordered if (d := one_way(s, offset))]
            ups += [up for up, _ in delays]
            downs += [down for _, down in delays]
        sent += len(ordered)
        late += log.late
        duplicates += log.duplicates
        unexpected += log.unexpected
    received = len(rtts)
    rtt = {k: _ms(v) for k, v in describe(rtts).items()}
    return {
        "sent": sent,
        "received": received,
        "lost": sent - received,
        "loss_pct": 100.0 * (sent - received) / sent if sent else None,
        "late": late,
        "duplicates": duplicates,
        "unexpected": unexpected,
        "rtt_ms": rtt,
        "jitter_ms": _ms(float(np.mean(differences))) if differences else None,
        "jitter_rfc3550_ms": _ms(float(np.mean(smoothed))) if smoothed else None,
        "server_processing_ms": {
            "p50": _ms(percentile(processing, 50)),
            "p99": _ms(percentile(processing, 99)),
            "count": len(processing),
        },
        "net_rtt_ms": {k: _ms(v) for k, v in describe(net).items()},
        "clock_offset_ms": _offset_ms(offsets[0]) if len(offsets) == 1 else None,
        "one_way_ms": None
        if problems
        else {
            "client_to_agent": {k: _ms(v) for k, v in describe(ups).items()},
            "agent_to_client": {k: _ms(v) for k, v in describe(downs).items()},
        },
        "one_way_not_given": problems[0] if problems else None,
    }


def _offset_ms(offset: ClockOffset | None) -> dict | None:
    if offset is None:
        return None
    return {"offset": offset.offset * 1000, "bound": offset.bound * 1000, "samples": offset.samples}
