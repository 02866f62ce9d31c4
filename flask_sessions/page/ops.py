"""What a session does with its pages: observe, step, scrape (screenshots: capture.py).

Coroutines here run on the runtime loop, with the session's lock held by the manager.
This module runs steps (:func:`run_step`) and scrapes; the rest lives by concern beside it:
:mod:`.settle` (loading and settling), :mod:`.observation` (observe), :mod:`.pointer`
(click, hover), :mod:`.dropdown` (select_dropdown_option), :mod:`.describe` (errors in
words). Scrape's Markdown is converted in the page (:mod:`flask_sessions.page.markdown`);
the fallback conversion (:func:`convert`) runs in the Flask thread, so it never stalls the
loop.
"""

from __future__ import annotations

import asyncio
import contextlib

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from flask_sessions.config import Settings
from flask_sessions.errors import InvalidInput, SessionNotActive
from flask_sessions.page.describe import describe_error as describe_error
from flask_sessions.page.describe import first_line as first_line
from flask_sessions.page.dropdown import select
from flask_sessions.page.markdown import SCRAPE_JS
from flask_sessions.page.markdown import convert as convert  # re-exported: it lived here
from flask_sessions.page.observation import Root, frame_root
from flask_sessions.page.observation import observe as observe
from flask_sessions.page.observation import observe_after_step as observe_after_step
from flask_sessions.page.observation import page_info as page_info
from flask_sessions.page.observation import tabs_of as tabs_of
from flask_sessions.page.pointer import pointer_action
from flask_sessions.page.scripts import OBSERVE_JS as OBSERVE_JS
from flask_sessions.page.scripts import QUIET_INIT_JS as QUIET_INIT_JS
from flask_sessions.page.settle import evaluate_retrying, navigate, settle, wait_load
from flask_sessions.page.settle import open_url as open_url
from flask_sessions.page.state import NOT_RESPONDING, PageNotResponding, PageState
from flask_sessions.schemas import (
    CheckStep,
    ClickStep,
    CloseTabStep,
    FillStep,
    GotoStep,
    HistoryStep,
    HoverStep,
    PressKeyStep,
    ScrollStep,
    SelectStep,
    StepRequest,
    SwitchTabStep,
    WaitStep,
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
    root = frame_root(page, target.frames)
    return root.locator(f'[data-fs-id="{step.id}"]'), root, step.id


async def _check_fresh(locator: Locator, step: Targeted) -> None:
    if step.id is not None and await locator.count() == 0:
        raise SessionNotActive(
            f"the element {step.id} from the last observation is gone (the page changed "
            "since); observe again and use a current id",
            stale_id=step.id,
        )


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
                covered = await pointer_action(locator, label, hover, timeout)
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
            return await select(locator, root, label, values, timeout)
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
            amount = step.amount or settings.viewport_height
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
            await wait_load(state, settings)
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
