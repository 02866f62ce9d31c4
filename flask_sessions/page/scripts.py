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
