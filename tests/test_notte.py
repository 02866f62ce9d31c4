"""Notte's own Python SDK (notte-sdk, pinned in the test extras) against our Notte routes.

One real server for the module: the app with the test's ManualClock (so an idle timeout takes
no minutes), served over HTTP by werkzeug on 127.0.0.1, real Chromium, pages from a local
server. The SDK is used exactly as its users do: ``NotteClient(api_key=…, server_url=…)``,
``with client.Session() as s``, ``s.execute(type=…)``, the async client. It is told not to
phone home (telemetry off, no PyPI version check) before it is imported, and nothing else of
it is touched.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from flask_sessions import FlaskSessions, ManualClock, create_app
from flask_sessions.client import SessionsClient

from .conftest import html_pages, serving, wait_for

# The SDK reads these at import: no telemetry events, no asyncio patching in our process.
os.environ["DISABLE_TELEMETRY"] = "true"
os.environ["NOTTE_ENABLE_NEST_ASYNCIO"] = "false"

import notte_sdk.endpoints.base as notte_base
from notte_sdk import AsyncNotteClient, NotteClient
from notte_sdk.errors import NotteAPIError

# The SDK asks PyPI for its latest version when a client is made: tests never touch the
# internet, so that check is marked done (the SDK's own once-per-process flag).
notte_base._version_check_performed = True

TOKENS = {"notte-alice": "alice", "notte-bob": "bob"}
ALICE, BOB = "notte-alice", "notte-bob"

PAGES = {
    "/login": "<!doctype html><title>Log in</title><form action='/welcome'>"
    "<label>Username <input name='user'></label>"
    "<label><input type='checkbox' name='remember'> Remember me</label>"
    "<button>Sign in</button></form><a href='/about'>About us</a>"
    "<img src='/logo.png' alt='logo'>",
    "/about": "<!doctype html><title>About</title><h1>About</h1><p>We make browsers.</p>",
}


def _page(path: str) -> tuple[int, str, dict[str, str]]:
    if path.startswith("/welcome"):
        user = path.partition("user=")[2].split("&")[0]
        return 200, f"<!doctype html><title>Welcome</title><p>Hello {user}</p>", {}
    return html_pages(PAGES, "<!doctype html><title>Missing</title>")(path)


class Server:
    """The app on a real HTTP port, its clock, and where the SDK points."""

    def __init__(self, base: str, clock: ManualClock, site: str) -> None:
        self.base = base
        self.clock = clock
        self.site = site
        self.notte = base + "/notte"

    def client(self, token: str = ALICE) -> NotteClient:
        return NotteClient(api_key=token, server_url=self.notte, max_retries=0)

    def ours(self, token: str = ALICE) -> SessionsClient:
        return SessionsClient(self.base, token)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    clock = ManualClock()
    app = create_app(
        {"SESSIONS_TOKENS": TOKENS, "SESSIONS_REAPER_INTERVAL_SECONDS": 0.2, "TESTING": True},
        clock=clock,
    )
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        with serving(_page) as site:
            yield Server(f"http://127.0.0.1:{http.server_port}", clock, site)
    finally:
        http.shutdown()
        thread.join(10)
        FlaskSessions.state(app).backend.shutdown()


def test_the_sdks_session_flow(server: Server) -> None:
    client = server.client()
    client.health_check()
    with client.Session() as s:
        assert s.response is not None and s.response.status == "active"
        assert s.response.idle_timeout_minutes == 5 and s.response.max_duration_minutes == 60
        assert s.execute(type="goto", url=server.site + "/login").success
        obs = s.observe()
        assert obs.metadata.url == server.site + "/login" and obs.metadata.title == "Log in"
        assert obs.metadata.viewport.viewport_width == 1280
        assert obs.screenshot.bytes()[:2] == b"\xff\xd8"  # a JPEG, as Notte's
        actions: list[Any] = list(obs.space.interaction_actions)  # the SDK's union defeats mypy
        by_name = {a.accessible_name: a for a in actions}
        assert by_name["Username"].type == "fill" and by_name["Username"].id.startswith("I")
        assert by_name["Remember me"].type == "check"
        assert by_name["Sign in"].type == "click"
        assert 'Click the link "About us"' in obs.space.description

        # the same session through our own API: one session, two doors
        with server.ours() as ours:
            assert ours.get(s.session_id).page.url == server.site + "/login"  # type: ignore[union-attr]

        assert s.execute(type="click", id=by_name["About us"].id).success
        assert "We make browsers." in s.scrape()
        assert s.execute(type="go_back").success
        now: list[Any] = list(s.observe().space.interaction_actions)
        username = next(a for a in now if a.type == "fill")
        # FillActionDict lacks press_enter in the SDK's typing; FillAction has it, and sends it
        done = s.execute(type="fill", id=username.id, value="alice", press_enter=True)  # type: ignore[call-overload]
        assert done.success, done.message
        page = s.scrape()
        assert "Hello alice" in page and "![" not in page  # Notte's default: no images
        assert s.status().status == "active"
        listed = client.sessions.list()
        assert s.session_id in [r.session_id for r in listed]
        with pytest.raises(Exception, match="not in this session's last observation"):
            s.execute(type="click", id="B99")
        assert not s.execute(type="click", id="B99", raise_on_failure=False).success
    after = client.sessions.status(s.session_id)
    assert after.status == "closed" and after.close_reason == "manual"
    assert after.closed_at is not None
    assert s.session_id not in [r.session_id for r in client.sessions.list()]
    assert s.session_id in [r.session_id for r in client.sessions.list(only_active=False)]


def test_the_async_client(server: Server) -> None:
    async def flow() -> tuple[str, str, str]:
        async with AsyncNotteClient(api_key=ALICE, server_url=server.notte) as client:
            async with client.Session() as s:
                await s.execute(type="goto", url=server.site + "/about")
                obs = await s.observe()
                text = await s.scrape()
                sid = s.session_id
            status = (await client.sessions.status(sid)).status
        return obs.metadata.title, text, status

    title, text, status = asyncio.run(flow())
    assert title == "About" and "We make browsers." in text and status == "closed"


def test_the_sdks_playwright_page_attaches_over_cdp(server: Server) -> None:
    """``session.page`` connects to the start answer's cdp_url (a one-use ticket): the SDK
    sends no token there, and a REST observe sees where its Playwright went."""
    with server.client().Session() as s:
        assert s.response is not None and "?ticket=" in (s.response.cdp_url or "")
        s.page.goto(server.site + "/about")
        assert s.observe().metadata.title == "About"
        fresh = s.debug_info().ws.cdp  # a new ticket each time
        assert "?ticket=" in fresh and fresh != s.response.cdp_url


def test_an_idle_session_reads_timed_out_with_notte_close_reason(server: Server) -> None:
    client = server.client()
    with client.Session(idle_timeout_minutes=2) as s:
        assert s.response is not None and s.response.idle_timeout_minutes == 2
        server.clock.advance(timedelta(minutes=2, seconds=1))
        assert wait_for(lambda: client.sessions.status(s.session_id).status == "timed_out", 10)
        record = client.sessions.status(s.session_id)
        assert record.close_reason == "idle_timeout" and record.closed_at is not None
        assert "idle timeout" in (record.error or "")
    # leaving the block stops it: "already closed", which the SDK takes as done


def test_404_and_401_raise_the_sdks_own_error_with_our_message(server: Server) -> None:
    client = server.client()
    with pytest.raises(NotteAPIError) as missing:
        client.sessions.status("no-such-session")
    assert missing.value.status_code == 404
    assert "no session" in str(missing.value)
    with client.Session() as s:  # someone else's session is a 404 too
        with pytest.raises(NotteAPIError) as theirs:
            server.client(BOB).sessions.status(s.session_id)
        assert theirs.value.status_code == 404
    with pytest.raises(NotteAPIError) as refused:
        server.client("not-a-token").sessions.list()
    assert refused.value.status_code == 401
    assert "the token is not valid" in str(refused.value)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"solve_captchas": True}, "solve_captchas"),
        ({"proxies": True}, "proxies"),
        ({"proxies": "us"}, "proxies"),
        ({"vault_id": "v1"}, "vault_id"),
        ({"max_duration_minutes": 120}, "max_duration_minutes"),
        ({"idle_timeout_minutes": 30}, "idle_timeout_minutes"),
        ({"chrome_args": ["--disable-web-security"]}, "chrome_args"),
        ({"browser_type": "firefox"}, "browser_type"),
    ],
)
def test_options_we_cannot_honour_are_a_400_naming_them(
    server: Server, options: dict[str, Any], field: str
) -> None:
    with pytest.raises(NotteAPIError) as refused:
        server.client().sessions.start(**options)
    assert refused.value.status_code == 400
    assert field in str(refused.value)


def test_harmless_options_are_ignored_with_a_warning(server: Server) -> None:
    client = server.client()
    record = client.sessions.start(
        block_ads=True, max_duration_minutes=15, chrome_args=["--no-sandbox"]
    )
    try:
        warnings = (record.model_extra or {})["warnings"]
        assert any("block_ads" in w for w in warnings)
        assert any("max_duration_minutes=15" in w for w in warnings)
        assert any("--no-sandbox" in w for w in warnings)
    finally:
        client.sessions.stop(record.session_id)
    with client.Session() as s, pytest.raises(NotteAPIError) as llm:
        s.observe(instructions="find the login button")
    assert llm.value.status_code == 400 and "instructions" in str(llm.value)


def test_errors_are_json_with_status_and_message(server: Server) -> None:
    """The shape the SDK reads (``error["status"]``, ``error["message"]``), on every route."""
    with httpx.Client(base_url=server.notte) as http:
        auth = {"Authorization": f"Bearer {ALICE}"}
        body = http.get("/sessions/nope", headers=auth).json()
        assert body["status"] == 404 and "no session" in body["message"]
        body = http.post("/sessions/start", headers=auth, json={"solve_captcha": True}).json()
        assert body["status"] == 400 and "solve_captcha" in body["message"]
        body = http.get("/sessions/").json()
        assert body["status"] == 401 and "Authorization" in body["message"]
        assert http.get("/health").json() == {"status": "ok"}
