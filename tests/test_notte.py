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
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from flask_sessions import FlaskSessions, ManualClock, create_app
from flask_sessions.client import SessionsClient
from flask_sessions.errors import InvalidInput

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
    # what the browser sends and is: cookies the page can read, its user agent and viewport
    "/whoami": "<!doctype html><title>Who</title><p id=c></p><p id=u></p><p id=v></p><script>"
    "c.textContent = 'cookies: ' + document.cookie;"
    "u.textContent = 'agent: ' + navigator.userAgent;"
    "v.textContent = 'size: ' + innerWidth + 'x' + innerHeight;</script>",
    "/upload": "<!doctype html><title>Upload</title><label>CV <input type=file id=f></label>"
    "<p id=o></p><script>f.onchange = () => o.textContent = 'chosen: ' + f.files[0].name;"
    "</script><a href='/report.txt'>Get the report</a>",
    # every kind of element our observation reports (issue 22 added most of them)
    "/roles": "<!doctype html><title>Roles</title>"
    "<div role=listbox aria-label=Fruit><div role=option aria-selected=true>Apple</div>"
    "<div role=option>Pear</div></div>"
    "<div contenteditable=true aria-label=Notes>hi</div>"
    "<div tabindex=0 aria-label=Feed style='height:60px;overflow:auto'>"
    + "<p>item</p>"
    * 30
    + "</div><canvas width=200 height=100></canvas>"
    "<div draggable=true>Card</div><div dropzone=move aria-dropeffect=move>Bin</div>"
    "<input type=radio name=r aria-label=Red><input type=range aria-label=Volume>"
    "<div role=switch aria-checked=false tabindex=0>Dark mode</div>"
    "<div role=tab tabindex=0>Tab one</div><select><option>x</option></select>"
    "<input type=number aria-label=Count><input type=search aria-label=Find>",
}


def _page(path: str) -> tuple[int, str, dict[str, str]]:
    if path.startswith("/signin"):  # a login: the site sets its session cookie
        user = path.partition("user=")[2].split("&")[0]
        cookie = f"sitesession={user}; Path=/; Max-Age=3600"
        return 200, "<!doctype html><title>Signed in</title>", {"Set-Cookie": cookie}
    if path == "/report.txt":
        headers = {"Content-Disposition": "attachment; filename=report.txt"}
        return 200, "quarterly numbers", headers
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
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    clock = ManualClock()
    store = tmp_path_factory.mktemp("notte-profiles")  # profiles of this module only
    app = create_app(
        {
            "SESSIONS_TOKENS": TOKENS,
            "SESSIONS_REAPER_INTERVAL_SECONDS": 0.2,
            "SESSIONS_PROFILE_STORE": f"file://{store}",
            "SESSIONS_PROFILE_KEY": "notte-tests-profile-key",
            "TESTING": True,
        },
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


# --------------------------------------------- cookies, profiles, options, files (issues 18-22)


def test_a_cookies_round_trip_through_the_sdk(server: Server) -> None:
    tomorrow = float(int(time.time()) + 86400)  # Chromium keeps at most 400 days
    with server.client().Session() as s:
        s.execute(type="goto", url=server.site + "/about")
        chrome_export: Any = [
            {
                "name": "theme",
                "value": "dark",
                "domain": "127.0.0.1",
                "path": "/",
                "httpOnly": False,
                "expirationDate": tomorrow,  # a Chrome export's spelling
                "sameSite": "lax",
            },
            {
                "name": "token",
                "value": "t0k",
                "domain": "127.0.0.1",
                "path": "/",
                "httpOnly": True,
            },
        ]
        done = s.set_cookies(cookies=chrome_export)
        assert done.success
        cookies = {c["name"]: c for c in s.get_cookies()}
        assert cookies["theme"]["value"] == "dark" and cookies["theme"]["sameSite"] == "Lax"
        assert cookies["theme"]["expires"] == tomorrow and not cookies["theme"]["session"]
        assert cookies["token"]["httpOnly"] and cookies["token"]["session"]
        assert cookies["token"]["hostOnly"]
        s.execute(type="goto", url=server.site + "/whoami")
        page = s.scrape()
        assert "theme=dark" in page and "t0k" not in page  # HttpOnly: not for scripts
        with server.ours() as ours:  # the same cookies through our own API
            assert {c.name for c in ours.cookies(s.session_id)} >= {"theme", "token"}
        with pytest.raises(NotteAPIError) as bad:
            s.set_cookies(
                cookies=[
                    {
                        "name": "x",
                        "value": "1",
                        "domain": "127.0.0.1",
                        "path": "nope",
                        "httpOnly": False,
                    }
                ]
            )
        assert bad.value.status_code == 400 and "path" in str(bad.value)
        with pytest.raises(NotteAPIError) as theirs:
            server.client(BOB).sessions.get_cookies(s.session_id)
        assert theirs.value.status_code == 404


def test_a_profile_keeps_a_login_for_the_next_session(server: Server) -> None:
    client = server.client()
    profile = client.profiles.create(name="shop")
    assert profile.name == "shop" and profile.persisted_domains == []
    assert profile.profile_id in [p.profile_id for p in client.profiles.list()]
    assert [p.profile_id for p in client.profiles.list(name="sho")] == [profile.profile_id]
    with pytest.raises(NotteAPIError) as theirs:
        server.client(BOB).profiles.get(profile.profile_id)
    assert theirs.value.status_code == 404
    with pytest.raises(NotteAPIError) as missing:
        client.Session(profile={"id": "no-such-profile"}).start()
    assert missing.value.status_code == 404

    with client.Session(profile={"id": profile.profile_id, "persist": True}) as s:
        s.execute(type="goto", url=server.site + "/signin?user=alice")
        assert any(c["name"] == "sitesession" for c in s.get_cookies())
    assert client.profiles.get(profile.profile_id).persisted_domains == ["127.0.0.1"]
    assert {c.name for c in client.profiles.cookies_get(profile.profile_id).cookies} == {
        "sitesession"
    }

    with client.Session(profile={"id": profile.profile_id}) as s:  # logged in already
        s.execute(type="goto", url=server.site + "/whoami")
        assert "sitesession=alice" in s.scrape()
        with server.ours() as ours:
            record = ours.get(s.session_id)
            assert record.profile is not None and record.profile.profile_id == profile.profile_id
        saved = s.save_profile(name="copy")  # a new profile with this session's state
        assert saved.name == "copy" and saved.persisted_domains == ["127.0.0.1"]

    extra: Any = [
        {"name": "extra", "value": "1", "domain": "127.0.0.1", "path": "/", "httpOnly": False}
    ]
    imported = client.profiles.cookies_set(
        saved.profile_id,
        cookies=extra,
        mode="append",
    )
    assert imported.cookies_count == 2 and imported.mode == "append"
    origin = server.site  # http://127.0.0.1:port
    state = client.profiles.state_set(
        saved.profile_id, local_storage={origin: {"cart": "3 items"}}, mode="append"
    )
    assert state.cookies_count == 2 and state.local_storage_origins == 1
    twin = client.profiles.duplicate(saved.profile_id, name="twin")
    assert twin.name == "twin" and twin.profile_id != saved.profile_id
    with client.Session(profile={"id": twin.profile_id}) as s:  # the copy's storage, loaded
        s.execute(type="goto", url=origin + "/about")
        with server.ours() as ours:
            held = ours.state(s.session_id)
        assert {"name": "cart", "value": "3 items"} in held["origins"][0]["localStorage"]
    with pytest.raises(NotteAPIError) as tab_only:
        client.profiles.state_set(twin.profile_id, session_storage={origin: {"k": "v"}})
    assert tab_only.value.status_code == 400 and "session_storage" in str(tab_only.value)
    assert client.profiles.delete(twin.profile_id)
    assert client.profiles.delete(saved.profile_id)
    assert client.profiles.delete(profile.profile_id)
    with pytest.raises(NotteAPIError) as gone:
        client.profiles.get(profile.profile_id)
    assert gone.value.status_code == 404


def test_start_options_become_the_sessions_browser_options(server: Server) -> None:
    client = server.client()
    with client.Session(
        viewport_width=800,
        viewport_height=600,
        user_agent="NotteTest/1.0",
        extra_http_headers={"X-Run": "42"},
        chrome_args=["--no-sandbox", "--lang=de-DE"],
    ) as s:
        assert s.response is not None
        assert (s.response.viewport_width, s.response.viewport_height) == (800, 600)
        assert s.response.user_agent == "NotteTest/1.0"
        assert any("--no-sandbox" in w for w in (s.response.model_extra or {})["warnings"])
        s.execute(type="goto", url=server.site + "/whoami")
        page = s.scrape()
        assert "agent: NotteTest/1.0" in page and "size: 800x600" in page
        assert s.observe().metadata.viewport.viewport_width == 800
        with server.ours() as ours:
            options = ours.get(s.session_id).options
            assert options is not None and options.locale == "de-DE"
            assert options.extra_http_headers == ["X-Run"]
    with client.Session(chrome_args=["--window-size=1000,700"], aspect_ratio=None) as s:
        assert s.response is not None and s.response.viewport_width == 1000
    with client.Session(aspect_ratio="16:9") as s:
        assert s.response is not None
        assert (s.response.viewport_width, s.response.viewport_height) == (1280, 720)


def test_an_external_proxy_carries_the_session_and_its_password_is_never_shown(
    server: Server,
) -> None:
    from .test_options import PASSWORD, USER, _ForwardProxy

    upstream = _ForwardProxy(("127.0.0.2", 0))  # Basic auth with USER and PASSWORD
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    client = server.client()
    proxy: Any = {
        "type": "external",
        "server": upstream.server,
        "username": USER,
        "password": PASSWORD,
    }
    try:
        with client.Session(proxies=[proxy]) as s:
            assert s.response is not None and s.response.proxies is True
            assert s.execute(type="goto", url=server.site + "/about").success
            assert "We make browsers." in s.scrape()
            where = server.site.removeprefix("http://")
            assert upstream.seen[("GET", where)] >= 1 and upstream.refused == 0
            with server.ours() as ours:
                view = ours.get(s.session_id).options
                assert view is not None and view.proxy is not None and view.proxy.authenticated
            with httpx.Client(base_url=server.notte) as http:
                auth = {"Authorization": f"Bearer {ALICE}"}
                shown = http.get(f"/sessions/{s.session_id}", headers=auth).text
                listed = http.get("/sessions/", headers=auth).text
            assert PASSWORD not in shown + listed + s.response.model_dump_json()
    finally:
        upstream.shutdown()
        upstream.server_close()
        thread.join(10)
    with pytest.raises(NotteAPIError) as two:
        client.sessions.start(proxies=[proxy, proxy])
    assert two.value.status_code == 400 and "proxies" in str(two.value)
    with pytest.raises(NotteAPIError) as bad:
        socks: Any = [{**proxy, "server": "socks5://127.0.0.1:3128"}]
        client.sessions.start(proxies=socks)
    assert bad.value.status_code == 400 and "proxies" in str(bad.value)
    assert PASSWORD not in str(bad.value)
    with pytest.raises(NotteAPIError) as flag:
        client.sessions.start(chrome_args=["--disable-web-security"])
    assert "--disable-web-security" in str(flag.value)


def test_files_upload_list_download_and_the_upload_and_download_actions(
    server: Server, tmp_path: Any
) -> None:
    cv = tmp_path / "cv.txt"
    cv.write_text("my cv")
    with server.client().Session() as s:
        stored = s.storage.upload(str(cv))
        assert stored.filename == "cv.txt" and stored.size == 5
        assert stored.source == "user_upload" and len(stored.checksum) == 64
        s.execute(type="goto", url=server.site + "/upload")
        actions: list[Any] = list(s.observe().space.interaction_actions)
        chooser = next(a for a in actions if a.accessible_name == "CV")
        done = s.execute(type="upload_file", id=chooser.id, file_path="cv.txt")
        assert done.success, done.message
        assert "chosen: cv.txt" in s.scrape()
        link = next(a for a in actions if a.accessible_name == "Get the report")
        assert s.execute(type="download_file", id=link.id).success
        assert wait_for(lambda: s.storage.list(source="session_download").total == 1, 10)
        report = s.storage.list(source="session_download").files[0]
        assert report.filename == "report.txt"
        path = s.storage.download(report.id, str(tmp_path / "out"))
        assert Path(path).read_text() == "quarterly numbers"
        assert s.storage.list().total == 2
        s.storage.delete(stored.id)
        assert [f.filename for f in s.storage.list().files] == ["report.txt"]
        with pytest.raises(NotteAPIError) as theirs:
            server.client(BOB).sessions.list_session_files(s.session_id)
        assert theirs.value.status_code == 404


def test_viewer_url_is_the_one_our_api_minted(server: Server) -> None:
    client = server.client()
    with client.Session() as s:
        assert client.sessions.status(s.session_id).viewer_url is None
        with server.ours() as ours:
            minted = ours.viewer(s.session_id).viewer_url
        assert client.sessions.status(s.session_id).viewer_url == minted
        live = s.debug_info().debug_url  # Notte's debug_url: a fresh view-only live view
        assert f"/ui/live/{s.session_id}#" in live and live != minted
        assert client.sessions.status(s.session_id).viewer_url == live
        assert httpx.get(live).status_code == 200  # the live page (its ticket: the fragment)


def test_every_role_of_our_observation_is_a_notte_action(server: Server) -> None:
    with server.client().Session() as s:
        s.execute(type="goto", url=server.site + "/roles")
        obs = s.observe()
        actions: list[Any] = list(obs.space.interaction_actions)
        by_name = {a.accessible_name: a for a in actions}
        assert by_name["Fruit"].type == "select_dropdown_option"
        assert by_name["Notes"].type == "fill"
        assert by_name["Count"].type == "fill" and by_name["Find"].type == "fill"
        assert by_name["Dark mode"].type == "check"
        assert by_name["Red"].type == "click" and by_name["Tab one"].type == "click"
        feed = by_name["Feed"]
        assert feed.id.startswith("R") and "scroll_down" in feed.description
        assert any(a.id.startswith("G") for a in actions)  # the canvas
        assert any(a.id.startswith("D") for a in actions)  # the draggable card
        assert s.execute(type="scroll_down", id=feed.id).success  # type: ignore[call-overload]
        assert s.execute(type="fill", id=by_name["Notes"].id, value="hello").success
        assert s.execute(
            type="select_dropdown_option", id=by_name["Fruit"].id, value="Pear"
        ).success


def test_chrome_args_that_are_options_become_them_and_explicit_options_win() -> None:
    from flask_sessions.front.notte import NotteStart, start_request

    flags = [
        "--blink-settings=imagesEnabled=false",
        "--lang=fr-FR",
        "--user-agent=Flag/1",
        "--window-size=900,700",
        "--disable-gpu",
    ]
    start, warnings = start_request(NotteStart(chrome_args=flags), 60)
    assert start.block_resources == ["image"] and start.locale == "fr-FR"
    assert start.user_agent == "Flag/1"
    assert start.viewport is not None and (start.viewport.width, start.viewport.height) == (
        900,
        700,
    )
    assert warnings == ["chrome_args --disable-gpu ignored: Chromium runs with them"]
    start, _ = start_request(
        NotteStart(user_agent="Mine/2", viewport_width=640, chrome_args=["--user-agent=Flag/1"]),
        60,
    )
    assert start.user_agent == "Mine/2"
    assert start.viewport is not None and (start.viewport.width, start.viewport.height) == (
        640,
        720,
    )
    with pytest.raises(InvalidInput) as bad:
        start_request(NotteStart(viewport_width=10), 60)
    assert "viewport_width/viewport_height" in bad.value.message
    with pytest.raises(InvalidInput) as both:
        start_request(NotteStart(aspect_ratio="16:9", viewport_width=800), 60)
    assert "aspect_ratio" in both.value.message
