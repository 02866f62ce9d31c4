"""The live view and recordings through fronts (issue 20): hosts on 127.0.0.2 and .3, a
front on 127.0.0.1, a real redis-server. The viewer_url is the front's page; its socket is
the owning host's WebSocket server (as cdp_url is); a trace streams from the host through
the front.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from websockets.sync.client import connect

from flask_sessions.testing import ServerProcess

from .conftest import wait_for
from .test_cluster import A, B, front, host, procs, redis_url  # noqa: F401 - fixtures

PAGE = b"""<!doctype html><title>Cluster</title>
<button id=b style="position:absolute;left:0;top:0;width:1280px;height:720px"
        onclick="this.textContent = String(+this.textContent + 1)">0</button>"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_live_view_and_recording_through_a_front(
    procs: list[ServerProcess],  # noqa: F811
    redis_url: str,  # noqa: F811
    site: str,
) -> None:
    hosts = [host(procs, f"127.0.0.{i}", SESSIONS_REGISTRY_URL=redis_url) for i in (2, 3)]
    for h in hosts:
        h.wait_ready()
    f = front(procs, SESSIONS_REGISTRY_URL=redis_url)
    f.wait_ready()
    assert wait_for(
        lambda: "2 browser host" in requests.get(f.base + "/readyz", timeout=5).text, 15
    )

    started = requests.post(
        f.base + "/session/start", headers=A, json={"url": site, "record": True}, timeout=60
    ).json()
    sid = started["session_id"]
    assert started["recording"] == "recording"
    owner = started["cdp_url"].split("/cdp/")[0]  # ws://127.0.0.x:port of the owning host
    assert owner.startswith(("ws://127.0.0.2:", "ws://127.0.0.3:"))

    # the viewer_url is the front's page; the page's socket is the owning host's
    answer = requests.post(
        f"{f.base}/session/{sid}/viewer", headers=A, json={"interactive": True}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    viewer_url = answer.json()["viewer_url"]
    page_url, _, ticket = viewer_url.partition("#ticket=")
    assert page_url == f"{f.base}/ui/live/{sid}"
    page = requests.get(page_url, timeout=30)  # no token
    socket = re.search(r'name="live-socket" content="([^"]+)"', page.text)
    assert socket and socket.group(1) == f"{owner}/live/{sid}"
    assert f"connect-src {owner};" in page.headers["Content-Security-Policy"]
    record = requests.get(f"{f.base}/session/{sid}", headers=A, timeout=30).json()
    assert record["viewer_url"] == viewer_url  # on the host's record, not in Redis

    with connect(f"{socket.group(1)}?ticket={ticket}", proxy=None, max_size=None) as ws:
        hello = json.loads(str(ws.recv(15)))
        assert hello["type"] == "hello" and hello["interactive"] is True
        deadline = time.monotonic() + 15
        while not isinstance(ws.recv(max(0.1, deadline - time.monotonic())), bytes):
            pass  # the first frame
        assert wait_for(lambda: _viewers(f.base, sid) == 1, 10)
        for kind in ("down", "up"):
            click = {"type": "mouse", "event": kind, "x": 0.5, "y": 0.5, "button": "left"}
            ws.send(json.dumps(click))

        def clicked() -> bool:
            observed = requests.post(
                f.base + "/env/observe", headers=A, json={"session_id": sid}, timeout=30
            ).json()["observation"]
            return "1" in [a["name"] for a in observed["actions"]] and bool(
                observed["human_input_at"]
            )

        assert wait_for(clicked, 15)
    assert wait_for(lambda: _viewers(f.base, sid) == 0, 10)

    # bob: nothing of alice's
    assert requests.post(f"{f.base}/session/{sid}/viewer", headers=B, timeout=30).status_code == 404
    assert (
        requests.get(f"{f.base}/session/{sid}/recording", headers=B, timeout=30).status_code == 404
    )

    # the trace streams from the host through the front
    requests.delete(f"{f.base}/session/{sid}", headers=A, timeout=30)
    trace = requests.get(f"{f.base}/session/{sid}/recording", headers=A, timeout=60)
    assert trace.status_code == 200 and trace.headers["X-Recording-State"] == "saved"
    assert trace.headers["Content-Length"] == str(len(trace.content))
    archive = zipfile.ZipFile(io.BytesIO(trace.content))
    titles = [
        json.loads(line)["title"]
        for name in archive.namelist()
        if name.endswith(".trace")
        for line in archive.read(name).decode().splitlines()
        if '"tracingGroup"' in line
    ]
    # one observe group per look of clicked() above (it looks until the click shows)
    assert titles[0] == f"start {site}" and set(titles[1:]) == {f"observe {site}"}, titles
    gone = requests.delete(f"{f.base}/session/{sid}/recording", headers=A, timeout=30)
    assert gone.status_code == 200 and gone.json()["deleted"] is True
    assert (
        requests.get(f"{f.base}/session/{sid}/recording", headers=A, timeout=30).status_code == 404
    )


def _viewers(base: str, sid: str) -> int:
    record = requests.get(f"{base}/session/{sid}", headers=A, timeout=30).json()
    return int(record["viewers"])
