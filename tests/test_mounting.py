"""Mounting in a host app (tests/hostapp): scoped errors, CSRF, the host's own auth,
probes, metrics, logs, the per-principal cap, and no Chromium left by a forgotten app."""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Iterator

import pytest
from flask import Flask

from flask_sessions import FlaskSessions, create_app

from .conftest import AUTH_A, AUTH_B, AppFactory, alive, chromium_pids, wait_for
from .hostapp import create_app as create_host_app
from .hostapp import sessions

ALICE = {"Authorization": "Bearer alice-api-token"}
BOB = {"Authorization": "Bearer bob-api-token"}


@pytest.fixture(params=["host-first", "sessions-first"])
def host(request: pytest.FixtureRequest) -> Iterator[Flask]:
    app = create_host_app(order=request.param)
    yield app
    sessions.shutdown(app)


def test_host_pages_and_handlers_are_untouched(host: Flask) -> None:
    client = host.test_client()
    assert client.get("/pages/").data == b"<h1>Host home</h1>"
    r = client.get("/nope")
    assert r.status_code == 404 and r.data == b"<h1>Host 404 page</h1>"
    r = client.put("/pages/")  # 405: the host's HTTPException handler
    assert r.status_code == 405 and r.get_json() == {
        "host_error": "Method Not Allowed",
        "code": 405,
    }
    r = client.get("/pages/boom")
    assert r.status_code == 500 and r.data == b"<h1>Host 500 page</h1>"
    r = client.post("/pages/form")  # the host's CSRF protection still holds
    assert r.status_code == 400 and r.get_json()["host_error"] == "Bad Request"


def test_our_paths_answer_json_whatever_the_host_registered(host: Flask) -> None:
    client = host.test_client()
    r = client.get("/browser/nope")
    assert r.status_code == 404 and "no such endpoint" in r.get_json()["error"]
    r = client.put("/browser/session/start", headers=ALICE)
    assert r.status_code == 405 and "POST" in r.headers["Allow"] and "error" in r.get_json()
    r = client.get("/browser/session/no-such-session", headers=ALICE)
    assert r.status_code == 404 and "no session" in r.get_json()["error"]
    r = client.get("/browser/session/a.b", headers=ALICE)  # not even an id: 404, not 500
    assert r.status_code == 404 and "error" in r.get_json()
    r = client.post("/browser/session/start", json={"nope": 1}, headers=ALICE)
    assert r.status_code == 400 and r.get_json()["fields"][0]["field"] == "nope"
    r = client.post("/browser/session/start")
    assert r.status_code == 401 and "Bearer" in r.get_json()["error"]


def test_a_bug_inside_our_routes_is_our_json_500(
    host: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(FlaskSessions.state(host).manager, "get", broken)
    r = host.test_client().get("/browser/session/some-id", headers=ALICE)
    assert r.status_code == 500
    assert r.get_json() == {
        "error": "internal error in flask_sessions; the server log has the details"
    }


def test_start_under_csrf_with_the_hosts_own_users(host: Flask) -> None:
    client = host.test_client()
    r = client.post("/browser/session/start", json={}, headers=ALICE)
    assert r.status_code == 200, r.get_json()
    session_id = r.get_json()["session_id"]
    assert client.get(f"/browser/session/{session_id}", headers=BOB).status_code == 404
    r = client.post("/browser/session/close", json={"session_id": session_id}, headers=ALICE)
    assert r.status_code == 200 and r.get_json()["status"] == "closed"
    assert (
        client.post("/browser/session/start", headers={"Authorization": "Bearer x"}).status_code
        == 401
    )


def test_probes_and_metrics_are_mounted_under_the_prefix(host: Flask) -> None:
    client = host.test_client()
    assert client.get("/browser/healthz").get_json()["status"] == "ok"
    assert client.get("/healthz").status_code == 404  # the host's namespace stays the host's
    assert wait_for(lambda: client.get("/browser/readyz").status_code == 200, 30)
    body = client.get("/browser/metrics").get_data(as_text=True)
    assert "flask_sessions_browser_up 1.0" in body


# ------------------------------------------------------------- probes


def test_readyz_is_503_until_chromium_answers_and_after_it_dies(make_app: AppFactory) -> None:
    app = make_app(SESSIONS_WARM_POOL=0)
    client = app.test_client()
    first = client.get("/readyz")  # nothing launched yet: starts a launch, answers at once
    assert first.status_code == 503 and first.get_json()["status"] == "unavailable"
    assert wait_for(lambda: client.get("/readyz").status_code == 200, 30)
    assert client.get("/readyz").get_json() == {"status": "ready", "reason": "Chromium answers"}

    state = FlaskSessions.state(app)
    pids = chromium_pids()
    for pid in pids:
        import os
        import signal

        os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: not state.runtime.browser_connected, 10)
    state.manager._probe = None  # skip the 1 s cache
    assert client.get("/readyz").status_code == 503
    assert wait_for(lambda: not alive(pids), 10)


def test_readyz_names_a_broken_browser_path(make_app: AppFactory, tmp_path: object) -> None:
    app = make_app(SESSIONS_BROWSER_PATH="/nonexistent/chromium")
    client = app.test_client()
    assert client.get("/healthz").status_code == 200  # alive, but not ready
    assert wait_for(
        lambda: "SESSIONS_BROWSER_PATH" in (client.get("/readyz").get_json() or {})["reason"], 10
    )
    r = client.get("/readyz")
    assert r.status_code == 503 and "/nonexistent/chromium" in r.get_json()["reason"]


def test_probes_can_require_the_token_and_move(make_app: AppFactory) -> None:
    app = make_app(
        SESSIONS_PROBES_REQUIRE_AUTH=True,
        SESSIONS_METRICS_PATH="/internal/metrics",
        SESSIONS_READY_PATH="",
    )
    client = app.test_client()
    assert client.get("/internal/metrics").status_code == 401
    assert client.get("/internal/metrics", headers=AUTH_A).status_code == 200
    assert client.get("/healthz").status_code == 401
    assert client.get("/readyz", headers=AUTH_A).status_code == 404
    assert client.get("/metrics", headers=AUTH_A).status_code == 404


def test_liveness_and_metrics_answer_under_several_workers(make_app: AppFactory) -> None:
    """A deployment error (several worker processes) refuses the API, not the probes that
    tell the operator about it."""
    client = make_app().test_client()
    several = {"wsgi.multiprocess": True}
    assert client.get("/healthz", environ_overrides=several).status_code == 200
    assert client.get("/metrics", environ_overrides=several).status_code == 200
    assert client.get("/sessions", headers=AUTH_A, environ_overrides=several).status_code == 503


def test_metrics_count_sessions_and_requests(make_app: AppFactory) -> None:
    app = make_app(SESSIONS_WARM_POOL=0)
    client = app.test_client()
    ids = [client.post("/session/start", headers=AUTH_A).get_json()["session_id"] for _ in range(2)]
    client.post("/session/close", json={"session_id": ids[0]}, headers=AUTH_A)
    client.get("/session/unknown-id", headers=AUTH_A)
    text = client.get("/metrics").get_data(as_text=True)
    assert "flask_sessions_sessions_started_total 2.0" in text
    assert 'flask_sessions_sessions_ended_total{status="closed"} 1.0' in text
    assert 'flask_sessions_sessions{status="active"} 1.0' in text
    assert 'flask_sessions_sessions{status="closed"} 1.0' in text
    assert "flask_sessions_capacity_left 49.0" in text
    assert (
        'flask_sessions_requests_total{method="POST",route="/session/start",status="200"} 2.0'
        in text
    )
    assert 'route="/session/<session_id>",status="404"' in text
    assert "flask_sessions_request_duration_seconds_bucket" in text
    assert ids[1] not in text and "alice" not in text  # no per-session or principal label


# --------------------------------------------------------------- limits


def test_per_principal_cap_is_a_429_naming_it(make_app: AppFactory) -> None:
    app = make_app(SESSIONS_MAX_SESSIONS_PER_PRINCIPAL=2, SESSIONS_WARM_POOL=0)
    client = app.test_client()
    for _ in range(2):
        assert client.post("/session/start", headers=AUTH_A).status_code == 200
    r = client.post("/session/start", headers=AUTH_A)
    assert r.status_code == 429 and "SESSIONS_MAX_SESSIONS_PER_PRINCIPAL" in r.get_json()["error"]
    assert "2 sessions" in r.get_json()["error"] and int(r.headers["Retry-After"]) >= 1
    assert client.post("/session/start", headers=AUTH_B).status_code == 200  # others go on
    text = client.get("/metrics").get_data(as_text=True)
    assert 'flask_sessions_starts_refused_total{reason="principal"} 1.0' in text


# ----------------------------------------------------------------- logs


def test_access_log_lines_never_carry_the_token(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(SESSIONS_WARM_POOL=0)
    client = app.test_client()
    with caplog.at_level(logging.INFO, logger="flask_sessions"):
        sid = client.post("/session/start", headers=AUTH_A).get_json()["session_id"]
        client.get("/nope", headers=AUTH_A)
        client.post("/session/close", json={"session_id": sid}, headers=AUTH_A)
    access = [r for r in caplog.records if r.name == "flask_sessions.access"]
    lines = [r.getMessage() for r in access]
    assert any(
        line.startswith("POST /session/start 200")
        and f"session={sid}" in line
        and "principal=alice" in line
        for line in lines
    ), lines
    assert any(line.startswith("GET /nope 404") for line in lines), lines
    started = [r for r in caplog.records if getattr(r, "event", None) == "started"]
    closed = [r for r in caplog.records if getattr(r, "event", None) == "closed"]
    assert started and closed and started[0].levelno == logging.INFO
    assert all("token-alice" not in r.getMessage() for r in caplog.records)
    assert access[0].route == "/session/start" and access[0].status == 200  # type: ignore[attr-defined]


def test_json_log_format() -> None:
    from flask_sessions.logs import JsonFormatter

    record = logging.LogRecord(
        "flask_sessions.access", logging.INFO, __file__, 1, "GET / %d", (200,), None
    )
    record.status = 200
    record.session_id = "abc"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "GET / 200" and line["status"] == 200 and line["session_id"] == "abc"
    assert line["level"] == "INFO" and line["logger"] == "flask_sessions.access"


def test_no_auth_warning_only_when_nothing_can_verify(caplog: pytest.LogCaptureFixture) -> None:
    from flask_sessions.extension import FlaskSessions as Ext

    with caplog.at_level(logging.WARNING, logger="flask_sessions"):
        late = Ext()
        app = Flask("late")
        late.init_app(app)

        @late.verify_token
        def verify(token: str) -> str | None:  # registered after init_app: still counts
            return None

        app.test_client().get("/sessions", headers=AUTH_A)
        assert not [r for r in caplog.records if "no SESSIONS_TOKENS" in r.getMessage()]

        bare = Flask("bare")
        none = Ext(bare)
        for _ in range(3):
            assert bare.test_client().get("/sessions", headers=AUTH_A).status_code == 401
        warnings = [r for r in caplog.records if "no SESSIONS_TOKENS" in r.getMessage()]
        assert len(warnings) == 1
        late.shutdown()
        none.shutdown()


# ------------------------------------------------------------- no leaks


def test_an_app_dropped_without_shutdown_leaves_no_chromium() -> None:
    before = chromium_pids()
    app = create_app({"SESSIONS_TOKENS": {"t": "p"}, "SESSIONS_WARM_POOL": 0})
    assert (
        app.test_client().post("/session/start", headers={"Authorization": "Bearer t"}).status_code
        == 200
    )
    started = chromium_pids() - before
    assert started
    del app
    gc.collect()
    assert wait_for(lambda: not alive(started), 20), f"left running: {alive(started)}"
