"""A local site for the session files tests (issue 19): forms that take files, links that
download, and PDFs that real Chromium printed.

Everything is served from 127.0.0.1. The PDFs are made when the site starts, by headless
Chromium's ``page.pdf()`` from local HTML (Playwright in a thread of its own, so no asyncio
loop is left in the test's thread): a text document, an invoice with a table, two columns,
20 pages, and a "scan" (a screenshot of text, printed as an image: no text layer).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from playwright.async_api import async_playwright
from werkzeug.sansio.multipart import Data, Epilogue, File, MultipartDecoder, NeedData

from flask_sessions.host.browser import find_browser, launch_args

MB = 1 << 20

TEXT_WORDS = [f"w{i:03d}" for i in range(120)]  # the text PDF's words, in order
TEXT_HTML = "<!doctype html><title>Annual report</title><h1>Annual report</h1>" + "".join(
    f"<p>{' '.join(TEXT_WORDS[i : i + 12])}</p>" for i in range(0, 120, 12)
)
ROWS = [(f"Widget {i}", str(i), f"{i * 3}.50 EUR") for i in range(1, 8)]
TABLE_HTML = (
    "<!doctype html><title>Invoice 42</title><h1>Invoice 42</h1><table border=1>"
    "<tr><th>Item</th><th>Qty</th><th>Price</th></tr>"
    + "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in ROWS)
    + "</table><p>Total: 98.00 EUR</p>"
)
COLUMNS_HTML = (
    "<!doctype html><title>Two columns</title><div style='column-count:2'>"
    + "".join(f"<p>Column sentence {i} goes on here with words.</p>" for i in range(60))
    + "</div>"
)
PAGES_HTML = "<!doctype html><title>Twenty pages</title>" + "".join(
    f"<h2>Section {i}</h2>"
    + "".join(
        f"<p>Page {i} paragraph {j}: lorem ipsum dolor sit amet, consectetur adipiscing elit, "
        "sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.</p>"
        for j in range(14)
    )
    + "<div style='break-after: page'></div>"
    for i in range(20)
)
SCAN_TEXT = "This page was scanned"

FORM_HTML = """<!doctype html><title>Apply</title><h1>Apply</h1>
<form method=post action=/submit enctype=multipart/form-data>
<label>Your CV <input type=file name=cv id=cv></label>
<button id=send>Send application</button></form>"""
CHOOSER_HTML = """<!doctype html><title>Apply (chooser)</title>
<form method=post action=/submit enctype=multipart/form-data id=form>
<input type=file name=cv id=cvfile style="display:none" onchange="form.submit()">
<button type=button id=attach onclick="cvfile.click()">Attach your CV</button></form>"""
EXPORT_HTML = """<!doctype html><title>Reports</title>
<a id=csv href=/export.csv>Export CSV</a>
<a id=html href=/page.html>Saved page</a>
<a id=big href=/big.bin>Everything</a>
<a id=stream href=/stream.bin>Everything (no length)</a>
<a id=invoice href=/table.pdf>Invoice PDF</a>"""
# a download an iframe starts by itself (its frame is not the session's page)
FRAMED_HTML = "<!doctype html><title>Framed</title><iframe src=/auto-csv></iframe>"
AUTO_CSV_HTML = "<!doctype html><a id=a href=/export.csv download>csv</a><script>a.click()</script>"
SAVED_HTML = (
    b"<!doctype html><title>evil</title><script>fetch('/beacon?ran=1');"
    b"document.title='ran';</script><p>a page someone saved</p>"
)


def csv_bytes(size: int = 3 * MB) -> bytes:
    row = b"2024-01-01,widget,3.50,EUR\n"
    return (row * (size // len(row) + 1))[:size]


@dataclass
class FilesSite:
    base: str
    pdfs: dict[str, bytes]
    csv: bytes
    received: list[tuple[str, int, str]] = field(default_factory=list)  # name, size, sha256
    beacons: list[str] = field(default_factory=list)
    big_mb: int = 8


async def _print_pdfs() -> dict[str, bytes]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=find_browser().executable, args=launch_args()
        )
        try:
            page = await browser.new_page()
            out = {}
            for name, html in (
                ("text", TEXT_HTML),
                ("table", TABLE_HTML),
                ("columns", COLUMNS_HTML),
                ("pages", PAGES_HTML),
            ):
                await page.set_content(html)
                out[name] = await page.pdf()
            await page.set_content(f"<h1 style='font-size:60px'>{SCAN_TEXT}</h1>")
            shot = await page.screenshot()
            import base64

            data = base64.b64encode(shot).decode()
            await page.set_content(f"<img src='data:image/png;base64,{data}' style='width:100%'>")
            out["scan"] = await page.pdf()
            return out
        finally:
            await browser.close()


def print_pdfs() -> dict[str, bytes]:
    """The PDFs, printed by Chromium in a thread (no loop is left in the caller's)."""
    result: dict[str, bytes] = {}
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.update(asyncio.run(_print_pdfs()))
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(120)
    if errors:
        raise errors[0]
    return result


@contextmanager
def files_site(host: str = "127.0.0.1") -> Iterator[FilesSite]:
    site = FilesSite(base="", pdfs=print_pdfs(), csv=csv_bytes())

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/beacon":
                site.beacons.append(self.path)
                return self._send(200, b"", "text/plain")
            if path == "/export.csv":
                return self._send(200, site.csv, "text/csv", "attachment; filename=export.csv")
            if path == "/page.html":
                return self._send(200, SAVED_HTML, "text/html", "attachment; filename=page.html")
            if path == "/big.bin":
                return self._stream(site.big_mb, length=True)
            if path == "/stream.bin":
                return self._stream(site.big_mb, length=False)
            if path.endswith(".pdf") and path[1:-4] in site.pdfs:
                return self._send(200, site.pdfs[path[1:-4]], "application/pdf")
            pages = {
                "/form": FORM_HTML,
                "/chooser": CHOOSER_HTML,
                "/export": EXPORT_HTML,
                "/framed": FRAMED_HTML,
                "/auto-csv": AUTO_CSV_HTML,
            }
            html = pages.get(path, "<!doctype html><title>Home</title><p>home")
            self._send(200 if path in pages or path == "/" else 404, html.encode(), "text/html")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            boundary = self.headers.get_param("boundary") or ""
            decoder = MultipartDecoder(str(boundary).encode())
            decoder.receive_data(self.rfile.read(length))
            decoder.receive_data(None)
            name, digest, size = "", hashlib.sha256(), 0
            event = decoder.next_event()
            while not isinstance(event, (NeedData, Epilogue)):
                if isinstance(event, File):
                    name, digest, size = event.filename or "", hashlib.sha256(), 0
                elif isinstance(event, Data) and name:
                    digest.update(event.data)
                    size += len(event.data)
                    if not event.more_data:
                        site.received.append((name, size, digest.hexdigest()))
                        name = ""
                event = decoder.next_event()
            self._send(200, b"<!doctype html><title>Thanks</title><p>received", "text/html")

        def _send(self, status: int, body: bytes, kind: str, disposition: str = "") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            if disposition:
                self.send_header("Content-Disposition", disposition)
            self.end_headers()
            self.wfile.write(body)

        def _stream(self, mb: int, length: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Disposition", "attachment; filename=everything.bin")
            chunk = b"\0" * (256 << 10)
            count = (mb << 20) // len(chunk)
            if length:
                self.send_header("Content-Length", str(count * len(chunk)))
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            try:
                for _ in range(count):
                    self.wfile.write(chunk)
                    if not length:
                        time.sleep(0.005)
            except OSError:  # the browser cancelled it
                pass
            self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    site.base = f"http://{host}:{server.server_address[1]}"
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
