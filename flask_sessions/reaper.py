"""The reaper: when a session has expired, and the loop task that closes it.

The rules are plain functions of a record and "now" so unit tests can check them with
any clock; :class:`Reaper` runs them on the runtime loop every interval.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .manager import SessionManager, SessionRecord

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


def purge_due(record: SessionRecord, now: datetime, retention: timedelta) -> bool:
    """An ended session's record is dropped once it has been ended for ``retention``."""
    return record.closed_at is not None and now > record.closed_at + retention


class Reaper:
    """Ticks every ``interval`` seconds on the runtime loop and asks the manager to reap."""

    def __init__(self, manager: SessionManager, interval: float) -> None:
        self.manager = manager
        self.interval = interval
        self.ticks = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.manager.reap()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad tick must not stop the reaper
                log.exception("flask_sessions: reaper tick failed")
            self.ticks += 1
