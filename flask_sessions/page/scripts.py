"""The scripts flask_sessions runs in pages, read from this package's ``.js`` files.

``//@lib`` in a script is replaced by ``lib.js`` (helpers shared by observe.js and hit.js).
"""

from __future__ import annotations

from importlib import resources


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

# perception II (issue 22): drags, points, scroll boxes, form fields
DRAG_WATCH_JS = _script("drag.js").replace("//@mode", "watch")
DRAG_READ_JS = _script("drag.js").replace("//@mode", "read")
DRAG_READ_PAGE_JS = "(token) => (" + DRAG_READ_JS + ")(null, token)"
"""drag.js: put listeners for one drag in an element's window (``watch``), then read what
they saw as JSON (``read``; ``DRAG_READ_PAGE_JS`` in the page's own window)."""
POINT_JS = """({x, y}) => {
  //@lib
  const hit = deepHit(document, x, y);
  return hit ? describeEl(hit) : null;
}""".replace("//@lib", LIB_JS)
"""What is at a point of the viewport, described."""
SCROLL_JS = _script("scroll.js")
"""Scroll an element's scroll box (or the page); how far it really moved."""
SCROLL_PAGE_JS = "(args) => (" + SCROLL_JS + ")(null, args)"
"""scroll.js for the page itself."""
LISTBOX_JS = _script("listbox.js")
"""The list of options a select_dropdown_option target opens, tagged for the step."""
FIELD_JS = _script("field.js")
"""A fill or type target: why it is read-only (and what sets it), or focus it."""
ACTIVE_JS = """() => {
  //@lib
  let active = document.activeElement;
  while (active && active.shadowRoot && active.shadowRoot.activeElement) {
    active = active.shadowRoot.activeElement;
  }
  return active && active !== document.body && active !== document.documentElement
    ? describeEl(active) : null;
}""".replace("//@lib", LIB_JS)
"""The element with the focus, described (null: the page's body)."""
