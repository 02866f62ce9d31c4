"""Session files on the wire (issue 19): multipart uploads in, files and zips out.

Both ways stream: an upload is parsed as it is read (werkzeug's sans-IO
``MultipartDecoder``) and each part written to the session's folder as it arrives, never a
whole part in memory; a file goes out in :data:`~flask_sessions.host.files.CHUNK` pieces; a
zip of all of them is written by :mod:`zipfile` into a sink that yields what it is given
(zipfile then writes data descriptors), never the whole archive in memory. Served files
carry ``Content-Disposition: attachment`` (RFC 6266 ``filename*``), ``nosniff`` and a
sandboxing CSP, and anything a browser could run is served as bytes, so a page's HTML never
runs on our origin.
"""

from __future__ import annotations

import re
import unicodedata
import zipfile
from collections.abc import Iterator
from datetime import datetime
from typing import IO, BinaryIO
from urllib.parse import quote

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Event,
    Field,
    File,
    MultipartDecoder,
    NeedData,
)

from flask_sessions.errors import InvalidInput, SessionsError
from flask_sessions.host.files import CHUNK, MAX_FILES, FileEntry, SessionFiles, Upload, shown

# ----------------------------------------------------------------- streaming out


def iter_handle(handle: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    """``length`` bytes of an open file from ``start``, in CHUNK pieces; closes it at the
    end. (Opened before the answer starts: a delete or a session end meanwhile is fine.)"""
    with handle:
        if start:
            handle.seek(start)
        left = length
        while left > 0:
            chunk = handle.read(min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


def attachment_headers(name: str) -> dict[str, str]:
    """Headers that make a browser save a file, never run it on our origin."""
    return {
        "Content-Disposition": content_disposition(name),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Cache-Control": "private, no-store",
    }


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII ``filename`` and the exact one in ``filename*`` (RFC 6266,
    RFC 8187)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    ascii_name = re.sub(r"[^A-Za-z0-9 !#$&+,.;=@^_`{}~()\[\]-]", "_", ascii_name).strip() or "file"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def served_type(content_type: str) -> str:
    """The Content-Type a file is served with: what a page could run (HTML, SVG, XML,
    scripts) goes out as bytes; the listing keeps the real type."""
    risky = ("text/html", "application/xhtml", "image/svg", "text/xml", "application/xml")
    if content_type.startswith(risky) or "javascript" in content_type:
        return "application/octet-stream"
    return content_type


class _Sink:
    """A write-only, unseekable file for :class:`zipfile.ZipFile`: what it is given is
    taken out as it comes (so the archive streams; zipfile then writes data descriptors)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._written = 0

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        self._written += len(data)
        return len(data)

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> Iterator[bytes]:
        if self._chunks:
            data = b"".join(self._chunks)
            self._chunks.clear()
            yield data


def iter_zip(members: list[tuple[FileEntry, str]]) -> Iterator[bytes]:
    """A zip of ``(entry, path)`` pairs, streamed: stored (no compression: downloads are
    mostly compressed already, and loopback is faster than deflate), ZIP64 where needed."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for entry, path in members:
            try:
                handle = open(path, "rb")  # noqa: SIM115 - closed below
            except OSError:
                continue  # deleted since the listing
            with handle:
                info = zipfile.ZipInfo(entry.name, _zip_time(entry.created_at))
                info.file_size = entry.size
                info.compress_type = zipfile.ZIP_STORED
                with archive.open(info, "w", force_zip64=entry.size > (1 << 31)) as out:
                    while chunk := handle.read(CHUNK):
                        out.write(chunk)
                        yield from sink.take()
            yield from sink.take()
    yield from sink.take()


def _zip_time(when: datetime) -> tuple[int, int, int, int, int, int]:
    t = when.timetuple()
    return (max(1980, t.tm_year), t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


# ------------------------------------------------------------------ multipart in


PARSE_CHUNK = 256 << 10  # the decoder is 3x faster fed 256 KiB than 1 MiB at a time
MAX_HEADER_BYTES = PARSE_CHUNK + (64 << 10)  # what may wait in the parser for a part's headers
MAX_PARTS = MAX_FILES + 100


def store_multipart(
    files: SessionFiles, stream: IO[bytes], content_type: str | None
) -> list[FileEntry]:
    """Store each file part of a ``multipart/form-data`` body, streamed to disk as it is
    read (never a whole part in memory). All or nothing: on any error the files this body
    already stored are removed too, and the error says why (400, 409, 413 or 507)."""
    mimetype, options = parse_options_header(content_type or "")
    boundary = options.get("boundary", "")
    if mimetype != "multipart/form-data" or not boundary:
        raise InvalidInput(
            "body: send multipart/form-data with one or more file parts, e.g. "
            "curl -F file=@cv.pdf (got Content-Type "
            f"{shown(content_type or 'none')})",
            fields=[{"field": "body", "message": "is not multipart/form-data"}],
        )
    decoder = MultipartDecoder(boundary.encode("latin-1"), max_parts=MAX_PARTS)
    stored: list[FileEntry] = []
    current: Upload | None = None
    event: Event = NeedData()
    try:
        while not isinstance(event, Epilogue):
            data = stream.read(PARSE_CHUNK)
            decoder.receive_data(data or None)
            event = decoder.next_event()
            while not isinstance(event, (NeedData, Epilogue)):
                if isinstance(event, File) and event.filename:
                    current = files.begin_upload(event.filename)
                elif isinstance(event, (File, Field)):
                    current = None  # a plain field (or an empty file input): ignored
                elif isinstance(event, Data) and current is not None:
                    current.write(event.data)
                    if not event.more_data:
                        stored.append(current.commit())
                        current = None
                event = decoder.next_event()
            if len(decoder.buffer) > MAX_HEADER_BYTES:  # part headers that never end
                raise ValueError("a part's headers are longer than 64 KiB")
        if not stored:
            raise InvalidInput(
                "body: has no file part; send each file as a part with a filename, e.g. "
                "curl -F file=@cv.pdf",
                fields=[{"field": "body", "message": "has no file part"}],
            )
    except BaseException as exc:
        if current is not None:
            current.abort()
        files.remove(stored)
        if isinstance(exc, RequestEntityTooLarge):  # max_parts
            raise InvalidInput(f"body: has more than {MAX_PARTS} parts; send fewer") from None
        if isinstance(exc, ValueError) and not isinstance(exc, SessionsError):
            if decoder.complete:
                raise InvalidInput(
                    "body: the multipart body ended before its closing boundary (a broken or "
                    "cut upload); send it again",
                    fields=[{"field": "body", "message": "ended early"}],
                ) from None
            raise InvalidInput(
                f"body: is not valid multipart/form-data ({exc}); send it again",
                fields=[{"field": "body", "message": "is not valid multipart/form-data"}],
            ) from None
        raise
    return stored
