"""Notte's API on our sessions: the routes Notte's Python SDK (``notte-sdk``) calls, unchanged.

A second route set on the same :class:`~flask_sessions.front.backend.SessionBackend`, under
``SESSIONS_NOTTE_PREFIX`` (default ``/notte``, below the URL prefix); point the SDK's
``server_url`` there::

    from notte_sdk import NotteClient
    client = NotteClient(api_key=TOKEN, server_url="http://127.0.0.1:8000/notte")
    with client.Session() as s:
        s.execute(type="goto", url="http://127.0.0.1:8100/login")
        print(s.observe().space.description)

Nothing here drives a page: every route translates Notte's body into ours, calls the backend,
and writes the answer in Notte's models (``notte_core.types``: ``SessionResponse``,
``Observation``, ``ExecutionResultResponse``, ``DataSpace``, ``SessionDebugResponse``), as the
SDK sends and parses them (read from notte-sdk 1.10.0). Actions come from our DOM observation
(no LLM): ids are ours (``B1``, ``I2``, ``L3``), descriptions are built from each element's
role and accessible name. Start options we can honour are honoured; options that need what
this server has not (captcha solving, Notte's residential proxies, vaults, managed auth, an
LLM) are a 400 naming the option when the caller sets them; harmless ones are ignored, and
the answer's ``warnings`` says so. Errors are JSON ``{"status": <HTTP status>, "message":
…}``, so the SDK raises its own ``NotteAPIError`` with our message in it.

Cookies, profiles and files are ours (issues 18 and 19) in Notte's shapes:
``/sessions/<id>/cookies`` (Notte's ``Cookie``, a Chrome export's spelling too),
``/profiles…`` and ``profile`` on start (our profiles; another principal's is a 404),
``/sessions/<id>/files…`` (``session.storage``: a file's id is its name). Start options Notte
shares with our browser options (issue 18a) become them: the viewport, the user agent, extra
headers, one ``external`` proxy, and the few ``chrome_args`` that are options in disguise.

Not in our OpenAPI document: these routes follow Notte's contract (the SDK's models are their
schema), and the README's compatibility table lists every SDK call. :data:`NOTTE_ROUTES`
is the list; ``tests/test_openapi.py`` checks it against the url_map.
"""

from __future__ import annotations

import base64
import json
import posixpath
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from flask_sessions.errors import (
    InvalidInput,
    PayloadTooLarge,
    ProfileNotFound,
    SessionNotActive,
    SessionNotFound,
)
from flask_sessions.front.files import MB, UPLOAD_OVERHEAD
from flask_sessions.front.files import send as send_file_body
from flask_sessions.front.viewer import _public_base
from flask_sessions.profile_schemas import (
    PROFILE_ID_PATTERN,
    AddCookiesRequest,
    CookieInfo,
    ProfileCreate,
    ProfileInfo,
    StorageState,
    kept_state,
)
from flask_sessions.schemas import (
    SESSION_ID_PATTERN,
    Action,
    FileInfo,
    ObserveRequest,
    ObserveResponse,
    ScrapeRequest,
    ScreenshotQuery,
    SessionResponse,
    StartRequest,
    Status,
    ViewerRequest,
    parse,
    parse_step,
)

if TYPE_CHECKING:
    from flask_sessions.extension import SessionsState

ViewFunc = Callable[..., Response]

ENDPOINT_PREFIX = "notte_"
"""Every Notte view's endpoint starts with it (``flask_sessions.notte_start``…)."""

# (endpoint, method, rule below SESSIONS_NOTTE_PREFIX): what the SDK calls, as it calls it
NOTTE_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("notte_health", "GET", "/health"),
    ("notte_start", "POST", "/sessions/start"),
    ("notte_list", "GET", "/sessions/"),
    ("notte_status", "GET", "/sessions/<session_id>"),
    ("notte_stop", "DELETE", "/sessions/<session_id>/stop"),
    ("notte_debug", "GET", "/sessions/<session_id>/debug"),
    ("notte_auth", "GET", "/sessions/<session_id>/auth"),
    ("notte_observe", "POST", "/sessions/<session_id>/page/observe"),
    ("notte_execute", "POST", "/sessions/<session_id>/page/execute"),
    ("notte_scrape", "POST", "/sessions/<session_id>/page/scrape"),
    ("notte_screenshot", "POST", "/sessions/<session_id>/page/screenshot"),
    # cookies, profiles and files (issues 18, 19): onto our cookies, profiles and files
    ("notte_get_cookies", "GET", "/sessions/<session_id>/cookies"),
    ("notte_set_cookies", "POST", "/sessions/<session_id>/cookies"),
    ("notte_save_profile", "POST", "/sessions/<session_id>/profile/save"),
    ("notte_list_files", "GET", "/sessions/<session_id>/files"),
    ("notte_upload_file", "POST", "/sessions/<session_id>/files"),
    ("notte_download_file", "GET", "/sessions/<session_id>/files/<file_id>"),
    ("notte_delete_file", "DELETE", "/sessions/<session_id>/files/<file_id>"),
    ("notte_create_profile", "POST", "/profiles/create"),
    ("notte_list_profiles", "GET", "/profiles"),
    ("notte_get_profile", "GET", "/profiles/<profile_id>"),
    ("notte_delete_profile", "DELETE", "/profiles/<profile_id>"),
    ("notte_profile_cookies", "GET", "/profiles/<profile_id>/cookies"),
    ("notte_set_profile_cookies", "POST", "/profiles/<profile_id>/cookies"),
    ("notte_set_profile_state", "POST", "/profiles/<profile_id>/state"),
    ("notte_duplicate_profile", "POST", "/profiles/<profile_id>/duplicate"),
)

_SESSION_ID = re.compile(SESSION_ID_PATTERN)
_PROFILE_ID = re.compile(PROFILE_ID_PATTERN)
_UNNAMED = "unnamed"  # the name of a profile Notte's caller created without one
_MAX_PAGE_SIZE = 100

# ---------------------------------------------------------------- request bodies


class _NotteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NotteProfile(_NotteBody):
    """``profile`` of a start: a saved profile to load, and whether to save it at the end."""

    id: str = Field(min_length=1, max_length=200)
    persist: bool = False


class NotteStart(_NotteBody):
    """``POST /sessions/start``: ``notte_core.types.SessionStartRequest`` as the SDK sends it
    (only the fields the caller set; ``timeout_minutes`` is read as ``idle_timeout_minutes``)."""

    solve_captchas: bool = False
    max_duration_minutes: int | None = Field(default=None, gt=0, le=24 * 60)
    idle_timeout_minutes: int | None = Field(default=None, gt=0, le=30)
    proxies: bool | str | list[dict[str, Any]] = False
    browser_type: str = "chromium"
    user_agent: str | None = None
    chrome_args: list[str] | None = None
    viewport_width: int | None = Field(default=None, gt=0)
    viewport_height: int | None = Field(default=None, gt=0)
    aspect_ratio: str | None = None
    cdp_url: str | None = None
    profile: NotteProfile | None = None
    web_bot_auth: bool = False
    extra_http_headers: dict[str, str] | None = None
    vault_id: str | None = None
    auth_ids: list[str] = Field(default_factory=list)
    wait_for_authentication: bool = True
    auth_retry: int = 0
    advanced_stealth: bool = False
    block_ads: bool | None = None
    headless: bool | None = None


class NotteObserve(_NotteBody):
    """``POST /sessions/<id>/page/observe``: ``notte_core.types.ObserveRequest``."""

    min_nb_actions: int | None = Field(default=None, ge=0)
    max_nb_actions: int = Field(default=100, ge=1)
    instructions: str | None = None
    perception_type: str | None = None
    url: str | None = None


class NotteScrape(_NotteBody):
    """``POST /sessions/<id>/page/scrape``: ``notte_core.types.ScrapeRequest``."""

    selector: str | None = None
    scrape_links: bool = True
    scrape_images: bool = False
    ignored_tags: list[str] | None = None
    only_main_content: bool = False
    response_format: Any = None
    instructions: str | None = None
    model: str | None = None
    use_link_placeholders: bool = False


# ------------------------------------------------------------------- answers


class ViewportData(BaseModel):
    scroll_x: int
    scroll_y: int
    viewport_width: int
    viewport_height: int
    total_width: int
    total_height: int


class TabsData(BaseModel):
    tab_id: int
    title: str
    url: str


class SnapshotMetadata(BaseModel):
    title: str
    url: str
    viewport: ViewportData
    tabs: list[TabsData]
    timestamp: str


class NotteScreenshot(BaseModel):
    raw: str = Field(description="the page as a JPEG, base64")
    bboxes: list[dict[str, Any]] = Field(default_factory=list)


class ActionSpace(BaseModel):
    description: str
    interaction_actions: list[dict[str, Any]]
    category: str | None = None


class NotteObservation(BaseModel):
    """``notte_core.observation.Observation`` (the SDK's ``ObserveResponse``)."""

    started_at: str
    ended_at: str
    metadata: SnapshotMetadata
    screenshot: NotteScreenshot
    space: ActionSpace
    warnings: list[str] = Field(default_factory=list)


class NotteSession(BaseModel):
    """``notte_core.types.SessionResponse``, filled from our record."""

    session_id: str
    idle_timeout_minutes: int
    max_duration_minutes: int
    created_at: str
    closed_at: str | None
    last_accessed_at: str
    duration: str
    status: Literal["active", "closed", "error", "timed_out"]
    close_reason: Literal["manual", "idle_timeout", "max_duration", "error", "unknown"] | None
    steps: list[dict[str, Any]] = Field(default_factory=list)
    error: str | None
    proxies: bool = False
    browser_type: str = "chromium"
    user_agent: str | None = None
    viewport_width: int | None = None
    viewport_height: int | None = None
    solve_captchas: bool = False
    cdp_url: str | None = None
    viewer_url: str | None = None
    web_bot_auth: bool = False
    auth_ids: list[str] = Field(default_factory=list)
    system_hidden: bool = False
    keep_alive: bool = False
    warnings: list[str] = Field(default_factory=list)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# -------------------------------------------------------------- the mappings


def close_reason(record: SessionResponse) -> str | None:
    """Notte's ``close_reason`` for our record: why an ended session ended."""
    if record.status is Status.active:
        return None
    if record.status is Status.timed_out:
        error = record.error or ""
        if error.startswith("idle timeout"):
            return "idle_timeout"
        if error.startswith("lifetime cap"):
            return "max_duration"
        return "unknown"
    if record.status is Status.error:
        return "error"
    return "manual" if not record.error else "unknown"  # closed by a client, or at shutdown


_REFUSED_PROXIES = (
    "proxies: Notte's built-in (residential) proxies are not available on this server; "
    'send proxies=false, or an external proxy [{"type": "external", "server": "http://host:port"}]'
)


def start_request(
    body: NotteStart, lifetime_minutes: float, viewport: tuple[int, int] = (1280, 720)
) -> tuple[StartRequest, list[str]]:
    """Our start request for Notte's, and the warnings for options that were ignored.

    ``viewport``: the server's default size (filling a side Notte's caller left out). Raises
    ``InvalidInput`` naming an option the caller depends on that this server cannot honour."""
    warnings: list[str] = []
    refused: list[tuple[str, str]] = []
    fields: dict[str, Any] = {}

    def refuse(field: str, why: str) -> None:
        refused.append((field, why))

    if body.solve_captchas:
        refuse("solve_captchas", "captcha solving is not available on this server; send false")
    if body.proxies is True or isinstance(body.proxies, str):
        refuse("proxies", _REFUSED_PROXIES)
    elif isinstance(body.proxies, list) and body.proxies:
        kinds = {str(p.get("type", "notte")) for p in body.proxies}
        if kinds - {"external"}:
            refuse("proxies", _REFUSED_PROXIES)
        elif len(body.proxies) > 1:
            refuse("proxies", "one external proxy per session on this server; send one")
        else:  # per-session browser options (issue 18a): our upstream proxy
            fields["proxy"] = _external_proxy(body.proxies[0])
    if body.browser_type not in ("chromium", "chrome", "chrome-nightly", "chrome-turbo"):
        refuse("browser_type", f"{body.browser_type!r}: this server runs Chromium only")
    elif body.browser_type != "chromium":
        warnings.append(f"browser_type {body.browser_type!r} ignored: sessions run Chromium")
    # per-session browser options (issue 18a): viewport, user agent, headers
    width, height = body.viewport_width, body.viewport_height
    if body.aspect_ratio is not None:
        if width is not None or height is not None:
            refuse("aspect_ratio", "send aspect_ratio or viewport_width/viewport_height, not both")
        elif body.aspect_ratio not in _ASPECT_RATIOS:
            refuse("aspect_ratio", f"send one of {', '.join(_ASPECT_RATIOS)}")
        else:
            width, height = viewport[0], round(viewport[0] * _ASPECT_RATIOS[body.aspect_ratio])
    if width is not None or height is not None:
        fields["viewport"] = {"width": width or viewport[0], "height": height or viewport[1]}
    if body.user_agent is not None:
        fields["user_agent"] = body.user_agent
    if body.extra_http_headers:
        fields["extra_http_headers"] = body.extra_http_headers
    if body.chrome_args:
        harmless, mapped, other = _chrome_args(body.chrome_args)
        if other:
            refuse(
                "chrome_args",
                f"{', '.join(other)}: sessions share one Chromium, so its flags are the "
                "server's (SESSIONS_BROWSER_ARGS); accepted here: flags it already runs with, "
                "and --user-agent=, --window-size=W,H, --lang=, "
                "--blink-settings=imagesEnabled=false (applied as the session's options)",
            )
        if harmless:
            warnings.append(f"chrome_args {', '.join(harmless)} ignored: Chromium runs with them")
        for name, value in mapped.items():
            fields.setdefault(name, value)  # an explicit option wins over a flag
    if body.cdp_url is not None:
        refuse("cdp_url", "this server is the browser provider; it cannot drive another's browser")
    if body.profile is not None:  # profiles (issue 18)
        fields["profile"] = {"id": body.profile.id, "persist": body.profile.persist}
    if body.web_bot_auth:
        refuse("web_bot_auth", "Web Bot Auth signing is not available on this server; send false")
    if body.vault_id is not None:
        refuse("vault_id", "vaults are not available on this server")
    if body.auth_ids:
        refuse("auth_ids", "managed auth is not available on this server")
    if body.advanced_stealth:
        refuse("advanced_stealth", "stealth browsers are not available on this server")
    if body.block_ads:
        warnings.append("block_ads ignored: this server does not block ads")
    if body.headless is False:
        warnings.append("headless=false ignored: sessions run headless (watch one with its viewer)")
    if body.max_duration_minutes is not None:
        if body.max_duration_minutes > lifetime_minutes:
            refuse(
                "max_duration_minutes",
                f"sessions live at most {lifetime_minutes:g} minutes on this server "
                "(SESSIONS_MAX_LIFETIME_MINUTES); send at most that",
            )
        elif body.max_duration_minutes < lifetime_minutes:
            warnings.append(
                f"max_duration_minutes={body.max_duration_minutes} is not applied per session: "
                f"sessions live at most {lifetime_minutes:g} minutes here "
                "(SESSIONS_MAX_LIFETIME_MINUTES), and close after idle_timeout_minutes of "
                "inactivity; stop the session when you are done"
            )
    if refused:
        raise InvalidInput(
            "invalid request: " + "; ".join(f"{f}: {why}" for f, why in refused),
            fields=[{"field": f, "message": why} for f, why in refused],
        )
    if body.idle_timeout_minutes is not None:
        fields["session_timeout_minutes"] = body.idle_timeout_minutes
    return _ours(StartRequest, fields, _START_NAMES), warnings


# our start field -> Notte's, in the 400s of a start
_START_NAMES = {
    "session_timeout_minutes": "idle_timeout_minutes",
    "viewport": "viewport_width/viewport_height",
    "proxy": "proxies[0]",
}
# Notte's aspect_ratio presets: height / width, at the server's default width
_ASPECT_RATIOS = {"16:9": 9 / 16, "5:4": 4 / 5}


def _external_proxy(proxy: dict[str, Any]) -> dict[str, Any]:
    """Notte's ``ExternalProxy`` as our ``proxy`` (its credentials go to the host only)."""
    out = {k: proxy[k] for k in ("server", "username", "password", "bypass") if proxy.get(k)}
    unknown = sorted(set(proxy) - {"type", "server", "username", "password", "bypass"})
    if unknown:
        why = f"an external proxy takes server, username, password and bypass (not {unknown[0]})"
        raise InvalidInput(
            f"invalid request: proxies: {why}", fields=[{"field": "proxies", "message": why}]
        )
    return out


# Flags our Chromium already runs with (or that change nothing for a headless context).
_HARMLESS_FLAGS = frozenset(
    {
        "--headless",
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--mute-audio",
        "--hide-scrollbars",
    }
)


def _chrome_args(args: list[str]) -> tuple[list[str], dict[str, Any], list[str]]:
    """(flags that change nothing here, the session options that flags ask for, flags this
    server cannot give one session)."""
    harmless: list[str] = []
    mapped: dict[str, Any] = {}
    other: list[str] = []
    for arg in args:
        flag = arg.strip()
        name, eq, value = flag.partition("=")
        if flag in _HARMLESS_FLAGS:
            harmless.append(flag)
        elif name == "--user-agent" and eq and value:
            mapped["user_agent"] = value
        elif name == "--lang" and eq and value:
            mapped["locale"] = value
        elif name == "--window-size" and re.fullmatch(r"\d{1,5},\d{1,5}", value):
            w, h = value.split(",")
            mapped["viewport"] = {"width": int(w), "height": int(h)}
        elif flag == "--blink-settings=imagesEnabled=false":
            mapped["block_resources"] = ["image"]
        else:
            other.append(flag[:100])
    return harmless, mapped, other


_M = TypeVar("_M", bound=BaseModel)
_T = TypeVar("_T")


def _ours(model: type[_M], fields: dict[str, Any], names: dict[str, str], **context: Any) -> _M:
    """Our request model, its errors named with Notte's field names."""
    try:
        return parse(model, fields, context or None)
    except InvalidInput as exc:
        raise renamed(exc, names) from None


def renamed(exc: InvalidInput, names: dict[str, str]) -> InvalidInput:
    """Our 400 with our field names (``proxy``, ``proxy.server``) as Notte's."""

    def theirs(field: str) -> str:
        head, dot, rest = field.partition(".")
        return names[head] + dot + rest if head in names else field

    message = exc.message
    for ours, notte in names.items():
        message = message.replace(f" {ours}:", f" {notte}:").replace(f" {ours}.", f" {notte}.")
    extra = dict(exc.extra)
    for entry in extra.get("fields", []):
        entry["field"] = theirs(str(entry["field"]))
    return InvalidInput(message, **extra)


# role -> Notte's action type for an observed element (every other role: click)
_ACTION_TYPE = {
    "textbox": "fill",  # text inputs, textareas and rich text (contenteditable)
    "searchbox": "fill",
    "spinbutton": "fill",
    "checkbox": "check",
    "switch": "check",
    "menuitemcheckbox": "check",
    "combobox": "select_dropdown_option",  # a <select>, or an ARIA combobox
    "listbox": "select_dropdown_option",  # a multiple <select>, or an ARIA listbox
}
_VERB = {
    "fill": "Fill",
    "check": "Check or uncheck",
    "select_dropdown_option": "Select an option of",
    "click": "Click",
}
# roles of our observation (issue 22) that Notte has no action type for: a click, and the
# description says what else the element takes (execute's scroll_*; our own /env/step drag)
_HOW = {
    "scrollable": ("Scroll", "scroll box", " (execute scroll_down/scroll_up with its id)"),
    "draggable": ("Drag", "draggable element", " (drag it with our /env/step drag step)"),
    "dropzone": ("Drop onto", "drop target", " (drag onto it with our /env/step drag step)"),
    "canvas": ("Click", "canvas", ""),
    "clickable": ("Click", "clickable element", ""),
}


def interaction_action(action: Action) -> dict[str, Any]:
    """An observed element as Notte's interaction action (``ClickAction``, ``FillAction``…).

    Every role our observation reports becomes one of Notte's interaction types; the id is
    ours (``B1``, ``I2``, ``L3``, ``C4``, ``S5``, ``R6``…), so execute finds the element."""
    kind = _ACTION_TYPE.get(action.role, "click")
    name = action.name.strip()
    verb, noun, hint = _HOW.get(action.role, (_VERB[kind], action.role, ""))
    label = f'the {noun} "{name}"' if name else f"the unnamed {noun}"
    description = f"{verb} {label}{hint}"
    if action.value and kind != "click":
        description += f" (now: {action.value[:80]})"
    if not action.enabled:
        description += " (disabled)"
    if action.readonly:
        description += " (read-only)"
    if action.frame:
        description += f" (in frame {action.frame})"
    shadow = ">>" in action.selector
    out: dict[str, Any] = {
        "type": kind,
        "id": action.id,
        "category": "Interaction Actions",
        "description": description,
        "selector": {
            "css_selector": "" if shadow else action.selector,
            "xpath_selector": "",
            "in_iframe": action.frame is not None,
            "in_shadow_root": shadow,
            "iframe_parent_css_selectors": [],
            "playwright_selector": action.selector if shadow else None,
        },
        "text_label": name or None,
        "accessible_name": name or None,
    }
    if kind == "fill" or kind == "select_dropdown_option":
        out["value"] = action.value or ""
    elif kind == "check":
        out["value"] = action.value == "checked"
    return out


def observation(
    answer: ObserveResponse, started: str, max_actions: int, warnings: list[str]
) -> NotteObservation:
    """Our observation (with a JPEG screenshot) as Notte's ``Observation``."""
    seen = answer.observation
    actions = seen.actions[:max_actions]
    listed = [interaction_action(a) for a in actions]
    lines = [f"# {seen.title or '(no title)'}", f"URL: {seen.url}"]
    if seen.error:
        lines.append(f"Load error: {seen.error}")
    lines.append("\n## Interactive elements (execute them by id)")
    lines += [f"* {a['id']}: {a['description']}" for a in listed] or ["(none)"]
    if seen.actions_total > len(actions):
        lines.append(f"({seen.actions_total - len(actions)} more not listed)")
    lines += ["\n## Text", seen.text]
    view = seen.viewport
    screenshot = seen.screenshot or ""
    return NotteObservation(
        started_at=started,
        ended_at=_now(),
        metadata=SnapshotMetadata(
            title=seen.title,
            url=seen.url,
            viewport=ViewportData(
                scroll_x=view.scroll_x if view else 0,
                scroll_y=view.scroll_y if view else 0,
                viewport_width=view.width if view else 0,
                viewport_height=view.height if view else 0,
                total_width=view.page_width if view else 0,
                total_height=view.page_height if view else 0,
            ),
            tabs=[TabsData(tab_id=t.index, title=t.title, url=t.url) for t in seen.tabs],
            timestamp=_now(),
        ),
        screenshot=NotteScreenshot(raw=screenshot),
        space=ActionSpace(description="\n".join(lines), interaction_actions=listed),
        warnings=[*warnings, *seen.warnings],
    )


# Notte action types we run, and how their fields become a step's.
_BROWSER_STEPS = frozenset(
    {"goto", "go_back", "go_forward", "reload", "wait", "press_key", "scroll_up", "scroll_down"}
)
_TARGET_STEPS = {
    "click": "click",
    "fill": "fill",
    "multi_factor_fill": "fill",
    "fallback_fill": "fill",
    "check": "check",
    "select_dropdown_option": "select_dropdown_option",
    "upload_file": "upload_file",  # session files (issue 19): file_path names a session file
    # session files (issue 19): a click whose download lands in the session's files
    "download_file": "click",
}
_NOT_HERE = {
    "captcha_solve": "captcha solving is not available on this server",
    "evaluate_js": "running JavaScript through the API is not allowed on this server "
    "(attach Playwright to the session's cdp_url instead)",
    "form_fill": "form_fill needs an LLM; fill each field with a fill action",
    "goto_new_tab": "this server opens no tab on request; use goto",
    "email_read": "personas are not available on this server",
    "sms_read": "personas are not available on this server",
    "email_verification_read": "personas are not available on this server",
    "scrape": "call the scrape route (session.scrape()) instead",
    "help": "agent actions are not executed here",
    "completion": "agent actions are not executed here",
}


def step_fields(action: dict[str, Any], session_id: str) -> dict[str, Any]:
    """Our step body for Notte's action (``notte_core.actions``), or ``InvalidInput``."""
    kind = action.get("type")
    if not isinstance(kind, str):
        raise InvalidInput(
            "invalid request: type: is required: the action to run (goto, click, fill, …)",
            fields=[{"field": "type", "message": "is required"}],
        )
    fields: dict[str, Any] = {"session_id": session_id}
    if kind in _NOT_HERE:
        why = f"{kind} is not supported: {_NOT_HERE[kind]}"
        raise InvalidInput(
            f"invalid request: type: {why}", fields=[{"field": "type", "message": why}]
        )
    if kind in _BROWSER_STEPS:
        fields["type"] = kind
        for name in ("url", "time_ms", "key", "amount"):
            if action.get(name) is not None:
                fields[name] = action[name]
        if kind.startswith("scroll"):  # a scroll box (issue 22): by its id or a selector
            target = str(action.get("id") or "").removesuffix("[:]")
            selector = _selector(action.get("selector"))
            if target:
                fields["id"] = target
            elif selector:
                fields["selector"] = selector
        return fields
    if kind == "switch_tab":
        return {**fields, "type": "switch_tab", "index": action.get("tab_index")}
    if kind == "close_tab":
        return {**fields, "type": "close_tab"}
    if kind not in _TARGET_STEPS:
        why = f"is not a Notte action this server knows ({kind!r})"
        raise InvalidInput(
            f"invalid request: type: {why}", fields=[{"field": "type", "message": why}]
        )
    fields["type"] = _TARGET_STEPS[kind]
    action_id = str(action.get("id") or "").removesuffix("[:]")
    selector = _selector(action.get("selector"))
    if action_id:
        fields["id"] = action_id
    elif selector:
        fields["selector"] = selector
    if kind == "upload_file":  # session files (issue 19): the file's name in the session
        fields["files"] = [
            posixpath.basename(str(action.get("file_path") or "").replace("\\", "/"))
        ]
        return fields
    value = action.get("value")
    if isinstance(value, dict):
        why = "vault placeholders are not available on this server; send the value itself"
        raise InvalidInput(
            f"invalid request: value: {why}", fields=[{"field": "value", "message": why}]
        )
    if fields["type"] != "click" and value is not None:
        fields["value"] = value
    if fields["type"] == "fill":
        fields["press_enter"] = bool(action.get("press_enter"))
        if action.get("clear_before_fill") is not None:
            fields["clear_before_fill"] = bool(action["clear_before_fill"])
    return fields


def _selector(selector: Any) -> str | None:
    """A selector as Notte sends it (a string, or ``NodeSelectors``) in Playwright's syntax."""
    if isinstance(selector, str):
        return selector or None
    if not isinstance(selector, dict):
        return None
    if selector.get("playwright_selector"):
        return str(selector["playwright_selector"])
    if selector.get("css_selector"):
        return f"css={selector['css_selector']}"
    if selector.get("xpath_selector"):
        return f"xpath={selector['xpath_selector']}"
    return None


_IMAGE = re.compile(r"!\[[^\]\n]*\]\([^)\n]*\)")
_LINK = re.compile(r"(?<!!)\[([^\]\n]*)\]\([^)\n]*\)")


def scraped_markdown(markdown: str, body: NotteScrape) -> str:
    """The Markdown with images (``scrape_images=false``, Notte's default) or links
    (``scrape_links=false``) taken out, as Notte's scrape leaves them out."""
    if not body.scrape_images:
        markdown = _IMAGE.sub("", markdown)
    if not body.scrape_links:
        markdown = _LINK.sub(r"\1", markdown)
    return markdown


# ------------------------------------------- cookies, profiles, files (issues 18, 19)

_SAME_SITE = {"lax": "Lax", "strict": "Strict", "none": "None", "no_restriction": "None"}


def notte_cookie(cookie: CookieInfo) -> dict[str, Any]:
    """Our cookie as Notte's ``Cookie`` (``expires``/``expirationDate`` null: a session
    cookie; ``hostOnly``: no leading dot on the domain)."""
    expires = None if cookie.expires < 0 else cookie.expires
    return {
        "name": cookie.name,
        "value": cookie.value,
        "domain": cookie.domain,
        "path": cookie.path,
        "httpOnly": cookie.httpOnly,
        "secure": cookie.secure,
        "sameSite": cookie.sameSite,
        "expires": expires,
        "expirationDate": expires,
        "hostOnly": not cookie.domain.startswith("."),
        "session": expires is None,
        "partitionKey": cookie.partitionKey,
    }


def our_cookie(cookie: Any, index: int) -> dict[str, Any]:
    """Notte's cookie (Playwright's or a Chrome export's: ``expirationDate``, ``hostOnly``,
    ``sameSite: no_restriction``) as ours; Notte's fields we have no use for are dropped."""
    if not isinstance(cookie, dict):
        why = "must be a cookie object with name, value, domain and path"
        raise InvalidInput(
            f"invalid request: cookies[{index}]: {why}",
            fields=[{"field": f"cookies[{index}]", "message": why}],
        )
    out = {
        k: cookie[k]
        for k in ("name", "value", "domain", "path", "url", "httpOnly", "secure", "partitionKey")
        if cookie.get(k) is not None
    }
    domain = out.get("domain")
    if isinstance(domain, str) and cookie.get("hostOnly") is not None:
        bare = domain.lstrip(".")
        out["domain"] = bare if cookie["hostOnly"] else "." + bare
    expires = cookie.get("expires", cookie.get("expirationDate"))
    if expires is not None and not cookie.get("session"):
        out["expires"] = expires
    same_site = cookie.get("sameSite")
    if isinstance(same_site, str) and same_site.lower() in _SAME_SITE:
        out["sameSite"] = _SAME_SITE[same_site.lower()]
    return out


def our_cookies(data: dict[str, Any]) -> list[dict[str, Any]]:
    cookies = data.get("cookies")
    if not isinstance(cookies, list):
        why = "is required: a list of cookies (name, value, domain, path)"
        raise InvalidInput(
            f"invalid request: cookies: {why}", fields=[{"field": "cookies", "message": why}]
        )
    return [our_cookie(c, i) for i, c in enumerate(cookies)]


def notte_profile(info: ProfileInfo) -> dict[str, Any]:
    """Our profile as Notte's ``ProfileResponse`` (``persisted_domains``: the host names its
    cookies and origins are for)."""
    hosts = {urlsplit(d).hostname or d if "://" in d else d.lstrip(".") for d in info.domains}
    return {
        "profile_id": info.profile_id,
        "name": info.name,
        "created_at": info.created_at,
        "updated_at": info.updated_at,
        "persisted_domains": sorted(hosts),
    }


_SOURCES = {"user_upload": "upload", "session_download": "download"}
# what POST /profiles/<id>/state takes (storage_scope: each origin given is replaced, either way)
_STATE_FIELDS = frozenset(
    {"cookies", "local_storage", "session_storage", "domains", "mode", "storage_scope"}
)


def notte_file(info: FileInfo, session_id: str, expires_at: str) -> dict[str, Any]:
    """Our file as Notte's ``SessionFile``: its name is its id."""
    return {
        "id": info.name,
        "session_id": session_id,
        "filename": info.name,
        "mime_type": info.content_type,
        "size": info.size,
        "checksum": info.sha256 or "",
        "created_at": info.created_at,
        "expires_at": expires_at,
        "source": "user_upload" if info.source == "upload" else "session_download",
    }


# ------------------------------------------------------------------- errors


def notte_error(response: Response) -> Response:
    """Our JSON error as Notte's: ``{"status": <HTTP status>, "message": …}`` and our details
    (a 409's session status as ``session_status``)."""
    body = response.get_json(silent=True)
    if not isinstance(body, dict) or "error" not in body:
        return response
    out: dict[str, Any] = {"status": response.status_code, "message": body.pop("error")}
    if "status" in body:
        out["session_status"] = body.pop("status")
    out.update(body)
    response.set_data(json.dumps(out))
    return response


# -------------------------------------------------------------------- routes


def _paged(query: Mapping[str, str], items: list[_T], render: Callable[[_T], Any]) -> Response:
    """One page of ``items`` (oldest first), newest first, each rendered only if on the page,
    in Notte's paged shape, from the SDK's ``page`` and ``page_size``."""
    try:
        page = max(1, int(query.get("page", "1")))
        size = min(_MAX_PAGE_SIZE, max(1, int(query.get("page_size", "10"))))
    except ValueError:
        raise InvalidInput(
            "invalid request: page and page_size must be whole numbers",
            fields=[{"field": "page_size", "message": "must be a whole number"}],
        ) from None
    newest = items[::-1]
    return jsonify(
        items=[render(item) for item in newest[(page - 1) * size : page * size]],
        page=page,
        page_size=size,
        total=len(items),
        has_next=page * size < len(items),
        has_previous=page > 1,
    )


def register_notte(
    bp: Blueprint, state: SessionsState, login_required: Callable[[ViewFunc], ViewFunc]
) -> None:
    """Add Notte's routes under ``SESSIONS_NOTTE_PREFIX`` (nothing when SESSIONS_NOTTE_API is
    off)."""
    settings = state.settings
    if not settings.notte_api:
        return
    root = settings.notte_prefix
    backend = state.backend
    auth = state.auth
    lifetime = settings.max_lifetime_minutes

    def principal() -> str:
        user = auth.current_user()
        assert isinstance(user, str)
        return user

    def body_of() -> dict[str, Any]:
        raw = request.get_data(cache=True)
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            raise InvalidInput(
                "body: must be a JSON object",
                fields=[{"field": "body", "message": "must be a JSON object"}],
            )
        return data

    def known(session_id: str) -> str:
        if not _SESSION_ID.match(session_id):
            raise SessionNotFound(f"no such session: {session_id[:64]!r}")
        return session_id

    def cdp_url(record: SessionResponse) -> str | None:
        if state.cdp is not None:
            return state.cdp.url_for(record.session_id)
        return record.cdp_url

    def session(
        record: SessionResponse, *, cdp: str | None = None, warnings: list[str] | None = None
    ) -> NotteSession:
        data = record.model_dump(mode="json")
        options = record.options
        view = options.viewport if options else None
        return NotteSession(
            session_id=record.session_id,
            idle_timeout_minutes=record.timeout_minutes,
            max_duration_minutes=max(1, round(lifetime)),
            created_at=data["created_at"],
            closed_at=data["closed_at"],
            last_accessed_at=data["last_accessed_at"],
            duration=data["duration"],
            status=record.status.value,
            close_reason=cast(Any, close_reason(record)),
            error=record.error,
            # per-session browser options (issue 18a): what this session runs with
            viewport_width=view.width if view else settings.viewport_width,
            viewport_height=view.height if view else settings.viewport_height,
            user_agent=options.user_agent if options else None,
            proxies=bool(options and options.proxy),
            cdp_url=cdp if cdp is not None else cdp_url(record),
            viewer_url=record.viewer_url,  # the last one minted (issue 20's live view)
            keep_alive=record.keep_alive,
            warnings=warnings or [],
        )

    def answer(model: BaseModel) -> Response:
        return jsonify(model.model_dump(mode="json"))

    def route(endpoint: str) -> Callable[[ViewFunc], ViewFunc]:
        method, rule = next((m, r) for e, m, r in NOTTE_ROUTES if e == endpoint)
        return bp.route(root + rule, methods=[method], endpoint=endpoint)

    @route("notte_health")
    def notte_health() -> Response:
        """Notte's ``GET /health``: the API answers (no token needed)."""
        return jsonify(status="ok")

    @route("notte_start")
    @login_required
    def notte_start() -> Response:
        data = body_of()
        if "timeout_minutes" in data:  # Notte's older name
            data.setdefault("idle_timeout_minutes", data.pop("timeout_minutes"))
        size = (settings.viewport_width, settings.viewport_height)
        start, warnings = start_request(parse(NotteStart, data), lifetime, size)
        who = principal()
        try:
            record = backend.start(who, start)
        except InvalidInput as exc:  # the host's checks (a device, a proxy's address)
            raise renamed(exc, _START_NAMES) from None
        cdp = None
        if cdp_url(record) is not None:  # a one-use ticket, so the SDK's session.page works
            cdp = backend.cdp_ticket(who, record.session_id).cdp_url
        return answer(session(record, cdp=cdp, warnings=warnings))

    @route("notte_list")
    @login_required
    def notte_list() -> Response:
        query = request.args
        only_active = query.get("only_active", "true").lower() not in ("false", "0", "no")
        records = backend.list_sessions(principal(), Status.active if only_active else None)
        return _paged(query, records, lambda r: session(r).model_dump(mode="json"))

    @route("notte_status")
    @login_required
    def notte_status(session_id: str) -> Response:
        return answer(session(backend.get(principal(), known(session_id))))

    @route("notte_stop")
    @login_required
    def notte_stop(session_id: str) -> Response:
        record = backend.close(principal(), known(session_id))  # an ended one: its record
        if record.status is not Status.closed:  # timed out or failed: the SDK says so
            raise SessionNotActive(
                f"session {session_id} is already closed ({record.status.value}"
                + (f": {record.error})" if record.error else ")"),
                status=record.status.value,
            )
        return answer(session(record))

    @route("notte_debug")
    @login_required
    def notte_debug(session_id: str) -> Response:
        who = principal()
        record = backend.get(who, known(session_id))
        cdp = ""
        if record.status is Status.active and cdp_url(record) is not None:
            cdp = backend.cdp_ticket(who, session_id).cdp_url
        ui = request.host_url.rstrip("/") + settings.url_prefix + "/ui" if settings.ui else ""
        if record.status is Status.active:  # the live view (issue 20): a fresh view-only URL
            live = f"{_public_base()}{settings.url_prefix}/ui/live/{session_id}"
            ui = backend.viewer(who, session_id, ViewerRequest(), live).viewer_url
        page = record.page
        tabs = (
            [
                {
                    "metadata": {"tab_id": 0, "title": page.title, "url": page.url},
                    "debug_url": ui,
                    "ws_url": cdp,
                }
            ]
            if page is not None
            else []
        )
        return jsonify(debug_url=ui, ws={"cdp": cdp, "recording": "", "logs": ""}, tabs=tabs)

    @route("notte_auth")
    @login_required
    def notte_auth(session_id: str) -> Response:
        record = backend.get(principal(), known(session_id))
        status = "active" if record.status is Status.active else "closed"
        return jsonify(session_id=session_id, status=status, operations=[], error=None)

    @route("notte_observe")
    @login_required
    def notte_observe(session_id: str) -> Response:
        started = _now()
        body = parse(NotteObserve, body_of())
        warnings: list[str] = []
        if body.instructions is not None:
            why = "filtering actions by instructions needs an LLM; this server has none"
            raise InvalidInput(
                f"invalid request: instructions: {why}",
                fields=[{"field": "instructions", "message": why}],
            )
        if body.perception_type not in (None, "fast"):
            warnings.append(
                f"perception_type {body.perception_type!r} ignored: observations here are "
                "made from the DOM, without an LLM"
            )
        fields: dict[str, Any] = {
            "session_id": known(session_id),
            "screenshot": True,
            "screenshot_format": "jpeg",
        }
        if body.url is not None:
            fields["url"] = body.url
        seen = backend.observe(principal(), _ours(ObserveRequest, fields, {}))
        return answer(observation(seen, started, body.max_nb_actions, warnings))

    @route("notte_execute")
    @login_required
    def notte_execute(session_id: str) -> Response:
        started = _now()
        action = body_of()
        fields = step_fields(action, known(session_id))
        step = parse_step(fields, {"max_wait_ms": settings.max_wait_ms})
        try:
            done = backend.step(principal(), step)
            success, message = done.success, done.message
        except SessionNotActive as exc:
            if "stale_id" not in exc.extra:
                raise
            success, message = False, exc.message
        return jsonify(
            action=action,
            success=success,
            message=message,
            data=None,
            exception=None if success else message,
            started_at=started,
            ended_at=_now(),
            captcha=None,
            action_executed=success,
            code=None,
        )

    @route("notte_scrape")
    @login_required
    def notte_scrape(session_id: str) -> Response:
        body = parse(NotteScrape, body_of())
        for field in ("instructions", "response_format"):
            if getattr(body, field) is not None:
                why = "structured scraping needs an LLM; this server has none (scrape Markdown)"
                raise InvalidInput(
                    f"invalid request: {field}: {why}", fields=[{"field": field, "message": why}]
                )
        warnings = [
            f"{field} ignored: the whole page (or the selector's part) is scraped"
            for field in ("only_main_content", "use_link_placeholders")
            if getattr(body, field)
        ]
        if body.ignored_tags:
            warnings.append("ignored_tags ignored: scripts, styles and hidden elements are dropped")
        fields: dict[str, Any] = {"session_id": known(session_id), "format": "markdown"}
        if body.selector is not None:
            fields["selector"] = body.selector
        scraped = backend.scrape(principal(), _ours(ScrapeRequest, fields, {}))
        if not scraped.success:
            warnings.append(scraped.message)
        return jsonify(
            markdown=scraped_markdown(scraped.content, body), structured=None, warnings=warnings
        )

    @route("notte_screenshot")
    @login_required
    def notte_screenshot(session_id: str) -> Response:
        shot = backend.screenshot(
            principal(), known(session_id), parse(ScreenshotQuery, {"format": "jpeg"})
        )
        return jsonify(
            session_id=session_id,
            screenshot=base64.b64encode(shot.data).decode("ascii"),
            format=shot.format,
            width=shot.width,
            height=shot.height,
        )

    # ------------------------------------ cookies, profiles, files (issues 18, 19)

    def known_profile(profile_id: str) -> str:
        if not _PROFILE_ID.match(profile_id):
            raise ProfileNotFound(f"no such profile: {profile_id[:64]!r}")
        return profile_id

    @route("notte_get_cookies")
    @login_required
    def notte_get_cookies(session_id: str) -> Response:
        listed = backend.cookies(principal(), known(session_id), None)
        return jsonify(cookies=[notte_cookie(c) for c in listed.cookies])

    @route("notte_set_cookies")
    @login_required
    def notte_set_cookies(session_id: str) -> Response:
        cookies = our_cookies(body_of())
        if not cookies:
            return jsonify(success=True, message="no cookies given: nothing set")
        add = parse(AddCookiesRequest, {"cookies": cookies})
        done = backend.add_cookies(principal(), known(session_id), add)
        return jsonify(
            success=True, message=f"{done.added} cookies set; the session has {done.cookies}"
        )

    @route("notte_save_profile")
    @login_required
    def notte_save_profile(session_id: str) -> Response:
        data = body_of()
        unknown = sorted(set(data) - {"profile_id", "name"})
        if unknown or (data.get("profile_id") and data.get("name")):
            why = "send profile_id, or name, or neither (the profile the session started with)"
            raise InvalidInput(
                f"invalid request: {unknown[0] if unknown else 'name'}: {why}",
                fields=[{"field": unknown[0] if unknown else "name", "message": why}],
            )
        who, sid = principal(), known(session_id)
        if not data.get("profile_id") and not data.get("name"):  # its own, with persist
            return jsonify(notte_profile(backend.save_profile(who, sid)))
        state = parse(StorageState, kept_state(backend.session_state(who, sid)))
        if data.get("name"):
            name = parse(ProfileCreate, {"name": data["name"]}).name
            target = backend.create_profile(who, name).profile_id
        else:
            target = known_profile(str(data["profile_id"]))
        return jsonify(notte_profile(backend.put_profile_state(who, target, state)))

    def files_expire(who: str, session_id: str) -> str:
        """When a session's files go at the latest: with the session, at its lifetime cap."""
        created = datetime.fromisoformat(backend.get(who, session_id).created_at)
        return (created + timedelta(minutes=lifetime)).isoformat()

    @route("notte_list_files")
    @login_required
    def notte_list_files(session_id: str) -> Response:
        who, sid = principal(), known(session_id)
        query = request.args
        source = query.get("source")
        if source is not None and source not in _SOURCES:
            why = "send user_upload or session_download"
            raise InvalidInput(
                f"invalid request: source: {why}", fields=[{"field": "source", "message": why}]
            )
        try:
            limit = min(1000, max(1, int(query.get("limit", "100"))))
            offset = max(0, int(query.get("offset", "0")))
        except ValueError:
            raise InvalidInput(
                "invalid request: limit and offset must be whole numbers",
                fields=[{"field": "limit", "message": "must be a whole number"}],
            ) from None
        files = [
            f
            for f in backend.list_files(who, sid).files
            if f.state == "complete" and (source is None or f.source == _SOURCES[source])
        ]
        expires = files_expire(who, sid)
        return jsonify(
            files=[notte_file(f, sid, expires) for f in files[offset : offset + limit]],
            total=len(files),
            limit=limit,
            offset=offset,
        )

    @route("notte_upload_file")
    @login_required
    def notte_upload_file(session_id: str) -> Response:
        who, sid = principal(), known(session_id)
        cap = int(settings.max_session_files_mb * MB) + UPLOAD_OVERHEAD
        length = request.content_length
        if length is not None and length > cap:
            raise PayloadTooLarge(
                f"the upload is {length / MB:.1f} MB: more than a session's files may hold "
                f"({settings.max_session_files_mb:g} MB, SESSIONS_MAX_SESSION_FILES_MB)",
                limit="SESSIONS_MAX_SESSION_FILES_MB",
                limit_bytes=int(settings.max_session_files_mb * MB),
            )
        request.max_content_length = cap
        stored = backend.upload_files(who, sid, request.stream, request.content_type, length)
        if not stored.files:
            why = "send a file part (multipart/form-data)"
            raise InvalidInput(
                f"invalid request: file: {why}", fields=[{"field": "file", "message": why}]
            )
        return jsonify(notte_file(stored.files[-1], sid, files_expire(who, sid)))

    @route("notte_download_file")
    @login_required
    def notte_download_file(session_id: str, file_id: str) -> Response:
        body = backend.get_file(principal(), known(session_id), file_id, None)
        return send_file_body(body)

    @route("notte_delete_file")
    @login_required
    def notte_delete_file(session_id: str, file_id: str) -> Response:
        backend.delete_file(principal(), known(session_id), file_id)
        return Response(status=204)

    @route("notte_create_profile")
    @login_required
    def notte_create_profile() -> Response:
        data = body_of()
        unknown = sorted(set(data) - {"name"})
        if unknown:
            why = "a profile is created with its name only"
            raise InvalidInput(
                f"invalid request: {unknown[0]}: {why}",
                fields=[{"field": unknown[0], "message": why}],
            )
        name = data.get("name") or _UNNAMED
        req = parse(ProfileCreate, {"name": name})
        return jsonify(notte_profile(backend.create_profile(principal(), req.name)))

    @route("notte_list_profiles")
    @login_required
    def notte_list_profiles() -> Response:
        query = request.args
        name = (query.get("name") or "").lower()
        found = [p for p in backend.list_profiles(principal()) if name in p.name.lower()]
        return _paged(query, found, notte_profile)

    @route("notte_get_profile")
    @login_required
    def notte_get_profile(profile_id: str) -> Response:
        return jsonify(notte_profile(backend.get_profile(principal(), known_profile(profile_id))))

    @route("notte_delete_profile")
    @login_required
    def notte_delete_profile(profile_id: str) -> Response:
        backend.delete_profile(principal(), known_profile(profile_id))
        return jsonify(success=True, message="Profile deleted successfully")

    @route("notte_profile_cookies")
    @login_required
    def notte_profile_cookies(profile_id: str) -> Response:
        held = backend.profile_state(principal(), known_profile(profile_id))
        cookies = [CookieInfo.model_validate(c) for c in held.get("cookies") or []]
        return jsonify(cookies=[notte_cookie(c) for c in cookies])

    @route("notte_set_profile_cookies")
    @login_required
    def notte_set_profile_cookies(profile_id: str) -> Response:
        data = body_of()
        mode = data.get("mode", "replace")
        if mode not in ("replace", "append"):
            why = "send replace or append"
            raise InvalidInput(
                f"invalid request: mode: {why}", fields=[{"field": "mode", "message": why}]
            )
        cookies = our_cookies(data)
        who, pid = principal(), known_profile(profile_id)
        held = kept_state(backend.profile_state(who, pid))
        if mode == "append":
            new = {(c["name"], c.get("domain"), c.get("path")) for c in cookies}
            kept = [c for c in held["cookies"] if (c["name"], c["domain"], c["path"]) not in new]
            cookies = kept + cookies
        state = parse(StorageState, {"cookies": cookies, "origins": held["origins"]})
        backend.put_profile_state(who, pid, state)
        return jsonify(
            success=True,
            message=f"{len(state.cookies)} cookies in profile {pid}",
            cookies_count=len(state.cookies),
            mode=mode,
        )

    @route("notte_set_profile_state")
    @login_required
    def notte_set_profile_state(profile_id: str) -> Response:
        data = body_of()
        for field in ("session_storage", "domains"):
            if data.get(field):
                why = (
                    "sessionStorage is not kept in profiles (it ends with its tab)"
                    if field == "session_storage"
                    else "send the cookies and local_storage to keep instead"
                )
                raise InvalidInput(
                    f"invalid request: {field}: {why}", fields=[{"field": field, "message": why}]
                )
        mode = data.get("mode", "replace")
        unknown = sorted(set(data) - _STATE_FIELDS)
        if mode not in ("replace", "append") or unknown:
            field = unknown[0] if unknown else "mode"
            why = "send replace or append" if field == "mode" else "is not a field of this call"
            raise InvalidInput(
                f"invalid request: {field}: {why}", fields=[{"field": field, "message": why}]
            )
        storage = data.get("local_storage") or {}
        if not isinstance(storage, dict) or not all(isinstance(v, dict) for v in storage.values()):
            why = 'send {"<origin>": {"<key>": "<value>"}}'
            raise InvalidInput(
                f"invalid request: local_storage: {why}",
                fields=[{"field": "local_storage", "message": why}],
            )
        cookies = our_cookies({"cookies": data.get("cookies") or []})
        origins = [
            {"origin": origin, "localStorage": [{"name": k, "value": v} for k, v in items.items()]}
            for origin, items in storage.items()
        ]
        who, pid = principal(), known_profile(profile_id)
        if mode == "append":  # what is given replaces its like; the rest is kept
            held = kept_state(backend.profile_state(who, pid))
            new = {(c["name"], c.get("domain"), c.get("path")) for c in cookies}
            cookies = [
                c for c in held["cookies"] if (c["name"], c["domain"], c["path"]) not in new
            ] + cookies
            given = {o["origin"] for o in origins}
            origins = [o for o in held["origins"] if o["origin"] not in given] + origins
        state = parse(StorageState, {"cookies": cookies, "origins": origins})
        backend.put_profile_state(who, pid, state)
        return jsonify(
            success=True,
            cookies_count=len(state.cookies),
            local_storage_origins=len(state.origins),
            session_storage_origins=0,
        )

    @route("notte_duplicate_profile")
    @login_required
    def notte_duplicate_profile(profile_id: str) -> Response:
        data = body_of()
        who, pid = principal(), known_profile(profile_id)
        source = backend.get_profile(who, pid)
        name = parse(ProfileCreate, {"name": data.get("name") or source.name}).name
        held = parse(StorageState, kept_state(backend.profile_state(who, pid)))
        copy = backend.create_profile(who, name)
        return jsonify(notte_profile(backend.put_profile_state(who, copy.profile_id, held)))

    @bp.after_request
    def notte_errors(response: Response) -> Response:
        endpoint = (request.endpoint or "").partition(".")[2]
        if endpoint.startswith(ENDPOINT_PREFIX) and response.status_code >= 400:
            return notte_error(response)
        return response
