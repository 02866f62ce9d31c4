"""What the sessions page reads: each listed session's page, and looks that do not touch.

The server under test is real: the app (with the test's ManualClock and a fast reaper)
serves on a free 127.0.0.1 port from a thread; its sessions are real Chromium contexts on
the local page server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from flask_sessions import ManualClock

from .conftest import AUTH_A, AppFactory

PREFIX = "/api/v1"


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
