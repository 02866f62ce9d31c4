"""Request and response bodies (pydantic v2), and turning their errors into plain words.

Every request body is one of these models with ``extra="forbid"``: a misspelt field is a
400 naming it, not a silently ignored option.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import IO, Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from typing_extensions import TypedDict

from flask_sessions.errors import InvalidInput

# per-session browser options (issue 18a): the fields live in options.py
from flask_sessions.options import HINTS as _OPTION_HINTS
from flask_sessions.options import NESTED_FIELDS as _NESTED_FIELDS
from flask_sessions.options import NO_ECHO as _NO_ECHO
from flask_sessions.options import BrowserOptionFields, SessionOptions
from flask_sessions.profile_schemas import HINTS as PROFILE_HINTS
from flask_sessions.profile_schemas import ProfileRef, SessionProfile, StorageState

SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

ImageFormat = Literal["png", "jpeg", "webp"]
"""A screenshot's encoding: PNG (lossless, the default), JPEG or WebP (lossy, with a quality)."""

DEFAULT_QUALITY = 80
"""The JPEG/WebP quality when none is given."""

MEDIA_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def _quality_for(fmt: str, quality: int | None, field: str) -> int | None:
    """The quality to encode with: None for PNG, else ``quality`` or the default."""
    if fmt == "png":
        if quality is not None:
            raise ValueError(
                f"applies to jpeg and webp only; drop {field}, or set "
                f"{'screenshot_format' if field.startswith('screenshot') else 'format'} "
                "to jpeg or webp"
            )
        return None
    return DEFAULT_QUALITY if quality is None else quality


class Status(StrEnum):
    active = "active"
    closed = "closed"
    error = "error"
    timed_out = "timed_out"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _reject_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a whole number, not true/false")
    return value


Int = Annotated[int, BeforeValidator(_reject_bool)]
"""An int that refuses true/false (which pydantic would read as 1/0)."""


class SessionFields(_Body, BrowserOptionFields):
    """The session fields every session endpoint takes (start, observe, step, scrape).

    The browser options (``BrowserOptionFields``, options.py) apply when the call creates
    the session (no ``session_id``).
    """

    session_id: str | None = Field(default=None, pattern=SESSION_ID_PATTERN)
    keep_alive: bool = False
    # the bounds are checked by the validator below (its own words); the schema says them too
    session_timeout_minutes: Int | None = Field(
        default=None, json_schema_extra={"minimum": 1, "maximum": 29}
    )
    screenshot: bool | None = None
    screenshot_format: ImageFormat = "png"
    screenshot_quality: Int | None = Field(default=None, ge=0, le=100)
    # recordings (issue 20): a Playwright trace of the session, from now on
    record: bool = False

    @field_validator("screenshot_quality")
    @classmethod
    def _quality_with_lossy(cls, value: int | None, info: ValidationInfo) -> int | None:
        fmt = info.data.get("screenshot_format")  # absent: it failed, and says so itself
        return value if fmt is None else _quality_for(fmt, value, "screenshot_quality")

    @property
    def shot_options(self) -> ShotOptions:
        """How to encode the screenshot this request may ask for."""
        return ShotOptions(
            self.screenshot_format,
            _quality_for(self.screenshot_format, self.screenshot_quality, "screenshot_quality"),
        )

    @field_validator("session_timeout_minutes")
    @classmethod
    def _timeout_in_range(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None:
            return None
        cap = (info.context or {}).get("max_timeout_minutes", 29)
        if not 0 < value < 30:
            raise ValueError(f"must be more than 0 and less than 30 minutes (got {value})")
        if value > cap:
            raise ValueError(f"must be at most this server's cap of {cap} minutes (got {value})")
        return value


def check_url(value: str) -> str:
    """Only http(s), about:blank and data: URLs may be opened."""
    lowered = value.lower()
    if lowered == "about:blank" or lowered.startswith("data:"):
        return value
    parts = urlsplit(value)
    if parts.scheme.lower() in ("http", "https") and parts.netloc:
        return value
    raise ValueError("only http://, https://, about:blank and data: URLs can be opened")


Url = Annotated[str, AfterValidator(check_url)]
"""A URL a session may open (see :func:`check_url`)."""


class StartRequest(SessionFields):
    """Body (or query string) of ``POST /session/start``."""

    url: Url | None = None
    # profiles (issue 18): the new session's cookies and storage, given inline or loaded
    # from a saved profile (a new context, never a pooled one)
    storage_state: StorageState | None = None
    profile: ProfileRef | None = None

    @field_validator("storage_state", "profile")
    @classmethod
    def _new_session_only(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("session_id") is not None:
            raise ValueError("applies to a new session only; drop session_id to start one")
        if value is not None and info.field_name == "profile" and info.data.get("storage_state"):
            raise ValueError("send storage_state or profile, not both")
        return value


class ObserveRequest(SessionFields):
    """``POST /env/observe``: navigate to ``url`` if given, then describe the page.

    ``offset`` skips that many actions of the listing (paging past the cap); ``find`` lists
    only the actions whose name contains it (case-insensitive).
    """

    url: Url | None = None
    offset: Int = Field(default=0, ge=0, le=1_000_000)
    find: str | None = Field(default=None, min_length=1, max_length=200)
    # perception II (issue 22): the text from this character on (paging a long page's text)
    text_offset: Int = Field(default=0, ge=0, le=100_000_000)


class ScrapeRequest(SessionFields):
    """``POST /env/scrape``: the page (or ``selector``'s part) as Markdown, text or HTML."""

    url: Url | None = None
    selector: str | None = Field(default=None, min_length=1, max_length=1000)
    format: Literal["markdown", "text", "html"] = "markdown"


ACTION_ID_PATTERN = r"^[A-Z][1-9][0-9]{0,5}$"


class _StepFields(SessionFields):
    """What every step takes: the session fields, and how to answer a dialog it opens.

    Dialogs are dismissed unless the step says ``"dialog": "accept"`` (or sends a
    ``prompt_text``, which accepts a ``prompt()`` with that text).
    """

    dialog: Literal["accept", "dismiss"] | None = None
    prompt_text: str | None = Field(default=None, max_length=10_000)


class _Target(_StepFields):
    """An interaction names its element by ``id`` (last observation) or ``selector``."""

    id: str | None = Field(default=None, pattern=ACTION_ID_PATTERN)
    selector: str | None = Field(default=None, min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _one_target(self) -> _Target:
        if (self.id is None) == (self.selector is None):
            raise ValueError(
                'send exactly one of id (e.g. "B3" from the last observation) or selector'
            )
        return self


# perception II (issue 22): points in CSS px, and steps whose target is optional
def _reject_bool_number(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


Num = Annotated[float, BeforeValidator(_reject_bool_number)]
"""A number that refuses true/false."""


class Point(_Body):
    """A point in CSS px: from an element's top-left corner, or in the viewport."""

    x: Num = Field(ge=0, le=100_000)
    y: Num = Field(ge=0, le=100_000)


class Offset(_Body):
    """A distance in CSS px (right and down are positive)."""

    x: Num = Field(ge=-100_000, le=100_000)
    y: Num = Field(ge=-100_000, le=100_000)


class _MaybeTarget(_StepFields):
    """A step whose element is optional: ``id`` or ``selector``, or neither."""

    id: str | None = Field(default=None, pattern=ACTION_ID_PATTERN)
    selector: str | None = Field(default=None, min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _at_most_one_target(self) -> _MaybeTarget:
        if self.id is not None and self.selector is not None:
            raise ValueError('send one of id (e.g. "B3" from the last observation) or selector')
        return self


class _PointerTarget(_MaybeTarget):
    """click and hover: an element (``position`` within it, default its centre), or with
    no element a ``position`` in the viewport."""

    position: Point | None = None

    @model_validator(mode="after")
    def _element_or_point(self) -> _PointerTarget:
        if self.id is None and self.selector is None and self.position is None:
            raise ValueError(
                'send id (e.g. "B3" from the last observation) or selector, or a position '
                '{"x": …, "y": …} in the viewport with neither'
            )
        return self


class ClickStep(_PointerTarget):
    type: Literal["click"]


class FillStep(_Target):
    type: Literal["fill"]
    value: str = Field(max_length=100_000)
    press_enter: bool = False
    clear_before_fill: bool = True


class CheckStep(_Target):
    type: Literal["check"]
    value: bool = True


class HoverStep(_PointerTarget):
    type: Literal["hover"]


def _options(value: Any) -> Any:
    """An option (value or label), or a non-empty list of them for a multiple select."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be an option (a string), or a list of them for a multiple select")
    if not 1 <= len(value) <= 100:
        raise ValueError(f"must list 1 to 100 options (got {len(value)})")
    return value


OptionValues = Annotated[str | list[str], BeforeValidator(_options)]


class SelectStep(_Target):
    """A native ``<select>`` (a list of values for ``multiple``) or an ARIA listbox/combobox."""

    type: Literal["select_dropdown_option"]
    value: OptionValues


class PressKeyStep(_StepFields):
    type: Literal["press_key"]
    key: str = Field(min_length=1, max_length=100)


class GotoStep(_StepFields):
    type: Literal["goto"]
    url: Url


class HistoryStep(_StepFields):
    type: Literal["go_back", "go_forward", "reload"]


class ScrollStep(_MaybeTarget):
    """The window, or (with ``id``/``selector``) the nearest scrollable box around that element."""

    type: Literal["scroll_down", "scroll_up"]
    amount: Int | None = Field(default=None, gt=0, le=100_000)


class WaitStep(_StepFields):
    type: Literal["wait"]
    time_ms: Int = Field(ge=0, json_schema_extra={"maximum": 10_000})

    @field_validator("time_ms")
    @classmethod
    def _capped(cls, value: int, info: ValidationInfo) -> int:
        cap = (info.context or {}).get("max_wait_ms", 10_000)
        if value > cap:
            raise ValueError(f"must be at most {cap} ms on this server (got {value})")
        return value


class SwitchTabStep(_StepFields):
    type: Literal["switch_tab"]
    index: Int = Field(ge=0, le=1000)


class CloseTabStep(_StepFields):
    type: Literal["close_tab"]
    index: Int | None = Field(default=None, ge=0, le=1000)


# --- session files: the upload step (issue 19)
def _file_names(value: Any) -> Any:
    """One session file name, or a list of 1 to 100 of them."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(
        isinstance(v, str) and 0 < len(v) <= 1000 for v in value
    ):
        raise ValueError('must be a list of the session\'s file names, e.g. ["cv.pdf"]')
    if not 1 <= len(value) <= 100:
        raise ValueError(f"must list 1 to 100 files (got {len(value)})")
    return value


FileNames = Annotated[list[str], BeforeValidator(_file_names)]


class UploadFileStep(_Target):
    """Set ``files`` (names from ``GET /session/<id>/files``) on a file input, or answer the
    file chooser that a click on the target (a button, a label) opens."""

    type: Literal["upload_file"]
    files: FileNames


# perception II (issue 22): drag, and typing at the caret
class DragStep(_Target):
    """Drag ``id``/``selector`` onto ``to_id``/``to_selector``, or by ``offset``."""

    type: Literal["drag"]
    to_id: str | None = Field(default=None, pattern=ACTION_ID_PATTERN)
    to_selector: str | None = Field(default=None, min_length=1, max_length=1000)
    offset: Offset | None = None

    @model_validator(mode="after")
    def _one_destination(self) -> DragStep:
        given = [self.to_id, self.to_selector, self.offset]
        if sum(x is not None for x in given) != 1:
            raise ValueError(
                'send exactly one of to_id (e.g. "Z2"), to_selector, or offset {"x": …, "y": …}'
            )
        return self


class TypeStep(_MaybeTarget):
    """Type ``value`` at the caret: into the focused element, or ``id``/``selector`` (focused
    first, the caret at its end, if it does not have the focus). Nothing is cleared."""

    type: Literal["type"]
    value: str = Field(min_length=1, max_length=10_000)


StepRequest = Annotated[
    ClickStep
    | FillStep
    | CheckStep
    | HoverStep
    | SelectStep
    | PressKeyStep
    | GotoStep
    | HistoryStep
    | ScrollStep
    | WaitStep
    | SwitchTabStep
    | CloseTabStep
    | UploadFileStep
    | DragStep
    | TypeStep,
    Field(discriminator="type"),
]
STEP_ADAPTER: TypeAdapter[StepRequest] = TypeAdapter(StepRequest)
STEP_TYPES = (
    "click, fill, check, hover, select_dropdown_option, press_key, goto, go_back, go_forward, "
    "reload, scroll_down, scroll_up, wait, switch_tab, close_tab, upload_file, drag, type"
)


class CloseRequest(_Body):
    """Body (or query string) of ``POST /session/close``."""

    session_id: str = Field(pattern=SESSION_ID_PATTERN)


class ListQuery(_Body):
    """Query string of ``GET /sessions``."""

    status: Status | None = None


@dataclass(frozen=True)
class ShotOptions:
    """A screenshot's encoding: format, and quality for JPEG/WebP (None for PNG)."""

    format: ImageFormat = "png"
    quality: int | None = None


@dataclass
class Shot:
    """An encoded image, its size, and the page's size (larger when a full-page shot was
    clipped)."""

    data: bytes
    width: int
    height: int
    page_width: int
    page_height: int
    format: ImageFormat = "png"

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    @property
    def clipped(self) -> bool:
        return (self.width, self.height) != (self.page_width, self.page_height)


# --- session files (issue 19)
@dataclass
class FileBody:
    """A file (or a zip of them) to send: its bytes as they come, and its headers.

    ``close`` releases what the bytes come from (a file, a host's answer); the view calls
    it when the answer is done, sent or not.
    """

    chunks: Iterable[bytes]
    content_type: str
    headers: dict[str, str]
    length: int | None = None
    status: int = 200
    close: Callable[[], None] | None = None
    file: IO[bytes] | None = None  # the open file the bytes are (sent with wsgi.file_wrapper)
    start: int = 0  # where in ``file`` they begin


class PageInfo(BaseModel):
    """Where a page is, and whether its last load went wrong."""

    url: str
    title: str
    http_status: int | None = None
    error: str | None = None


class Box(TypedDict):
    """Where an element is, in viewport CSS px (the screenshot's pixels at scale 1). A
    TypedDict, not a model: 300 of them in an observation cost a third less to validate."""

    x: float
    y: float
    width: float
    height: float


def _unless(default: Any) -> Any:
    """A field left out of the JSON while it has its ``default`` (an observation lists
    hundreds of actions; an agent reads every field of each)."""
    return Field(default=default, exclude_if=lambda value: value == default)


class Action(BaseModel):
    """One interactive element of an observation.

    ``frame`` is the id of the iframe it is in (None: the page itself); ``selector`` is a
    CSS path within that frame (``host >> inner`` through shadow roots). ``covered``: a
    click at its centre would land on something else, which ``covered_by`` describes.
    ``box``: where it is in the viewport; ``scroll_container``: the id of the scrollable
    box it sits in (scroll that one to reach it). ``readonly``, ``invalid`` and
    ``description`` (its aria-describedby text and error message) are a form field's state;
    ``draggable`` and ``drop_target`` say it takes part in drag and drop. These last six are
    left out of the JSON while they are false or null.
    """

    id: str
    role: str
    name: str
    value: str | None = None
    enabled: bool
    selector: str
    frame: str | None = None
    in_viewport: bool = True
    covered: bool = False
    covered_by: str | None = None
    # perception II (issue 22): the fields after box are in the JSON only when set
    box: Box | None = None
    scroll_container: str | None = _unless(None)
    readonly: bool = _unless(False)
    invalid: bool = _unless(False)
    description: str | None = _unless(None)
    draggable: bool = _unless(False)
    drop_target: bool = _unless(False)


class FrameInfo(BaseModel):
    """An iframe of the page; ``observed``: its elements and text are in the observation."""

    id: str
    url: str
    name: str = ""
    parent: str | None = None
    cross_origin: bool = False
    observed: bool = True


class TabInfo(BaseModel):
    """A page of the session (tab); steps act on the ``current`` one."""

    index: int
    url: str
    title: str
    current: bool


class DialogInfo(BaseModel):
    """A JavaScript dialog (alert, confirm, prompt, beforeunload) and how it was answered."""

    type: str
    message: str
    answer: Literal["accepted", "dismissed"]
    prompt_text: str | None = None


class Viewport(BaseModel):
    """Where the window is scrolled (CSS px), its size, and the page's full size."""

    scroll_x: int
    scroll_y: int
    width: int
    height: int
    page_width: int
    page_height: int


# --- session files (issue 19)
FileState = Literal["in_progress", "complete", "cancelled", "too_large"]


class DownloadInfo(BaseModel):
    """A download a step started: the file's ``name`` in the session's files, its ``state``
    and its ``size`` in bytes so far."""

    name: str
    state: FileState
    size: int


class FileInfo(BaseModel):
    """One of a session's files (``GET /session/<id>/files``)."""

    name: str = Field(description="its name in the session (safe, unique); use it in URLs")
    size: int = Field(description="bytes (so far, for a download in progress)")
    sha256: str | None = Field(description="hex digest, once the file is complete")
    content_type: str
    source: Literal["upload", "download"]
    created_at: str
    state: FileState = Field(
        description="complete (uploads are); a download may be in_progress, cancelled "
        "(by the page, or below SESSIONS_MIN_FREE_DISK_MB) or too_large (past the session's "
        "SESSIONS_MAX_SESSION_FILES_MB); only complete files have bytes"
    )
    url: str | None = Field(default=None, description="a download's URL")


class FileList(BaseModel):
    """``GET /session/<id>/files``, and the files an upload stored (``POST``)."""

    session_id: str
    files: list[FileInfo]
    total_bytes: int = Field(description="bytes the session's files use")
    limit_bytes: int = Field(description="SESSIONS_MAX_SESSION_FILES_MB in bytes")


class Observation(PageInfo):
    """What an agent sees: the page, its interactive elements and its visible text.

    ``warnings`` says what the session's limits did since the last observation (popups
    closed, downloads refused or cancelled); ``popups_blocked`` counts the popups and new
    tabs closed in the session so far (``SESSIONS_MAX_PAGES_PER_SESSION``).
    ``text`` starts at character ``text_offset`` of the page's whole text (``text_length``
    characters); ``text_next_offset`` is where the next page of it starts (null: no more).
    ``busy``: the page says it is (``aria-busy``), or requests it started were still running
    when the settling ended.
    """

    screenshot: str | None = None
    # the encoding of ``screenshot`` (png, jpeg or webp); null when there is none
    screenshot_format: ImageFormat | None = None
    actions: list[Action]
    actions_total: int = 0
    actions_truncated: bool = False
    text: str
    text_truncated: bool
    frames: list[FrameInfo] = Field(default_factory=list)
    tabs: list[TabInfo] = Field(default_factory=list)
    dialog: DialogInfo | None = None
    warnings: list[str] = Field(default_factory=list)
    popups_blocked: int = 0
    # perception II (issue 22): text paging, and a page still busy
    text_offset: int = 0
    text_length: int = 0
    text_next_offset: int | None = None
    busy: bool = False
    # the window's scroll and the page's size (null when the page did not answer)
    viewport: Viewport | None = None
    # --- session files (issue 19)
    downloads: list[DownloadInfo] = Field(
        default_factory=list,
        description="the downloads this step (or observe's url) started, as they stand now",
    )
    content_type: str | None = Field(
        default=None,
        description='"application/pdf" when the URL or click led to a PDF (then `text` is '
        "its text as Markdown); null for a web page",
    )
    pages: int | None = Field(default=None, description="a PDF's page count")
    # live view (issue 20): the last time a person's input reached the page through a viewer
    human_input_at: str | None = None


class ScreenshotQuery(_Body):
    """Query string of ``GET /session/<id>/screenshot``: the viewport (or the full page, up
    to ``SESSIONS_MAX_SCREENSHOT_PIXELS``) as PNG, JPEG or WebP.

    ``touch=false``: the look does not count as access (the sessions page's thumbnails do
    not keep a session alive).
    """

    full_page: bool = False
    format: ImageFormat = "png"
    quality: Int | None = Field(default=None, ge=0, le=100)
    touch: bool = True

    @field_validator("quality")
    @classmethod
    def _quality_with_lossy(cls, value: int | None, info: ValidationInfo) -> int | None:
        fmt = info.data.get("format")
        return value if fmt is None else _quality_for(fmt, value, "quality")

    @property
    def shot_options(self) -> ShotOptions:
        return ShotOptions(self.format, _quality_for(self.format, self.quality, "quality"))


def _whole_ms(value: timedelta) -> timedelta:
    return timedelta(milliseconds=max(0, round(value.total_seconds() * 1000)))


DURATION_PATTERN = r"^P(?:\d+D)?(?:T(?:\d+H)?(?:\d+M)?(?:\d+(?:\.\d+)?S)?)?$"

# Not JSON Schema's "format": "duration": that is RFC 3339's, whose seconds have no fraction.
Duration = Annotated[
    timedelta,
    AfterValidator(_whole_ms),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "ISO 8601 duration, to the millisecond",
            "examples": ["PT2M11.2S"],
        }
    ),
]
"""A duration at millisecond precision; JSON shows it as ISO 8601 (``PT2M11.2S``)."""


RecordingState = Literal["recording", "truncated", "saved", "failed"]
"""Where a session's recording stands (see ``SessionResponse.recording``)."""


class SessionResponse(BaseModel):
    """One session as the API shows it."""

    session_id: str
    created_at: str
    last_accessed_at: str
    closed_at: str | None
    duration: Duration
    status: Status
    timeout_minutes: int
    keep_alive: bool
    error: str | None
    screenshot: str | None = None
    # the encoding of ``screenshot`` (png, jpeg or webp); null when there is none
    screenshot_format: ImageFormat | None = None
    page: PageInfo | None = None
    # ws(s):// URL to attach Playwright/Puppeteer over CDP (null when SESSIONS_CDP is off)
    cdp_url: str | None = None
    # per-session browser options (issue 18a): what the session was started with, no secrets
    options: SessionOptions | None = None
    # live view and recordings (issue 20)
    viewer_url: str | None = Field(
        default=None,
        description="the last viewer_url minted (POST /session/<id>/viewer), until it expires",
    )
    viewers: int = Field(default=0, description="live viewers watching now")
    recording: RecordingState | None = Field(
        default=None,
        description="recording: tracing now; truncated: stopped at SESSIONS_MAX_RECORDING_MB "
        "or the disk floor (kept so far); saved: the session ended and its trace is ready; "
        "failed: the trace could not be saved; null: not recorded (or deleted)",
    )
    # profiles (issue 18): the profile the session loaded, and whether its state was saved
    profile: SessionProfile | None = None


class ObserveResponse(BaseModel):
    session: SessionResponse
    observation: Observation


class StepResponse(BaseModel):
    session: SessionResponse
    success: bool
    message: str
    observation: Observation


class ScrapeResponse(BaseModel):
    session: SessionResponse
    success: bool
    message: str
    url: str
    title: str
    format: str
    content: str
    # --- session files (issue 19)
    content_type: str | None = None  # "application/pdf" when the URL was a PDF
    pages: int | None = None  # a PDF's page count


ALIASES = {"session_timeout": "session_timeout_minutes"}

_HINTS = {
    "session_id": "send the session_id string returned by POST /session/start, or null",
    "keep_alive": "send true or false",
    "session_timeout_minutes": "send a whole number of minutes from 1 to 29",
    "screenshot": "send true, false or null",
    "screenshot_format": "send png, jpeg or webp",
    "screenshot_quality": "send a whole number from 0 to 100 (jpeg and webp only)",
    "quality": "send a whole number from 0 to 100 (jpeg and webp only)",
    "status": "send one of: active, closed, error, timed_out",
    "url": "send an http(s)://, about:blank or data: URL",
    "id": "send an id like B3 from the session's last observation, or a selector instead",
    "format": "send markdown, text or html",
    "full_page": "send true or false",
    "touch": "send true or false",
    "time_ms": "send a whole number of milliseconds",
    "offset": "send a whole number of actions to skip, e.g. 300",
    "find": "send a few words of the element's name",
    "dialog": "send accept or dismiss",
    "prompt_text": "send the text to answer a prompt() with",
    "index": "send a tab index from observation.tabs (0 is the first tab)",
    # perception II (issue 22)
    "position": 'send {"x": …, "y": …} in CSS px (within the element, or the viewport)',
    "to_id": "send the id of the element to drop on, from the last observation",
    "to_selector": "send a CSS selector of the element to drop on",
    "text_offset": "send the text_next_offset of the last observation, e.g. 20000",
    # live view and recordings (issue 20)
    "record": "send true to record a Playwright trace of the session",
    "interactive": "send true (watch and drive) or false (watch only)",
    "ttl_seconds": "send a whole number of seconds from 1 to 86400",
    **PROFILE_HINTS,
    "files": 'send a list of names from GET /session/<id>/files, e.g. ["cv.pdf"]',
}

_HINTS.update(_OPTION_HINTS)  # per-session browser options (issue 18a)

# where one field name means different things in different models
_MODEL_HINTS = {
    ("ScreenshotQuery", "format"): "send png, jpeg or webp",
    ("DragStep", "offset"): 'send {"x": …, "y": …} in CSS px from where the drag starts',
    ("ProfileCreate", "name"): "send a name of 1 to 200 characters",  # profiles (issue 18)
    ("CookiesQuery", "url"): "send an http(s):// URL",
}

_PATTERN_MESSAGES = {
    "session_id": "must be 1 to 64 letters, digits, '-' or '_'",
    "id": "must be an action id like B3 or L12: a capital letter and a number",
    "profile.id": "must be a profile_id returned by POST /profiles",  # profiles (issue 18)
}

M = TypeVar("M", bound=BaseModel)


def merge_sources(query: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """Query string and body as one dict: aliases resolved, the body winning ties."""
    merged: dict[str, Any] = {}
    for source_name, source in (("query string", query), ("body", body)):
        resolved: dict[str, Any] = {}
        given_as: dict[str, str] = {}
        for key, value in source.items():
            name = ALIASES.get(key, key)
            if name in resolved and resolved[name] != value:
                alias = key if key != name else given_as[name]
                raise InvalidInput(
                    f"{alias}: is an alias of {name} and both are set in the {source_name} "
                    "with different values; send only one of them",
                    fields=[{"field": alias, "message": f"conflicts with {name}"}],
                )
            resolved[name] = value
            given_as[name] = key
        merged.update(resolved)
    return merged


def parse(model: type[M], data: Mapping[str, Any], context: dict[str, Any] | None = None) -> M:
    """Validate ``data`` into ``model``; a failure is an ``InvalidInput`` naming each field."""
    _no_unknown_fields(model, data)
    try:
        return model.model_validate(dict(data), context=context)
    except ValidationError as exc:
        raise invalid_input(exc, model) from None


def parse_step(data: Mapping[str, Any], context: dict[str, Any] | None = None) -> StepRequest:
    """Validate a step body (one action, chosen by ``type``)."""
    tag = data.get("type")
    member = next(
        (m for m in _STEP_MODELS if tag in m.model_fields["type"].annotation.__args__),  # type: ignore[union-attr]
        None,
    )
    if member is not None:
        _no_unknown_fields(member, data)
    try:
        return STEP_ADAPTER.validate_python(dict(data), context=context)
    except ValidationError as exc:
        raise invalid_input(exc, member, strip_tag=True) from None


MAX_LISTED_UNKNOWN = 10


def _no_unknown_fields(model: type[BaseModel], data: Mapping[str, Any]) -> None:
    """Refuse unknown fields before validating: a body with 100,000 stray keys costs a set
    lookup each and answers with the first few named, not an error per key."""
    if model.model_config.get("extra") != "forbid":
        return
    unknown = [key for key in data if key not in model.model_fields]
    if not unknown:
        return
    accepted = ", ".join(sorted({*model.model_fields, *_aliases_for(model)}))
    listed = unknown[:MAX_LISTED_UNKNOWN]
    more = len(unknown) - len(listed)
    fields: list[dict[str, Any]] = [
        {"field": _jsonable(key), "message": f"unknown field; accepted fields are: {accepted}"}
        for key in listed
    ]
    names = ", ".join(str(f["field"]) for f in fields) + (f" and {more} more" if more else "")
    extra: dict[str, Any] = {"fields": fields}
    if more:
        extra["unknown_fields_omitted"] = more
    raise InvalidInput(
        f"invalid request: {names}: unknown field{'s' if len(unknown) > 1 else ''}; "
        f"accepted fields are: {accepted}",
        **extra,
    )


_STEP_MODELS: tuple[type[BaseModel], ...] = (
    ClickStep,
    FillStep,
    CheckStep,
    HoverStep,
    SelectStep,
    PressKeyStep,
    GotoStep,
    HistoryStep,
    ScrollStep,
    WaitStep,
    SwitchTabStep,
    CloseTabStep,
    UploadFileStep,
    DragStep,
    TypeStep,
)


def invalid_input(
    exc: ValidationError, model: type[BaseModel] | None, strip_tag: bool = False
) -> InvalidInput:
    fields: list[dict[str, Any]] = []
    for err in exc.errors(include_url=False, include_context=False):
        loc = list(err["loc"])
        if strip_tag and loc:
            loc = loc[1:]  # the discriminator value pydantic puts first
        name = ".".join(str(part) for part in loc)
        if err["type"] in ("union_tag_not_found", "union_tag_invalid"):
            name = "type"
        elif not name:
            name = "id" if strip_tag else "body"
        if err["type"] == "extra_forbidden" and len(loc) > 1 and loc[0] in _NESTED_FIELDS:
            message = f"unknown field; {loc[0]} takes: {_NESTED_FIELDS[str(loc[0])]}"
        elif err["type"] == "extra_forbidden" and model is not None:
            accepted = ", ".join(sorted({*model.model_fields, *_aliases_for(model)}))
            message = f"unknown field; accepted fields are: {accepted}"
        elif err["type"] == "union_tag_not_found":
            message = f"is required: the action to run, one of {STEP_TYPES}"
        elif err["type"] == "union_tag_invalid":
            message = f"is not a known action; use one of {STEP_TYPES}"
        elif err["type"] == "missing":
            message = "is required"
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "string_pattern_mismatch":
                message = _PATTERN_MESSAGES.get(name, "has the wrong format")
            elif err["type"] in ("enum", "literal_error"):
                message = "is not a known value"
        hint = _MODEL_HINTS.get((model.__name__ if model else "", name)) or _HINTS.get(name)
        if hint is None and loc and loc[0] in _NESTED_FIELDS | _OPTION_HINTS.keys():
            hint = _HINTS.get(str(loc[0]))  # a list item or nested key of a browser option
        entry: dict[str, Any] = {"field": name, "message": message}
        if hint and err["type"] != "extra_forbidden":
            entry["fix"] = hint
        secret = bool(loc) and loc[0] in _NO_ECHO  # never echo credentials or header values
        if err["type"] not in ("missing", "union_tag_not_found") and not secret:
            entry["got"] = _jsonable(err.get("input"))
        fields.append(entry)
    summary = "; ".join(
        f"{f['field']}: {f['message']}" + (f" ({f['fix']})" if "fix" in f else "") for f in fields
    )
    return InvalidInput(f"invalid request: {summary}", fields=fields)


def _aliases_for(model: type[BaseModel]) -> list[str]:
    return [alias for alias, name in ALIASES.items() if name in model.model_fields]


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value if not isinstance(value, str) or len(value) <= 200 else value[:200] + "…"
    return repr(value)[:200]


class CdpTicketResponse(BaseModel):
    """``POST /session/<id>/cdp-ticket``: a one-use credential for the CDP WebSocket URL."""

    session_id: str
    ticket: str
    expires_at: str
    cdp_url: str


class SessionList(BaseModel):
    """``GET /sessions``: the caller's sessions, oldest first."""

    sessions: list[SessionResponse]


class PageSize(BaseModel):
    """The page's full size in CSS pixels (larger than the image when it was clipped)."""

    width: int
    height: int


class ScreenshotResponse(BaseModel):
    """``GET /session/<id>/screenshot`` with ``Accept: application/json``."""

    session_id: str
    screenshot: str = Field(description="the image, base64")
    format: ImageFormat = Field(description="the image's encoding")
    clipped: bool = Field(description="a full page past SESSIONS_MAX_SCREENSHOT_PIXELS was cut")
    page_size: PageSize


class HealthResponse(BaseModel):
    """``GET /healthz``: the process answers. Embedded mode says whether Chromium runs and
    how many sessions are active; a front says how many hosts it knows."""

    model_config = ConfigDict(extra="allow")

    status: Literal["ok"] = "ok"
    browser_running: bool | None = None
    active_sessions: int | None = None
    mode: Literal["front"] | None = None
    hosts: int | None = None


class ReadyResponse(BaseModel):
    """``GET /readyz``: ``ready`` (200) once Chromium answers a probe, else ``unavailable``
    (503) with the ``reason``."""

    status: Literal["ready", "unavailable"]
    reason: str


class FieldError(BaseModel):
    """One thing wrong with a request: which ``field``, what is wrong, how to ``fix`` it, and
    what was sent (``got``, cut to 200 characters)."""

    field: str
    message: str
    fix: str | None = None
    got: Any = None


class ErrorResponse(BaseModel):
    """Every error answer: ``{"error": "..."}``; a 400 names each wrong field in ``fields``."""

    error: str
    fields: list[FieldError] | None = None
    fields_omitted: int | None = Field(
        default=None, description="fields past the first 20 that were not listed"
    )
    unknown_fields_omitted: int | None = Field(
        default=None, description="unknown fields past the first 10 that were not named"
    )
    status: Status | None = Field(default=None, description="409: the session's status")
    page_not_responding: bool | None = Field(
        default=None, description="409: the page's main thread does not answer (step goto/reload)"
    )
    stale_id: str | None = Field(
        default=None, description="409: the action id that is not in the last observation"
    )
    # profiles (issue 18)
    holder: str | None = Field(
        default=None, description="409: the session that holds the profile with persist: true"
    )
    profile_id: str | None = Field(default=None, description="404 or 409: the profile")
    profiles_max: int | None = Field(
        default=None, description="409: SESSIONS_MAX_PROFILES_PER_PRINCIPAL, reached"
    )
    # profiles (issue 18) and session files (issue 19)
    limit: str | None = Field(
        default=None,
        description="413: the setting the body passed (SESSIONS_MAX_STATE_MB, "
        "SESSIONS_MAX_PROFILE_MB, SESSIONS_MAX_UPLOAD_MB, SESSIONS_MAX_SESSION_FILES_MB)",
    )
    # session files (issue 19)
    limit_bytes: int | None = Field(default=None, description="413: that limit, in bytes")


# ---------------------------------------------------------------- live view (issue 20)


class ViewerRequest(_Body):
    """``POST /session/<id>/viewer``: a URL a person opens to watch the session (and, if
    ``interactive``, to click and type in it), good once, for ``ttl_seconds``."""

    interactive: bool = False
    ttl_seconds: Int | None = Field(default=None, ge=1, le=86400)


class ViewerResponse(BaseModel):
    """A live view of the session: open ``viewer_url`` in a browser; no token needed."""

    session_id: str
    viewer_url: str = Field(
        description="the live page; its one-use ticket is in the fragment, never a token"
    )
    expires_at: str = Field(description="the ticket's end: the view closes then")
    interactive: bool = Field(description="true: the viewer may click and type")


# ---------------------------------------------------------------- recordings (issue 20)


class RecordingDeleted(BaseModel):
    """``DELETE /session/<id>/recording``: the trace is gone (tracing stopped if it ran)."""

    session_id: str
    deleted: bool = True


@dataclass
class RecordingStream:
    """``GET /session/<id>/recording``: the trace.zip as it streams from the host."""

    chunks: Iterable[bytes]
    size: int | None
    state: RecordingState
    filename: str
