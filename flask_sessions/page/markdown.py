"""Markdown for ``POST /env/scrape``: converted in the page, by turndown and our rules.

``scrape.js`` cleans the page (hidden, script and style content dropped, links made
absolute) and converts it in the page with turndown (``vendor/turndown.js``, vendored from
npm, MIT) and the rules in ``markdown.js``, which give what markdownify gave before: ``#``
headings, ``-`` bullets, nested lists indented, pipe tables with ``|`` escaped and ``<br>``
inside cells. The work runs in the session's own renderer process, so it holds neither the
GIL nor the browser loop, and costs what the page costs (see the README's Performance).

markdownify stays for HTML handed to :func:`convert` directly, and for a page where the
in-page converter throws (a page that replaced a built-in it uses): then the cleaned HTML
comes back and is converted here, in the caller's thread.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

from markdownify import MarkdownConverter

_FILES = resources.files(__package__)
TURNDOWN_JS = _FILES.joinpath("vendor", "turndown.js").read_text(encoding="utf-8")
"""turndown's browser build (CommonJS: it ends with ``module.exports = TurndownService``)."""
RULES_JS = _FILES.joinpath("markdown.js").read_text(encoding="utf-8").strip()
SCRAPE_JS = (
    _FILES.joinpath("scrape.js")
    .read_text(encoding="utf-8")
    .replace("//@turndown", TURNDOWN_JS)
    .replace("//@markdown", RULES_JS)
)
"""``({selector, format}) => {title, url, markdown | text | html} | null``."""
# perception II (issue 22): a rich-text editor's value, with its formatting
EDITABLE_JS = (
    _FILES.joinpath("editable.js")
    .read_text(encoding="utf-8")
    .replace("//@turndown", TURNDOWN_JS)
    .replace("//@markdown", RULES_JS)
)
"""``(element) => markdown``: a contenteditable element's content (see editable.js)."""


class _Markdown(MarkdownConverter):
    """markdownify, with table cells that cannot break their row: ``|`` escaped, line
    breaks as ``<br>``. (markdownify's stubs leave out its ``convert_*`` methods.)"""

    def convert_td(self, el: Any, text: str, parent_tags: Any) -> str:
        return str(super().convert_td(el, _cell(text), parent_tags))  # type: ignore[misc]

    def convert_th(self, el: Any, text: str, parent_tags: Any) -> str:
        return str(super().convert_th(el, _cell(text), parent_tags))  # type: ignore[misc]

    def convert_br(self, el: Any, text: str, parent_tags: Any) -> str:
        if "td" in parent_tags or "th" in parent_tags:
            return "\n"  # _cell turns it into <br>
        return str(super().convert_br(el, text, parent_tags))  # type: ignore[misc]


def _cell(text: str) -> str:
    text = re.sub(r"(?<!\\)\|", r"\\|", text.strip())
    return re.sub(r"[ \t]+", " ", re.sub(r"\s*\n\s*", "<br>", text))


def tidy(markdown: str) -> str:
    """No trailing blanks on a line, at most one empty line in a row, one final newline."""
    markdown = re.sub(r"[ \t]+\n", "\n", markdown)
    return re.sub(r"\n{3,}", "\n\n", markdown).strip() + "\n"


def convert(source: Mapping[str, str], fmt: str) -> str:
    """What ``scrape.js`` returned, as ``fmt``: ``markdown`` (converted in the page, or
    here by markdownify from ``html``), ``text`` or ``html``.

    >>> convert({"html": "<h1>Hi</h1><p>a | b</p>"}, "markdown")
    '# Hi\\n\\na | b\\n'
    """
    if fmt == "html":
        return source["html"]
    if fmt == "text":
        return source["text"]
    markdown = source.get("markdown")
    if markdown is None:
        markdown = _Markdown(heading_style="ATX", bullets="-", escape_misc=False).convert(
            source["html"]
        )
    return tidy(markdown)
