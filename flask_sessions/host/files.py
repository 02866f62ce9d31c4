"""Session files (issue 19): one private folder per session, for uploads and downloads.

The one home of a session's files on its host; nothing else writes a session's bytes.

* :class:`FilesRoot`, one per host (its manager): the folder of this process under
  ``SESSIONS_FILES_DIR`` (``<tempdir>/flask-sessions-files-<uid>``), held with an exclusive
  ``flock`` for the life of the process. A host that starts takes each folder's lock in
  turn: a free one was left by a process that died (the kernel releases a dead process's
  locks, SIGKILL included) and is swept; a held one is a live neighbour's. It holds the
  free-disk floor (``SESSIONS_MIN_FREE_DISK_MB``) and the :class:`DownloadRouter`.
* :class:`SessionFiles`, one per session (made with its context, warm-pool ones included):
  the index of its files (name, size, sha256, type, source, state) and the byte budget
  (``SESSIONS_MAX_SESSION_FILES_MB``) uploads and downloads share. Uploads are written from
  request threads (:class:`Upload`, fed by ``filestream.store_multipart``); downloads are
  ``downloads.SessionDownloads``'. The folder is deleted when the session ends (close,
  timeout, error, shutdown) or its Chromium dies.

Layout on disk::

    <SESSIONS_FILES_DIR>/host-<pid>-<random>/      this process (its ``.lock`` is flocked)
        s-<random>/                                one session: its files, by their names
            .incoming/                             partial files: Chromium's <guid>.crdownload
                                                   and <guid>, uploads being written (.up-*)

Names from outside (an upload's filename, a download's suggested name) go through
:func:`safe_name` (a base name: no separators, ``..``, NUL, control characters or leading
dots, at most :data:`NAME_MAX_BYTES` bytes) and are made unique (``a (2).txt``), so they
never are paths; stored names never start with a dot, so they never meet ``.incoming``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import logging
import mimetypes
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from flask_sessions.clock import system_clock
from flask_sessions.config import Settings
from flask_sessions.errors import (
    FileNotFound,
    InsufficientStorage,
    InvalidInput,
    PayloadTooLarge,
    SessionNotActive,
    SessionsError,
)
from flask_sessions.host.downloads import DownloadRouter, SessionDownloads
from flask_sessions.host.folders import own_folder, user_id
from flask_sessions.schemas import DownloadInfo, FileInfo, FileState
from flask_sessions.timefmt import iso_datetime

log = logging.getLogger("flask_sessions")

MB = 1 << 20
CHUNK = 1 << 20  # bytes read or written at a time when streaming a file
NAME_MAX_BYTES = 200  # a stored name's length in UTF-8 (file systems allow 255)
MAX_FILES = 1000  # files one session may list (failed downloads count until dropped)
INCOMING = ".incoming"
LOCK_NAME = ".lock"
HOST_PREFIX = "host-"
NEW_PREFIX = ".new-"  # a host folder being made (locked before it is renamed into place)
STALE_NEW_SECONDS = 600  # a .new- folder older than this was left by a process that died
FILES_OFF = (
    "files are off on this server (SESSIONS_MAX_SESSION_FILES_MB=0); ask its operator to set a size"
)


# ------------------------------------------------------------------------------ names


def safe_name(raw: str, field_name: str = "filename") -> str:
    """``raw`` reduced to a safe base name, or a 400 naming the rule when nothing is left.

    The part after the last ``/`` or ``\\``; without NUL, control or format characters; runs
    of white space made one space; no leading dots or spaces (no hidden files, no ``..``),
    no trailing ones; at most :data:`NAME_MAX_BYTES` bytes of UTF-8, the extension kept.
    """
    name = unicodedata.normalize("NFC", raw)
    name = re.split(r"[/\\]", name)[-1]
    name = " ".join(name.split())  # tabs, newlines, runs of blanks: one space
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C")
    name = name.lstrip(". ").rstrip(". ")
    if not name:
        raise InvalidInput(
            f"{field_name}: {shown(raw)} has nothing left once made a safe base name (no "
            "path separators, '..', NUL, control characters or leading dots); send a name "
            "such as cv.pdf",
            fields=[
                {
                    "field": field_name,
                    "message": "is not a usable file name: no letters left once made a safe "
                    "base name",
                    "fix": "send a plain file name such as cv.pdf",
                    "got": shown(raw),
                }
            ],
        )
    return _capped(name)


def _capped(name: str, limit: int = NAME_MAX_BYTES) -> str:
    """``name`` cut to ``limit`` bytes of UTF-8, its extension (if short) kept."""
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 16:
        stem, ext = name, ""
    tail = f".{ext}" if ext else ""
    room = limit - len(tail.encode("utf-8"))
    cut = stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(". ")
    return (cut or "file") + tail


def shown(raw: str) -> str:
    text = raw if len(raw) <= 80 else raw[:77] + "..."
    return text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text


def _numbered(name: str, n: int) -> str:
    """``name`` with `` (n)`` before its extension: ``cv (2).pdf``."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    tail = f" ({n})" + (f".{ext}" if ext else "")
    return _capped(stem, NAME_MAX_BYTES - len(tail.encode("utf-8"))) + tail


def content_type_of(name: str) -> str:
    return mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"


# ------------------------------------------------------------------------------ entries


@dataclass
class FileEntry:
    """One file of a session, as the index knows it."""

    name: str
    source: str  # upload | download
    created_at: datetime
    state: FileState = "complete"
    size: int = 0
    sha256: str | None = None
    content_type: str = "application/octet-stream"
    url: str | None = None
    guid: str | None = None  # a download's, as Chromium names it
    seq: int = 0  # order of creation in the session
    note: str | None = None  # why a download was cancelled

    def info(self) -> FileInfo:
        return FileInfo(
            name=self.name,
            size=self.size,
            sha256=self.sha256,
            content_type=self.content_type,
            source="upload" if self.source == "upload" else "download",
            created_at=iso_datetime(self.created_at),
            state=self.state,
            url=self.url,
        )

    def download_info(self) -> DownloadInfo:
        return DownloadInfo(name=self.name, state=self.state, size=self.size)


# ------------------------------------------------------------------------------- the root


class FilesRoot:
    """This host's folder of session folders, the sweep at start, and download routing.

    Created with the manager; nothing touches the disk until the first session folder is
    made (:meth:`ensure`), so a forked worker makes its own.
    """

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = system_clock) -> None:
        self.settings = settings
        self.clock = clock
        self.limit_bytes = int(settings.max_session_files_mb * MB)
        self.enabled = self.limit_bytes > 0
        base = settings.files_dir or os.path.join(
            tempfile.gettempdir(), f"flask-sessions-files-{user_id()}"
        )
        self.base = os.path.abspath(base)
        self.folder: str | None = None
        self.swept: list[str] = []  # folders of dead predecessors removed at start
        self._lock_fd: int | None = None
        self._mutex = threading.Lock()
        self._sessions: dict[str, SessionFiles] = {}  # by .incoming path
        self.router = DownloadRouter(self)

    # --------------------------------------------------------------- folders

    def ensure(self) -> str:
        """This process's folder, made (after sweeping dead ones) the first time."""
        with self._mutex:
            if self.folder is not None:
                return self.folder
            self._make_base()
            self.swept = self.sweep()
            staging = tempfile.mkdtemp(prefix=NEW_PREFIX, dir=self.base)
            fd = os.open(os.path.join(staging, LOCK_NAME), os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            folder = os.path.join(self.base, f"{HOST_PREFIX}{os.getpid()}-{secrets.token_hex(4)}")
            os.rename(staging, folder)
            self._lock_fd, self.folder = fd, folder
            if self.swept:
                log.info(
                    "flask_sessions: removed %d session file folder(s) left by stopped hosts in %s",
                    len(self.swept),
                    self.base,
                )
            return folder

    def start(self) -> None:
        """At host start: sweep what stopped hosts left (and, with files on, take our
        folder). A folder that cannot be used is logged; sessions then answer 503."""
        try:
            if self.enabled:
                self.ensure()
            elif os.path.isdir(self.base):
                self.swept = self.sweep()
        except (OSError, FilesUnavailable) as exc:
            log.error("flask_sessions: session files: %s", exc)

    def _make_base(self) -> None:
        try:
            mine = own_folder(self.base)
        except OSError as exc:  # e.g. a file there, or no permission: 503, not 500
            raise FilesUnavailable(
                f"the files folder {self.base} cannot be made: {exc.strerror or exc} "
                "(SESSIONS_FILES_DIR); point it at a folder of this user"
            ) from None
        if not mine:
            raise FilesUnavailable(
                f"the files folder {self.base} is not a directory of this user "
                "(SESSIONS_FILES_DIR); point it at one, or remove what is there"
            )

    def sweep(self) -> list[str]:
        """Remove the folders of hosts that are gone: their lock is free. A live host's is
        held (flock), by any process, this one's other apps included."""
        removed = []
        try:
            names = os.listdir(self.base)
        except OSError:
            return []
        for name in names:
            path = os.path.join(self.base, name)
            if name.startswith(NEW_PREFIX):
                with contextlib.suppress(OSError):
                    if time.time() - os.lstat(path).st_mtime > STALE_NEW_SECONDS:
                        shutil.rmtree(path, ignore_errors=True)
                        removed.append(path)
                continue
            if not name.startswith(HOST_PREFIX) or os.path.islink(path):
                continue
            try:
                fd = os.open(os.path.join(path, LOCK_NAME), os.O_RDWR | os.O_NOFOLLOW)
            except OSError as exc:
                if exc.errno == errno.ENOENT:  # no lock file: never a live host's folder
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # held: a live host
            else:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
            finally:
                os.close(fd)
        return removed

    def new_session(self) -> SessionFiles:
        """A new session folder and its index (with files off: no folder, and its
        downloads are refused and counted)."""
        if not self.enabled:
            return SessionFiles(self, None, self.clock)
        root = self.ensure()
        folder = tempfile.mkdtemp(prefix="s-", dir=root)
        os.mkdir(os.path.join(folder, INCOMING), 0o700)
        files = SessionFiles(self, folder, self.clock)
        with self._mutex:
            self._sessions[files.incoming] = files
        return files

    def forget(self, files: SessionFiles) -> None:
        with self._mutex:
            self._sessions.pop(files.incoming, None)

    def all_downloads(self) -> list[SessionDownloads]:
        with self._mutex:
            return [files.downloads for files in self._sessions.values()]

    def drop_all(self) -> None:
        """Chromium is gone (its sessions and pool with it): delete every session folder."""
        with self._mutex:
            sessions = list(self._sessions.values())
        for files in sessions:
            files.discard()

    def close(self) -> None:
        """The host stops: every folder of this process goes, and the lock with it (any
        thread: sessions still listed are only marked closed; their folders go with ours)."""
        with self._mutex:
            sessions = list(self._sessions.values())
        for files in sessions:
            files._shut()
        with self._mutex:
            folder, fd = self.folder, self._lock_fd
            self.folder = self._lock_fd = None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's folder and lock stay the parent's."""
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)  # our copy only: the parent's lock holds
        self._lock_fd, self.folder = None, None
        self._mutex = threading.Lock()
        self._sessions = {}
        self.router = DownloadRouter(self)

    # ------------------------------------------------------------------ disk

    def free_mb(self) -> float:
        try:
            return shutil.disk_usage(self.folder or self.base).free / MB
        except OSError:
            return float("inf")

    def disk_low(self) -> str | None:
        """Why new bytes are refused (below SESSIONS_MIN_FREE_DISK_MB), or None."""
        floor = self.settings.min_free_disk_mb
        if floor <= 0:
            return None
        free = self.free_mb()
        if free >= floor:
            return None
        return (
            f"the server is low on disk ({free:.0f} MB free, below its floor of {floor:g} MB, "
            "SESSIONS_MIN_FREE_DISK_MB)"
        )


class FilesUnavailable(SessionsError):
    """503: the files folder cannot be used (not a directory of this user)."""

    status_code = 503


# ------------------------------------------------------------------------ one session


class SessionFiles:
    """One session's files: its folder, its index, its budget, its downloads.

    Thread-safe: uploads and reads come from request threads, downloads from the loop;
    the index is guarded by a lock that is never held across I/O or an ``await``.
    """

    def __init__(self, root: FilesRoot, folder: str | None, clock: Callable[[], datetime]) -> None:
        settings = root.settings
        self.root = root
        self.folder = folder or ""
        self.incoming = os.path.join(folder, INCOMING) if folder else ""
        self.clock = clock
        self.limit_bytes = root.limit_bytes
        self.limit_mb = settings.max_session_files_mb
        self.max_upload_bytes = int(settings.max_upload_mb * MB)
        self.closed = False
        self._lock = threading.Lock()
        self._entries: dict[str, FileEntry] = {}
        self._reserved: set[str] = set()  # names of uploads being written
        self._charged = 0  # bytes of uploads being written
        self.seq = 0  # files made so far (their order)
        self.downloads = SessionDownloads(self)
        self.pdf_view: object = None  # the PDF the current tab shows (host/pdfview.py)

    # ------------------------------------------------------------- reading

    def listing(self) -> list[FileInfo]:
        with self._lock:
            return [e.info() for e in self._entries.values()]

    def complete(self) -> list[FileEntry]:
        with self._lock:
            return [e for e in self._entries.values() if e.state == "complete"]

    def used_bytes(self) -> int:
        with self._lock:
            return self._used()

    def _used(self) -> int:
        live = sum(e.size for e in self._entries.values() if e.state in ("complete", "in_progress"))
        return live + self._charged

    def usage(self) -> tuple[int, int]:
        """Bytes of every file (uploads being written included), and of downloads alone."""
        with self._lock:
            downloads = sum(
                e.size
                for e in self._entries.values()
                if e.source == "download" and e.state in ("complete", "in_progress")
            )
            return self._used(), downloads

    def downloads_after(self, seq: int) -> list[FileEntry]:
        with self._lock:
            return [e for e in self._entries.values() if e.seq > seq and e.guid]

    def safe(self, raw: str) -> str:
        return safe_name(raw)

    def add_download(self, name: str, url: str | None, guid: str) -> FileEntry:
        """List a download that begins, under a unique name (loop side)."""
        with self._lock:
            if len(self._entries) >= MAX_FILES:
                self._drop_failed(0)
            entry = FileEntry(
                name=self._unique(name),
                source="download",
                created_at=self.clock(),
                state="in_progress",
                content_type=content_type_of(name),
                url=url,
                guid=guid,
                seq=self._next_seq(),
            )
            self._entries[entry.name] = entry
        return entry

    def drop_failed(self, keep: int) -> None:
        with self._lock:
            self._drop_failed(keep)

    def _drop_failed(self, keep: int) -> None:
        """Keep at most ``keep`` cancelled or too_large downloads listed (lock held)."""
        failed = [n for n, e in self._entries.items() if e.state in ("cancelled", "too_large")]
        for name in failed[: max(0, len(failed) - keep)]:
            del self._entries[name]

    def get(self, name: str) -> FileEntry:
        """A complete file's entry, or a 404 naming the files there are."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None and entry.state == "complete":
                return entry
            there = [n for n, e in self._entries.items() if e.state == "complete"]
        if entry is not None:
            raise FileNotFound(
                f"{name!r} is a download that is {entry.state.replace('_', ' ')}: it has no "
                "bytes to give" + ("" if entry.state != "in_progress" else " yet; ask again")
            )
        raise FileNotFound(_missing(name, there))

    def path(self, entry: FileEntry) -> str:
        return os.path.join(self.folder, entry.name)

    def paths(self, names: Iterable[str]) -> tuple[list[str], str | None]:
        """The paths of complete files ``names`` (for the upload step), or why not."""
        if not self.root.enabled:
            return [], FILES_OFF
        out = []
        with self._lock:
            there = [n for n, e in self._entries.items() if e.state == "complete"]
            for name in names:
                entry = self._entries.get(name)
                if entry is None or entry.state != "complete":
                    return [], _missing(name, there)
                out.append(os.path.join(self.folder, entry.name))
        return out, None

    # ----------------------------------------------------------------- uploads

    def begin_upload(self, raw_name: str) -> Upload:
        """Reserve a unique safe name and open its partial file (request thread)."""
        if not self.root.enabled:
            raise InvalidInput(FILES_OFF)
        name = safe_name(raw_name)
        low = self.root.disk_low()
        if low is not None:
            raise InsufficientStorage(f"{low}: no upload for now; retry later")
        with self._lock:
            self._check_open()
            if len(self._entries) + len(self._reserved) >= MAX_FILES:
                raise PayloadTooLarge(
                    f"a session keeps at most {MAX_FILES} files; delete some "
                    "(DELETE /session/<id>/files/<name>) first"
                )
            name = self._unique(name)
            self._reserved.add(name)
        partial = os.path.join(self.incoming, f".up-{secrets.token_hex(8)}")
        try:
            handle = open(partial, "xb")  # noqa: SIM115 - closed by Upload
        except OSError:
            with self._lock:
                self._reserved.discard(name)
            self._check_open()
            raise
        return Upload(self, name, partial, handle)

    def _charge(self, name: str, n: int) -> None:
        with self._lock:
            self._check_open()
            if self._used() + n > self.limit_bytes:
                raise PayloadTooLarge(
                    f"{name}: the session's files would pass their limit of "
                    f"{self.limit_mb:g} MB (SESSIONS_MAX_SESSION_FILES_MB); delete "
                    "some files first (DELETE /session/<id>/files/<name>)",
                    limit="SESSIONS_MAX_SESSION_FILES_MB",
                    limit_bytes=self.limit_bytes,
                )
            self._charged += n

    def _release(self, name: str, charged: int) -> None:
        with self._lock:
            self._charged -= charged
            self._reserved.discard(name)

    def _commit(self, upload: Upload, sha256: str) -> FileEntry:
        with self._lock:
            self._check_open()
            os.replace(upload.partial, os.path.join(self.folder, upload.name))
            self._charged -= upload.size
            self._reserved.discard(upload.name)
            entry = FileEntry(
                name=upload.name,
                source="upload",
                created_at=self.clock(),
                size=upload.size,
                sha256=sha256,
                content_type=content_type_of(upload.name),
                seq=self._next_seq(),
            )
            self._entries[entry.name] = entry
        return entry

    def _unique(self, name: str) -> str:
        taken = self._entries.keys() | self._reserved
        if name not in taken:
            return name
        n = 2
        while _numbered(name, n) in taken:
            n += 1
        return _numbered(name, n)

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _check_open(self) -> None:
        if self.closed:
            raise SessionNotActive(
                "the session ended, and its files with it; start a new one with "
                "POST /session/start",
                status="closed",
            )

    def remove(self, entries: Iterable[FileEntry]) -> None:
        """Take back files an upload stored (it failed later on)."""
        for entry in entries:
            with self._lock:
                if self._entries.get(entry.name) is entry:
                    del self._entries[entry.name]
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.folder, entry.name))

    # ---------------------------------------------------------------- delete

    def delete(self, name: str) -> FileInfo:
        """Remove a file (a running download is cancelled first); loop side."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                there = [n for n, e in self._entries.items() if e.state == "complete"]
                raise FileNotFound(_missing(name, there))
            del self._entries[name]
        if entry.state == "in_progress" and entry.guid is not None:
            self.downloads.running.pop(entry.guid, None)
            entry.state = "cancelled"
            self.downloads.cancel(entry.guid)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.folder, name))
        return entry.info()

    # ------------------------------------------------------------------ closing

    async def close(self) -> None:
        """The session ended: stop its downloads, delete its folder (off the loop)."""
        self._shut()
        await self.downloads.close()
        if self.folder:
            await asyncio.to_thread(shutil.rmtree, self.folder, True)

    def discard(self) -> None:
        """Delete the folder now (Chromium died: nothing to wait for)."""
        self._shut()
        with contextlib.suppress(RuntimeError):  # no loop: nothing of it runs
            self.downloads.stop()
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _shut(self) -> None:
        with self._lock:
            self.closed = True
        self.root.forget(self)


def _missing(name: str, there: list[str]) -> str:
    listed = ", ".join(repr(n) for n in there[:50]) or "none yet"
    more = f" and {len(there) - 50} more" if len(there) > 50 else ""
    return (
        f"no file {name!r} in this session; its files are: {listed}{more} "
        "(GET /session/<id>/files lists them; POST one there to upload it)"
    )


# ------------------------------------------------------------------------------ uploads


class Upload:
    """One file of an upload being written: bounded as it goes, hashed as it goes.

    ``write`` raises :class:`PayloadTooLarge` (the file past SESSIONS_MAX_UPLOAD_MB, or the
    session's files past SESSIONS_MAX_SESSION_FILES_MB) or :class:`InsufficientStorage`;
    the caller then calls :meth:`abort`, which removes what was written.
    """

    DISK_CHECK_BYTES = 64 * MB

    def __init__(self, files: SessionFiles, name: str, partial: str, handle: BinaryIO) -> None:
        self.files = files
        self.name = name
        self.partial = partial
        self.handle = handle
        self.size = 0
        self._hash = hashlib.sha256()
        self._next_disk_check = self.DISK_CHECK_BYTES
        self.done = False

    def write(self, data: bytes) -> None:
        if not data:
            return
        files = self.files
        if self.size + len(data) > files.max_upload_bytes:
            raise PayloadTooLarge(
                f"{self.name}: larger than the upload limit of "
                f"{files.max_upload_bytes / MB:g} MB (SESSIONS_MAX_UPLOAD_MB); nothing of it "
                "was kept",
                limit="SESSIONS_MAX_UPLOAD_MB",
                limit_bytes=files.max_upload_bytes,
            )
        files._charge(self.name, len(data))
        self.size += len(data)
        self._hash.update(data)
        self.handle.write(data)
        if self.size >= self._next_disk_check:
            self._next_disk_check += self.DISK_CHECK_BYTES
            low = files.root.disk_low()
            if low is not None:
                raise InsufficientStorage(f"{low}: the upload of {self.name} was stopped")

    def commit(self) -> FileEntry:
        self.handle.close()
        entry = self.files._commit(self, self._hash.hexdigest())
        self.done = True
        return entry

    def abort(self) -> None:
        if self.done:
            return
        self.done = True
        with contextlib.suppress(OSError):
            self.handle.close()
        with contextlib.suppress(OSError):
            os.unlink(self.partial)
        self.files._release(self.name, self.size)
