"""A small login site on 127.0.0.1 for the profile tests (issue 18).

``/login`` has a "Sign in" button; its script POSTs ``/api/login``, which answers with an
HttpOnly session cookie (``sid``), then keeps a token in localStorage and a record in
IndexedDB, and goes to ``/account``. ``/account`` says "Welcome alice" only to a request that
carries the cookie, and shows what its script finds in localStorage and IndexedDB. Each site
has its own random secrets, so a test can look for them in a store's raw bytes.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOGIN_PAGE = """<!doctype html><title>Log in</title>
<h1>Log in</h1><button id="signin" onclick="signIn()">Sign in</button><p id="out"></p>
<script>
async function signIn() {
  const answer = await fetch('/api/login', {method: 'POST'});
  const {token, note} = await answer.json();
  localStorage.setItem('token', token);
  await new Promise((resolve, reject) => {
    const open = indexedDB.open('app', 1);
    open.onupgradeneeded = () => open.result.createObjectStore('kv', {keyPath: 'id'});
    open.onsuccess = () => {
      const tx = open.result.transaction('kv', 'readwrite');
      tx.objectStore('kv').put({id: 'me', note});
      tx.oncomplete = () => { open.result.close(); resolve(); };
      tx.onerror = reject;
    };
    open.onerror = reject;
  });
  location.href = '/account';
}
</script>"""

ACCOUNT_PAGE = """<!doctype html><title>Account</title><h1>{greeting}</h1>
<p>token: <span id="token"></span></p><p>record: <span id="record"></span></p>
<script>
document.getElementById('token').textContent = localStorage.getItem('token') || 'none';
const open = indexedDB.open('app');
open.onsuccess = () => {{
  const db = open.result;
  if (!db.objectStoreNames.contains('kv')) {{
    document.getElementById('record').textContent = 'none';
    return;
  }}
  const get = db.transaction('kv').objectStore('kv').get('me');
  get.onsuccess = () => {{
    document.getElementById('record').textContent = get.result ? get.result.note : 'none';
  }};
}};
</script>"""


@dataclass
class LoginSite:
    """The site's base URL, its secrets, and how often each path was asked for."""

    base: str
    cookie: str = field(default_factory=lambda: "ck" + secrets.token_hex(12))
    token: str = field(default_factory=lambda: "tk" + secrets.token_hex(12))
    record: str = field(default_factory=lambda: "rc" + secrets.token_hex(12))
    logins: int = 0

    @property
    def secrets(self) -> list[str]:
        return [self.cookie, self.token, self.record]


@contextmanager
def login_site(host: str = "127.0.0.1") -> Iterator[LoginSite]:
    """A running login site on ``host`` (a free port); stopped on exit."""
    site = LoginSite("")

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: str, kind: str, headers: dict[str, str]) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/login":
                self._send(200, LOGIN_PAGE, "text/html", {})
            elif path == "/account":
                cookies = self.headers.get("Cookie", "")
                known = f"sid={site.cookie}" in cookies
                greeting = "Welcome alice" if known else "Please log in"
                self._send(200, ACCOUNT_PAGE.format(greeting=greeting), "text/html", {})
            else:
                self._send(404, "<!doctype html><title>Not found</title>", "text/html", {})

        def do_POST(self) -> None:
            if self.path != "/api/login":
                self._send(404, "{}", "application/json", {})
                return
            site.logins += 1
            body = f'{{"token": "{site.token}", "note": "{site.record}"}}'
            cookie = f"sid={site.cookie}; HttpOnly; Path=/; SameSite=Lax"
            self._send(200, body, "application/json", {"Set-Cookie": cookie})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    site.base = f"http://{host}:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
