"""The reaper: when a session has expired, and the loop task that closes it.

The rules are plain functions of a record and "now" so unit tests can check them with
any clock; :class:`Reaper` runs them on the runtime loop every interval.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import deque
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask_sessions.host.manager import SessionManager, SessionRecord

log = logging.getLogger("flask_sessions")


def expiry_reason(record: SessionRecord, now: datetime, max_lifetime: timedelta) -> str | None:
    """Why an active session must be closed now, or None while it may live on.

    Idle timeout: ``now > last_accessed_at + timeout_minutes`` unless ``keep_alive``.
    Lifetime cap: ``now > created_at + max_lifetime``, keep_alive or not.
    """
    if now > record.created_at + max_lifetime:
        minutes = max_lifetime.total_seconds() / 60
        return f"lifetime cap reached: sessions live at most {minutes:g} minutes"
    if not record.keep_alive and now > record.idle_deadline:
        return f"idle timeout: no access for more than {record.timeout_minutes} minutes"
    return None


class DeadlineQueue:
    """Session deadlines in a min-heap, so a reaper tick costs O(expired · log n).

    Entries are never updated in place: a touch pushes the new deadline and the old entry
    becomes stale. Popped entries are re-checked against the record (``expiry_reason``), so
    a stale one is simply dropped.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, str]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, deadline: datetime, session_id: str) -> None:
        heapq.heappush(self._heap, (deadline, next(self._seq), session_id))

    def due(self, now: datetime) -> list[str]:
        """Pop and return the ids whose deadline is strictly before ``now``."""
        out = []
        while self._heap and self._heap[0][0] < now:
            out.append(heapq.heappop(self._heap)[2])
        return out

    def earliest(self) -> datetime | None:
        return self._heap[0][0] if self._heap else None


class EndedQueue:
    """Ended sessions in the order they ended, for purging after the retention window."""

    def __init__(self) -> None:
        self._queue: deque[tuple[datetime, str]] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def push(self, closed_at: datetime, session_id: str) -> None:
        self._queue.append((closed_at, session_id))

    def due(self, now: datetime, retention: timedelta) -> list[str]:
        out = []
        while self._queue and now > self._queue[0][0] + retention:
            out.append(self._queue.popleft()[1])
        return out


class Reaper:
    """Ticks every ``interval`` seconds on the runtime loop and asks the manager to reap."""

    def __init__(self, manager: SessionManager, interval: float) -> None:
        self.manager = manager
        self.interval = interval
        self.ticks = 0

    async def run(self) -> None:
        """Tick at a fixed rate: a slow tick (many contexts to close) does not push the
        next one back, so a deadline waits at most about one interval for its tick."""
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + self.interval
        while True:
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            next_tick = max(next_tick + self.interval, loop.time())
            try:
                await self.manager.reap()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad tick must not stop the reaper
                log.exception("flask_sessions: reaper tick failed")
            self.ticks += 1
