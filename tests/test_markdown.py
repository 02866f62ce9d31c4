"""Scrape as Markdown (issue 12): converted in the page by turndown and our rules.

The guarantees on a richer page than the demo's report (``#`` headings, absolute links, pipe
tables with ``|`` escaped, nested lists, hidden, script and style content dropped); the
in-page converter agreeing with markdownify (the fallback) on what both produce; and the
fallback itself, on a page that broke a built-in the converter uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from flask_sessions.page import markdown
from flask_sessions.page.markdown import SCRAPE_JS, convert

from .conftest import AUTH_A, html_pages, serving


def _page(title: str, body: str, head: str = "") -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>.gone{{display:none}} .ghost{{visibility:hidden}}</style>{head}</head>"
        f"<body>{body}</body></html>"
    )


RICH = """<nav><a href="/">Home</a> <a href="docs/intro">Intro</a></nav>
<h1>Release notes</h1>
<p>Read the <a href="/guide?a=1&amp;b=2">guide</a>, <strong>bold</strong>, <em>em</em>,
<code>snake_case()</code>, a_b and 2*3.</p>
<h2>Lists</h2>
<ul>
  <li>One
    <ul>
      <li>One.one <a href="#top">top</a>
        <ol start="3"><li>deep three</li><li>deep four</li></ol>
      </li>
      <li>One.two</li>
    </ul>
  </li>
  <li>Two</li>
</ul>
<h3>Operators</h3>
<table>
  <thead><tr><th>Name</th><th>Form</th></tr></thead>
  <tbody>
    <tr><td>or</td><td>a | b</td></tr>
    <tr><td>pipes</td><td><code>x || y</code></td></tr>
    <tr><td>lines</td><td>first<br>second</td></tr>
    <tr><td>paragraphs</td><td><p>one</p><p>two</p></td></tr>
    <tr><td>link</td><td><a href="/ops">ops</a></td></tr>
  </tbody>
</table>
<table><tr><td>no</td><td>header</td></tr></table>
<div class="gone">HIDDEN-BY-CLASS</div>
<p style="display:none">HIDDEN-INLINE</p>
<p hidden>HIDDEN-ATTRIBUTE</p>
<span class="ghost">HIDDEN-VISIBILITY</span>
<div aria-hidden="true">HIDDEN-ARIA</div>
<script>window.leak = "SCRIPT-TEXT";</script>
<style>.x { content: "STYLE-TEXT"; }</style>
<noscript>NOSCRIPT-TEXT</noscript>
<template><p>TEMPLATE-TEXT</p></template>
<blockquote><p>Quoted.</p></blockquote>
<pre><code>def f():
    return 1
</code></pre>
<p><img src="/img/logo.png" alt="logo"> <a href="https://example.org/x">https://example.org/x</a></p>
<h4>End</h4>"""

RICH_MARKDOWN = """\
[Home]({base}/) [Intro]({base}/docs/intro)

# Release notes

Read the [guide]({base}/guide?a=1&b=2), **bold**, *em*, `snake_case()`, a\\_b and 2\\*3.

## Lists

- One
  - One.one [top]({base}/rich#top)
    3. deep three
    4. deep four
  - One.two
- Two

### Operators

| Name | Form |
| --- | --- |
| or | a \\| b |
| pipes | `x \\|\\| y` |
| lines | first<br>second |
| paragraphs | one two |
| link | [ops]({base}/ops) |

|  |  |
| --- | --- |
| no | header |

> Quoted.

```
def f():
    return 1
```

![logo]({base}/img/logo.png) <https://example.org/x>

#### End
"""

# A page that replaced a built-in turndown uses: the in-page conversion throws, the cleaned
# HTML comes back and markdownify converts it, with the same guarantees.
BROKEN = (
    "<h1>Broken</h1><p>See <a href='/next'>next</a>.</p>"
    "<table><tr><th>k</th><th>v</th></tr><tr><td>a|b</td><td>c</td></tr></table>"
    "<p class='gone'>HIDDEN</p><script>Array.prototype.reduce = undefined;</script>"
)

PAGES = {
    "/rich": _page("Release notes", RICH),
    "/broken": _page("Broken", BROKEN),
}


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with serving(html_pages(PAGES, _page("Not found", "<h1>404</h1>"))) as url:
        yield url


@pytest.fixture
def markdownify_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The HTML markdownify was handed (the fallback), call by call."""
    calls: list[str] = []
    original = markdown._Markdown.convert

    def spy(self: markdown._Markdown, html: str) -> str:
        calls.append(html)
        return str(original(self, html))

    monkeypatch.setattr(markdown._Markdown, "convert", spy)
    return calls


def scrape(client: FlaskClient, **body: Any) -> Any:
    response = client.post("/env/scrape", json=body, headers=AUTH_A)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


HIDDEN = ("HIDDEN", "SCRIPT-TEXT", "STYLE-TEXT", "NOSCRIPT-TEXT", "TEMPLATE-TEXT", "leak")


def test_markdown_keeps_the_guarantees_on_a_rich_page(
    client: FlaskClient, base: str, markdownify_calls: list[str]
) -> None:
    body = scrape(client, url=base + "/rich", keep_alive=True)
    assert markdownify_calls == []  # converted in the page
    assert body["success"] is True and body["title"] == "Release notes"
    assert body["url"] == base + "/rich"
    assert body["content"] == RICH_MARKDOWN.format(base=base)
    for text in HIDDEN:
        assert text not in body["content"], text


def test_in_page_markdown_agrees_with_markdownify(client: FlaskClient, base: str) -> None:
    """The fallback converts the cleaned HTML to what the page gives (markdownify keeps a
    paragraph's source line breaks where turndown joins them: compared without those)."""
    sid = scrape(client, url=base + "/rich", keep_alive=True)["session"]["session_id"]
    for selector in (None, "table", "ul", "h1", "blockquote", "pre"):
        in_page = scrape(client, session_id=sid, selector=selector)["content"]
        html = scrape(client, session_id=sid, selector=selector, format="html")["content"]
        python = convert({"html": html}, "markdown")
        assert python.replace(",\n`", ", `") == in_page, selector


def test_markdown_falls_back_to_markdownify_when_the_page_breaks_it(
    client: FlaskClient, base: str, markdownify_calls: list[str]
) -> None:
    body = scrape(client, url=base + "/broken")
    assert len(markdownify_calls) == 1 and "HIDDEN" not in markdownify_calls[0]
    assert body["content"] == (
        f"# Broken\n\nSee [next]({base}/next).\n\n| k | v |\n| --- | --- |\n| a\\|b | c |\n"
    )


def test_scrape_script_converts_in_the_page_and_says_what_it_returns() -> None:
    """One script: turndown and our rules are inlined, no CDN, nothing left on the page."""
    assert "module.exports = TurndownService" in SCRAPE_JS
    assert "service.addRule(" in SCRAPE_JS
    assert "//@" not in SCRAPE_JS
    source = {"markdown": "# Hi  \n\n\n\nthere", "title": "t", "url": "u"}
    assert convert(source, "markdown") == "# Hi\n\nthere\n"
