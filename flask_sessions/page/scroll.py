"""scroll_down and scroll_up: the page, or the nearest scrollable box around an element, and
how far it really moved (issue 22).

Coroutines here run on the runtime loop, with the session's lock held by the manager.
"""

from __future__ import annotations

from typing import Any

from playwright.async_api import Locator, Page

from flask_sessions.page.scripts import SCROLL_JS, SCROLL_PAGE_JS


async def scroll(
    page: Page, target: tuple[Locator, str] | None, down: bool, amount: int | None, timeout: int
) -> tuple[bool, str]:
    """Scroll by ``amount`` px (None: one screen of what scrolls). Nothing moving (already
    at the end) is a failure that says so; a shorter move says how far it went."""
    args = {"down": down, "amount": amount}
    if target is None:
        done: dict[str, Any] = await page.evaluate(SCROLL_PAGE_JS, args)
    else:
        done = await target[0].evaluate(SCROLL_JS, args, timeout=timeout)
    what = "the page"
    if done["box"]:
        what = f"the scroll box {done['id'] or done['box']}"
        if target is not None and done["id"] != target[1]:
            what += f" around {target[1]}"
    way, end = ("down", "bottom") if down else ("up", "top")
    moved, asked = int(done["moved"]), int(done["step"])
    if moved == 0:
        return False, f"{what} is already at the {end}; nothing moved"
    message = f"scrolled {what} {way} {moved} px"
    if moved < asked:
        message += f" (of {asked} asked)"
    left = int(done["max"]) - int(done["at"]) if down else int(done["at"])
    if left <= 1:
        message += f": it reached the {end}"
    else:
        message += f"; {left} px more {'below' if down else 'above'}"
    return True, message
