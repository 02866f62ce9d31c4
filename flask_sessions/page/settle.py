"""Loading and settling: open a URL, wait for the load a step started, then for the page to
be quiet (see :func:`settle`).

Coroutines here run on the runtime loop, with the session's lock held by the manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from flask_sessions.config import Settings
from flask_sessions.host.egress import TUNNEL_FAILED
from flask_sessions.page.describe import first_line
from flask_sessions.page.state import PageNotResponding, PageState, Tab

QUIET_PROBE_JS = """(afterScroll) => new Promise((resolve) => {
  const read = () => {  // ms since the DOM last changed, since the page last opened a window
    const s = window[Symbol.for("flask_sessions.quiet")];
    resolve(s ? [performance.now() - s.last, performance.now() - s.opened] : [1e9, 1e9]);
  };
  if (!afterScroll) { setTimeout(read, 0); return; }
  // scroll handlers and intersection observers run with the next frames
  let frames = 0;
  const tick = () => { if (++frames === 2) setTimeout(read, 0); else requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  setTimeout(() => { if (frames < 2) { frames = 2; read(); } }, 100);
})"""

QUIET_MS = 15
"""No DOM change and no fetch/XHR/script ending for this long (and none running): quiet."""
NETWORK_IDLE_SECONDS = 0.3
"""No request running or ending for this long: quiet, even if the DOM keeps changing."""


async def navigate(state: PageState, url: str, settings: Settings) -> None:
    """Open ``url`` in the current tab; a failed or slow load is recorded, never raised.

    The error is this load's only: if the page went on to another navigation meanwhile (a
    script redirect), that one's outcome is what the tab shows.
    """
    tab = state.tab
    page = tab.page
    tab.http_status, tab.error = None, None
    before = tab.loads
    try:
        await page.goto(url, timeout=settings.navigation_timeout_ms, wait_until="load")
    except PlaywrightTimeoutError:
        moved_on = tab.loads > before + 1
        if moved_on and (tab.load is None or tab.load not in tab.inflight):
            return  # superseded by a navigation that has loaded: its status stands
        loading = tab.load.url if moved_on and tab.load else url
        await stop_loading(state, tab)
        tab.error = (
            f"loading {loading} timed out after "
            f"{settings.navigation_timeout_ms} ms (SESSIONS_NAVIGATION_TIMEOUT_MS) and was "
            "stopped; the page is what had loaded"
        )
        return
    except PlaywrightError as exc:
        if page.is_closed():
            raise
        if tab.loads > before + 1:
            return  # interrupted by the page's own next navigation: its status stands
        if TUNNEL_FAILED in str(exc) and not tab.egress_error:
            state.refused(tab, url)
        tab.error = tab.egress_error or f"loading {url} failed: {first_line(exc)}"


async def open_url(state: PageState, url: str, settings: Settings, settled: bool = True) -> float:
    """Navigate the current tab and settle; a page that stopped responding is replaced.

    Returns the loop time the navigation began. ``settled=False`` leaves the settling to
    an :func:`observe` given that time (one round trip less when the page is quiet).
    """
    if await state.still_hung():
        await state.replace_page()
    since = asyncio.get_running_loop().time()
    tab = state.tab
    loads = tab.loads
    try:
        await state.guarded(navigate(state, url, settings))
    except PageNotResponding:
        if tab.loads > loads and tab.committed is tab.load:
            raise  # the new document itself never yields: a new page would hang the same
        # the old page hung while we navigated away from it: a new page does it
        await state.replace_page()
        await state.guarded(navigate(state, url, settings))
    if settled:
        await state.guarded(settle(state, settings, since))
    return since


def quiet_now(state: PageState, since: float, since_dom: float) -> bool:
    """Whether an observation taken now already shows a settled page (see :func:`settle`)."""
    tab = state.tab
    now = asyncio.get_running_loop().time()
    since_data = (now - tab.last_data) * 1000 if tab.last_data >= since else math.inf
    return (
        not tab.navigating and not tab.busy_since(since) and min(since_dom, since_data) >= QUIET_MS
    )


async def stop_loading(state: PageState, tab: Tab) -> None:
    """Cancel a pending load, like the browser's Stop button.

    A navigation that timed out goes on in Chromium, and until it commits every
    ``evaluate`` on the page waits for it: stopping it keeps the next observation bounded.
    Its request then fails (net::ERR_ABORTED), which is not this page's error any more.
    """
    tab.load = None
    with contextlib.suppress(PlaywrightError):
        cdp = await state.cdp(tab)
        await cdp.send("Page.stopLoading")


async def wait_load(state: PageState, settings: Settings) -> str | None:
    """Wait for the current document's load event; say so if it did not come in time."""
    try:
        await state.page.wait_for_load_state("load", timeout=settings.navigation_timeout_ms)
    except PlaywrightTimeoutError:
        await stop_loading(state, state.tab)
        return (
            f"the page did not finish loading within {settings.navigation_timeout_ms} ms "
            "(SESSIONS_NAVIGATION_TIMEOUT_MS); the load was stopped"
        )
    return None


async def settle(
    state: PageState, settings: Settings, since: float, after_scroll: bool = False
) -> str | None:
    """After an action that began at loop time ``since``: wait until the page is quiet.

    First any main-frame navigation and its load (bounded by the navigation timeout).
    Then, within ``SESSIONS_SETTLE_MS``: quiet is no request started since ``since`` still
    running and, for :data:`QUIET_MS`, no DOM change and no fetch/XHR/script ending (so
    the render that follows a response is waited for); or no network activity at all for
    :data:`NETWORK_IDLE_SECONDS`, whatever the DOM does. A static page is quiet at the
    first look: the DOM changes that count start at DOMContentLoaded (``quiet.js``).
    Returns a problem to report (a load that timed out), or None.
    """
    loop = asyncio.get_running_loop()
    quiet_deadline = loop.time() + settings.settle_ms / 1000
    nav_deadline = since + settings.navigation_timeout_ms / 1000
    first = True
    while True:
        tab, page = state.tab, state.page
        problem = await wait_load(state, settings)
        if problem:
            return problem
        now = loop.time()
        if tab.navigating:  # requested, its document not committed yet
            if now >= nav_deadline:
                await stop_loading(state, tab)
                return (
                    f"the page did not finish loading within {settings.navigation_timeout_ms}"
                    " ms (SESSIONS_NAVIGATION_TIMEOUT_MS); the load was stopped"
                )
            await asyncio.sleep(0.01)
            continue
        if now >= quiet_deadline:
            return None
        idle = now - tab.last_network >= NETWORK_IDLE_SECONDS
        if not first and not tab.busy_since(since) and idle:
            return None
        try:
            since_dom, since_open = await page.evaluate(QUIET_PROBE_JS, after_scroll and first)
        except PlaywrightError:
            if page.is_closed():
                raise
            await asyncio.sleep(0.01)  # the document changed under us: look again
            continue
        first = False
        now = loop.time()
        if float(since_open) <= (now - since) * 1000:
            state.window_opened = True  # window.open() or a target=_blank link
        since_data = (now - tab.last_data) * 1000 if tab.last_data >= since else math.inf
        quiet_ms = min(since_dom, since_data)
        busy = tab.busy_since(since)
        if not busy and quiet_ms >= QUIET_MS:
            return None
        wait = 0.01 if busy else max(QUIET_MS - quiet_ms, 2) / 1000
        await asyncio.sleep(max(0.0, min(wait, quiet_deadline - now)))


EVALUATE_TRIES = 5


async def evaluate_retrying(state: PageState, settings: Settings, script: str, arg: Any) -> Any:
    """``page.evaluate`` on the current tab, tried again (five tries in all) when a
    navigation replaced the document under it (a meta refresh, a JS redirect).

    Between tries it waits for the page to load, and a little longer each time: the error
    can come before Playwright has seen the new document, when the old one still counts as
    loaded (a refresh right after load then failed three quick tries in a row).
    """
    for attempt in range(EVALUATE_TRIES):
        page = state.page
        try:
            return await page.evaluate(script, arg)
        except PlaywrightError as exc:
            last = attempt == EVALUATE_TRIES - 1
            if page.is_closed() or last or "context was destroyed" not in str(exc):
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
            await wait_load(state, settings)
    raise AssertionError("unreachable")
