"""The live view (issue 20), as a person uses it: a test browser opens a ``viewer_url``.

The app serves on a real 127.0.0.1 port from a thread (as in test_ui.py), with the test's
ManualClock and a fast reaper; its sessions are real Chromium contexts on local pages. The
browser the tests look through is pytest-playwright's, on the machine's Chromium. Raw
WebSocket clients check what a page would not send (a view-only ticket's input) and what
the upgrade refuses.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import re
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import psutil
import pytest
from flask import Flask
from PIL import Image, ImageChops, ImageStat
from playwright.sync_api import Page, expect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from werkzeug.serving import BaseWSGIServer, make_server

from flask_sessions import FlaskSessions, ManualClock
from flask_sessions.host.viewer import POLL, _Cast, input_command

from .conftest import AUTH_A, AUTH_B, TOKEN_A, AppFactory, chromium_pids, wait_for
from .test_ui import (  # noqa: F401 - pytest-playwright's chain, ended with each module
    browser,
    browser_context_args,
    browser_type,
    browser_type_launch_args,
    launch_browser,
    playwright,
)

PREFIX = "/api"

PAGE = """<!doctype html><title>Live test</title>
<style>
  body { margin: 0; background: #fff; font: 20px sans-serif; }
  #red { position: absolute; left: 0; top: 0; width: 640px; height: 300px; background: #d22; }
  #blue { position: absolute; left: 640px; top: 0; width: 640px; height: 300px; background: #24c; }
  #b { position: absolute; left: 100px; top: 400px; width: 300px; height: 120px; font-size: 40px; }
  #q { position: absolute; left: 700px; top: 430px; width: 400px; height: 60px; font-size: 30px; }
</style>
<div id=red></div><div id=blue></div>
<button id=b onclick="this.textContent = String(+this.textContent + 1)">0</button>
<input id=q aria-label=words>
"""
BUTTON = (250 / 1280, 460 / 720)  # the button's centre, as fractions of the viewport
FIELD = (900 / 1280, 460 / 720)

ANIMATED = """<!doctype html><title>Animated</title>
<div id=d style="position:absolute;top:100px;width:200px;height:200px;background:#0a0"></div>
<script>
  let t = 0;
  (function move() { t += 4; d.style.left = (t % 1000) + "px"; requestAnimationFrame(move); })();
</script>
"""
GREEN = "<!doctype html><title>Green</title><body style='margin:0;background:#0b0'>green"
YELLOW = "<!doctype html><title>Yellow</title><body style='margin:0;background:#ee0'>yellow"


class _Pages(BaseHTTPRequestHandler):
    pages: ClassVar[dict[str, str]] = {
        "/": PAGE,
        "/animated": ANIMATED,
        "/green": GREEN,
        "/yellow": YELLOW,
    }

    def do_GET(self) -> None:
        body = self.pages.get(self.path.split("?")[0], "<title>nothing</title>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def pages() -> Iterator[dict[str, str]]:
    """The test pages on 127.0.0.1, and the same on 127.0.0.2 (another site)."""
    servers = [ThreadingHTTPServer((host, 0), _Pages) for host in ("127.0.0.1", "127.0.0.2")]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {
        "one": f"http://127.0.0.1:{servers[0].server_address[1]}",
        "two": f"http://127.0.0.2:{servers[1].server_address[1]}",
    }
    for server in servers:
        server.shutdown()
        server.server_close()


@dataclass
class Served:
    """The app on a real port, its clock, and a client of its JSON API (alice's token)."""

    app: Flask
    url: str
    clock: ManualClock
    api: httpx.Client

    def start(self, **body: Any) -> str:
        response = self.api.post("/session/start", json=body)
        assert response.status_code == 200, response.text
        return str(response.json()["session_id"])

    def viewer(self, sid: str, **body: Any) -> dict[str, Any]:
        response = self.api.post(f"/session/{sid}/viewer", json=body)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def observe(self, sid: str) -> dict[str, Any]:
        response = self.api.post("/env/observe", json={"session_id": sid})
        assert response.status_code == 200, response.text
        observation: dict[str, Any] = response.json()["observation"]
        return observation

    def record(self, sid: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.api.get(f"/session/{sid}").json()
        return answer

    def metric(self, name: str) -> float:
        text = self.api.get("/metrics").text
        found = re.search(rf"^{name}(?:_total)? (\S+)$", text, re.M)
        return float(found.group(1)) if found else 0.0


def serve_app(app: Flask, clock: ManualClock) -> Iterator[Served]:
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="viewer-test-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}{PREFIX}"
    with httpx.Client(base_url=url, headers=AUTH_A, timeout=60) as api:
        try:
            yield Served(app, url, clock, api)
        finally:
            server.shutdown()
            thread.join(10)
            server.server_close()


@pytest.fixture
def served(make_app: AppFactory, clock: ManualClock) -> Iterator[Served]:
    app = make_app(SESSIONS_URL_PREFIX=PREFIX, SESSIONS_REAPER_INTERVAL_SECONDS=0.1)
    yield from serve_app(app, clock)


def socket_of(served: Served, viewer_url: str) -> str:
    """The live socket the page of ``viewer_url`` connects to, with its ticket."""
    page_url, _, fragment = viewer_url.partition("#ticket=")
    html = httpx.get(page_url, timeout=30).text
    found = re.search(r'name="live-socket" content="([^"]+)"', html)
    assert found, html
    return f"{found.group(1)}?ticket={fragment}"


def raw(url: str) -> ClientConnection:
    return connect(url, proxy=None, max_size=None, open_timeout=10)


def frames_of(ws: ClientConnection, seconds: float) -> list[bytes]:
    out = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = ws.recv(left)
        except TimeoutError:
            break
        if isinstance(message, bytes):
            out.append(message)
    return out


def first_frame(ws: ClientConnection, timeout: float = 15) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        message = ws.recv(max(0.01, deadline - time.monotonic()))
        if isinstance(message, bytes):
            return message


def open_view(page: Page, viewer_url: str, frames: int = 1) -> None:
    page.goto(viewer_url)
    canvas = page.locator("#screen")
    expect(canvas).to_have_attribute("data-frames", re.compile(r"^[1-9]"), timeout=15000)
    if frames > 1:  # (the page's CSP allows no string evaluation: read the attribute)
        assert wait_for(lambda: int(canvas.get_attribute("data-frames") or 0) >= frames, 15)


def canvas_point(page: Page, fraction: tuple[float, float]) -> tuple[float, float]:
    """Where on the test browser's screen a point of the session's page is drawn."""
    box = page.locator("#screen").bounding_box()
    assert box is not None
    data = page.locator("#screen").evaluate("c => ({...c.dataset})")
    x = box["x"] + float(data["frameX"]) + fraction[0] * float(data["frameW"])
    y = box["y"] + float(data["frameY"]) + fraction[1] * float(data["frameH"])
    return x, y


def canvas_image(page: Page) -> Image.Image:
    """The frame as drawn on the canvas (device pixels), cut to where it is drawn."""
    url = page.locator("#screen").evaluate("c => c.toDataURL('image/png')")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    data = page.locator("#screen").evaluate("c => ({...c.dataset})")
    ratio = page.evaluate("devicePixelRatio")
    left, top = float(data["frameX"]) * ratio, float(data["frameY"]) * ratio
    width, height = float(data["frameW"]) * ratio, float(data["frameH"]) * ratio
    return image.crop((round(left), round(top), round(left + width), round(top + height)))


def difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel (0-255) once ``b`` is scaled to ``a``."""
    diff = ImageChops.difference(a, b.convert("RGB").resize(a.size, Image.Resampling.BILINEAR))
    return float(statistics.fmean(ImageStat.Stat(diff).mean))


def color_at(page: Page, fraction: tuple[float, float]) -> tuple[int, ...]:
    image = canvas_image(page)
    pixel = image.getpixel((int(fraction[0] * image.width), int(fraction[1] * image.height)))
    assert isinstance(pixel, tuple)
    return pixel


def near(color: tuple[int, ...], want: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(c - w) <= tolerance for c, w in zip(color, want, strict=False))


# ------------------------------------------------------------------ in the browser


def test_the_canvas_shows_the_sessions_page(
    page: Page, served: Served, pages: dict[str, str]
) -> None:
    sid = served.start(url=pages["one"] + "/")
    viewer = served.viewer(sid)
    assert viewer["interactive"] is False
    assert viewer["viewer_url"].startswith(f"{served.url}/ui/live/{sid}#ticket=")
    assert "token" not in viewer["viewer_url"] and "alice" not in viewer["viewer_url"]
    assert served.record(sid)["viewer_url"] == viewer["viewer_url"]
    open_view(page, viewer["viewer_url"])
    expect(page.locator("#mode")).to_have_text("view only")
    expect(page.locator("#url")).to_have_text(pages["one"] + "/")
    assert "ticket" not in page.url  # read, then taken off the address bar
    shot = served.api.get(f"/session/{sid}/screenshot?touch=false")
    assert shot.status_code == 200
    reference = Image.open(io.BytesIO(shot.content))
    drawn = canvas_image(page)
    assert abs(drawn.width / drawn.height - 1280 / 720) < 0.02
    assert difference(drawn, reference) < 6, "the canvas is not the session's page"
    assert served.record(sid)["viewers"] == 1
    page.close()
    assert wait_for(lambda: served.record(sid)["viewers"] == 0, 10)


def test_an_interactive_ticket_clicks_and_types(
    page: Page, served: Served, pages: dict[str, str]
) -> None:
    sid = served.start(url=pages["one"] + "/")
    before = served.observe(sid)
    assert before["human_input_at"] is None
    assert "0" in [a["name"] for a in before["actions"] if a["role"] == "button"]
    open_view(page, served.viewer(sid, interactive=True)["viewer_url"])
    expect(page.locator("#mode")).to_have_text("you can click and type")
    accessed = served.record(sid)["last_accessed_at"]  # minting the URL was access
    served.clock.advance(seconds=30)

    page.mouse.click(*canvas_point(page, BUTTON))
    assert wait_for(lambda: "1" in buttons(served, sid), 15), buttons(served, sid)
    page.mouse.click(*canvas_point(page, BUTTON))
    assert wait_for(lambda: "2" in buttons(served, sid), 15)
    assert served.record(sid)["last_accessed_at"] > accessed  # input is access

    page.mouse.click(*canvas_point(page, FIELD))
    page.keyboard.type("hello")
    assert wait_for(lambda: field(served, sid) == "hello", 15), field(served, sid)
    page.keyboard.press("Control+A")  # keys with modifiers: select all, then replace
    page.keyboard.type("bye")
    assert wait_for(lambda: field(served, sid) == "bye", 15), field(served, sid)
    page.keyboard.press("End")
    page.locator("#keys").evaluate(  # a paste, as the browser delivers it
        """t => { const data = new DataTransfer(); data.setData('text/plain', ' pasted');
                  t.dispatchEvent(new ClipboardEvent('paste', {clipboardData: data,
                                                                 bubbles: true})); }"""
    )
    assert wait_for(lambda: field(served, sid) == "bye pasted", 15), field(served, sid)
    assert served.observe(sid)["human_input_at"] is not None  # the agent can tell

    _evaluate(served, sid, "document.body.style.height = '5000px'")  # the wheel scrolls it
    page.mouse.move(*canvas_point(page, (0.5, 0.5)))
    page.mouse.wheel(0, 600)
    assert wait_for(lambda: _evaluate(served, sid, "window.scrollY") > 0, 15)


def test_a_view_only_ticket_changes_nothing_and_the_server_logs_the_refusal(
    page: Page, served: Served, pages: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    sid = served.start(url=pages["one"] + "/")
    open_view(page, served.viewer(sid)["viewer_url"])
    page.mouse.click(*canvas_point(page, BUTTON))  # the page sends nothing: view only
    page.keyboard.type("x")
    # a page that sends input anyway (altered, or a raw client): dropped by the server
    caplog.set_level(logging.WARNING, logger="flask_sessions")
    with raw(socket_of(served, served.viewer(sid)["viewer_url"])) as ws:
        for kind in ("down", "up"):
            x, y = BUTTON
            ws.send(json.dumps({"type": "mouse", "event": kind, "x": x, "y": y, "button": "left"}))
        ws.send(json.dumps({"type": "text", "text": "typed"}))
        assert wait_for(lambda: served.metric("flask_sessions_live_inputs_refused") >= 3, 10)
    refusals = [r for r in caplog.records if "view-only viewer" in r.getMessage()]
    assert refusals and sid in refusals[0].getMessage()
    observation = served.observe(sid)
    assert "0" in [a["name"] for a in observation["actions"] if a["role"] == "button"]
    assert field(served, sid) == ""
    assert observation["human_input_at"] is None
    assert served.metric("flask_sessions_live_inputs") == 0


def test_the_view_follows_tab_switches_and_navigations(
    page: Page, served: Served, pages: dict[str, str]
) -> None:
    sid = served.start(url=pages["one"] + "/green")
    open_view(page, served.viewer(sid)["viewer_url"])
    assert wait_for(lambda: near(color_at(page, (0.5, 0.5)), (0, 187, 0)), 15)
    # another site (another renderer process): the same screencast goes on
    step: dict[str, Any] = {"session_id": sid, "type": "goto", "url": pages["two"] + "/yellow"}
    assert served.api.post("/env/step", json=step).status_code == 200
    assert wait_for(lambda: near(color_at(page, (0.5, 0.5)), (238, 238, 0)), 15)
    expect(page.locator("#url")).to_have_text(pages["two"] + "/yellow")
    # a second tab, then switch_tab: the view follows the session's current tab
    opener = f"window.open('{pages['one']}/green')"
    _evaluate(served, sid, opener)
    assert wait_for(lambda: len(served.observe(sid)["tabs"]) == 2, 15)
    step = {"session_id": sid, "type": "switch_tab", "index": 1}
    assert served.api.post("/env/step", json=step).status_code == 200
    assert wait_for(lambda: near(color_at(page, (0.5, 0.5)), (0, 187, 0)), 15)
    expect(page.locator("#tabs")).to_have_text("tab 2 of 2")


def test_frames_follow_the_viewers_size_up_to_the_viewport(
    page: Page, served: Served, pages: dict[str, str]
) -> None:
    sid = served.start(url=pages["one"] + "/animated")
    page.set_viewport_size({"width": 640, "height": 420})
    open_view(page, served.viewer(sid)["viewer_url"], frames=3)
    canvas = page.locator("#screen")

    def bitmap() -> tuple[int, int]:
        data = canvas.evaluate("c => ({...c.dataset})")
        return int(data["bitmapW"]), int(data["bitmapH"])

    assert wait_for(lambda: bitmap()[0] <= 640 and bitmap()[1] <= 420, 15), bitmap()
    page.set_viewport_size({"width": 1600, "height": 1000})
    assert wait_for(lambda: bitmap() == (1280, 720), 15), bitmap()  # never past the viewport


def test_a_new_size_restarts_the_frames_even_when_a_cancellation_is_swallowed(
    page: Page, served: Served, pages: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python < 3.12's ``asyncio.wait_for`` may return a capture's answer instead of raising
    the cancellation that came with it. The poller of an animated page must stop all the
    same when a viewer's new size restarts the frames (it kept polling at the old size, and
    the restart waited for it forever). Here every cancellation of its waits is swallowed."""
    for name in ("_slot", "_capture"):
        real = getattr(_Cast, name)

        def swallowing(real: Any = real) -> Any:
            async def call(self: _Cast, *args: Any, **kwargs: Any) -> Any:
                try:
                    return await real(self, *args, **kwargs)
                except asyncio.CancelledError:
                    return None

            return call

        monkeypatch.setattr(_Cast, name, swallowing())
    sid = served.start(url=pages["one"] + "/animated")
    manager = FlaskSessions.state(served.app).manager
    assert manager.cdp is not None
    casts = manager.cdp.live._casts
    page.set_viewport_size({"width": 640, "height": 420})
    open_view(page, served.viewer(sid)["viewer_url"], frames=3)
    assert wait_for(lambda: sid in casts and casts[sid].mode == POLL and casts[sid].running, 15)
    canvas = page.locator("#screen")

    def bitmap() -> tuple[int, int]:
        data = canvas.evaluate("c => ({...c.dataset})")
        return int(data["bitmapW"]), int(data["bitmapH"])

    page.set_viewport_size({"width": 1600, "height": 1000})
    assert wait_for(lambda: bitmap() == (1280, 720), 15), bitmap()


def test_the_page_says_why_the_view_ended(
    page: Page, served: Served, pages: dict[str, str]
) -> None:
    sid = served.start(url=pages["one"] + "/")
    open_view(page, served.viewer(sid)["viewer_url"])
    assert served.api.delete(f"/session/{sid}").status_code == 200
    expect(page.locator("#message")).to_have_text("The live view ended: session closed.")
    expect(page.locator("#mode")).to_have_text("ended")
    # a reload: the ticket was good once
    page.reload()
    expect(page.locator("#message")).to_contain_text("no ticket")


def test_the_sessions_page_opens_the_live_view_and_downloads_a_recording(
    page: Page, served: Served, pages: dict[str, str], tmp_path: Any
) -> None:
    sid = served.start(url=pages["one"] + "/green", record=True)
    page.goto(served.url + "/ui")
    page.fill("#token", TOKEN_A)
    page.click("#login button[type=submit]")
    row = page.locator(f'tr[data-session-id="{sid}"]')
    expect(row.locator("button.live")).to_be_visible()
    with page.context.expect_page() as opened:
        row.locator("button.live").click()
    live = opened.value
    expect(live.locator("#screen")).to_have_attribute("data-frames", re.compile(r"^[1-9]"))
    expect(live.locator("#mode")).to_have_text("you can click and type")
    assert live.url.startswith(f"{served.url}/ui/live/{sid}") and "ticket" not in live.url
    assert wait_for(lambda: served.record(sid)["viewers"] == 1, 10)
    expect(row.locator("button.live")).to_have_text("Live (1)")
    live.close()
    # the same view from the enlarged thumbnail
    expect(row.locator(".thumb img")).to_be_visible()
    row.locator(".thumb").click()
    with page.context.expect_page() as opened:
        page.locator("#lb-live").click()
    expect(opened.value.locator("#screen")).to_have_attribute("data-frames", re.compile(r"^[1-9]"))
    opened.value.close()
    page.keyboard.press("Escape")
    # the recording, while it records, then once the session closed
    for step in ("recording", "closed"):
        if step == "closed":
            row.locator("button.close").click()
            expect(row.locator(".status")).to_have_text("closed")
        with page.expect_download() as download:
            row.locator("button.trace").click()
        assert download.value.suggested_filename == f"trace-{sid}.zip"
        saved = tmp_path / f"{step}.zip"
        download.value.save_as(saved)
        assert zipfile.is_zipfile(saved)
    expect(row.locator("button.live")).to_be_hidden()


# ------------------------------------------------------------------ the socket


def test_tickets_are_refused_at_the_upgrade(served: Served, pages: dict[str, str]) -> None:
    sid = served.start(url=pages["one"] + "/")
    other = served.start()

    def refused(url: str) -> int:
        with pytest.raises(InvalidStatus) as err:
            raw(url)
        status: int = err.value.response.status_code
        body = json.loads(err.value.response.body or b"{}")
        assert body.get("error"), body
        return status

    good = socket_of(served, served.viewer(sid)["viewer_url"])
    base, _, ticket = good.partition("?ticket=")
    assert refused(base) == 401  # no ticket
    assert refused(f"{base}?ticket=x.y.z.view.forged") == 401
    assert refused(base.replace(sid, other) + f"?ticket={ticket}") == 401  # another session's
    with raw(good) as ws:
        hello = json.loads(str(ws.recv(10)))
        assert hello["type"] == "hello" and hello["interactive"] is False
    assert refused(good) == 401  # used
    expired = socket_of(served, served.viewer(sid, ttl_seconds=5)["viewer_url"])
    served.clock.advance(seconds=6)
    assert refused(expired) == 401
    # a CDP ticket is not a viewer's, and a viewer's is not a CDP one
    cdp = served.api.post(f"/session/{sid}/cdp-ticket").json()["ticket"]
    assert refused(f"{base}?ticket={cdp}") == 401
    viewer_ticket = socket_of(served, served.viewer(sid)["viewer_url"]).partition("?ticket=")[2]
    cdp_url = served.record(sid)["cdp_url"]
    assert refused(f"{cdp_url}?ticket={viewer_ticket}") == 401
    # after the session closed
    late = socket_of(served, served.viewer(sid)["viewer_url"])
    served.api.delete(f"/session/{sid}")
    assert refused(late) == 404
    # bob cannot mint one for alice's session
    answer = served.api.post(f"/session/{other}/viewer", headers=AUTH_B, json={})
    assert answer.status_code == 404


def test_the_socket_closes_with_a_reason(served: Served, pages: dict[str, str]) -> None:
    sid = served.start(url=pages["one"] + "/")
    with raw(socket_of(served, served.viewer(sid)["viewer_url"])) as ws:
        served.api.delete(f"/session/{sid}")
        with pytest.raises(ConnectionClosed) as err:
            while True:
                ws.recv(15)
        assert err.value.rcvd is not None
        assert (err.value.rcvd.code, err.value.rcvd.reason) == (1000, "session closed")

    sid = served.start(url=pages["one"] + "/")
    with raw(socket_of(served, served.viewer(sid, ttl_seconds=60)["viewer_url"])) as ws:
        served.clock.advance(seconds=61)
        with pytest.raises(ConnectionClosed) as err:
            while True:
                ws.recv(15)
        assert err.value.rcvd is not None
        assert "expired" in err.value.rcvd.reason
    assert served.record(sid)["status"] == "active"  # the session goes on


def test_watching_is_not_access_but_input_is(served: Served, pages: dict[str, str]) -> None:
    sid = served.start(url=pages["one"] + "/", session_timeout_minutes=2)
    with raw(socket_of(served, served.viewer(sid, interactive=True)["viewer_url"])) as ws:
        touched = served.record(sid)["last_accessed_at"]
        served.clock.advance(seconds=90)
        frames_of(ws, 1)
        assert served.record(sid)["last_accessed_at"] == touched  # watching: no touch
        ws.send(json.dumps({"type": "mouse", "event": "move", "x": 0.5, "y": 0.5}))
        assert wait_for(lambda: served.record(sid)["last_accessed_at"] > touched, 10)
        touched = served.record(sid)["last_accessed_at"]
        served.clock.advance(minutes=2, seconds=1)  # idle since the input: it times out
        assert wait_for(lambda: served.record(sid)["status"] == "timed_out", 15)
        with pytest.raises(ConnectionClosed) as err:
            while True:
                ws.recv(15)
        assert err.value.rcvd is not None and "timed_out" in err.value.rcvd.reason


def test_no_viewer_no_screencast(served: Served, pages: dict[str, str]) -> None:
    """On an animated page: no frame is made while nobody watches (the server's count of
    Page.screencastFrame events, and Chromium's browser process CPU), and a viewer gets
    frames at once."""
    sid = served.start(url=pages["one"] + "/animated")
    browser_process = _browser_process(served.app)
    # the warm pool's refill after the start is browser work too: let it finish first
    target = FlaskSessions.state(served.app).settings.warm_pool
    assert wait_for(lambda: served.metric("flask_sessions_warm_pool_ready") >= target, 30)
    time.sleep(1)
    frames = served.metric("flask_sessions_live_frames")
    cpu_before = _cpu(browser_process)
    time.sleep(10)
    idle_cpu = _cpu(browser_process) - cpu_before
    assert served.metric("flask_sessions_live_frames") == frames
    assert served.metric("flask_sessions_live_screencasts") == 0
    with raw(socket_of(served, served.viewer(sid)["viewer_url"])) as ws:
        cpu_before = _cpu(browser_process)
        got = frames_of(ws, 10)
        watched_cpu = _cpu(browser_process) - cpu_before
        assert served.metric("flask_sessions_live_screencasts") == 1
    assert len(got) >= 5  # the control: the counter and the stream do move with a viewer
    # The measure is the CDP events above (the "CDP events or the renderer's CPU"):
    # the browser process's CPU is printed, not asserted, since where a frame's work lands
    # (browser, GPU or renderer process) depends on the capture path, and an idle check on
    # it failed both ways in clean runs (0.0 s watched on one run, 1.73 s idle on another)
    assert wait_for(lambda: served.metric("flask_sessions_live_screencasts") == 0, 10)
    print(
        f"\nbrowser process CPU over 10 s on an animated page: {idle_cpu:.2f} s without a "
        f"viewer, {watched_cpu:.2f} s with one ({len(got)} frames)"
    )


def test_a_viewer_does_not_slow_other_sessions(served: Served, pages: dict[str, str]) -> None:
    """Step p50 of one session while another, animated, is watched vs. not watched: the
    ratio is printed (the README and the bench report it); what is asserted holds however
    loaded the machine is.

    The viewer is a process of its own that reads every frame (a person's browser runs on
    their own computer). Rounds alternate (no viewer, viewer, no viewer, …) so the load
    drifts over both alike. Chromium pays for every frame on threads all its pages share
    (a screencast capture blocks the browser's UI thread for a while), so while a page is
    watched other sessions do slow down on a small, busy machine: the server's part is to
    take no more frames than SESSIONS_LIVE_MAX_FPS, whatever the page paints, and none at all
    once nobody watches. Asserted: frames at most at that rate, and none after the viewer
    left. A bound on the ratio itself (the goal is 1.1x) would be a timed assertion that
    fails on a loaded machine: it is reported, here and by ``make bench ARGS=--live``.
    """
    fps = FlaskSessions.state(served.app).settings.live_max_fps
    watched = served.start(url=pages["one"] + "/animated")
    worker = served.start(url=pages["one"] + "/")
    step = {"session_id": worker, "type": "click", "selector": "#b"}

    def steps(n: int) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            assert served.api.post("/env/step", json=step).status_code == 200
            out.append(time.perf_counter() - t0)
        return out

    steps(3)  # warm up
    without: list[list[float]] = []
    watching: list[float] = []
    shown, watched_for = 0, 0.0
    for _ in range(3):
        without.append(steps(8))
        url = socket_of(served, served.viewer(watched)["viewer_url"])
        viewer = subprocess.Popen(
            [sys.executable, "-c", VIEWER_PROCESS, url], stdout=subprocess.PIPE, text=True
        )
        try:
            assert viewer.stdout is not None
            assert viewer.stdout.readline().strip() == "first frame"
            t0 = time.perf_counter()
            watching += steps(8)
            watched_for += time.perf_counter() - t0
        finally:
            viewer.terminate()
            out, _ = viewer.communicate(timeout=30)
        shown += int(out.split()[0])
        assert wait_for(lambda: served.record(watched)["viewers"] == 0, 10)
    without.append(steps(8))
    base = statistics.median(x for block in without for x in block)
    ratio = statistics.median(watching) / base
    rounds = [statistics.median(b) for b in without]
    noise = max(rounds) / min(rounds)
    print(
        f"\nstep p50 {base * 1000:.1f} ms without a viewer, "
        f"{statistics.median(watching) * 1000:.1f} ms with one: {ratio:.2f}x (noise between "
        f"no-viewer rounds {noise:.2f}x; {shown / watched_for:.1f} frames/s shown)"
    )
    assert 0 < shown <= (fps + 1) * watched_for + 3  # the first frame of each round
    # nothing left behind once the viewer left: no frame source runs, no frame is made
    assert served.metric("flask_sessions_live_screencasts") == 0
    frames = served.metric("flask_sessions_live_frames")
    steps(4)
    assert served.metric("flask_sessions_live_frames") == frames


def test_frames_yield_to_other_sessions_calls(served: Served, pages: dict[str, str]) -> None:
    """While another session is in a call, an animated page's frames come at most
    SESSIONS_LIVE_BUSY_FPS (1) a second; once the call is over, at the full rate again."""
    busy_fps = FlaskSessions.state(served.app).settings.live_busy_fps
    watched = served.start(url=pages["one"] + "/animated")
    worker = served.start(url=pages["one"] + "/")
    with raw(socket_of(served, served.viewer(watched)["viewer_url"])) as ws:
        ws.send(json.dumps({"type": "size", "width": 640, "height": 360}))
        first_frame(ws)
        frames_of(ws, 2)  # past the switch from the screencast to captures
        wait = {"session_id": worker, "type": "wait", "time_ms": 4000}
        answer: dict[str, Any] = {}
        call = threading.Thread(
            target=lambda: answer.update(r=served.api.post("/env/step", json=wait))
        )
        call.start()
        assert wait_for(lambda: _in_call(served, worker), 10)
        t0 = time.monotonic()
        during = frames_of(ws, 3)
        took = time.monotonic() - t0
        in_call = _in_call(served, worker)
        call.join(30)
        assert answer["r"].status_code == 200
        assert in_call, "the wait step ended before the frames were counted"
        assert len(during) <= busy_fps * took + 2  # a capture under way when it began
        assert len(frames_of(ws, 3)) > busy_fps * 3 + 2  # the call is over: the full rate


def _in_call(served: Served, sid: str) -> bool:
    """Whether the session is in a call now (its lock is held, on the host's loop)."""
    live = FlaskSessions.state(served.app).manager.live(sid)
    return live is not None and live.lock.locked()


VIEWER_PROCESS = """
import signal, sys
from websockets.sync.client import connect
frames = 0
def done(*_):
    print(frames, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
with connect(sys.argv[1], proxy=None, max_size=None) as ws:
    ws.send('{"type": "size", "width": 1280, "height": 720}')
    while True:
        if isinstance(ws.recv(), bytes):
            frames += 1
            if frames == 1:
                print("first frame", flush=True)
"""


# ------------------------------------------------------------------ small parts


def test_input_messages_become_cdp_commands() -> None:
    method, params = input_command(
        {"type": "mouse", "event": "down", "x": 0.5, "y": 2, "button": "left", "buttons": 1}
    )
    assert method == "Input.dispatchMouseEvent"
    assert params == {
        "type": "mousePressed",
        "fx": 0.5,
        "fy": 1.0,  # kept within the frame
        "button": "left",
        "buttons": 1,
        "clickCount": 1,
        "modifiers": 0,
    }
    method, params = input_command(
        {"type": "key", "event": "down", "key": "a", "code": "KeyA", "keyCode": 65, "modifiers": 2}
    )
    assert params["type"] == "rawKeyDown" and "text" not in params  # Ctrl+A: a shortcut
    method, params = input_command({"type": "key", "event": "down", "key": "é", "code": "Quote"})
    assert (params["type"], params["text"]) == ("keyDown", "é")
    method, params = input_command({"type": "key", "event": "down", "key": "Enter"})
    assert params["text"] == "\r"
    method, params = input_command({"type": "paste", "text": "hello"})
    assert (method, params) == ("Input.insertText", {"text": "hello"})
    for bad in (
        {"type": "mouse", "event": "fly", "x": 0, "y": 0},
        {"type": "mouse", "event": "down", "x": "left", "y": 0},
        {"type": "mouse", "event": "down", "x": 0, "y": 0, "button": "thumb"},
        {"type": "key", "event": "down", "key": "x" * 40},
        {"type": "key", "event": "down", "key": "a", "modifiers": 99},
        {"type": "text", "text": ""},
        {"type": "text", "text": "x" * 100_001},
    ):
        with pytest.raises((ValueError, KeyError, TypeError)):
            input_command(bad)


def test_the_live_page_is_locked_down(served: Served, pages: dict[str, str]) -> None:
    sid = served.start()
    page_url = served.viewer(sid)["viewer_url"].partition("#")[0]
    with httpx.Client(timeout=30) as anonymous:
        page = anonymous.get(page_url)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        socket = re.search(r'name="live-socket" content="([^"]+)"', page.text)
        assert socket and socket.group(1).endswith(f"/live/{sid}")
        origin = re.match(r"(wss?://[^/]+)", socket.group(1))
        assert origin and f"connect-src {origin.group(1)};" in csp
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
        assert "<script>" not in page.text and page.headers["cache-control"] == "no-store"
        script = anonymous.get(page_url.rsplit("/", 1)[0] + "/assets/live.js")
        assert script.status_code == 200 and "innerHTML" not in script.text
        assert anonymous.get(page_url.rsplit("/", 1)[0] + "/assets/x.py").status_code == 404
        assert anonymous.get(page_url.rsplit("/", 1)[0] + "/no%20id").status_code == 404


def test_the_live_view_needs_the_websocket_server(make_app: AppFactory) -> None:
    client = make_app(SESSIONS_CDP=False).test_client()
    sid = client.post("/session/start", headers=AUTH_A, json={}).get_json()["session_id"]
    answer = client.post(f"/session/{sid}/viewer", headers=AUTH_A, json={})
    assert answer.status_code == 400 and "SESSIONS_CDP" in answer.get_json()["error"]
    bad = client.post(f"/session/{sid}/viewer", headers=AUTH_A, json={"ttl_seconds": 0})
    assert bad.status_code == 400 and bad.get_json()["fields"][0]["field"] == "ttl_seconds"


# ------------------------------------------------------------------ helpers


def buttons(served: Served, sid: str) -> list[str]:
    return [a["name"] for a in served.observe(sid)["actions"] if a["role"] == "button"]


def field(served: Served, sid: str) -> str:
    found = [a for a in served.observe(sid)["actions"] if a["name"] == "words"]
    return str(found[0]["value"]) if found else ""


def _evaluate(served: Served, sid: str, expression: str) -> Any:
    """Run a line of script in the session's current tab (the test's own look inside)."""
    manager = FlaskSessions.state(served.app).manager
    live = manager.live(sid)
    assert live is not None

    async def run() -> Any:
        return await live.page.evaluate(expression)

    return manager.runtime.submit(run(), 30)


def _browser_process(app: Flask) -> psutil.Process:
    """The app's own Chromium browser process (its CDP port's), not another Chromium of this
    test process (pytest-playwright's, for one)."""
    debugging = FlaskSessions.state(app).runtime.debugging
    assert debugging is not None and debugging.port is not None
    flag = f"--remote-debugging-port={debugging.port}"
    for pid in chromium_pids():
        proc = psutil.Process(pid)
        if flag in proc.cmdline():
            return proc
    raise AssertionError("no Chromium browser process")


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _drain(ws: ClientConnection, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            ws.recv(0.2)
        except TimeoutError:
            continue
        except ConnectionClosed:
            return
