"""The warm pool against real Chromium: hand-over, isolation, capacity, browser loss."""

from __future__ import annotations

import signal

import psutil
from flask import Flask

from flask_sessions import FlaskSessions
from flask_sessions.extension import SessionsState

from .conftest import AUTH_A, AUTH_B, AppFactory, chromium_pids, wait_for


def state_of(app: Flask) -> SessionsState:
    return FlaskSessions.state(app)


def settle(app: Flask) -> None:
    state = state_of(app)
    state.runtime.submit(state.manager.settled(), 20)


def warm(make_app: AppFactory, **config: object) -> Flask:
    app = make_app(SESSIONS_LAUNCH_AT_INIT=True, **config)
    settle(app)
    return app


def test_start_hands_over_a_ready_context(make_app: AppFactory) -> None:
    app = warm(make_app, SESSIONS_WARM_POOL=2)
    pool = state_of(app).manager.pool
    assert len(pool) == 2
    ready = pool.ready_contexts()
    sid = app.test_client().post("/session/start", json={}, headers=AUTH_A).get_json()["session_id"]
    live = state_of(app).manager.live(sid)
    assert live is not None and live.context is ready[0] and pool.handed_out == 1
    settle(app)
    assert len(pool) == 2  # refilled in the background
    assert live.context not in pool.ready_contexts()


def test_pooled_contexts_are_never_recycled(make_app: AppFactory, page_server: str) -> None:
    app = warm(make_app, SESSIONS_WARM_POOL=1)
    client = app.test_client()
    state = state_of(app)

    async def cookies_after(session_id: str, path: str | None) -> list[str]:
        live = state.manager.live(session_id)
        assert live is not None
        if path:
            await live.page.goto(page_server + path)
        return [c["name"] for c in await live.context.cookies()]

    first = client.post("/session/start", json={}, headers=AUTH_A).get_json()["session_id"]
    first_context = state.manager.live(first).context  # type: ignore[union-attr]
    assert state.runtime.submit(cookies_after(first, "/set-cookie"), 20) == ["visitor"]
    client.delete(f"/session/{first}", headers=AUTH_A)
    settle(app)
    second = client.post("/session/start", json={}, headers=AUTH_B).get_json()["session_id"]
    assert state.manager.live(second).context is not first_context  # type: ignore[union-attr]
    assert state.runtime.submit(cookies_after(second, None), 20) == []

    async def open_contexts() -> list[object]:
        return list((await state.runtime.browser()).contexts)

    assert first_context not in state.runtime.submit(open_contexts(), 10)


def test_pool_counts_against_capacity(make_app: AppFactory) -> None:
    app = warm(make_app, SESSIONS_WARM_POOL=5, SESSIONS_MAX_SESSIONS=2)
    pool = state_of(app).manager.pool
    assert pool.reserved == 2  # not 5: only the room capacity leaves
    client = app.test_client()
    for _ in range(2):
        assert client.post("/session/start", json={}, headers=AUTH_A).status_code == 200
    settle(app)
    assert pool.reserved == 0
    r = client.post("/session/start", json={}, headers=AUTH_A)
    assert r.status_code == 429 and "Retry-After" in r.headers


def test_browser_loss_empties_the_pool_and_start_relaunches(make_app: AppFactory) -> None:
    app = warm(make_app, SESSIONS_WARM_POOL=2)
    state = state_of(app)
    assert len(state.manager.pool) == 2
    pids = chromium_pids()
    for pid in [p for p in pids if psutil.Process(p).ppid() not in pids]:
        psutil.Process(pid).send_signal(signal.SIGKILL)
    assert wait_for(lambda: not state.runtime.browser_connected, 10)
    assert wait_for(lambda: len(state.manager.pool) == 0, 5)
    client = app.test_client()
    body = client.post("/session/start", json={"screenshot": True}, headers=AUTH_A).get_json()
    assert body["status"] == "active" and body["screenshot"]
    settle(app)
    assert len(state.manager.pool) == 2 and state.runtime.launches == 2


def test_pool_off(make_app: AppFactory) -> None:
    app = warm(make_app, SESSIONS_WARM_POOL=0)
    client = app.test_client()
    assert client.post("/session/start", json={}, headers=AUTH_A).status_code == 200
    settle(app)
    assert state_of(app).manager.pool.reserved == 0
