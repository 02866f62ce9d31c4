"""Pointer actions: click and hover, failing at once on an element something covers.

Coroutines here run on the runtime loop, with the session's lock held by the manager.
"""

from __future__ import annotations

import contextlib
from typing import Any

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from flask_sessions.page.describe import describe_error
from flask_sessions.page.scripts import HIT_JS

FIRST_TRY_MS = 750
"""A click or hover first tries this long; if Playwright says another element intercepts
the pointer by then, the step fails at once (naming the cover) instead of retrying for
the whole action timeout."""


async def pointer_action(locator: Locator, label: str, hover: bool, timeout: int) -> str | None:
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
