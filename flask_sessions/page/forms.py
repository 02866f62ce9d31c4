"""Typing into form fields: fill and type, and the read-only fields they cannot change
(issue 22).

Coroutines here run on the runtime loop, with the session's lock held by the manager.
"""

from __future__ import annotations

from typing import Any

from playwright.async_api import Locator, Page

from flask_sessions.page.scripts import ACTIVE_JS, FIELD_JS


async def read_only(locator: Locator, label: str, timeout: int) -> str | None:
    """Why ``locator`` cannot be typed into, naming the widget to use instead; None if it
    can. Said at once: Playwright would wait the whole action timeout for it to be editable."""
    found: dict[str, Any] | None = await locator.evaluate(FIELD_JS, "readonly", timeout=timeout)
    if found is None:
        return None
    message = f"{label} is read-only ({found['why']}): it cannot be typed into"
    role, popup = found["role"], found["popup"]
    if role == "combobox" or popup == "listbox" or found["list"]:
        return f"{message}; it is a list to choose from: use select_dropdown_option on {label}"
    if popup:
        return (
            f"{message}; it opens a {popup if popup != 'true' else 'popup'} "
            f"(aria-haspopup): click {label} and pick the value there"
        )
    if found["near"]:
        controls = ", ".join(f"{i} {name!r}" if name else i for i, name in found["near"])
        return f"{message}; it is set by the control beside it: {controls}"
    return f"{message}; click it to see what sets it (a picker, a dialog)"


async def focus_end(locator: Locator, timeout: int) -> bool:
    """Focus ``locator`` with the caret at its end, unless it has the focus already (then the
    caret stays where it is); whether it had it."""
    return bool(await locator.evaluate(FIELD_JS, "focus", timeout=timeout))


async def focused(page: Page) -> str | None:
    """The element with the focus, described (None: nothing, the page's body)."""
    found = await page.evaluate(ACTIVE_JS)
    return str(found) if found else None
