"""Bounded pages and status codes that mean what the README says (issue 8).

One case of each kind, against real Chromium through Flask's test client; pages come from
a local server on 127.0.0.1 only. The heavy versions (200 popups, a memory bomb left to
run, 50 MB downloads, a fuzz of every route, a soak) are in ``test_stress.py`` behind
``make stress``. Nothing here asserts a duration: waits poll a state with a generous bound.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from unittest import mock

import psutil
import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from flask_sessions import FlaskSessions
from flask_sessions.errors import BrowserUnavailable, OperationTimeout, PageFailed
from flask_sessions.host.limits import RendererScanner, SessionLimits
from flask_sessions.host.runtime import wrap_playwright_error
from flask_sessions.page.capture import screenshot_clip

from .conftest import AUTH_A, AppFactory, png_size, wait_for

MB = 1 << 20

# ------------------------------------------------------------------ the local site

HTML: dict[str, str] = {
    "/second": "<!doctype html><title>Second</title><p>second page</p>",
    # ten popups at once, as soon as the page runs
    "/popups": (
        "<!doctype html><title>Popups</title><body><p>popups</p><script>"
        "for (let i = 0; i < 10; i++) window.open('/second?' + i, '_blank');</script>"
    ),
    # downloads started by the page itself: <a download> clicked from script
    "/download-3x5": (
        "<!doctype html><title>Downloads</title><body><script>"
        "for (let i = 0; i < 3; i++) { const a = document.createElement('a');"
        " a.href = '/file?mb=5&n=' + i; a.download = 'f' + i; document.body.appendChild(a);"
        " a.click(); }</script>"
    ),
    "/download-small": (
        "<!doctype html><title>Small</title><body><a id=a href='/file?mb=1' download>f</a>"
        "<script>document.getElementById('a').click()</script>"
    ),
    "/download-slow": (
        "<!doctype html><title>Slow</title><body><a id=a href='/slow?mb=40' download>f</a>"
        "<script>document.getElementById('a').click()</script>"
    ),
    # 10,000 px tall
    "/tall": (
        "<!doctype html><title>Tall</title><body style='margin:0'>"
        "<div style='height:10000px;background:linear-gradient(#f00,#00f)'></div>"
    ),
    "/short": "<!doctype html><title>Short</title><body style='margin:0'><p>short</p>",
    # a click on its button grows ArrayBuffers (outside the V8 heap) to 640 MB, in one task
    # right after the click has returned: no repeating timer, nothing during the start
    "/bomb": (
        "<!doctype html><title>Bomb</title><body><button id='go'>go</button><script>"
        "window.keep = []; document.getElementById('go').addEventListener('click', () =>"
        " setTimeout(() => { try { for (let i = 0; i < 20; i++) {"
        " const b = new Uint8Array(32 << 20); b.fill(7); keep.push(b); }"
        " document.title = 'Grown to ' + keep.length * 32 + ' MB';"
        " } catch (e) { document.title = 'Not grown: ' + e; } }, 0));</script>"
    ),
    # leaves the document right after it has loaded
    "/meta-refresh": (
        "<!doctype html><meta http-equiv='refresh' content='0;url=/second'>"
        "<title>Refresh</title><p>moving on</p>"
    ),
    "/js-redirect": (
        "<!doctype html><title>Redirect</title><p>moving on</p><script>"
        "addEventListener('load', () => setTimeout(() => location.replace('/second'), 0));"
        "</script>"
    ),
    # a key press keeps its main thread busy for 20 s
    "/hang": (
        "<!doctype html><title>Hang</title><p>hang</p><script>addEventListener('keydown', () =>"
        " setTimeout(() => { const end = Date.now() + 20000; while (Date.now() < end) {} },"
        " 0));</script>"
    ),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        params = dict(p.partition("=")[::2] for p in query.split("&") if p)
        if path == "/file":  # an attachment with a Content-Length, sent at once
            self._attachment(int(params.get("mb", "1")), length=True, delay=0.0)
        elif path == "/slow":  # an attachment without a length, 64 KiB every 10 ms
            self._attachment(int(params.get("mb", "1")), length=False, delay=0.01)
        else:
            body = HTML.get(path, "<!doctype html><title>Not found</title>").encode()
            self.send_response(200 if path in HTML else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def _attachment(self, mb: int, length: bool, delay: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Disposition", "attachment; filename=data.bin")
        chunk = b"\0" * (64 << 10)
        chunks = (mb << 20) // len(chunk)
        if length:
            self.send_header("Content-Length", str(chunks * len(chunk)))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        try:
            for _ in range(chunks):
                self.wfile.write(chunk)
                if delay:
                    time.sleep(delay)
        except OSError:  # the browser cancelled it
            pass
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# ------------------------------------------------------------------------ helpers


def post(client: FlaskClient, path: str, expect: int = 200, **body: Any) -> Any:
    response = client.post(path, json=body, headers=AUTH_A)
    assert response.status_code == expect, (path, body, response.status_code, response.data)
    assert response.is_json
    return response.get_json()


def open_session(client: FlaskClient, url: str) -> tuple[str, Any]:
    body = post(client, "/env/observe", url=url, keep_alive=True)
    return body["session"]["session_id"], body["observation"]


def limits_of(app: Flask, session_id: str) -> SessionLimits:
    manager = FlaskSessions.state(app).manager

    async def get() -> SessionLimits:
        live = manager.live(session_id)
        assert live is not None
        return live.limits

    return FlaskSessions.state(app).runtime.submit(get(), 10)


def on_loop(app: Flask, fn: Any) -> Any:
    """``fn()`` called on the runtime loop (where the session state lives)."""

    async def call() -> Any:
        return fn()

    return FlaskSessions.state(app).runtime.submit(call(), 10)


def du(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


# -------------------------------------------------------------------------- pages


def test_popups_past_the_cap_are_closed_and_reported(make_app: AppFactory, site: str) -> None:
    app = make_app(SESSIONS_MAX_PAGES_PER_SESSION=3)
    client = app.test_client()
    sid, first = open_session(client, site + "/popups")
    limits = limits_of(app, sid)
    # the page asked for 10 popups: 2 fit beside it, 8 are closed
    assert wait_for(lambda: on_loop(app, lambda: limits.popups_blocked) == 8, 20)
    assert on_loop(app, lambda: len(limits.pages)) == 3
    live = FlaskSessions.state(app).manager.live(sid)
    assert live is not None
    assert wait_for(lambda: on_loop(app, lambda: len(live.context.pages)) == 3, 10)

    warnings = list(first["warnings"])
    later = post(client, "/env/observe", session_id=sid)["observation"]
    warnings += later["warnings"]
    assert later["popups_blocked"] == 8
    assert warnings and all("SESSIONS_MAX_PAGES_PER_SESSION" in w for w in warnings), warnings
    counts = [re.search(r"closed (\d+)", w) for w in warnings]
    assert sum(int(m.group(1)) for m in counts if m) == 8, warnings
    # reported once: the next observation has no warning left
    assert post(client, "/env/observe", session_id=sid)["observation"]["warnings"] == []


# Downloads are session files now (issue 19): tests/test_files.py.


# -------------------------------------------------------------------- screenshots


def test_full_page_screenshot_is_clipped_and_says_so(make_app: AppFactory, site: str) -> None:
    app = make_app(SESSIONS_MAX_SCREENSHOT_PIXELS=1280 * 2000)
    client = app.test_client()
    sid, _ = open_session(client, site + "/tall")
    r = client.get(f"/session/{sid}/screenshot?full_page=true", headers=AUTH_A)
    assert r.status_code == 200 and r.mimetype == "image/png"
    assert r.headers["X-Screenshot-Clipped"] == "1280x2000 of 1280x10000"
    r = client.get(
        f"/session/{sid}/screenshot?full_page=true",
        headers={**AUTH_A, "Accept": "application/json"},
    )
    body = r.get_json()
    assert png_size(body["screenshot"]) == (1280, 2000)
    assert body["clipped"] is True and body["page_size"] == {"width": 1280, "height": 10000}

    post(client, "/env/step", session_id=sid, type="goto", url=site + "/short")
    r = client.get(f"/session/{sid}/screenshot?full_page=true", headers=AUTH_A)
    assert r.status_code == 200 and "X-Screenshot-Clipped" not in r.headers


def test_screenshot_clip_arithmetic() -> None:
    cap = 1280 * 16384
    assert screenshot_clip(1280, 720, cap, 720) == (1280, 720)  # fits: the whole page
    assert screenshot_clip(1280, 200_000, cap, 720) == (1280, 16384)
    width, height = screenshot_clip(10**9, 10**9, cap, 720)  # absurd: still within the cap
    assert width * height <= cap and width >= 1 and height >= 1
    assert screenshot_clip(0, 0, cap, 720) == (1, 1)


# ------------------------------------------------------------------------- memory


def test_a_page_over_the_memory_limit_ends_its_session_with_the_figure(
    make_app: AppFactory, site: str
) -> None:
    app = make_app(SESSIONS_MAX_PAGE_MEMORY_MB=400, SESSIONS_WATCHDOG_INTERVAL_SECONDS=0.1)
    client = app.test_client()
    calm, _ = open_session(client, site + "/second")
    bomb, _ = open_session(client, site + "/bomb")
    # the step may answer before the page has grown, or 409 once the watchdog has stopped it
    r = client.post(
        "/env/step", json={"session_id": bomb, "type": "click", "selector": "#go"}, headers=AUTH_A
    )
    assert r.status_code in (200, 409), r.get_json()

    def status(sid: str) -> Any:
        return client.get(f"/session/{sid}", headers=AUTH_A).get_json()

    guard = FlaskSessions.state(app).manager.guard
    assert guard is not None
    # what the watchdog saw, should it not have stopped the page: its browser, its kills,
    # the largest renderer it read
    if not wait_for(lambda: status(bomb)["status"] == "error", 60):
        seen = client.post("/env/observe", json={"session_id": bomb}, headers=AUTH_A)
        renderers = {  # every renderer under the browser, as psutil reads it now
            p.pid: p.memory_info().rss >> 20
            for p in psutil.Process(guard.pid).children(recursive=True)
            if "--type=renderer" in p.cmdline()
        }
        pytest.fail(
            f"not stopped: step {r.status_code}, status {status(bomb)['status']}, page title "
            f"{(seen.get_json().get('observation') or {}).get('title')!r}; browser "
            f"{guard.pid}, kills {guard.kills}, largest renderer read "
            f"{guard.scanner.peak_rss >> 20} MB, renderers now (MB) {renderers}, the "
            f"scanner's {[p.pid for p in guard.scanner.renderers(guard.pid or 0)]}"
        )
    error = status(bomb)["error"]
    match = re.fullmatch(
        r"the page used (\d+) MB \(limit 400 MB, SESSIONS_MAX_PAGE_MEMORY_MB\) and was "
        r"stopped; start a new session",
        error,
    )
    assert match and int(match.group(1)) > 400, error
    assert status(calm)["status"] == "active"  # only the session that used it
    r = client.post("/env/observe", json={"session_id": bomb}, headers=AUTH_A)
    assert r.status_code == 409 and r.get_json()["status"] == "error"
    assert post(client, "/env/observe", session_id=calm)["observation"]["title"] == "Second"


def test_a_renderer_read_while_it_is_still_named_as_its_zygote_is_watched() -> None:
    """A renderer forked from a zygote carries the zygote's command line until it renames
    itself. Read in that moment, it must not stay a "zygote" for the watchdog: it is read
    again until it has settled. Here a real process tree plays Chromium's: a "browser", a
    "zygote", and a child that starts as ``--type=zygote`` and becomes ``--type=renderer``
    (by exec, which keeps its PID and start time)."""
    child = (
        "import os, sys, time; time.sleep(3); os.execv(sys.executable, [sys.executable, '-c',"
        " 'import time; time.sleep(60)', '--type=renderer'])"
    )
    zygote = (
        "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
        f"{child!r}, '--type=zygote']); time.sleep(60)"
    )
    browser_code = (
        "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
        f"{zygote!r}, '--type=zygote']); time.sleep(60)"
    )
    browser = subprocess.Popen([sys.executable, "-c", browser_code])
    try:
        tree = psutil.Process(browser.pid)

        def newborn() -> psutil.Process | None:
            found = [p for p in tree.children(recursive=True) if p.ppid() != browser.pid]
            return found[0] if found else None

        assert wait_for(lambda: newborn() is not None, 10)
        born = newborn()
        assert born is not None
        scanner = RendererScanner()
        assert scanner.renderers(browser.pid) == []  # the first tick reads the whole tree
        assert "--type=zygote" in born.cmdline()  # ... while the newborn is named a zygote
        assert wait_for(lambda: "--type=renderer" in born.cmdline(), 15)
        assert [p.pid for p in scanner.renderers(browser.pid)] == [born.pid]  # from the zygote
    finally:
        for proc in psutil.Process(browser.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                proc.kill()
        browser.kill()
        browser.wait()


def test_the_watchdog_walks_only_chromiums_tree(make_app: AppFactory, site: str) -> None:
    """The renderers found through /proc/<pid>/task/*/children are psutil's, and a kernel
    without those lists falls back to psutil."""
    app = make_app()
    client = app.test_client()
    for _ in range(3):
        r = client.post("/session/start", json={"url": site + "/second"}, headers=AUTH_A)
        assert r.status_code == 200, r.get_json()
    guard = FlaskSessions.state(app).manager.guard
    assert guard is not None and guard.pid is not None
    pid = guard.pid
    scanner = RendererScanner()

    def pids(found: list[psutil.Process]) -> set[int]:
        return {p.pid for p in found}

    def agree(read: Callable[[], list[psutil.Process]]) -> bool:
        # a renderer may start or end between two readings (a pool refill): read again
        return pids(read()) == pids(RendererScanner()._renderers_by_psutil(pid))

    assert len(scanner.renderers(pid)) >= 3  # from the browser
    assert wait_for(lambda: agree(lambda: scanner.renderers(pid)), 10)  # from the zygotes
    r = client.post("/session/start", json={"url": site + "/second"}, headers=AUTH_A)
    assert r.status_code == 200
    assert wait_for(lambda: agree(lambda: scanner.renderers(pid)), 10)  # a new renderer
    with mock.patch("flask_sessions.host.limits._child_pids", return_value=None):
        assert wait_for(lambda: agree(lambda: RendererScanner().renderers(pid)), 10)


def test_low_free_memory_refuses_new_sessions_with_503_and_retry_after(
    make_app: AppFactory,
) -> None:
    app = make_app(SESSIONS_MIN_FREE_MEMORY_MB=10**9)  # more than any machine has
    client = app.test_client()
    for path in ("/session/start", "/env/observe", "/env/scrape"):
        r = client.post(path, json={}, headers=AUTH_A)
        assert r.status_code == 503 and r.is_json, (path, r.data)
        assert "SESSIONS_MIN_FREE_MEMORY_MB" in r.get_json()["error"]
        assert int(r.headers["Retry-After"]) > 0
    assert client.get("/sessions", headers=AUTH_A).status_code == 200


# ------------------------------------------------------------------- status codes


@pytest.mark.parametrize("page", ["/meta-refresh", "/js-redirect"])
def test_scrape_retries_a_document_replaced_by_navigation(
    make_app: AppFactory, site: str, page: str
) -> None:
    client = make_app().test_client()
    sid, _ = open_session(client, site + "/second")
    for _ in range(6):
        body = post(client, "/env/scrape", session_id=sid, url=site + page, format="text")
        assert body["success"] is True
        assert body["title"] in ("Refresh", "Redirect", "Second"), body


def test_page_timeouts_are_504_never_503(make_app: AppFactory, site: str) -> None:
    app = make_app(
        SESSIONS_ACTION_TIMEOUT_MS=1,  # no screenshot is that fast: a Playwright timeout
        SESSIONS_NAVIGATION_TIMEOUT_MS=1000,
        SESSIONS_OPERATION_TIMEOUT_SECONDS=5,
    )
    client = app.test_client()
    sid, _ = open_session(client, site + "/hang")
    r = client.get(f"/session/{sid}/screenshot", headers=AUTH_A)
    assert r.status_code == 504 and r.is_json, (r.status_code, r.data)
    assert "the page did not answer in time while taking the screenshot" in r.get_json()["error"]

    # now the page hangs: the step's own observation may or may not come before that
    r = client.post(
        "/env/step", json={"session_id": sid, "type": "press_key", "key": "a"}, headers=AUTH_A
    )
    assert r.status_code in (200, 504) and r.is_json, r.data
    # a page that no longer answers is said so at once (issue 11): 409, never 503
    r = client.get(f"/session/{sid}/screenshot?full_page=true", headers=AUTH_A)
    assert r.status_code in (409, 504) and r.is_json, (r.status_code, r.data)
    r = client.post("/env/observe", json={"session_id": sid}, headers=AUTH_A)
    assert r.status_code == 409 and r.get_json()["page_not_responding"] is True, r.data
    record = client.get(f"/session/{sid}", headers=AUTH_A).get_json()
    assert record["status"] == "active" and record["error"] == "the page is not responding"
    post(client, "/session/close", session_id=sid)  # ends the busy renderer


def test_playwright_errors_map_to_whose_fault_it_is() -> None:
    timeout = wrap_playwright_error(PlaywrightTimeoutError("Timeout 5000ms exceeded"), "x", True)
    assert isinstance(timeout, OperationTimeout) and timeout.status_code == 504
    gone = wrap_playwright_error(PlaywrightError("Browser closed"), "x", False)
    assert isinstance(gone, BrowserUnavailable) and gone.status_code == 503
    page = wrap_playwright_error(PlaywrightError("Protocol error"), "x", True)
    assert isinstance(page, PageFailed) and page.status_code == 502
