"""Prometheus metrics at `GET /metrics`: what a dispatcher or autoscaler reads.

Session and worker figures are read at scrape time from the server's registry and the
worker pool (after the pool has fetched fresh figures from its workers); only the
`/connect` latency histogram is recorded as requests happen.
"""

from collections import Counter
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pool import WorkerPool

__all__ = ["PLATFORMS", "STATUSES", "AgentMetrics"]

PLATFORMS = ("daily", "livekit", "webrtc")
STATUSES = ("waiting", "running")
CONNECT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

SessionCounts = Callable[[], Iterable[tuple[str, str]]]
"""The (platform, status) of every running session."""


class AgentMetrics:
    """The agent's metrics in a registry of its own (one per app, not the global one)."""

    def __init__(self, sessions: SessionCounts, pool: WorkerPool, max_sessions: int):
        """Collect from `sessions` and `pool` at scrape time.

        Args:
            sessions: Yields (platform, status) per running session.
            pool: The worker pool: workers, restarts, pings and drops.
            max_sessions: The server's session limit (`MAX_SESSIONS`).
        """
        self.registry = CollectorRegistry(auto_describe=True)
        self.connect_seconds = Histogram(
            "echo_connect_seconds",
            "Time to answer POST /connect (rooms created, bots placed), by outcome.",
            ["outcome"],
            buckets=CONNECT_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_Collector(sessions, pool, max_sessions))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class _Collector(Collector):
    def __init__(self, sessions: SessionCounts, pool: WorkerPool, max_sessions: int):
        self._sessions = sessions
        self._pool = pool
        self._max_sessions = max_sessions

    def collect(self) -> Iterable[Metric]:
        counts = Counter(self._sessions())
        sessions = GaugeMetricFamily(
            "echo_sessions",
            "Sessions running now, by platform and status.",
            labels=["platform", "status"],
        )
        for platform in PLATFORMS:
            for status in STATUSES:
                sessions.add_metric([platform, status], counts[(platform, status)])
        yield sessions
        yield GaugeMetricFamily(
            "echo_sessions_limit",
            "Sessions this server runs at most (MAX_SESSIONS).",
            value=self._max_sessions,
        )
        pings, dropped = self._pool.totals()
        yield CounterMetricFamily(
            "echo_pings_answered", "Pings answered by this server's bots.", value=pings
        )
        yield CounterMetricFamily(
            "echo_messages_dropped",
            "App messages dropped (over the rate bound or too large).",
            value=dropped,
        )
        yield GaugeMetricFamily(
            "echo_workers_alive",
            "Bot worker processes running (shared and per-Daily-session).",
            value=self._pool.workers_alive,
        )
        yield CounterMetricFamily(
            "echo_worker_restarts",
            "Shared bot workers replaced after they died.",
            value=self._pool.restarts,
        )
