"""Screenshots of the live sessions page (``<prefix>/ui``) with a few real sessions.

Serves the demo site, two more colourful local pages and the app on 127.0.0.1 (nothing
leaves the machine), starts four sessions (one keep-alive, one timed out by a moved clock,
one closed), then photographs the page as a browser shows it::

    python scripts/ui_screenshot.py                    # docs/ui.png at 1280x800
    python scripts/ui_screenshot.py --narrow /tmp/ui-narrow.png --lightbox /tmp/ui-big.png
"""

from __future__ import annotations

import argparse
import html
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:  # ``python scripts/...`` puts scripts/ first instead
    sys.path.insert(0, str(_REPO_ROOT))

from flask_sessions import FlaskSessions, ManualClock, create_app  # noqa: E402
from flask_sessions.host.browser import find_browser, launch_args  # noqa: E402
from scripts.demo_site import start_demo_site  # noqa: E402

TOKEN = "demo-token"

_STYLE = (
    "body{margin:0;font:16px system-ui,sans-serif;background:#f4f6fb;color:#1d2330}"
    "header{background:#243b6b;color:#fff;padding:18px 40px;font-size:26px;font-weight:700}"
    "main{display:grid;grid-template-columns:repeat(3,1fr);gap:24px;padding:32px 40px}"
    ".card{background:#fff;border-radius:12px;padding:20px;box-shadow:0 2px 6px #0002}"
    ".card b{display:block;height:110px;border-radius:8px;margin-bottom:12px}"
)
EXTRA_PAGES = {
    "/news": (
        "Harbour Times: morning edition",
        "".join(
            f"<div class=card><b style='background:{c}'></b><h3>{t}</h3><p>{'Lorem ipsum ' * 6}"
            "</p></div>"
            for c, t in (
                ("#e8804c", "Ferry timetable changes"),
                ("#4ca3e8", "Tide tables for May"),
                ("#63b97c", "Market hall reopens"),
            )
        ),
    ),
    "/orders": (
        "Orders · Demo shop admin",
        "".join(
            f"<div class=card><h3>{t}</h3><b style='background:linear-gradient(90deg,{c} {w}%,"
            f"#e6e9f0 {w}%);height:18px'></b><p>{w}% of target</p></div>"
            for c, t, w in (
                ("#7b5cd6", "Orders today", 72),
                ("#e85c8a", "Returns", 18),
                ("#2fa58d", "Shipped", 91),
            )
        ),
    ),
}


class _Extra(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        title, body = EXTRA_PAGES.get(self.path, ("Not found", "<p>no such page</p>"))
        data = (
            f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style><header>{html.escape(title)}</header><main>{body}</main>"
        ).encode()
        self.send_response(200 if self.path in EXTRA_PAGES else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(_REPO_ROOT / "docs" / "ui.png"))
    parser.add_argument("--narrow", help="also a 390x844 screenshot, to this file")
    parser.add_argument("--lightbox", help="also one with a thumbnail enlarged, to this file")
    args = parser.parse_args()

    site_server, site = start_demo_site()
    extra_server = ThreadingHTTPServer(("127.0.0.1", 0), _Extra)
    threading.Thread(target=extra_server.serve_forever, daemon=True).start()
    extra = f"http://127.0.0.1:{extra_server.server_address[1]}"
    clock = ManualClock()
    app = create_app(
        {"SESSIONS_TOKENS": {TOKEN: "demo"}, "SESSIONS_REAPER_INTERVAL_SECONDS": 0.1}, clock=clock
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
        ) as api:

            def start(**body: object) -> str:
                response = api.post("/session/start", json=body)
                response.raise_for_status()
                session_id: str = response.json()["session_id"]
                return session_id

            start(url=site + "/pages/2", session_timeout_minutes=2)
            clock.advance(minutes=2, seconds=1)  # the reaper times that one out
            closed = start(url=site + "/login", record=True)  # its trace stays downloadable
            clock.advance(seconds=48)
            api.delete(f"/session/{closed}").raise_for_status()
            start(url=extra + "/news", keep_alive=True)
            clock.advance(seconds=21)
            start(url=extra + "/orders", session_timeout_minutes=10)
            clock.advance(seconds=42)  # some idle time to show

        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=find_browser().executable, args=launch_args()
            )
            shots = [((1280, 800), args.out, False)]
            if args.narrow:
                shots.append(((390, 844), args.narrow, False))
            if args.lightbox:
                shots.append(((1280, 800), args.lightbox, True))
            for (width, height), path, enlarged in shots:
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(base + "/ui")
                page.fill("#token", TOKEN)
                page.click("#login button[type=submit]")
                page.locator("#rows tr").nth(3).wait_for()
                # every active session's thumbnail has arrived
                page.wait_for_function(
                    "() => [...document.querySelectorAll('tr[data-status=active] .thumb img')]"
                    ".every(img => !img.hidden && img.complete && img.naturalWidth > 0)"
                )
                if enlarged:
                    page.locator("tr[data-status=active] .thumb").first.click()
                page.wait_for_timeout(600)  # a countdown tick
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=path, full_page=width < 800)
                print(f"{width}x{height}: {path}")
                page.close()
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
        site_server.shutdown()
        extra_server.shutdown()
        FlaskSessions.state(app).manager.shutdown()


if __name__ == "__main__":
    main()
