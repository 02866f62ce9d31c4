"""The Playwright side of one session: a fresh BrowserContext and its pages (tabs)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
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

    @property
    def page(self) -> Page:
        """The current tab's page."""
        return self.state.page

    async def close(self) -> None:
        """Close the context (and so its pages); errors of an already dead one are ignored.
        Then delete the session's files."""
        self.state.ended.set()
        with contextlib.suppress(PlaywrightError):
            await self.context.close()
        await self.limits.close()
        if self.files is not None:
            await self.files.close()


async def open_live(
    browser: Browser,
    settings: Settings,
    egress: Callable[[str], str | None] | None = None,
    guard: BrowserGuard | None = None,
    files_root: FilesRoot | None = None,
    context_options: Mapping[str, Any] | None = None,
) -> LiveSession:
    """A new isolated context (own cookies, storage, cache) and its page, ready to use.

    ``egress(url)`` says why the egress proxy refused a load, so errors can name the rule.
    The context is made refusing downloads (Playwright's default would accept them into a
    shared temporary directory); with session files on (``files_root``), ``guard`` then
    points them at this session's own folder, where they are metered and listed, and which
    is deleted with the session. ``context_options`` are more ``new_context`` arguments (a
    ``storage_state``, say).
    """
    limits = SessionLimits(max_pages=settings.max_pages_per_session)
    files = files_root.new_session() if files_root else None
    try:
        context = await browser.new_context(
            viewport={"width": settings.viewport_width, "height": settings.viewport_height},
            accept_downloads=False,
            **(context_options or {}),
        )
    except BaseException as exc:
        if files is not None:
            await files.close()
        # profiles (issue 18): Chromium refused the given state
        if (
            isinstance(exc, PlaywrightError)
            and context_options
            and ("storage_state" in context_options)
        ):
            raise state_refused(exc) from None
        raise
    try:
        context.set_default_timeout(settings.action_timeout_ms)
        context.set_default_navigation_timeout(settings.navigation_timeout_ms)
        await context.add_init_script(QUIET_INIT_JS)
        limits.watch(context)  # first: a page it closes (over the cap) is never a tab
        if files is not None:
            files.downloads.watch(context)
        state = PageState(context, settings.page_probe_ms, accepts=limits.pages.__contains__)
        state.egress = egress
        state.watch()
        page = await context.new_page()
        state.adopt(page)
        if files is not None:
            state.file_paths = files.paths  # the upload_file step
            if files.downloads.allowed and guard is not None:
                await _allow_downloads(state, files, guard)
    except BaseException:
        with contextlib.suppress(PlaywrightError):
            await context.close()
        await limits.close()
        if files is not None:
            await files.close()
        raise
    return LiveSession(context, state, limits, files=files)


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
