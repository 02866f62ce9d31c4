"""flask_sessions: live headless Chromium sessions over HTTP, as a Flask blueprint.

Mount it in three lines::

    from flask_sessions import FlaskSessions
    app.config["SESSIONS_TOKENS"] = "s3cret"
    FlaskSessions(app)
"""

__version__ = "0.1.0"  # first: modules below import it

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
