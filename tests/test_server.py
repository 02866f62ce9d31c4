"""Integration tests of the real standalone server (``python -m flask_sessions``) over HTTP.

Each server is a subprocess serving with waitress on a free port of 127.0.0.1 and driving
a real Chromium. Servers are always stopped in teardown (SIGTERM, then SIGKILL), and any
process they left behind is killed by PID, so a failing test leaks nothing.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

# Re-exported for the other test modules, which start their servers through launch().
from flask_sessions.testing import STOP_TIMEOUT as STOP_TIMEOUT
from flask_sessions.testing import ServerProcess, serve
from flask_sessions.testing import server_env as server_env

from .conftest import CONTRACT_FIELDS, alive, chromium_pids, png_size, wait_for

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "server-token-alice"
OTHER_TOKEN = "server-token-bob"
REQUEST_TIMEOUT = 30.0
Server = ServerProcess


def launch(env: dict[str, str]) -> Server:
    """A server with ``env``, ready (``GET /healthz`` 200) or failed with its output."""
    return serve(env, cwd=ROOT)


@pytest.fixture
def spawn() -> Iterator[Callable[[dict[str, str]], Server]]:
    """Start servers of one's own; every one is stopped in teardown."""
    servers: list[Server] = []

    def factory(env: dict[str, str]) -> Server:
        server = launch(env)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """One shared server with two static tokens (two principals)."""
    srv = launch(server_env(json.dumps([TOKEN, OTHER_TOKEN])))
    try:
        yield srv
    finally:
        srv.stop()


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def call(
    server: Server,
    method: str,
    path: str,
    *,
    token: str | None = TOKEN,
    json: Any = None,
    **kwargs: Any,
) -> requests.Response:
    headers = bearer(token) if token is not None else {}
    headers.update(kwargs.pop("headers", {}))
    return requests.request(
        method,
        server.base + path,
        json=json,
        headers=headers,
        timeout=REQUEST_TIMEOUT,
        **kwargs,
    )


def ok_json(response: requests.Response) -> Any:
    assert response.status_code == 200, (response.status_code, response.text)
    assert_json(response)
    return response.json()


def assert_json(response: requests.Response) -> None:
    """A JSON body, never an HTML error page nor a stack trace."""
    content_type = response.headers.get("Content-Type", "")
    assert content_type.startswith("application/json"), (content_type, response.text)
    text = response.text.lower()
    assert "<html" not in text and "<!doctype" not in text and "traceback" not in text
    assert isinstance(response.json(), dict)


def assert_error(response: requests.Response, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert_json(response)
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    for word in words:
        assert word in body["error"], (word, body)
    return body


def check_contract(body: dict[str, Any]) -> None:
    assert body.keys() >= CONTRACT_FIELDS, sorted(body)
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,64}", body["session_id"])
    created = datetime.fromisoformat(body["created_at"])
    accessed = datetime.fromisoformat(body["last_accessed_at"])
    assert created.tzinfo is not None and accessed.tzinfo is not None
    assert accessed >= created
    assert isinstance(body["duration"], str) and body["duration"].startswith("P")
    assert body["status"] == "active"
    assert body["timeout_minutes"] == 5
    assert body["error"] is None


def start(server: Server, token: str = TOKEN, **body: Any) -> dict[str, Any]:
    result: dict[str, Any] = ok_json(call(server, "POST", "/session/start", token=token, json=body))
    return result


def listed(server: Server, status: str | None = None, token: str = TOKEN) -> dict[str, str]:
    """``GET /sessions`` as ``{session_id: status}``."""
    query = f"?status={status}" if status else ""
    body = ok_json(call(server, "GET", "/sessions" + query, token=token))
    return {s["session_id"]: s["status"] for s in body["sessions"]}


# ------------------------------------------------------------- lifecycle


def test_start_read_close_delete_list_over_http(server: Server) -> None:
    plain = start(server)
    check_contract(plain)
    assert plain["screenshot"] is None

    shot = start(server, screenshot=True)
    check_contract(shot)
    assert png_size(shot["screenshot"]) == (1280, 720)
    assert shot["session_id"] != plain["session_id"]

    sid = plain["session_id"]
    got = ok_json(call(server, "GET", f"/session/{sid}"))
    assert got["session_id"] == sid and got["status"] == "active"
    assert got["last_accessed_at"] == plain["last_accessed_at"]  # a read is not access
    assert got["created_at"] == plain["created_at"]

    again = start(server, session_id=sid)  # start with its id returns the same session
    assert again["session_id"] == sid and again["created_at"] == plain["created_at"]

    active = listed(server, "active")
    assert active.get(sid) == "active" and active.get(shot["session_id"]) == "active"

    closed = ok_json(call(server, "POST", "/session/close", json={"session_id": sid}))
    assert closed["session_id"] == sid and closed["status"] == "closed"
    assert datetime.fromisoformat(closed["closed_at"]).tzinfo is not None

    deleted = ok_json(call(server, "DELETE", f"/session/{sid}"))  # idempotent
    assert deleted["session_id"] == sid and deleted["status"] == "closed"
    assert deleted["closed_at"] == closed["closed_at"]

    assert ok_json(call(server, "GET", f"/session/{sid}"))["status"] == "closed"
    assert listed(server, "closed").get(sid) == "closed"
    active = listed(server, "active")
    assert sid not in active and shot["session_id"] in active
    everything = listed(server)
    assert everything.get(sid) == "closed" and everything.get(shot["session_id"]) == "active"
    assert_error(call(server, "GET", "/sessions?status=asleep"), 400, "status")

    gone = ok_json(call(server, "DELETE", f"/session/{shot['session_id']}"))
    assert gone["status"] == "closed"


def test_query_string_parameters_and_body_wins(server: Server) -> None:
    r = call(server, "POST", "/session/start?session_timeout=7&screenshot=true", json=None)
    body = ok_json(r)
    assert body["status"] == "active" and body["timeout_minutes"] == 7
    assert png_size(body["screenshot"]) == (1280, 720)

    r = call(
        server,
        "POST",
        "/session/start?session_timeout_minutes=7&screenshot=true",
        json={"session_timeout_minutes": 9, "screenshot": False},
    )
    both = ok_json(r)
    assert both["timeout_minutes"] == 9 and both["screenshot"] is None

    r = call(server, "POST", "/session/start?session_timeout=7", json={"session_timeout": 12})
    alias = ok_json(r)
    assert alias["timeout_minutes"] == 12

    for sid in (body["session_id"], both["session_id"], alias["session_id"]):
        assert ok_json(call(server, "DELETE", f"/session/{sid}"))["status"] == "closed"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Token {TOKEN}"},
        {"Authorization": "Bearer "},
    ],
    ids=["none", "wrong-token", "wrong-scheme", "empty"],
)
def test_401_is_json_with_www_authenticate(server: Server, headers: dict[str, str]) -> None:
    for method, path in (
        ("POST", "/session/start"),
        ("GET", "/sessions"),
        ("GET", "/session/abc"),
        ("DELETE", "/session/abc"),
        ("POST", "/session/close"),
    ):
        r = call(server, method, path, token=None, json={}, headers=headers)
        assert_error(r, 401, "Authorization")
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), r.headers


def test_400_names_the_field(server: Server) -> None:
    before = ok_json(requests.get(server.base + "/healthz", timeout=REQUEST_TIMEOUT))
    r = call(server, "POST", "/session/start", json={"session_timeout_minutes": 45})
    body = assert_error(r, 400, "session_timeout_minutes")
    assert "session_timeout_minutes" in {f["field"] for f in body["fields"]}

    r = call(server, "POST", "/session/start?session_timeout=45")
    assert_error(r, 400, "session_timeout_minutes")

    r = call(server, "POST", "/session/start", json={"screnshot": True})
    assert_error(r, 400, "screnshot")

    r = call(
        server,
        "POST",
        "/session/start",
        json=None,
        data="{not json",
        headers={"Content-Type": "application/json"},
    )
    assert_error(r, 400, "body")

    assert_error(call(server, "POST", "/session/close", json={}), 400, "session_id")
    after = ok_json(requests.get(server.base + "/healthz", timeout=REQUEST_TIMEOUT))
    assert after["active_sessions"] == before["active_sessions"]  # nothing was started


def test_unknown_routes_and_methods_are_json(server: Server) -> None:
    for method in ("GET", "POST"):
        assert_error(call(server, method, "/nope"), 404)
        assert_error(call(server, method, "/nope", token=None), 404)
    r = call(server, "PUT", "/session/start", json={})
    assert_error(r, 405)
    assert "POST" in r.headers.get("Allow", ""), r.headers
    assert_error(call(server, "PATCH", "/sessions"), 405)


def test_unknown_and_foreign_sessions_are_404(server: Server) -> None:
    unknown = "no-such-session-0123456789"
    assert_error(call(server, "GET", f"/session/{unknown}"), 404, unknown)
    assert_error(call(server, "DELETE", f"/session/{unknown}"), 404, unknown)
    assert_error(call(server, "POST", "/session/close", json={"session_id": unknown}), 404)
    assert_error(call(server, "POST", "/session/start", json={"session_id": unknown}), 404)

    mine = start(server)["session_id"]
    assert_error(call(server, "GET", f"/session/{mine}", token=OTHER_TOKEN), 404)
    assert_error(call(server, "DELETE", f"/session/{mine}", token=OTHER_TOKEN), 404)
    assert mine not in listed(server, token=OTHER_TOKEN)
    assert ok_json(call(server, "GET", f"/session/{mine}"))["status"] == "active"

    ok_json(call(server, "DELETE", f"/session/{mine}"))
    r = call(server, "POST", "/session/start", json={"session_id": mine})
    assert_error(r, 409, "closed")


def test_healthz_and_no_generated_token_when_tokens_are_set(server: Server) -> None:
    health = ok_json(requests.get(server.base + "/healthz", timeout=REQUEST_TIMEOUT))
    assert health["status"] == "ok" and health["browser_running"] is True
    assert not any("generated token" in line for line in server.stdout), server.output()


# ------------------------------------------------------- generated token


def test_generated_token_is_printed_and_required(
    spawn: Callable[[dict[str, str]], Server],
) -> None:
    env = server_env(None)
    assert "SESSIONS_TOKENS" not in env
    srv = spawn(env)
    match = srv.wait_for_stdout(r"generated token.*:\s*([A-Za-z0-9_-]{16,})\s*$", 10)
    assert match is not None, srv.output()
    token = match.group(1)
    assert token not in {TOKEN, OTHER_TOKEN}

    assert_error(call(srv, "POST", "/session/start", token=None, json={}), 401)
    assert_error(call(srv, "POST", "/session/start", token="guess", json={}), 401)
    assert_error(call(srv, "GET", "/sessions", token=None), 401)

    body = start(srv, token=token, screenshot=True)
    check_contract(body)
    assert png_size(body["screenshot"]) == (1280, 720)
    assert listed(srv, "active", token=token) == {body["session_id"]: "active"}


# --------------------------------------------------------------- shutdown


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_closes_sessions_and_leaves_no_chromium(
    spawn: Callable[[dict[str, str]], Server], signum: signal.Signals
) -> None:
    srv = spawn(server_env(TOKEN))
    ids = [start(srv)["session_id"] for _ in range(3)]
    assert len(set(ids)) == 3
    health = ok_json(requests.get(srv.base + "/healthz", timeout=REQUEST_TIMEOUT))
    assert health["active_sessions"] == 3

    pids = chromium_pids(srv.pid)
    assert pids, f"no Chromium below the server (pid {srv.pid})\n{srv.output()}"
    everything = srv.remember_children()  # Chromium and Playwright's driver

    srv.proc.send_signal(signum)
    try:
        code = srv.proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server did not exit within {STOP_TIMEOUT:g} s of {signum.name}")
    assert code == 0, srv.output()

    assert wait_for(lambda: not alive(pids), 5), f"Chromium left running: {alive(pids)}"
    assert wait_for(lambda: not alive(everything), 5), f"left running: {alive(everything)}"
    # The manager closed each session (not merely the driver dying with the process).
    for thread in srv.threads:
        thread.join(5)
    log = "".join(srv.stderr)
    for sid in ids:
        assert f"session {sid} closed (server shut down)" in log, srv.output()
    assert "Traceback" not in log, srv.output()
    assert " ERROR " not in log, srv.output()  # an orderly stop is not an error
