"""Session files (issue 19): uploads, downloads, PDFs read as text, limits, clean-up.

Against real Chromium and local pages (``files_site.py``, on 127.0.0.1): the embedded app
through Flask's test client for most, real server processes where the test needs one (a
host killed with SIGKILL, a browser opening a served file, a front's memory).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import async_playwright

from flask_sessions import FlaskSessions, ManualClock
from flask_sessions.config import load
from flask_sessions.errors import InvalidInput
from flask_sessions.host.browser import find_browser, launch_args
from flask_sessions.host.files import FilesRoot, FilesUnavailable, safe_name
from flask_sessions.host.filestream import content_disposition, iter_zip
from flask_sessions.page.pdf import read_pdf
from flask_sessions.testing import ServerProcess, free_port, serve, server_env, start_process

from .conftest import AUTH_A, AUTH_B, AppFactory, wait_for
from .files_site import MB, ROWS, SCAN_TEXT, TEXT_WORDS, FilesSite, files_site
from .test_server import ROOT

# ------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def site() -> Iterator[FilesSite]:
    with files_site() as running:
        yield running


def post(client: FlaskClient, path: str, expect: int = 200, **body: Any) -> Any:
    response = client.post(path, json=body, headers=AUTH_A)
    assert response.status_code == expect, (path, body, response.status_code, response.data)
    return response.get_json()


def open_session(client: FlaskClient, url: str) -> tuple[str, Any]:
    body = post(client, "/env/observe", url=url, keep_alive=True)
    return body["session"]["session_id"], body["observation"]


def multipart(*parts: tuple[str, bytes]) -> tuple[bytes, str]:
    """A multipart/form-data body with each ``(filename, bytes)`` as a file part, the
    filename written as it is (so names no client library would send can be tried)."""
    boundary = "flask-sessions-test-boundary"
    out = b""
    for name, data in parts:
        out += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + data
            + b"\r\n"
        )
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def upload(
    client: FlaskClient, sid: str, *parts: tuple[str, bytes], headers: dict[str, str] = AUTH_A
) -> Any:
    body, content_type = multipart(*parts)
    return client.post(
        f"/session/{sid}/files", data=body, headers={**headers, "Content-Type": content_type}
    )


def folder_of(app: Flask, sid: str) -> str:
    manager = FlaskSessions.state(app).manager

    async def get() -> str:
        live = manager.live(sid)
        assert live is not None and live.files is not None
        return live.files.folder

    return FlaskSessions.state(app).runtime.submit(get(), 10)


def listing(client: FlaskClient, sid: str, headers: dict[str, str] = AUTH_A) -> dict[str, Any]:
    response = client.get(f"/session/{sid}/files", headers=headers)
    assert response.status_code == 200, response.data
    return {f["name"]: f for f in response.get_json()["files"]}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------- names (unit)


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("../../etc/passwd", "passwd"),
        ("a/b", "b"),
        ("C:\\Users\\me\\cv.pdf", "cv.pdf"),
        ("\x00.txt", "txt"),
        (".bashrc", "bashrc"),
        ("  report\tQ1 .csv  ", "report Q1 .csv"),
        ("x" * 996 + ".pdf", "x" * 196 + ".pdf"),
        ("é" * 300, "é" * 100),
    ],
)
def test_names_are_reduced_to_safe_base_names(raw: str, stored: str) -> None:
    assert safe_name(raw) == stored
    assert len(safe_name(raw).encode()) <= 200


@pytest.mark.parametrize("raw", ["..", "/", "\x00", " . ", "a/..", "\u202e"])
def test_names_with_nothing_left_are_refused_naming_the_rule(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        safe_name(raw)
    assert "safe base name" in caught.value.message
    assert caught.value.extra["fields"][0]["field"] == "filename"


def test_content_disposition_has_an_ascii_name_and_the_exact_one() -> None:
    assert content_disposition("Résumé (2).pdf") == (
        "attachment; filename=\"Resume (2).pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%20%282%29.pdf"
    )
    assert '"' not in content_disposition('a"b.txt').split(";")[1].strip()[10:-1]


# ----------------------------------------------------------------- uploads and steps


def test_upload_5mb_and_submit_it_through_a_form_and_a_file_chooser(
    make_app: AppFactory, site: FilesSite
) -> None:
    app = make_app()
    client = app.test_client()
    sid, page = open_session(client, site.base + "/form")
    cv = os.urandom(5 * MB)
    stored = upload(client, sid, ("cv.pdf", cv))
    assert stored.status_code == 200, stored.data
    info = stored.get_json()["files"][0]
    assert (info["name"], info["size"], info["sha256"], info["source"], info["state"]) == (
        "cv.pdf",
        len(cv),
        sha(cv),
        "upload",
        "complete",
    )
    assert info["content_type"] == "application/pdf"
    # by id: the file input is a button in the observation (it opens a chooser)
    field = next(a for a in page["actions"] if a["selector"] == "#cv")
    done = post(
        client, "/env/step", session_id=sid, type="upload_file", id=field["id"], files=["cv.pdf"]
    )
    assert done["success"], done["message"]
    send = next(a for a in done["observation"]["actions"] if a["name"] == "Send application")
    sent = post(client, "/env/step", session_id=sid, type="click", id=send["id"])
    assert sent["success"] and sent["observation"]["title"] == "Thanks"
    assert wait_for(lambda: ("cv.pdf", len(cv), sha(cv)) in site.received, 10), site.received

    # a button that opens a file chooser: the chooser is answered (and the page submits)
    site.received.clear()
    post(client, "/env/step", session_id=sid, type="goto", url=site.base + "/chooser")
    chose = post(
        client, "/env/step", session_id=sid, type="upload_file", selector="#attach", files="cv.pdf"
    )
    assert chose["success"], chose["message"]
    assert "file chooser" in chose["message"]
    assert wait_for(lambda: ("cv.pdf", len(cv), sha(cv)) in site.received, 10), site.received


def test_upload_step_with_a_name_that_is_not_a_session_file_lists_the_files(
    make_app: AppFactory, site: FilesSite
) -> None:
    client = make_app().test_client()
    sid, _ = open_session(client, site.base + "/form")
    assert upload(client, sid, ("letter.txt", b"hello")).status_code == 200
    failed = post(
        client, "/env/step", session_id=sid, type="upload_file", selector="#cv", files=["cv.pdf"]
    )
    assert failed["success"] is False
    assert "no file 'cv.pdf'" in failed["message"] and "'letter.txt'" in failed["message"]
    bad = client.post(
        "/env/step",
        json={"session_id": sid, "type": "upload_file", "selector": "#cv", "files": []},
        headers=AUTH_A,
    )
    assert bad.status_code == 400 and bad.get_json()["fields"][0]["field"] == "files"


def test_upload_names_are_stored_safely_or_refused(make_app: AppFactory, site: FilesSite) -> None:
    app = make_app()
    client = app.test_client()
    sid, _ = open_session(client, site.base + "/")
    long_name = "n" * 996 + ".txt"
    cases = {
        "../../etc/passwd": "passwd",
        "a/b": "b",
        "\x00.txt": "txt",
        ".bashrc": "bashrc",
        long_name: "n" * 196 + ".txt",
    }
    for raw, expected in cases.items():
        answer = upload(client, sid, (raw, raw.encode()))
        assert answer.status_code == 200, (raw, answer.data)
        assert answer.get_json()["files"][0]["name"] == expected
    first = upload(client, sid, ("cv.pdf", b"one")).get_json()["files"][0]["name"]
    second = upload(client, sid, ("cv.pdf", b"two")).get_json()["files"][0]["name"]
    assert (first, second) == ("cv.pdf", "cv (2).pdf")
    refused = upload(client, sid, ("..", b"x"))
    assert refused.status_code == 400
    assert "safe base name" in refused.get_json()["error"]
    folder = folder_of(app, sid)
    on_disk = {n for n in os.listdir(folder) if not n.startswith(".")}
    assert on_disk == {*cases.values(), "cv.pdf", "cv (2).pdf"}
    assert os.listdir(os.path.join(folder, ".incoming")) == []  # no partial left
    assert Path(folder, "cv (2).pdf").read_bytes() == b"two"


def test_an_upload_that_is_not_multipart_or_has_no_file_is_a_400(
    make_app: AppFactory, site: FilesSite
) -> None:
    client = make_app().test_client()
    sid, _ = open_session(client, site.base + "/")
    plain = client.post(f"/session/{sid}/files", json={"a": 1}, headers=AUTH_A)
    assert plain.status_code == 400 and "multipart/form-data" in plain.get_json()["error"]
    body = b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\nvalue\r\n--b--\r\n'
    no_file = client.post(
        f"/session/{sid}/files",
        data=body,
        headers={**AUTH_A, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert no_file.status_code == 400 and "no file part" in no_file.get_json()["error"]
    cut, content_type = multipart(("cut.bin", b"x" * 1000))
    truncated = client.post(
        f"/session/{sid}/files",
        data=cut[:600],
        headers={**AUTH_A, "Content-Type": content_type},
    )
    assert truncated.status_code == 400 and "ended before" in truncated.get_json()["error"]
    assert listing(client, sid) == {}


# ------------------------------------------------------------------------ limits


def test_limits_413_leaves_nothing_and_507_below_the_disk_floor(
    make_app: AppFactory, site: FilesSite
) -> None:
    app = make_app(SESSIONS_MAX_UPLOAD_MB=1, SESSIONS_MAX_SESSION_FILES_MB=2)
    client = app.test_client()
    sid, _ = open_session(client, site.base + "/")
    folder = folder_of(app, sid)
    over = upload(client, sid, ("big.bin", b"x" * (MB + 1)))
    assert over.status_code == 413
    body = over.get_json()
    assert "SESSIONS_MAX_UPLOAD_MB" in body["error"] and body["limit_bytes"] == MB
    assert os.listdir(os.path.join(folder, ".incoming")) == []
    assert [n for n in os.listdir(folder) if not n.startswith(".")] == []
    # the session's total: two files of 0.8 MB fit, the third does not; all or nothing
    part = b"y" * (800 << 10)
    assert upload(client, sid, ("a.bin", part), ("b.bin", part)).status_code == 200
    third = upload(client, sid, ("c.bin", part), ("d.bin", b"small"))
    assert third.status_code == 413
    assert "SESSIONS_MAX_SESSION_FILES_MB" in third.get_json()["error"]
    assert set(listing(client, sid)) == {"a.bin", "b.bin"}
    assert sorted(n for n in os.listdir(folder) if not n.startswith(".")) == ["a.bin", "b.bin"]
    assert os.listdir(os.path.join(folder, ".incoming")) == []

    low = make_app(SESSIONS_MIN_FREE_DISK_MB=1e12)  # more than any disk has free
    low_client = low.test_client()
    low_sid, _ = open_session(low_client, site.base + "/")
    refused = upload(low_client, low_sid, ("a.txt", b"a"))
    assert refused.status_code == 507
    assert "SESSIONS_MIN_FREE_DISK_MB" in refused.get_json()["error"]
    # and a download the page starts is cancelled, saying why
    post(low_client, "/env/step", session_id=low_sid, type="goto", url=site.base + "/export")
    step = post(low_client, "/env/step", session_id=low_sid, type="click", selector="#csv")
    assert step["observation"]["downloads"][0]["state"] == "cancelled"
    warnings = " ".join(step["observation"]["warnings"])
    assert "SESSIONS_MIN_FREE_DISK_MB" in warnings


@pytest.mark.parametrize("link", ["#big", "#stream"], ids=["announced", "metered"])
def test_a_download_past_the_session_total_is_cancelled_as_too_large(
    make_app: AppFactory, site: FilesSite, link: str
) -> None:
    app = make_app(SESSIONS_MAX_SESSION_FILES_MB=4)
    client = app.test_client()
    sid, _ = open_session(client, site.base + "/export")
    folder = folder_of(app, sid)
    assert upload(client, sid, ("cv.pdf", b"c" * MB)).status_code == 200
    step = post(client, "/env/step", session_id=sid, type="click", selector=link)
    downloads = step["observation"]["downloads"]
    assert len(downloads) == 1 and downloads[0]["name"] == "everything.bin"

    def state() -> str:
        return str(listing(client, sid)["everything.bin"]["state"])

    assert wait_for(lambda: state() == "too_large", 20), listing(client, sid)
    warnings = " ".join(
        step["observation"]["warnings"]
        + post(client, "/env/observe", session_id=sid)["observation"]["warnings"]
    )
    assert "too_large" in warnings and "SESSIONS_MAX_SESSION_FILES_MB" in warnings
    assert wait_for(lambda: os.listdir(os.path.join(folder, ".incoming")) == [], 10)
    assert client.get(f"/session/{sid}/files/everything.bin", headers=AUTH_A).status_code == 404
    entry = listing(client, sid)["everything.bin"]
    assert entry["size"] == 0 and entry["sha256"] is None
    assert listing(client, sid)["cv.pdf"]["state"] == "complete"  # the upload is untouched


def test_files_off_refuses_downloads_and_uploads(make_app: AppFactory, site: FilesSite) -> None:
    for config, words in (
        ({"SESSIONS_MAX_SESSION_FILES_MB": 0}, "SESSIONS_MAX_SESSION_FILES_MB=0"),
        ({"SESSIONS_MAX_DOWNLOAD_MB": 0}, "SESSIONS_MAX_DOWNLOAD_MB=0"),  # deprecated
    ):
        app = make_app(**config)
        client = app.test_client()
        sid, _ = open_session(client, site.base + "/export")
        step = post(client, "/env/step", session_id=sid, type="click", selector="#csv")
        warnings = (
            step["observation"]["warnings"]
            + post(client, "/env/observe", session_id=sid)["observation"]["warnings"]
        )
        assert any("refused 1 download" in w and words in w for w in warnings), warnings
        assert step["observation"]["downloads"] == []
        answer = upload(client, sid, ("a.txt", b"a"))
        if "SESSIONS_MAX_SESSION_FILES_MB" in config:
            assert answer.status_code == 400 and words in answer.get_json()["error"]
            root = FlaskSessions.state(app).manager.files
            assert root.folder is None  # nothing made on disk
        else:  # uploads still work; downloads alone are refused
            assert answer.status_code == 200


# --------------------------------------------------------------------- downloads


def test_a_clicked_csv_download_is_listed_served_and_zipped(
    make_app: AppFactory, site: FilesSite
) -> None:
    app = make_app()
    client = app.test_client()
    sid, page = open_session(client, site.base + "/export")
    link = next(a for a in page["actions"] if a["name"] == "Export CSV")
    step = post(client, "/env/step", session_id=sid, type="click", id=link["id"])
    assert step["success"], step["message"]
    assert step["observation"]["downloads"] == [
        {"name": "export.csv", "state": "complete", "size": len(site.csv)}
    ]
    assert "export.csv" in step["message"]
    assert step["observation"]["error"] is None  # the link became a download: not a failure
    info = listing(client, sid)["export.csv"]
    assert (info["size"], info["sha256"], info["source"], info["state"]) == (
        len(site.csv),
        sha(site.csv),
        "download",
        "complete",
    )
    assert info["url"] == site.base + "/export.csv" and info["content_type"] == "text/csv"
    got = client.get(f"/session/{sid}/files/export.csv", headers=AUTH_A)
    assert got.status_code == 200 and got.data == site.csv
    assert got.headers["Content-Disposition"].startswith('attachment; filename="export.csv"')
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    ranged = client.get(
        f"/session/{sid}/files/export.csv", headers={**AUTH_A, "Range": "bytes=10-19"}
    )
    assert ranged.status_code == 206 and ranged.data == site.csv[10:20]
    assert upload(client, sid, ("notes.txt", b"notes")).status_code == 200
    archive = client.get(f"/session/{sid}/files.zip", headers=AUTH_A)
    assert archive.status_code == 200 and archive.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.data)) as opened:
        assert opened.testzip() is None
        assert sorted(opened.namelist()) == ["export.csv", "notes.txt"]
        assert opened.read("export.csv") == site.csv
    deleted = client.delete(f"/session/{sid}/files/export.csv", headers=AUTH_A)
    assert deleted.status_code == 200 and [f["name"] for f in deleted.get_json()["files"]] == [
        "notes.txt"
    ]
    missing = client.get(f"/session/{sid}/files/export.csv", headers=AUTH_A)
    assert missing.status_code == 404 and "'notes.txt'" in missing.get_json()["error"]


def test_the_zip_streams_without_building_the_archive() -> None:
    """iter_zip yields as it reads: the first piece comes before the last file is read."""
    from datetime import UTC, datetime

    from flask_sessions.host.files import FileEntry

    pieces: list[int] = []
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        members = []
        for i in range(3):
            path = os.path.join(tmp, f"f{i}")
            Path(path).write_bytes(bytes([i]) * (3 * MB))
            entry = FileEntry(name=f"f{i}.bin", source="upload", created_at=datetime.now(UTC))
            entry.size = 3 * MB
            members.append((entry, path))
        data = b""
        for piece in iter_zip(members):
            pieces.append(len(piece))
            data += piece
    assert max(pieces) <= 2 * MB and len(pieces) > 9
    with zipfile.ZipFile(io.BytesIO(data)) as opened:
        assert opened.read("f2.bin") == bytes([2]) * (3 * MB)


def test_an_html_download_is_an_attachment_and_never_runs(site: FilesSite) -> None:
    """Served by a real server, opened by a real browser with the token: it is saved, not
    rendered, so its script never runs (and nosniff + a sandboxing CSP stand behind that)."""
    env = server_env("tok-html", SESSIONS_WARM_POOL="0")
    port = free_port()
    server = start_process(
        [sys.executable, "-m", "flask_sessions", "--port", str(port)],
        f"http://127.0.0.1:{port}",
        env,
        cwd=ROOT,
    )
    try:
        server.wait_ready()
        auth = {"Authorization": "Bearer tok-html"}
        base = server.base
        r = requests.post(
            base + "/env/observe",
            json={"url": site.base + "/export", "keep_alive": True},
            headers=auth,
            timeout=60,
        )
        sid = r.json()["session"]["session_id"]
        step = requests.post(
            base + "/env/step",
            json={"session_id": sid, "type": "click", "selector": "#html"},
            headers=auth,
            timeout=60,
        ).json()
        assert step["observation"]["downloads"][0]["name"] == "page.html"
        url = f"{base}/session/{sid}/files/page.html"
        served = requests.get(url, headers=auth, timeout=30)
        assert served.status_code == 200
        assert served.headers["Content-Disposition"].startswith("attachment;")
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in served.headers["Content-Security-Policy"]
        assert served.headers["Content-Type"] == "application/octet-stream"
        listed = requests.get(f"{base}/session/{sid}/files", headers=auth, timeout=30).json()
        assert listed["files"][0]["content_type"] == "text/html"
        site.beacons.clear()
        outcome = _open_in_browser(url, auth)
        assert "Download is starting" in outcome, outcome
        time.sleep(0.5)
        assert site.beacons == []
    finally:
        server.stop()


def _open_in_browser(url: str, headers: dict[str, str]) -> str:
    async def run() -> str:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=find_browser().executable, args=launch_args()
            )
            try:
                context = await browser.new_context(extra_http_headers=headers)
                page = await context.new_page()
                try:
                    await page.goto(url)
                except PlaywrightError as exc:
                    return str(exc)
                return f"rendered: title {await page.title()!r}"
            finally:
                await browser.close()

    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(run())))
    thread.start()
    thread.join(60)
    return result[0]


# -------------------------------------------------------------------------- PDFs


def test_pdfs_read_as_text_on_observe_step_and_scrape(
    make_app: AppFactory, site: FilesSite
) -> None:
    app = make_app()
    client = app.test_client()
    sid, _ = open_session(client, site.base + "/")
    seen = post(client, "/env/observe", session_id=sid, url=site.base + "/text.pdf")
    observation = seen["observation"]
    assert observation["content_type"] == "application/pdf" and observation["pages"] == 1
    assert observation["url"] == site.base + "/text.pdf" and observation["error"] is None
    assert observation["title"] == "Annual report" and observation["actions"] == []
    words = [w for w in observation["text"].split() if w.startswith("w")]
    assert words == TEXT_WORDS  # every word, in order
    assert observation["text"].startswith("# Annual report")
    assert "text.pdf" in listing(client, sid)  # also in the session's files
    again = post(client, "/env/observe", session_id=sid)["observation"]  # the tab shows it
    assert again["content_type"] == "application/pdf" and again["text"] == observation["text"]

    # a click that leads to a PDF: the step's observation is its text
    post(client, "/env/step", session_id=sid, type="goto", url=site.base + "/export")
    step = post(client, "/env/step", session_id=sid, type="click", selector="#invoice")
    assert step["success"], step["message"]
    text = step["observation"]["text"]
    for item, qty, price in ROWS:  # the table keeps its rows
        assert f"| {item} | {qty} | {price} |" in text
    assert "| Item | Qty | Price |" in text
    assert step["observation"]["downloads"][0]["name"] == "table.pdf"

    scraped = post(client, "/env/scrape", session_id=sid, url=site.base + "/columns.pdf")
    assert scraped["success"] and scraped["content_type"] == "application/pdf"
    sentences = [int(s) for s in __import__("re").findall(r"sentence (\d+)", scraped["content"])]
    assert sentences == list(range(60))
    as_text = post(
        client, "/env/scrape", session_id=sid, url=site.base + "/table.pdf", format="text"
    )
    assert "Widget 1 1 3.50 EUR" in as_text["content"] and "|" not in as_text["content"]
    # observing the page again: a web page, not the PDF
    back = post(client, "/env/observe", session_id=sid, url=site.base + "/export")
    assert back["observation"]["content_type"] is None and back["observation"]["actions"]


def test_a_scanned_pdf_says_it_has_no_text_layer(make_app: AppFactory, site: FilesSite) -> None:
    client = make_app().test_client()
    sid, _ = open_session(client, site.base + "/")
    observation = post(client, "/env/observe", session_id=sid, url=site.base + "/scan.pdf")[
        "observation"
    ]
    assert observation["content_type"] == "application/pdf" and observation["pages"] == 1
    assert SCAN_TEXT.split()[0] not in observation["text"]
    assert any("no text layer" in w for w in observation["warnings"]), observation["warnings"]
    scraped = post(client, "/env/scrape", session_id=sid, url=site.base + "/scan.pdf")
    assert scraped["success"] and scraped["content"] == "" and "no text layer" in scraped["message"]


def test_a_pdf_over_the_limit_is_success_false_with_the_limit(
    make_app: AppFactory, site: FilesSite
) -> None:
    client = make_app(SESSIONS_MAX_SESSION_FILES_MB=0.01).test_client()  # 10 KB
    sid, _ = open_session(client, site.base + "/export")
    step = post(client, "/env/step", session_id=sid, type="click", selector="#invoice")
    assert step["success"] is False
    assert "SESSIONS_MAX_SESSION_FILES_MB" in step["message"]
    assert step["observation"]["content_type"] == "application/pdf"
    scraped = post(client, "/env/scrape", session_id=sid, url=site.base + "/pages.pdf")
    assert scraped["success"] is False and "0.01 MB" in scraped["message"]


def test_pdf_reading_of_twenty_pages(site: FilesSite) -> None:
    pdf = read_pdf(site.pdfs["pages"])
    assert pdf.pages == 20 and pdf.has_text
    assert pdf.markdown.count("## Section") == 20 and pdf.markdown.count("\n---\n") == 19
    with pytest.raises(ValueError, match="not a readable PDF"):
        read_pdf(b"%PDF-1.4 nothing else")


# ---------------------------------------------------------------------- tenancy


def test_another_principal_gets_404_on_every_files_route(
    make_app: AppFactory, site: FilesSite
) -> None:
    client = make_app().test_client()
    sid, _ = open_session(client, site.base + "/")
    assert upload(client, sid, ("cv.pdf", b"cv")).status_code == 200
    body, content_type = multipart(("x.txt", b"x"))
    answers = [
        client.post(
            f"/session/{sid}/files", data=body, headers={**AUTH_B, "Content-Type": content_type}
        ),
        client.get(f"/session/{sid}/files", headers=AUTH_B),
        client.get(f"/session/{sid}/files/cv.pdf", headers=AUTH_B),
        client.get(f"/session/{sid}/files.zip", headers=AUTH_B),
        client.delete(f"/session/{sid}/files/cv.pdf", headers=AUTH_B),
    ]
    assert [a.status_code for a in answers] == [404] * 5
    unknown = client.get("/session/NoSuchSession/files", headers=AUTH_A).get_json()["error"]
    same = unknown.replace("NoSuchSession", sid)  # exactly what a session nobody has answers
    assert all(a.get_json()["error"] == same for a in answers), [a.get_json() for a in answers]
    assert set(listing(client, sid)) == {"cv.pdf"}  # untouched


# --------------------------------------------------------------------- clean-up


def test_the_folder_is_gone_after_close_and_after_an_idle_timeout(
    make_app: AppFactory, clock: ManualClock, site: FilesSite
) -> None:
    app = make_app(SESSIONS_REAPER_INTERVAL_SECONDS=0.05)
    client = app.test_client()
    sid, _ = open_session(client, site.base + "/")
    assert upload(client, sid, ("a.txt", b"a")).status_code == 200
    folder = folder_of(app, sid)
    post(client, "/session/close", session_id=sid)
    assert wait_for(lambda: not os.path.exists(folder), 10)
    assert client.get(f"/session/{sid}/files", headers=AUTH_A).status_code == 409

    idle = post(client, "/session/start", session_timeout_minutes=1)["session_id"]
    assert upload(client, idle, ("b.txt", b"b")).status_code == 200
    idle_folder = folder_of(app, idle)
    clock.advance(minutes=2)
    assert wait_for(lambda: not os.path.exists(idle_folder), 10)
    record = client.get(f"/session/{idle}", headers=AUTH_A).get_json()
    assert record["status"] == "timed_out"
    root = FlaskSessions.state(app).manager.files.folder
    FlaskSessions.state(app).manager.shutdown()
    assert root is not None and not os.path.exists(root)


def test_a_sigkilled_hosts_folder_is_swept_when_a_host_starts(tmp_path: Path) -> None:
    files_dir = str(tmp_path / "files")
    env = server_env("tok-kill", SESSIONS_FILES_DIR=files_dir, SESSIONS_WARM_POOL="0")

    def launch() -> ServerProcess:
        port = free_port()
        started = start_process(
            [sys.executable, "-m", "flask_sessions", "--port", str(port)],
            f"http://127.0.0.1:{port}",
            env,
            cwd=ROOT,
        )
        started.wait_ready()
        return started

    first = launch()
    try:
        auth = {"Authorization": "Bearer tok-kill"}
        sid = requests.post(
            first.base + "/session/start", json={}, headers=auth, timeout=60
        ).json()["session_id"]
        body, content_type = multipart(("left.txt", b"left behind"))
        stored = requests.post(
            f"{first.base}/session/{sid}/files",
            data=body,
            headers={**auth, "Content-Type": content_type},
            timeout=30,
        )
        assert stored.status_code == 200, stored.text
        [old] = [p for p in Path(files_dir).iterdir() if p.name.startswith("host-")]
        assert any(old.rglob("left.txt"))
    finally:
        first.stop(sig=signal.SIGKILL)
    assert old.exists()  # a killed host cleans nothing
    second = launch()
    try:
        assert wait_for(lambda: not old.exists(), 20), list(Path(files_dir).iterdir())
        assert [p.name.startswith("host-") for p in Path(files_dir).iterdir()] == [True]
    finally:
        second.stop()
    assert list(Path(files_dir).iterdir()) == []  # a host that stops cleans its own


def test_the_sweep_leaves_a_live_neighbours_folder(tmp_path: Path) -> None:
    settings = load({"SESSIONS_FILES_DIR": str(tmp_path)}, environ=False)
    live = FilesRoot(settings)
    mine = live.ensure()
    dead = tmp_path / "host-1-dead"
    (dead / "s-x").mkdir(parents=True)
    (dead / ".lock").write_text("")
    no_lock = tmp_path / "host-2-nolock"
    no_lock.mkdir()
    other = tmp_path / "unrelated"
    other.mkdir()
    neighbour = FilesRoot(settings)
    theirs = neighbour.ensure()
    assert sorted(neighbour.swept) == sorted([str(dead), str(no_lock)])
    assert os.path.isdir(mine) and os.path.isdir(theirs) and other.is_dir()
    neighbour.close()
    live.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unrelated"]


def test_a_files_folder_that_is_a_link_or_a_file_is_refused(tmp_path: Path) -> None:
    """Uploads and downloads hold what a user sent and what pages gave: the files folder is
    made 0700; one that is a link (to a folder of another's, say) is refused with the
    setting to change, and nothing is written through it; so is a file in its place."""
    made = tmp_path / "made" / "files"
    root = FilesRoot(load({"SESSIONS_FILES_DIR": str(made)}, environ=False))
    root.ensure()
    assert (made.stat().st_mode & 0o777) == 0o700
    root.close()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "link").symlink_to(elsewhere)
    settings = load({"SESSIONS_FILES_DIR": str(tmp_path / "link")}, environ=False)
    with pytest.raises(FilesUnavailable, match="not a directory of this user") as refused:
        FilesRoot(settings).ensure()
    assert "SESSIONS_FILES_DIR" in refused.value.message
    assert list(elsewhere.iterdir()) == []
    (tmp_path / "file").write_text("")
    settings = load({"SESSIONS_FILES_DIR": str(tmp_path / "file")}, environ=False)
    with pytest.raises(FilesUnavailable, match="cannot be made") as refused:
        FilesRoot(settings).ensure()
    assert "SESSIONS_FILES_DIR" in refused.value.message


def test_a_start_with_an_unusable_files_folder_is_a_503_naming_it(
    make_app: AppFactory, tmp_path: Path
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    client = make_app(SESSIONS_FILES_DIR=str(blocked)).test_client()
    refused = client.post("/session/start", headers=AUTH_A, json={})
    assert refused.status_code == 503, refused.get_json()
    assert str(blocked) in refused.get_json()["error"]
    assert "SESSIONS_FILES_DIR" in refused.get_json()["error"]


# ------------------------------------------------------------------ through a front


def _rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


class _Peak(threading.Thread):
    """Samples a process's RSS every 20 ms until stopped; ``peak`` is the largest."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, _rss(pid), threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, _rss(self.pid))


TWO_PRINCIPALS = '{"tok-front": "alice", "tok-other": "bob"}'


@pytest.mark.timeout(300)
def test_a_front_streams_100mb_both_ways_without_holding_it(tmp_path: Path) -> None:
    secret = "cluster-secret-for-tests-0123456789"
    limits = {"SESSIONS_MAX_UPLOAD_MB": "150", "SESSIONS_MAX_SESSION_FILES_MB": "300"}
    procs: list[ServerProcess] = []
    try:
        host_port = free_port("127.0.0.2")
        host = start_process(
            [
                sys.executable,
                "-m",
                "flask_sessions",
                "host",
                "--host",
                "127.0.0.2",
                "--port",
                str(host_port),
            ],
            f"http://127.0.0.2:{host_port}",
            server_env(
                TWO_PRINCIPALS,
                SESSIONS_CLUSTER_SECRET=secret,
                SESSIONS_PROFILE_KEY="profile-key-for-tests-0123456789",  # hosts need one
                SESSIONS_WARM_POOL="0",
                **limits,
            ),
            cwd=ROOT,
        )
        procs.append(host)
        host.wait_ready()
        front_port = free_port()
        front = start_process(
            [sys.executable, "-m", "flask_sessions", "--port", str(front_port)],
            f"http://127.0.0.1:{front_port}",
            server_env(
                TWO_PRINCIPALS, SESSIONS_CLUSTER_SECRET=secret, SESSIONS_HOSTS=host.base, **limits
            ),
            cwd=ROOT,
        )
        procs.append(front)
        front.wait_ready()
        auth = {"Authorization": "Bearer tok-front"}
        sid = requests.post(
            front.base + "/session/start", json={}, headers=auth, timeout=60
        ).json()["session_id"]
        big = tmp_path / "big.bin"
        digest = hashlib.sha256()
        with big.open("wb") as handle:
            for i in range(100):
                chunk = bytes([i]) * MB
                digest.update(chunk)
                handle.write(chunk)
        # warm the front's paths first (imports, pools), then measure
        requests.get(f"{front.base}/session/{sid}/files", headers=auth, timeout=30)
        before = _rss(front.pid)
        peak = _Peak(front.pid)
        peak.start()
        with big.open("rb") as handle:
            stored = requests.post(
                f"{front.base}/session/{sid}/files",
                files={"file": ("big.bin", handle)},
                headers=auth,
                timeout=120,
            )
        assert stored.status_code == 200, stored.text
        assert stored.json()["files"][0]["sha256"] == digest.hexdigest()
        got = hashlib.sha256()
        with requests.get(
            f"{front.base}/session/{sid}/files/big.bin", headers=auth, stream=True, timeout=120
        ) as answer:
            assert answer.status_code == 200
            for chunk in answer.iter_content(MB):
                got.update(chunk)
        peak.done.set()
        peak.join()
        assert got.hexdigest() == digest.hexdigest()
        grown = (peak.peak - before) / MB
        print(
            f"\nfront RSS: {before / MB:.0f} MB before, +{grown:.1f} MB at peak (100 MB each way)"
        )
        assert grown < 30, f"the front's RSS grew {grown:.1f} MB"
        _front_answers_as_the_host(front.base, sid, auth, big)
    finally:
        for proc in reversed(procs):
            proc.stop()


def _front_answers_as_the_host(base: str, sid: str, auth: dict[str, str], big: Path) -> None:
    """A front relays a host's file answers whole: a range (206), its errors (404 the same
    as the host's, another principal's 404), the headers, and a zip (chunked)."""
    files = f"{base}/session/{sid}/files"
    part = requests.get(f"{files}/big.bin", headers={**auth, "Range": "bytes=5-104"}, timeout=30)
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 5-104/{100 * MB}"
    with big.open("rb") as handle:
        handle.seek(5)
        assert part.content == handle.read(100)
    assert part.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in part.headers["Content-Security-Policy"]
    assert part.headers["Content-Disposition"].startswith("attachment")
    missing = requests.get(f"{files}/nope.txt", headers=auth, timeout=30)
    assert missing.status_code == 404
    assert "nope.txt" in missing.json()["error"] and "big.bin" in missing.json()["error"]
    other = requests.get(
        f"{files}/big.bin", headers={"Authorization": "Bearer tok-other"}, timeout=30
    )
    assert other.status_code == 404
    assert other.json()["error"].startswith(f"no session {sid!r} for you"), other.json()
    assert requests.delete(f"{files}/big.bin", headers=auth, timeout=30).status_code == 200
    small = requests.post(files, files={"file": ("a.txt", b"hello")}, headers=auth, timeout=30)
    assert small.status_code == 200, small.text
    archive = requests.get(f"{files}.zip", headers=auth, timeout=30)
    assert archive.status_code == 200
    assert zipfile.ZipFile(io.BytesIO(archive.content)).read("a.txt") == b"hello"


# ------------------------------------------------------------------- the client


def test_the_client_uploads_lists_downloads_and_deletes(tmp_path: Path, site: FilesSite) -> None:
    from flask_sessions.client import AsyncSessionsClient, FileNotFound, SessionsClient

    cv = tmp_path / "cv.pdf"
    cv.write_bytes(os.urandom(2 * MB))
    with serve(server_env("tok-client", SESSIONS_WARM_POOL="0")) as server:
        with SessionsClient(server.base, "tok-client") as client, client.session() as s:
            stored = s.upload(cv, ("notes.txt", b"notes"), ("cv.pdf", io.BytesIO(b"second")))
            assert [f.name for f in stored.files] == ["cv.pdf", "notes.txt", "cv (2).pdf"]
            assert stored.files[0].sha256 == sha(cv.read_bytes())
            assert [f.name for f in s.files().files] == ["cv.pdf", "notes.txt", "cv (2).pdf"]
            into = tmp_path / "out"
            into.mkdir()
            got = s.download("cv.pdf", into)  # a directory: the file keeps its name
            assert got.path == into / "cv.pdf" and got.size == 2 * MB
            assert got.path.read_bytes() == cv.read_bytes()
            buffer = io.BytesIO()
            assert s.download("cv (2).pdf", buffer).path is None
            assert buffer.getvalue() == b"second"
            archive = s.download(None, tmp_path / "all.zip")
            with zipfile.ZipFile(archive.path or "") as opened:
                assert sorted(opened.namelist()) == ["cv (2).pdf", "cv.pdf", "notes.txt"]
            s.step(type="goto", url=site.base + "/form")
            done = s.step(type="upload_file", selector="#cv", files=["notes.txt"])
            assert done.success, done.message
            assert [f.name for f in s.delete_file("notes.txt").files] == ["cv.pdf", "cv (2).pdf"]
            with pytest.raises(FileNotFound) as missing:
                s.download("notes.txt", tmp_path / "x")
            assert missing.value.status == 404 and not (tmp_path / "x").exists()
            assert not list(tmp_path.glob(".x.*.part"))

        async def run() -> None:
            async with (
                AsyncSessionsClient(server.base, "tok-client") as client,
                client.session() as s,
            ):
                stored = await s.upload(("a.txt", b"async"))
                assert stored.files[0].name == "a.txt"
                assert [f.name for f in (await s.files()).files] == ["a.txt"]
                out = io.BytesIO()
                got = await s.download("a.txt", out)
                assert out.getvalue() == b"async" and got.size == 5
                assert (await s.delete_file("a.txt")).files == []

        asyncio.run(run())


# ----------------------------------------------------------- the README runs as written


def _readme_block(language: str) -> str:
    readme = (Path(ROOT) / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Files\n", 1)[1].split("\n## ", 1)[0]
    return section.split(f"```{language}\n", 1)[1].split("```", 1)[0]


def test_the_readme_files_section_runs_as_written(tmp_path: Path) -> None:
    """Its shell (curl, jq) and Python examples, against a real server and the demo site;
    only the two ports differ."""
    from scripts.demo_site import start_demo_site

    demo, site = start_demo_site()
    try:
        with serve(server_env("tok-readme", SESSIONS_WARM_POOL="0")) as server:

            def ours(code: str) -> str:
                return code.replace("http://127.0.0.1:8000", server.base).replace(
                    "http://127.0.0.1:8100", site
                )

            env = {**os.environ, "TOKEN": "tok-readme"}
            shell = subprocess.run(
                ["bash", "-e", "-c", ours(_readme_block("sh"))],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert shell.returncode == 0, shell.stderr
            out = shell.stdout
            assert '{"name":"cv.txt","size":47,"state":"complete"}' in out, out
            assert "set cv.txt on #cv" in out and "Application received" in out
            assert "cv.txt: 47 bytes" in out
            assert '"content_type":"application/pdf","pages":1' in out
            assert '"downloads":[{"name":"2024-001.pdf","size":775,"state":"complete"}]' in out
            assert "Invoice 2024-001" in out and "Total 79.00 EUR" in out
            assert (tmp_path / "2024-001.pdf").read_bytes().startswith(b"%PDF-")
            with zipfile.ZipFile(tmp_path / "all.zip") as opened:
                assert sorted(opened.namelist()) == ["2024-001.pdf", "cv.txt"]
            python = subprocess.run(
                [sys.executable, "-c", ours(_readme_block("python"))],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert python.returncode == 0, python.stderr
            lines = python.stdout.splitlines()
            assert lines[0] == "Application received" and lines[1] == "application/pdf 1"
            assert "Invoice 2024-001" in python.stdout and lines[-1] == "1"
            assert "['cv.txt', '2024-001.pdf']" in python.stdout
            assert (tmp_path / "2024-001.pdf").exists()
    finally:
        demo.shutdown()
        demo.server_close()


def test_notte_upload_file_action_is_the_upload_step() -> None:
    from flask_sessions.front.notte import step_fields

    action = {"type": "upload_file", "id": "B3", "file_path": "/home/me/cv.pdf"}
    assert step_fields(action, "sid") == {
        "session_id": "sid",
        "type": "upload_file",
        "id": "B3",
        "files": ["cv.pdf"],
    }


def test_a_download_an_iframe_starts_is_the_sessions_too(
    make_app: AppFactory, site: FilesSite
) -> None:
    """Chromium names the iframe's frame, not the session's page: the download is found by
    where its file appears."""
    client = make_app().test_client()
    sid, _ = open_session(client, site.base + "/")
    seen = post(client, "/env/observe", session_id=sid, url=site.base + "/framed")
    assert wait_for(
        lambda: listing(client, sid).get("export.csv", {}).get("state") == "complete", 20
    ), listing(client, sid)
    info = listing(client, sid)["export.csv"]
    assert info["sha256"] == sha(site.csv) and info["url"] == site.base + "/export.csv"
    assert seen["observation"]["content_type"] is None  # the page itself, not a download
