"""The Playwright side of one session: a fresh BrowserContext and its pages (tabs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page
from playwright.async_api import Error as PlaywrightError

from flask_sessions.config import Settings
from flask_sessions.errors import InvalidInput
from flask_sessions.host.files import FilesRoot, SessionFiles
from flask_sessions.host.limits import BrowserGuard, SessionLimits
from flask_sessions.page.scripts import QUIET_INIT_JS
from flask_sessions.page.state import PageState

log = logging.getLogger("flask_sessions")


@dataclass
class ContextPlan:
    """How to make one session's context, beyond the defaults.

    ``kwargs`` go to ``browser.new_context(**kwargs)`` over :func:`open_live`'s own defaults
    (the configured viewport); ``setup`` runs on the new context before its first page (so a
    route holds from the first request); ``cleanup`` runs once the context is closed, or if
    making it failed. host/options.py makes one from a start's browser options; other
    features add to the same plan (e.g. a ``storage_state`` in ``kwargs``).
    """

    kwargs: dict[str, Any] = field(default_factory=dict)
    setup: list[Callable[[BrowserContext], Awaitable[None]]] = field(default_factory=list)
    cleanup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # a failure to make the context in the caller's words (a 400 for an option Chromium
    # refused), or None to let it through as it is
    explain: Callable[[BaseException], Exception | None] | None = None

    async def run_cleanup(self) -> None:
        """Run (and forget) every cleanup, each once, whatever the others do."""
        steps, self.cleanup = self.cleanup, []
        for step in steps:
            with contextlib.suppress(Exception):
                await step()


@dataclass
class LiveSession:
    """A context and its tabs (``state.tabs``, ``state.current``); touched only on the loop.

    ``lock`` makes a session's operations run one at a time, in arrival order
    (asyncio locks are FIFO); different sessions run concurrently. ``limits`` caps the
    pages the context may open (a tab past ``SESSIONS_MAX_PAGES_PER_SESSION`` is closed and
    never becomes one of ``state.tabs``). ``files`` is the session's folder: uploads, and the
    downloads its pages make (None when ``SESSIONS_MAX_SESSION_FILES_MB=0``).
    """

    context: BrowserContext
    state: PageState
    limits: SessionLimits = field(default_factory=SessionLimits)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    files: SessionFiles | None = None
    plan: ContextPlan | None = None  # what the context was made with (cleanup at close)
    # awaited in turn before the context closes (a recording's save: issue 20)
    on_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def page(self) -> Page:
        """The current tab's page."""
        return self.state.page

    async def close(self) -> None:
        """Close the context (and so its pages); errors of an already dead one are ignored.
        Then delete the session's files."""
        self.state.ended.set()
        for hook in self.on_close:
            try:
                await hook()
            except Exception:  # the context closes whatever a hook did
                log.exception("flask_sessions: work before closing a session's context failed")
        with contextlib.suppress(PlaywrightError):
            await self.context.close()
        await self.limits.close()
        if self.files is not None:
            await self.files.close()
        if self.plan is not None:
            await self.plan.run_cleanup()


async def open_live(
    browser: Browser,
    settings: Settings,
    egress: Callable[[str], str | None] | None = None,
    guard: BrowserGuard | None = None,
    files_root: FilesRoot | None = None,
    plan: ContextPlan | None = None,
) -> LiveSession:
    """A new isolated context (own cookies, storage, cache) and its page, ready to use.

    ``plan`` adds ``new_context`` kwargs and per-context setup: a start's browser options
    (host/options.py), a ``storage_state`` to load (profiles); without one the context is
    the server's default (the warm pool's).

    ``egress(url)`` says why the egress proxy refused a load, so errors can name the rule.
    The context is made refusing downloads (Playwright's default would accept them into a
    shared temporary directory); with session files on (``files_root``), ``guard`` then
    points them at this session's own folder, where they are metered and listed, and which
    is deleted with the session.
    """
    limits = SessionLimits(max_pages=settings.max_pages_per_session)
    kwargs: dict[str, Any] = {
        "viewport": {"width": settings.viewport_width, "height": settings.viewport_height},
        **(plan.kwargs if plan is not None else {}),
        "accept_downloads": False,
    }
    files = files_root.new_session() if files_root else None
    try:
        context = await browser.new_context(**kwargs)
    except BaseException as exc:
        await limits.close()
        if files is not None:
            await files.close()
        if plan is not None:
            await plan.run_cleanup()
            _raise_explained(plan, exc)
        if isinstance(exc, PlaywrightError) and "storage_state" in kwargs:
            # profiles (issue 18): Chromium refused the given state
            raise state_refused(exc) from None
        raise
    try:
        context.set_default_timeout(settings.action_timeout_ms)
        context.set_default_navigation_timeout(settings.navigation_timeout_ms)
        await context.add_init_script(QUIET_INIT_JS)
        for setup in plan.setup if plan is not None else ():
            await setup(context)
        limits.watch(context)  # first: a page it closes (over the cap) is never a tab
        if files is not None:
            files.downloads.watch(context)
        state = PageState(context, settings.page_probe_ms, accepts=limits.pages.__contains__)
        state.egress = egress
        state.scripts = kwargs.get("java_script_enabled") is not False
        state.watch()
        page = await context.new_page()
        state.adopt(page)
        if files is not None:
            state.file_paths = files.paths  # the upload_file step
            if files.downloads.allowed and guard is not None:
                await _allow_downloads(state, files, guard)
    except BaseException as exc:
        with contextlib.suppress(PlaywrightError):
            await context.close()
        await limits.close()
        if files is not None:
            await files.close()
        if plan is not None:
            await plan.run_cleanup()
            _raise_explained(plan, exc)
        raise
    return LiveSession(context, state, limits, files=files, plan=plan)


def _raise_explained(plan: ContextPlan, exc: BaseException) -> None:
    better = plan.explain(exc) if plan.explain is not None else None
    if better is not None:
        raise better from None


async def _allow_downloads(state: PageState, files: SessionFiles, guard: BrowserGuard) -> None:
    """Downloads of this context go to the session's folder, and are reported. The tab's
    CDP session is the one its liveness probes use later: made once, kept."""
    cdp = await state.cdp(state.tab)
    info = await cdp.send("Target.getTargetInfo")
    downloads = files.downloads
    downloads.context_id = info["targetInfo"]["browserContextId"]
    files.root.router.watch_target(info["targetInfo"]["targetId"], downloads)
    await guard.allow_downloads(downloads.context_id, files.incoming)


def state_refused(exc: PlaywrightError) -> InvalidInput:
    """A storage state Chromium would not take (a cookie it calls invalid): the caller's to fix."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    detail = lines[-1] if lines else "refused"
    return InvalidInput(
        f"storage_state: Chromium refused it ({detail}); check each cookie's domain, path and "
        "partitionKey (a profile's state can be replaced with PUT /profiles/<id>/state)",
        fields=[{"field": "storage_state", "message": f"refused by Chromium: {detail}"}],
    )
