"""Playwright's errors, in words an agent can act on."""

from __future__ import annotations

import re


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
