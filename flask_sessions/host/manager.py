"""The session registry and lifecycle: start, read, close, list, reap.

:class:`SessionManager` is the facade the views call from Flask threads. Each public
method hands one coroutine to the runtime loop, where the registry lives, so the registry
needs no locks: only the loop thread reads or writes it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from playwright.async_api import Browser
from playwright.async_api import Error as PlaywrightError

from flask_sessions.clock import Clock
from flask_sessions.config import Settings
from flask_sessions.errors import (
    BrowserUnavailable,
    CapacityReached,
    InvalidInput,
    LowMemory,
    OperationTimeout,
    SessionNotActive,
    SessionNotFound,
    SessionsError,
)
from flask_sessions.host import pdfview
from flask_sessions.host.files import FILES_OFF, FilesRoot, SessionFiles
from flask_sessions.host.limits import BrowserGuard, run_watchdog
from flask_sessions.host.live import ContextPlan, LiveSession, open_live
from flask_sessions.host.options import plan_context
from flask_sessions.host.pool import WarmPool, available_memory_mb
from flask_sessions.host.profiles import ProfileRoom
from flask_sessions.host.reaper import DeadlineQueue, EndedQueue, Reaper, expiry_reason
from flask_sessions.host.recording import (
    Recordings,
    observe_title,
    scrape_title,
    start_title,
    step_title,
)
from flask_sessions.host.runtime import BrowserRuntime, target_gone, wrap_playwright_error
from flask_sessions.options import SessionOptions
from flask_sessions.page import capture
from flask_sessions.page import ops as page_ops
from flask_sessions.page.state import NOT_RESPONDING
from flask_sessions.profile_schemas import SessionProfile
from flask_sessions.schemas import (
    FileInfo,
    ImageFormat,
    Observation,
    ObserveRequest,
    ObserveResponse,
    PageInfo,
    RecordingState,
    ScrapeRequest,
    ScreenshotQuery,
    SessionFields,
    SessionResponse,
    Shot,
    StartRequest,
    Status,
    StepRequest,
    StepResponse,
)
from flask_sessions.timefmt import iso_datetime

if TYPE_CHECKING:
    from flask_sessions.host.cdp import CdpProxy

log = logging.getLogger("flask_sessions")

PROBE_TIMEOUT_SECONDS = 2.0  # readiness: a context round trip must finish within this
PROBE_CACHE_SECONDS = 1.0  # probes closer together than this share one round trip
RELAUNCH_BACKOFF_SECONDS = 5.0  # readiness retries a failed launch at most this often

T = TypeVar("T")


@dataclass
class SessionRecord:
    """What the server knows of one session, live or ended."""

    session_id: str
    principal: str
    created_at: datetime
    last_accessed_at: datetime
    timeout_minutes: int
    keep_alive: bool
    status: Status = Status.active
    error: str | None = None
    closed_at: datetime | None = None
    # the page as last seen by an operation (lists show it without driving the page)
    page: PageInfo | None = None
    options: SessionOptions | None = None  # the browser options it started with (18a)
    # live view and recordings (issue 20: viewer.py, recording.py)
    viewer_url: str | None = None
    viewer_expires: datetime | None = None
    viewers: int = 0
    human_input_at: datetime | None = None
    recording: RecordingState | None = None
    # profiles (issue 18): the profile this session loaded, and what became of its state
    profile: SessionProfile | None = None

    @property
    def idle_deadline(self) -> datetime:
        return self.last_accessed_at + timedelta(minutes=self.timeout_minutes)

    def to_response(
        self, now: datetime, screenshot: str | None = None, shot_format: ImageFormat = "png"
    ) -> SessionResponse:
        """The record as the API shows it; ``screenshot`` is already base64."""
        end = self.closed_at or now
        return SessionResponse(
            session_id=self.session_id,
            created_at=iso_datetime(self.created_at),
            last_accessed_at=iso_datetime(self.last_accessed_at),
            closed_at=iso_datetime(self.closed_at) if self.closed_at else None,
            duration=max(timedelta(0), end - self.created_at),
            status=self.status,
            timeout_minutes=self.timeout_minutes,
            keep_alive=self.keep_alive,
            error=self.error,
            screenshot=screenshot,
            screenshot_format=shot_format if screenshot else None,
            options=self.options,
            # live view and recordings (issue 20)
            viewer_url=self.viewer_url
            if self.status is Status.active and self.viewer_expires and now < self.viewer_expires
            else None,
            viewers=self.viewers,
            recording=self.recording,
            profile=self.profile.model_copy() if self.profile is not None else None,
        )


class SessionManager:
    """Registry + lifecycle. Sync methods are for Flask threads; ``_``-methods run on the loop."""

    def __init__(
        self,
        settings: Settings,
        runtime: BrowserRuntime,
        clock: Clock,
        events: Callable[[str], None] | None = None,
        id_prefix: str = "",
    ) -> None:
        self.settings = settings
        self.id_prefix = id_prefix  # a host's id: fronts route a session by its id's prefix
        # Called on the loop with each record that changed (start, access, end): a host
        # writes it through to the shared registry.
        self.on_record: Callable[[SessionRecord], None] | None = None
        self.runtime = runtime
        self.clock = clock
        self._events = events or (lambda _event: None)
        self._status_counts = dict.fromkeys((s.value for s in Status), 0)
        self._starting_for: dict[str, int] = {}  # per principal, for the per-principal cap
        self._probe: tuple[float, bool, str] | None = None  # (when, ready, reason)
        self._launching = False
        self._records: dict[str, SessionRecord] = {}
        self._live: dict[str, LiveSession] = {}
        self._by_principal: dict[str, dict[str, None]] = {}  # insertion-ordered sets
        self._starting = 0  # sessions being created: they count against capacity
        self._deadlines = DeadlineQueue()  # idle and lifetime deadlines of active sessions
        self._ended = EndedQueue()  # ended sessions, oldest first, for the retention purge
        self._closing: set[asyncio.Task[None]] = set()  # contexts closing in the background
        self.pool = WarmPool(
            settings.warm_pool, self._open_for_pool, self._room, settings.pool_min_free_mb
        )
        self._shut_down = False
        self.reaper = Reaper(self, settings.reaper_interval_seconds)
        runtime.on_browser_lost = self._on_browser_lost
        self._reaper_started = False
        self._start_lock = threading.Lock()
        self.cdp: CdpProxy | None = None  # the per-session CDP WebSocket, when SESSIONS_CDP is on
        self.guard: BrowserGuard | None = None  # the limits' hold on the current Chromium
        self._guard_lock: asyncio.Lock | None = None
        self.recordings = Recordings(self)  # Playwright traces of recorded sessions (issue 20)
        self.profiles = ProfileRoom(settings, clock)  # profiles (issue 18)
        self.files = FilesRoot(settings, clock)  # session files (issue 19)

    # ------------------------------------------------------------ facade

    def start(self, principal: str, request: StartRequest) -> SessionResponse:
        """Create a session, or fetch (and touch) ``request.session_id``."""
        return self._run(self._start(principal, request))

    def observe(self, principal: str, request: ObserveRequest) -> ObserveResponse:
        """Navigate if asked, then describe the page (one-shot without ``session_id``)."""
        return self._run(self._observe(principal, request))

    def step(self, principal: str, request: StepRequest) -> StepResponse:
        """Run one action and observe the result."""
        return self._run(self._step(principal, request))

    def scrape(self, principal: str, request: ScrapeRequest) -> tuple[SessionResponse, Any]:
        """The page (or its part) as the format asked, with its title and URL; Markdown is
        converted in the page, and the caller finishes it (off the loop: see ``convert``)."""
        return self._run(self._scrape(principal, request))

    def screenshot(self, principal: str, session_id: str, query: ScreenshotQuery) -> Shot:
        """The session's page as PNG, JPEG or WebP (a full page clipped to
        SESSIONS_MAX_SCREENSHOT_PIXELS); counts as access unless ``query.touch`` is false (a
        viewer's look)."""
        return self._run(self._screenshot_only(principal, session_id, query))

    def get(self, principal: str, session_id: str) -> SessionResponse:
        """A session's record; reading it does not count as access."""
        return self._run(self._get(principal, session_id))

    def close(self, principal: str, session_id: str) -> SessionResponse:
        """Close a session; closing an ended one returns its record unchanged."""
        return self._run(self._close(principal, session_id))

    def list_sessions(self, principal: str, status: Status | None = None) -> list[SessionResponse]:
        """The principal's sessions, oldest first, optionally only those in ``status``."""
        return self._run(self._list(principal, status))

    def on_session(
        self,
        principal: str,
        session_id: str,
        doing: str,
        work: Callable[[SessionRecord, LiveSession], Awaitable[T]],
        touch: bool = True,
    ) -> T:
        """Run a room's ``work`` on the principal's live session, under its lock, with the
        usual answers (404 not theirs, 409 ended, Playwright errors mapped); an access
        unless ``touch`` is false."""
        request = SessionFields(session_id=session_id)
        return self._run(self._with_session(principal, request, doing, work, touch))[1]

    # session files (issue 19): the views do the I/O in their own thread
    def session_files(self, principal: str, session_id: str, touch: bool) -> SessionFiles:
        """The principal's active session's files (404 / 409 as for any call)."""
        return self._run(self._session_files(principal, session_id, touch))

    def delete_file(self, principal: str, session_id: str, name: str) -> FileInfo:
        """Delete one of the session's files (a running download is cancelled)."""

        async def delete() -> FileInfo:
            files = await self._session_files(principal, session_id, True)
            return files.delete(name)

        return self._run(delete())

    async def _session_files(self, principal: str, session_id: str, touch: bool) -> SessionFiles:
        record = self._lookup(principal, session_id)
        live = self._require_active(record)
        if live.files is None or not self.files.enabled:
            raise InvalidInput(FILES_OFF)
        if touch:
            self._touch(record, self.clock())
        return live.files

    def ensure_started(self, launch_browser: bool = False) -> None:
        """Start the loop, the reaper and the CDP server; launch Chromium now if asked."""
        if self.runtime.forked():
            self.reset_after_fork()
        with self._start_lock:
            if not self._reaper_started:
                self.files.start()  # session files (issue 19): sweep what dead hosts left
                if self.cdp is not None:  # listening before any record names its cdp_url
                    self.runtime.submit(self.cdp.start(), self.settings.operation_timeout_seconds)
                self.runtime.spawn(self.reaper.run())
                if self.settings.max_page_memory_mb > 0:
                    self.runtime.spawn(
                        run_watchdog(
                            lambda: self.guard,
                            self.settings.max_page_memory_mb,
                            self.settings.watchdog_interval_seconds,
                        )
                    )
                self._reaper_started = True
        if launch_browser:
            self.runtime.submit(self._warm_up(), self.settings.operation_timeout_seconds)

    async def _warm_up(self) -> None:
        await self.runtime.browser()
        self.pool.refill_soon()

    def load(self) -> dict[str, int]:
        """Capacity, sessions, free slots and the soonest expiry (s): for placement."""
        return self._run(self._load())

    async def _load(self) -> dict[str, int]:
        return self.load_now()

    def load_now(self) -> dict[str, int]:
        """:meth:`load`, on the loop."""
        active = self.active_count
        free = self.settings.max_sessions - active - self._starting - len(self._closing)
        return {
            "capacity": self.settings.max_sessions,
            "active": active,
            "free": max(0, free),
            "retry_after": self._retry_after(self.clock()),
        }

    def status_counts(self) -> dict[str, int]:
        """Sessions this process knows (ended ones until purged), by status."""
        return dict(self._status_counts)

    def readiness(self) -> tuple[bool, str]:
        """Whether Chromium runs and opens a context within 2 s, and if not, why.

        A probe that finds no browser starts a launch in the background (so a readiness
        gate in front of a lazily launched server does not wait forever) and answers at
        once. Probes less than a second apart share one round trip.
        """
        if self._shut_down:
            return False, "the server is shutting down"
        now = time.monotonic()
        if self._probe is not None and now - self._probe[0] < PROBE_CACHE_SECONDS:
            return self._probe[1], self._probe[2]
        if not self.runtime.browser_connected:
            self._launch_in_background()
            ready, reason = False, self.runtime.launch_error or "Chromium is starting"
        else:
            try:
                self._run(self._probe_context(), timeout=PROBE_TIMEOUT_SECONDS)
                ready, reason = True, "Chromium answers"
            except OperationTimeout:
                ready, reason = False, "Chromium did not open a context within 2 s"
            except SessionsError as exc:
                ready, reason = False, exc.message
        self._probe = (time.monotonic(), ready, reason)
        return ready, reason

    def _launch_in_background(self) -> None:
        failed_at = self.runtime.launch_failed_at
        if self._launching or (
            failed_at is not None and time.monotonic() - failed_at < RELAUNCH_BACKOFF_SECONDS
        ):
            return
        self._launching = True
        self.ensure_started()

        async def launch() -> None:
            try:
                await self._warm_up()
            except SessionsError:
                pass  # logged by the runtime; readiness reports runtime.launch_error
            finally:
                self._launching = False

        self.runtime.spawn(launch())

    async def _probe_context(self) -> None:
        browser = await self.runtime.browser()
        try:
            context = await browser.new_context()
            await context.close()
        except PlaywrightError as exc:
            raise BrowserUnavailable(f"Chromium failed a probe: {exc}") from None

    def shutdown(self, timeout: float = 20.0) -> None:
        """Close every session's context, then the browser and the loop. Idempotent."""
        if self._shut_down:
            return
        self._shut_down = True
        self.runtime.begin_shutdown()
        if self.runtime.loop_started:
            try:
                self.runtime.submit(self._close_all("server shut down"), timeout)
            except Exception:  # shutdown goes on
                log.exception("flask_sessions: closing sessions at shutdown failed")
        self.runtime.stop(timeout)

    def reset_after_fork(self) -> None:
        """In a forked child (gunicorn ``--preload``): start over with nothing.

        The parent's contexts, pool and reaper task live in the parent's Chromium and loop;
        the child launches its own at first use. Sessions never cross a fork (they are
        the parent's), so the child's registry starts empty.
        """
        self.runtime.reset_after_fork()
        self._records.clear()
        self._live.clear()
        self._by_principal.clear()
        self._status_counts = dict.fromkeys((s.value for s in Status), 0)
        self._starting, self._starting_for = 0, {}
        self._deadlines, self._ended = DeadlineQueue(), EndedQueue()
        self._closing = set()
        self.pool = WarmPool(
            self.settings.warm_pool, self._open_for_pool, self._room, self.settings.pool_min_free_mb
        )
        self.reaper = Reaper(self, self.settings.reaper_interval_seconds)
        self._reaper_started, self._start_lock = False, threading.Lock()
        self._probe, self._launching = None, False
        self.guard, self._guard_lock = None, None
        self.recordings = Recordings(self)  # this process's own traces folder (issue 20)
        self.profiles = ProfileRoom(self.settings, self.clock)
        self.files.reset_after_fork()

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        self.ensure_started()
        return self.runtime.submit(coro, timeout or self.settings.operation_timeout_seconds)

    # ------------------------------------------------------- loop side

    @property
    def active_count(self) -> int:
        return len(self._live)

    def live(self, session_id: str) -> LiveSession | None:
        return self._live.get(session_id)

    def _lookup(self, principal: str, session_id: str) -> SessionRecord:
        record = self._records.get(session_id)
        if record is None or record.principal != principal:
            raise SessionNotFound(
                f"no session {session_id!r} for you; it never existed, belongs to someone "
                "else, or ended long enough ago to be purged. Start one with POST /session/start"
            )
        return record

    def _require_active(self, record: SessionRecord) -> LiveSession:
        live = self._live.get(record.session_id)
        if record.status is not Status.active or live is None:
            reason = f" ({record.error})" if record.error else ""
            raise SessionNotActive(
                f"session {record.session_id} is {record.status.value}{reason}; "
                "start a new one with POST /session/start",
                status=record.status.value,
            )
        return live

    async def _acquire(
        self, principal: str, request: SessionFields, touch: bool = True
    ) -> tuple[SessionRecord, LiveSession, bool]:
        """The session a request names (touched, if ``touch``), or a new one; True if it is
        one-shot.

        A request without ``session_id`` gets a fresh session; unless it is a start or
        asks ``keep_alive``, that session is closed when the request is done.
        """
        now = self.clock()
        if request.session_id is None:
            record, live = await self._create(principal, request, now)
            if isinstance(request, StartRequest):
                return record, live, False
            # observe/step/scrape: keep_alive means "not closed after this call"; the new
            # session then has the usual idle timeout.
            record.keep_alive = False
            return record, live, not request.keep_alive
        record = self._lookup(principal, request.session_id)
        live = self._require_active(record)
        if "keep_alive" in request.model_fields_set:
            record.keep_alive = request.keep_alive
        if request.session_timeout_minutes is not None:
            record.timeout_minutes = request.session_timeout_minutes
        if touch:
            self._touch(record, now)
        return record, live, False

    async def _with_session(
        self,
        principal: str,
        request: SessionFields,
        doing: str,
        work: Callable[[SessionRecord, LiveSession], Awaitable[T]],
        touch: bool = True,
    ) -> tuple[SessionRecord, T]:
        """Run ``work`` on the session under its lock; 409 if it ended meanwhile."""
        if request.record:  # recordings (issue 20): a full disk refuses before anything starts
            self.recordings.check_can_record()
        record, live, one_shot = await self._acquire(principal, request, touch)
        try:
            if request.record:
                await self.recordings.begin(record, live)
            async with live.lock:
                self._require_active(record)  # closed or reaped while we waited
                try:
                    return record, await work(record, live)
                except SessionNotActive:
                    self._require_active(record)  # ended mid-call: the standard 409
                    raise
                except PlaywrightError as exc:
                    self._require_active(record)  # it ended under us: 409, not 503
                    connected = self.runtime.browser_connected
                    if connected and (live.page.is_closed() or target_gone(exc)):
                        # the page crashed (perhaps stopped by the memory watchdog) before
                        # its crash event arrived: the session ends now, and says why (409)
                        await self._end(record, Status.error, self._crash_reason(record))
                        self._require_active(record)
                    raise wrap_playwright_error(exc, doing, connected) from None
                finally:
                    if record.status is Status.active:  # a hung page shows on the record
                        record.error = NOT_RESPONDING if live.state.hung else None
        finally:
            if one_shot:
                await self._end(record, Status.closed, None, wait=False)

    async def _start(self, principal: str, request: StartRequest) -> SessionResponse:
        async def work(record: SessionRecord, live: LiveSession) -> SessionResponse:
            info = None
            if request.url is not None:
                await page_ops.open_url(live.state, request.url, self.settings)
                info = await page_ops.page_info(live.state)
            elif request.screenshot:
                await live.state.check_responsive()
            options = request.shot_options
            shot = (
                await capture.screenshot(live.state, self.settings, options)
                if request.screenshot
                else None
            )
            response = record.to_response(self.clock(), shot, options.format)
            response.page = info
            if info is not None:
                record.page = info
            return response

        grouped = self.recordings.grouped(start_title(request), work)  # recordings (issue 20)
        return (await self._with_session(principal, request, "starting the session", grouped))[1]

    async def _observe(self, principal: str, request: ObserveRequest) -> ObserveResponse:
        async def work(record: SessionRecord, live: LiveSession) -> Observation:
            since = None
            before = pdfview.mark(live)  # session files (issue 19)
            action = None
            if request.url is not None:  # settled by observe: one look when it is quiet
                since = await page_ops.open_url(
                    live.state, request.url, self.settings, settled=False
                )
                action = await pdfview.after_action(live, self.settings, before)
            else:
                await live.state.check_responsive()
            observation = await page_ops.observe(
                live.state,
                self.settings,
                request.shot_options if request.screenshot else None,
                offset=request.offset,
                find=request.find,
                since=since,
                text_offset=request.text_offset,  # issue 22
            )
            observation = pdfview.apply(
                _with_warnings(observation, live),
                action,
                pdfview.current_pdf(live),
                live,
                self.settings,
            )
            record.page = _page_of(observation)
            return observation

        grouped = self.recordings.grouped(observe_title(request), work)  # recordings (issue 20)
        record, observation = await self._with_session(principal, request, "observing", grouped)
        observation.human_input_at = _iso(record.human_input_at)  # live view (issue 20)
        return ObserveResponse(session=record.to_response(self.clock()), observation=observation)

    async def _step(self, principal: str, request: StepRequest) -> StepResponse:
        async def work(record: SessionRecord, live: LiveSession) -> StepResponse:
            before = pdfview.mark(live)  # session files (issue 19)
            success, message = await page_ops.run_step(live.state, request, self.settings)
            action = await pdfview.after_action(live, self.settings, before)
            success, message = action.step_outcome(success, message)
            observation = await page_ops.observe_after_step(
                live.state, self.settings, request.shot_options if request.screenshot else None
            )
            observation = pdfview.apply(
                _with_warnings(observation, live),
                action,
                pdfview.current_pdf(live),
                live,
                self.settings,
            )
            record.page = _page_of(observation)
            if success and live.state.hung:
                success, message = False, f"{message}; then {NOT_RESPONDING}"
            return StepResponse(
                session=record.to_response(self.clock()),
                success=success,
                message=message,
                observation=observation,
            )

        grouped = self.recordings.grouped(step_title(request), work)  # recordings (issue 20)
        record, response = await self._with_session(principal, request, "running the step", grouped)
        response.observation.human_input_at = _iso(record.human_input_at)  # live view (issue 20)
        response.session = record.to_response(self.clock())  # one-shot: now closed; error
        return response

    async def _scrape(self, principal: str, request: ScrapeRequest) -> tuple[SessionResponse, Any]:
        async def work(record: SessionRecord, live: LiveSession) -> Any:
            before = pdfview.mark(live)  # session files (issue 19)
            if request.url is not None:
                await page_ops.open_url(live.state, request.url, self.settings)
                await pdfview.after_action(live, self.settings, before)
            else:
                await live.state.check_responsive()
            view = pdfview.current_pdf(live)
            if view is not None:  # the URL is a PDF: its text, converted by the caller
                record.page = PageInfo(url=view.url, title=view.title, error=view.error)
                return view, record.page
            source = await page_ops.scrape_source(
                live.state, request.selector, self.settings, request.format
            )
            if source is None:
                info = await page_ops.page_info(live.state)
            else:  # the page's title and URL came with the source: no second round trip
                tab = live.state.tab
                info = PageInfo(
                    url=source["url"],
                    title=source["title"],
                    http_status=tab.http_status,
                    error=tab.error,
                )
            record.page = info
            return source, info

        grouped = self.recordings.grouped(scrape_title(request), work)  # recordings (issue 20)
        record, result = await self._with_session(principal, request, "scraping", grouped)
        return record.to_response(self.clock()), result

    async def _screenshot_only(
        self, principal: str, session_id: str, query: ScreenshotQuery
    ) -> Shot:
        options = query.shot_options

        async def work(record: SessionRecord, live: LiveSession) -> Shot:
            await live.state.check_responsive()
            if record.page is None or record.page.url != live.page.url:
                # the page moved since an operation last looked (a CDP client, a link the
                # page followed): one title read now, so lists show where it is
                record.page = await page_ops.page_info(live.state)
            if query.full_page:
                return await capture.full_page_screenshot(live.state, self.settings, options)
            data = base64.b64decode(await capture.screenshot(live.state, self.settings, options))
            width, height = capture.image_size(data)  # a session's own viewport and scale
            return Shot(data, width, height, width, height, options.format)

        request = SessionFields(session_id=session_id)
        doing = "taking the screenshot"
        return (await self._with_session(principal, request, doing, work, query.touch))[1]

    async def _create(
        self, principal: str, request: SessionFields, now: datetime
    ) -> tuple[SessionRecord, LiveSession]:
        if self._shut_down:
            raise SessionNotActive("the server is shutting down; retry against a running one")
        self._check_free_memory()
        self._check_principal_cap(principal, now)
        self._starting_for[principal] = self._starting_for.get(principal, 0) + 1
        session_id = self.id_prefix + secrets.token_urlsafe(16)
        loaded = None
        options = request.browser_options()  # browser options (18a): a context of its own
        plan: ContextPlan | None = None
        try:
            # profiles (issue 18): a state to load takes a new context, never a pooled one
            if isinstance(request, StartRequest):
                loaded = await self.profiles.prepare(principal, session_id, request)
            if options is not None:
                plan = await plan_context(options, self.runtime)
            if loaded is not None:
                plan = plan or ContextPlan()
                plan.kwargs["storage_state"] = loaded.storage_state
            pooled = plan is None and self.runtime.browser_connected
            live = self.pool.take() if pooled else None
            if live is None:
                try:
                    live = await self._open_counted(now, plan)
                except CapacityReached:
                    self._events("refused:capacity")
                    raise
        except BaseException:
            if plan is not None:
                await plan.run_cleanup()
            await self.profiles.abandon(session_id)
            raise
        finally:
            left = self._starting_for.pop(principal) - 1
            if left:
                self._starting_for[principal] = left
        record = SessionRecord(
            session_id=session_id,
            principal=principal,
            created_at=now,
            last_accessed_at=now,
            timeout_minutes=request.session_timeout_minutes
            or self.settings.default_timeout_minutes,
            keep_alive=request.keep_alive,
            options=options.view() if options is not None else None,
            profile=loaded.use if loaded is not None else None,
        )
        self._register(record, live)
        self._events("started")
        log.info(
            "flask_sessions: session %s started for %s",
            session_id,
            principal,
            extra={"event": "started", "session_id": session_id, "principal": principal},
        )
        return record, live

    def _check_principal_cap(self, principal: str, now: datetime) -> None:
        """429 when ``principal`` holds SESSIONS_MAX_SESSIONS_PER_PRINCIPAL sessions."""
        cap = self.settings.max_sessions_per_principal
        if cap is None:
            return
        mine = [sid for sid in self._by_principal.get(principal, {}) if sid in self._live]
        if len(mine) + self._starting_for.get(principal, 0) < cap:
            return
        self._events("refused:principal")
        raise CapacityReached(
            f"you have {cap} sessions open, the most one caller may have on this server "
            "(SESSIONS_MAX_SESSIONS_PER_PRINCIPAL); close one (POST /session/close) or retry "
            "after Retry-After seconds",
            retry_after=self._retry_after(now, mine),
        )

    async def _open_counted(self, now: datetime, plan: ContextPlan | None = None) -> LiveSession:
        """A context+page for a start when the pool had none ready (or the start has a
        ``plan`` of its own: browser options), within capacity.

        With room to spare it opens its own, in parallel with any pool refill (on two
        cores, waiting for the refill's one-at-a-time pipeline halves throughput).
        ``options`` (extra ``new_context`` arguments) never take a pooled context.
        """

        def full() -> bool:
            return self._room() <= 0

        if full() and plan is not None and len(self.pool):
            await self.pool.shrink(len(self.pool) - 1)  # a default context makes room
        if full():
            # The slot may be held by work about to finish: a context the pool is making
            # (take it), or contexts still closing (wait the few ms for them).
            pooled = await self.pool.take_waiting() if plan is None else None
            if pooled is not None:
                return pooled
            if self._closing:
                await asyncio.gather(*self._closing, return_exceptions=True)
        if full():
            raise CapacityReached(
                f"all {self.settings.max_sessions} session slots are in use; close a session "
                "(POST /session/close) or retry after Retry-After seconds",
                retry_after=self._retry_after(now),
            )
        self._starting += 1
        try:
            live = await self._open_for_pool(plan)
        except PlaywrightError as exc:
            raise wrap_playwright_error(
                exc, "creating the session's page", self.runtime.browser_connected
            ) from None
        finally:
            self._starting -= 1
        self.pool.refill_soon()  # e.g. the first start, which launched the browser
        return live

    async def _open_for_pool(self, plan: ContextPlan | None = None) -> LiveSession:
        browser = await self.runtime.browser()
        guard = await self._guard_for(browser)
        files = self.files  # session files (issue 19)
        return await open_live(
            browser, self.settings, self.runtime.explain_egress, guard, files, plan
        )

    async def _guard_for(self, browser: Browser) -> BrowserGuard:
        """The limits' hold on ``browser`` (made once per launch)."""
        if self.guard is not None and self.guard.browser is browser:
            return self.guard
        if self._guard_lock is None:
            self._guard_lock = asyncio.Lock()
        async with self._guard_lock:
            if self.guard is None or self.guard.browser is not browser:
                self.guard = await BrowserGuard.attach(browser)
                self.files.router.attach(self.guard)  # downloads into session files
            return self.guard

    def _check_free_memory(self) -> None:
        """503 with Retry-After below ``SESSIONS_MIN_FREE_MEMORY_MB`` of available memory."""
        floor = self.settings.min_free_memory_mb
        free = available_memory_mb() if floor > 0 else None
        if free is not None and free < floor:
            raise LowMemory(
                f"the server is low on memory ({free:.0f} MB available, below its floor of "
                f"{floor:g} MB, SESSIONS_MIN_FREE_MEMORY_MB); no new session for now: "
                "retry after Retry-After seconds, or close sessions you no longer need",
                retry_after=LOW_MEMORY_RETRY_AFTER,
            )

    def _room(self) -> int:
        """How many more contexts capacity allows (the pool's own count included)."""
        used = self.active_count + self._starting + len(self._closing) + self.pool.reserved
        return self.settings.max_sessions - used

    def _register(self, record: SessionRecord, live: LiveSession) -> None:
        session_id = record.session_id
        self._records[session_id] = record
        self._live[session_id] = live
        self._status_counts[record.status.value] += 1
        self._by_principal.setdefault(record.principal, {})[session_id] = None
        lifetime = timedelta(minutes=self.settings.max_lifetime_minutes)
        self._deadlines.push(record.created_at + lifetime, session_id)
        if not record.keep_alive:
            self._deadlines.push(record.idle_deadline, session_id)
        # the session ends when its current tab crashes (state) or its first page does, or
        # the memory watchdog stopped one of its renderers (limits)
        live.state.on_crash = lambda: self._on_page_crash(session_id, True)
        live.limits.on_crash = lambda main: self._on_page_crash(session_id, main)
        if live.limits.crashed:  # it crashed between the hand-over and now
            self._on_page_crash(session_id, True)
        self._changed(record)

    def active_record(self, principal: str, session_id: str) -> SessionRecord:
        """The principal's active session (loop side): 404 if not theirs, 409 if ended."""
        record = self._lookup(principal, session_id)
        self._require_active(record)
        return record

    def touch(self, session_id: str, min_interval: timedelta = timedelta(seconds=1)) -> None:
        """Count an access from outside a request (CDP traffic), at most once a ``min_interval``

        so a chatty client does not push a heap entry per message.
        """
        record = self._records.get(session_id)
        if record is None or record.status is not Status.active:
            return
        now = self.clock()
        if now - record.last_accessed_at >= min_interval:
            self._touch(record, now)

    def _touch(self, record: SessionRecord, now: datetime) -> None:
        """Count an access: move the idle deadline (the old heap entry goes stale)."""
        record.last_accessed_at = max(record.last_accessed_at, now)
        if not record.keep_alive:
            self._deadlines.push(record.idle_deadline, record.session_id)
        self._changed(record)

    def _changed(self, record: SessionRecord) -> None:
        if self.on_record is not None:
            self.on_record(record)

    def records(self) -> list[SessionRecord]:
        """Every record this manager holds (on the loop): a host re-publishes them."""
        return list(self._records.values())

    async def _get(self, principal: str, session_id: str) -> SessionResponse:
        record = self._lookup(principal, session_id)
        response = record.to_response(self.clock())
        response.page = self._last_page(record)
        return response

    async def _close(self, principal: str, session_id: str) -> SessionResponse:
        record = self._lookup(principal, session_id)
        if record.status is Status.active:
            await self._end(record, Status.closed, None, wait=False)
        return record.to_response(self.clock())

    async def _list(self, principal: str, status: Status | None) -> list[SessionResponse]:
        now = self.clock()
        out = []
        for session_id in self._by_principal.get(principal, {}):
            record = self._records[session_id]
            if status is None or record.status is status:
                response = record.to_response(now)
                response.page = self._last_page(record)
                out.append(response)
        return out

    def _last_page(self, record: SessionRecord) -> PageInfo | None:
        """Where the session's page is, without a round trip to it.

        The URL is Playwright's own (kept current by navigation events); the title and the
        load's outcome are the last an operation saw, shown only while the URL still
        matches (a page that moved since has an empty title until the next look).
        """
        live = self._live.get(record.session_id)
        known = record.page
        if live is None or not live.state.tabs:
            return known
        tab = live.state.tab
        url = tab.page.url
        if known is not None and known.url == url:
            return known
        return PageInfo(url=url, title="", http_status=tab.http_status, error=tab.error)

    async def _end(
        self, record: SessionRecord, status: Status, error: str | None, wait: bool = True
    ) -> None:
        """Mark ``record`` ended and close its context (if it still has one).

        With ``wait=False`` the context closes in the background: the caller answers as
        soon as the session is unusable, and the closing context keeps counting against
        capacity until Chromium is done with it.
        """
        if record.status is not Status.active:
            return
        self._set_ended(record, status, error, self.clock())
        live = self._live.pop(record.session_id, None)
        if self.cdp is not None:
            self.cdp.session_ended(record)
        if record.profile is not None:  # profiles (issue 18): write back before it closes
            await self.profiles.session_ended(record, live)
            self._changed(record)
        if live is not None:
            if wait:
                await live.close()
            else:
                task = asyncio.get_running_loop().create_task(live.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    def _set_ended(
        self, record: SessionRecord, status: Status, error: str | None, now: datetime
    ) -> None:
        """The one place a record leaves ``active``: counted, logged, queued for purge."""
        self._status_counts[record.status.value] -= 1
        self._status_counts[status.value] += 1
        record.status, record.error, record.closed_at = status, error, now
        self._ended.push(now, record.session_id)
        self._changed(record)
        self._events(status.value)
        log.log(
            logging.WARNING if status is Status.error else logging.INFO,
            "flask_sessions: session %s %s%s",
            record.session_id,
            status.value,
            f" ({error})" if error else "",
            extra={
                "event": status.value,
                "session_id": record.session_id,
                "principal": record.principal,
                "reason": error,
            },
        )

    async def settled(self) -> None:
        """Wait for background work: contexts still closing, a pool refill."""
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        await self.pool.settled()

    async def reap(self) -> None:
        """One reaper tick: close expired sessions, purge old ended records.

        Costs O(expired · log n): only heap entries whose deadline has passed are looked at.
        """
        now = self.clock()
        lifetime = timedelta(minutes=self.settings.max_lifetime_minutes)
        expired = []
        for session_id in dict.fromkeys(self._deadlines.due(now)):
            record = self._records.get(session_id)
            if record is None or record.status is not Status.active:
                continue
            reason = expiry_reason(record, now, lifetime)
            if reason is not None:
                expired.append(self._end(record, Status.timed_out, reason))
        if expired:
            await asyncio.gather(*expired)
        retention = timedelta(minutes=self.settings.retention_minutes)
        for session_id in self._ended.due(now, retention):
            record = self._records.get(session_id)
            if record is not None:
                self._forget(record)
        if len(self.pool) and self.pool.memory_low():
            await self.pool.shrink(0)
        await self.recordings.sweep(now)  # recordings past their retention (issue 20)

    def _forget(self, record: SessionRecord) -> None:
        del self._records[record.session_id]
        self._status_counts[record.status.value] -= 1
        owned = self._by_principal.get(record.principal)
        if owned is not None:
            owned.pop(record.session_id, None)
            if not owned:
                del self._by_principal[record.principal]

    def _retry_after(self, now: datetime, among: list[str] | None = None) -> int:
        """Seconds until the earliest active session (of ``among``) expires (1 to 3600)."""
        lifetime = timedelta(minutes=self.settings.max_lifetime_minutes)
        soonest: datetime | None = None
        for session_id in self._live if among is None else among:
            record = self._records[session_id]
            due = record.created_at + lifetime
            if not record.keep_alive:
                due = min(due, record.idle_deadline)
            soonest = due if soonest is None else min(soonest, due)
        if soonest is None:
            return 1
        seconds = (soonest - now).total_seconds() + self.settings.reaper_interval_seconds
        return max(1, min(3600, math.ceil(seconds)))

    async def _close_all(self, reason: str) -> None:
        records = [self._records[sid] for sid in list(self._live)]
        await asyncio.gather(
            self.pool.close(), *(self._end(r, Status.closed, reason) for r in records)
        )
        await self.settled()
        await self.profiles.close()  # profiles (issue 18)
        if self.cdp is not None:
            await self.cdp.close()
        if self.guard is not None:
            await self.guard.close()
        await asyncio.to_thread(self.files.close)  # every session folder, and this host's

    def _on_browser_lost(self, reason: str) -> None:
        now = self.clock()
        self.pool.forget()
        self.files.drop_all()  # Chromium is gone: its sessions' files go too
        for session_id in list(self._live):
            record = self._records[session_id]
            self.profiles.browser_lost(record)  # profiles (issue 18)
            self._set_ended(record, Status.error, reason, now)
            live = self._live.pop(session_id)
            live.state.ended.set()
            if live.plan is not None:  # browser options (18a): e.g. its proxy's listener
                self.runtime.spawn(live.plan.run_cleanup())
            if self.cdp is not None:
                self.cdp.session_ended(record)

    def _on_page_crash(self, session_id: str, main: bool) -> None:
        """One of the session's pages crashed. The session ends if it was its own page, or
        if the memory watchdog stopped that page's renderer (a popup's, say)."""
        record = self._records.get(session_id)
        if record is None or record.status is not Status.active:
            return
        killed = self.guard is not None and self.guard.claim_kill(session_id) is not None
        if main or killed:
            self.runtime.spawn(self._end(record, Status.error, self._crash_reason(record)))

    def _crash_reason(self, record: SessionRecord) -> str:
        kill = self.guard.claim_kill(record.session_id) if self.guard is not None else None
        if kill is not None:
            return (
                f"the page used {kill.rss_mb} MB (limit {self.settings.max_page_memory_mb:g} "
                "MB, SESSIONS_MAX_PAGE_MEMORY_MB) and was stopped; start a new session"
            )
        return "the page crashed; start a new session"


LOW_MEMORY_RETRY_AFTER = 10  # seconds: a start refused for low memory may try again then


def _iso(when: datetime | None) -> str | None:
    return iso_datetime(when) if when is not None else None


def _page_of(observation: Observation) -> PageInfo:
    """The page part of an observation, to remember for lists."""
    return PageInfo(
        url=observation.url,
        title=observation.title,
        http_status=observation.http_status,
        error=observation.error,
    )


def _with_warnings(observation: Observation, live: LiveSession) -> Observation:
    """The observation, with what the session's limits did since the last one."""
    observation.warnings += live.limits.take_warnings()  # after the tabs' (issue 22)
    if live.files is not None:  # session files (issue 19): downloads refused or cancelled
        observation.warnings += live.files.downloads.take_warnings()
    observation.popups_blocked = live.limits.popups_blocked
    return observation
