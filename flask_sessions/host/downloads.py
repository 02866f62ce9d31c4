"""Downloads into session files (issue 19): Chromium's events routed to their session, and
each session's downloads metered against its files' budget.

Chromium writes a session's downloads into its ``.incoming`` folder
(``Browser.setDownloadBehavior`` ``allowAndName``: ``<guid>.crdownload`` while running,
``<guid>`` when done) and reports them on the browser-level CDP session:
``downloadWillBegin`` (guid, URL, suggested name, frame) and ``downloadProgress`` (about
every 0.5 s). :class:`DownloadRouter` (one per host) finds the session: by the frame when it
is the session's page (most downloads), else by where the partial file appeared (an
iframe's, a popup's). :class:`SessionDownloads` (one per session) lists each download as a
file of the session under the browser's suggested name (made safe and unique), and, while
one runs, reads the bytes on disk every :data:`METER_INTERVAL`: past the session's budget
(``SESSIONS_MAX_SESSION_FILES_MB``, uploads included) the newest running download is
cancelled and listed as ``too_large``; a size announced up front (``Content-Length``) that
cannot fit is cancelled at once; below the host's free-disk floor
(``SESSIONS_MIN_FREE_DISK_MB``) running and new downloads are cancelled. A finished download
is moved to its name and hashed (in a worker thread), and is then ``complete``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from playwright.async_api import BrowserContext, Download, Page

from flask_sessions.errors import InvalidInput
from flask_sessions.schemas import FileState

if TYPE_CHECKING:
    from flask_sessions.host.files import FileEntry, FilesRoot, SessionFiles
    from flask_sessions.host.limits import BrowserGuard

MB = 1 << 20
CHUNK = 1 << 20
PARTIAL_SUFFIX = ".crdownload"  # Chromium's partial download file
METER_INTERVAL = 0.02  # seconds between two looks at a session's running downloads
METER_GRACE = 2.0  # keep looking this long after a page started a download
DISK_EVERY = 0.5  # seconds between two looks at the free disk while downloads run
MAX_BEGUN = 1000  # unattributed download announcements remembered (oldest forgotten)
MAX_FAILED = 100  # cancelled / too_large downloads kept in a listing (oldest dropped)


class DownloadRouter:
    """Chromium's download events (one browser CDP session), routed to their session."""

    def __init__(self, root: FilesRoot) -> None:
        self.root = root
        self.guard: BrowserGuard | None = None
        self._mutex = threading.Lock()
        self._by_target: dict[str, SessionDownloads] = {}  # a session page's target id
        self._by_guid: dict[str, SessionDownloads] = {}
        self._begun: dict[str, dict[str, Any]] = {}  # guid -> downloadWillBegin, unattributed

    def attach(self, guard: BrowserGuard) -> None:
        """Route the events of a (newly launched) Chromium."""
        self.guard = guard
        guard.cdp.on("Browser.downloadWillBegin", self._on_begin)
        guard.cdp.on("Browser.downloadProgress", self._on_progress)

    def watch_target(self, target_id: str, downloads: SessionDownloads) -> None:
        with self._mutex:
            self._by_target[target_id] = downloads

    def forget(self, downloads: SessionDownloads) -> None:
        with self._mutex:
            for table in (self._by_target, self._by_guid):
                for key in [k for k, v in table.items() if v is downloads]:
                    del table[key]

    def _on_begin(self, event: dict[str, Any]) -> None:
        guid = str(event.get("guid", ""))
        with self._mutex:
            downloads = self._by_target.get(str(event.get("frameId", "")))
            if downloads is None:
                if len(self._begun) >= MAX_BEGUN:
                    self._begun.pop(next(iter(self._begun)))
                self._begun[guid] = event
                return
            self._by_guid[guid] = downloads
        downloads.begin(event)

    def _on_progress(self, event: dict[str, Any]) -> None:
        guid = str(event.get("guid", ""))
        downloads = self._by_guid.get(guid) or self.claim(guid)
        if downloads is None:
            return
        if event.get("state") != "inProgress":
            with self._mutex:
                self._by_guid.pop(guid, None)
        downloads.on_progress(event)

    def claim(self, guid: str, only: SessionDownloads | None = None) -> SessionDownloads | None:
        """The session whose ``.incoming`` holds ``guid``'s file, told of the download."""
        with self._mutex:
            event = self._begun.get(guid)
            if event is None:
                return None
            candidates = [only] if only is not None else self.root.all_downloads()
            found = next((d for d in candidates if d.holds(guid)), None)
            if found is None:
                return None
            del self._begun[guid]
            self._by_guid[guid] = found
        found.begin(event)
        return found

    def unclaimed(self) -> set[str]:
        with self._mutex:
            return set(self._begun)

    async def cancel(self, guid: str, context_id: str) -> None:
        if self.guard is not None:
            await self.guard.cancel_download(guid, context_id)


class SessionDownloads:
    """One session's downloads: listed in its files, metered against its budget."""

    def __init__(self, files: SessionFiles) -> None:
        self.files = files
        settings = files.root.settings
        cap = settings.max_download_mb  # deprecated: a further cap on downloads alone
        self.max_bytes = None if cap is None else int(cap * MB)
        self.allowed = files.root.enabled and self.max_bytes != 0
        self.context_id: str | None = None
        self.running: dict[str, FileEntry] = {}  # by guid
        self.page_started = 0  # downloads the pages started (Playwright's event)
        self._last_page_start = 0.0
        self._refused = 0  # refused since the last observation
        self._refused_first = ""
        self._warnings: list[str] = []
        self._meter: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.changed = asyncio.Event()

    @property
    def router(self) -> DownloadRouter:
        return self.files.root.router

    def holds(self, guid: str) -> bool:
        incoming = self.files.incoming
        return any(os.path.lexists(os.path.join(incoming, guid + s)) for s in (PARTIAL_SUFFIX, ""))

    # ----------------------------------------------------------------- events

    def watch(self, context: BrowserContext) -> None:
        """Count the downloads every page of the context starts (Playwright's event names
        popups' and iframes' too): they start the meter, and are refused when off."""
        context.on("page", self._on_page)

    def _on_page(self, page: Page) -> None:
        page.on("download", self._on_page_download)

    def _on_page_download(self, download: Download) -> None:
        if not self.allowed:  # the context's behaviour is "deny": nothing lands
            self._refused += 1
            self._refused_first = self._refused_first or download.url
            return
        self.page_started += 1
        self._last_page_start = time.monotonic()
        self._start_meter()
        self.changed.set()

    def begin(self, event: dict[str, Any]) -> None:
        """Chromium announced a download of this session: list it (in_progress)."""
        guid = str(event.get("guid", ""))
        files = self.files
        if files.closed or not self.allowed or guid in self.running:
            return
        suggested = str(event.get("suggestedFilename") or "")
        try:
            name = files.safe(suggested) if suggested else "download"
        except InvalidInput:
            name = "download"
        entry = files.add_download(name, str(event.get("url") or "") or None, guid)
        self.running[guid] = entry
        low = files.root.disk_low()
        if low is not None:
            self._stop(entry, "cancelled", f"cancelled download {entry.name}: {low}")
        self._start_meter()
        self.changed.set()

    def on_progress(self, event: dict[str, Any]) -> None:
        """Chromium's news of a running download of this session."""
        guid = str(event.get("guid", ""))
        entry = self.running.get(guid)
        if entry is None:
            return
        state = event.get("state")
        if state == "inProgress":
            entry.size = max(entry.size, int(event.get("receivedBytes") or 0))
            total = int(event.get("totalBytes") or 0)
            if total > 0 and entry.state == "in_progress":
                self._check_announced(entry, total)
            return
        self.running.pop(guid, None)
        if state == "completed" and entry.state == "in_progress":
            self._spawn(self._finish(entry))
            return
        if entry.state == "in_progress":
            entry.state = "cancelled"  # by the page, or Chromium (a network error)
        entry.size = 0
        self._remove_partial(guid)
        self.changed.set()

    # ----------------------------------------------------------------- budget

    def _check_announced(self, entry: FileEntry, total: int) -> None:
        """A download whose announced size cannot fit is cancelled before it writes more."""
        used, downloads = self.files.usage()
        if used - entry.size + total > self.files.limit_bytes:
            self._stop(entry, "too_large", self._too_large(entry, total))
        elif self.max_bytes is not None and downloads - entry.size + total > self.max_bytes:
            self._stop(entry, "too_large", self._too_large(entry, total, deprecated=True))

    def check(self) -> None:
        """Read the running downloads' sizes on disk; past the budget, cancel the newest
        running ones (too_large) until the rest fits."""
        running = list(self.running.values())
        incoming = self.files.incoming
        for entry in running:
            assert entry.guid is not None
            entry.size = max(entry.size, _on_disk(incoming, entry.guid))
        used, downloads = self.files.usage()
        for entry in sorted(running, key=lambda e: -e.seq):
            over = used > self.files.limit_bytes
            deprecated = self.max_bytes is not None and downloads > self.max_bytes
            if not over and not deprecated:
                break
            size = entry.size
            self._stop(entry, "too_large", self._too_large(entry, size, deprecated and not over))
            used -= size
            downloads -= size

    def _too_large(self, entry: FileEntry, size: int, deprecated: bool = False) -> str:
        if deprecated and self.max_bytes is not None:
            return (
                f"cancelled download {entry.name} ({size / MB:.1f} MB or more): a session's "
                f"downloads may use at most {self.max_bytes / MB:g} MB "
                "(SESSIONS_MAX_DOWNLOAD_MB, deprecated); it is listed as too_large"
            )
        return (
            f"cancelled download {entry.name} ({size / MB:.1f} MB or more): a session's files "
            f"may use at most {self.files.limit_mb:g} MB "
            "(SESSIONS_MAX_SESSION_FILES_MB); it is listed as too_large"
        )

    def _stop(self, entry: FileEntry, state: FileState, warning: str) -> None:
        """Cancel a running download as ``state``; the next observation says why."""
        if entry.state != "in_progress" or entry.guid is None:
            return
        entry.state, entry.note = state, warning
        entry.size = 0
        self.running.pop(entry.guid, None)
        self._warnings.append(warning)
        self.cancel(entry.guid)
        self._remove_partial(entry.guid)
        self.files.drop_failed(MAX_FAILED)
        self.changed.set()

    def cancel(self, guid: str) -> None:
        if self.context_id is not None:
            self._spawn(self.router.cancel(guid, self.context_id))

    def _remove_partial(self, guid: str) -> None:
        for suffix in (PARTIAL_SUFFIX, ""):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.files.incoming, guid + suffix))

    async def _finish(self, entry: FileEntry) -> None:
        """Move a completed download to its name, then hash it (off the loop)."""
        assert entry.guid is not None
        source = os.path.join(self.files.incoming, entry.guid)
        try:
            size, digest, head = await asyncio.to_thread(
                _move_and_hash, source, self.files.path(entry)
            )
        except OSError as exc:
            entry.state, entry.size = "cancelled", 0
            entry.note = f"the download could not be stored: {exc.strerror or exc}"
            self.changed.set()
            return
        entry.size, entry.sha256 = size, digest
        if head.startswith(b"%PDF-") and entry.content_type == "application/octet-stream":
            entry.content_type = "application/pdf"
        entry.state = "complete"
        self.changed.set()

    # ------------------------------------------------------------------ meter

    def _start_meter(self) -> None:
        if self.files.closed:
            return
        if self._meter is None or self._meter.done():
            self._meter = asyncio.get_running_loop().create_task(self._run_meter())

    async def _run_meter(self) -> None:
        """Look at the running downloads every METER_INTERVAL while any runs."""
        disk_at = 0.0
        while not self.files.closed:
            self._claim_strays()
            if self.running:
                self.check()
                now = time.monotonic()
                if now - disk_at >= DISK_EVERY:
                    disk_at = now
                    low = self.files.root.disk_low()
                    for entry in list(self.running.values()) if low else []:
                        self._stop(entry, "cancelled", f"cancelled download {entry.name}: {low}")
            elif time.monotonic() - self._last_page_start > METER_GRACE:
                return
            await asyncio.sleep(METER_INTERVAL)

    def _claim_strays(self) -> None:
        """Downloads of this session's popups and iframes: their partial file is here."""
        unclaimed = self.router.unclaimed()
        if not unclaimed:
            return
        with contextlib.suppress(OSError):
            for name in os.listdir(self.files.incoming):
                guid = name.removesuffix(PARTIAL_SUFFIX)
                if guid in unclaimed and guid not in self.running:
                    self.router.claim(guid, self)

    # ------------------------------------------------------- a step's downloads

    def mark(self) -> tuple[int, int]:
        """Where the downloads stand, to tell which ones an action starts."""
        return self.files.seq, self.page_started

    async def started_since(self, mark: tuple[int, int], wait: float = 1.0) -> list[FileEntry]:
        """The downloads started since ``mark``; each one a page started is waited for (up
        to ``wait`` seconds) until Chromium has announced it."""
        seq, pages = mark
        deadline = time.monotonic() + wait
        while True:
            found = self.files.downloads_after(seq)
            if len(found) >= self.page_started - pages or time.monotonic() >= deadline:
                return found
            await self._wait(deadline - time.monotonic())

    async def announced(self, mark: tuple[int, int], url: str, timeout: float) -> FileEntry | None:
        """The download of ``url`` started since ``mark``, waited for up to ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            found = next((e for e in self.files.downloads_after(mark[0]) if e.url == url), None)
            if found is not None or time.monotonic() >= deadline:
                return found
            await self._wait(deadline - time.monotonic())

    async def finished(self, entry: FileEntry, timeout: float) -> None:
        """Wait (up to ``timeout`` s) until a download is no longer in progress."""
        deadline = time.monotonic() + timeout
        while entry.state == "in_progress" and time.monotonic() < deadline:
            await self._wait(min(0.25, deadline - time.monotonic()))

    async def _wait(self, seconds: float) -> None:
        self.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), max(0.0, seconds))

    def take_warnings(self) -> list[str]:
        """What happened to downloads since the last observation, in words an agent can
        act on (refused; cancelled past the budget or the disk floor)."""
        out = list(self._warnings)
        self._warnings.clear()
        if self._refused:
            why = (
                "files are off on this server (SESSIONS_MAX_SESSION_FILES_MB=0)"
                if not self.files.root.enabled
                else "downloads are off on this server (SESSIONS_MAX_DOWNLOAD_MB=0)"
            )
            first = self._refused_first
            shown = first if len(first) <= 120 else first[:117] + "..."
            out.append(f"refused {self._refused} download(s) (first: {shown}): {why}")
            self._refused, self._refused_first = 0, ""
        return out

    # ---------------------------------------------------------------- closing

    async def close(self) -> None:
        self.stop()
        if self._meter is not None:
            await asyncio.gather(self._meter, return_exceptions=True)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def stop(self) -> None:
        self.router.forget(self)
        if self._meter is not None and not self._meter.done():
            self._meter.cancel()
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _on_disk(directory: str, guid: str) -> int:
    for suffix in (PARTIAL_SUFFIX, ""):
        try:
            st = os.lstat(os.path.join(directory, guid + suffix))
        except OSError:
            continue
        return max(st.st_size, getattr(st, "st_blocks", 0) * 512)
    return 0


def _move_and_hash(source: str, target: str) -> tuple[int, str, bytes]:
    os.replace(source, target)
    digest = hashlib.sha256()
    size = 0
    head = b""
    with open(target, "rb") as handle:
        while chunk := handle.read(CHUNK):
            if not size:
                head = chunk[:8]
            size += len(chunk)
            digest.update(chunk)
    return size, digest.hexdigest(), head
