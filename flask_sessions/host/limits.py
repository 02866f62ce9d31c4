"""Bounds on what a session's pages may use: pages and renderer memory (issue 8).

Everything here runs on the runtime loop, except :meth:`RendererScanner.scan`, which the
watchdog runs in a worker thread.

* :class:`SessionLimits`, one per session (made with its context by ``live.open_live``):
  closes popups and new tabs past ``SESSIONS_MAX_PAGES_PER_SESSION``, and keeps the
  warnings the next observation reports. (Downloads are session files: ``files.py`` and
  ``downloads.py``, issue 19.)
* :class:`BrowserGuard`, one per launched Chromium: a browser-level CDP session (to
  point a context's downloads at that session's own folder, and cancel them; the files
  room listens to its download events), the browser's PID, and the watchdog's last kill.
* :func:`run_watchdog`: every ``SESSIONS_WATCHDOG_INTERVAL_SECONDS`` it reads the
  resident memory of each renderer process under the browser and SIGKILLs one over
  ``SESSIONS_MAX_PAGE_MEMORY_MB``. Chromium then reports the crash on that renderer's
  pages, and the manager ends their session as ``error`` with the figure (see
  :meth:`BrowserGuard.claim_kill`: different contexts never share a renderer, so the
  pages that crash right after a kill are the session that used the memory).

Why a watchdog and not V8 flags: ``--js-flags=--max-old-space-size`` bounds only the
JavaScript heap. Measured on Chromium 156 (headless shell), a page growing
``ArrayBuffer``s or canvases went past 3 GB with the flag set to 1024, and a page of JS
arrays stayed alive at 1.2 GB; the README's "Security and limits" section has the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import psutil
from playwright.async_api import Browser, BrowserContext, CDPSession, Page
from playwright.async_api import Error as PlaywrightError

log = logging.getLogger("flask_sessions")

MB = 1 << 20
KILL_ATTRIBUTION_SECONDS = 10.0  # a crash this soon after a kill is that kill's


@dataclass
class Kill:
    """A renderer the watchdog stopped, and (once its pages crashed) whose it was."""

    pid: int
    rss_mb: int
    at: float  # time.monotonic()
    session_id: str | None = None


class BrowserGuard:
    """Per-Chromium state for the limits: a browser CDP session, the PID, the last kill."""

    def __init__(self, browser: Browser, cdp: CDPSession, pid: int | None) -> None:
        self.browser = browser
        self.cdp = cdp
        self.pid = pid
        self.scanner = RendererScanner()
        self.last_kill: Kill | None = None
        self.kills = 0

    @classmethod
    async def attach(cls, browser: Browser) -> BrowserGuard:
        """Open the browser CDP session and find Chromium's PID."""
        cdp = await browser.new_browser_cdp_session()
        info = await cdp.send("SystemInfo.getProcessInfo")
        pid = next((p["id"] for p in info["processInfo"] if p.get("type") == "browser"), None)
        if pid is None:
            log.warning("flask_sessions: no browser PID from Chromium; memory is not watched")
        return cls(browser, cdp, pid)

    async def allow_downloads(self, context_id: str, directory: str) -> None:
        """Let the context download, into ``directory`` only (Playwright made it "deny")."""
        await self.cdp.send(
            "Browser.setDownloadBehavior",
            {
                "behavior": "allowAndName",
                "browserContextId": context_id,
                "downloadPath": directory,
                "eventsEnabled": True,
            },
        )

    async def cancel_download(self, guid: str, context_id: str) -> None:
        with contextlib.suppress(PlaywrightError):
            await self.cdp.send(
                "Browser.cancelDownload", {"guid": guid, "browserContextId": context_id}
            )

    def may_kill(self) -> bool:
        """One kill at a time: the next waits until the last one's pages have crashed
        (or the attribution window has passed), so no crash is blamed on the wrong kill."""
        last = self.last_kill
        return (
            last is None
            or last.session_id is not None
            or time.monotonic() - last.at > KILL_ATTRIBUTION_SECONDS
        )

    def claim_kill(self, session_id: str) -> Kill | None:
        """The watchdog's kill that made ``session_id``'s page crash, if there is one."""
        last = self.last_kill
        if last is None or time.monotonic() - last.at > KILL_ATTRIBUTION_SECONDS:
            return None
        if last.session_id is None:
            last.session_id = session_id
        return last if last.session_id == session_id else None

    async def watch(self, limit_mb: float) -> None:
        """One watchdog tick: read the renderers' memory, stop one over ``limit_mb``."""
        if self.pid is None or limit_mb <= 0:
            return
        killed = await asyncio.to_thread(
            self.scanner.scan, self.pid, int(limit_mb * MB), self.may_kill()
        )
        if killed is not None:
            pid, rss = killed
            used_mb = -(-rss // MB)  # rounded up: over a 400 MB limit never reads "400 MB"
            self.last_kill = Kill(pid, used_mb, time.monotonic())
            self.kills += 1
            log.warning(
                "flask_sessions: stopped renderer %d: it used %d MB (limit %g MB)",
                pid,
                used_mb,
                limit_mb,
            )

    async def close(self) -> None:
        with contextlib.suppress(PlaywrightError):
            await self.cdp.detach()


class RendererScanner:
    """Reads the renderers under a browser PID with psutil (in a worker thread)."""

    def __init__(self) -> None:
        # pid -> (create_time, role): a process's role (renderer, zygote or other) never
        # changes, so its command line is read once
        self._kinds: dict[int, tuple[float, str]] = {}
        self._killed: set[tuple[int, float]] = set()  # dying: not to be read (or killed) again
        self._zygotes: list[tuple[int, float]] = []  # where renderers come from
        self._ticks = 0
        self.peak_rss = 0  # the largest renderer RSS seen, for tests and the stress run

    def renderers(self, browser_pid: int) -> list[psutil.Process]:
        """The renderer processes under ``browser_pid``.

        Read through the kernel's per-thread ``children`` lists, from the zygotes that
        start renderers (the browser itself, with its 30-odd threads, only every
        ``BROWSER_EVERY`` ticks or when a zygote is gone), never into a renderer, GPU or
        utility process: not every process of the machine, which psutil's
        ``children(recursive=True)`` reads and which cost a fifth of the server's CPU in a
        start-and-close loop. Where the kernel has no such lists, psutil does it.
        """
        self._ticks += 1
        zygotes = [pid for pid, created in self._zygotes if _created(pid) == created]
        fresh = self._ticks % BROWSER_EVERY == 1 or not zygotes or len(zygotes) < len(self._zygotes)
        found: list[psutil.Process] = []
        kinds: dict[int, tuple[float, str]] = {}
        spawners: list[tuple[int, float]] = []
        stack = [browser_pid] if fresh else list(zygotes)
        if not fresh:
            spawners = [(pid, self._kinds[pid][0]) for pid in zygotes if pid in self._kinds]
            kinds.update({pid: self._kinds[pid] for pid in zygotes if pid in self._kinds})
        while stack:
            pids = _child_pids(stack.pop())
            if pids is None:
                return self._renderers_by_psutil(browser_pid)
            for pid in pids:
                try:
                    child = psutil.Process(pid)
                    kind = self._kind(child)
                except psutil.Error:
                    continue
                kinds[pid] = kind
                if kind[1] == "zygote":
                    spawners.append((pid, kind[0]))
                    stack.append(pid)
                elif kind[1] == "renderer" and (pid, kind[0]) not in self._killed:
                    found.append(child)
        if fresh:
            self._zygotes = spawners
        else:  # keep what only the browser's listing shows (GPU, utility) until it is read
            kinds.update({k: v for k, v in self._kinds.items() if v[1] == "other"})
        self._forget_others(kinds)
        return found

    def _kind(self, proc: psutil.Process) -> tuple[float, str]:
        """(create time, role), the command line read until the process has settled.

        A renderer is forked from a zygote and renames itself a moment later: read in that
        moment, its command line is the zygote's. So a role is trusted from the cache only
        once the process is ``ROLE_SETTLE_SECONDS`` old; until then it is read again each
        time. (Cached at once, a renderer misread as a zygote was never watched again: a
        page grew to 744 MB past a 400 MB limit in a full test run.)
        """
        created = proc.create_time()
        known = self._kinds.get(proc.pid)
        if (
            known is not None
            and known[0] == created
            and time.time() - created > ROLE_SETTLE_SECONDS
        ):
            return known
        command = proc.cmdline()
        role = next((r for r in ("renderer", "zygote") if f"--type={r}" in command), "other")
        return created, role

    def _forget_others(self, kinds: dict[int, tuple[float, str]]) -> None:
        self._kinds = kinds
        self._killed &= {(pid, created) for pid, (created, _) in kinds.items()}

    def _renderers_by_psutil(self, browser_pid: int) -> list[psutil.Process]:
        try:
            children = psutil.Process(browser_pid).children(recursive=True)
        except psutil.Error:
            return []
        found, kinds = [], {}
        for child in children:
            try:
                kind = self._kind(child)
            except psutil.Error:
                continue
            kinds[child.pid] = kind
            if kind[1] == "renderer" and (child.pid, kind[0]) not in self._killed:
                found.append(child)
        self._forget_others(kinds)
        return found

    def scan(self, browser_pid: int, limit_bytes: int, may_kill: bool) -> tuple[int, int] | None:
        """SIGKILL the largest renderer over ``limit_bytes`` (if ``may_kill``): its
        ``(pid, rss)``, or None."""
        worst: tuple[int, psutil.Process] | None = None
        for proc in self.renderers(browser_pid):
            try:
                rss = proc.memory_info().rss
            except psutil.Error:
                continue
            self.peak_rss = max(self.peak_rss, rss)
            if rss > limit_bytes and (worst is None or rss > worst[0]):
                worst = (rss, proc)
        if worst is None or not may_kill:
            return None
        rss, proc = worst
        try:
            self._killed.add((proc.pid, proc.create_time()))
            proc.kill()
        except psutil.Error:
            return None
        return proc.pid, rss


ROLE_SETTLE_SECONDS = 5.0
"""A process's command line is read again until it is this old (see RendererScanner._kind)."""

BROWSER_EVERY = 20
"""Watchdog ticks between readings of the browser's own children (zygotes, GPU, utility)."""


def _created(pid: int) -> float | None:
    """A process's start time (None if it is gone): tells a PID reused by another."""
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def _child_pids(pid: int) -> list[int] | None:
    """``pid``'s child processes from /proc/<pid>/task/*/children; None where the kernel
    has no such files (CONFIG_PROC_CHILDREN off), [] for a process that is gone."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return [] if os.path.isdir("/proc/self/task") else None
    pids: list[int] = []
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as listing:
                pids.extend(int(word) for word in listing.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread ended
            return None  # the process is there, its listing is not: no kernel support
        except (OSError, ValueError):
            continue
    return pids


async def run_watchdog(
    guard: Callable[[], BrowserGuard | None], limit_mb: float, interval: float
) -> None:
    """The watchdog task: a tick every ``interval`` seconds on the current guard."""
    while True:
        await asyncio.sleep(interval)
        current = guard()
        if current is None or not current.browser.is_connected():
            continue
        try:
            await current.watch(limit_mb)
        except asyncio.CancelledError:
            raise
        except Exception:  # one bad tick must not stop the watchdog
            log.exception("flask_sessions: memory watchdog tick failed")


@dataclass
class SessionLimits:
    """One session's bounds on its pages, and warnings for the next observation.

    ``on_crash(main)`` is set by the manager when the session is registered; it is called
    when one of the session's pages crashes (``main``: the session's own page).
    """

    max_pages: int = 5
    pages: list[Page] = field(default_factory=list)
    popups_blocked: int = 0
    crashed: bool = False  # the session's own page crashed
    on_crash: Callable[[bool], None] | None = None
    _popups_since: int = 0
    target_id: str | None = None  # of the session's own page
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    # ------------------------------------------------------------------ pages

    def watch(self, context: BrowserContext) -> None:
        """Count every page the context opens (its first one included)."""
        context.on("page", self._on_page)

    def _on_page(self, page: Page) -> None:
        if len(self.pages) >= self.max_pages:
            self.popups_blocked += 1
            self._popups_since += 1
            self._spawn(_close_quietly(page))
            return
        main = not self.pages
        self.pages.append(page)
        page.on("close", self._on_page_closed)
        page.on("crash", lambda _page: self._on_crash(main))

    def _on_page_closed(self, page: Page) -> None:
        if page in self.pages[1:]:  # the first one is the session's own page
            self.pages.remove(page)

    def _on_crash(self, main: bool) -> None:
        if main:
            self.crashed = True
        if self.on_crash is not None:
            self.on_crash(main)

    # --------------------------------------------------------------- reporting

    def take_warnings(self) -> list[str]:
        """What the limits did since the last call, in words an agent can act on."""
        out = []
        if self._popups_since:
            out.append(
                f"closed {self._popups_since} popup(s) or new tab(s): a session may have "
                f"at most {self.max_pages} pages open (SESSIONS_MAX_PAGES_PER_SESSION)"
            )
        self._popups_since = 0
        return out

    # ----------------------------------------------------------------- closing

    async def close(self) -> None:
        """The context is closed: stop what runs for it."""
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _close_quietly(page: Page) -> None:
    with contextlib.suppress(PlaywrightError):
        await page.close()
