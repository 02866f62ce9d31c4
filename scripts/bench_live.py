"""``make bench ARGS=--live``: the live view and recordings (issue 20), in one run.

On one real server (``python -m flask_sessions``, pages from a local server), beside raw
Playwright on the same Chromium binary and flags doing the same work where there is one:

1. Input-to-frame latency p50 on loopback: a viewer (a WebSocket client, interactive ticket)
   clicks a page that turns from black to white (or back) at the click; the time until the
   first frame showing the new colour (decoded). Raw: ``Input.dispatchMouseEvent`` and
   ``Page.startScreencast`` on a Playwright CDP session. Goal ≤ 100 ms.
2. Frames per second on an animated page with one viewer (full viewport), over 10 s. Raw:
   the screencast of the same page, each frame acknowledged at once. Goal ≥ 10.
3. Step p50 of a session with ``record: true`` against one without (turns alternate: a fill
   on the demo site), with the default trace (filmstrip and DOM snapshots). Goal ≤ 1.3x.
   Again on a server without the filmstrip (``SESSIONS_RECORDING_SCREENSHOTS=false``).
4. Trace size per minute of an agent loop (observe, fill, click, goto, scrape over the demo
   site) with ``record: true``: the trace.zip's bytes over the loop's minutes.
5. What a viewer costs other sessions: step p50 of one session while another (animated) is
   watched by a viewer in its own process, against while it is not (rounds alternate).

Everything listens on 127.0.0.1; every process started here is stopped at the end.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from playwright.async_api import async_playwright
from websockets.sync.client import ClientConnection, connect

from flask_sessions import testing
from flask_sessions.client import SessionsClient
from flask_sessions.host.browser import find_browser, launch_args
from scripts.demo_site import start_demo_site

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-live-token"

TOGGLE = (
    "<!doctype html><title>Toggle</title><body style='margin:0;height:100vh;background:#000'"
    ' onpointerdown="document.body.style.background ='
    " document.body.style.background === 'rgb(255, 255, 255)' ? '#000' : '#fff'\">"
)
ANIMATED = (
    "<!doctype html><title>Animated</title>"
    "<div id=d style='position:absolute;top:100px;width:200px;height:200px;background:#0a0'>"
    "</div><script>let t = 0; (function move() { t += 4; d.style.left = (t % 1000) + 'px';"
    " requestAnimationFrame(move); })();</script>"
)
VIEWER_PROCESS = """
import signal, sys
from websockets.sync.client import connect
frames = 0
def done(*_):
    print(frames, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
with connect(sys.argv[1], proxy=None, max_size=None) as ws:
    while True:
        if isinstance(ws.recv(), bytes):
            frames += 1
            if frames == 1:
                print("first frame", flush=True)
"""


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = (ANIMATED if self.path.startswith("/animated") else TOGGLE).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def pages() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def p50(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def white(frame: bytes) -> bool:
    """Whether the frame's centre is light (the toggle page after an odd number of clicks)."""
    image = Image.open(io.BytesIO(frame)).convert("L")
    pixel = image.getpixel((image.width // 2, image.height // 2))
    return isinstance(pixel, (int, float)) and pixel > 128


# ------------------------------------------------------------------ ours


def socket_for(base: str, api: httpx.Client, sid: str, interactive: bool) -> str:
    viewer = api.post(f"/session/{sid}/viewer", json={"interactive": interactive}).json()
    page_url, _, ticket = viewer["viewer_url"].partition("#ticket=")
    found = re.search(r'name="live-socket" content="([^"]+)"', httpx.get(page_url).text)
    assert found, "the live page names no socket"
    return f"{found.group(1)}?ticket={ticket}"


def next_frame(ws: ClientConnection, timeout: float = 10) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        message = ws.recv(max(0.01, deadline - time.monotonic()))
        if isinstance(message, bytes):
            return message


def our_latency(base: str, api: httpx.Client, site: str, trials: int) -> list[float]:
    sid = api.post("/session/start", json={"url": site + "/toggle"}).json()["session_id"]
    out = []
    with connect(socket_for(base, api, sid, True), proxy=None, max_size=None) as ws:
        ws.send(json.dumps({"type": "size", "width": 1280, "height": 720}))
        shown = white(next_frame(ws))
        for _ in range(trials):
            time.sleep(0.15)  # let the stream be still
            with_drain(ws)
            t0 = time.perf_counter()
            for kind in ("down", "up"):
                click = {"type": "mouse", "event": kind, "x": 0.5, "y": 0.5, "button": "left"}
                ws.send(json.dumps(click))
            while white(next_frame(ws)) == shown:
                pass
            out.append(time.perf_counter() - t0)
            shown = not shown
    api.delete(f"/session/{sid}")
    return out


def with_drain(ws: ClientConnection) -> None:
    """Drop frames already sent (the stream is still after a pause)."""
    while True:
        try:
            ws.recv(0.01)
        except TimeoutError:
            return


def our_fps(base: str, api: httpx.Client, site: str, seconds: float) -> float:
    sid = api.post("/session/start", json={"url": site + "/animated"}).json()["session_id"]
    with connect(socket_for(base, api, sid, False), proxy=None, max_size=None) as ws:
        ws.send(json.dumps({"type": "size", "width": 1280, "height": 720}))
        next_frame(ws)
        time.sleep(1.5)  # past the switch to captures at the frame rate
        with_drain(ws)
        frames = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            try:
                if isinstance(ws.recv(0.5), bytes):
                    frames += 1
            except TimeoutError:
                continue
        fps = frames / (time.perf_counter() - t0)
    api.delete(f"/session/{sid}")
    return fps


def record_cost(base: str, demo: str, repeats: int) -> tuple[list[float], list[float]]:
    """Step times (s) of a recorded session and an unrecorded one, in turns."""
    with SessionsClient(base, TOKEN) as client:
        recorded = client.start(url=demo + "/login", record=True).session_id
        plain = client.start(url=demo + "/login").session_id
        out: tuple[list[float], list[float]] = ([], [])
        users = {}
        for sid in (recorded, plain):
            page = client.observe(sid).observation
            users[sid] = next(a.id for a in page.actions if "user" in a.name.lower())
        for i in range(repeats + 3):
            for sid, samples in ((recorded, out[0]), (plain, out[1])):
                t0 = time.perf_counter()
                client.step(sid, type="fill", id=users[sid], value=f"alice{i}")
                if i >= 3:
                    samples.append(time.perf_counter() - t0)
        client.close(recorded)
        client.close(plain)
        client.delete_recording(recorded)
    return out


def trace_per_minute(base: str, demo: str, seconds: float) -> tuple[float, int, float]:
    """(MB per minute, calls, seconds) of a recorded agent loop over the demo site."""
    with SessionsClient(base, TOKEN) as client:
        sid = client.start(url=demo + "/", record=True).session_id
        calls = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            client.step(sid, type="goto", url=demo + "/login")
            page = client.observe(sid).observation
            fields = {a.name.lower(): a.id for a in page.actions}
            user = next(v for k, v in fields.items() if "user" in k)
            secret = next(v for k, v in fields.items() if "pass" in k)
            client.step(sid, type="fill", id=user, value="alice")
            client.step(sid, type="fill", id=secret, value="wonderland", press_enter=True)
            client.scrape(sid, format="markdown")
            client.step(sid, type="goto", url=demo + "/pages/2")
            calls += 6
        took = time.perf_counter() - t0
        client.close(sid)
        trace = client.recording(sid)
        client.delete_recording(sid)
    return trace.size / 1024 / 1024 / (took / 60), calls, took


def viewer_cost(base: str, api: httpx.Client, site: str, rounds: int) -> tuple[float, float]:
    """(step p50 without a viewer, with one) in ms, rounds alternating."""
    watched = api.post("/session/start", json={"url": site + "/animated"}).json()["session_id"]
    worker = api.post("/session/start", json={"url": site + "/toggle"}).json()["session_id"]
    step = {"session_id": worker, "type": "click", "selector": "body"}

    def steps(n: int) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            api.post("/env/step", json=step).raise_for_status()
            out.append(time.perf_counter() - t0)
        return out

    steps(3)
    without: list[float] = []
    watching: list[float] = []
    for _ in range(rounds):
        without += steps(8)
        url = socket_for(base, api, watched, False)
        viewer = subprocess.Popen(
            [sys.executable, "-c", VIEWER_PROCESS, url], stdout=subprocess.PIPE, text=True
        )
        try:
            assert viewer.stdout is not None
            viewer.stdout.readline()
            watching += steps(8)
        finally:
            viewer.terminate()
            viewer.communicate(timeout=30)
        time.sleep(0.5)
    without += steps(8)
    api.delete(f"/session/{watched}")
    api.delete(f"/session/{worker}")
    return p50(without), p50(watching)


# ------------------------------------------------------------------ raw Playwright


async def raw_latency_and_fps(site: str, trials: int, seconds: float) -> tuple[list[float], float]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=find_browser().executable, args=launch_args()
        )
        context = await browser.new_context(viewport={"width": 1280, "height": 720})
        page = await context.new_page()
        await page.goto(site + "/toggle")
        cdp = await context.new_cdp_session(page)
        frames: asyncio.Queue[bytes] = asyncio.Queue()
        acks: set[asyncio.Future[Any]] = set()

        def on_frame(params: dict[str, Any]) -> None:
            frames.put_nowait(base64.b64decode(params["data"]))
            ack = asyncio.ensure_future(
                cdp.send("Page.screencastFrameAck", {"sessionId": params["sessionId"]})
            )
            acks.add(ack)
            ack.add_done_callback(acks.discard)

        cdp.on("Page.screencastFrame", on_frame)
        await cdp.send(
            "Page.startScreencast",
            {"format": "jpeg", "quality": 70, "maxWidth": 1280, "maxHeight": 720},
        )
        shot = await cdp.send("Page.captureScreenshot", {"format": "jpeg"})
        shown = white(base64.b64decode(shot["data"]))
        latency = []
        for _ in range(trials):
            await asyncio.sleep(0.15)
            while not frames.empty():
                frames.get_nowait()
            t0 = time.perf_counter()
            for kind in ("mousePressed", "mouseReleased"):
                await cdp.send(
                    "Input.dispatchMouseEvent",
                    {"type": kind, "x": 640, "y": 360, "button": "left", "clickCount": 1},
                )
            while white(await asyncio.wait_for(frames.get(), 10)) == shown:
                pass
            latency.append(time.perf_counter() - t0)
            shown = not shown
        await cdp.send("Page.stopScreencast")
        await page.goto(site + "/animated")
        await cdp.send(
            "Page.startScreencast",
            {"format": "jpeg", "quality": 70, "maxWidth": 1280, "maxHeight": 720},
        )
        await asyncio.sleep(1)
        while not frames.empty():
            frames.get_nowait()
        t0 = time.perf_counter()
        count = 0
        while time.perf_counter() - t0 < seconds:
            try:
                await asyncio.wait_for(frames.get(), 0.5)
                count += 1
            except TimeoutError:
                continue
        fps = count / (time.perf_counter() - t0)
        await browser.close()
        return latency, fps


async def raw_tracing_cost(demo: str, repeats: int) -> tuple[list[float], list[float]]:
    """Playwright's own cost of tracing: ``page.fill`` in a traced context (screenshots and
    snapshots) and in a plain one, in turns (seconds each)."""
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=find_browser().executable, args=launch_args()
        )
        traced = await browser.new_context(viewport={"width": 1280, "height": 720})
        plain = await browser.new_context(viewport={"width": 1280, "height": 720})
        await traced.tracing.start(screenshots=True, snapshots=True)
        pages = [await traced.new_page(), await plain.new_page()]
        for page in pages:
            await page.goto(demo + "/login")
        out: tuple[list[float], list[float]] = ([], [])
        for i in range(repeats + 3):
            for page, samples in zip(pages, out, strict=True):
                t0 = time.perf_counter()
                await page.fill("#user", f"alice{i}")
                if i >= 3:
                    samples.append(time.perf_counter() - t0)
        await traced.tracing.stop()
        await browser.close()
        return out


# ------------------------------------------------------------------ the run


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join(
        [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]
    )


def main(quick: bool = False) -> int:
    trials, seconds, repeats, loop_s, rounds = (
        (10, 5.0, 10, 20.0, 2) if quick else (30, 10.0, 30, 60.0, 3)
    )
    load_before = os.getloadavg()
    demo_server, demo = start_demo_site()
    try:
        with pages() as site:
            log("raw Playwright: input-to-frame latency and frames/s")
            raw_latency, raw_fps = asyncio.run(raw_latency_and_fps(site, trials, seconds))
            log("raw Playwright: fill with tracing vs without")
            raw_traced, raw_plain = asyncio.run(raw_tracing_cost(demo, repeats))
            with (
                testing.serve(tokens=TOKEN, timeout=60, cwd=ROOT) as server,
                httpx.Client(
                    base_url=server.base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
                ) as api,
            ):
                log("live view: input-to-frame latency")
                latency = our_latency(server.base, api, site, trials)
                log("live view: frames/s on an animated page")
                fps = our_fps(server.base, api, site, seconds)
                log("recordings: step p50 with record vs without")
                recorded, plain = record_cost(server.base, demo, repeats)
                log(f"recordings: an agent loop for {loop_s:g} s")
                per_minute, calls, took = trace_per_minute(server.base, demo, loop_s)
                log("live view: what a viewer costs another session's steps")
                alone, watched = viewer_cost(server.base, api, site, rounds)
            # recordings without the screencast filmstrip (SESSIONS_RECORDING_SCREENSHOTS)
            unfilmed_env = testing.server_env(TOKEN, SESSIONS_RECORDING_SCREENSHOTS="false")
            with testing.serve(env=unfilmed_env, timeout=60, cwd=ROOT) as server:
                log("recordings: step p50 with record, no filmstrip, vs without record")
                snapshots_only, unrecorded = record_cost(server.base, demo, repeats)
    finally:
        demo_server.shutdown()
        demo_server.server_close()
    load = os.getloadavg()
    rows = [
        [
            "input-to-frame latency p50 (ms)",
            f"{p50(latency):.0f}",
            f"{p50(raw_latency):.0f}",
            f"{p50(latency) / p50(raw_latency):.2f}x",
            "≤ 100 ms",
        ],
        [
            "frames/s, animated page, one viewer",
            f"{fps:.1f}",
            f"{raw_fps:.1f}",
            f"{fps / raw_fps:.2f}x" if raw_fps else "-",
            "≥ 10",
        ],
        [
            "step p50 (fill) with record (ms)",
            f"{p50(recorded):.0f}",
            f"{p50(plain):.0f} without",
            f"{p50(recorded) / p50(plain):.2f}x",
            "≤ 1.3x",
        ],
        [
            "step p50 (fill) with record, no filmstrip (ms)",
            f"{p50(snapshots_only):.0f}",
            f"{p50(unrecorded):.0f} without",
            f"{p50(snapshots_only) / p50(unrecorded):.2f}x",
            "-",
        ],
        [
            "raw page.fill p50, traced context (ms)",
            f"{p50(raw_traced):.0f}",
            f"{p50(raw_plain):.0f} untraced",
            f"{p50(raw_traced) / p50(raw_plain):.2f}x",
            "-",
        ],
        [
            "trace per minute of an agent loop (MB)",
            f"{per_minute:.2f}",
            f"{calls} calls in {took:.0f} s",
            "-",
            "-",
        ],
        [
            "another session's step p50 while one is watched (ms)",
            f"{watched:.0f}",
            f"{alone:.0f} unwatched",
            f"{watched / alone:.2f}x",
            "≤ 1.1x",
        ],
    ]
    print(
        f"\nLive view and recordings ({trials} clicks, {seconds:g} s of frames, {repeats} steps; "
        f"load {load_before[0]:.2f} before, {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} after)"
    )
    print(table(["", "flask_sessions", "raw Playwright / baseline", "ratio", "goal"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(quick="--quick" in sys.argv))
