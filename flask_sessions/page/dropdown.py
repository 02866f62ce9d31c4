"""select_dropdown_option: a native ``<select>``, or an ARIA listbox or combobox.

Coroutines here run on the runtime loop, with the session's lock held by the manager.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from flask_sessions.page.observation import Root

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


async def select(
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
