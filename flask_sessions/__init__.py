"""flask_sessions: live headless Chromium sessions over HTTP, as a Flask blueprint.

Mount it in three lines::

    from flask_sessions import FlaskSessions
    app.config["SESSIONS_TOKENS"] = "s3cret"
    FlaskSessions(app)
"""

__version__ = "0.1.0"  # first: modules below import it

from importlib import import_module
from typing import TYPE_CHECKING, Any

# What the package exports, loaded on first use (PEP 562): `import flask_sessions.client`
# (and so `flask-sessions mcp`) then loads no Flask app, host or browser code.
_EXPORTS = {
    "create_app": "flask_sessions.app",
    "Clock": "flask_sessions.clock",
    "ManualClock": "flask_sessions.clock",
    "system_clock": "flask_sessions.clock",
    "BrowserUnavailable": "flask_sessions.errors",
    "CapacityReached": "flask_sessions.errors",
    "InvalidInput": "flask_sessions.errors",
    "OperationTimeout": "flask_sessions.errors",
    "SessionNotActive": "flask_sessions.errors",
    "SessionNotFound": "flask_sessions.errors",
    "SessionsError": "flask_sessions.errors",
    "Unauthorized": "flask_sessions.errors",
    "FlaskSessions": "flask_sessions.extension",
    "SessionsState": "flask_sessions.extension",
    "SessionManager": "flask_sessions.host.manager",
    "SessionRecord": "flask_sessions.host.manager",
    "SessionResponse": "flask_sessions.schemas",
    "StartRequest": "flask_sessions.schemas",
    "Status": "flask_sessions.schemas",
}

if TYPE_CHECKING:
    from flask_sessions.app import create_app
    from flask_sessions.clock import Clock, ManualClock, system_clock
    from flask_sessions.errors import (
        BrowserUnavailable,
        CapacityReached,
        InvalidInput,
        OperationTimeout,
        SessionNotActive,
        SessionNotFound,
        SessionsError,
        Unauthorized,
    )
    from flask_sessions.extension import FlaskSessions, SessionsState
    from flask_sessions.host.manager import SessionManager, SessionRecord
    from flask_sessions.schemas import SessionResponse, StartRequest, Status


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flask_sessions' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BrowserUnavailable",
    "CapacityReached",
    "Clock",
    "FlaskSessions",
    "InvalidInput",
    "ManualClock",
    "OperationTimeout",
    "SessionManager",
    "SessionNotActive",
    "SessionNotFound",
    "SessionRecord",
    "SessionResponse",
    "SessionsError",
    "SessionsState",
    "StartRequest",
    "Status",
    "Unauthorized",
    "create_app",
    "system_clock",
]
