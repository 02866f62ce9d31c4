"""Recordings (issue 20): ``record: true`` gives a Playwright trace of the session.

Real Chromium, real Playwright tracing, and Playwright's own trace viewer
(``python -m playwright show-trace``) opened in the test browser to read what it lists.
Pages come from a local server; the retention sweep runs on the test's ManualClock.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import psutil
import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Page, expect

from flask_sessions import FlaskSessions, ManualClock
from flask_sessions.client import SessionsClient, Unauthorized
from flask_sessions.testing import alive, serve, server_env, start_process

from .conftest import AUTH_A, AUTH_B, AppFactory, chromium_pids, wait_for
from .test_ui import (  # noqa: F401 - pytest-playwright's chain, ended with each module
    browser,
    browser_context_args,
    browser_type,
    browser_type_launch_args,
    launch_browser,
    playwright,
)

FORM = """<!doctype html><title>Form</title>
<input id=q aria-label=words><button id=b onclick="this.textContent = 'clicked'">Go</button>
<a href=/second>second</a>
"""
SECOND = "<!doctype html><title>Second</title><p>the second page"
BIG = os.urandom(1024 * 1024)  # a picture that does not compress


class _Pages(BaseHTTPRequestHandler):
    pages: ClassVar[dict[str, tuple[str, bytes]]] = {
        "/": ("text/html", FORM.encode()),
        "/second": ("text/html", SECOND.encode()),
        "/big": ("text/html", b"<!doctype html><title>Big</title><img src=/big.bin>"),
        "/big.bin": ("image/png", BIG),
    }

    def do_GET(self) -> None:
        kind, body = self.pages.get(self.path.split("?")[0], ("text/html", b"<title>no</title>"))
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    return tmp_path / "recordings"


@pytest.fixture
def app(make_app: AppFactory, recordings: Path) -> Flask:
    return make_app(
        SESSIONS_RECORDING_DIR=str(recordings),
        SESSIONS_REAPER_INTERVAL_SECONDS=0.1,
        SESSIONS_RECORDING_RETENTION_MINUTES=30,
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def ids(observation: dict[str, Any]) -> dict[str, str]:
    return {a["name"]: a["id"] for a in observation["actions"]}


def trace_of(data: bytes) -> tuple[zipfile.ZipFile, list[dict[str, Any]]]:
    """The zip and every event of its traces, in order."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    events = []
    for name in sorted(n for n in archive.namelist() if n.endswith(".trace")):
        for line in archive.read(name).decode("utf-8").splitlines():
            if line.strip():
                events.append(json.loads(line))
    return archive, events


def groups(events: list[dict[str, Any]]) -> list[str]:
    return [e["title"] for e in events if e.get("method") == "tracingGroup"]


def children(events: list[dict[str, Any]], group: str) -> list[dict[str, Any]]:
    """The traced calls inside the (first) group of that title."""
    parent = next(e["callId"] for e in events if e.get("title") == group)
    return [e for e in events if e.get("type") == "before" and e.get("parentId") == parent]


def snapshot_html(events: list[dict[str, Any]], call: dict[str, Any]) -> str:
    """The text of the call's DOM snapshots (its "after" one names the nodes of "before"
    that did not change: both are the page as the call found it)."""
    snapshots = [
        e["snapshot"]
        for e in events
        if e.get("type") == "frame-snapshot" and e["snapshot"].get("callId") == call["callId"]
    ]
    assert {s["phase"] for s in snapshots} == {"before", "after"}, call["title"]
    return " ".join(json.dumps(s["html"]) for s in snapshots)


def record_session(client: FlaskClient, site: str) -> tuple[str, dict[str, str]]:
    """A recorded session that filled a field and clicked a button, still open."""
    started = ok(
        client.post("/session/start", headers=AUTH_A, json={"url": site + "/", "record": True})
    )
    assert started["recording"] == "recording"
    sid = started["session_id"]
    actions = ids(
        ok(client.post("/env/observe", headers=AUTH_A, json={"session_id": sid}))["observation"]
    )
    step = {"session_id": sid, "type": "fill", "id": actions["words"], "value": "secret words"}
    ok(client.post("/env/step", headers=AUTH_A, json=step))
    step = {"session_id": sid, "type": "click", "id": actions["Go"]}
    assert ok(client.post("/env/step", headers=AUTH_A, json=step))["success"]
    return sid, actions


# ------------------------------------------------------------------ the trace


def test_a_recorded_session_names_every_step(
    client: FlaskClient, site: str, recordings: Path
) -> None:
    sid, actions = record_session(client, site)
    closed = ok(client.delete(f"/session/{sid}", headers=AUTH_A))
    assert closed["status"] == "closed"
    response = client.get(f"/session/{sid}/recording", headers=AUTH_A)  # waits for the save
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    assert response.headers["X-Recording-State"] == "saved"
    assert f'filename="trace-{sid}.zip"' in response.headers["Content-Disposition"]
    archive, events = trace_of(response.data)
    names = archive.namelist()
    assert any(n.endswith("-trace.trace") for n in names)
    assert any(n.endswith("-trace.network") for n in names)
    assert not [n for n in names if n.endswith(".stacks") or n.startswith("src/")]  # no sources
    titles = groups(events)
    assert titles == [
        f"start {site}/",
        f"observe {site}/",
        f"step fill {actions['words']}",
        f"step click {actions['Go']}",
    ], titles
    assert "secret words" not in " ".join(titles)  # a group never names what was typed
    # inside each group, one traced call: the page's DOM after the call (our own calls are
    # internal to the trace: no action, no snapshot of their own)
    for title in titles:
        assert [e["title"] for e in children(events, title)] == [
            f"page after the {title.split()[0]}"
        ], title
    after_click = snapshot_html(events, children(events, titles[-1])[0])
    assert "clicked" in after_click  # the button's text after the click
    after_fill = snapshot_html(events, children(events, titles[-2])[0])
    assert "secret words" in after_fill  # the input's value after the fill
    kinds = {e.get("type") for e in events}
    assert {"frame-snapshot", "before", "after"} <= kinds
    assert "screencast-frame" in kinds  # the filmstrip (SESSIONS_RECORDING_SCREENSHOTS)
    assert ok(client.get(f"/session/{sid}", headers=AUTH_A))["recording"] == "saved"
    meta = json.loads((recordings / sid / "meta.json").read_text())
    assert meta["state"] == "saved" and "alice" not in json.dumps(meta)  # the owner, hashed
    # Playwright left nothing of it in its traces folder
    traces = recordings / ".traces"
    assert not [p for p in traces.rglob("*") if p.is_file()]


def test_the_filmstrip_is_a_setting(make_app: AppFactory, recordings: Path, site: str) -> None:
    client = make_app(
        SESSIONS_RECORDING_DIR=str(recordings), SESSIONS_RECORDING_SCREENSHOTS=False
    ).test_client()
    sid, _ = record_session(client, site)
    ok(client.delete(f"/session/{sid}", headers=AUTH_A))
    _, events = trace_of(client.get(f"/session/{sid}/recording", headers=AUTH_A).data)
    kinds = {e.get("type") for e in events}
    assert "frame-snapshot" in kinds and "screencast-frame" not in kinds


def test_playwrights_trace_viewer_lists_the_steps(
    page: Page, client: FlaskClient, site: str, tmp_path: Path
) -> None:
    sid, actions = record_session(client, site)
    ok(client.delete(f"/session/{sid}", headers=AUTH_A))
    trace = tmp_path / "trace.zip"
    trace.write_bytes(client.get(f"/session/{sid}/recording", headers=AUTH_A).data)
    # Playwright's own viewer: its Python launcher starts a Node driver that serves it, and
    # stop() ends every process below it, by PID
    viewer = start_process(
        [sys.executable, "-m", "playwright", "show-trace", "--host", "127.0.0.1", "--port", "0",
         str(trace)],
        "show-trace",
    )  # fmt: skip
    try:
        found = viewer.wait_for_stdout(r"Listening on (http://\S+)", 60)
        assert found, viewer.output(20)
        viewer.remember_children()
        page.goto(found.group(1))
        for name in (
            f"start {site}/",
            f"observe {site}/",
            f"step fill {actions['words']}",
            f"step click {actions['Go']}",
        ):  # the action list, as the viewer shows it to a person
            item = page.get_by_role("treeitem", name=name).first
            expect(item).to_be_visible(timeout=30000)
    finally:
        viewer.stop()  # the launcher, then its driver if it outlived it
    assert not alive({process.pid for process in viewer.seen})


def test_a_download_while_recording_is_the_trace_so_far_and_tracing_goes_on(
    client: FlaskClient, site: str
) -> None:
    sid, actions = record_session(client, site)
    so_far = client.get(f"/session/{sid}/recording", headers=AUTH_A)
    assert so_far.status_code == 200 and so_far.headers["X-Recording-State"] == "recording"
    assert f"step click {actions['Go']}" in groups(trace_of(so_far.data)[1])
    step = {"session_id": sid, "type": "goto", "url": site + "/second"}
    ok(client.post("/env/step", headers=AUTH_A, json=step))
    ok(client.post("/env/scrape", headers=AUTH_A, json={"session_id": sid, "format": "text"}))
    assert ok(client.get(f"/session/{sid}", headers=AUTH_A))["recording"] == "recording"
    ok(client.delete(f"/session/{sid}", headers=AUTH_A))
    whole = client.get(f"/session/{sid}/recording", headers=AUTH_A)
    archive, events = trace_of(whole.data)
    titles = groups(events)
    assert titles[-3:] == [
        f"step click {actions['Go']}",
        f"step goto {site}/second",
        f"scrape text {site}/second",
    ], titles
    assert len([n for n in archive.namelist() if n.endswith("-trace.trace")]) == 2  # two chunks
    assert len([n for n in archive.namelist() if n.endswith("-trace.network")]) == 1


def test_one_shot_calls_record_too(client: FlaskClient, site: str) -> None:
    answer = ok(
        client.post("/env/observe", headers=AUTH_A, json={"url": site + "/", "record": True})
    )
    sid = answer["session"]["session_id"]
    assert answer["session"]["status"] == "closed"  # one-shot: closed after the call
    data = client.get(f"/session/{sid}/recording", headers=AUTH_A)
    assert data.status_code == 200
    assert groups(trace_of(data.data)[1]) == [f"observe {site}/"]
    # and a session that did not record starts when asked
    sid = ok(client.post("/session/start", headers=AUTH_A, json={"url": site + "/"}))["session_id"]
    assert ok(client.get(f"/session/{sid}", headers=AUTH_A))["recording"] is None
    assert client.get(f"/session/{sid}/recording", headers=AUTH_A).status_code == 404
    step = {"session_id": sid, "type": "goto", "url": site + "/second", "record": True}
    assert (
        ok(client.post("/env/step", headers=AUTH_A, json=step))["session"]["recording"]
        == "recording"
    )
    ok(client.delete(f"/session/{sid}", headers=AUTH_A))
    trace = client.get(f"/session/{sid}/recording", headers=AUTH_A)
    assert groups(trace_of(trace.data)[1]) == [f"step goto {site}/second"]


def test_another_principal_gets_404_and_delete_removes_it(
    client: FlaskClient, site: str, recordings: Path
) -> None:
    sid, _ = record_session(client, site)
    assert client.get(f"/session/{sid}/recording", headers=AUTH_B).status_code == 404
    assert client.delete(f"/session/{sid}/recording", headers=AUTH_B).status_code == 404
    unknown = client.get("/session/nosuchsession/recording", headers=AUTH_A)
    assert unknown.status_code == 404 and "record: true" in unknown.get_json()["error"]
    # deleted while it records: tracing stops, the session goes on
    assert ok(client.delete(f"/session/{sid}/recording", headers=AUTH_A)) == {
        "session_id": sid,
        "deleted": True,
    }
    record = ok(client.get(f"/session/{sid}", headers=AUTH_A))
    assert record["recording"] is None and record["status"] == "active"
    assert client.get(f"/session/{sid}/recording", headers=AUTH_A).status_code == 404
    assert not (recordings / sid).exists()
    ok(client.post("/env/observe", headers=AUTH_A, json={"session_id": sid}))
    assert client.delete(f"/session/{sid}/recording", headers=AUTH_A).status_code == 404


# ------------------------------------------------------------------ limits and retention


def test_retention_removes_it_and_the_sweep_what_a_killed_host_left(
    client: FlaskClient, site: str, recordings: Path, clock: ManualClock
) -> None:
    sid, _ = record_session(client, site)
    ok(client.delete(f"/session/{sid}", headers=AUTH_A))
    assert client.get(f"/session/{sid}/recording", headers=AUTH_A).status_code == 200
    # what a killed process left: an unfinished trace, an expired one, its traces folder
    dead = _dead_pid()
    unfinished = recordings / "LeftByAKilledHost00001"
    unfinished.mkdir(parents=True)
    (unfinished / "part-0000.zip").write_bytes(b"PK")
    (unfinished / "meta.json").write_text(json.dumps({"state": "recording", "pid": dead}))
    an_hour_ago = time.time() - 3600
    os.utime(unfinished, (an_hour_ago, an_hour_ago))  # left there long ago
    expired = recordings / "ExpiredLongAgo0000001"
    expired.mkdir()
    (expired / "meta.json").write_text(
        json.dumps({"state": "saved", "expires_at": "2020-01-01T00:00:00+00:00"})
    )
    orphan = recordings / ".traces" / f"{dead}-abcdef12"
    (orphan / "resources").mkdir(parents=True)
    (orphan / "resources" / "0123").write_bytes(b"x")
    running = recordings / "StillRecordingElsewhere1"  # a live process's: left alone
    running.mkdir()
    (running / "meta.json").write_text(json.dumps({"state": "recording", "pid": os.getpid()}))

    clock.advance(minutes=29)
    assert client.get(f"/session/{sid}/recording", headers=AUTH_A).status_code == 200
    assert wait_for(lambda: not expired.exists() and not orphan.exists(), 10)
    assert wait_for(lambda: not unfinished.exists(), 10)  # its process is gone
    assert running.exists()
    clock.advance(minutes=1, seconds=1)  # 30 minutes after the session ended
    assert wait_for(lambda: not (recordings / sid).exists(), 10)
    assert client.get(f"/session/{sid}/recording", headers=AUTH_A).status_code == 404


def test_the_size_cap_truncates_and_the_session_goes_on(
    make_app: AppFactory, recordings: Path, site: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_app(
        SESSIONS_RECORDING_DIR=str(recordings), SESSIONS_MAX_RECORDING_MB=0.5
    ).test_client()
    sid = ok(
        client.post("/session/start", headers=AUTH_A, json={"url": site + "/", "record": True})
    )["session_id"]
    step = {"session_id": sid, "type": "goto", "url": site + "/big"}  # a 1 MB picture
    ok(client.post("/env/step", headers=AUTH_A, json=step))
    assert wait_for(
        lambda: ok(client.get(f"/session/{sid}", headers=AUTH_A))["recording"] == "truncated", 15
    )
    assert any("truncated" in r.getMessage() for r in caplog.records)
    # the session goes on, untraced
    step = {"session_id": sid, "type": "goto", "url": site + "/second"}
    answer = ok(client.post("/env/step", headers=AUTH_A, json=step))
    assert answer["success"] and answer["session"]["status"] == "active"
    assert answer["session"]["recording"] == "truncated"
    kept = client.get(f"/session/{sid}/recording", headers=AUTH_A)
    assert kept.status_code == 200 and kept.headers["X-Recording-State"] == "truncated"
    titles = groups(trace_of(kept.data)[1])
    assert f"step goto {site}/big" in titles and f"step goto {site}/second" not in titles
    ok(client.delete(f"/session/{sid}", headers=AUTH_A))
    assert ok(client.get(f"/session/{sid}", headers=AUTH_A))["recording"] == "truncated"


def test_a_full_disk_refuses_to_record(make_app: AppFactory, recordings: Path) -> None:
    client = make_app(
        SESSIONS_RECORDING_DIR=str(recordings), SESSIONS_MIN_FREE_DISK_MB=10**9
    ).test_client()
    refused = client.post("/session/start", headers=AUTH_A, json={"record": True})
    assert refused.status_code == 507
    assert "SESSIONS_MIN_FREE_DISK_MB" in refused.get_json()["error"]
    assert ok(client.get("/sessions?status=active", headers=AUTH_A))["sessions"] == []
    assert client.post("/session/start", headers=AUTH_A, json={}).status_code == 200


def test_a_browser_crash_keeps_what_was_saved(client: FlaskClient, site: str) -> None:
    sid, _ = record_session(client, site)
    assert client.get(f"/session/{sid}/recording", headers=AUTH_A).status_code == 200  # a cut
    for pid in chromium_pids():
        proc = psutil.Process(pid)
        if proc.ppid() not in chromium_pids():
            proc.kill()  # the browser process
    assert wait_for(
        lambda: ok(client.get(f"/session/{sid}", headers=AUTH_A))["status"] == "error", 15
    )
    assert wait_for(
        lambda: ok(client.get(f"/session/{sid}", headers=AUTH_A))["recording"] == "failed", 15
    )
    kept = client.get(f"/session/{sid}/recording", headers=AUTH_A)
    assert kept.status_code == 200 and kept.headers["X-Recording-State"] == "failed"
    assert groups(trace_of(kept.data)[1])  # what was cut before the crash


def test_saved_at_shutdown_and_served_after_a_restart(site: str, tmp_path: Path) -> None:
    """SIGTERM saves the trace; a server started on the same folder serves it."""
    folder = tmp_path / "recordings"
    env = server_env("tok", SESSIONS_RECORDING_DIR=str(folder))
    with serve(env) as server, server.client() as api:
        sid = api.start(url=site + "/", record=True).session_id
        api.step(sid, type="goto", url=site + "/second")
        leftovers = server.stop(signal.SIGTERM)
        assert leftovers == []
    meta = json.loads((folder / sid / "meta.json").read_text())
    assert meta["state"] == "saved"
    again = serve(server_env("tok", SESSIONS_RECORDING_DIR=str(folder)))
    with again, SessionsClient(again.base, "tok") as api:
        found = api.recording(sid, tmp_path / "downloaded.zip")  # streamed to the file
        assert found.state == "saved" and found.path is not None
        titles = groups(trace_of(found.path.read_bytes())[1])
        assert titles == [f"start {site}/", f"step goto {site}/second"]
        assert api.recording(sid).data == found.path.read_bytes()
        with SessionsClient(again.base, "another") as other, pytest.raises(Unauthorized):
            other.recording(sid)
        api.delete_recording(sid)
        assert not (folder / sid).exists()


# ------------------------------------------------------------------ helpers


def _dead_pid() -> int:
    pid = 4_000_000
    while psutil.pid_exists(pid):
        pid += 1
    return pid


def test_recording_folders_are_named_by_session_ids_only(
    app: Flask, recordings: Path, client: FlaskClient
) -> None:
    """A name from outside never becomes a path: ids that cannot be a session's are 404."""
    for bad in ("..", "a%2F..%2Fb", ".traces", "x" * 65):
        answer = client.get(f"/session/{bad}/recording", headers=AUTH_A)
        assert answer.status_code == 404, bad
    assert FlaskSessions.state(app).manager.recordings.root == recordings


def test_the_recordings_folder_is_the_users_own_and_closed_to_others(
    make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site: str
) -> None:
    """A trace holds what the pages showed and what was typed into them: the folder is made
    0700 before Chromium makes its traces folder in it, a wider default one of this user's is
    narrowed, and a default one that is a link (another user could have made it first in
    the shared temp folder) is refused with 503 naming it, while unrecorded sessions go on."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    default = tmp_path / "flask_sessions-recordings"
    default.mkdir(mode=0o755)
    os.chmod(default, 0o755)
    client = make_app().test_client()
    assert (default.stat().st_mode & 0o777) == 0o700
    started = client.post(
        "/session/start", headers=AUTH_A, json={"url": site + "/", "record": True}
    )
    assert started.status_code == 200, started.get_json()
    assert (default.stat().st_mode & 0o777) == 0o700

    elsewhere = tmp_path / "theirs"
    elsewhere.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "second"))
    (tmp_path / "second").mkdir()
    (tmp_path / "second" / "flask_sessions-recordings").symlink_to(elsewhere)
    client = make_app().test_client()
    refused = client.post("/session/start", headers=AUTH_A, json={"record": True})
    assert refused.status_code == 503, refused.get_json()
    error = refused.get_json()["error"]
    assert "flask_sessions-recordings" in error and "SESSIONS_RECORDING_DIR" in error
    assert client.post("/session/start", headers=AUTH_A, json={}).status_code == 200
    assert list(elsewhere.iterdir()) == []  # nothing was written through the link
