"""select_dropdown_option: a native ``<select>``, or an ARIA listbox or combobox.

Coroutines here run on the runtime loop, with the session's lock held by the manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from typing import Any

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from flask_sessions.page.observation import Root
from flask_sessions.page.scripts import LISTBOX_JS

_SELECT_INFO_JS = """el => el.tagName === 'SELECT'
  ? {native: true, multiple: el.multiple,
     options: Array.from(el.options).map(o => [o.value, (o.label || o.text).trim()])}
  : {native: false, role: (el.getAttribute('role') || '').trim(),
     editable: el.tagName === 'INPUT' || el.isContentEditable}"""


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

    The options are looked for only in the target's own list: the element itself (a
    listbox), what its ``aria-controls``/``aria-owns`` names (or a listbox labelled by it),
    else the options that appear when it is opened (clicked; an editable combobox, an
    autocomplete, gets the value typed). Another list showing on the page is never used.
    """
    chosen = []
    for value in values:
        scope = await _list_of(locator, root, info, value, timeout)
        if scope is None:
            how = "typed into" if info["editable"] else "clicked"
            return False, (
                f"{label} showed no options: it names no listbox (aria-controls, aria-owns) "
                f"and none appeared when it was {how}; click it and observe to see what opens"
            )
        option = scope.get_by_role("option", name=value, exact=True).filter(visible=True)
        if await option.count() == 0:
            pattern = re.compile(rf"^\s*{re.escape(value)}\s*$", re.IGNORECASE)
            option = scope.get_by_role("option", name=pattern).filter(visible=True)
        if await option.count() == 0:
            shown = scope.get_by_role("option").filter(visible=True)
            names = [n.strip() for n in await shown.all_inner_texts()]
            listed = ", ".join(repr(n) for n in names[:50]) or "none showed up"
            with contextlib.suppress(PlaywrightError):
                await locator.press("Escape", timeout=1000)  # close what we opened
            return False, f"{label} has no option {value!r}; its options are: {listed}"
        await option.first.click(timeout=timeout)
        chosen.append(value)
    return True, f"selected {', '.join(repr(v) for v in chosen)} in {label}"


async def _list_of(
    locator: Locator, root: Root, info: dict[str, Any], value: str, timeout: int
) -> Locator | None:
    """The target's own list of options, open (see :func:`_select_aria`); None: no list."""
    if info["role"] == "listbox":
        return locator
    token = secrets.token_hex(4)
    scope = root.locator(f'[data-fs-listbox="{token}"]')

    def showing() -> Locator:
        return scope.get_by_role("option").filter(visible=True)

    async def open_it() -> None:
        if info["editable"]:  # an autocomplete: typing shows the options
            await locator.fill(value, timeout=timeout)
        else:
            await locator.click(timeout=timeout)

    wait_ms = min(timeout, 2000)
    if await locator.evaluate(LISTBOX_JS, [token, "controlled"]):
        if await showing().count() == 0:
            await open_it()
            with contextlib.suppress(PlaywrightTimeoutError):
                await showing().first.wait_for(state="visible", timeout=wait_ms)
        return scope
    # not named: open it, and take the options that appear (twice, if it was open already
    # and the first click closed it)
    try:
        for _ in range(2):
            await locator.evaluate(LISTBOX_JS, [token, "mark"])
            await open_it()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait_ms / 1000
            while loop.time() < deadline:
                for mode in ("controlled", "opened"):
                    if await locator.evaluate(LISTBOX_JS, [token, mode]):
                        return scope
                await asyncio.sleep(0.05)
            if info["editable"]:
                break
    finally:
        with contextlib.suppress(PlaywrightError):
            await locator.evaluate(LISTBOX_JS, [token, "clear"])
    return None
