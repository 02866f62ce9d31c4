"""Pointer actions: click and hover (at an element, a point within it, or a point in the
viewport), failing at once on an element something covers; and drag (issue 22).

Coroutines here run on the runtime loop, with the session's lock held by the manager.
"""

from __future__ import annotations

import contextlib
import functools
import json
import secrets
from typing import Any

from playwright.async_api import ElementHandle, FloatRect, Locator, Page, Position
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from flask_sessions.page.describe import describe_error
from flask_sessions.page.scripts import (
    DRAG_READ_JS,
    DRAG_READ_PAGE_JS,
    DRAG_WATCH_JS,
    HIT_JS,
    POINT_JS,
)
from flask_sessions.schemas import Offset, Point

FIRST_TRY_MS = 750
"""A click or hover first tries this long; if Playwright says another element intercepts
the pointer by then, the step fails at once (naming the cover) instead of retrying for
the whole action timeout."""


async def pointer_action(
    locator: Locator,
    label: str,
    hover: bool,
    timeout: int,
    position: Position | None = None,
) -> str | None:
    """Click (or hover over) ``locator`` (at ``position`` from its top-left corner, else its
    centre); why it landed nowhere (covered), or None.

    Other failures (not visible yet, detached…) keep retrying until ``timeout`` and raise
    as usual. A first try that timed out after the click was performed (waiting for the
    navigation it started) counts as done: the step's settling waits for that load.
    """
    act = functools.partial(locator.hover if hover else locator.click, position=position)
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


# ---- perception II (issue 22): points, and drag


def _px(value: float) -> str:
    return f"{value:g}"


async def within(
    locator: Locator, label: str, position: Point, timeout: int
) -> tuple[Position | None, str | None]:
    """``position`` (from the top-left corner of the element's border box, as its ``box``)
    as Playwright's (from its padding box); or why it is not on the element."""
    size = await locator.evaluate(_SIZE_JS, timeout=timeout)
    if size is None:
        return None, f"{label} is not visible, so no point within it can be clicked"
    if position.x > size["width"] or position.y > size["height"]:
        return None, (
            f"position ({_px(position.x)}, {_px(position.y)}) is outside {label}, whose box is "
            f"{_px(round(size['width']))}×{_px(round(size['height']))} px; send a position "
            "from its top-left corner within that"
        )
    return {"x": position.x - size["left"], "y": position.y - size["top"]}, None


_SIZE_JS = """el => {
  const r = el.getBoundingClientRect();
  if (!r.width || !r.height) return null;
  return {width: r.width, height: r.height, left: el.clientLeft, top: el.clientTop};
}"""


async def at_point(page: Page, position: Point, hover: bool, view: tuple[int, int]) -> str:
    """Click (or hover) at ``position`` in the viewport; says on what. Raises nothing of
    its own: a point outside the viewport is a ValueError with the reason."""
    width, height = view
    if position.x >= width or position.y >= height:
        raise ValueError(
            f"position ({_px(position.x)}, {_px(position.y)}) is outside the viewport "
            f"({width}×{height} CSS px); scroll first, or use a point within it"
        )
    what = await page.evaluate(POINT_JS, {"x": position.x, "y": position.y})
    if hover:
        await page.mouse.move(position.x, position.y)
    else:
        await page.mouse.click(position.x, position.y)
    on = f" on {what}" if what else ""
    verb = "hovered" if hover else "clicked"
    return f"{verb} at ({_px(position.x)}, {_px(position.y)}) in the viewport{on}"


DRAG_MOVES = 12
"""Mouse moves from the press to the drop (a pointer-event library sees them in steps)."""


async def drag(
    page: Page,
    source: Locator,
    label: str,
    target: tuple[Locator, str] | None,
    offset: Offset | None,
    timeout: int,
    view: tuple[int, int],
    in_page: bool = False,
) -> tuple[bool, str]:
    """Press on ``source``, move in steps to ``target``'s centre (or by ``offset``), release.

    The mouse is Chromium's own input, so HTML5 drag and drop (dragstart, dragover, drop with
    a real DataTransfer) and pointer-event libraries (pointerdown, pointermove…, pointerup)
    both see a real drag. Which one happened is read from listeners put in the page for the
    drag (drag.js), and said. ``in_page``: both ends are in the page itself, not in frames
    (fewer round trips: the listeners are read from the page's window).
    """
    width, height = view

    def on_screen(rect: FloatRect | None) -> bool:
        if rect is None:
            return False
        x, y = rect["x"] + rect["width"] / 2, rect["y"] + rect["height"] / 2
        return 0 <= x < width and 0 <= y < height

    covered = await pointer_action(source, label, True, timeout)  # the mouse is now on it
    if covered:
        return False, covered
    goal = await target[0].bounding_box(timeout=timeout) if target is not None else None
    if target is not None and not on_screen(goal):  # bring it on screen, then the source
        await target[0].scroll_into_view_if_needed(timeout=timeout)
        covered = await pointer_action(source, label, True, timeout)
        if covered:
            return False, covered
        goal = await target[0].bounding_box(timeout=timeout)
    token = secrets.token_hex(4)
    handles: list[ElementHandle] = []
    if in_page:
        box: FloatRect | None = await source.evaluate(DRAG_WATCH_JS, token, timeout=timeout)
    else:  # each end's own window, read through handles (an element may move or go)
        handles = [await source.element_handle(timeout=timeout)]
        if target is not None:
            handles.append(await target[0].element_handle(timeout=timeout))
        for handle in handles:
            await handle.evaluate(DRAG_WATCH_JS, token)
        box = await source.bounding_box(timeout=timeout)
    if box is None or not box["width"]:
        await _drag_record(page, handles, token)  # take the listeners away
        return False, f"{label} is not visible"
    x0, y0 = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    if target is not None:
        if goal is None:
            await _drag_record(page, handles, token)
            return False, f"{target[1]} (where to drop) is not visible"
        x1, y1 = goal["x"] + goal["width"] / 2, goal["y"] + goal["height"] / 2
        where = target[1]
    else:
        assert offset is not None
        x1, y1 = x0 + offset.x, y0 + offset.y
        where = f"({_px(round(x1))}, {_px(round(y1))}), {_px(offset.x)}, {_px(offset.y)} px away"
    if not (0 <= x1 < width and 0 <= y1 < height):
        await _drag_record(page, handles, token)  # take the listeners away
        return False, (
            f"the drop point ({_px(round(x1))}, {_px(round(y1))}) is outside the viewport "
            f"({width}×{height} CSS px): {label} and where it goes are not on screen together; "
            "scroll so they are, or drag by a shorter offset in parts"
        )
    await page.mouse.down()
    # a few px first: libraries start a drag past a small distance (and HTML5 does too)
    await page.mouse.move(x0 + 3, y0 + 3)
    await page.mouse.move(x1, y1, steps=DRAG_MOVES)
    await page.mouse.move(x1 + 1, y1 + 1)  # one more dragover where it lands
    await page.mouse.up()
    seen = await _drag_record(page, handles, token)
    return _drag_words(seen, label, where)


async def _drag_record(page: Page, handles: list[ElementHandle], token: str) -> dict[str, Any]:
    """What the drag's listeners saw, from every window they were put in (no handles: the
    page's own window)."""
    seen: dict[str, Any] = {"moves": 0}
    windows: set[str] = set()
    reads = [handle.evaluate(DRAG_READ_JS, token) for handle in handles]
    for read in reads or [page.evaluate(DRAG_READ_PAGE_JS, token)]:
        with contextlib.suppress(PlaywrightError):
            found = json.loads(await read)
            if not found or found["window"] in windows:
                continue
            windows.add(found["window"])
            for key, value in found.items():
                if key == "moves":
                    seen["moves"] += value
                elif value and not seen.get(key):
                    seen[key] = value
    for handle in handles:
        with contextlib.suppress(PlaywrightError):
            await handle.dispose()
    return seen


def _drag_words(seen: dict[str, Any], label: str, where: str) -> tuple[bool, str]:
    if seen.get("dragstart"):
        if seen.get("drop"):
            return True, (
                f"dragged {label} to {where} (HTML5 drag and drop: dragstart on "
                f"{seen['dragstart']}, drop on {seen['drop']})"
            )
        return False, (
            f"dragged {label} to {where}, but nothing took the drop: an HTML5 drag started "
            f"(dragstart on {seen['dragstart']}) and no element there accepted it (none "
            "cancelled dragover), so the browser sent no drop; pick another drop target"
        )
    if seen.get("down"):
        return True, (
            f"dragged {label} to {where} with pointer events (pointerdown on {seen['down']}, "
            f"{seen['moves']} pointermoves, pointerup on {seen.get('up') or 'nothing'}); "
            "no HTML5 drag started"
        )
    return True, f"dragged {label} to {where} (the page saw no pointer or drag events)"
