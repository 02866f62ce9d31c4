"""A small local website for the demo agent, the tests and the benchmark (127.0.0.1 only).

Pages: ``/`` (home, links), ``/login`` (form → ``/account``), ``/account`` (needs the login
cookie), ``/profile`` (select, checkbox, textarea; Save posts back to ``/profile``),
``/report`` (a table and nested lists), ``/pages/1..3`` (a chain of links),
``/changing`` (a button that rewrites the page), ``/slow?ms=N`` (answers after N ms),
``/redirect`` (302 → ``/``), ``/gallery`` (20 uncached images, ``/img/N.svg``), ``/apply``
(a form that takes a CV file; posting it says what arrived), ``/invoices`` (a link to
``/invoices/2024-001.pdf``, a one-page PDF with a table), ``/big`` (5,000 elements),
``/board`` (a card to drag between two columns), anything else 404.

Run it alone: ``python scripts/demo_site.py --port 8100``.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

USER, PASSWORD = "alice", "wonderland"


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em} .hidden{display:none}</style>"
        f"<script>window.demo = true;</script></head><body>{body}</body></html>"
    )


PAGES: dict[str, tuple[str, str]] = {
    "/": (
        "Demo home",
        "<h1>Demo shop</h1><nav><a href='/login'>Log in</a> <a href='/report'>Report</a> "
        "<a href='/pages/1'>Page chain</a></nav><p>Welcome to the demo site.</p>",
    ),
    "/login": (
        "Log in",
        "<h1>Log in</h1><form method='post' action='/login'>"
        "<label for='user'>Username</label> <input id='user' name='user' autocomplete='off'>"
        "<label for='password'>Password</label> <input id='password' name='password' "
        "type='password'><button type='submit'>Sign in</button></form>"
        "<p class='hidden'>You should not see this</p>",
    ),
    "/profile": (
        "Profile",
        "<h1>Edit profile</h1><form method='post' action='/profile'>"
        "<label for='color'>Favourite colour</label><select id='color' name='color'>"
        "<option value='red'>Red</option><option value='green'>Green</option>"
        "<option value='blue'>Blue</option></select>"
        "<input type='checkbox' id='news' name='news' value='yes'>"
        "<label for='news'>Send me news</label>"
        "<label for='bio'>Bio</label><textarea id='bio' name='bio'></textarea>"
        "<button type='submit'>Save</button> <button type='button' disabled>Delete</button>"
        "</form>",
    ),
    "/report": (
        "Quarterly report",
        "<h1>Quarterly report</h1><p>Figures for <a href='/pages/1'>Q3</a>.</p>"
        "<table><thead><tr><th>Region</th><th>Sales</th></tr></thead>"
        "<tbody><tr><td>North</td><td>120</td></tr><tr><td>South</td><td>80</td></tr>"
        "</tbody></table>"
        "<h2>Notes</h2><ul><li>Growth<ul><li>North up 20%</li><li>South flat</li></ul></li>"
        "<li>Next steps</li></ul>",
    ),
    "/changing": (
        "Changing page",
        "<h1>Before</h1><button id='go' onclick=\"document.body.innerHTML="
        "'<h1>After</h1><button id=\\'again\\'>Again</button>'\">Change the page</button>"
        "<a href='/'>Home</a>",
    ),
}
PAGES["/gallery"] = (
    "Gallery",
    "<h1>Gallery</h1>"
    + "".join(f"<img src='/img/{i}.svg' width='16' height='16' alt='tile {i}'>" for i in range(20)),
)
TILE = "<svg xmlns='http://www.w3.org/2000/svg' width='16' height='16'><rect width='16'/></svg>"
for n in (1, 2, 3):
    nxt = f"<a href='/pages/{n + 1}'>Next page</a>" if n < 3 else "<p>The end.</p>"
    PAGES[f"/pages/{n}"] = (f"Page {n}", f"<h1>Page {n}</h1>{nxt}")


# perception II (issue 22): the bench's pages: 5,000 elements, and a card to drag
PAGES["/big"] = (
    "Big grid",
    "<h1>Big grid</h1><style>.row{display:flex;gap:8px}</style>"
    + "".join(
        f"<div class='row'><span>Name {i}</span><span>Value {i}</span>"
        f"<a href='#r{i}'>Open {i}</a><button>Edit {i}</button></div>"
        for i in range(1, 1000)
    ),
)
PAGES["/board"] = (
    "Board",
    "<h1>Board</h1><style>.col{display:inline-block;vertical-align:top;width:200px;"
    "min-height:120px;border:1px solid #999;margin:8px}"
    ".card{border:1px solid #333;margin:4px;padding:8px}</style>"
    "<div class='col' id='left' aria-label='Left'><div class='card' id='card' draggable='true'>"
    "Card</div></div><div class='col' id='right' aria-label='Right'></div>"
    "<script>document.getElementById('card').addEventListener('dragstart', (e) => "
    "e.dataTransfer.setData('text/plain', 'card'));"
    "for (const col of document.querySelectorAll('.col')) {"
    "col.addEventListener('dragover', (e) => e.preventDefault());"
    "col.addEventListener('drop', (e) => { e.preventDefault();"
    "col.appendChild(document.getElementById(e.dataTransfer.getData('text/plain'))); }); }"
    "</script>",
)


class DemoHandler(BaseHTTPRequestHandler):
    """Serves the demo pages; the login cookie is the only state."""

    server_version = "demo-site"

    def _send(
        self,
        status: int,
        body: str,
        headers: dict[str, str] | None = None,
        content_type: str = "text/html; charset=utf-8",
    ) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _logged_in(self) -> bool:
        return f"demo_user={USER}" in self.headers.get("Cookie", "")

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/slow":
            ms = int(parse_qs(url.query).get("ms", ["2000"])[0])
            time.sleep(min(ms, 60_000) / 1000)
            self._send(200, _page("Slow page", f"<h1>Slow</h1><p>after {ms} ms</p>"))
        elif url.path == "/redirect":
            self._send(302, "", {"Location": "/"})
        elif url.path.startswith("/img/"):
            self._send(200, TILE, {"Cache-Control": "no-store"}, "image/svg+xml")
        elif url.path == "/account":
            if not self._logged_in():
                self._send(302, "", {"Location": "/login"})
                return
            body = (
                f"<h1>Welcome, {USER}</h1><p>Your balance is 42 coins.</p>"
                "<a href='/profile'>Edit profile</a> <a href='/'>Home</a>"
            )
            self._send(200, _page("Account", body))
        elif url.path == "/invoices/2024-001.pdf":  # session files (issue 19)
            data = invoice_pdf()
            self.send_response(200)
            self.send_header("Content-Type", "application/pdf")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif url.path in PAGES:
            title, body = PAGES[url.path]
            self._send(200, _page(title, body))
        else:
            self._send(404, _page("Not found", "<h1>404</h1><p>No such page.</p>"))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        path = urlsplit(self.path).path
        if path == "/apply":  # session files (issue 19)
            files = received_files(self.headers.get("Content-Type", ""), raw)
            items = "".join(
                f"<li>{html.escape(name)}: {size} bytes, sha256 {digest}</li>"
                for name, size, digest in files
            )
            body = f"<h1>Application received</h1><ul>{items or '<li>no file</li>'}</ul>"
            self._send(200, _page("Application received", body))
            return
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        if path == "/login":
            if form.get("user") == USER and form.get("password") == PASSWORD:
                cookie = f"demo_user={USER}; Path=/; HttpOnly"
                self._send(303, "", {"Location": "/account", "Set-Cookie": cookie})
            else:
                body = "<h1>Log in failed</h1><p>Wrong username or password.</p>"
                self._send(401, _page("Log in failed", body + "<a href='/login'>Retry</a>"))
        elif path == "/profile" and self._logged_in():
            rows = "".join(
                f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                for k, v in sorted(form.items())
            )
            body = f"<h1>Profile saved</h1><table><tr><th>Field</th><th>Value</th></tr>{rows}"
            self._send(200, _page("Profile saved", body + "</table>"))
        else:
            self._send(404, _page("Not found", "<h1>404</h1>"))

    def log_message(self, format: str, *args: object) -> None:
        pass


# --- session files (issue 19): a form that takes a file, and an invoice PDF
PAGES["/apply"] = (
    "Apply",
    "<h1>Apply for the job</h1><form method='post' action='/apply' "
    "enctype='multipart/form-data'><label for='name'>Name</label> "
    "<input id='name' name='name'><label for='cv'>Your CV</label> "
    "<input type='file' id='cv' name='cv'><button type='submit' id='apply'>Send application"
    "</button></form>",
)
PAGES["/invoices"] = (
    "Invoices",
    "<h1>Invoices</h1><ul><li><a href='/invoices/2024-001.pdf'>Invoice 2024-001</a> "
    "(PDF)</li></ul>",
)
INVOICE_LINES = [
    "Invoice 2024-001",
    "Demo shop, 1 Rabbit Hole, Wonderland",
    "Item    Qty    Price",
    "Tea set    1    42.00 EUR",
    "Pocket watch    2    18.50 EUR",
    "Total    79.00 EUR",
]


def invoice_pdf() -> bytes:
    """A one-page PDF with a text layer (Helvetica), written out by hand: no library."""
    text = (
        "BT /F1 14 Tf 72 760 Td 18 TL "
        + " ".join(
            "({}) Tj T*".format(line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)"))
            for line in INVOICE_LINES
        )
        + " ET"
    )
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text.encode("latin-1")),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return out


def received_files(content_type: str, body: bytes) -> list[tuple[str, int, str]]:
    """``(filename, size, sha256)`` of each file part of a multipart body."""
    from werkzeug.http import parse_options_header
    from werkzeug.sansio.multipart import Data, Epilogue, File, MultipartDecoder, NeedData

    boundary = parse_options_header(content_type)[1].get("boundary", "")
    decoder = MultipartDecoder(boundary.encode())
    decoder.receive_data(body)
    decoder.receive_data(None)
    found: list[tuple[str, int, str]] = []
    name, digest, size = "", hashlib.sha256(), 0
    event = decoder.next_event()
    while not isinstance(event, (NeedData, Epilogue)):
        if isinstance(event, File):
            name, digest, size = event.filename or "", hashlib.sha256(), 0
        elif isinstance(event, Data) and name:
            digest.update(event.data)
            size += len(event.data)
            if not event.more_data:
                found.append((name, size, digest.hexdigest()))
                name = ""
        event = decoder.next_event()
    return found


def start_demo_site(port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Serve the demo site on 127.0.0.1 in a daemon thread; returns (server, base URL)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), DemoHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="demo-site", daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    server, base = start_demo_site(args.port)
    print(f"demo site on {base} (user {USER!r}, password {PASSWORD!r}); Ctrl-C stops it")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
