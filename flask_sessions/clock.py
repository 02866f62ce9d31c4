"""Clocks: every timeout decision asks one of these for "now".

The manager and the reaper never call ``datetime.now()`` directly, so tests can move
time forward by minutes without sleeping::

    clock = ManualClock()
    FlaskSessions(app, clock=clock)
    clock.advance(minutes=6)   # the next reaper tick sees the session as expired
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]
"""A callable returning the current time as a timezone-aware datetime."""


def system_clock() -> datetime:
    """The real wall clock, in UTC."""
    return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to; thread-safe.

    Example::

        clock = ManualClock()
        clock.advance(minutes=5, seconds=1)
    """

    def __init__(self, start: datetime | None = None) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start or system_clock()
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """Move the clock forward by ``delta`` or by ``timedelta(**kwargs)``."""
        step = delta if delta is not None else timedelta(**kwargs)
        if step < timedelta(0):
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._now += step
            return self._now
