"""Under gunicorn: several workers get a clear 503 (sessions are per process), and
``--preload`` with launch-at-init works (nothing the fork breaks is used after it)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from flask_sessions.testing import ServerProcess, free_port, server_env, start_process

from .conftest import alive, wait_for
from .test_server import ROOT

GUNICORN = Path(sys.executable).parent / "gunicorn"
AUTH = {"Authorization": "Bearer worker-token"}


def gunicorn(*args: str, **env: str) -> ServerProcess:
    port = free_port()
    command = [str(GUNICORN), "-b", f"127.0.0.1:{port}", *args, "flask_sessions:create_app()"]
    env_ = server_env("worker-token", **env)
    return start_process(command, f"http://127.0.0.1:{port}", env_, cwd=ROOT)


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


def test_several_workers_get_a_503_with_the_fix(servers: list[ServerProcess]) -> None:
    server = gunicorn("-w", "2")
    servers.append(server)
    server.wait_ready()
    for _ in range(4):
        r = requests.post(server.base + "/session/start", headers=AUTH, timeout=30)
        assert r.status_code == 503, r.text
        assert "-w 1" in r.json()["error"]
    assert requests.get(server.base + "/readyz", timeout=10).status_code == 503
    server.stop(timeout=30)
    assert "several worker processes" in "".join(server.stderr)


def test_preload_with_launch_at_init_serves_after_the_fork(servers: list[ServerProcess]) -> None:
    server = gunicorn("-w", "1", "--threads", "4", "--preload", SESSIONS_LAUNCH_AT_INIT="true")
    servers.append(server)
    server.wait_ready()
    started = time.monotonic()
    r = requests.post(server.base + "/session/start", headers=AUTH, json={}, timeout=60)
    assert r.status_code == 200, r.text
    sid = r.json()["session_id"]
    for _ in range(10):  # fresh connections each time
        r = requests.get(f"{server.base}/session/{sid}", headers=AUTH, timeout=30)
        assert r.status_code == 200 and r.json()["status"] == "active"
    assert time.monotonic() - started < 60
    seen = server.remember_children()
    server.stop(timeout=30)
    assert wait_for(lambda: not alive(seen), 10), alive(seen)
