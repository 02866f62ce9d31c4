"""Under gunicorn: several workers get a clear 503 (sessions are per process), and
``--preload`` with launch-at-init works (nothing the fork breaks is used after it)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .conftest import alive, wait_for
from .test_server import ROOT, descendants, free_port, server_env

GUNICORN = Path(sys.executable).parent / "gunicorn"
AUTH = {"Authorization": "Bearer worker-token"}


class Gunicorn:
    def __init__(self, *args: str, **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(GUNICORN), "-b", f"127.0.0.1:{self.port}", *args, "flask_sessions:create_app()"],
            cwd=ROOT,
            env=server_env("worker-token", **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        self.seen: set[int] = set()

    def ready(self) -> None:
        def up() -> bool:
            self.seen |= descendants(self.proc.pid)
            try:
                return requests.get(self.base + "/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        assert wait_for(up, 45, 0.2), self.stop()

    def stop(self) -> str:
        self.seen |= descendants(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        _, err = self.proc.communicate(timeout=10)
        for pid in alive(self.seen):
            import psutil

            psutil.Process(pid).kill()
        return err


@pytest.fixture
def gunicorn() -> Iterator[list[Gunicorn]]:
    servers: list[Gunicorn] = []
    yield servers
    for server in servers:
        server.stop()


def test_several_workers_get_a_503_with_the_fix(gunicorn: list[Gunicorn]) -> None:
    server = Gunicorn("-w", "2")
    gunicorn.append(server)
    server.ready()
    for _ in range(4):
        r = requests.post(server.base + "/session/start", headers=AUTH, timeout=30)
        assert r.status_code == 503, r.text
        assert "-w 1" in r.json()["error"]
    assert requests.get(server.base + "/readyz", timeout=10).status_code == 503
    err = server.stop()
    assert "several worker processes" in err


def test_preload_with_launch_at_init_serves_after_the_fork(gunicorn: list[Gunicorn]) -> None:
    server = Gunicorn("-w", "1", "--threads", "4", "--preload", SESSIONS_LAUNCH_AT_INIT="true")
    gunicorn.append(server)
    server.ready()
    started = time.monotonic()
    r = requests.post(server.base + "/session/start", headers=AUTH, json={}, timeout=60)
    assert r.status_code == 200, r.text
    sid = r.json()["session_id"]
    for _ in range(10):  # fresh connections each time
        r = requests.get(f"{server.base}/session/{sid}", headers=AUTH, timeout=30)
        assert r.status_code == 200 and r.json()["status"] == "active"
    assert time.monotonic() - started < 60
    server.stop()
    assert wait_for(lambda: not alive(server.seen), 10), alive(server.seen)
