"""Prometheus metrics (prometheus-client), one registry per app: no module globals.

Counters and the latency histogram are updated as things happen; gauges (sessions by
status, warm pool, capacity left, browser up) are read from the manager at scrape time.
No label carries a session id or a principal, so the series count stays fixed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from flask_sessions.host.manager import SessionManager

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Session events the manager reports (see SessionManager's ``events``).
ENDED = ("closed", "timed_out", "error")


class Metrics:
    """The metrics of one app. ``render()`` is the ``/metrics`` body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.started = Counter(
            "flask_sessions_sessions_started",
            "Sessions started.",
            registry=self.registry,
        )
        self.ended = Counter(
            "flask_sessions_sessions_ended",
            "Sessions ended, by how: closed, timed_out or error.",
            ["status"],
            registry=self.registry,
        )
        for status in ENDED:
            self.ended.labels(status)
        self.refused = Counter(
            "flask_sessions_starts_refused",
            "Starts refused for lack of room (429: capacity or per-principal cap).",
            ["reason"],
            registry=self.registry,
        )
        for reason in ("capacity", "principal"):
            self.refused.labels(reason)
        self.requests = Counter(
            "flask_sessions_requests",
            "HTTP requests answered, by route, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "flask_sessions_request_duration_seconds",
            "Time to answer an HTTP request, by route and method.",
            ["route", "method"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )

    def session_event(self, event: str) -> None:
        """Called by the manager: ``started``, ``closed``, ``timed_out``, ``error``,
        ``refused:capacity`` or ``refused:principal``."""
        if event == "started":
            self.started.inc()
        elif event in ENDED:
            self.ended.labels(event).inc()
        elif event.startswith("refused:"):
            self.refused.labels(event.partition(":")[2]).inc()

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def watch(self, manager: SessionManager) -> None:
        """Read the manager's gauges at every scrape."""
        self.registry.register(_ManagerCollector(manager))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ManagerCollector(Collector):
    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager

    def collect(self) -> Iterable[Metric]:
        manager = self.manager
        sessions = GaugeMetricFamily(
            "flask_sessions_sessions",
            "Sessions known to this process (ended ones until purged), by status.",
            labels=["status"],
        )
        for status, count in manager.status_counts().items():
            sessions.add_metric([status], count)
        yield sessions
        yield GaugeMetricFamily(
            "flask_sessions_capacity_left",
            "Sessions that can still start (SESSIONS_MAX_SESSIONS minus those in use).",
            value=max(0, manager.settings.max_sessions - manager.active_count),
        )
        yield GaugeMetricFamily(
            "flask_sessions_warm_pool_ready",
            "Contexts ready in the warm pool.",
            value=len(manager.pool),
        )
        yield GaugeMetricFamily(
            "flask_sessions_browser_up",
            "1 while Chromium is running and connected.",
            value=1 if manager.runtime.browser_connected else 0,
        )
        yield CounterMetricFamily(
            "flask_sessions_browser_launches",
            "Chromium launches (the first, and relaunches after a crash).",
            value=manager.runtime.launches,
        )
        yield CounterMetricFamily(
            "flask_sessions_browser_crashes",
            "Times Chromium exited without being asked to.",
            value=manager.runtime.crashes,
        )
        # live view and recordings (issue 20)
        if manager.cdp is not None:
            yield from manager.cdp.live.metrics()
        yield from manager.recordings.metrics()
