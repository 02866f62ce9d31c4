"""A picture of the live view (issue 20) from a real run: ``docs/live.png``.

Serves the demo site and the app on 127.0.0.1 (nothing leaves the machine), starts a session
on the demo site's login page, lets the "agent" fill the user name over REST, mints an
interactive viewer_url, opens it in a browser, and there, as a person would, clicks the
password field and types; then photographs the browser::

    python scripts/live_screenshot.py                  # docs/live.png at 1280x800
    python scripts/live_screenshot.py --out /tmp/live.png
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:  # ``python scripts/...`` puts scripts/ first instead
    sys.path.insert(0, str(_REPO_ROOT))

from flask_sessions import FlaskSessions, create_app  # noqa: E402
from flask_sessions.host.browser import find_browser, launch_args  # noqa: E402
from scripts.demo_site import start_demo_site  # noqa: E402

TOKEN = "demo-token"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(_REPO_ROOT / "docs" / "live.png"))
    args = parser.parse_args()

    site_server, site = start_demo_site()
    app = create_app({"SESSIONS_TOKENS": {TOKEN: "demo"}})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
        ) as api:
            started = api.post("/session/start", json={"url": site + "/login"})
            started.raise_for_status()
            sid = started.json()["session_id"]
            page = api.post("/env/observe", json={"session_id": sid}).json()["observation"]
            fields = {a["name"]: a for a in page["actions"]}
            user = next(a for name, a in fields.items() if "user" in name.lower())
            step = {"session_id": sid, "type": "fill", "id": user["id"], "value": "alice"}
            api.post("/env/step", json=step).raise_for_status()
            viewer = api.post(f"/session/{sid}/viewer", json={"interactive": True}).json()

            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=find_browser().executable, args=launch_args()
                )
                tab = browser.new_page(viewport={"width": 1280, "height": 800})
                tab.goto(viewer["viewer_url"])
                canvas = tab.locator("#screen")
                deadline = time.monotonic() + 30
                while (canvas.get_attribute("data-frames") or "0") == "0":
                    if time.monotonic() > deadline:
                        raise SystemExit("no frame came")
                    time.sleep(0.1)
                # the person clicks the password field (where the page shows it) and types
                observed = api.post("/env/observe", json={"session_id": sid}).json()
                secret = next(
                    a for a in observed["observation"]["actions"] if "pass" in a["name"].lower()
                )
                found = _element_centre(app, sid, secret["selector"])
                box = canvas.bounding_box()
                data = canvas.evaluate("c => ({...c.dataset})")
                assert box is not None and found is not None
                x = box["x"] + float(data["frameX"]) + found[0] / 1280 * float(data["frameW"])
                y = box["y"] + float(data["frameY"]) + found[1] / 720 * float(data["frameH"])
                tab.mouse.click(x, y)
                tab.keyboard.type("correct horse", delay=40)
                tab.mouse.move(x + 60, y + 40)
                time.sleep(1.5)  # the frames of what was typed
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                tab.screenshot(path=args.out)
                print(f"1280x800: {args.out}")
                browser.close()
    finally:
        server.shutdown()
        server.server_close()
        site_server.shutdown()
        FlaskSessions.state(app).manager.shutdown()


def _element_centre(app: object, session_id: str, selector: str) -> tuple[float, float] | None:
    """Where an element of the session's page is, in CSS pixels (the script's own look)."""
    from flask import Flask

    assert isinstance(app, Flask)
    manager = FlaskSessions.state(app).manager
    live = manager.live(session_id)
    assert live is not None

    async def centre() -> tuple[float, float] | None:
        box = await live.page.locator(selector).bounding_box()
        return (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2) if box else None

    return manager.runtime.submit(centre(), 30)


if __name__ == "__main__":
    main()
