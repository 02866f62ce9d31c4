"""Integration tests through Flask's test client against real Chromium.

Pages come from the local page server; time from the test's ManualClock. The reaper
runs for real on the runtime loop with a short interval.
"""

from __future__ import annotations

import re
import signal
from datetime import datetime, timedelta
from typing import Any

import psutil
import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_sessions import FlaskSessions, ManualClock, Status
from flask_sessions.extension import SessionsState

from .conftest import (
    AUTH_A,
    AUTH_B,
    CONTRACT_FIELDS,
    AppFactory,
    alive,
    chromium_pids,
    png_size,
    wait_for,
)


def start(client: FlaskClient, headers: dict[str, str] = AUTH_A, **body: Any) -> Any:
    response = client.post("/session/start", json=body, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def state_of(app: Flask) -> SessionsState:
    return FlaskSessions.state(app)


def context_alive(app: Flask, session_id: str) -> bool:
    """Whether the session's BrowserContext is still among the browser's contexts."""
    state = state_of(app)
    live = state.manager.live(session_id)

    async def check() -> bool:
        browser = await state.runtime.browser()
        return live is not None and live.context in browser.contexts

    return state.runtime.submit(check(), 10)


# ----------------------------------------------------------------- start


def test_start_returns_the_contract(client: FlaskClient, clock: ManualClock) -> None:
    body = start(client)
    assert body.keys() >= CONTRACT_FIELDS
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,64}", body["session_id"])
    created = datetime.fromisoformat(body["created_at"])
    assert created.tzinfo is not None and created == clock().replace(
        microsecond=created.microsecond
    )
    assert datetime.fromisoformat(body["last_accessed_at"]) == created
    assert re.fullmatch(r"P(\d+D)?(T(\d+H)?(\d+M)?([\d.]+S)?)?", body["duration"])
    assert body["status"] == "active" and body["error"] is None
    assert body["timeout_minutes"] == 5 and body["keep_alive"] is False
    assert body["screenshot"] is None
    clock.advance(minutes=2, seconds=3)
    got = client.get(f"/session/{body['session_id']}", headers=AUTH_A).get_json()
    assert got["duration"] == "PT2M3S"


def test_start_with_screenshot_is_a_viewport_png(client: FlaskClient) -> None:
    body = start(client, screenshot=True)
    assert png_size(body["screenshot"]) == (1280, 720)


def test_viewport_is_configurable(make_app: AppFactory) -> None:
    app = make_app(SESSIONS_VIEWPORT_WIDTH=800, SESSIONS_VIEWPORT_HEIGHT=600)
    body = start(app.test_client(), screenshot=True)
    assert png_size(body["screenshot"]) == (800, 600)


def test_query_string_and_body_wins(client: FlaskClient) -> None:
    r = client.post("/session/start?session_timeout=7&screenshot=true", headers=AUTH_A)
    body = r.get_json()
    assert r.status_code == 200 and body["timeout_minutes"] == 7 and body["screenshot"]
    r = client.post(
        "/session/start?session_timeout_minutes=7&keep_alive=true",
        json={"session_timeout": 9},
        headers=AUTH_A,
    )
    body = r.get_json()
    assert body["timeout_minutes"] == 9 and body["keep_alive"] is True


def test_each_session_is_a_real_isolated_page(app: Flask, page_server: str) -> None:
    client = app.test_client()
    first, second = start(client)["session_id"], start(client)["session_id"]
    state = state_of(app)

    async def visit(session_id: str, path: str) -> tuple[str, list[str]]:
        live = state.manager.live(session_id)
        assert live is not None
        await live.page.goto(page_server + path)
        cookies = await live.context.cookies()
        return await live.page.title(), [c["name"] for c in cookies]

    assert state.runtime.submit(visit(first, "/set-cookie"), 20) == ("Cookie", ["visitor"])
    assert state.runtime.submit(visit(second, "/"), 20) == ("Home", [])


def test_start_with_session_id_returns_and_touches_it(
    client: FlaskClient, clock: ManualClock
) -> None:
    body = start(client)
    sid = body["session_id"]
    clock.advance(minutes=3)
    status = client.get(f"/session/{sid}", headers=AUTH_A).get_json()
    assert status["last_accessed_at"] == body["last_accessed_at"]  # a read is not access
    again = start(client, session_id=sid, screenshot=True)
    assert again["session_id"] == sid and again["created_at"] == body["created_at"]
    assert datetime.fromisoformat(again["last_accessed_at"]) - datetime.fromisoformat(
        body["last_accessed_at"]
    ) == timedelta(minutes=3)
    assert png_size(again["screenshot"]) == (1280, 720)
    updated = start(client, session_id=sid, session_timeout=12, keep_alive=True)
    assert updated["timeout_minutes"] == 12 and updated["keep_alive"] is True


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("query", "body", "field"),
    [
        ("", {"session_timeout_minutes": 0}, "session_timeout_minutes"),
        ("", {"session_timeout_minutes": 30}, "session_timeout_minutes"),
        ("", {"session_timeout": 45}, "session_timeout_minutes"),
        ("", {"session_timeout_minutes": 11}, "session_timeout_minutes"),  # app cap is 10
        ("", {"session_timeout_minutes": 1.5}, "session_timeout_minutes"),
        ("", {"session_timeout_minutes": "soon"}, "session_timeout_minutes"),
        ("?session_timeout=-3", None, "session_timeout_minutes"),
        ("", {"keep_alive": "perhaps"}, "keep_alive"),
        ("?screenshot=please", None, "screenshot"),
        ("", {"session_id": "../etc/passwd"}, "session_id"),
        ("", {"session_id": ["x"]}, "session_id"),
        ("", {"screnshot": True}, "screnshot"),
        ("", {"session_timeout": 3, "session_timeout_minutes": 4}, "session_timeout"),
    ],
)
def test_start_400_names_the_field(
    make_app: AppFactory, query: str, body: dict[str, Any] | None, field: str
) -> None:
    client = make_app(SESSIONS_MAX_TIMEOUT_MINUTES=10).test_client()
    r = client.post("/session/start" + query, json=body, headers=AUTH_A)
    assert r.status_code == 400 and r.is_json
    error = r.get_json()["error"]
    assert field in error and "Traceback" not in error and "pydantic" not in error
    assert field in {f["field"] for f in r.get_json()["fields"]}
    assert state_of(client.application).manager.active_count == 0


@pytest.mark.parametrize(
    ("data", "content_type"),
    [("{not json", "application/json"), ("[1, 2]", "application/json"), ("42", "text/plain")],
)
def test_start_400_for_bad_bodies(client: FlaskClient, data: str, content_type: str) -> None:
    r = client.post("/session/start", data=data, content_type=content_type, headers=AUTH_A)
    assert r.status_code == 400 and "body" in r.get_json()["error"]


def test_close_400_without_session_id(client: FlaskClient) -> None:
    r = client.post("/session/close", json={}, headers=AUTH_A)
    assert r.status_code == 400 and "session_id" in r.get_json()["error"]


def test_list_400_for_unknown_status(client: FlaskClient) -> None:
    r = client.get("/sessions?status=asleep", headers=AUTH_A)
    assert r.status_code == 400 and "status" in r.get_json()["error"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dG9rZW4tYWxpY2U6eA=="},
        {"Authorization": "Token token-alice"},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Bearer "},
    ],
)
def test_401(client: FlaskClient, headers: dict[str, str]) -> None:
    for method, path in (("POST", "/session/start"), ("GET", "/sessions"), ("GET", "/session/x")):
        r = client.open(path, method=method, headers=headers)
        assert r.status_code == 401 and r.is_json
        assert "Bearer" in r.get_json()["error"]
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_other_principals_get_404_and_never_see_it(client: FlaskClient) -> None:
    sid = start(client)["session_id"]
    mine = start(client, headers=AUTH_B)["session_id"]
    for method, path, body in (
        ("GET", f"/session/{sid}", None),
        ("POST", "/session/start", {"session_id": sid}),
        ("POST", "/session/close", {"session_id": sid}),
        ("DELETE", f"/session/{sid}", None),
    ):
        r = client.open(path, method=method, json=body, headers=AUTH_B)
        assert r.status_code == 404, (method, path)
        assert "no session" in r.get_json()["error"]
    listed = client.get("/sessions", headers=AUTH_B).get_json()["sessions"]
    assert [s["session_id"] for s in listed] == [mine]
    assert client.get(f"/session/{sid}", headers=AUTH_A).get_json()["status"] == "active"


def test_unknown_session_and_routes_are_json(client: FlaskClient) -> None:
    assert client.get("/session/nope", headers=AUTH_A).status_code == 404
    r = client.get("/nowhere", headers=AUTH_A)
    assert r.status_code == 404 and r.is_json
    r = client.put("/session/start", headers=AUTH_A)
    assert r.status_code == 405 and r.is_json and "POST" in r.headers["Allow"]
    for method in ("GET", "DELETE"):
        for action in ("start", "close"):
            r = client.open(f"/session/{action}", method=method, headers=AUTH_A)
            assert r.status_code == 405 and r.headers["Allow"] == "POST", (method, action)


def test_close_is_idempotent_and_ended_sessions_409(client: FlaskClient) -> None:
    sid = start(client)["session_id"]
    first = client.post("/session/close", json={"session_id": sid}, headers=AUTH_A).get_json()
    assert first["status"] == "closed" and first["closed_at"] is not None
    again = client.post("/session/close", json={"session_id": sid}, headers=AUTH_A)
    assert again.status_code == 200 and again.get_json() == first
    deleted = client.delete(f"/session/{sid}", headers=AUTH_A)
    assert deleted.status_code == 200 and deleted.get_json() == first
    r = client.post("/session/start", json={"session_id": sid}, headers=AUTH_A)
    assert r.status_code == 409 and r.get_json()["status"] == "closed"
    assert "POST /session/start" in r.get_json()["error"]


def test_list_filters_by_status(client: FlaskClient) -> None:
    a, b = start(client)["session_id"], start(client)["session_id"]
    client.delete(f"/session/{a}", headers=AUTH_A)

    def ids(query: str) -> list[str]:
        sessions = client.get("/sessions" + query, headers=AUTH_A).get_json()["sessions"]
        return [s["session_id"] for s in sessions]

    assert ids("") == [a, b]
    assert ids("?status=active") == [b]
    assert ids("?status=closed") == [a]
    assert ids("?status=timed_out") == []


def test_capacity_429_with_retry_after(make_app: AppFactory, clock: ManualClock) -> None:
    client = make_app(SESSIONS_MAX_SESSIONS=2).test_client()
    first = start(client)["session_id"]
    start(client, headers=AUTH_B)
    clock.advance(minutes=1)
    r = client.post("/session/start", json={}, headers=AUTH_A)
    assert r.status_code == 429 and "2 session slots" in r.get_json()["error"]
    assert 1 <= int(r.headers["Retry-After"]) <= 5 * 60
    client.post("/session/close", json={"session_id": first}, headers=AUTH_A)
    assert client.post("/session/start", json={}, headers=AUTH_A).status_code == 200


def test_missing_browser_is_503_with_a_hint(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_app(SESSIONS_BROWSER_PATH="/nonexistent/chrome").test_client()
    r = client.post("/session/start", json={}, headers=AUTH_A)
    assert any("/nonexistent/chrome" in rec.getMessage() for rec in caplog.records)
    assert r.status_code == 503 and r.is_json
    assert "/nonexistent/chrome" in r.get_json()["error"]
    assert "apt-get install -y chromium-headless-shell" in r.get_json()["error"]


def test_unexpected_error_is_a_json_500_without_trace(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = state_of(client.application).manager

    def broken(*args: Any) -> Any:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(manager, "list_sessions", broken)
    r = client.get("/sessions", headers=AUTH_A)
    assert r.status_code == 500 and r.is_json
    assert "secret" not in r.get_data(as_text=True) and "Traceback" not in r.get_data(True)


# ------------------------------------------------------------ lifecycle


def test_reaper_closes_idle_session_within_two_intervals(
    make_app: AppFactory, clock: ManualClock
) -> None:
    interval = 0.2
    app = make_app(SESSIONS_REAPER_INTERVAL_SECONDS=interval, SESSIONS_RETENTION_MINUTES=10)
    client = app.test_client()
    idle = start(client, session_timeout=2)["session_id"]
    kept = start(client, session_timeout=2, keep_alive=True)["session_id"]
    touched = start(client, session_timeout=2)["session_id"]
    assert context_alive(app, idle)

    clock.advance(minutes=1, seconds=30)
    start(client, session_id=touched)  # access moves its deadline
    clock.advance(seconds=31)  # idle is now 1 s past its deadline

    def status(sid: str) -> Any:
        return client.get(f"/session/{sid}", headers=AUTH_A).get_json()

    assert wait_for(lambda: status(idle)["status"] == "timed_out", 2 * interval + 0.5)
    gone = status(idle)
    assert "idle timeout" in gone["error"] and gone["closed_at"] is not None
    live = state_of(app).manager
    assert live.live(idle) is None
    assert status(kept)["status"] == "active" and status(touched)["status"] == "active"
    assert context_alive(app, kept) and context_alive(app, touched)

    clock.advance(minutes=10, seconds=1)  # retention passes: the record is purged
    assert wait_for(lambda: client.get(f"/session/{idle}", headers=AUTH_A).status_code == 404, 2)
    assert status(touched)["status"] == "timed_out"
    assert status(kept)["status"] == "active"


def test_reaper_really_closes_the_context(make_app: AppFactory, clock: ManualClock) -> None:
    app = make_app(SESSIONS_REAPER_INTERVAL_SECONDS=0.1)
    client = app.test_client()
    sid = start(client)["session_id"]
    state = state_of(app)
    live = state.manager.live(sid)
    assert live is not None

    async def has_it() -> bool:
        return live.context in (await state.runtime.browser()).contexts

    assert state.runtime.submit(has_it(), 10)
    clock.advance(minutes=5, seconds=1)
    # Within two reaper intervals (plus scheduling slack) Chromium no longer has it.
    assert wait_for(lambda: not state.runtime.submit(has_it(), 10), 0.2 + 0.5)
    assert live.page.is_closed()
    assert state.manager.live(sid) is None


def test_lifetime_cap_ends_keep_alive_sessions(make_app: AppFactory, clock: ManualClock) -> None:
    app = make_app(SESSIONS_REAPER_INTERVAL_SECONDS=0.1, SESSIONS_MAX_LIFETIME_MINUTES=20)
    client = app.test_client()
    sid = start(client, keep_alive=True)["session_id"]
    for _ in range(3):  # keep_alive: idle for 9 minutes at a time does not matter
        clock.advance(minutes=6)
        assert client.get(f"/session/{sid}", headers=AUTH_A).get_json()["status"] == "active"
    clock.advance(minutes=2, seconds=1)
    assert wait_for(lambda: state_of(app).manager.live(sid) is None, 1.0)
    body = client.get(f"/session/{sid}", headers=AUTH_A).get_json()
    assert body["status"] == "timed_out" and "lifetime cap" in body["error"]


def test_browser_crash_marks_sessions_error_and_next_start_relaunches(app: Flask) -> None:
    client = app.test_client()
    sid = start(client)["session_id"]
    state = state_of(app)
    pids = chromium_pids()
    assert pids
    main = [p for p in pids if psutil.Process(p).ppid() not in pids]
    for pid in main:
        psutil.Process(pid).send_signal(signal.SIGKILL)
    assert wait_for(lambda: state.manager.live(sid) is None, 10)
    body = client.get(f"/session/{sid}", headers=AUTH_A).get_json()
    assert body["status"] == Status.error.value and "Chromium exited" in body["error"]
    assert start(client, screenshot=True)["status"] == "active"
    assert state.runtime.launches == 2


def test_verify_token_callback_supplies_principals(make_app: AppFactory) -> None:
    app = make_app(SESSIONS_TOKENS=None)
    ext_state = state_of(app)
    assert ext_state is not None
    # create_app generated a token; the host adds its own check on top.
    seen: list[str] = []

    def verify(token: str) -> str | None:
        seen.append(token)
        return {"oauth-1": "user-1", "oauth-2": "user-2"}.get(token)

    app.config["SESSIONS_VERIFY_TOKEN"] = verify
    # Settings are read at init: build a new app the way a host would.
    host = Flask("host")
    host.config["SESSIONS_VERIFY_TOKEN"] = verify
    host.config["SESSIONS_URL_PREFIX"] = "/browser"
    ext = FlaskSessions(host)
    try:

        @host.get("/hello")
        def hello() -> str:
            return "hi"

        client = host.test_client()
        h1 = {"Authorization": "Bearer oauth-1"}
        h2 = {"Authorization": "Bearer oauth-2"}
        sid = client.post("/browser/session/start", json={}, headers=h1).get_json()["session_id"]
        assert client.get(f"/browser/session/{sid}", headers=h2).status_code == 404
        assert client.get(f"/browser/session/{sid}", headers=h1).status_code == 200
        bad = client.get("/browser/sessions", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        assert "oauth-1" in seen and "nope" in seen
        # JSON errors under the prefix only; the host's own 404s are left alone.
        assert client.get("/browser/session/x/y", headers=h1).is_json
        assert not client.get("/elsewhere").is_json
        assert client.get("/hello").get_data(as_text=True) == "hi"
    finally:
        ext.shutdown(host)


def test_decorator_verify_token_like_flask_httpauth() -> None:
    host = Flask("host2")
    ext = FlaskSessions()

    @ext.verify_token
    def verify(token: str) -> str | None:
        return "svc" if token == "ok" else None

    ext.init_app(host)
    try:
        client = host.test_client()
        r = client.get("/sessions", headers={"Authorization": "Bearer ok"})
        assert r.status_code == 200 and r.get_json() == {"sessions": []}
        assert client.get("/sessions", headers={"Authorization": "Bearer no"}).status_code == 401
    finally:
        ext.shutdown(host)


def test_no_tokens_means_closed_not_open() -> None:
    host = Flask("host3")
    ext = FlaskSessions(host)
    try:
        r = host.test_client().post("/session/start", json={})
        assert r.status_code == 401
    finally:
        ext.shutdown(host)


def test_two_apps_stay_apart(make_app: AppFactory) -> None:
    one, two = make_app().test_client(), make_app().test_client()
    sid = start(one)["session_id"]
    assert two.get(f"/session/{sid}", headers=AUTH_A).status_code == 404
    assert state_of(one.application) is not state_of(two.application)


def test_shutdown_leaves_no_chromium(make_app: AppFactory) -> None:
    app = make_app()
    client = app.test_client()
    sids = [start(client)["session_id"] for _ in range(3)]
    before = chromium_pids()
    assert before
    state = state_of(app)
    state.manager.shutdown()
    assert wait_for(lambda: not alive(before), 10), alive(before)
    assert all(state.manager._records[s].status is Status.closed for s in sids)
    r = client.post("/session/start", json={}, headers=AUTH_A)
    assert r.status_code in (409, 503) and r.is_json
