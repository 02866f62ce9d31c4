"""What a session does with its page: observe, step, scrape, screenshot.

Coroutines here run on the runtime loop, with the session's lock held by the manager.
The Markdown conversion (:func:`convert`) is plain CPU work and runs in the Flask thread,
so a large page never stalls the loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from markdownify import markdownify
from playwright.async_api import Dialog, Locator, Page, Request, Response
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from flask_sessions.config import Settings
from flask_sessions.errors import InvalidInput, OperationTimeout, SessionNotActive
from flask_sessions.host.egress import EGRESS_HEADER, TUNNEL_FAILED
from flask_sessions.schemas import (
    Action,
    CheckStep,
    ClickStep,
    FillStep,
    GotoStep,
    HistoryStep,
    Observation,
    PageInfo,
    PressKeyStep,
    ScrollStep,
    SelectStep,
    Shot,
    StepRequest,
    WaitStep,
)

OBSERVE_JS = resources.files(__package__).joinpath("observe.js").read_text(encoding="utf-8")
SCRAPE_JS = resources.files(__package__).joinpath("scrape.js").read_text(encoding="utf-8")


@dataclass
class PageState:
    """Per-session page memory: the last observation's ids and the last load's outcome.

    :meth:`watch` keeps ``http_status`` / ``error`` current for every main-frame load,
    whether a goto, a click on a link or a form submit started it. A load the egress proxy
    refused gets its reason (``egress(url)``, the rule that blocked it) instead of a bare
    ``net::ERR_TUNNEL_CONNECTION_FAILED`` or the proxy's 403.
    """

    ids: dict[str, Action] = field(default_factory=dict)
    http_status: int | None = None
    error: str | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    egress: Callable[[str], str | None] | None = None
    egress_error: str | None = None  # the current main-frame load's, once the proxy refused it

    def refused(self, url: str) -> None:
        """The egress proxy answered for ``url`` itself: record why, in its words."""
        reason = self.egress(url) if self.egress is not None else None
        if reason:
            self.http_status = None
            self.error = self.egress_error = f"loading {url} failed: {reason}"

    def watch(self, page: Page) -> None:
        def is_main_load(request: Request) -> bool:
            try:
                return request.is_navigation_request() and request.frame == page.main_frame
            except PlaywrightError:
                return False

        def on_request(request: Request) -> None:
            if is_main_load(request):
                self.http_status, self.error, self.egress_error = None, None, None

        def on_response(response: Response) -> None:
            if is_main_load(response.request):
                record_response_status(self, response.status)
                if response.status >= 400 and EGRESS_HEADER.lower() in response.headers:
                    self.refused(response.request.url)

        def on_failed(request: Request) -> None:
            if is_main_load(request):
                self.error = f"loading {request.url} failed: {request.failure or 'unknown error'}"
                if TUNNEL_FAILED in (request.failure or ""):
                    self.refused(request.url)

        async def on_dialog(dialog: Dialog) -> None:
            # alert/confirm/prompt would block every later call on the page
            with contextlib.suppress(PlaywrightError):
                await dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("request", on_request)
        page.on("response", on_response)
        page.on("requestfailed", on_failed)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return re.sub(r"\s+", " ", line)[:300]


async def navigate(page: Page, state: PageState, url: str, settings: Settings) -> None:
    """Open ``url``; a failed or slow load is recorded in ``state``, never raised."""
    state.http_status, state.error = None, None
    try:
        await page.goto(url, timeout=settings.navigation_timeout_ms, wait_until="load")
    except PlaywrightTimeoutError:
        await stop_loading(page)
        state.error = (
            f"loading {url} timed out after {settings.navigation_timeout_ms} ms "
            "(SESSIONS_NAVIGATION_TIMEOUT_MS) and was stopped; the page is what had loaded"
        )
        return
    except PlaywrightError as exc:
        if page.is_closed():
            raise
        if TUNNEL_FAILED in str(exc) and not state.egress_error:
            state.refused(url)
        state.error = state.egress_error or f"loading {url} failed: {first_line(exc)}"


def record_response_status(state: PageState, status: int | None) -> None:
    state.http_status = status
    if status is not None and status >= 400:
        state.error = f"the server answered HTTP {status}"


async def settle(page: Page, settings: Settings) -> str | None:
    """Wait for a load an action may have started; say so if it did not finish."""
    try:
        await page.wait_for_load_state("load", timeout=settings.navigation_timeout_ms)
    except PlaywrightTimeoutError:
        await stop_loading(page)
        return (
            f"the page did not finish loading within {settings.navigation_timeout_ms} ms "
            "(SESSIONS_NAVIGATION_TIMEOUT_MS); the load was stopped"
        )
    return None


async def stop_loading(page: Page) -> None:
    """Cancel a pending load, like the browser's Stop button.

    A navigation that timed out goes on in Chromium, and until it commits every
    ``evaluate`` on the page waits for it: stopping it keeps the next observation bounded.
    """
    cdp = await page.context.new_cdp_session(page)
    try:
        await cdp.send("Page.stopLoading")
    finally:
        await cdp.detach()


EVALUATE_TRIES = 5


async def evaluate_retrying(page: Page, settings: Settings, script: str, arg: Any) -> Any:
    """``page.evaluate``, tried again (five tries in all) when a navigation replaced the
    document under it (a meta refresh, a JS redirect): observe and scrape both use it.

    Between tries it waits for the page to load, and a little longer each time: the error
    can come before Playwright has seen the new document, when the old one still counts as
    loaded (a refresh right after load then failed three quick tries in a row).
    """
    for attempt in range(EVALUATE_TRIES):
        try:
            return await page.evaluate(script, arg)
        except PlaywrightError as exc:
            last = attempt == EVALUATE_TRIES - 1
            if page.is_closed() or last or "context was destroyed" not in str(exc):
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
            await settle(page, settings)
    raise AssertionError("unreachable")


async def page_info(page: Page, state: PageState) -> PageInfo:
    return PageInfo(
        url=page.url, title=await _title(page), http_status=state.http_status, error=state.error
    )


async def _title(page: Page) -> str:
    try:
        return await page.title()
    except PlaywrightError:
        if page.is_closed():
            raise
        return ""  # mid-navigation: the old document is gone, the new one not there yet


async def observe(
    page: Page, state: PageState, settings: Settings, screenshot: bool
) -> Observation:
    """Describe the page: interactive elements (ids in document order), visible text."""
    data: dict[str, Any] = await evaluate_retrying(
        page,
        settings,
        OBSERVE_JS,
        {"maxActions": settings.observe_max_actions, "maxText": settings.observe_max_text},
    )
    actions = [Action(**{k: v for k, v in raw.items() if k != "tag"}) for raw in data["actions"]]
    state.ids = {a.id: a for a in actions}
    shot = await page.screenshot(type="png") if screenshot else None
    info = await page_info(page, state)
    return Observation(
        **info.model_dump(),
        screenshot=base64.b64encode(shot).decode("ascii") if shot else None,
        actions=actions,
        text=data["text"],
        text_truncated=bool(data["truncated"]),
    )


def _target(
    page: Page, state: PageState, step: ClickStep | FillStep | CheckStep | SelectStep
) -> Locator:
    if step.selector is not None:
        return page.locator(step.selector).first
    assert step.id is not None
    if step.id not in state.ids:
        known = ", ".join(list(state.ids)[:20]) or "none: call observe first"
        raise SessionNotActive(
            f"id {step.id} is not in this session's last observation (ids there: {known}); "
            "observe again and use a current id",
            stale_id=step.id,
        )
    return page.locator(f'[data-fs-id="{step.id}"]')


async def _check_fresh(
    locator: Locator, step: ClickStep | FillStep | CheckStep | SelectStep
) -> None:
    if step.id is not None and await locator.count() == 0:
        raise SessionNotActive(
            f"the element {step.id} from the last observation is gone (the page changed "
            "since); observe again and use a current id",
            stale_id=step.id,
        )


async def run_step(
    page: Page, state: PageState, step: StepRequest, settings: Settings
) -> tuple[bool, str]:
    """Run one action. A failure an agent can act on is ``(False, reason)``, not an error."""
    timeout = settings.action_timeout_ms
    try:
        if isinstance(step, (ClickStep, FillStep, CheckStep, SelectStep)):
            locator = _target(page, state, step)
            await _check_fresh(locator, step)
            label = step.id or step.selector
            known_disabled = step.id is not None and not state.ids[step.id].enabled
            if known_disabled and not await locator.is_enabled(timeout=timeout):
                return False, f"{label} is disabled; pick another action or wait for it"
            if isinstance(step, ClickStep):
                await locator.click(timeout=timeout)
                message = f"clicked {label}"
            elif isinstance(step, FillStep):
                if step.clear_before_fill:
                    await locator.fill(step.value, timeout=timeout)
                else:
                    await locator.press("End", timeout=timeout)
                    await locator.press_sequentially(step.value, timeout=timeout)
                message = f"filled {label}"
                if step.press_enter:
                    await locator.press("Enter", timeout=timeout)
                    message += " and pressed Enter"
            elif isinstance(step, CheckStep):
                await locator.set_checked(step.value, timeout=timeout)
                message = f"{'checked' if step.value else 'unchecked'} {label}"
            else:
                chosen, labels = await _select(locator, step.value, timeout)
                if chosen is None:
                    return False, (
                        f"{label} has no option {step.value!r}; its options are: "
                        + ", ".join(repr(x) for x in labels[:50])
                    )
                message = f"selected {chosen!r} in {label}"
        elif isinstance(step, PressKeyStep):
            await page.keyboard.press(step.key)
            message = f"pressed {step.key}"
        elif isinstance(step, GotoStep):
            await navigate(page, state, step.url, settings)
            if state.error:
                return False, state.error
            return True, f"opened {step.url}"
        elif isinstance(step, HistoryStep):
            return await _history(page, state, step, settings)
        elif isinstance(step, ScrollStep):
            amount = step.amount or settings.viewport_height
            dy = amount if step.type == "scroll_down" else -amount
            await page.evaluate("dy => window.scrollBy(0, dy)", dy)
            message = f"scrolled {'down' if dy > 0 else 'up'} {amount} px"
        else:
            assert isinstance(step, WaitStep)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.ended.wait(), step.time_ms / 1000)
            if state.ended.is_set():
                raise SessionNotActive("the session was closed during the wait")
            message = f"waited {step.time_ms} ms"
    except PlaywrightTimeoutError as exc:
        return (
            False,
            f"timed out after {timeout} ms (SESSIONS_ACTION_TIMEOUT_MS): {first_line(exc)}",
        )
    except PlaywrightError as exc:
        if page.is_closed():
            raise
        return False, f"the action failed: {first_line(exc)}"
    problem = await settle(page, settings)
    if problem:
        return False, f"{message}, but {problem}"
    return True, message


_OPTIONS_JS = (
    "el => el.options ? Array.from(el.options).map(o => [o.value, (o.label || o.text).trim()])"
    " : null"
)


async def _select(locator: Locator, value: str, timeout: int) -> tuple[str | None, list[str]]:
    """Select the option whose value, else label, is ``value``.

    Returns what was chosen (None if no option matches) and the options' labels.
    """
    options: list[list[str]] | None = await locator.evaluate(_OPTIONS_JS, timeout=timeout)
    if options is None:  # not a <select>: let Playwright try (custom dropdowns)
        return ", ".join(await locator.select_option(value, timeout=timeout)), []
    labels = [label for _, label in options]
    match = next((v for v, _ in options if v == value), None)
    if match is None:
        match = next((v for v, label in options if label == value), None)
    if match is None:
        match = next((v for v, label in options if label.lower() == value.lower()), None)
    if match is None:
        return None, labels
    return ", ".join(await locator.select_option(value=match, timeout=timeout)), labels


async def _history(
    page: Page, state: PageState, step: HistoryStep, settings: Settings
) -> tuple[bool, str]:
    nav = settings.navigation_timeout_ms
    before = page.url
    if step.type == "reload":
        response = await page.reload(timeout=nav, wait_until="load")
    elif step.type == "go_back":
        response = await page.go_back(timeout=nav, wait_until="load")
    else:
        response = await page.go_forward(timeout=nav, wait_until="load")
    if response is None and step.type != "reload" and page.url == before:
        return False, f"there is no page to {step.type.replace('_', ' ')} to"
    return True, f"{step.type.replace('_', ' ')}: now at {page.url}"


async def screenshot(page: Page, full_page: bool = False) -> bytes:
    """A PNG of the page. A capture that meets a navigation (a meta refresh, a JS redirect)
    fails in Chromium with "Unable to capture screenshot": wait for the new document and
    try again, a few times, rather than answer an error for a page that is merely moving."""
    for attempt in range(4):
        try:
            return await page.screenshot(type="png", full_page=full_page)
        except PlaywrightError as exc:
            if page.is_closed() or attempt == 3 or "Unable to capture" not in str(exc):
                raise
            with contextlib.suppress(PlaywrightError):
                await page.wait_for_load_state("load", timeout=2000)
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


_PAGE_SIZE_JS = """() => {
  const d = document.documentElement, b = document.body;
  return [Math.max(d ? d.scrollWidth : 0, b ? b.scrollWidth : 0, innerWidth),
          Math.max(d ? d.scrollHeight : 0, b ? b.scrollHeight : 0, innerHeight)];
}"""


def screenshot_clip(width: int, height: int, max_pixels: int, strip: int) -> tuple[int, int]:
    """The part of a ``width`` x ``height`` page a full-page screenshot keeps: the whole
    page if it has at most ``max_pixels`` pixels, else its top, as tall as fits (and no
    wider than leaves room for a ``strip``-pixel-tall band)."""
    width, height = max(1, width), max(1, height)
    clip_width = min(width, max(1, max_pixels // max(1, min(height, strip))))
    return clip_width, min(height, max(1, max_pixels // clip_width))


async def full_page_screenshot(page: Page, settings: Settings) -> Shot:
    """A full-page PNG of at most ``SESSIONS_MAX_SCREENSHOT_PIXELS`` pixels.

    The clip is always passed, so a page that grows (or lies about its size) between
    measuring and capturing still gets at most that many pixels; Chromium then renders
    only the clipped part (a 200,000 px tall page costs what a 16,384 px one does).
    """
    try:
        size = await asyncio.wait_for(
            evaluate_retrying(page, settings, _PAGE_SIZE_JS, None),
            settings.action_timeout_ms / 1000,
        )
        page_width, page_height = (int(size[0]), int(size[1]))
    except TimeoutError:
        raise OperationTimeout(
            f"the page did not answer within {settings.action_timeout_ms} ms "
            "(SESSIONS_ACTION_TIMEOUT_MS) while measuring it for a full-page screenshot; "
            "the session is still there: retry, or observe to see what the page is doing"
        ) from None
    except (TypeError, ValueError, IndexError, KeyError):  # the page redefined something
        page_width, page_height = settings.viewport_width, settings.viewport_height
    clip_width, clip_height = screenshot_clip(
        page_width, page_height, settings.max_screenshot_pixels, settings.viewport_height
    )
    png = await page.screenshot(
        type="png",
        full_page=True,
        clip={"x": 0, "y": 0, "width": clip_width, "height": clip_height},
    )
    width, height = struct.unpack(">II", png[16:24])
    return Shot(png, width, height, max(page_width, width), max(page_height, height))


async def scrape_source(
    page: Page, selector: str | None, settings: Settings
) -> dict[str, str] | None:
    """Cleaned HTML and visible text of the page or ``selector`` (None: no match)."""
    try:
        result: dict[str, str] | None = await evaluate_retrying(page, settings, SCRAPE_JS, selector)
        if result is None and selector is None:
            # no root element: a new document that has not started to parse (a redirect
            # is under way); wait for it to load, then read it
            await settle(page, settings)
            result = await evaluate_retrying(page, settings, SCRAPE_JS, selector)
    except PlaywrightError as exc:
        if selector is not None and "is not a valid selector" in str(exc):
            raise InvalidInput(
                f"selector: {selector!r} is not a valid CSS selector; fix its syntax",
                fields=[{"field": "selector", "message": "is not a valid CSS selector"}],
            ) from None
        raise
    return result


def convert(source: dict[str, str], fmt: str) -> str:
    """``markdown`` (markdownify: ATX headings, links and tables kept), ``text`` or ``html``."""
    if fmt == "html":
        return source["html"]
    if fmt == "text":
        return source["text"]
    markdown = markdownify(source["html"], heading_style="ATX", bullets="-", escape_misc=False)
    markdown = re.sub(r"[ \t]+\n", "\n", markdown)
    return re.sub(r"\n{3,}", "\n\n", markdown).strip() + "\n"
