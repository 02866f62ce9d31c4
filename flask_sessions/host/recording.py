"""Recordings: a Playwright trace of every session started with ``record: true``.

A recorded session's context runs Playwright tracing (screenshots and DOM snapshots, no
sources), and each REST call on it is a named group (``step click L3``, ``observe https://…``),
so Playwright's trace viewer lists the agent's calls with Playwright's own actions inside.

**Files.** Chromium's tracing writes into one folder per browser (``traces_dir``, under
``SESSIONS_RECORDING_DIR/.traces/``). Each session has a folder of its own,
``SESSIONS_RECORDING_DIR/<session_id>/``, with ``meta.json`` (state, owner as a SHA-256,
times) and ``trace.zip``: the trace so far (after a download while it runs) or the whole of
it (after the session ended). At every cut (a download while active, the size cap, the end)
the running chunk is stopped into a zip (``tracing.stop_chunk``), tracing goes on in a new
chunk (``start_chunk``), and the chunk is merged into ``trace.zip``: one ``<n>-trace.trace``
per chunk (the viewer shows them as one action list), the network log of the last chunk
(Playwright's is cumulative), and every resource once. ``trace.stacks`` (the server's own
call stacks and file paths) is left out.

**Size.** The cap (``SESSIONS_MAX_RECORDING_MB``) counts the saved ``trace.zip`` plus, for
the running chunk, the raw files it wrote so far: its ``.trace`` and ``.network`` text and
every resource or screencast frame it names, read incrementally (new bytes only) about once
a second. Past it, or below the disk floor (``SESSIONS_MIN_FREE_DISK_MB``), tracing stops
with what it has (``recording: "truncated"``) and the session goes on.

**Retention.** A recording is kept ``SESSIONS_RECORDING_RETENTION_MINUTES`` after its
session ended, whether or not the session's record is still there; the reaper's sweep
deletes it then. The sweep also deletes what a killed process left: folders whose meta says
they expired, unfinished ones whose process is gone, and traces folders of dead processes.
Playwright never deletes what tracing wrote into ``traces_dir`` while the browser runs:
screencast frames are deleted as soon as a chunk holds them, and shared resources (content
addressed, so several sessions may share one) when no recording is running.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import zipfile
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psutil
from playwright.async_api import Error as PlaywrightError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from flask_sessions.errors import InsufficientStorage, SessionNotFound, SessionsError
from flask_sessions.host.folders import own_folder
from flask_sessions.schemas import (
    SESSION_ID_PATTERN,
    ObserveRequest,
    RecordingDeleted,
    RecordingState,
    ScrapeRequest,
    StartRequest,
    StepRequest,
)
from flask_sessions.timefmt import iso_datetime

if TYPE_CHECKING:
    from flask_sessions.host.live import LiveSession
    from flask_sessions.host.manager import SessionManager, SessionRecord

log = logging.getLogger("flask_sessions")

T = TypeVar("T")
MB = 1024 * 1024

MONITOR_SECONDS = 1.0  # how often running recordings are measured
SWEEP_SECONDS = 60.0  # how often (server clock) the folder is scanned for what others left
SAVE_WAIT_SECONDS = 30.0  # a download of a session that just ended waits this long for its save
TITLE_MAX = 200  # characters of a group's title
COPY_CHUNK = 1024 * 1024

_SESSION_ID = re.compile(SESSION_ID_PATTERN)
# what a trace's text names on disk: resources, screencast frames and screenshots
_REF = re.compile(
    rb'"(?:_file|file)":"((?:resources|screencast|screenshots)/[^"\\]{1,200})"'
    rb'|"sha1":"([0-9a-f]{40}[^"\\]{0,20})"'
)
_STORED = (".jpeg", ".jpg", ".png", ".webp", ".gif", ".woff", ".woff2", ".zip")


def owner_hash(principal: str) -> str:
    """How a recording remembers its principal on disk (never the name itself)."""
    return hashlib.sha256(principal.encode("utf-8")).hexdigest()


@dataclass
class _Chunk:
    """What the running chunk wrote so far, measured incrementally."""

    trace: Path  # its .trace file in traces_dir
    network: Path  # the trace's .network file (one for all chunks)
    offsets: dict[Path, int] = field(default_factory=dict)
    carry: dict[Path, bytes] = field(default_factory=dict)
    refs: dict[str, int] = field(default_factory=dict)  # name -> size (0: not seen on disk yet)
    text: int = 0


@dataclass
class Recording:
    """One session's recording: its folder, state and, while it runs, its tracing."""

    session_id: str
    owner: str
    folder: Path
    state: RecordingState
    started_at: datetime
    ended_at: datetime | None = None
    expires_at: datetime | None = None
    saved_bytes: int = 0  # trace.zip
    size: int = 0  # the cap's count (saved + the running chunk's raw files)
    reason: str | None = None  # why it was truncated or failed
    live: LiveSession | None = None  # while tracing
    name: str = ""  # the trace's name in traces_dir
    chunk: _Chunk | None = None
    chunks: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    done: asyncio.Event = field(default_factory=asyncio.Event)  # tracing is over, files final

    @property
    def tracing(self) -> bool:
        return self.live is not None

    @property
    def trace_zip(self) -> Path:
        return self.folder / "trace.zip"

    def meta(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "owner": self.owner,
            "state": self.state,
            "started_at": iso_datetime(self.started_at),
            "ended_at": iso_datetime(self.ended_at) if self.ended_at else None,
            "expires_at": iso_datetime(self.expires_at) if self.expires_at else None,
            "bytes": self.saved_bytes,
            "reason": self.reason,
            "pid": os.getpid(),
        }


@dataclass
class RecordingFile:
    """A recording ready to stream: its file (open; already unlinked when a temporary
    copy), size, state and the name to save it as."""

    handle: Any
    size: int
    state: RecordingState
    filename: str

    def chunks(self) -> Iterable[bytes]:
        try:
            while True:
                data = self.handle.read(COPY_CHUNK)
                if not data:
                    return
                yield data
        finally:
            self.handle.close()


class Recordings:
    """The recordings of one host. Loop-side except :meth:`open` (any thread, via the loop)."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager
        self.settings = manager.settings
        root = self.settings.recording_dir or os.path.join(
            tempfile.gettempdir(), "flask_sessions-recordings"
        )
        self.root = Path(root)
        # one traces folder per process: Playwright writes every recorded context's files there
        self.traces_dir = self.root / ".traces" / f"{os.getpid()}-{secrets.token_hex(4)}"
        # made before Chromium is launched (Playwright makes traces_dir at launch, 0755)
        self.root_error = _own_root(self.root, default=self.settings.recording_dir is None)
        if self.root_error is None:
            manager.runtime.traces_dir = str(self.traces_dir)
        else:
            log.error("flask_sessions: recordings: %s", self.root_error)
        self._index: dict[str, Recording] = {}
        self._loaded = False
        self._last_scan: datetime | None = None
        self._monitoring = False
        self._traces_lock = asyncio.Lock()  # tracing starts vs. cleaning traces_dir
        self._hooked: set[str] = set()  # sessions whose context calls us at its end
        self.truncated = 0  # for /metrics

    # --------------------------------------------------------------- hooks

    def check_can_record(self) -> None:
        """503 when the recordings folder cannot be used; 507 when the disk is below
        SESSIONS_MIN_FREE_DISK_MB (a recording would not fit)."""
        if self.root_error is not None:
            raise RecordingUnavailable(f"{self.root_error}; no recording can start")
        low = self._low_disk()
        if low is not None:
            raise InsufficientStorage(
                f"the server's disk is low ({low:.0f} MB free, below SESSIONS_MIN_FREE_DISK_MB="
                f"{self.settings.min_free_disk_mb:g}); no recording can start now: retry "
                "without record, or later"
            )

    async def begin(self, record: SessionRecord, live: LiveSession) -> None:
        """Start tracing the session's context (no-op if it is recorded already)."""
        found = self._index.get(record.session_id)
        if found is not None and found.ended_at is None:
            return  # recording, or stopped at the cap: it stays so while the session lives
        self.check_can_record()
        folder = self.root / record.session_id
        rec = Recording(
            record.session_id,
            owner_hash(record.principal),
            folder,
            "recording",
            self.manager.clock(),
        )
        rec.name = f"{record.session_id}-{secrets.token_hex(3)}"
        async with rec.lock, self._traces_lock:
            await _off_loop(_fresh_folder, folder)
            try:
                await live.context.tracing.start(
                    name=rec.name,
                    title=f"flask_sessions session {record.session_id}",
                    screenshots=self.settings.recording_screenshots,
                    snapshots=True,
                    sources=False,
                )
            except PlaywrightError as exc:
                await _off_loop(shutil.rmtree, folder, True)
                raise _playwright_failed(exc, "starting the recording") from None
            rec.live = live
            rec.chunk = self._chunk(rec, 0)
            self._index[record.session_id] = rec
            if record.session_id not in self._hooked:
                self._hooked.add(record.session_id)
                sid = record.session_id
                live.on_close.append(lambda: self.finish(sid, "saved"))
                live.context.on("close", lambda _ctx: self._context_gone(sid))
            self._write_meta(rec)
        self._set_state(rec, "recording")
        log.info(
            "flask_sessions: recording session %s",
            record.session_id,
            extra={"event": "recording", "session_id": record.session_id},
        )
        if not self._monitoring:  # a runtime task: cancelled at shutdown
            self._monitoring = True
            self.manager.runtime.spawn(self._measure_all())

    def grouped(
        self,
        title: Callable[[LiveSession], str],
        work: Callable[[SessionRecord, LiveSession], Awaitable[T]],
    ) -> Callable[[SessionRecord, LiveSession], Awaitable[T]]:
        """``work`` as a named group in the session's trace, when it is recorded."""

        async def run(record: SessionRecord, live: LiveSession) -> T:
            rec = self._index.get(record.session_id)
            name = title(live) if rec is not None and rec.live is live else ""
            if rec is None or not name:  # not recorded, or nothing to name (a bare start)
                return await work(record, live)
            tracing = live.context.tracing
            with contextlib.suppress(PlaywrightError):
                await tracing.group(_title(name))
            try:
                return await untraced(lambda: work(record, live))
            finally:
                if rec.live is live:
                    await _snapshot(live, name)
                    with contextlib.suppress(PlaywrightError):
                        await tracing.group_end()

        return run

    async def finish(self, session_id: str, state: RecordingState) -> None:
        """The session ends (its context is about to close): stop tracing, save the trace."""
        rec = self._index.get(session_id)
        if rec is None or rec.done.is_set():
            return
        async with rec.lock:
            if rec.tracing:
                await self._cut(rec, final=True)
                if rec.state == "recording":
                    rec.state = state
            await self._ended(rec)

    async def sweep(self, now: datetime) -> None:
        """Delete expired recordings, and (every minute) what other processes left."""
        await self._load()
        for rec in list(self._index.values()):
            if rec.expires_at is not None and now >= rec.expires_at and not rec.tracing:
                self._index.pop(rec.session_id, None)
                await _off_loop(shutil.rmtree, rec.folder, True)
                log.info(
                    "flask_sessions: recording of session %s expired and was deleted",
                    rec.session_id,
                    extra={"event": "recording_expired", "session_id": rec.session_id},
                )
        if self._last_scan is None or (now - self._last_scan).total_seconds() >= SWEEP_SECONDS:
            self._last_scan = now
            known = set(self._index)
            await _off_loop(self._sweep_disk, now, known, self._running())

    # ------------------------------------------------------------- API side

    def open(self, principal: str, session_id: str) -> RecordingFile:
        """The principal's recording, ready to stream (while active: the trace so far, tracing
        goes on). 404 if there is none for them."""
        return self.manager._run(self._prepare(principal, session_id), SAVE_WAIT_SECONDS + 30)

    def delete(self, principal: str, session_id: str) -> RecordingDeleted:
        """Delete the recording (stopping tracing if it runs). 404 if there is none."""
        return self.manager._run(self._delete(principal, session_id))

    async def _load(self) -> None:
        """At first use: the recordings a previous process saved here."""
        if not self._loaded:
            self._loaded = True
            for rec in await _off_loop(_saved_recordings, self.root):
                self._index.setdefault(rec.session_id, rec)

    async def _find(self, principal: str, session_id: str) -> Recording:
        await self._load()
        rec = self._index.get(session_id)
        if rec is None or rec.owner != owner_hash(principal):
            raise SessionNotFound(
                f"no recording of session {session_id!r} for you: it was not recorded "
                "(start it with record: true), was deleted, expired, or is someone else's"
            )
        return rec

    async def _prepare(self, principal: str, session_id: str) -> RecordingFile:
        rec = await self._find(principal, session_id)
        live = rec.live
        if live is not None:
            async with live.lock, rec.lock:  # between two calls: no group is cut in half
                if rec.live is live:
                    await self._cut(rec, final=False)
        elif rec.state == "recording" and not rec.done.is_set():
            # the session just ended: its save is under way (a truncated recording's trace
            # is final already: it is served at once, while its session goes on)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rec.done.wait(), SAVE_WAIT_SECONDS)
        if rec.session_id not in self._index:
            raise SessionNotFound(f"the recording of session {session_id!r} was just deleted")
        async with rec.lock:
            opened = await _off_loop(_open_copy, rec.trace_zip)
        if opened is None:
            raise SessionNotFound(
                f"session {session_id!r} recorded nothing that could be saved ({rec.reason})"
                if rec.reason
                else f"the recording of session {session_id!r} has no trace yet"
            )
        handle, size = opened
        return RecordingFile(handle, size, rec.state, f"trace-{session_id}.zip")

    async def _delete(self, principal: str, session_id: str) -> RecordingDeleted:
        rec = await self._find(principal, session_id)
        async with rec.lock:
            live = rec.live
            if live is not None:
                rec.live = None
                with contextlib.suppress(PlaywrightError):
                    await live.context.tracing.stop()
                await _off_loop(self._drop_chunk_files, rec)
            self._index.pop(session_id, None)
            rec.done.set()
            await _off_loop(shutil.rmtree, rec.folder, True)
        record = self.manager._records.get(session_id)
        if record is not None:
            record.recording = None
            self.manager._changed(record)
        await self._clean_if_idle()
        log.info(
            "flask_sessions: recording of session %s deleted",
            session_id,
            extra={"event": "recording_deleted", "session_id": session_id},
        )
        return RecordingDeleted(session_id=session_id)

    # ------------------------------------------------------------- cuts

    async def _cut(self, rec: Recording, final: bool) -> None:
        """Stop the running chunk into the session's trace.zip (under ``rec.lock``); tracing
        goes on in a new chunk unless ``final``."""
        live = rec.live
        assert live is not None and rec.chunk is not None
        tracing = live.context.tracing
        part = rec.folder / f"part-{rec.chunks:04d}.zip"
        rec.chunks += 1
        chunk = rec.chunk
        try:
            if final:
                rec.live = None
                await tracing.stop(path=part)
            else:
                await tracing.stop_chunk(path=part)
                await tracing.start_chunk()
                rec.chunk = self._chunk(rec, rec.chunks)
        except PlaywrightError as exc:
            rec.live, rec.chunk = None, None
            rec.reason = f"Chromium failed to save the trace: {_first_line(exc)}"
            if rec.state == "recording":
                rec.state = "failed"
            log.warning(
                "flask_sessions: recording of session %s: %s",
                rec.session_id,
                rec.reason,
                extra={"event": "recording_failed", "session_id": rec.session_id},
            )
        if part.exists():
            rec.saved_bytes = await _off_loop(_merge, rec.trace_zip, part)
        if chunk is not None:
            await _off_loop(self._measure, chunk)  # the frames it wrote since the last look
            await _off_loop(self._drop_chunk_files, rec, chunk)
        if final:
            rec.chunk = None
        rec.size = rec.saved_bytes
        self._write_meta(rec)

    async def _ended(self, rec: Recording) -> None:
        """Tracing is over for good (under ``rec.lock``): state, times, meta, the record."""
        now = self.manager.clock()
        rec.live, rec.chunk = None, None
        self._hooked.discard(rec.session_id)
        rec.ended_at = now
        rec.expires_at = now + timedelta(minutes=self.settings.recording_retention_minutes)
        if not rec.trace_zip.exists() and rec.state != "failed":
            rec.state = "failed"
            rec.reason = rec.reason or "no trace was written"
        self._write_meta(rec)
        rec.done.set()
        self._set_state(rec, rec.state)
        await self._clean_if_idle()

    def _context_gone(self, session_id: str) -> None:
        """The context closed under a recording (Chromium died): keep what was saved."""
        rec = self._index.get(session_id)
        if rec is None or not rec.tracing:
            return

        async def lost() -> None:
            async with rec.lock:
                if rec.tracing:
                    rec.live, rec.chunk = None, None
                    rec.state = "failed"
                    rec.reason = "the browser closed before the trace was saved"
                    await _off_loop(self._drop_chunk_files, rec)
                    await self._ended(rec)

        self.manager.runtime.spawn(lost())

    def _chunk(self, rec: Recording, ordinal: int) -> _Chunk:
        """The files of the trace's chunk ``ordinal`` (Playwright's names)."""
        suffix = f"-chunk{ordinal}" if ordinal else ""
        base = self.traces_dir
        return _Chunk(base / f"{rec.name}{suffix}.trace", base / f"{rec.name}.network")

    async def _clean_if_idle(self) -> None:
        async with self._traces_lock:
            if not self._running():
                await _off_loop(self._clean_traces_dir)

    def _set_state(self, rec: Recording, state: RecordingState) -> None:
        rec.state = state
        record = self.manager._records.get(rec.session_id)
        if record is not None:
            record.recording = state
            self.manager._changed(record)

    # ------------------------------------------------------------- measuring

    def _running(self) -> list[Recording]:
        return [rec for rec in self._index.values() if rec.tracing]

    async def _measure_all(self) -> None:
        """About once a second while anything records: each recording's size against the cap,
        and the disk against its floor."""
        try:
            await self._measure_loop()
        finally:
            self._monitoring = False

    async def _measure_loop(self) -> None:
        while True:
            running = self._running()
            if not running:
                return
            cap = int(self.settings.max_recording_mb * MB)
            low = await _off_loop(self._low_disk)
            for rec in running:
                chunk = rec.chunk
                if chunk is None:
                    continue
                await _off_loop(self._measure, chunk)
                rec.size = rec.saved_bytes + chunk.text + sum(chunk.refs.values())
                reason = None
                if rec.size > cap:
                    cap_mb = self.settings.max_recording_mb
                    reason = f"the trace reached SESSIONS_MAX_RECORDING_MB={cap_mb:g}"
                elif low is not None:
                    reason = (
                        f"the disk went below SESSIONS_MIN_FREE_DISK_MB="
                        f"{self.settings.min_free_disk_mb:g} ({low:.0f} MB free)"
                    )
                if reason is not None:
                    await self._truncate(rec, reason)
            await asyncio.sleep(MONITOR_SECONDS)

    async def _truncate(self, rec: Recording, reason: str) -> None:
        async with rec.lock:
            if not rec.tracing:
                return
            rec.reason = reason
            rec.state = "truncated"
            await self._cut(rec, final=True)
            self.truncated += 1
        self._set_state(rec, "truncated")
        log.warning(
            "flask_sessions: recording of session %s truncated: %s; the session goes on",
            rec.session_id,
            reason,
            extra={"event": "recording_truncated", "session_id": rec.session_id},
        )

    def _measure(self, chunk: _Chunk) -> None:
        """Read what the chunk's text files gained since the last look (threads)."""
        text = 0
        for path in (chunk.trace, chunk.network):
            try:
                size = path.stat().st_size
            except OSError:
                continue
            text += size
            start = chunk.offsets.get(path, 0)
            if size <= start:
                continue
            with open(path, "rb") as handle:
                handle.seek(start)
                data = chunk.carry.pop(path, b"") + handle.read(size - start)
            chunk.offsets[path] = size
            cut = data.rfind(b"\n") + 1
            chunk.carry[path] = data[cut:][-4096:]
            for match in _REF.finditer(data, 0, cut):
                name = (match.group(1) or b"resources/" + match.group(2)).decode("utf-8", "replace")
                chunk.refs.setdefault(name, 0)
        chunk.text = text
        base = self.traces_dir
        for name, known in chunk.refs.items():
            if not known:
                with contextlib.suppress(OSError):
                    chunk.refs[name] = (base / name).stat().st_size

    def _low_disk(self) -> float | None:
        """Free MB when below the floor, else None."""
        floor = self.settings.min_free_disk_mb
        if floor <= 0:
            return None
        path = self.root
        while not path.exists() and path != path.parent:
            path = path.parent
        try:
            free = shutil.disk_usage(path).free / MB
        except OSError:
            return None
        return free if free < floor else None

    # ------------------------------------------------------------- files

    def _write_meta(self, rec: Recording) -> None:
        with contextlib.suppress(OSError):
            rec.folder.mkdir(parents=True, exist_ok=True)
            tmp = rec.folder / "meta.json.tmp"
            tmp.write_text(json.dumps(rec.meta()), encoding="utf-8")
            os.replace(tmp, rec.folder / "meta.json")

    def _drop_chunk_files(self, rec: Recording, chunk: _Chunk | None = None) -> None:
        """Delete what the chunk left in traces_dir that is this session's alone: its trace
        text, Playwright's network copies and its screencast frames."""
        chunk = chunk or rec.chunk
        base = self.traces_dir
        with contextlib.suppress(OSError):
            for path in base.iterdir():
                if path.name.startswith(rec.name + "-pwnetcopy-") or (
                    chunk is not None and path == chunk.trace
                ):
                    path.unlink(missing_ok=True)
        if chunk is not None:
            for name in chunk.refs:
                if name.startswith("screencast/"):
                    with contextlib.suppress(OSError):
                        (base / name).unlink(missing_ok=True)
        if not rec.tracing:
            for path in (base / f"{rec.name}.network", base / f"{rec.name}.trace"):
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)

    def _clean_traces_dir(self) -> None:
        """No recording runs (checked under the traces lock): whatever tracing left in
        traces_dir is nobody's now."""
        with contextlib.suppress(OSError):
            for path in self.traces_dir.iterdir():
                if path.is_dir():
                    shutil.rmtree(path, True)
                else:
                    path.unlink(missing_ok=True)

    def _sweep_disk(self, now: datetime, known: set[str], running: list[Recording]) -> None:
        """Delete folders nobody will serve again: expired, or left unfinished by a process
        that is gone (or too long ago to still be running); and dead processes' traces."""
        lifetime = timedelta(minutes=self.settings.max_lifetime_minutes)
        retention = timedelta(minutes=self.settings.recording_retention_minutes)
        with contextlib.suppress(OSError):
            for folder in self.root.iterdir():
                if not _SESSION_ID.match(folder.name) or folder.name in known:
                    continue
                meta = _read_meta(folder)
                try:
                    changed = datetime.fromtimestamp(folder.stat().st_mtime, now.tzinfo)
                except OSError:
                    continue
                expired = False
                if meta is not None and meta.get("expires_at"):
                    with contextlib.suppress(ValueError, TypeError):
                        expired = now >= datetime.fromisoformat(str(meta["expires_at"]))
                else:  # unfinished: its process died, or it is far too old to be running
                    pid = meta.get("pid") if meta is not None else None
                    gone = not isinstance(pid, int) or not _alive(pid)
                    expired = (gone and now - changed >= retention) or (
                        now - changed >= lifetime + retention
                    )
                if expired:
                    shutil.rmtree(folder, True)
        with contextlib.suppress(OSError):
            for folder in (self.root / ".traces").iterdir():
                pid = folder.name.split("-")[0]
                if folder == self.traces_dir or not pid.isdigit():
                    continue
                if not _alive(int(pid)):
                    shutil.rmtree(folder, True)

    def metrics(self) -> Iterable[Metric]:
        """Gauges for ``/metrics``."""
        index = list(self._index.values())
        yield GaugeMetricFamily(
            "flask_sessions_recordings_running",
            "Sessions being recorded now.",
            value=sum(1 for rec in index if rec.tracing),
        )
        yield GaugeMetricFamily(
            "flask_sessions_recordings_kept",
            "Recordings kept (running or saved, until they expire).",
            value=len(index),
        )
        yield GaugeMetricFamily(
            "flask_sessions_recordings_bytes",
            "Bytes of the recordings kept (saved traces and running chunks).",
            value=sum(rec.size for rec in index),
        )
        yield CounterMetricFamily(
            "flask_sessions_recordings_truncated",
            "Recordings stopped at the size cap or the disk floor.",
            value=self.truncated,
        )


# ------------------------------------------------------------------ group titles


def start_title(request: StartRequest) -> Callable[[LiveSession], str]:
    """``start https://…``; a start without a url drives nothing, and is no group."""
    return lambda live: f"start {request.url}" if request.url else ""


def observe_title(request: ObserveRequest) -> Callable[[LiveSession], str]:
    return lambda live: f"observe {request.url or live.page.url}"


def scrape_title(request: ScrapeRequest) -> Callable[[LiveSession], str]:
    def title(live: LiveSession) -> str:
        what = f" {request.selector}" if request.selector else ""
        return f"scrape {request.format}{what} {request.url or live.page.url}"

    return title


def step_title(request: StepRequest) -> Callable[[LiveSession], str]:
    """``step click L3``, ``step goto https://…``, ``step press_key Enter`` (never a value
    that was typed: it may be a password)."""
    target: Any = (
        getattr(request, "id", None)
        or getattr(request, "selector", None)
        or getattr(request, "url", None)
        or getattr(request, "key", None)
        or getattr(request, "index", None)
        or getattr(request, "amount", None)
        or getattr(request, "time_ms", None)
    )
    text = f"step {request.type}" + (f" {target}" if target is not None else "")
    return lambda live: text


def _title(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TITLE_MAX else text[: TITLE_MAX - 1] + "…"


# ------------------------------------------------------------------ untraced calls
#
# Playwright traces every API call as an action, with DOM snapshots before and after it
# (and at its input): a REST step made ten or so (the action, resolving the element, the
# settling and observation's evaluations, the title), each snapshotted. Inside a group, our
# calls are made *internal* instead (as Playwright's own helpers are: no trace event, no
# snapshot), and the group ends with one traced call that snapshots the page as the call
# left it. Playwright's API has no public switch for it; its zone of an API call (a
# ContextVar) is where the client marks a call internal. Without it (another Playwright),
# every call is traced as before.

try:
    from playwright._impl.channel_owner import ApiZone as _ApiZone
    from playwright._impl.utils.zones import current_zone as _current_zone
except ImportError:  # pragma: no cover - another Playwright: calls are traced
    _ApiZone = None  # type: ignore[assignment,misc]

SNAPSHOT_SECONDS = 5.0  # the group's snapshot waits no longer for a slow page


def _zone(title: str | None, internal: bool) -> Any:
    if _ApiZone is None:
        return None
    return _current_zone().with_("apiZone", _ApiZone("flask_sessions", [], title, internal))


async def untraced(work: Callable[[], Awaitable[T]]) -> T:
    """``work()`` with its Playwright calls internal: no trace events, no snapshots."""
    zone = _zone(None, True)
    if zone is None:
        return await work()
    result: T = await zone.run_async(work)
    return result


async def _snapshot(live: LiveSession, name: str) -> None:
    """One traced call at a group's end (an evaluation of nothing, named ``page after the
    step``): the trace's DOM snapshot of the page after the call, and the filmstrip frame
    the viewer shows with it. Skipped for a page that does not answer."""
    page = live.page
    if live.state.hung or page.is_closed():
        return
    zone = _zone(f"page after the {name.split()[0]}", False)
    try:
        if zone is None:
            await asyncio.wait_for(page.evaluate("0"), SNAPSHOT_SECONDS)
        else:
            await asyncio.wait_for(zone.run_async(lambda: page.evaluate("0")), SNAPSHOT_SECONDS)
    except (PlaywrightError, TimeoutError):
        pass


# ------------------------------------------------------------------ helpers


async def _off_loop(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread; inline when the interpreter is exiting (its thread
    pool refuses new work then, and a save at exit must still happen)."""
    try:
        return await asyncio.to_thread(fn, *args)
    except RuntimeError as exc:
        if "shutdown" not in str(exc):
            raise
        return fn(*args)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _playwright_failed(exc: PlaywrightError, doing: str) -> Exception:
    from flask_sessions.errors import PageFailed

    return PageFailed(f"Chromium failed while {doing}: {_first_line(exc)}")


class RecordingUnavailable(SessionsError):
    """503: the recordings folder cannot be used (not a directory of this user)."""

    status_code = 503


def _own_root(root: Path, default: bool) -> str | None:
    """Make the recordings folder, 0700 (a trace holds what the pages showed and what was
    typed into them): None, or why it cannot be used. The default one, in the shared temp
    folder, must be this user's own directory and no link (another user could have made
    it first), and is narrowed to 0700 if it is wider; a configured one must be a directory
    of this user."""
    try:
        if not own_folder(root, follow_link=not default, narrow=default):
            what = "SESSIONS_RECORDING_DIR" if not default else "the default, in the temp folder"
            return (
                f"the recordings folder {root} is not a directory of this user ({what}); "
                "point SESSIONS_RECORDING_DIR at one, or remove what is there"
            )
    except OSError as exc:
        return f"the recordings folder {root} cannot be made: {exc.strerror or exc}"
    return None


def _fresh_folder(folder: Path) -> None:
    shutil.rmtree(folder, True)
    folder.mkdir(parents=True, exist_ok=True)


def _saved_recordings(root: Path) -> list[Recording]:
    """Ended recordings saved under ``root`` (by this or an earlier process), so they stay
    downloadable until they expire (threads)."""
    found = []
    with contextlib.suppress(OSError):
        for folder in root.iterdir():
            if not _SESSION_ID.match(folder.name):
                continue
            meta = _read_meta(folder)
            if meta is None or not meta.get("ended_at") or not meta.get("expires_at"):
                continue
            if meta.get("state") not in ("saved", "truncated", "failed"):
                continue
            try:
                rec = Recording(
                    folder.name,
                    str(meta["owner"]),
                    folder,
                    meta["state"],
                    datetime.fromisoformat(meta["started_at"]),
                    datetime.fromisoformat(meta["ended_at"]),
                    datetime.fromisoformat(meta["expires_at"]),
                    int(meta.get("bytes") or 0),
                    reason=meta.get("reason"),
                )
            except (KeyError, TypeError, ValueError):
                continue
            rec.size = rec.saved_bytes
            rec.done.set()
            found.append(rec)
    return found


def _read_meta(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _open_copy(path: Path) -> tuple[Any, int] | None:
    """The file open for reading (its content stays readable if it is replaced or deleted
    meanwhile), and its size; None if there is none."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by RecordingFile.chunks
    except OSError:
        return None
    return handle, os.fstat(handle.fileno()).st_size


def _merge(target: Path, part: Path) -> int:
    """Merge the chunk zip ``part`` into ``target`` (made if missing), then delete ``part``.

    Chunk ``n`` becomes ``<n>-trace.trace``; the network log is the latest chunk's (it is
    cumulative); resources are kept once; ``trace.stacks`` is dropped. Written to a
    temporary file and moved into place, so a download in progress keeps its copy.
    Returns the new size.
    """
    tmp = target.with_suffix(".zip.tmp")
    names: set[str] = set()
    ordinal = 0
    try:
        with zipfile.ZipFile(tmp, "w") as out:
            if target.exists():
                with zipfile.ZipFile(target) as old:
                    for info in old.infolist():
                        if info.filename.endswith("-trace.network"):
                            continue  # the new chunk's network log supersedes it
                        _copy(old, info.filename, out, info.filename)
                        names.add(info.filename)
                        if info.filename.endswith("-trace.trace"):
                            ordinal += 1
            with zipfile.ZipFile(part) as new:
                for info in new.infolist():
                    name = info.filename
                    if name == "trace.stacks" or name.startswith("src/"):
                        continue
                    if name in ("trace.trace", "trace.network"):
                        renamed = f"{ordinal}-{name}"
                    elif name in names:
                        continue
                    else:
                        renamed = name
                    _copy(new, name, out, renamed)
                    names.add(renamed)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
    return target.stat().st_size


def _copy(source: zipfile.ZipFile, name: str, out: zipfile.ZipFile, as_name: str) -> None:
    stored = as_name.lower().endswith(_STORED)
    info = zipfile.ZipInfo(as_name, date_time=source.getinfo(name).date_time)
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with source.open(name) as src, out.open(info, "w") as dst:
        shutil.copyfileobj(src, dst, COPY_CHUNK)
