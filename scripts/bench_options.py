"""``make bench ARGS=--options``: per-session browser options beside raw Playwright, one run.

1. Starts: ``POST /session/start`` with eight browser options (a context of its own) beside
   raw ``browser.new_context(**the same options)`` + ``new_page()``; with a per-session
   proxy (a listener chained behind the egress proxy) beside raw
   ``new_context(proxy={server, username, password})`` + ``new_page()`` (the proxy is not
   contacted by either); and a default start (the warm pool's hand-over) beside raw
   ``new_context(viewport)`` + ``new_page()``, to confirm it kept its time. Each turn
   closes the session the last one started (untimed), as raw closes its context.
2. Page load with ``block_resources``: a local gallery page (``--images`` images of 24 KB,
   a web font, a style sheet; each answered after ``--delay-ms``, as a network would) opened
   with ``POST /env/observe {url}`` in a session without blocking, with all four types
   blocked, and with only ``media`` blocked (nothing on the page to block: the route's own
   cost); raw Playwright ``goto`` + ``content()`` without a route and with the same route
   beside them. The gallery server counts the requests that reached it.

Raw Playwright runs first, in this process, on the same Chromium executable and flags; the
server (``python -m flask_sessions``, the README's way) after it, never at the same time.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Browser, Route, async_playwright

from flask_sessions.host.browser import find_browser, launch_args
from scripts.bench import (
    Json,
    _p50,
    _pcts,
    _x,
    format_table,
    load_line,
    log,
    other_load,
    ratio,
    run_server,
    summary,
)

OPTIONS: Json = {
    "viewport": {"width": 1366, "height": 768},
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64) bench-options/1.0",
    "locale": "de-DE",
    "timezone_id": "Europe/Berlin",
    "color_scheme": "dark",
    "geolocation": {"latitude": 52.52, "longitude": 13.405, "accuracy": 10.0},
    "permissions": ["geolocation", "notifications"],
    "extra_http_headers": {"X-Bench-Run": "options"},
}
# the proxy is never contacted by a start (nothing listens there)
PROXY = {"server": "http://127.0.0.2:3128", "username": "bench", "password": "bench-password"}
ALL_TYPES = ["image", "media", "font", "stylesheet"]
IMAGE = os.urandom(24 * 1024)


class _Gallery(ThreadingHTTPServer):
    daemon_threads = True
    delay_s = 0.02
    images = 60

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _GalleryHandler)


class _GalleryHandler(BaseHTTPRequestHandler):
    server: _Gallery

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        kind = path.rsplit(".", 1)[-1] if "." in path else "page"
        with self.server.lock:
            self.server.hits[kind] += 1
        if path == "/gallery":
            imgs = "".join(
                f"<img src='/img/{i}.png?{time.time_ns()}' width=64 height=64>"
                for i in range(self.server.images)
            )
            body = (
                "<!doctype html><title>gallery</title><link rel=stylesheet href='/s.css'>"
                f"<h1>gallery</h1><p>text</p>{imgs}"
            ).encode()
            self._send(body, "text/html")
            return
        time.sleep(self.server.delay_s)
        if path.endswith(".css"):
            css = "@font-face{font-family:F;src:url(/f.woff2)} body{font-family:F}"
            self._send(css.encode(), "text/css")
        elif path.endswith(".woff2"):
            self._send(IMAGE, "font/woff2")
        else:
            self._send(IMAGE, "image/png")

    def _send(self, data: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def gallery(images: int, delay_ms: int) -> Iterator[_Gallery]:
    server = _Gallery()
    server.images, server.delay_s = images, delay_ms / 1000
    threading.Thread(target=server.serve_forever, name="gallery", daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _timed(
    fn: Callable[[], Any],
    repeats: int,
    warmup: int,
    pause_s: float,
    untimed: Callable[[], Any] | None = None,
) -> list[float]:
    samples = []
    for i in range(warmup + repeats):
        if untimed is not None:
            untimed()  # e.g. close the session the last turn started, as raw closes its context
        time.sleep(pause_s)
        t0 = time.perf_counter()
        fn()
        if i >= warmup:
            samples.append((time.perf_counter() - t0) * 1000)
    return samples


# ------------------------------------------------------------------ raw Playwright


async def _raw(repeats: int, warmup: int, pause_s: float, url: str) -> dict[str, list[float]]:
    choice = find_browser()
    out: dict[str, list[float]] = {}
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=choice.executable, args=launch_args(), headless=True
        )

        async def starts(name: str, kwargs: Json) -> None:
            samples = []
            for i in range(warmup + repeats):
                await asyncio.sleep(pause_s)
                t0 = time.perf_counter()
                context = await browser.new_context(**kwargs)
                await context.new_page()
                if i >= warmup:
                    samples.append((time.perf_counter() - t0) * 1000)
                await context.close()
            out[name] = samples

        log("raw: starts")
        await starts("start options", {**OPTIONS})
        await starts("start proxy", {"proxy": PROXY})
        await starts("start default", {"viewport": {"width": 1280, "height": 720}})
        log("raw: gallery loads")
        out["load none"] = await _raw_loads(browser, url, None, repeats, warmup, pause_s)
        out["load all"] = await _raw_loads(browser, url, ALL_TYPES, repeats, warmup, pause_s)
        out["load media"] = await _raw_loads(browser, url, ["media"], repeats, warmup, pause_s)
        await browser.close()
    return out


async def _raw_loads(
    browser: Browser,
    url: str,
    block: list[str] | None,
    repeats: int,
    warmup: int,
    pause_s: float,
) -> list[float]:
    context = await browser.new_context(service_workers="block" if block else "allow")
    if block:
        types = set(block)

        async def handle(route: Route) -> None:
            if route.request.resource_type in types:
                await route.abort("blockedbyclient")
            else:
                await route.fallback()

        await context.route("**/*", handle)
    page = await context.new_page()
    samples = []
    for i in range(warmup + repeats):
        await asyncio.sleep(pause_s)
        t0 = time.perf_counter()
        await page.goto(url)
        await page.content()
        if i >= warmup:
            samples.append((time.perf_counter() - t0) * 1000)
    await context.close()
    return samples


# ------------------------------------------------------------------ the server


def _server(
    repeats: int, warmup: int, pause_s: float, url: str, site: _Gallery
) -> tuple[dict[str, list[float]], Json]:
    out: dict[str, list[float]] = {}
    hits: Json = {}
    with run_server(50, None) as server:
        client = server.client()
        try:
            for name, body in (
                ("start options", dict(OPTIONS)),
                ("start proxy", {"proxy": PROXY}),
                ("start default", {}),
            ):
                log(f"server: {name}")
                ids: list[str] = []

                def start(body: Json = body, ids: list[str] = ids) -> None:
                    ids.append(client.start_id(body))

                def close_last(ids: list[str] = ids) -> None:
                    while ids:
                        client.delete(ids.pop())

                # each turn closes the last one's session first, untimed (raw closes each
                # context too: N open sessions would slow every later start); a pause of at
                # least 0.3 s lets the pool refill between default starts
                out[name] = _timed(start, repeats, warmup, max(pause_s, 0.3), close_last)
                close_last()
            for name, block in (
                ("load none", None),
                ("load all", ALL_TYPES),
                ("load media", ["media"]),
            ):
                log(f"server: gallery, {name}")
                sid = client.start_id({"block_resources": block} if block else {})
                with site.lock:
                    site.hits.clear()

                def load(sid: str = sid) -> None:
                    client.api.observe(sid, url=url)

                out[name] = _timed(load, repeats, warmup, pause_s)
                with site.lock:
                    hits[name] = dict(site.hits)
                client.delete(sid)
        finally:
            client.close()
    return out, hits


# ------------------------------------------------------------------ the report


def section(ours: dict[str, list[float]], raw: dict[str, list[float]], hits: Json, n: int) -> str:
    def row(name: str, what: str, theirs: str, goal: str) -> list[str]:
        a, b = summary(ours[name]), summary(raw[name])
        return [what, _pcts(a), theirs, _pcts(b), _x(ratio(_p50(a), _p50(b))), goal]

    starts = format_table(
        ["start", "flask_sessions p50/p95/p99 ms", "raw Playwright", "raw p50/p95/p99 ms",
         "ratio p50", "goal"],
        [
            row("start options", "with 8 options", "new_context(**options) + new_page()",
                "≤ 1.2x"),
            row("start proxy", "with a proxy", "new_context(proxy=…) + new_page()", "-"),
            row("start default", "default (warm pool)", "new_context(viewport) + new_page()",
                "≈ 0.1x"),
        ],
    )  # fmt: skip
    loads = format_table(
        ["gallery page load", "observe {url} p50/p95 ms", "requests served",
         "raw goto+content p50/p95 ms", "ours vs none", "raw vs none"],
        [
            [
                label,
                _pcts(summary(ours[name]), ("p50_ms", "p95_ms")),
                " ".join(f"{k}:{v}" for k, v in sorted(hits.get(name, {}).items())),
                _pcts(summary(raw[name]), ("p50_ms", "p95_ms")),
                _x(ratio(_p50(summary(ours[name])), _p50(summary(ours["load none"])))),
                _x(ratio(_p50(summary(raw[name])), _p50(summary(raw["load none"])))),
            ]
            for name, label in (
                ("load none", "no block_resources"),
                ("load all", "block_resources: all four"),
                ("load media", "block_resources: media (nothing to block)"),
            )
        ],
    )  # fmt: skip
    return (
        "Browser options (make bench ARGS=--options)\n"
        + starts
        + f"\n\nblock_resources: a page with {n} images (24 KB, each answered after the "
        "delay), a style sheet and a web font; requests counted per kind at the server over "
        "all timed and warm-up loads\n" + loads
    )


def main(quick: bool = False, images: int = 60, delay_ms: int = 20) -> int:
    repeats, warmup, pause_s = (5, 1, 0.1) if quick else (30, 3, 0.1)
    print(load_line("at start", other_load()), flush=True)
    with gallery(images, delay_ms) as site:
        url = f"http://127.0.0.1:{site.server_address[1]}/gallery"
        t0 = time.perf_counter()
        raw = asyncio.run(_raw(repeats, warmup, pause_s, url))
        ours, hits = _server(repeats, warmup, pause_s, url, site)
        print(section(ours, raw, hits, images), flush=True)
    print(load_line("at end", other_load()), flush=True)
    print(f"options bench {time.perf_counter() - t0:.1f} s", flush=True)
    return 0
