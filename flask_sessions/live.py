"""The Playwright side of one session: a fresh BrowserContext with its one Page."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from playwright.async_api import Browser, BrowserContext, Page
from playwright.async_api import Error as PlaywrightError

from .config import Settings
from .page_ops import PageState


@dataclass
class LiveSession:
    """A context + page; touched only on the runtime loop.

    ``lock`` makes a session's operations run one at a time, in arrival order
    (asyncio locks are FIFO); different sessions run concurrently.
    """

    context: BrowserContext
    page: Page
    state: PageState = field(default_factory=PageState)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def close(self) -> None:
        """Close the context (and so its page); errors of an already dead one are ignored."""
        self.state.ended.set()
        with contextlib.suppress(PlaywrightError):
            await self.context.close()


async def open_live(
    browser: Browser, settings: Settings, egress: Callable[[str], str | None] | None = None
) -> LiveSession:
    """A new isolated context (own cookies, storage, cache) and its page, ready to use.

    ``egress(url)`` says why the egress proxy refused a load, so errors can name the rule.
    """
    context = await browser.new_context(
        viewport={"width": settings.viewport_width, "height": settings.viewport_height}
    )
    try:
        context.set_default_timeout(settings.action_timeout_ms)
        context.set_default_navigation_timeout(settings.navigation_timeout_ms)
        page = await context.new_page()
    except BaseException:
        with contextlib.suppress(PlaywrightError):
            await context.close()
        raise
    live = LiveSession(context, page)
    live.state.egress = egress
    live.state.watch(page)
    return live
