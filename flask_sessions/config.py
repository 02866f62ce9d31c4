"""Configuration: every ``SESSIONS_*`` key, its default, and how it is read and checked.

Host apps set keys in ``app.config`` before ``FlaskSessions(app)``; the standalone server
(``create_app`` / ``python -m flask_sessions``) also reads them from the environment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

PREFIX = "SESSIONS_"

TokenVerifier = Callable[[str], Any]
"""``verify(token) -> principal | None``: a host-supplied token check (e.g. OAuth)."""

DEFAULTS: dict[str, Any] = {
    # Static bearer tokens: "a,b", ["a", "b"], or {"token": "principal"}.
    "SESSIONS_TOKENS": None,
    # A callable(token) -> principal | None, tried after the static tokens.
    "SESSIONS_VERIFY_TOKEN": None,
    "SESSIONS_URL_PREFIX": "",
    # Chromium executable; None: Playwright's own install, then the system's.
    "SESSIONS_BROWSER_PATH": None,
    # Extra command-line flags for Chromium (list or comma-separated string).
    "SESSIONS_BROWSER_ARGS": [],
    # Launch Chromium when the extension starts instead of on the first session.
    "SESSIONS_LAUNCH_AT_INIT": False,
    "SESSIONS_DEFAULT_TIMEOUT_MINUTES": 5,
    # Highest idle timeout a client may ask for (the API also requires < 30).
    "SESSIONS_MAX_TIMEOUT_MINUTES": 29,
    # Hard cap on a session's total life, keep_alive or not.
    "SESSIONS_MAX_LIFETIME_MINUTES": 60,
    "SESSIONS_MAX_SESSIONS": 50,
    "SESSIONS_REAPER_INTERVAL_SECONDS": 1.0,
    # How long ended sessions stay readable before their records are purged.
    "SESSIONS_RETENTION_MINUTES": 10,
    # How long a request waits for the browser runtime before answering 504.
    "SESSIONS_OPERATION_TIMEOUT_SECONDS": 30.0,
    "SESSIONS_VIEWPORT_WIDTH": 1280,
    "SESSIONS_VIEWPORT_HEIGHT": 720,
    # Page loads (observe url, goto, start url) give up after this long.
    "SESSIONS_NAVIGATION_TIMEOUT_MS": 15000,
    # An interaction (click, fill, ...) waits this long for its element.
    "SESSIONS_ACTION_TIMEOUT_MS": 5000,
    # Observation bounds: characters of visible text, number of listed actions.
    "SESSIONS_OBSERVE_MAX_TEXT": 20000,
    "SESSIONS_OBSERVE_MAX_ACTIONS": 300,
    # Longest `wait` step a client may ask for.
    "SESSIONS_MAX_WAIT_MS": 10000,
    # Contexts+pages kept ready so a start is a hand-over (0: off).
    "SESSIONS_WARM_POOL": 2,
    # Below this much available memory the warm pool empties and stops refilling.
    "SESSIONS_POOL_MIN_FREE_MB": 512,
    # --- Bounds on what a page may use (issue 8) --------------------------------------
    # Pages (the session's own + popups/new tabs) open at once; extra ones are closed.
    "SESSIONS_MAX_PAGES_PER_SESSION": 5,
    # Bytes of downloads a session may keep on disk, in MB; 0: downloads are refused.
    "SESSIONS_MAX_DOWNLOAD_MB": 0,
    # Pixels of a full-page screenshot (width x height); a taller page is clipped.
    "SESSIONS_MAX_SCREENSHOT_PIXELS": 1280 * 16384,
    # Resident memory of one of a session's renderer processes, in MB (0: no limit).
    "SESSIONS_MAX_PAGE_MEMORY_MB": 1024,
    # Below this much available memory on the host, new sessions answer 503 (0: off).
    "SESSIONS_MIN_FREE_MEMORY_MB": 256,
    # How often the watchdog reads the renderers' memory.
    "SESSIONS_WATCHDOG_INTERVAL_SECONDS": 0.5,
    # --- end of issue 8 bounds --------------------------------------------------------
}


@dataclass(frozen=True)
class Settings:
    """The checked, typed form of the ``SESSIONS_*`` keys of one app."""

    tokens: dict[str, str] = field(default_factory=dict)
    verify_token: TokenVerifier | None = None
    url_prefix: str = ""
    browser_path: str | None = None
    browser_args: tuple[str, ...] = ()
    launch_at_init: bool = False
    default_timeout_minutes: int = 5
    max_timeout_minutes: int = 29
    max_lifetime_minutes: float = 60
    max_sessions: int = 50
    reaper_interval_seconds: float = 1.0
    retention_minutes: float = 10
    operation_timeout_seconds: float = 30.0
    viewport_width: int = 1280
    viewport_height: int = 720
    navigation_timeout_ms: int = 15000
    action_timeout_ms: int = 5000
    observe_max_text: int = 20000
    observe_max_actions: int = 300
    max_wait_ms: int = 10000
    warm_pool: int = 2
    pool_min_free_mb: float = 512
    # --- issue 8 bounds (see DEFAULTS) ---
    max_pages_per_session: int = 5
    max_download_mb: float = 0
    max_screenshot_pixels: int = 1280 * 16384
    max_page_memory_mb: float = 1024
    min_free_memory_mb: float = 256
    watchdog_interval_seconds: float = 0.5

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> Settings:
        """Read and check the ``SESSIONS_*`` keys; a bad value raises ``ValueError``."""

        def get(key: str) -> Any:
            return config.get(PREFIX + key, DEFAULTS[PREFIX + key])

        verify = get("VERIFY_TOKEN")
        if verify is not None and not callable(verify):
            raise ValueError("SESSIONS_VERIFY_TOKEN must be a callable(token) -> principal | None")
        settings = cls(
            tokens=parse_tokens(get("TOKENS")),
            verify_token=verify,
            url_prefix=_prefix(get("URL_PREFIX")),
            browser_path=get("BROWSER_PATH") or None,
            browser_args=tuple(_str_list(get("BROWSER_ARGS"))),
            launch_at_init=_bool(get("LAUNCH_AT_INIT")),
            default_timeout_minutes=int(get("DEFAULT_TIMEOUT_MINUTES")),
            max_timeout_minutes=int(get("MAX_TIMEOUT_MINUTES")),
            max_lifetime_minutes=float(get("MAX_LIFETIME_MINUTES")),
            max_sessions=int(get("MAX_SESSIONS")),
            reaper_interval_seconds=float(get("REAPER_INTERVAL_SECONDS")),
            retention_minutes=float(get("RETENTION_MINUTES")),
            operation_timeout_seconds=float(get("OPERATION_TIMEOUT_SECONDS")),
            viewport_width=int(get("VIEWPORT_WIDTH")),
            viewport_height=int(get("VIEWPORT_HEIGHT")),
            navigation_timeout_ms=int(get("NAVIGATION_TIMEOUT_MS")),
            action_timeout_ms=int(get("ACTION_TIMEOUT_MS")),
            observe_max_text=int(get("OBSERVE_MAX_TEXT")),
            observe_max_actions=int(get("OBSERVE_MAX_ACTIONS")),
            max_wait_ms=int(get("MAX_WAIT_MS")),
            warm_pool=int(get("WARM_POOL")),
            pool_min_free_mb=float(get("POOL_MIN_FREE_MB")),
            # --- issue 8 bounds ---
            max_pages_per_session=int(get("MAX_PAGES_PER_SESSION")),
            max_download_mb=float(get("MAX_DOWNLOAD_MB")),
            max_screenshot_pixels=int(get("MAX_SCREENSHOT_PIXELS")),
            max_page_memory_mb=float(get("MAX_PAGE_MEMORY_MB")),
            min_free_memory_mb=float(get("MIN_FREE_MEMORY_MB")),
            watchdog_interval_seconds=float(get("WATCHDOG_INTERVAL_SECONDS")),
        )
        settings.check()
        return settings

    def check(self) -> None:
        if not 0 < self.max_timeout_minutes < 30:
            raise ValueError("SESSIONS_MAX_TIMEOUT_MINUTES must be between 1 and 29")
        if not 0 < self.default_timeout_minutes <= self.max_timeout_minutes:
            raise ValueError(
                "SESSIONS_DEFAULT_TIMEOUT_MINUTES must be between 1 and "
                f"SESSIONS_MAX_TIMEOUT_MINUTES ({self.max_timeout_minutes})"
            )
        positive = {
            "SESSIONS_MAX_LIFETIME_MINUTES": self.max_lifetime_minutes,
            "SESSIONS_MAX_SESSIONS": self.max_sessions,
            "SESSIONS_REAPER_INTERVAL_SECONDS": self.reaper_interval_seconds,
            "SESSIONS_OPERATION_TIMEOUT_SECONDS": self.operation_timeout_seconds,
            "SESSIONS_VIEWPORT_WIDTH": self.viewport_width,
            "SESSIONS_VIEWPORT_HEIGHT": self.viewport_height,
            "SESSIONS_NAVIGATION_TIMEOUT_MS": self.navigation_timeout_ms,
            "SESSIONS_ACTION_TIMEOUT_MS": self.action_timeout_ms,
            "SESSIONS_OBSERVE_MAX_TEXT": self.observe_max_text,
            "SESSIONS_OBSERVE_MAX_ACTIONS": self.observe_max_actions,
            "SESSIONS_MAX_WAIT_MS": self.max_wait_ms,
        }
        for key, value in positive.items():
            if value <= 0:
                raise ValueError(f"{key} must be greater than 0 (got {value})")
        if self.operation_timeout_seconds * 1000 <= self.navigation_timeout_ms:
            raise ValueError(
                "SESSIONS_OPERATION_TIMEOUT_SECONDS must be longer than "
                "SESSIONS_NAVIGATION_TIMEOUT_MS, or slow pages answer 504 instead of an error"
            )
        if self.warm_pool < 0 or self.pool_min_free_mb < 0:
            raise ValueError("SESSIONS_WARM_POOL and SESSIONS_POOL_MIN_FREE_MB must be 0 or more")
        if self.retention_minutes < 0:
            raise ValueError("SESSIONS_RETENTION_MINUTES must be 0 or more")
        # --- issue 8 bounds ---
        bounds_positive = {
            "SESSIONS_MAX_PAGES_PER_SESSION": self.max_pages_per_session,
            "SESSIONS_MAX_SCREENSHOT_PIXELS": self.max_screenshot_pixels,
            "SESSIONS_WATCHDOG_INTERVAL_SECONDS": self.watchdog_interval_seconds,
        }
        for key, value in bounds_positive.items():
            if value <= 0:
                raise ValueError(f"{key} must be greater than 0 (got {value})")
        bounds_zero_or_more = {
            "SESSIONS_MAX_DOWNLOAD_MB": self.max_download_mb,
            "SESSIONS_MAX_PAGE_MEMORY_MB": self.max_page_memory_mb,
            "SESSIONS_MIN_FREE_MEMORY_MB": self.min_free_memory_mb,
        }
        for key, value in bounds_zero_or_more.items():
            if value < 0:
                raise ValueError(f"{key} must be 0 or more (got {value}; 0 turns it off)")


def parse_tokens(value: Any) -> dict[str, str]:
    """Static tokens as ``{token: principal}``.

    A dict is taken as it is; a list or comma-separated string gives each token its own
    principal (``token-1``, ``token-2``, … in the order given), so sessions started with
    one token are invisible to the holders of the others.
    """
    if value is None or value == "":
        return {}
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items() if str(k)}
    tokens = _str_list(value)
    return {token: f"token-{i}" for i, token in enumerate(tokens, start=1)}


def from_environ(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``SESSIONS_*`` variables of the environment, JSON-decoded where they are JSON."""
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for key, raw in env.items():
        if key not in DEFAULTS or key == PREFIX + "VERIFY_TOKEN":
            continue
        # Strings stay strings ("123" is a token, not a number) unless they are JSON
        # lists or objects; numbers and booleans are JSON-decoded.
        if key in _STRING_KEYS and not raw.lstrip().startswith(("[", "{")):
            out[key] = raw
            continue
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


_STRING_KEYS = {PREFIX + k for k in ("TOKENS", "URL_PREFIX", "BROWSER_PATH", "BROWSER_ARGS")}


def _str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)):
        return [str(part) for part in value if str(part)]
    raise ValueError(f"expected a list or a comma-separated string, got {value!r}")


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _prefix(value: Any) -> str:
    prefix = str(value or "").rstrip("/")
    if prefix and not prefix.startswith("/"):
        prefix = "/" + prefix
    return prefix
