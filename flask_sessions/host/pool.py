"""The warm pool: contexts + pages made ahead, so a default start is a hand-over.

A pooled context is handed to exactly one session and closed with it: never recycled,
so no cookie or storage crosses sessions. The pool counts against capacity (it only
fills the room ``SESSIONS_MAX_SESSIONS`` leaves), refills in the background one context
at a time, and empties when memory runs low or the browser dies.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

import psutil
from playwright.async_api import BrowserContext
from playwright.async_api import Error as PlaywrightError

from flask_sessions.errors import SessionsError
from flask_sessions.host.live import LiveSession

log = logging.getLogger("flask_sessions")


def available_memory_mb() -> float | None:
    """Memory available to new work, in MB (psutil: ``MemAvailable`` on Linux, its
    equivalent elsewhere); None if the platform cannot tell."""
    try:
        return psutil.virtual_memory().available / (1 << 20)
    except (OSError, RuntimeError, psutil.Error):
        return None


class WarmPool:
    """Ready ``LiveSession``s waiting for a start.

    ``make`` opens one (on the runtime loop); ``room`` says how many more contexts
    capacity allows right now; ``memory_mb`` reads available memory.
    """

    def __init__(
        self,
        size: int,
        make: Callable[[], Awaitable[LiveSession]],
        room: Callable[[], int],
        min_free_mb: float,
        memory_mb: Callable[[], float | None] = available_memory_mb,
    ) -> None:
        self.size = size
        self._make = make
        self._room = room
        self._min_free_mb = min_free_mb
        self._memory_mb = memory_mb
        self._ready: deque[LiveSession] = deque()
        self._making = 0  # being created right now: they count against capacity too
        self._appended = asyncio.Event()
        self._refill_task: asyncio.Task[None] | None = None
        self.handed_out = 0
        self.closed = False

    def __len__(self) -> int:
        return len(self._ready)

    @property
    def reserved(self) -> int:
        """Contexts the pool holds or is creating: what it takes from capacity."""
        return len(self._ready) + self._making

    @property
    def refilling(self) -> bool:
        return self._refill_task is not None and not self._refill_task.done()

    async def settled(self) -> None:
        """Wait for a running refill to finish (tests and benchmarks count contexts)."""
        if self._refill_task is not None:
            await asyncio.gather(self._refill_task, return_exceptions=True)

    def ready_contexts(self) -> list[BrowserContext]:
        return [live.context for live in self._ready]

    async def take_waiting(self) -> LiveSession | None:
        """Like :meth:`take`, but if a refill is creating one right now, wait for it.

        Waiting for the context already on its way is faster than starting another (both
        need the same CPU), and keeps pool + sessions within capacity.
        """
        while not self._ready and self.refilling:
            assert self._refill_task is not None
            self._appended.clear()
            appended = asyncio.ensure_future(self._appended.wait())
            await asyncio.wait({appended, self._refill_task}, return_when="FIRST_COMPLETED")
            appended.cancel()
        return self.take()

    def take(self) -> LiveSession | None:
        """A ready context+page, or None; starts a refill either way."""
        live = None
        while self._ready and live is None:
            candidate = self._ready.popleft()
            if not candidate.page.is_closed():
                live = candidate
            else:  # its page crashed while waiting: close what is left of the context
                asyncio.get_running_loop().create_task(candidate.close())
        if live is not None:
            self.handed_out += 1
        self.refill_soon()
        return live

    def refill_soon(self) -> None:
        """Start a background refill unless one runs (call on the runtime loop)."""
        if self.size <= 0 or self.closed:
            return
        if self._refill_task is None or self._refill_task.done():
            self._refill_task = asyncio.get_running_loop().create_task(self._refill())

    def memory_low(self) -> bool:
        free = self._memory_mb()
        return free is not None and free < self._min_free_mb

    async def _refill(self) -> None:
        while not self.closed and len(self._ready) < self.size and self._room() > 0:
            if self.memory_low():
                log.warning("flask_sessions: memory is low; emptying the warm pool")
                await self.shrink(0)
                return
            self._making += 1
            try:
                live = await self._make()
            except (PlaywrightError, SessionsError) as exc:
                log.warning("flask_sessions: warm pool refill failed: %s", exc)
                return
            finally:
                self._making -= 1
            if self.closed:
                await live.close()
                return
            self._ready.append(live)
            self._appended.set()

    async def shrink(self, keep: int) -> None:
        """Close ready entries beyond ``keep``."""
        while len(self._ready) > keep:
            await self._ready.pop().close()

    def forget(self) -> None:
        """The browser died: its contexts are gone, drop them without closing."""
        self._ready.clear()

    async def close(self) -> None:
        """Stop refilling and close every ready entry."""
        self.closed = True
        if self._refill_task is not None and not self._refill_task.done():
            self._refill_task.cancel()
            await asyncio.gather(self._refill_task, return_exceptions=True)
        await self.shrink(0)
