"""What a session does with its pages: observe, step, scrape (screenshots: capture.py).

Coroutines here run on the runtime loop, with the session's lock held by the manager.
Scrape's Markdown is converted in the page (:mod:`flask_sessions.page.markdown`); the
fallback conversion (:func:`convert`) runs in the Flask thread, so it never stalls the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
from collections.abc import Sequence
from importlib import resources
from typing import Any

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Frame, FrameLocator, Locator, Page
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from flask_sessions.config import Settings
from flask_sessions.errors import InvalidInput, SessionNotActive
from flask_sessions.host.egress import TUNNEL_FAILED
from flask_sessions.page import capture
from flask_sessions.page.markdown import SCRAPE_JS
from flask_sessions.page.markdown import convert as convert  # re-exported: it lived here
from flask_sessions.page.state import (
    NOT_RESPONDING,
    PageNotResponding,
    PageState,
    Tab,
    Target,
    record_status,
)
from flask_sessions.schemas import (
    Action,
    CheckStep,
    ClickStep,
    CloseTabStep,
    FillStep,
    FrameInfo,
    GotoStep,
    HistoryStep,
    HoverStep,
    Observation,
    PageInfo,
    PressKeyStep,
    ScrollStep,
    SelectStep,
    ShotOptions,
    StepRequest,
    SwitchTabStep,
    TabInfo,
    WaitStep,
)


def _script(name: str) -> str:
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    return text.replace("//@lib", LIB_JS)


LIB_JS = resources.files(__package__).joinpath("lib.js").read_text(encoding="utf-8")
OBSERVE_JS = "(args) => JSON.stringify((" + _script("observe.js") + ")(args))"
"""observe.js, its answer as one JSON string: much faster than Playwright's serializer
for hundreds of actions."""
HIT_JS = _script("hit.js")
QUIET_INIT_JS = _script("quiet.js")
"""Init script of every page: when the DOM last changed (see :func:`settle`)."""

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
MAX_CROSS_ORIGIN_FRAMES = 10
"""Cross-origin frames observed through their own frame, per observation."""
TITLE_SECONDS = 0.5
"""How long the title of a background tab may take (a busy tab shows an empty title)."""

Root = Page | FrameLocator


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return re.sub(r"\s+", " ", line)[:300]


_USEFUL = ("intercepts pointer events", "locator resolved to", "element is not", "is not a")


def describe_error(exc: BaseException) -> str:
    """The first line of a Playwright error, plus the call-log lines an agent can act on.

    Playwright's call log says what the locator resolved to and which element intercepts
    the pointer; the first line alone ("Timeout 5000ms exceeded") does not.
    """
    details: list[str] = []
    for line in str(exc).splitlines()[1:]:
        item = re.sub(r"^\d+ × ", "", re.sub(r"\s+", " ", line).strip().lstrip("- ").strip())
        if any(key in item for key in _USEFUL) and item not in details:
            details.append(item[:300])
    head = first_line(exc)
    if not details:
        return head
    resolved = [d for d in details if d.startswith("locator resolved to")][:1]
    rest = [d for d in details if not d.startswith("locator resolved to")][-2:]
    return f"{head} ({'; '.join(resolved + rest)})"


# ------------------------------------------------------------------ loading


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
    try:
        await state.guarded(navigate(state, url, settings))
    except PageNotResponding:  # it hung while we navigated away: a new page does it
        await state.replace_page()
        await state.guarded(navigate(state, url, settings))
    if settled:
        await state.guarded(settle(state, settings, since))
    return since


def _quiet_now(state: PageState, since: float, since_dom: float) -> bool:
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


async def _wait_load(state: PageState, settings: Settings) -> str | None:
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
        problem = await _wait_load(state, settings)
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
        if now >= quiet_deadline or not state.scripts:  # no scripts: no timers to wait on
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


# ------------------------------------------------------------------ observing


async def page_info(state: PageState) -> PageInfo:
    tab = state.tab
    return PageInfo(
        url=tab.page.url,
        title=await _title(tab.page),
        http_status=tab.http_status,
        error=tab.error,
    )


async def _title(page: Page) -> str:
    try:
        return await page.title()
    except PlaywrightError:
        if page.is_closed():
            raise
        return ""  # mid-navigation: the old document is gone, the new one not there yet


async def _bounded_title(page: Page) -> str:
    try:
        async with asyncio.timeout(TITLE_SECONDS):
            return await page.title()
    except (PlaywrightError, TimeoutError):
        return ""


async def tabs_of(state: PageState, current_title: str | None) -> list[TabInfo]:
    """Every tab, with titles (a busy background tab shows an empty one)."""
    titles = await asyncio.gather(
        *(
            _noop(current_title)
            if i == state.current and current_title is not None
            else _bounded_title(t.page)
            for i, t in enumerate(state.tabs)
        )
    )
    return [
        TabInfo(index=i, url=t.page.url, title=title, current=i == state.current)
        for i, (t, title) in enumerate(zip(state.tabs, titles, strict=True))
    ]


async def _noop(value: str | None) -> str:
    return value or ""


def _frame_root(page: Page, path: Sequence[str]) -> Root:
    root: Root = page
    for frame_id in path:
        root = root.frame_locator(f'[data-fs-frame="{frame_id}"]')
    return root


async def _frame_of(page: Page, path: Sequence[str]) -> Frame | None:
    """The Playwright frame of the iframe tagged ``path[-1]`` (inside ``path[:-1]``)."""
    element = _frame_root(page, path[:-1]).locator(f'[data-fs-frame="{path[-1]}"]')
    try:
        handle = await element.element_handle(timeout=1000)
        return await handle.content_frame()
    except PlaywrightError:
        return None


async def _observe_frame(
    state: PageState, page: Page, path: Sequence[str], args: dict[str, Any]
) -> tuple[str, dict[str, Any]] | None:
    """observe.js in a cross-origin frame, through its own Playwright frame (None: cannot).

    Bounded by the probe time: a frame in a busy process leaves the observation without it.
    """
    frame = await _frame_of(page, path)
    if frame is None:
        return None
    try:
        async with asyncio.timeout(state.probe_ms / 1000):
            data: dict[str, Any] = json.loads(await frame.evaluate(OBSERVE_JS, args))
    except (PlaywrightError, TimeoutError):
        return None
    return frame.url, data


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
            await _wait_load(state, settings)
    raise AssertionError("unreachable")


async def observe(
    state: PageState,
    settings: Settings,
    screenshot: ShotOptions | None,
    offset: int = 0,
    find: str | None = None,
    since: float | None = None,
) -> Observation:
    """Describe the current tab: its actions (see observe.js), text, frames, tabs, dialog.

    With ``since`` (a navigation's start, from :func:`open_url`), a page that is not quiet
    yet is settled first and looked at again.
    """
    return await state.guarded(_observe(state, settings, screenshot, offset, find, since))


async def observe_after_step(
    state: PageState, settings: Settings, screenshot: ShotOptions | None
) -> Observation:
    """The observation a step answers with; a page that stopped responding gets a short one."""
    if not state.hung:
        with contextlib.suppress(PageNotResponding):
            return await observe(state, settings, screenshot)
    page = state.page
    return Observation(
        url=page.url,
        title="",
        http_status=state.tab.http_status,
        error=NOT_RESPONDING,
        actions=[],
        text="",
        text_truncated=False,
        tabs=await tabs_of(state, ""),
        dialog=state.take_dialog(),
    )


async def _observe(
    state: PageState,
    settings: Settings,
    screenshot: ShotOptions | None,
    offset: int,
    find: str | None,
    since: float | None = None,
) -> Observation:
    page = state.page
    view = page.viewport_size or {
        "width": settings.viewport_width,
        "height": settings.viewport_height,
    }
    limit = settings.observe_max_actions
    max_text = settings.observe_max_text
    args: dict[str, Any] = {
        "limit": limit,
        "offset": offset,
        "find": find,
        "maxText": max_text,
        "counters": {},
        "frameCount": 0,
        "viewW": view["width"],
        "viewH": view["height"],
    }
    data: dict[str, Any] = json.loads(await evaluate_retrying(state, settings, OBSERVE_JS, args))
    if since is not None and not _quiet_now(state, since, float(data["sinceDom"])):
        await settle(state, settings, since)
        page = state.page
        data = json.loads(await evaluate_retrying(state, settings, OBSERVE_JS, args))
    raw_actions: list[dict[str, Any]] = list(data["actions"])
    total = int(data["total"])
    text = str(data["text"])
    text_length = int(data["textLength"])
    frames: list[dict[str, Any]] = list(data["frames"])
    paths: dict[str, tuple[str, ...]] = {}
    observed: dict[str, bool] = {}
    pending = list(frames)
    visits = 0
    while pending:  # frames in document order; a frame's own frames come after it
        info = pending.pop(0)
        parent = info.get("parent")
        path = (*paths.get(parent, ()), info["id"]) if parent else (info["id"],)
        paths[info["id"]] = path
        observed[info["id"]] = not info["cross_origin"]  # same-origin: walked in the page
        if not info["cross_origin"]:
            continue
        visits += 1
        if visits > MAX_CROSS_ORIGIN_FRAMES or len(path) > 5:
            continue
        args.update(
            counters=data["counters"],
            frameCount=data["frameCount"],
            offset=max(0, offset - total),
            limit=max(0, limit - len(raw_actions)),
            maxText=max(1, max_text - len(text)),
            origin=info["origin"],
            clip=info["clip"],
            frame=info["id"],
        )
        found = await _observe_frame(state, page, path, args)
        if found is None:
            continue
        url, child = found
        observed[info["id"]] = True
        info["url"] = url
        data["counters"], data["frameCount"] = child["counters"], child["frameCount"]
        raw_actions += child["actions"]
        total += int(child["total"])
        if child["text"]:
            section = f"\n\n[frame {info['id']}: {url}]\n{child['text']}"
            text += section
            text_length += len(section) - len(child["text"]) + int(child["textLength"])
        frames += child["frames"]
        pending += child["frames"]
    actions = [Action(**raw) for raw in raw_actions]
    state.ids = {a.id: Target(a, paths.get(a.frame, ()) if a.frame else ()) for a in actions}
    tab = state.tab
    if tab.http_status is None and tab.error is None and data.get("navStatus"):
        record_status(tab, int(data["navStatus"]))  # a tab whose load began before we watched
    shot = await capture.screenshot(state, settings, screenshot) if screenshot else None
    shown = await page_info(state)
    return Observation(
        **shown.model_dump(),
        screenshot=shot,
        screenshot_format=screenshot.format if screenshot else None,
        actions=actions,
        actions_total=total,
        actions_truncated=offset + len(actions) < total,
        text=text[:max_text].rstrip(),
        text_truncated=text_length > max_text,
        frames=[
            FrameInfo(
                id=f["id"],
                url=f["url"],
                name=f["name"],
                parent=f["parent"],
                cross_origin=f["cross_origin"],
                observed=observed.get(f["id"], False),
            )
            for f in frames
        ],
        tabs=await tabs_of(state, shown.title),
        dialog=state.take_dialog(),
    )


# ------------------------------------------------------------------ steps

Targeted = ClickStep | FillStep | CheckStep | HoverStep | SelectStep


def _target(state: PageState, step: Targeted) -> tuple[Locator, Root, str]:
    """The step's element, the page or frame it is in, and how to name it in messages."""
    page = state.page
    if step.selector is not None:
        return page.locator(step.selector).first, page, step.selector
    assert step.id is not None
    target = state.ids.get(step.id)
    if target is None:
        known = ", ".join(list(state.ids)[:20]) or "none: call observe first"
        raise SessionNotActive(
            f"id {step.id} is not in this session's last observation (ids there: {known}); "
            "observe again and use a current id",
            stale_id=step.id,
        )
    root = _frame_root(page, target.frames)
    return root.locator(f'[data-fs-id="{step.id}"]'), root, step.id


async def _check_fresh(locator: Locator, step: Targeted) -> None:
    if step.id is not None and await locator.count() == 0:
        raise SessionNotActive(
            f"the element {step.id} from the last observation is gone (the page changed "
            "since); observe again and use a current id",
            stale_id=step.id,
        )


FIRST_TRY_MS = 750
"""A click or hover first tries this long; if Playwright says another element intercepts
the pointer by then, the step fails at once (naming the cover) instead of retrying for
the whole action timeout."""


async def _pointer_action(locator: Locator, label: str, hover: bool, timeout: int) -> str | None:
    """Click (or hover over) ``locator``; why it landed nowhere (covered), or None.

    Other failures (not visible yet, detached…) keep retrying until ``timeout`` and raise
    as usual. A first try that timed out after the click was performed (waiting for the
    navigation it started) counts as done: the step's settling waits for that load.
    """
    act = locator.hover if hover else locator.click
    first = min(FIRST_TRY_MS, timeout)
    try:
        await act(timeout=first)
        return None
    except PlaywrightTimeoutError as exc:
        log = str(exc)
        if "action done" in log or "performing " in log:
            return None  # it did click (hover): the rest was waiting for a navigation
        covered = "intercepts pointer events" in log
    if covered:
        cover = await _covered(locator, label, timeout)
        if cover is not None:
            return cover  # still covered: say by what, now
    # not visible or enabled yet, or the cover went away: go on for the rest of the time
    try:
        await act(timeout=max(timeout - first, 1))
    except PlaywrightTimeoutError as exc:
        if "intercepts pointer events" in str(exc):
            detail = describe_error(exc)
            return f"{label} is covered: {detail}; close or answer what covers it first"
        raise
    return None


async def _covered(locator: Locator, label: str, timeout: int) -> str | None:
    """What covers ``locator`` at its centre (hit.js), in words; None if nothing now."""
    with contextlib.suppress(PlaywrightError):
        hit: dict[str, Any] = await locator.evaluate(HIT_JS, timeout=timeout)
        if hit["covered"]:
            inside = f" (actions inside it: {', '.join(hit['ids'])})" if hit.get("ids") else ""
            return (
                f"{label} is covered by {hit['by']}{inside}: a click at its centre would land "
                "on that instead; close or answer it first, or scroll"
            )
    return None


NEW_TAB_SECONDS = 2.0
"""How long a step whose page opened a window waits for its tab to appear."""


async def run_step(state: PageState, step: StepRequest, settings: Settings) -> tuple[bool, str]:
    """Run one action. A failure an agent can act on is ``(False, reason)``, not an error.

    The action and the settling after it are probed (see :meth:`PageState.guarded`): a page
    that stops responding answers within seconds. goto and reload replace such a page.
    """
    replaced = False
    reload = isinstance(step, HistoryStep) and step.type == "reload"
    recovers = isinstance(step, GotoStep) or reload

    def in_a_new_page() -> GotoStep:  # goto, or reload as a goto of the same URL
        if isinstance(step, GotoStep):
            return step
        return GotoStep(type="goto", url=state.page.url, dialog=step.dialog)

    touches_page = not isinstance(step, (WaitStep, SwitchTabStep, CloseTabStep))
    if touches_page and await state.still_hung():
        if not recovers:
            return False, (
                f"{NOT_RESPONDING}: its main thread did not answer within "
                f"{state.probe_ms} ms; step goto or reload to replace it (cookies are kept)"
            )
        step = in_a_new_page()
        await state.replace_page()
        replaced = True
    state.begin_step(step.dialog, step.prompt_text)
    since = asyncio.get_running_loop().time()
    try:
        try:
            ok, message = await state.guarded(_act(state, step, settings))
        except PageNotResponding:
            if not recovers or replaced:
                raise
            step = in_a_new_page()
            await state.replace_page()  # it hung while we navigated away: a new page does it
            replaced = True
            ok, message = await state.guarded(_act(state, step, settings))
        if ok and reload and replaced:
            message = f"reload: now at {state.page.url}"
        if ok:
            new_tab = await _follow_new_tab(state)
            after_scroll = isinstance(step, ScrollStep)
            problem = await state.guarded(settle(state, settings, since, after_scroll))
            if state.window_opened and not new_tab:  # its tab may still be on its way
                await state.wait_for_tab(NEW_TAB_SECONDS)
            if await _follow_new_tab(state):  # opened while the page settled
                new_tab = True
                problem = problem or await state.guarded(settle(state, settings, since))
            if new_tab:
                message += (
                    f"; it opened a new tab ({state.current}: {state.page.url}) and the "
                    "session switched to it"
                )
            if problem:
                ok, message = False, f"{message}, but {problem}"
    except PageNotResponding:
        ok, message = (
            False,
            (
                f"{NOT_RESPONDING} after the action: its main thread did not answer within "
                f"{state.probe_ms} ms; step goto or reload to replace it (cookies are kept)"
            ),
        )
    finally:
        dialogs = state.end_step()
    if replaced:
        message += " (the page had stopped responding; it was replaced by a new one, cookies kept)"
    for info, explicit in dialogs:
        if info.type == "alert" and not explicit:
            message += f"; the page showed an alert: {info.message!r}"
        elif explicit:
            extra = f" with {info.prompt_text!r}" if info.prompt_text is not None else ""
            message += f"; the {info.type} {info.message!r} was {info.answer}{extra}"
        else:
            ok = False
            message += (
                f"; the page asked ({info.type}) {info.message!r} and it was dismissed, the "
                'default, so what it guarded did not happen: repeat with "dialog": "accept"'
            )
    if step.dialog is not None and not dialogs:
        message += f"; no dialog opened (dialog: {step.dialog} was not needed)"
    return ok, message


async def _follow_new_tab(state: PageState) -> bool:
    """If the step opened tabs, make the last one current; whether it did."""
    opened = state.opened()
    if not opened or opened[-1] is state.page:
        return False
    await state.switch_to(next(i for i, t in enumerate(state.tabs) if t.page is opened[-1]))
    return True


async def _act(state: PageState, step: StepRequest, settings: Settings) -> tuple[bool, str]:
    timeout = settings.action_timeout_ms
    page = state.page
    try:
        if isinstance(step, (ClickStep, FillStep, CheckStep, HoverStep, SelectStep)):
            locator, root, label = _target(state, step)
            await _check_fresh(locator, step)
            known_disabled = step.id is not None and not state.ids[step.id].action.enabled
            if known_disabled and not await locator.is_enabled(timeout=timeout):
                return False, f"{label} is disabled; pick another action or wait for it"
            if isinstance(step, (ClickStep, HoverStep)):
                hover = isinstance(step, HoverStep)
                covered = await _pointer_action(locator, label, hover, timeout)
                if covered:
                    return False, covered
                return True, f"{'hovered over' if hover else 'clicked'} {label}"
            if isinstance(step, FillStep):
                if step.clear_before_fill:
                    await locator.fill(step.value, timeout=timeout)
                else:
                    await locator.press("End", timeout=timeout)
                    await locator.press_sequentially(step.value, timeout=timeout)
                message = f"filled {label}"
                if step.press_enter:
                    await locator.press("Enter", timeout=timeout)
                    message += " and pressed Enter"
                return True, message
            if isinstance(step, CheckStep):
                await locator.set_checked(step.value, timeout=timeout)
                return True, f"{'checked' if step.value else 'unchecked'} {label}"
            values = [step.value] if isinstance(step.value, str) else list(step.value)
            return await _select(locator, root, label, values, timeout)
        if isinstance(step, PressKeyStep):
            await page.keyboard.press(step.key)
            return True, f"pressed {step.key}"
        if isinstance(step, GotoStep):
            await navigate(state, step.url, settings)
            if state.tab.error:
                return False, state.tab.error
            return True, f"opened {step.url}"
        if isinstance(step, HistoryStep):
            return await _history(state, step, settings)
        if isinstance(step, ScrollStep):
            # a screenful of this session's own viewport (browser options may set it)
            view = page.viewport_size
            amount = step.amount or (view["height"] if view else settings.viewport_height)
            dy = amount if step.type == "scroll_down" else -amount
            await page.evaluate("dy => window.scrollBy(0, dy)", dy)
            return True, f"scrolled {'down' if dy > 0 else 'up'} {amount} px"
        if isinstance(step, SwitchTabStep):
            if step.index >= len(state.tabs):
                return False, _no_tab(state, step.index)
            await state.switch_to(step.index)
            return True, f"switched to tab {step.index}: {state.page.url}"
        if isinstance(step, CloseTabStep):
            index = state.current if step.index is None else step.index
            if index >= len(state.tabs):
                return False, _no_tab(state, index)
            if len(state.tabs) == 1:
                return False, "tab 0 is the only tab; open another page with goto instead"
            await state.close_tab(index)
            return True, f"closed tab {index}; now on tab {state.current}: {state.page.url}"
        assert isinstance(step, WaitStep)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.ended.wait(), step.time_ms / 1000)
        if state.ended.is_set():
            raise SessionNotActive("the session was closed during the wait")
        return True, f"waited {step.time_ms} ms"
    except PlaywrightTimeoutError as exc:
        return (
            False,
            f"timed out after {timeout} ms (SESSIONS_ACTION_TIMEOUT_MS): {describe_error(exc)}",
        )
    except PlaywrightError as exc:
        if page.is_closed():
            raise
        return False, f"the action failed: {describe_error(exc)}"


def _no_tab(state: PageState, index: int) -> str:
    return f"there is no tab {index}; the tabs are 0 to {len(state.tabs) - 1} (observation.tabs)"


_SELECT_INFO_JS = """el => el.tagName === 'SELECT'
  ? {native: true, multiple: el.multiple,
     options: Array.from(el.options).map(o => [o.value, (o.label || o.text).trim()])}
  : {native: false, role: (el.getAttribute('role') || '').trim(),
     editable: el.tagName === 'INPUT' || el.isContentEditable,
     controls: (el.getAttribute('aria-controls') || el.getAttribute('aria-owns') || '')
       .trim().split(/\\s+/)[0] || null}"""


def _match(options: list[list[str]], value: str) -> str | None:
    """An option's value whose value, else label, else label ignoring case, is ``value``."""
    for found in (
        next((v for v, _ in options if v == value), None),
        next((v for v, label in options if label == value), None),
        next((v for v, label in options if label.lower() == value.lower()), None),
    ):
        if found is not None:
            return found
    return None


async def _select(
    locator: Locator, root: Root, label: str, values: list[str], timeout: int
) -> tuple[bool, str]:
    """Choose ``values`` in a native ``<select>``, or click them in an ARIA listbox."""
    info: dict[str, Any] = await locator.evaluate(_SELECT_INFO_JS, timeout=timeout)
    if not info["native"]:
        return await _select_aria(locator, root, label, values, info, timeout)
    options: list[list[str]] = info["options"]
    labels = [option_label for _, option_label in options]
    if len(values) > 1 and not info["multiple"]:
        return False, (
            f"{label} takes one option (it is not a <select multiple>); send one value, "
            "e.g. " + repr(values[0])
        )
    matches = []
    for value in values:
        match = _match(options, value)
        if match is None:
            return False, (
                f"{label} has no option {value!r}; its options are: "
                + ", ".join(repr(x) for x in labels[:50])
            )
        matches.append(match)
    chosen = await locator.select_option(value=matches, timeout=timeout)
    by_value = dict((v, lab) for v, lab in options)
    names = ", ".join(repr(by_value.get(v, v)) for v in chosen)
    return True, f"selected {names} in {label}"


async def _select_aria(
    locator: Locator,
    root: Root,
    label: str,
    values: list[str],
    info: dict[str, Any],
    timeout: int,
) -> tuple[bool, str]:
    """An ARIA listbox or combobox: open it if its options are not showing, click each one.

    The options are looked for in the element itself (a listbox), in what its
    ``aria-controls``/``aria-owns`` names, else anywhere visible on the page or frame; an
    editable combobox (autocomplete) that shows none after a click gets the value typed.
    """
    if info["role"] == "listbox":
        scope: Root | Locator = locator
    elif info["controls"]:
        scope = root.locator(f'[id="{info["controls"]}"]')
    else:
        scope = root

    def options() -> Locator:
        return scope.get_by_role("option").filter(visible=True)

    wait_ms = min(timeout, 2000)
    chosen = []
    for value in values:
        if await options().count() == 0:
            if info["editable"]:  # an autocomplete: typing shows the options
                await locator.fill(value, timeout=timeout)
            else:
                await locator.click(timeout=timeout)
            with contextlib.suppress(PlaywrightTimeoutError):
                await options().first.wait_for(state="visible", timeout=wait_ms)
        option = scope.get_by_role("option", name=value, exact=True).filter(visible=True)
        if await option.count() == 0:
            pattern = re.compile(rf"^\s*{re.escape(value)}\s*$", re.IGNORECASE)
            option = scope.get_by_role("option", name=pattern).filter(visible=True)
        if await option.count() == 0:
            names = [n.strip() for n in await options().all_inner_texts()]
            listed = ", ".join(repr(n) for n in names[:50]) or "none showed up"
            with contextlib.suppress(PlaywrightError):
                await locator.press("Escape", timeout=1000)  # close what we opened
            return False, f"{label} has no option {value!r}; its options are: {listed}"
        await option.first.click(timeout=timeout)
        chosen.append(value)
    return True, f"selected {', '.join(repr(v) for v in chosen)} in {label}"


async def _history(state: PageState, step: HistoryStep, settings: Settings) -> tuple[bool, str]:
    nav = settings.navigation_timeout_ms
    page = state.page
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


# ------------------------------------------------------------------ scrape


async def scrape_source(
    state: PageState, selector: str | None, settings: Settings, fmt: str = "markdown"
) -> dict[str, str] | None:
    """The page or ``selector``'s part as ``fmt`` (Markdown converted in the page, or else
    its cleaned HTML: see :func:`convert`), with its ``title`` and ``url``; None: no match."""
    args = {"selector": selector, "format": fmt}

    async def read() -> dict[str, str] | None:
        result: dict[str, str] | None = await evaluate_retrying(state, settings, SCRAPE_JS, args)
        if result is None and selector is None:
            # no root element: a new document that has not started to parse (a redirect
            # is under way); wait for it to load, then read it
            await _wait_load(state, settings)
            result = await evaluate_retrying(state, settings, SCRAPE_JS, args)
        return result

    try:
        return await state.guarded(read())
    except PlaywrightError as exc:
        if selector is not None and "is not a valid selector" in str(exc):
            raise InvalidInput(
                f"selector: {selector!r} is not a valid CSS selector; fix its syntax",
                fields=[{"field": "selector", "message": "is not a valid CSS selector"}],
            ) from None
        raise
