"""Logging: the ``flask_sessions`` loggers, their level, and a JSON format for shippers.

Loggers: ``flask_sessions`` (lifecycle: launches, session start/close/time-out/error) and
``flask_sessions.access`` (one line per request: method, path, route, status, ms, session,
principal; never a token). :func:`configure` sets the level, and gives the loggers a
handler only when nobody else configured logging (a host app that did keeps its own).

The JSON formatter is a few lines on the standard library: one object per line with the
record's standard fields and our ``extra`` ones, so no dependency is needed for it.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("flask_sessions")
access_log = logging.getLogger("flask_sessions.access")

# Fields our log calls pass as ``extra``; the JSON formatter emits them as keys.
EXTRA_FIELDS = (
    "method",
    "path",
    "route",
    "status",
    "ms",
    "session_id",
    "principal",
    "event",
    "reason",
)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_HANDLER_MARK = "_flask_sessions_handler"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message`` and extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def configure(level: str, fmt: str = "text") -> None:
    """Set the level of our loggers; add a stderr handler if logging is unconfigured."""
    log.setLevel(level)
    ours: list[logging.Handler] = [h for h in log.handlers if getattr(h, _HANDLER_MARK, False)]
    if logging.getLogger().handlers and not ours:
        return  # the host (or the CLI) configured logging: its handlers print our lines
    if not ours:
        stream = logging.StreamHandler(sys.stderr)
        setattr(stream, _HANDLER_MARK, True)
        log.addHandler(stream)
        log.propagate = False
        ours = [stream]
    for handler in ours:
        handler.setFormatter(formatter(fmt))


def configure_root(level: str, fmt: str) -> None:
    """The standalone server's logging: everything (waitress too) to stderr."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per forwarded call
    for ours in [h for h in log.handlers if getattr(h, _HANDLER_MARK, False)]:
        log.removeHandler(ours)
    log.propagate = True
    log.setLevel(level)


def access(
    method: str,
    path: str,
    route: str,
    status: int,
    ms: float,
    session_id: str | None = None,
    principal: str | None = None,
) -> None:
    """The access line of one request."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    access_log.info(
        "%s %s %d %.1fms session=%s principal=%s",
        method,
        path,
        status,
        ms,
        session_id or "-",
        principal or "-",
        extra={
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "ms": round(ms, 1),
            "session_id": session_id,
            "principal": principal,
        },
    )


def event(message: str, *args: Any, level: int = logging.INFO, **extra: Any) -> None:
    """A lifecycle line (session started, closed, …) with structured extras."""
    log.log(level, message, *args, extra=extra)
