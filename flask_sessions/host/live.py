"""The Playwright side of one session: a fresh BrowserContext and its pages (tabs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page
from playwright.async_api import Error as PlaywrightError

from flask_sessions.config import Settings
from flask_sessions.errors import InvalidInput
from flask_sessions.host.limits import MB, BrowserGuard, SessionLimits
from flask_sessions.page.scripts import QUIET_INIT_JS
from flask_sessions.page.state import PageState

log = logging.getLogger("flask_sessions")


@dataclass
class LiveSession:
    """A context and its tabs (``state.tabs``, ``state.current``); touched only on the loop.

    ``lock`` makes a session's operations run one at a time, in arrival order
    (asyncio locks are FIFO); different sessions run concurrently. ``limits`` caps the
    pages the context may open (a tab past ``SESSIONS_MAX_PAGES_PER_SESSION`` is closed and
    never becomes one of ``state.tabs``) and meters downloads.
    """

    context: BrowserContext
    state: PageState
    limits: SessionLimits = field(default_factory=SessionLimits)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # awaited in turn before the context closes (a recording's save: issue 20)
    on_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def page(self) -> Page:
        """The current tab's page."""
        return self.state.page

    async def close(self) -> None:
        """Close the context (and so its pages); errors of an already dead one are ignored.
        Then delete whatever the session downloaded."""
        self.state.ended.set()
        for hook in self.on_close:
            try:
                await hook()
            except Exception:  # the context closes whatever a hook did
                log.exception("flask_sessions: work before closing a session's context failed")
        with contextlib.suppress(PlaywrightError):
            await self.context.close()
        await self.limits.close()


async def open_live(
    browser: Browser,
    settings: Settings,
    egress: Callable[[str], str | None] | None = None,
    guard: BrowserGuard | None = None,
    context_options: Mapping[str, Any] | None = None,
) -> LiveSession:
    """A new isolated context (own cookies, storage, cache) and its page, ready to use.

    ``egress(url)`` says why the egress proxy refused a load, so errors can name the rule.
    The context refuses downloads (Playwright's default would accept them into a shared
    temporary directory) unless ``SESSIONS_MAX_DOWNLOAD_MB`` allows some; then ``guard``
    points them at a directory of this session's own, which is metered and deleted with it.
    ``context_options`` are more ``new_context`` arguments (a ``storage_state``, say).
    """
    limits = SessionLimits(
        max_pages=settings.max_pages_per_session,
        max_download_bytes=int(settings.max_download_mb * MB),
        guard=guard,
    )
    try:
        context = await browser.new_context(
            viewport={"width": settings.viewport_width, "height": settings.viewport_height},
            accept_downloads=False,
            **(context_options or {}),
        )
    except PlaywrightError as exc:  # profiles (issue 18): Chromium refused the given state
        if context_options and "storage_state" in context_options:
            raise state_refused(exc) from None
        raise
    try:
        context.set_default_timeout(settings.action_timeout_ms)
        context.set_default_navigation_timeout(settings.navigation_timeout_ms)
        await context.add_init_script(QUIET_INIT_JS)
        limits.watch(context)  # first: a page it closes (over the cap) is never a tab
        state = PageState(context, settings.page_probe_ms, accepts=limits.pages.__contains__)
        state.egress = egress
        state.watch()
        page = await context.new_page()
        state.adopt(page)
        if limits.max_download_bytes > 0 and guard is not None and guard.downloads_root:
            await _allow_downloads(context, page, limits, guard, guard.downloads_root)
    except BaseException:
        with contextlib.suppress(PlaywrightError):
            await context.close()
        await limits.close()
        raise
    return LiveSession(context, state, limits)


async def _allow_downloads(
    context: BrowserContext,
    page: Page,
    limits: SessionLimits,
    guard: BrowserGuard,
    root: str,
) -> None:
    cdp = await context.new_cdp_session(page)
    try:
        info = await cdp.send("Target.getTargetInfo")
    finally:
        await cdp.detach()
    limits.context_id = info["targetInfo"]["browserContextId"]
    limits.target_id = info["targetInfo"]["targetId"]
    directory = os.path.join(root, limits.context_id)
    os.makedirs(directory, exist_ok=True)
    limits.download_dir = directory
    guard.by_target[limits.target_id] = limits
    await guard.allow_downloads(limits.context_id, directory)


def state_refused(exc: PlaywrightError) -> InvalidInput:
    """A storage state Chromium would not take (a cookie it calls invalid): the caller's to fix."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    detail = lines[-1] if lines else "refused"
    return InvalidInput(
        f"storage_state: Chromium refused it ({detail}); check each cookie's domain, path and "
        "partitionKey (a profile's state can be replaced with PUT /profiles/<id>/state)",
        fields=[{"field": "storage_state", "message": f"refused by Chromium: {detail}"}],
    )
