"""The Playwright side of one session: a fresh BrowserContext and its pages (tabs)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from playwright.async_api import Browser, BrowserContext, Page
from playwright.async_api import Error as PlaywrightError

from .config import Settings
from .page_ops import QUIET_INIT_JS
from .page_state import PageState


@dataclass
class LiveSession:
    """A context and its tabs (``state.tabs``, ``state.current``); touched only on the loop.

    ``lock`` makes a session's operations run one at a time, in arrival order
    (asyncio locks are FIFO); different sessions run concurrently.
    """

    context: BrowserContext
    state: PageState
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def page(self) -> Page:
        """The current tab's page."""
        return self.state.page

    async def close(self) -> None:
        """Close the context (and so its pages); errors of an already dead one are ignored."""
        self.state.ended.set()
        with contextlib.suppress(PlaywrightError):
            await self.context.close()


async def open_live(browser: Browser, settings: Settings) -> LiveSession:
    """A new isolated context (own cookies, storage, cache) and its page, ready to use."""
    context = await browser.new_context(
        viewport={"width": settings.viewport_width, "height": settings.viewport_height}
    )
    try:
        context.set_default_timeout(settings.action_timeout_ms)
        context.set_default_navigation_timeout(settings.navigation_timeout_ms)
        await context.add_init_script(QUIET_INIT_JS)
        state = PageState(context, settings.page_probe_ms)
        state.watch()
        state.adopt(await context.new_page())
    except BaseException:
        with contextlib.suppress(PlaywrightError):
            await context.close()
        raise
    return LiveSession(context, state)
