"""Configuration: one typed model (pydantic-settings) for every ``SESSIONS_*`` key.

Values come from ``app.config`` (which wins) and from ``SESSIONS_*`` environment
variables. Each field's description is its documentation: ``--help`` and the README's
table print them. A mistake is a :class:`ConfigError` naming the key, the value and the
rule; an unknown ``SESSIONS_*`` key is a mistake too, with the nearest real key suggested.

Lists and mappings come as JSON (``SESSIONS_TOKENS='["a", "b"]'``). Two keys also take a
plain string as a one-item value: ``SESSIONS_TOKENS=tok1`` (one token) and
``SESSIONS_BROWSER_ARGS=--window-size=800,600`` (one flag, commas and all).
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from flask_sessions.host import egress

PREFIX = "SESSIONS_"

TokenVerifier = Callable[[str], Any]
"""``verify(token) -> principal | None``: a host-supplied token check (e.g. OAuth)."""

# Keys in app.config that share the prefix but are not settings (written by create_app).
NOT_SETTINGS = frozenset(
    {
        "SESSIONS_GENERATED_TOKEN",
        "SESSIONS_MCP_TOKEN",  # the MCP server's token for the API it drives (issue 21)
    }
)
# Values never echoed in full in an error message.
SECRET_KEYS = frozenset({"SESSIONS_TOKENS", "SESSIONS_CLUSTER_SECRET", "SESSIONS_PROFILE_KEY"})


class ConfigError(ValueError):
    """One or more ``SESSIONS_*`` keys are wrong; ``problems`` has one line per key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def _json(value: Any) -> Any:
    """Decode a string that starts like JSON (``[`` or ``{``); anything else as it is."""
    if not isinstance(value, str) or not value.strip().startswith(("[", "{")):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"is not valid JSON ({exc.msg} at character {exc.pos}); "
            'write lists as JSON, e.g. ["a", "b"]'
        ) from None


def _flags(value: Any) -> Any:
    """Chromium flags: a JSON list, or one flag as a plain string (commas and all)."""
    value = _json(value)
    if isinstance(value, str):
        return [value] if value.strip() else []
    return value


def _tokens(value: Any) -> dict[str, str]:
    """Static tokens as ``{token: principal}``.

    ``tok1,tok2`` (a token never contains a comma) and a JSON list give each token its own
    principal (``token-1``, ``token-2``, … in order), so sessions of one token are invisible
    to the others; a JSON mapping names the principals itself.
    """
    value = _json(value)
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
        if not all(value):
            raise ValueError(
                "has an empty token between commas; write tok1,tok2 with no empty entries"
            )
    if isinstance(value, Mapping):
        tokens = {str(k): str(v) for k, v in value.items()}
    elif isinstance(value, (list, tuple)):
        listed = [str(t) for t in value]
        if len(set(listed)) != len(listed):
            raise ValueError("lists the same token twice; each token must be listed once")
        tokens = {t: f"token-{i}" for i, t in enumerate(listed, start=1)}
    else:
        raise ValueError(
            "must be a token, comma-separated tokens (tok1,tok2), a JSON list of tokens or "
            'a JSON {"token": "principal"}'
        )
    for token, principal in tokens.items():
        if not token.strip() or not principal.strip():
            raise ValueError("tokens and principals must not be empty")
    return tokens


def _prefix(value: Any) -> str:
    prefix = str(value or "").strip().rstrip("/")
    if prefix and not prefix.startswith("/"):
        prefix = "/" + prefix
    if any(c in prefix for c in "<>?#% "):
        raise ValueError("must be a plain path such as /browser")
    return prefix


def _path(value: Any) -> str:
    """A probe path: empty turns the probe off, otherwise ``/name``."""
    path = _prefix(value)
    if value and not path:
        raise ValueError("must be a path such as /healthz, or empty to turn it off")
    return path


def _urls(value: Any) -> Any:
    """Host URLs: a JSON list, or comma-separated (a URL has no comma)."""
    value = _json(value)
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)):
        out = []
        for url in value:
            text = str(url).strip().rstrip("/")
            if not text.startswith(("http://", "https://")) or text[-3:] == "://":
                raise ValueError(f"{text!r} is not an http(s):// URL such as http://browser-1:8765")
            out.append(text)
        return out
    return value


def _redis_url(value: Any) -> Any:
    if (
        isinstance(value, str)
        and value
        and not value.startswith(("redis://", "rediss://", "unix://"))
    ):
        raise ValueError("must be a redis://host:port/db URL (or rediss://, unix://)")
    return value or None


def _ws_url(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip().rstrip("/")
        if value and not value.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://, e.g. wss://example.org/cdp")
    return value or None


def _networks(key: str) -> Callable[[Any], Any]:
    """CIDR networks: a JSON list, or comma-separated (a CIDR has no comma)."""
    return lambda value: egress.parse_networks(key, _json(value))


def _egress_hosts(value: Any) -> Any:
    return egress.parse_hosts(egress.HOSTS_KEY, _json(value))


# profiles (issue 18): where they are kept, and the keys they are encrypted with
def _store_uri(value: Any) -> Any:
    if isinstance(value, str) and value.strip():
        value = value.strip()
        if not value.startswith(("file://", "redis://", "rediss://", "unix://")):
            raise ValueError(
                "must be file:///absolute/path or redis://host:port/db (rediss://, unix:// too)"
            )
        if value.startswith("file://") and not value.removeprefix("file://").startswith("/"):
            raise ValueError("a file:// store needs an absolute path: file:///var/lib/profiles")
        return value
    return None


def _keys(value: Any) -> Any:
    """Profile keys, newest first: a JSON list, or comma-separated (a key has no comma)."""
    value = _json(value)
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(k, str) for k in value):
        raise ValueError('must be a key, or a JSON list of keys newest first: ["new", "old"]')
    for key in value:
        if len(key) < 16:
            raise ValueError(
                "each key must be at least 16 characters; make one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
    return tuple(value)


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


Tokens = Annotated[dict[str, str], NoDecode, BeforeValidator(_tokens)]
Args = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_flags)]
Prefix = Annotated[str, BeforeValidator(_prefix)]
Urls = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_urls)]
RedisUrl = Annotated[str | None, BeforeValidator(_redis_url)]
WsUrl = Annotated[str | None, BeforeValidator(_ws_url)]
Blocked = Annotated[
    tuple[egress.Network, ...], NoDecode, BeforeValidator(_networks(egress.BLOCKED_KEY))
]
Allowed = Annotated[
    tuple[egress.Network, ...], NoDecode, BeforeValidator(_networks(egress.ALLOWED_KEY))
]
EgressHosts = Annotated[
    dict[str, tuple[egress.Address, ...]], NoDecode, BeforeValidator(_egress_hosts)
]
ProbePath = Annotated[str, BeforeValidator(_path)]
StoreUri = Annotated[str | None, BeforeValidator(_store_uri)]
ProfileKeys = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_keys)]
LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)
]


class Settings(BaseSettings):
    """The checked, typed form of one app's ``SESSIONS_*`` keys (see :func:`load`)."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        case_sensitive=False,
        extra="forbid",
        frozen=True,
        arbitrary_types_allowed=True,
    )

    # --- who may call
    tokens: Tokens = Field(
        default_factory=dict,
        description="static bearer tokens: tok1,tok2 (each its own principal), a JSON list, "
        'or JSON {"token": "principal"}',
    )
    verify_token: TokenVerifier | None = Field(
        default=None,
        description="callable(token) -> principal | None, tried after the static tokens "
        "(app.config only; or the @sessions.verify_token decorator)",
    )
    url_prefix: Prefix = Field(default="", description="mount the routes under this path")
    csrf_exempt: bool = Field(
        default=True,
        description="exempt the routes from Flask-WTF's CSRFProtect (they use bearer "
        "tokens, not cookies)",
    )
    # --- the browser
    browser_path: str | None = Field(
        default=None, description="Chromium executable (default: found automatically)"
    )
    browser_args: Args = Field(
        default=(), description='extra Chromium flags: one flag, or a JSON list ["--a", "--b"]'
    )
    launch_at_init: bool = Field(
        default=False,
        description="launch Chromium in init_app, not at the first session (the standalone "
        "server always launches at start)",
    )
    viewport_width: int = Field(default=1280, gt=0, description="page width in CSS pixels")
    viewport_height: int = Field(default=720, gt=0, description="page height in CSS pixels")
    # --- sessions
    default_timeout_minutes: int = Field(
        default=5, gt=0, description="idle timeout of a session that asks for none"
    )
    max_timeout_minutes: int = Field(
        default=29, gt=0, lt=30, description="highest idle timeout a client may ask for (< 30)"
    )
    max_lifetime_minutes: float = Field(
        default=60, gt=0, description="hard cap on a session's life, keep_alive or not"
    )
    max_sessions: int = Field(default=50, gt=0, description="most sessions open at once")
    max_sessions_per_principal: int | None = Field(
        default=None,
        gt=0,
        description="most sessions one principal may have open at once (default: no cap)",
    )
    reaper_interval_seconds: float = Field(
        default=1.0, gt=0, description="how often idle sessions are looked for"
    )
    retention_minutes: float = Field(
        default=10, ge=0, description="how long ended sessions stay readable"
    )
    warm_pool: int = Field(
        default=2, ge=0, description="contexts kept ready so a start is a hand-over (0: off)"
    )
    pool_min_free_mb: float = Field(
        default=512, ge=0, description="below this much free memory the warm pool empties"
    )
    # --- time limits
    operation_timeout_seconds: float = Field(
        default=30.0, gt=0, description="how long a request waits for the browser (then 504)"
    )
    navigation_timeout_ms: int = Field(default=15000, gt=0, description="page load time limit")
    action_timeout_ms: int = Field(
        default=5000, gt=0, description="how long a click or fill waits for its element"
    )
    max_wait_ms: int = Field(default=10000, gt=0, description="longest `wait` step allowed")
    settle_ms: int = Field(
        default=1000,
        ge=0,
        le=60000,
        description="after a step, longest wait for the page to be quiet (network idle "
        "300 ms, or no DOM change and no request running); 0: only wait for the load",
    )
    page_probe_ms: int = Field(
        default=2000,
        ge=100,
        le=60000,
        description="a page whose main thread does not answer a probe within this is "
        '"not responding": calls answer at once, goto/reload replace the page',
    )
    # --- observations
    observe_max_text: int = Field(
        default=20000, gt=0, description="characters of visible text in an observation"
    )
    observe_max_actions: int = Field(
        default=300, gt=0, description="interactive elements listed in an observation"
    )
    # --- requests
    max_content_length: int = Field(
        default=1024 * 1024,
        gt=0,
        description="largest request body in bytes (larger: 413 before it is read)",
    )
    max_json_depth: int = Field(
        default=32, gt=0, le=500, description="deepest JSON nesting a body may have"
    )
    # --- what a page may use (limits.py)
    max_pages_per_session: int = Field(
        default=5,
        gt=0,
        description="pages a session may have open (its own + popups); extra "
        "ones are closed at once and reported",
    )
    max_download_mb: float | None = Field(
        default=None,
        ge=0,
        description="deprecated (use SESSIONS_MAX_SESSION_FILES_MB): a further cap on a "
        "session's downloads alone, in MB; 0 refuses downloads (unset: none)",
    )
    max_screenshot_pixels: int = Field(
        default=1280 * 16384, gt=0, description="pixels of a full-page screenshot; past it, clipped"
    )
    max_page_memory_mb: float = Field(
        default=1024,
        ge=0,
        description="memory one renderer of a session may use; past it the session ends as "
        "error (0: no limit)",
    )
    min_free_memory_mb: float = Field(
        default=256,
        ge=0,
        description="below this much available memory new sessions answer 503 (0: off)",
    )
    watchdog_interval_seconds: float = Field(
        default=0.5, gt=0, description="how often the memory watchdog reads the renderers"
    )
    # --- session files: uploads, downloads, PDFs (host/files.py, issue 19)
    max_session_files_mb: float = Field(
        default=200,
        ge=0,
        description="MB of files (uploads and downloads) one session may keep; past it an "
        "upload is 413 and a download is cancelled (0: files off, downloads refused)",
    )
    max_upload_mb: float = Field(
        default=50, gt=0, description="largest file one upload may be, in MB (larger: 413)"
    )
    min_free_disk_mb: float = Field(
        default=512,
        ge=0,
        description="below this much free disk where files and traces live, uploads and "
        "record: true answer 507, new downloads are cancelled and running recordings are "
        "truncated (0: off)",
    )
    files_dir: str | None = Field(
        default=None,
        description="where session folders live (default <tempdir>/flask-sessions-files-<uid>); "
        "a host sweeps what a killed predecessor left there when it starts",
    )
    # --- network egress of pages (egress.py)
    blocked_networks: Blocked = Field(
        default=(),
        description="CIDR networks pages may not reach (JSON list or comma-separated); "
        "link-local (169.254.0.0/16, fe80::/10: cloud metadata) is blocked whatever this says",
    )
    allowed_networks: Allowed = Field(
        default=(),
        description="CIDR networks pages may always reach: allowed wins over every block",
    )
    block_private_networks: bool = Field(
        default=False,
        description="also block loopback, RFC 1918, CGNAT, IPv6 ULA and link-local (turn it on "
        "for a shared server)",
    )
    egress_hosts: EgressHosts = Field(
        default_factory=dict,
        description='fixed {"name": "address"} the egress proxy uses instead of DNS (checked '
        "like any address)",
    )
    # --- CDP: a per-session Chrome DevTools Protocol WebSocket (cdp.py)
    cdp: bool = Field(
        default=True,
        description="serve a CDP WebSocket per session (cdp_url); false: no debugging port at all",
    )
    cdp_host: str | None = Field(
        default=None,
        description="address of the CDP WebSocket server (default 127.0.0.1; the CLI uses --host)",
    )
    cdp_port: int = Field(
        default=0, ge=0, le=65535, description="port of the CDP WebSocket server (0: any free one)"
    )
    cdp_public_url: WsUrl = Field(
        default=None,
        description="base of cdp_url behind a reverse proxy, e.g. wss://example.org/cdp "
        "(default ws(s)://<the request's host>:<port>)",
    )
    max_cdp_clients_per_session: int = Field(
        default=2, gt=0, description="CDP clients attached to one session at once"
    )
    cdp_max_message_mb: float = Field(
        default=64, gt=0, description="largest CDP message either way, in MB"
    )
    cdp_max_buffer_mb: float = Field(
        default=64, gt=0, description="unread CDP messages queued for a client before it is dropped"
    )
    cdp_ticket_ttl_seconds: float = Field(
        default=60, gt=0, description="lifetime of a single-use ?ticket= for the CDP WebSocket"
    )
    # --- live view and recordings (issue 20: host/viewer.py, host/recording.py)
    live_max_fps: int = Field(
        default=15, gt=0, le=60, description="frames per second a live view sends at most"
    )
    # live view's cost to other sessions (issue 20): frames yield to their calls
    live_busy_fps: float = Field(
        default=1,
        gt=0,
        le=60,
        description="frames per second a live view sends at most while another session of "
        "the host is in a call (its viewer's input lifts it for 2 s; SESSIONS_LIVE_MAX_FPS "
        "or more: no limit)",
    )
    viewer_ttl_seconds: int = Field(
        default=900,
        gt=0,
        le=86400,
        description="lifetime of a viewer_url that asks for none (its ticket works once; the "
        "view ends when it runs out)",
    )
    recording_dir: str | None = Field(
        default=None,
        description="folder of the recordings (default <temp>/flask_sessions-recordings)",
    )
    recording_retention_minutes: float = Field(
        default=60,
        ge=0,
        description="how long a recording is kept after its session ends (its record may be "
        "purged sooner)",
    )
    max_recording_mb: float = Field(
        default=100,
        gt=0,
        description="MB of trace one session may record; past it tracing stops (recording: "
        '"truncated") and the session goes on',
    )
    # recordings (issue 20): the screencast filmstrip, on as the issue asks; false is cheaper
    recording_screenshots: bool = Field(
        default=True,
        description="traces hold Playwright's screencast filmstrip (JPEG frames while the "
        "page paints) beside the DOM snapshots; false leaves it out, and recorded steps are "
        "cheaper (every trace has a DOM snapshot after each call either way)",
    )
    # --- cluster (fronts and hosts)
    hosts: Urls = Field(
        default=(),
        description="fronts: the hosts to use, e.g. http://browser-1:8765,http://browser-2:8765 "
        "(no Redis needed)",
    )
    registry_url: RedisUrl = Field(
        default=None,
        description="fronts and hosts: a Redis URL; hosts register there and fronts find them",
    )
    cluster_secret: str | None = Field(
        default=None,
        min_length=16,
        description="shared by fronts and hosts; a host refuses any call without it",
    )
    host_url: str | None = Field(
        default=None,
        description="hosts: the URL fronts reach this host at (default http://HOST:PORT)",
    )
    heartbeat_seconds: float = Field(
        default=2.0,
        gt=0,
        description="hosts renew their registration this often; one silent for two is gone",
    )
    # --- profiles: stored cookies and storage (issue 18, profiles.py)
    profile_store: StoreUri = Field(
        default=None,
        description="where profiles are kept: file:///path or redis://host:port/db (default: "
        "the Redis of SESSIONS_REGISTRY_URL if set, else flask_sessions/profiles in the user "
        "data directory)",
    )
    profile_key: ProfileKeys = Field(
        default=(),
        description="key that encrypts profiles (16+ characters), or a JSON list newest first "
        "to rotate (decrypt with any, encrypt with the first); default: one generated beside "
        "a file store; hosts and Redis stores need one",
    )
    max_state_mb: float = Field(
        default=1,
        gt=0,
        description="largest storage_state a start may send, in MB (then 413; its body must "
        "fit SESSIONS_MAX_CONTENT_LENGTH too)",
    )
    max_profile_mb: float = Field(
        default=5,
        gt=0,
        description="largest state a profile keeps, in MB; a larger one is not saved (the "
        "session says so) and the last good one stays",
    )
    max_profiles_per_principal: int = Field(
        default=100, gt=0, description="profiles one principal may keep"
    )
    # --- operations
    log_level: LogLevel = Field(
        default="INFO", description="DEBUG, INFO, WARNING or ERROR for the flask_sessions logs"
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="text, or json (one object a line, for log shippers)"
    )
    access_log: bool = Field(default=True, description="one log line per request")
    health_path: ProbePath = Field(
        default="/healthz", description="liveness probe path (empty: off)"
    )
    ready_path: ProbePath = Field(
        default="/readyz", description="readiness probe path (empty: off)"
    )
    metrics_path: ProbePath = Field(
        default="/metrics", description="Prometheus metrics path (empty: off)"
    )
    probes_require_auth: bool = Field(
        default=False, description="the probes and metrics need a bearer token too"
    )
    ui: bool = Field(default=True, description="the live sessions page at <prefix>/ui (false: off)")
    # --- Notte-compatible routes (front/notte.py, issue 21)
    notte_api: bool = Field(
        default=True,
        description="serve Notte's API (its Python SDK, unchanged) under SESSIONS_NOTTE_PREFIX",
    )
    notte_prefix: Prefix = Field(
        default="/notte",
        description="where the Notte routes live, below the URL prefix (the SDK's server_url)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.default_timeout_minutes > self.max_timeout_minutes:
            raise ValueError(
                f"SESSIONS_DEFAULT_TIMEOUT_MINUTES={self.default_timeout_minutes} is above "
                f"SESSIONS_MAX_TIMEOUT_MINUTES={self.max_timeout_minutes}; lower the default "
                "or raise the cap"
            )
        if self.operation_timeout_seconds * 1000 <= self.navigation_timeout_ms:
            raise ValueError(
                f"SESSIONS_OPERATION_TIMEOUT_SECONDS={self.operation_timeout_seconds:g} must be "
                f"longer than SESSIONS_NAVIGATION_TIMEOUT_MS={self.navigation_timeout_ms} "
                "(in seconds), or slow pages answer 504 instead of an error"
            )
        if (self.hosts or self.registry_url) and not self.cluster_secret:
            raise ValueError(
                "SESSIONS_HOSTS or SESSIONS_REGISTRY_URL needs SESSIONS_CLUSTER_SECRET (at least "
                "16 characters, the same in fronts and hosts)"
            )
        if not self.egress_policy().blocks_nothing:
            egress.check_browser_args(self.browser_args)
        if self.hosts and self.registry_url:
            raise ValueError(
                "set SESSIONS_HOSTS (a fixed list) or SESSIONS_REGISTRY_URL (Redis), not both"
            )
        if (
            self.profile_store
            and not self.profile_store.startswith("file://")
            and not self.profile_key
        ):
            raise ValueError(
                "SESSIONS_PROFILE_STORE on Redis needs SESSIONS_PROFILE_KEY (a key cannot be "
                "kept beside a Redis store; make one with python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')"
            )
        if self.notte_api:  # Notte's routes need a root of their own (issue 21)
            _check_notte_prefix(self.notte_prefix)
        paths = [p for p in (self.health_path, self.ready_path, self.metrics_path) if p]
        if len(paths) != len(set(paths)):
            raise ValueError(
                "SESSIONS_HEALTH_PATH, SESSIONS_READY_PATH and SESSIONS_METRICS_PATH must differ"
            )
        return self

    def egress_policy(self) -> egress.EgressPolicy:
        """The egress policy these settings describe."""
        return egress.EgressPolicy(
            self.blocked_networks, self.allowed_networks, self.block_private_networks
        )

    @classmethod
    def env_keys(cls) -> list[str]:
        """Every accepted key, e.g. ``SESSIONS_MAX_SESSIONS``."""
        return [PREFIX + name.upper() for name in cls.model_fields]


# The first path parts of our own routes: Notte's prefix may be none of them (issue 21).
OWN_ROOTS = frozenset({"session", "sessions", "env", "ui", "openapi.json"})


def _check_notte_prefix(prefix: str) -> None:
    first = prefix.strip("/").split("/")[0]
    if not first:
        raise ValueError(
            "SESSIONS_NOTTE_PREFIX must be a path such as /notte (or set SESSIONS_NOTTE_API=false)"
        )
    if first in OWN_ROOTS:
        raise ValueError(
            f"SESSIONS_NOTTE_PREFIX={prefix} starts like this server's own routes (/{first}); "
            "choose another, such as /notte"
        )


def key_of(field: str) -> str:
    return PREFIX + field.upper()


def load(config: Mapping[str, Any] | None = None, *, environ: bool = True) -> Settings:
    """The settings of ``config`` (e.g. ``app.config``) over the ``SESSIONS_*`` environment.

    Raises :class:`ConfigError` listing every wrong key at once.
    """
    config = config or {}
    given = {k: v for k, v in config.items() if k.upper().startswith(PREFIX)}
    env = {k: v for k, v in os.environ.items() if k.upper().startswith(PREFIX)} if environ else {}
    problems = [_unknown(key, "app.config") for key in given if key.upper() not in _KNOWN] + [
        _unknown(key, "the environment") for key in env if key.upper() not in _KNOWN
    ]
    if problems:
        raise ConfigError(problems)
    init = {
        k[len(PREFIX) :].lower(): v
        for k, v in given.items()
        if k.upper() not in NOT_SETTINGS and v is not None
    }
    try:
        if environ:
            return Settings(**init)
        return _NoEnvSettings(**init)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, init, env)) from None
    except SettingsError as exc:  # a value the environment source itself could not decode
        raise ConfigError([str(exc)]) from None


class _NoEnvSettings(Settings):
    """Settings from ``app.config`` alone (``load(environ=False)``)."""

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: Any, init_settings: Any, *_: Any, **__: Any
    ) -> Any:
        # pydantic-settings passes the other sources by keyword (2.16) or position (older)
        return (init_settings,)


_KNOWN = frozenset(Settings.env_keys()) | NOT_SETTINGS


def _unknown(key: str, where: str) -> str:
    close = difflib.get_close_matches(key.upper(), sorted(_KNOWN - NOT_SETTINGS), n=1)
    hint = f"; did you mean {close[0]}?" if close else "; see the README's Configuration table"
    return f"{key} (in {where}) is not a flask_sessions setting{hint}"


def _show(key: str, value: Any) -> str:
    """The value as written: strings quoted, others as JSON; secrets cut to 3 characters."""
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    if key in SECRET_KEYS and len(text) > 3:
        text = text[:3] + "…"
    elif len(text) > 80:
        text = text[:80] + "…"
    return repr(text) if isinstance(value, str) else text


def _explain(exc: ValidationError, init: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    env_upper = {k.upper(): v for k, v in env.items()}
    problems = []
    for err in exc.errors(include_url=False):
        message = str(err["msg"]).removeprefix("Value error, ")
        if not err["loc"]:  # a rule between keys: the message names them
            problems.append(message)
            continue
        field = str(err["loc"][0])
        key = key_of(field)
        if field in init:
            value, where = init[field], "app.config"
        else:
            value, where = env_upper.get(key, err.get("input")), "the environment"
        rule = Settings.model_fields[field].description if field in Settings.model_fields else ""
        problems.append(
            f"{key}={_show(key, value)} (from {where}): {message}" + (f" [{rule}]" if rule else "")
        )
    return problems
