"""The live sessions page (``<prefix>/ui``), driven in a real browser by pytest-playwright.

The server under test is real: the app (with the test's ManualClock and a fast reaper)
serves on a free 127.0.0.1 port from a thread, since pytest-playwright's sync ``page``
runs an asyncio loop in the test thread. Its sessions are real Chromium contexts on the
local page server. The browser the tests look through is the machine's Chromium (the one
``python -m flask_sessions --find-browser`` finds), launched with the project's flags.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from flask import Flask
from playwright.sync_api import (
    Browser,
    BrowserType,
    Locator,
    Page,
    Playwright,
    expect,
    sync_playwright,
)
from werkzeug.serving import BaseWSGIServer, make_server

from flask_sessions import ManualClock
from flask_sessions.front.ui import CSP
from flask_sessions.host.browser import find_browser, launch_args

from .conftest import AUTH_A, PAGES, TOKEN_A, TOKEN_B, AppFactory

PREFIX = "/api/v1"  # a mounted blueprint: the page must find the API under it


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """The machine's Chromium, with the flags the project launches it with."""
    return {
        **browser_type_launch_args,
        "executable_path": find_browser().executable,
        "args": launch_args(),
    }


# pytest-playwright's Playwright lives for the whole session, and while it lives its asyncio
# loop counts as running in the main thread: later tests' asyncio.run() and sync_playwright()
# would fail. These overrides keep the same chain (launch args -> browser -> context -> page)
# but end it with this module.


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser_type(playwright: Playwright, browser_name: str) -> BrowserType:
    browser_type: BrowserType = getattr(playwright, browser_name)
    return browser_type


@pytest.fixture(scope="module")
def launch_browser(
    browser_type_launch_args: dict[str, Any], browser_type: BrowserType
) -> Callable[..., Browser]:
    def launch(**kwargs: Any) -> Browser:
        return browser_type.launch(**{**browser_type_launch_args, **kwargs})

    return launch


@pytest.fixture(scope="module")
def browser(launch_browser: Callable[..., Browser]) -> Iterator[Browser]:
    browser = launch_browser()
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def browser_context_args() -> dict[str, Any]:
    return {"viewport": {"width": 1280, "height": 800}}


@dataclass
class Live:
    """The app serving on a real port, its clock, and a client for its JSON API."""

    app: Flask
    url: str  # http://127.0.0.1:PORT/api/v1
    clock: ManualClock
    api: httpx.Client

    def start(self, **body: Any) -> str:
        response = self.api.post("/session/start", json=body)
        assert response.status_code == 200, response.text
        session_id: str = response.json()["session_id"]
        return session_id

    def session(self, session_id: str) -> dict[str, Any]:
        response = self.api.get(f"/session/{session_id}")
        assert response.status_code == 200, response.text
        record: dict[str, Any] = response.json()
        return record


@pytest.fixture
def live(make_app: AppFactory, clock: ManualClock) -> Iterator[Live]:
    app = make_app(SESSIONS_URL_PREFIX=PREFIX, SESSIONS_REAPER_INTERVAL_SECONDS=0.1)
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="ui-test-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}{PREFIX}"
    with httpx.Client(base_url=url, headers=AUTH_A, timeout=30) as api:
        try:
            yield Live(app, url, clock, api)
        finally:
            server.shutdown()
            thread.join(10)
            server.server_close()


def sign_in(page: Page, live: Live, token: str = TOKEN_A) -> None:
    page.goto(live.url + "/ui")
    page.fill("#token", token)
    page.click("#login button[type=submit]")


def row(page: Page, session_id: str) -> Locator:
    return page.locator(f'tr[data-session-id="{session_id}"]')


# ------------------------------------------------------------------ in the browser


def test_lists_a_session_and_its_countdown_moves(page: Page, live: Live, page_server: str) -> None:
    sid = live.start(url=page_server + "/")
    other = live.start(url=page_server + "/second", keep_alive=True)
    bob = {"Authorization": f"Bearer {TOKEN_B}"}  # bob's session is not alice's business
    assert live.api.post("/session/start", headers=bob, json={}).status_code == 200
    sign_in(page, live)
    mine = row(page, sid)
    expect(mine.locator(".status")).to_have_text("active")
    expect(mine.locator(".title")).to_have_text("Home")
    expect(mine.locator(".url")).to_have_text(page_server + "/")
    expect(mine.locator(".sid")).to_have_text(sid)
    expect(mine.locator(".keepalive")).to_have_text("no")
    expect(page.locator("#rows tr")).to_have_count(2)  # alice's two, not bob's
    expect(row(page, other).locator(".countdown")).to_have_text("none (keep-alive)")
    expect(row(page, other).locator(".keepalive")).to_have_text("yes")

    countdown = mine.locator(".countdown")
    expect(countdown).to_have_text(re.compile(r"^in (4:5\d|5:00)$"))
    first = countdown.inner_text()
    expect(countdown).not_to_have_text(first, timeout=3000)  # it ticks between refreshes
    # The server's clock moves a minute: the next refresh follows it, not the browser's.
    live.clock.advance(minutes=1)
    expect(countdown).to_have_text(re.compile(r"^in (3:5\d|4:00)$"), timeout=5000)
    expect(mine.locator(".idle")).to_have_text(re.compile(r"^(0:5\d|1:0\d)$"))


def test_thumbnail_is_a_decoded_image_and_enlarges(
    page: Page, live: Live, page_server: str
) -> None:
    sid = live.start(url=page_server + "/")
    touched = live.session(sid)["last_accessed_at"]
    with page.expect_response(re.compile(r"/screenshot\?")) as shot:
        sign_in(page, live)
    assert shot.value.headers["content-type"] == "image/jpeg"  # small thumbnails
    img = row(page, sid).locator(".thumb img")
    expect(img).to_be_visible()
    assert img.evaluate("img => img.src").startswith("blob:")
    size = img.evaluate("img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])")
    assert size == [1280, 720]  # the session's viewport, really decoded
    # The page's looks are not accesses: watching does not keep a session alive.
    live.clock.advance(seconds=30)
    first_src = img.get_attribute("src")
    expect(img).not_to_have_attribute("src", first_src or "", timeout=6000)  # refreshed
    assert live.session(sid)["last_accessed_at"] == touched

    row(page, sid).locator(".thumb").click()
    dialog = page.locator("#lightbox")
    expect(dialog).to_be_visible()
    big = page.locator("#lb-img")
    assert big.evaluate("img => img.decode().then(() => img.naturalWidth)") == 1280
    expect(page.locator("#lb-title")).to_have_text("Home")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()


def test_close_changes_the_row(page: Page, live: Live, page_server: str) -> None:
    sid = live.start(url=page_server + "/")
    sign_in(page, live)
    mine = row(page, sid)
    expect(mine.locator(".status")).to_have_text("active")
    mine.locator("button.close").click()
    expect(mine.locator(".status")).to_have_text("closed")
    expect(mine.locator(".status")).to_have_class(re.compile(r"\bs-closed\b"))
    expect(mine.locator("button.close")).to_be_hidden()
    assert live.session(sid)["status"] == "closed"
    # the filter: only active sessions, then none
    page.select_option("#filter", "active")
    expect(mine).to_be_hidden()
    expect(page.locator("#empty")).to_have_text("No active sessions.")
    page.select_option("#filter", "closed")
    expect(mine).to_be_visible()


def test_a_wrong_token_says_so_and_asks_again(page: Page, live: Live, page_server: str) -> None:
    sid = live.start(url=page_server + "/")
    sign_in(page, live, token="not-a-token")
    error = page.locator("#login-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("This token was refused (401)")
    expect(error).to_contain_text("enter it again")
    expect(page.locator("#token")).to_be_visible()
    expect(page.locator("#token")).to_be_focused()
    assert page.evaluate("sessionStorage.length") == 0  # the bad token is not kept
    # the right one works, and a reload keeps it (this tab only)
    page.fill("#token", TOKEN_A)
    page.click("#login button[type=submit]")
    expect(row(page, sid).locator(".status")).to_have_text("active")
    expect(error).to_be_hidden()
    page.reload()
    expect(row(page, sid).locator(".status")).to_have_text("active")
    expect(page.locator("#login")).to_be_hidden()


def test_a_timeout_shows_without_a_reload(page: Page, live: Live, page_server: str) -> None:
    sid = live.start(url=page_server + "/", session_timeout_minutes=2)
    sign_in(page, live)
    mine = row(page, sid)
    expect(mine.locator(".status")).to_have_text("active")
    expect(mine.locator(".countdown")).to_have_text(re.compile(r"^in (1:5\d|2:00)$"))
    page.evaluate("window.stillThisDocument = true")
    live.clock.advance(minutes=2, seconds=1)  # the reaper (every 0.1 s) times it out
    expect(mine.locator(".status")).to_have_text("timed out", timeout=6000)
    expect(mine.locator(".status")).to_have_class(re.compile(r"\bs-timed_out\b"))
    expect(mine.locator(".reason")).not_to_be_empty()
    expect(mine.locator("button.close")).to_be_hidden()
    assert page.evaluate("window.stillThisDocument") is True
    assert live.session(sid)["status"] == "timed_out"


def test_a_hidden_tab_asks_nothing(page: Page, live: Live, page_server: str) -> None:
    sid = live.start(url=page_server + "/")
    sign_in(page, live)
    expect(row(page, sid).locator(".thumb img")).to_be_visible()
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.evaluate(
        """() => {
            Object.defineProperty(document, "hidden", {configurable: true, get: () => true});
            document.dispatchEvent(new Event("visibilitychange"));
        }"""
    )
    page.wait_for_timeout(3500)  # longer than both the list's and the thumbnails' periods
    assert asked == []
    thumbnail = re.compile(r"/screenshot\?format=jpeg&quality=60&touch=false$")
    with page.expect_request(thumbnail, timeout=5000):
        page.evaluate(
            """() => {
                delete document.hidden;  // the real getter again: visible
                document.dispatchEvent(new Event("visibilitychange"));
            }"""
        )


def test_page_text_is_text(
    page: Page, live: Live, page_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Titles and URLs are the visited page's to choose: never markup on ours."""
    evil = '<img src=x onerror="window.pwned=1">Evil & co'
    doc = f"<!doctype html><title>{evil.replace('&', '&amp;').replace('<', '&lt;')}</title>"
    monkeypatch.setitem(PAGES, "/evil", (200, doc, {}))
    sid = live.start(url=page_server + "/evil?<b>=1")
    sign_in(page, live)
    title = row(page, sid).locator(".title")
    expect(title).to_have_text(evil)
    assert title.locator("img").count() == 0
    expect(row(page, sid).locator(".url")).to_contain_text("/evil?")
    assert page.evaluate("window.pwned") is None


# ------------------------------------------------------------------ over HTTP


def test_the_page_needs_no_token_and_is_locked_down(live: Live) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as anonymous:
        page = anonymous.get("/ui")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CSP
        assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
        assert page.headers["x-content-type-options"] == "nosniff"
        assert '<script src="ui/ui.js"' in page.text  # relative: works under any prefix
        assert "<script>" not in page.text
        script = anonymous.get("/ui/ui.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert "innerHTML" not in script.text
        style = anonymous.get("/ui/ui.css")
        assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
        again = anonymous.get("/ui/ui.js", headers={"If-None-Match": script.headers["etag"]})
        assert again.status_code == 304
        missing = anonymous.get("/ui/secrets.py")
        assert missing.status_code == 404 and "error" in missing.json()
        assert anonymous.get("/sessions").status_code == 401  # the data still needs one


def test_the_page_can_be_turned_off(make_app: AppFactory) -> None:
    client = make_app(SESSIONS_UI=False).test_client()
    response = client.get("/ui")
    assert response.status_code == 404 and response.is_json


def test_list_shows_each_page_and_thumbnails_do_not_touch(live: Live, page_server: str) -> None:
    sid = live.start(url=page_server + "/")
    blank = live.start()
    listed = {s["session_id"]: s for s in live.api.get("/sessions").json()["sessions"]}
    assert listed[sid]["page"]["url"] == page_server + "/"
    assert listed[sid]["page"]["title"] == "Home"
    assert listed[blank]["page"]["url"] == "about:blank"
    # moved by a step: the list follows
    live.api.post("/env/step", json={"session_id": sid, "type": "click", "selector": "a"})
    listed = {s["session_id"]: s for s in live.api.get("/sessions").json()["sessions"]}
    assert listed[sid]["page"]["title"] == "Second"

    def accessed() -> datetime:
        return datetime.fromisoformat(live.session(sid)["last_accessed_at"])

    before = accessed()
    live.clock.advance(minutes=1)
    assert live.api.get(f"/session/{sid}/screenshot?touch=false").status_code == 200
    assert accessed() == before
    assert live.api.get(f"/session/{sid}/screenshot").status_code == 200
    assert (accessed() - before).total_seconds() == 60
    bad = live.api.get(f"/session/{sid}/screenshot?touch=maybe")
    assert bad.status_code == 400 and "touch" in bad.json()["error"]
    # an ended session keeps its last page
    live.api.delete(f"/session/{sid}")
    assert live.session(sid)["page"]["title"] == "Second"


# ------------------------------------------------------------------ profiles (issue 18)


def test_the_profile_column_and_the_profiles_list(page: Page, live: Live, page_server: str) -> None:
    made = live.api.post("/profiles", json={"name": "shop <b>login</b>"})
    assert made.status_code == 200, made.text
    pid = made.json()["profile_id"]
    sid = live.start(url=page_server + "/set-cookie", profile={"id": pid, "persist": True})
    plain = live.start()
    sign_in(page, live)
    expect(row(page, sid).locator(".pid")).to_have_text(pid)
    expect(row(page, sid).locator(".psave")).to_have_text("persist")
    expect(row(page, plain).locator(".pid")).to_have_text("—")
    listed = page.locator(f'#profiles tr[data-profile-id="{pid}"]')
    expect(listed.locator(".pname")).to_have_text("shop <b>login</b>")  # text, never HTML
    expect(listed.locator(".inuse")).to_have_text(sid)
    live.api.post("/session/close", json={"session_id": sid})
    expect(row(page, sid).locator(".psave")).to_have_text(re.compile(r"^saved "))
    assert "alice" not in page.content()  # the cookie's value (visitor=alice) is never shown
