"""Bounds on what a session's pages may use: pages, downloads, renderer memory (issue 8).

Everything here runs on the runtime loop, except :meth:`RendererScanner.scan`, which the
watchdog runs in a worker thread.

* :class:`SessionLimits`, one per session (made with its context by ``live.open_live``):
  closes popups and new tabs past ``SESSIONS_MAX_PAGES_PER_SESSION``, refuses downloads
  or meters them against ``SESSIONS_MAX_DOWNLOAD_MB``, and keeps the warnings the next
  observation reports.
* :class:`BrowserGuard`, one per launched Chromium: a browser-level CDP session (to
  point a context's downloads at that session's own directory, and cancel them), the
  browser's PID, and the watchdog's last kill.
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
import shutil
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import psutil
from playwright.async_api import Browser, BrowserContext, CDPSession, Download, Page
from playwright.async_api import Error as PlaywrightError

log = logging.getLogger("flask_sessions")

MB = 1 << 20
PARTIAL_SUFFIX = ".crdownload"  # Chromium's name for a download still being written
METER_INTERVAL = 0.02  # seconds between two looks at a session's downloads while one runs
METER_GRACE = 2.0  # keep looking this long after a download starts (its file may be late)
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

    def __init__(
        self, browser: Browser, cdp: CDPSession, pid: int | None, downloads_root: str | None
    ) -> None:
        self.browser = browser
        self.cdp = cdp
        self.pid = pid
        self.downloads_root = downloads_root
        self.scanner = RendererScanner()
        self.last_kill: Kill | None = None
        self.kills = 0
        # downloads started by a session's own page (its target id is its main frame's id)
        self.by_target: dict[str, SessionLimits] = {}
        self.by_guid: dict[str, SessionLimits] = {}
        if downloads_root is not None:
            cdp.on("Browser.downloadWillBegin", self._on_download_begin)
            cdp.on("Browser.downloadProgress", self._on_download_progress)

    @classmethod
    async def attach(cls, browser: Browser, downloads: bool) -> BrowserGuard:
        """Open the browser CDP session, find Chromium's PID, make the downloads root."""
        cdp = await browser.new_browser_cdp_session()
        info = await cdp.send("SystemInfo.getProcessInfo")
        pid = next((p["id"] for p in info["processInfo"] if p.get("type") == "browser"), None)
        if pid is None:
            log.warning("flask_sessions: no browser PID from Chromium; memory is not watched")
        root = tempfile.mkdtemp(prefix="flask-sessions-downloads-") if downloads else None
        return cls(browser, cdp, pid, root)

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

    def _on_download_begin(self, event: dict[str, Any]) -> None:
        limits = self.by_target.get(event.get("frameId", ""))
        if limits is not None:
            self.by_guid[event["guid"]] = limits

    def _on_download_progress(self, event: dict[str, Any]) -> None:
        guid = event.get("guid", "")
        limits = self.by_guid.get(guid)
        if limits is None:
            return
        if event.get("state") != "inProgress":
            del self.by_guid[guid]
        limits.on_progress(guid, event)

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

    def forget(self) -> None:
        """Chromium is gone: remove what its downloads left on disk."""
        if self.downloads_root is not None:
            shutil.rmtree(self.downloads_root, ignore_errors=True)

    async def close(self) -> None:
        with contextlib.suppress(PlaywrightError):
            await self.cdp.detach()
        self.forget()


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
        """(create time, role), the command line read once per process."""
        created = proc.create_time()
        known = self._kinds.get(proc.pid)
        if known is not None and known[0] == created:
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
    """One session's bounds: its pages, its downloads, and warnings for the next observation.

    ``on_crash(main)`` is set by the manager when the session is registered; it is called
    when one of the session's pages crashes (``main``: the session's own page).
    """

    max_pages: int = 5
    max_download_bytes: int = 0  # 0: downloads are refused
    guard: BrowserGuard | None = None
    download_dir: str | None = None
    context_id: str | None = None
    pages: list[Page] = field(default_factory=list)
    popups_blocked: int = 0
    download_bytes: int = 0  # on disk at the last look
    downloads_cancelled: int = 0
    downloads_refused: int = 0
    crashed: bool = False  # the session's own page crashed
    on_crash: Callable[[bool], None] | None = None
    _popups_since: int = 0
    target_id: str | None = None  # of the session's own page, when downloads are allowed
    finished_bytes: int = 0  # on disk at the last look, downloads still running left out
    _reserved: dict[str, int] = field(default_factory=dict)  # running downloads' sizes
    _refused_since: int = 0
    _refused_first: str = ""
    _cancelled_since: int = 0
    _meter: asyncio.Task[None] | None = None
    _last_start: float = 0.0
    _cancelled_ids: set[str] = field(default_factory=set)  # downloads cancelled or deleted
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
        page.on("download", self._on_download)
        page.on("crash", lambda _page: self._on_crash(main))

    def _on_page_closed(self, page: Page) -> None:
        if page in self.pages[1:]:  # the first one is the session's own page
            self.pages.remove(page)

    def _on_crash(self, main: bool) -> None:
        if main:
            self.crashed = True
        if self.on_crash is not None:
            self.on_crash(main)

    # -------------------------------------------------------------- downloads

    def _on_download(self, download: Download) -> None:
        url = download.url
        if self.max_download_bytes <= 0:  # the context's behaviour is "deny": nothing lands
            self.downloads_refused += 1
            self._refused_since += 1
            self._refused_first = self._refused_first or url
            return
        self._last_start = time.monotonic()  # the meter cancels it if it does not fit
        if self._meter is None or self._meter.done():
            self._meter = asyncio.get_running_loop().create_task(self._run_meter())

    def on_progress(self, guid: str, event: dict[str, Any]) -> None:
        """A download of the session's own page reports its size (from Content-Length):
        refuse it before it writes anything if, with the other running ones, it cannot fit."""
        total = int(event.get("totalBytes") or 0)
        if event.get("state") != "inProgress":
            self._reserved.pop(guid, None)
            return
        if total <= 0 or guid in self._reserved:
            return
        self._reserved[guid] = total
        if self.finished_bytes + sum(self._reserved.values()) > self.max_download_bytes:
            self._reserved.pop(guid)
            if self._count_cancelled(guid) and self.guard and self.context_id:
                self._spawn(self.guard.cancel_download(guid, self.context_id))

    def _count_cancelled(self, guid: str) -> bool:
        """Count a download cancelled (or deleted) once; False if it was already."""
        if guid in self._cancelled_ids:
            return False
        if len(self._cancelled_ids) > 10_000:  # a page that tries forever: keep this bounded
            self._cancelled_ids.clear()
        self._cancelled_ids.add(guid)
        self.downloads_cancelled += 1
        self._cancelled_since += 1
        return True

    async def _run_meter(self) -> None:
        """Look at the session's downloads every ``METER_INTERVAL`` while any is running."""
        while True:
            partial = await self.check_downloads()
            if not partial and time.monotonic() - self._last_start > METER_GRACE:
                return
            await asyncio.sleep(METER_INTERVAL)

    async def check_downloads(self) -> int:
        """Count the bytes on disk; past the limit, cancel what is running and delete
        finished files, newest first, until the rest fits. Returns the running count."""
        if self.download_dir is None:
            return 0
        files = _scan(self.download_dir)
        self.download_bytes = sum(size for _, size, _ in files)
        partial = [name for name, _, _ in files if name.endswith(PARTIAL_SUFFIX)]
        self.finished_bytes = sum(s for n, s, _ in files if not n.endswith(PARTIAL_SUFFIX))
        if self.download_bytes <= self.max_download_bytes:
            return len(partial)
        for name in partial:  # Chromium deletes a cancelled download's partial file
            self.download_bytes -= next(size for n, size, _ in files if n == name)
            guid = name.removesuffix(PARTIAL_SUFFIX)
            if self._count_cancelled(guid) and self.guard and self.context_id:
                await self.guard.cancel_download(guid, self.context_id)
        finished = sorted(
            (f for f in files if not f[0].endswith(PARTIAL_SUFFIX)), key=lambda f: -f[2]
        )
        for name, size, _ in finished:
            if self.download_bytes <= self.max_download_bytes:
                break
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.download_dir, name))
            self.download_bytes -= size
            self._count_cancelled(name)
        return 0

    # --------------------------------------------------------------- reporting

    def take_warnings(self) -> list[str]:
        """What the limits did since the last call, in words an agent can act on."""
        out = []
        if self._popups_since:
            out.append(
                f"closed {self._popups_since} popup(s) or new tab(s): a session may have "
                f"at most {self.max_pages} pages open (SESSIONS_MAX_PAGES_PER_SESSION)"
            )
        if self._refused_since:
            out.append(
                f"refused {self._refused_since} download(s) (first: "
                f"{_short(self._refused_first)}): downloads are off on this server "
                "(SESSIONS_MAX_DOWNLOAD_MB=0)"
            )
        if self._cancelled_since:
            out.append(
                f"cancelled or deleted {self._cancelled_since} download(s): a session may "
                f"keep at most {self.max_download_bytes / MB:g} MB of downloads on disk "
                "(SESSIONS_MAX_DOWNLOAD_MB)"
            )
        self._popups_since = 0
        self._refused_since, self._refused_first = 0, ""
        self._cancelled_since = 0
        return out

    # ----------------------------------------------------------------- closing

    async def close(self) -> None:
        """The context is closed: stop metering and delete the session's downloads."""
        if self._meter is not None and not self._meter.done():
            self._meter.cancel()
            await asyncio.gather(self._meter, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        if self.guard is not None and self.target_id is not None:
            self.guard.by_target.pop(self.target_id, None)
        if self.download_dir is not None:
            await asyncio.to_thread(shutil.rmtree, self.download_dir, True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _close_quietly(page: Page) -> None:
    with contextlib.suppress(PlaywrightError):
        await page.close()


def _scan(directory: str) -> list[tuple[str, int, float]]:
    """``(name, bytes on disk, mtime)`` of each file in ``directory``."""
    out = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                on_disk = getattr(st, "st_blocks", 0) * 512
                out.append((entry.name, max(on_disk, st.st_size), st.st_mtime))
    except OSError:
        return []
    return out


def _short(url: str) -> str:
    return url if len(url) <= 120 else url[:117] + "..."
