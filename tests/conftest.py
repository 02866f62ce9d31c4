"""Shared fixtures: a local page server, apps with a manual clock, Chromium process checks.

Tests never touch the internet: pages come from :func:`page_server` on 127.0.0.1.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_sessions import FlaskSessions, ManualClock, create_app
from flask_sessions.page.capture import image_size
from flask_sessions.testing import alive as alive  # re-exported: the tests import it from here

_SCRATCH = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Nothing a test run writes lands in the user's own folders or stays in /tmp: the run
    (each pytest-xdist worker of ``make test``) gets its own data home (where the default
    profile store lives) and its own temporary directory (the default session files and
    recordings roots, Chromium's profiles, Playwright's artifacts), inherited by every server
    a test starts and removed at the end. So one worker's sweeps, with a clock advanced by
    days, never meet another's files."""
    # a short path: Playwright MCP's sockets live under it, in at most ~107 bytes
    scratch = tempfile.mkdtemp(prefix="fst-")
    config.stash[_SCRATCH] = scratch
    os.environ["XDG_DATA_HOME"] = os.path.join(scratch, "data")
    os.environ["TMPDIR"] = os.path.join(scratch, "t")
    os.makedirs(os.environ["TMPDIR"])
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again


def pytest_unconfigure(config: pytest.Config) -> None:
    scratch = config.stash.get(_SCRATCH, None)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)


TOKEN_A = "token-alice"
TOKEN_B = "token-bob"
TOKENS = {TOKEN_A: "alice", TOKEN_B: "bob"}
AUTH_A = {"Authorization": f"Bearer {TOKEN_A}"}
AUTH_B = {"Authorization": f"Bearer {TOKEN_B}"}

# The fields DESIGN.md's contract promises in every session record.
CONTRACT_FIELDS = {
    "session_id",
    "created_at",
    "last_accessed_at",
    "duration",
    "status",
    "timeout_minutes",
    "error",
    "screenshot",
}

PAGES: dict[str, tuple[int, str, dict[str, str]]] = {
    "/": (
        200,
        "<!doctype html><title>Home</title><h1 style='color:#0a0'>flask_sessions test page</h1>"
        "<a href='/second'>second</a>",
        {},
    ),
    "/second": (200, "<!doctype html><title>Second</title><p>second page</p>", {}),
    "/set-cookie": (
        200,
        "<!doctype html><title>Cookie</title><p>cookie set</p>",
        {"Set-Cookie": "visitor=alice; Path=/"},
    ),
}


Page = tuple[int, str, dict[str, str]]
"""A local page: status, HTML, extra headers."""

NOT_FOUND: Page = (404, "<!doctype html><title>Not found</title>", {})


@contextmanager
def serving(lookup: Callable[[str], Page]) -> Iterator[str]:
    """Base URL of a local HTTP server on 127.0.0.1 answering each GET with
    ``lookup(path)`` as ``text/html``; shut down on exit."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body, headers = lookup(self.path)
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def html_pages(pages: Mapping[str, str], missing: str) -> Callable[[str], Page]:
    """A :func:`serving` lookup: ``pages[path]`` (200), else ``missing`` (404)."""
    return lambda path: (200, pages[path], {}) if path in pages else (404, missing, {})


@pytest.fixture(scope="session")
def page_server() -> Iterator[str]:
    """Base URL of a local HTTP server serving :data:`PAGES`."""
    with serving(lambda path: PAGES.get(path.split("?")[0], NOT_FOUND)) as base:
        yield base


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(clock: ManualClock, tmp_path: Path) -> Iterator[AppFactory]:
    """Build apps sharing the test's manual clock; every one is shut down afterwards.
    Profiles (issue 18) go to the test's own directory unless a test says otherwise."""
    apps: list[Flask] = []

    def factory(**config: Any) -> Flask:
        settings: dict[str, Any] = {
            "SESSIONS_TOKENS": TOKENS,
            "TESTING": True,
            "SESSIONS_PROFILE_STORE": f"file://{tmp_path / 'profiles'}",
        }
        settings.update(config)
        app = create_app(settings, clock=clock)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        FlaskSessions.state(app).manager.shutdown()


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def chromium_pids(root: int | None = None) -> set[int]:
    """PIDs of the Chromium processes below ``root`` (default: this test process).

    Without ``root``, subtrees of Python child processes (servers other tests started)
    are skipped, so only the in-process runtime's Chromium counts.
    """
    try:
        parent = psutil.Process(root or os.getpid())
        if root is None:
            children = []
            for child in parent.children():
                if "python" not in child.name().lower():
                    children += [child, *child.children(recursive=True)]
        else:
            children = parent.children(recursive=True)
    except psutil.NoSuchProcess:
        return set()
    pids = set()
    for child in children:
        try:
            name = child.name().lower()
            cmd = " ".join(child.cmdline()).lower()
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        if "chrom" in name or "headless" in name or "chromium" in cmd:
            pids.add(child.pid)
    return pids


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def png_size(b64: str) -> tuple[int, int]:
    """Width and height of a base64 PNG, read from its IHDR chunk (checks the signature)."""
    data = base64.b64decode(b64, validate=True)
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return image_size(data)
