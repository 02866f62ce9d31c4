"""Benchmark of flask_sessions against raw Playwright on the same Chromium, in one run.

It serves the local demo site (``scripts/demo_site.py``), runs a raw-Playwright baseline in
its own subprocess (``--raw-worker``: async API, the same executable and launch flags), then
starts the real server the README's way (``python -m flask_sessions`` on a free port with a
random token) and measures it over HTTP. The two never run at the same time (2 cores).

1. Latency at light load (one client, ``--pause-ms`` before each timed operation, so
   background work such as a warm-pool refill is not counted), p50/p95/p99 and the p50 ratio:
   start, start+screenshot, observe of a demo page with and without screenshot, step (click a
   link), scrape (markdown) of the page on show and goto+scrape (opening it by URL), close;
   each beside the raw page work doing the same.
2. Throughput: starts/s (start then close) and observe/s (one session per client) with 1, 4
   and 16 concurrent clients (threads, one keep-alive HTTP session each) for ``--duration``
   seconds each; raw Playwright starts/s with the same number of asyncio tasks.
3. Scale (``--scale``): N idle sessions (``--scale-n``, cumulative): PSS per session summed
   over the Chromium processes below the server (``/proc/<pid>/smaps_rollup``) minus the
   baseline with 0 sessions, and start p50 at N; the same PSS per context for raw Playwright.
4. Reaper lag (not with ``--quick``): sessions with ``session_timeout_minutes: 1`` (20, or the
   largest N with ``--scale``); lag = ``closed_at - (last_accessed_at + 1 min)`` from the
   server's own records, beside the reaper interval.
5. Egress policy cost (``--no-egress`` skips it, ``--egress-only`` runs only it): two servers
   at once, one with the default policy (every connection through the egress proxy) and one
   whose policy blocks nothing (``SESSIONS_ALLOWED_NETWORKS`` covers link-local, so there is
   no proxy); start, observe, step and scrape timed on each in turn, p50 and the ratio.

Sections run alone, each instead of 1-5 (``make bench ARGS=--<flag>``):

- ``--cdp``: the per-session CDP WebSocket beside Playwright's own ``connect_over_cdp`` to a
  raw Chromium started with ``--remote-debugging-port`` (same executable and flags):
  attach-to-first-page p50, ``Runtime.evaluate('1')`` round trip p50 (through Playwright's
  CDPSession and through a bare WebSocket client), and PSS per session at N sessions each
  with a connected Playwright client, beside N plain sessions.
- ``--perception`` (``scripts/bench_perception.py``): observe and step click beside raw
  Playwright, observe of a 5,000-element page, observe.js with and without boxes,
  press_key's settling, and drag p50.
- ``--options`` (issue 18, ``scripts/bench_options.py``): a start with browser options
  beside raw ``new_context(**options)`` + ``new_page()``, a default start's warm-pool time,
  and a page load with and without ``block_resources``.
- ``--profiles`` (issue 18, ``scripts/bench_profiles.py``): a start with a 50-cookie
  profile beside raw ``new_context(storage_state=…)``, and the save at close (file, Redis).
- ``--files`` (issue 19, ``scripts/bench_files.py``): upload and download MB/s, direct and
  through a front, beside curl to a static file server; PDFs to text.
- ``--live`` (issue 20, ``scripts/bench_live.py``): the live view's input-to-frame latency
  and frames/s beside raw Playwright's screencast, step p50 with ``record: true`` against
  without, trace size per minute of an agent loop, and what a viewer costs another
  session's steps.
- ``--adapters`` (issue 21, ``scripts/bench_adapters.py``): Notte's SDK observe through the
  Notte routes beside ``/env/observe``, and an MCP ``browser_observe`` over stdio beside the
  client.

Run from the repo root: ``python scripts/bench.py [--quick] [--scale] [--cdp] [--json PATH]``
(``make bench ARGS=...``). Progress goes to stderr, tables to stdout. Every process it
starts is stopped before it exits, on failure and Ctrl-C too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import dataclasses
import json
import math
import os
import platform
import queue
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, TypeVar

import httpx
import psutil
from playwright.async_api import (
    Browser,
    BrowserContext,
    CDPSession,
    ViewportSize,
    async_playwright,
)
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

# ``python scripts/bench.py`` puts scripts/ first on sys.path, not the repo root; add the root
# so the demo site imports as ``scripts.demo_site`` (the name mypy checks it by).
_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from flask_sessions.client import (  # noqa: E402
    Retries,
    SessionsClient,
    SessionsError,
    StartArgs,
)
from flask_sessions.host.browser import find_browser, launch_args  # noqa: E402
from flask_sessions.schemas import ImageFormat, Observation  # noqa: E402
from flask_sessions.testing import (  # noqa: E402
    ServerProcess,
    ServerProcessError,
    free_port,
    server_env,
    start_process,
)
from flask_sessions.testing import serve as serve_process  # noqa: E402
from scripts.demo_site import start_demo_site  # noqa: E402

T = TypeVar("T")
R = TypeVar("R")

HEALTH_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 30.0
TERM_GRACE_S = 20.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IMAGE_MAGIC = {"png": PNG_MAGIC, "jpeg": b"\xff\xd8", "webp": b"RIFF"}
SHOT_FORMATS: tuple[ImageFormat, ...] = ("png", "jpeg", "webp")
VIEWPORT: ViewportSize = {"width": 1280, "height": 720}  # the server's default viewport
REAPER_INTERVAL_S = 1.0
REAPER_TIMEOUT_MIN = 1
REAPER_BOUND_S = 180.0  # from the first reaper session's start to giving up
REAPER_MARGIN_S = 2.0  # wait past the last deadline before polling
DEFAULT_REAPER_SESSIONS = 20
CONCURRENCY = (1, 4, 16)
FAN_OUT_CLIENTS = 4  # threads (or tasks) opening and closing sessions in bulk
SCALE_STARTS = 20  # timed starts on top of the N idle sessions
SETTLE_S = 2.0  # let Chromium settle before reading PSS
DRAIN_BOUND_S = 60.0  # longest wait for closed contexts' renderers to exit
QUICK = {"repeats": 5, "warmup": 1, "duration": 2.0}
FULL = {"repeats": 30, "warmup": 3, "duration": 5.0}

# What each latency row compares: (name, over HTTP, raw Playwright).
LATENCY_ROWS = (
    ("start", "POST /session/start {}", "new_context(viewport) + new_page()"),
    (
        "start+screenshot",
        'POST /session/start {"screenshot": true}',
        "new_context + new_page + page.screenshot()",
    ),
    ("observe", "POST /env/observe {session_id, url: /report}", "goto(/report) + content()"),
    (
        "observe+screenshot",
        "the same with screenshot: true",
        "goto(/report) + content() + screenshot()",
    ),
    (
        "step click",
        'POST /env/step {"type": "click", "selector": "a"} on /pages/1',
        'click("a") on /pages/1, until /pages/2 has loaded',
    ),
    ("scrape", "POST /env/scrape {session_id} (markdown of /report)", "page.content()"),
    (
        "goto+scrape",
        "POST /env/scrape {session_id, url: /report} (markdown)",
        "goto(/report) + content()",
    ),
    ("screenshot png", "GET /session/<id>/screenshot (of /report)", "page.screenshot()"),
    (
        "screenshot jpeg",
        "GET /session/<id>/screenshot?format=jpeg (quality 80)",
        'page.screenshot(type="jpeg", quality=80)',
    ),
    (
        "screenshot webp",
        "GET /session/<id>/screenshot?format=webp (quality 80)",
        "CDP Page.captureScreenshot webp (Playwright has no WebP)",
    ),
    ("close", "POST /session/close {session_id}", "context.close()"),
    ("status read", "GET /session/<id> (HTTP + auth + loop hop, no Chromium)", "-"),
)


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ numbers


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of a non-empty list."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(samples: Sequence[float]) -> Json:
    if not samples:
        return {"n": 0}
    return {
        "n": len(samples),
        "p50_ms": percentile(samples, 50),
        "p95_ms": percentile(samples, 95),
        "p99_ms": percentile(samples, 99),
        "min_ms": min(samples),
        "max_ms": max(samples),
        "mean_ms": sum(samples) / len(samples),
    }


def ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or not theirs:
        return None
    return ours / theirs


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _check_png(png: bytes, where: str) -> None:
    if not png.startswith(PNG_MAGIC):
        raise BenchError(f"{where}: screenshot is not a PNG: starts {png[:16]!r}")


def _check_b64_png(shot: Any, where: str) -> None:
    if not isinstance(shot, str) or not shot:
        raise BenchError(f"{where}: asked for a screenshot, got {_short(shot)}")
    try:
        _check_png(base64.b64decode(shot, validate=True), where)
    except binascii.Error as exc:
        raise BenchError(f"{where}: screenshot is not base64: {exc}") from None


# ----------------------------------------------------------------- progress


class Progress:
    """A one-line progress bar on stderr; a start and an end line when stderr is no TTY."""

    WIDTH = 30

    def __init__(self, label: str, total: float, unit: str = "") -> None:
        self.label, self.total, self.unit = label, total, unit
        self.done = 0.0
        self.tty = sys.stderr.isatty()
        self.began = time.perf_counter()
        self._drawn = 0.0
        if self.tty:
            self._draw()
        else:
            log(f"{label} …")

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        elapsed = time.perf_counter() - self.began
        status = "done" if kind is None else "stopped"
        if self.tty:
            self._draw()
            sys.stderr.write(f" {status} in {elapsed:.1f} s\n")
            sys.stderr.flush()
        else:
            log(f"{self.label}: {status} in {elapsed:.1f} s")

    def advance(self, step: float = 1.0) -> None:
        self.set(self.done + step)

    def set(self, done: float) -> None:
        self.done = done
        now = time.perf_counter()
        if self.tty and (now - self._drawn >= 0.1 or done >= self.total):
            self._draw()

    def _draw(self) -> None:
        self._drawn = time.perf_counter()
        frac = min(1.0, self.done / self.total) if self.total > 0 else 1.0
        filled = int(frac * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        count = f"{self.done:.0f}/{self.total:.0f}{self.unit}"
        sys.stderr.write(f"\r\x1b[Kbench: {self.label} [{bar}] {count}")
        sys.stderr.flush()


def sleep_with_bar(label: str, seconds: float) -> None:
    with Progress(label, seconds, " s") as bar:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(0.5, left))
            bar.set(seconds - max(0.0, end - time.monotonic()))


# --------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Plan:
    """Everything both sides need to run the same work."""

    repeats: int
    warmup: int
    pause_ms: int
    duration_s: float
    clients: tuple[int, ...]
    scale_n: tuple[int, ...]  # empty: no scale section
    reaper_sessions: int  # 0: no reaper section
    warm_pool: int | None
    site: str = ""
    cdp: bool = False  # only the CDP section
    egress: bool = True  # section 5: the egress proxy's cost
    egress_only: bool = False  # only section 5 (no raw worker, no sections 1-4)

    @property
    def pause_s(self) -> float:
        return self.pause_ms / 1000.0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Plan:
        data = json.loads(text)
        data["clients"], data["scale_n"] = tuple(data["clients"]), tuple(data["scale_n"])
        return cls(**data)

    def worker_budget_s(self) -> float:
        """A generous bound on the raw worker's run time."""
        latency = len(LATENCY_ROWS) * (self.warmup + self.repeats) * (self.pause_s + 1.0)
        throughput = len(self.clients) * (self.duration_s + 15.0)
        scale = max(self.scale_n, default=0) * 0.5
        scale += len(self.scale_n) * (SCALE_STARTS * (self.pause_s + 1.0) + 20.0)
        return 60.0 + latency + throughput + scale


# ---------------------------------------------------------- process hygiene


Json = dict[str, Any]


class BenchError(Exception):
    """A step of the bench did not do what it should: the message says what came back."""


FAILURES = (BenchError, SessionsError, ServerProcessError)
"""What a bench step may raise: its own checks, the server's answers, a server not coming up."""


def _short(value: Any, limit: int = 500) -> str:
    """``value`` as text, cut to ``limit`` characters for an error message."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"


def stop_process(proc: ServerProcess, name: str) -> list[str]:
    """SIGTERM, wait up to TERM_GRACE_S, else SIGKILL; then make sure its children ended."""
    killed = proc.stop(timeout=TERM_GRACE_S)
    if killed:
        log(f"{name}: killed leftover processes after exit: {', '.join(killed)}")
    return killed


# ------------------------------------------------------------------- memory


def _is_chromium(proc: psutil.Process) -> bool:
    return "chrom" in proc.name().lower() or "chrom" in " ".join(proc.cmdline()[:1]).lower()


def _pss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def chromium_tree(root: int) -> Json:
    """PSS (kB) summed over the Chromium processes below ``root``, and how many there are."""
    total = count = 0
    for proc in psutil.Process(root).children(recursive=True):
        try:
            if _is_chromium(proc):
                total += _pss_kb(proc.pid)
                count += 1
        except (psutil.Error, OSError):
            continue  # it ended while we looked
    return {"pss_kb": total, "processes": count}


def other_load() -> Json:
    """Load average and Chromium processes on the machine that this bench did not start.

    Called when none of ours runs (before the first launch, after the last stop), so every
    Chromium found belongs to someone else and competes for the same cores.
    """
    count = 0
    for proc in psutil.process_iter():
        with suppress(psutil.Error):
            count += _is_chromium(proc) and proc.status() != psutil.STATUS_ZOMBIE
    return {"loadavg_1m": os.getloadavg()[0], "other_chromium_processes": count}


def load_line(when: str, load: Json) -> str:
    line = (
        f"machine load {when}: loadavg 1m {load['loadavg_1m']:.2f}, "
        f"{load['other_chromium_processes']} Chromium processes not started by this bench"
    )
    if load["other_chromium_processes"]:
        line += " (WARNING: other work competes for the cores; numbers are disturbed)"
    return line


def per_session_mib(tree: Json, base: Json, n: int) -> float:
    return float(tree["pss_kb"] - base["pss_kb"]) / 1024.0 / n


# ------------------------------------------------------------------ server


def _server_env(
    token: str, max_sessions: int, warm_pool: int | None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    # Inherited SESSIONS_* settings (extra browser flags, viewport …) would make the two sides
    # differ; only the browser path is kept, and both sides honour it through find_browser().
    env = server_env(
        token,
        SESSIONS_MAX_SESSIONS=str(max_sessions),
        SESSIONS_REAPER_INTERVAL_SECONDS=str(REAPER_INTERVAL_S),
    )
    if warm_pool is not None:
        env["SESSIONS_WARM_POOL"] = str(warm_pool)
    env.update(extra or {})
    return env


@dataclass
class Server:
    """What a running server exposes to the benchmark."""

    base: str
    token: str
    pid: int
    health: Json = field(default_factory=dict)
    log_text: str = ""
    leftovers: list[str] = field(default_factory=list)
    exit_code: int | None = None

    def client(self) -> Client:
        return Client(self.base, self.token, REQUEST_TIMEOUT_S)


@contextmanager
def run_server(
    max_sessions: int, warm_pool: int | None, extra_env: dict[str, str] | None = None
) -> Iterator[Server]:
    """``python -m flask_sessions`` on a free port, healthy; stopped (SIGTERM) on exit."""
    token = secrets.token_urlsafe(24)
    env = _server_env(token, max_sessions, warm_pool, extra_env)
    # its own process group: Ctrl-C here does not reach it before we SIGTERM it
    proc = serve_process(env, cwd=_REPO_ROOT, new_session=True, ready=False)
    server = Server(proc.base, token, proc.pid)
    log(f"server: pid {proc.pid} on {proc.base}")
    try:
        started = time.perf_counter()
        server.health = proc.wait_ready(timeout=HEALTH_TIMEOUT_S)
        log(f"server: healthy after {_ms(started):.0f} ms: {server.health}")
        yield server
    finally:
        server.leftovers = stop_process(proc, "server")
        server.exit_code = proc.proc.returncode
        server.log_text = "".join(proc.stdout) + "".join(proc.stderr)
        log(f"server: stopped (exit {server.exit_code})")


class Client:
    """flask_sessions.client for the bench: JSON answers, and checks of what start and close
    answer. No retries: a refusal must show as an error, not as a slow sample."""

    def __init__(self, base: str, token: str, timeout: float) -> None:
        self.api = SessionsClient(base, token, timeout=timeout, retries=Retries(max_retries=0))
        self.base = base
        self.timeout = timeout
        self.http = self.api.http

    def start(self, body: Json) -> Json:
        fields: StartArgs = body  # type: ignore[assignment]
        answer = self.api.start(**fields).model_dump(mode="json")
        if answer["status"] != "active":
            raise BenchError(f"start did not give an active session: {_short(answer)}")
        if body.get("screenshot"):
            _check_b64_png(answer.get("screenshot"), "start")
        elif answer.get("screenshot") is not None:
            raise BenchError("start without screenshot gave one")
        return answer

    def start_id(self, body: Json) -> str:
        session_id: str = self.start(body)["session_id"]
        return session_id

    def delete(self, session_id: str) -> None:
        closed = self.api.close(session_id)
        if closed.status != "closed":
            raise BenchError(f"close {session_id}: {_short(closed)}")

    def get(self, session_id: str) -> Json:
        return self.api.get(session_id).model_dump(mode="json")

    def close(self) -> None:
        """Close the HTTP connections."""
        self.api.close_client()


# ------------------------------------------------------------ latency engine


def _nothing() -> None:
    return None


def _ignore(_: Any) -> None:
    return None


async def _anothing() -> None:
    return None


async def _aignore(_: Any) -> None:
    return None


@dataclass(frozen=True)
class Op:
    """One operation: untimed ``setup()`` → pause → timed ``timed(state)`` → ``teardown``."""

    name: str
    timed: Callable[[Any], Any]
    setup: Callable[[], Any] = _nothing
    teardown: Callable[[Any], None] = _ignore


@dataclass(frozen=True)
class AsyncOp:
    """The raw worker's :class:`Op`: the same steps as coroutines."""

    name: str
    timed: Callable[[Any], Awaitable[Any]]
    setup: Callable[[], Awaitable[Any]] = _anothing
    teardown: Callable[[Any], Awaitable[None]] = _aignore


def time_op(op: Op, repeats: int, warmup: int, pause_s: float, label: str) -> list[float]:
    samples: list[float] = []
    with Progress(f"{label}: {op.name}", warmup + repeats) as bar:
        for i in range(warmup + repeats):
            state = op.setup()
            time.sleep(pause_s)
            t0 = time.perf_counter()
            result = op.timed(state)
            elapsed = _ms(t0)
            op.teardown(result)
            if i >= warmup:
                samples.append(elapsed)
            bar.advance()
    return samples


async def time_async_op(
    op: AsyncOp, repeats: int, warmup: int, pause_s: float, label: str
) -> list[float]:
    samples: list[float] = []
    with Progress(f"{label}: {op.name}", warmup + repeats) as bar:
        for i in range(warmup + repeats):
            state = await op.setup()
            await asyncio.sleep(pause_s)
            t0 = time.perf_counter()
            result = await op.timed(state)
            elapsed = _ms(t0)
            await op.teardown(result)
            if i >= warmup:
                samples.append(elapsed)
            bar.advance()
    return samples


# -------------------------------------------------------- flask_sessions ops


class ServerOps:
    """The latency operations over HTTP, on one client and one shared session."""

    def __init__(self, client: Client, site: str) -> None:
        self.client = client
        self.site = site
        self._shared: str | None = None

    @property
    def shared(self) -> str:
        if self._shared is None:
            self._shared = self.client.start_id({"keep_alive": True})
        return self._shared

    def release(self) -> None:
        if self._shared is not None:
            self.client.delete(self._shared)
            self._shared = None

    def observe(self, path: str, screenshot: bool = False) -> Observation:
        url = self.site + path
        observation = self.client.api.observe(self.shared, url=url, screenshot=screenshot)
        seen = observation.observation
        if seen.error or not seen.url.endswith(path):
            raise BenchError(f"observe {path}: {_short(seen)}")
        if screenshot:
            _check_b64_png(seen.screenshot, "observe")
        return seen

    def step_click(self) -> None:
        answer = self.client.api.step(self.shared, type="click", selector="a")
        if not answer.success or not answer.observation.url.endswith("/pages/2"):
            raise BenchError(f"step click on /pages/1: {_short(answer)}")

    def scrape(self, path: str | None = None) -> None:
        url = None if path is None else self.site + path
        answer = self.client.api.scrape(self.shared, url=url)
        if not answer.success or "Quarterly report" not in answer.content:
            raise BenchError(f"scrape of /report: {_short(answer)}")

    def read(self) -> None:
        self.client.api.get(self.shared)

    def shot_op(self, fmt: ImageFormat) -> Op:
        return Op(f"screenshot {fmt}", lambda _: self.screenshot(fmt))

    def screenshot(self, fmt: ImageFormat) -> None:
        shot = self.client.api.screenshot(self.shared, format=fmt)
        if shot.format != fmt or not shot.data.startswith(IMAGE_MAGIC[fmt]):
            raise BenchError(f"screenshot {fmt}: {shot.media_type} {shot.data[:16]!r}")

    def start_op(self, name: str = "start", body: Json | None = None) -> Op:
        payload = body or {}
        return Op(name, lambda _: self.client.start_id(payload), teardown=self.client.delete)

    def ops(self) -> list[Op]:
        return [
            self.start_op(),
            self.start_op("start+screenshot", {"screenshot": True}),
            Op("observe", lambda _: self.observe("/report")),
            Op("observe+screenshot", lambda _: self.observe("/report", screenshot=True)),
            Op("step click", lambda _: self.step_click(), lambda: self.observe("/pages/1")),
            Op("scrape", lambda _: self.scrape(), lambda: self.observe("/report")),
            Op("goto+scrape", lambda _: self.scrape("/report")),
            *(self.shot_op(fmt) for fmt in SHOT_FORMATS),
            Op("close", self.client.delete, lambda: self.client.start_id({})),
            Op("status read", lambda _: self.read()),
        ]


def server_latency(server: Server, plan: Plan) -> dict[str, list[float]]:
    client = server.client()
    ops = ServerOps(client, plan.site)
    try:
        log(f"flask_sessions: shared session {ops.shared} for observe, step and scrape")
        return {
            op.name: time_op(op, plan.repeats, plan.warmup, plan.pause_s, "flask_sessions")
            for op in ops.ops()
        }
    finally:
        with suppress(*FAILURES):
            ops.release()
        client.close()


# ----------------------------------------------------------------- throughput


@dataclass
class LoopStats:
    """What the clients of one throughput phase did.

    Every operation started before the phase's end counts once it completes, and the rate
    divides by the time from the first client's start to the last completion: dropping the
    operations in flight at the end would under-count by up to one per client.
    """

    count: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    first_start: float = math.inf
    last_done: float = -math.inf

    def begin(self) -> float:
        """Mark a client's start; returns its deadline base (``perf_counter``)."""
        now = time.perf_counter()
        with self.lock:
            self.first_start = min(self.first_start, now)
        return now

    def ok(self, started: float) -> None:
        done = time.perf_counter()
        with self.lock:
            self.count += 1
            self.latencies_ms.append((done - started) * 1000.0)
            self.last_done = max(self.last_done, done)

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)

    def result(self, clients: int, duration_s: float) -> Json:
        distinct = list(dict.fromkeys(self.errors))
        window = self.last_done - self.first_start if self.count else duration_s
        return {
            "clients": clients,
            "duration_s": duration_s,
            "window_s": window,
            "completed": self.count,
            "per_s": self.count / window,
            "latency": summary(self.latencies_ms),
            "errors": len(self.errors),
            "error_samples": distinct[:5],
        }


@dataclass(frozen=True)
class Workload:
    """A throughput loop: ``counted(state)`` is what is counted, ``after(result)`` untimed."""

    name: str
    counted: Callable[[Client, Any], Any]
    after: Callable[[Client, Any], None] = lambda client, result: None
    setup: Callable[[Client], Any] = lambda client: None
    teardown: Callable[[Client, Any], None] = lambda client, state: None


def _one_loop(client: Client, wl: Workload, state: Any, duration: float, stats: LoopStats) -> None:
    deadline = stats.begin() + duration
    while (t0 := time.perf_counter()) < deadline:
        try:
            result = wl.counted(client, state)
            stats.ok(t0)
            wl.after(client, result)
        except FAILURES as exc:
            stats.error(str(exc))
            time.sleep(0.05)  # a server that fails fast must not turn this into a spin


def _client_thread(
    server: Server, wl: Workload, barrier: threading.Barrier, duration: float, stats: LoopStats
) -> None:
    client = server.client()
    try:
        try:
            state = wl.setup(client)
            barrier.wait()
        except (*FAILURES, threading.BrokenBarrierError) as exc:
            barrier.abort()
            stats.error(f"setup: {exc}")
            return
        _one_loop(client, wl, state, duration, stats)
        try:
            wl.teardown(client, state)
        except FAILURES as exc:
            stats.error(f"teardown: {exc}")
    finally:
        client.close()


def run_workload(server: Server, wl: Workload, clients: int, duration: float) -> Json:
    stats = LoopStats()
    barrier = threading.Barrier(clients, timeout=REQUEST_TIMEOUT_S * 2)
    threads = [
        threading.Thread(
            target=_client_thread, args=(server, wl, barrier, duration, stats), daemon=True
        )
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    with Progress(f"flask_sessions: {wl.name}, {clients} clients", duration, " s") as bar:
        began = time.monotonic()
        while any(t.is_alive() for t in threads):
            time.sleep(0.2)
            bar.set(min(duration, time.monotonic() - began))
    return stats.result(clients, duration)


def _own_session(client: Client) -> str:
    return client.start_id({"keep_alive": True})


def server_workloads(site: str) -> list[Workload]:
    def observe(client: Client, session_id: str) -> None:
        observation = client.api.observe(session_id, url=site + "/report").observation
        if observation.error:
            raise BenchError(f"observe: {observation.error}")

    return [
        Workload("starts/s", lambda client, _: client.start_id({}), after=Client.delete),
        Workload("observe/s", observe, setup=_own_session, teardown=Client.delete),
    ]


def server_throughput(server: Server, plan: Plan) -> dict[str, list[Json]]:
    return {
        wl.name: [run_workload(server, wl, n, plan.duration_s) for n in plan.clients]
        for wl in server_workloads(plan.site)
    }


# ---------------------------------------------------------------- fan-out


def fan_out(
    server: Server, items: Sequence[T], fn: Callable[[Client, T], R], label: str
) -> list[R]:
    """``fn(client, item)`` for every item over FAN_OUT_CLIENTS threads; fails on an error."""
    todo: queue.SimpleQueue[T] = queue.SimpleQueue()
    for item in items:
        todo.put(item)
    results: list[R] = []
    errors: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        client = server.client()
        try:
            while not errors:
                try:
                    item = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    out = fn(client, item)
                except FAILURES as exc:
                    with lock:
                        errors.append(str(exc))
                    return
                with lock:
                    results.append(out)
        finally:
            client.close()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(FAN_OUT_CLIENTS)]
    for thread in threads:
        thread.start()
    with Progress(label, len(items)) as bar:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
                bar.set(len(results))
        bar.set(len(results))
    if errors:
        raise BenchError(f"{label}: {errors[0]} ({len(results)} of {len(items)} done)")
    return results


# ------------------------------------------------------------------- scale


def settled_tree(root: int) -> Json:
    time.sleep(SETTLE_S)
    return chromium_tree(root)


def drained_tree(root: int, base: Json) -> Json:
    """The tree once closed contexts' renderers have gone (they exit asynchronously).

    Waits (at most DRAIN_BOUND_S) until there are no more Chromium processes than in
    ``base``, says how long that took, then lets memory settle before reading PSS.
    """
    began = time.monotonic()
    while (procs := _chromium_count(root)) > base["processes"]:
        if time.monotonic() - began > DRAIN_BOUND_S:
            break
        time.sleep(0.5)
    drained_s = round(time.monotonic() - began, 1)
    return {**settled_tree(root), "drained": procs <= base["processes"], "drain_s": drained_s}


def _chromium_count(root: int) -> int:
    count = 0
    for proc in psutil.Process(root).children(recursive=True):
        with suppress(psutil.Error):
            count += _is_chromium(proc)
    return count


def _scale_row(n: int, tree: Json, base: Json, starts: list[float]) -> Json:
    return {
        "n": n,
        **tree,
        "pss_per_session_mib": per_session_mib(tree, base, n),
        "start": summary(starts),
    }


def server_scale(server: Server, plan: Plan) -> Json:
    """N idle sessions (cumulative): PSS per session and start p50 at each N."""
    base = settled_tree(server.pid)
    open_ids: list[str] = []
    rows = []
    client = server.client()
    try:
        for n in plan.scale_n:
            more = range(n - len(open_ids))
            open_ids += fan_out(
                server, more, lambda c, _: c.start_id({"keep_alive": True}), f"scale: open {n}"
            )
            tree = settled_tree(server.pid)
            op = ServerOps(client, plan.site).start_op()
            starts = time_op(op, SCALE_STARTS, 0, plan.pause_s, f"scale {n}")
            rows.append(_scale_row(n, tree, base, starts))
        fan_out(server, open_ids, Client.delete, "scale: close all")
        after = drained_tree(server.pid, base)
    finally:
        client.close()
    return {"baseline": base, "rows": rows, "after_close": after}


# ------------------------------------------------------------------- reaper


def _deadline(record: Json) -> datetime:
    touched = datetime.fromisoformat(record["last_accessed_at"])
    return touched + timedelta(minutes=record["timeout_minutes"])


def _lag_ms(record: Json) -> float:
    closed = datetime.fromisoformat(record["closed_at"])
    return (closed - _deadline(record)).total_seconds() * 1000.0


def _poll_timed_out(client: Client, ids: set[str], give_up: float) -> dict[str, Json]:
    found: dict[str, Json] = {}
    with Progress("reaper: reaped", len(ids)) as bar:
        while True:
            listed = client.api.list("timed_out")
            found.update(
                {s.session_id: s.model_dump(mode="json") for s in listed if s.session_id in ids}
            )
            bar.set(len(found))
            if len(found) == len(ids) or time.monotonic() > give_up:
                return found
            time.sleep(1.0)


def _status_or_error(client: Client, session_id: str) -> Json | str:
    try:
        return client.get(session_id)
    except FAILURES as exc:
        return str(exc)


def reaper_lag(server: Server, count: int) -> Json:
    began = time.monotonic()
    body = {"session_timeout_minutes": REAPER_TIMEOUT_MIN}
    records = fan_out(
        server, range(count), lambda c, _: c.start(body), f"reaper: start {count} sessions"
    )
    ids = {r["session_id"] for r in records}
    latest = max(_deadline(r) for r in records)
    wait_s = (latest - datetime.now(UTC)).total_seconds() + REAPER_MARGIN_S
    sleep_with_bar("reaper: wait past the last deadline", max(0.0, wait_s))
    client = server.client()
    try:
        found = _poll_timed_out(client, ids, began + REAPER_BOUND_S)
        missing = sorted(ids - set(found))
        missing_status = [_status_or_error(client, sid) for sid in missing[:5]]
    finally:
        client.close()
    lags = [_lag_ms(r) for r in found.values()]
    return {
        "sessions": count,
        "reaped": len(found),
        "not_reaped": len(missing),
        "not_reaped_samples": [_short(r, 300) for r in missing_status],
        "interval_s": REAPER_INTERVAL_S,
        "lag": summary(lags),
        "p99_over_interval": (percentile(lags, 99) / (REAPER_INTERVAL_S * 1000) if lags else None),
    }


# ------------------------------------------------------------ raw Playwright


async def _open(browser: Browser) -> BrowserContext:
    context = await browser.new_context(viewport=VIEWPORT)
    await context.new_page()
    return context


async def _close(context: BrowserContext) -> None:
    await context.close()


class RawOps:
    """The raw page work of each latency row, on one browser and one shared page."""

    def __init__(self, browser: Browser, shared: BrowserContext, site: str) -> None:
        self.browser = browser
        self.page = shared.pages[0]
        self.site = site
        self._cdp: CDPSession | None = None

    async def start(self, screenshot: bool) -> BrowserContext:
        context = await _open(self.browser)
        if screenshot:
            _check_png(await context.pages[0].screenshot(type="png"), "raw start")
        return context

    async def goto(self, path: str) -> None:
        await self.page.goto(self.site + path, wait_until="load")

    async def observe(self, screenshot: bool) -> None:
        await self.goto("/report")
        if "Quarterly report" not in await self.page.content():
            raise BenchError(f"raw observe: /report not shown at {self.page.url}")
        if screenshot:
            _check_png(await self.page.screenshot(type="png"), "raw observe")

    async def click(self) -> None:
        async with self.page.expect_navigation(wait_until="load"):
            await self.page.click("a")
        if not self.page.url.endswith("/pages/2"):
            raise BenchError(f"raw click: at {self.page.url}, not /pages/2")

    async def content(self) -> None:
        await self.page.content()

    def shot_op(self, fmt: str) -> AsyncOp:
        return AsyncOp(f"screenshot {fmt}", lambda _: self.screenshot(fmt))

    async def screenshot(self, fmt: str) -> None:
        if fmt == "webp":  # Playwright has no WebP: its CDP session, as a user would
            if self._cdp is None:
                self._cdp = await self.page.context.new_cdp_session(self.page)
            answer = await self._cdp.send(
                "Page.captureScreenshot", {"format": "webp", "quality": 80}
            )
            data = base64.b64decode(answer["data"])
        elif fmt == "jpeg":
            data = await self.page.screenshot(type="jpeg", quality=80)
        else:
            data = await self.page.screenshot(type="png")
        if not data.startswith(IMAGE_MAGIC[fmt]):
            raise BenchError(f"raw screenshot {fmt}: not a {fmt}: {data[:16]!r}")

    def ops(self) -> list[AsyncOp]:
        return [
            AsyncOp("start", lambda _: self.start(False), teardown=_close),
            AsyncOp("start+screenshot", lambda _: self.start(True), teardown=_close),
            AsyncOp("observe", lambda _: self.observe(False)),
            AsyncOp("observe+screenshot", lambda _: self.observe(True)),
            AsyncOp("step click", lambda _: self.click(), lambda: self.goto("/pages/1")),
            AsyncOp("scrape", lambda _: self.content(), lambda: self.goto("/report")),
            AsyncOp("goto+scrape", lambda _: self.observe(False)),
            *(self.shot_op(fmt) for fmt in SHOT_FORMATS),
            AsyncOp("close", _close, lambda: _open(self.browser)),
        ]


async def raw_latency(browser: Browser, plan: Plan) -> dict[str, list[float]]:
    shared = await _open(browser)
    try:
        ops = RawOps(browser, shared, plan.site).ops()
        return {
            op.name: await time_async_op(op, plan.repeats, plan.warmup, plan.pause_s, "raw")
            for op in ops
        }
    finally:
        await shared.close()


async def _raw_start_loop(browser: Browser, duration: float, stats: LoopStats) -> None:
    deadline = stats.begin() + duration
    while (t0 := time.perf_counter()) < deadline:
        context = await _open(browser)
        stats.ok(t0)
        await context.close()


async def _raw_start_phase(browser: Browser, clients: int, duration: float) -> Json:
    stats = LoopStats()
    loops = asyncio.gather(*(_raw_start_loop(browser, duration, stats) for _ in range(clients)))
    try:
        with Progress(f"raw: starts/s, {clients} tasks", duration, " s") as bar:
            began = time.monotonic()
            while not loops.done():
                await asyncio.wait([loops], timeout=0.2)
                bar.set(min(duration, time.monotonic() - began))
            await loops
    finally:
        if not loops.done():  # we were cancelled: stop the loops before Chromium goes
            loops.cancel()
            await asyncio.gather(loops, return_exceptions=True)
    return stats.result(clients, duration)


async def raw_throughput(browser: Browser, plan: Plan) -> dict[str, list[Json]]:
    return {"starts/s": [await _raw_start_phase(browser, n, plan.duration_s) for n in plan.clients]}


async def _gather_batched(
    items: Sequence[T], fn: Callable[[T], Awaitable[R]], label: str
) -> list[R]:
    out: list[R] = []
    with Progress(label, len(items)) as bar:
        for i in range(0, len(items), FAN_OUT_CLIENTS):
            out += await asyncio.gather(*(fn(x) for x in items[i : i + FAN_OUT_CLIENTS]))
            bar.set(len(out))
    return out


async def raw_scale(browser: Browser, plan: Plan) -> Json:
    await asyncio.sleep(SETTLE_S)
    base = chromium_tree(os.getpid())
    contexts: list[BrowserContext] = []
    rows = []
    start_op = AsyncOp("start", lambda _: _open(browser), teardown=_close)
    try:
        for n in plan.scale_n:
            more = range(n - len(contexts))
            contexts += await _gather_batched(more, lambda _: _open(browser), f"raw: open {n}")
            await asyncio.sleep(SETTLE_S)
            tree = chromium_tree(os.getpid())
            starts = await time_async_op(start_op, SCALE_STARTS, 0, plan.pause_s, f"raw {n}")
            rows.append(_scale_row(n, tree, base, starts))
        closing, contexts = contexts, []
        await _gather_batched(closing, _close, "raw: close all")
        after = await asyncio.to_thread(drained_tree, os.getpid(), base)
    finally:
        await _gather_batched(contexts, _close, "raw: close the rest")
    return {"baseline": base, "rows": rows, "after_close": after}


async def raw_bench(plan: Plan) -> Json:
    """The baseline: the same Chromium and flags, driven directly with the async API."""
    choice = find_browser()
    # The server's Chromium listens on a debugging port (SESSIONS_CDP, on by default), which
    # costs Chromium about 10 ms of CPU per context (measured); raw gets one too, so both
    # sides run the same flags. `--remote-debugging-port=0`: any free port.
    args = [*launch_args(), "--remote-debugging-port=0"]
    async with async_playwright() as pw:
        t0 = time.perf_counter()
        browser = await pw.chromium.launch(
            executable_path=choice.executable, args=args, headless=True
        )
        launch_ms = _ms(t0)
        try:
            result: Json = {
                "executable": choice.executable,
                "source": choice.source,
                "args": args,
                "chromium_version": browser.version,
                "launch_ms": launch_ms,
                "latency_ms": await raw_latency(browser, plan),
                "throughput": await raw_throughput(browser, plan),
            }
            if plan.scale_n:
                result["scale"] = await raw_scale(browser, plan)
        finally:
            await browser.close()
    return result


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


async def _cancellable(plan: Plan) -> Json:
    """``raw_bench``, cancelled by SIGTERM: its ``finally`` closes Chromium on a live loop."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await raw_bench(plan)


def raw_worker_main(plan_json: str) -> int:
    """``--raw-worker PLAN``: run the baseline, print its JSON as the last stdout line."""
    try:
        result = asyncio.run(_cancellable(Plan.from_json(plan_json)))
    except asyncio.CancelledError:
        log("raw worker: stopped by SIGTERM; Chromium closed")
        return 128 + signal.SIGTERM
    print(json.dumps(result), flush=True)
    return 0


def run_raw_worker(plan: Plan) -> Json:
    """``--raw-worker`` in a subprocess (progress on our stderr); its JSON parsed."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--raw-worker", plan.to_json()]
    budget = plan.worker_budget_s()
    worker = start_process(cmd, "", cwd=_REPO_ROOT, new_session=True, echo_stderr=True)
    log(f"raw Playwright: worker pid {worker.pid} (bound {budget:.0f} s)")
    try:
        deadline = time.monotonic() + budget
        while worker.proc.poll() is None:
            worker.remember_children()
            if time.monotonic() > deadline:
                raise BenchError(f"raw worker still running after {budget:.0f} s")
            time.sleep(0.2)
    finally:
        stop_process(worker, "raw worker")
    stdout = "".join(worker.stdout)
    if worker.proc.returncode != 0:
        code = worker.proc.returncode
        raise BenchError(f"raw worker exited with {code} (its stderr is above)")
    lines = stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1]) if lines else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise BenchError(f"raw worker printed no JSON: {_short(stdout)}")
    return data


# -------------------------------------------------------------------- report


def _cpu_model() -> str:
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    with suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    return None


def _chromium_version(executable: str) -> str | None:
    with suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, timeout=15, check=False
        ).stdout
        match = re.search(r"(\d+\.\d+\.\d+\.\d+)", out)
        return match.group(1) if match else None
    return None


def _git(*args: str) -> str:
    with suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(
            ["git", *args], cwd=_REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    return ""


def code_line() -> str:
    """Which server code is measured: the commit, and uncommitted files of the package."""
    head = _git("rev-parse", "--short", "HEAD") or "unknown"
    changed = [line[3:] for line in _git("status", "--porcelain", "flask_sessions").splitlines()]
    extra = f" + uncommitted: {', '.join(changed)}" if changed else " (clean)"
    return f"code: flask_sessions at git {head}{extra}"


def machine_info() -> Json:
    executable = find_browser().executable
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "chromium_executable": executable,
        "chromium_version": _chromium_version(executable),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
    }


def machine_line(m: Json) -> str:
    mem = f"{m['memory_gib']:.1f} GiB" if m["memory_gib"] else "unknown"
    return (
        f"machine: nproc {m['nproc']}, CPU {m['cpu_model']}, memory {mem}, "
        f"Chromium {m['chromium_version']} ({m['chromium_executable']}), "
        f"Python {m['python_version']}, {m['platform']}"
    )


def server_notes(log_text: str) -> list[str]:
    """Warnings, errors and tracebacks from the server's log, worth a look."""
    return [
        line.strip()
        for line in log_text.splitlines()
        if re.search(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback", line)
    ]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in (headers, *rows)) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "| " + " | ".join([cells[0].ljust(widths[0]), *rest]) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def _pcts(s: Json | None, keys: Sequence[str] = ("p50_ms", "p95_ms", "p99_ms")) -> str:
    if not s or not s.get("n"):
        return "-"
    return " / ".join(f"{s[k]:.1f}" for k in keys)


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _p50(s: Json | None) -> float | None:
    return s.get("p50_ms") if s else None


def latency_section(plan: Plan, ours: dict[str, Json], raw: dict[str, Json]) -> str:
    title = (
        f"1. Latency at light load: one client, a {plan.pause_ms} ms pause before each timed "
        f"operation (background work such as a warm-pool refill is not counted as contention); "
        f"{plan.repeats} timed repeats after {plan.warmup} warm-up"
    )
    headers = ("operation", "flask_sessions p50/p95/p99 ms", "raw p50/p95/p99 ms", "ratio p50")
    rows = [
        (name, _pcts(ours.get(name)), _pcts(raw.get(name)), _x(_p50_ratio(ours, raw, name)))
        for name, _, _ in LATENCY_ROWS
    ]
    legend = [f"  {name}: {http}  vs raw {work}" for name, http, work in LATENCY_ROWS]
    note = (
        "note: the server's step also observes the page afterwards (observe.js: actions and "
        "text of /pages/2) and its observe runs observe.js where raw only calls content(); "
        "scrape converts to Markdown; so those ratios include work raw does not do."
    )
    png = _p50(raw.get("screenshot png"))
    against_png = ", ".join(
        f"{fmt} {_x(ratio(_p50(ours.get(f'screenshot {fmt}')), png))}" for fmt in SHOT_FORMATS
    )
    shots = f"screenshots against raw page.screenshot() PNG (p50): {against_png}"
    return "\n".join([title, format_table(headers, rows), "compared:", *legend, note, shots])


def _p50_ratio(ours: dict[str, Json], raw: dict[str, Json], name: str) -> float | None:
    return ratio(_p50(ours.get(name)), _p50(raw.get(name)))


def throughput_section(plan: Plan, ours: dict[str, list[Json]], raw: dict[str, list[Json]]) -> str:
    title = (
        f"2. Throughput: {plan.duration_s:g} s per phase; each client a thread with its own "
        "HTTP session (raw: asyncio tasks in one process); starts/s = start then close in a loop, "
        "observe/s = each client observes /report on its own session; ops/s = operations "
        "started within the phase / time from the first start to the last completion"
    )
    headers = (
        "workload",
        "clients",
        "flask_sessions ops/s",
        "p50/p95 ms",
        "errors",
        "raw ops/s",
        "raw p50/p95 ms",
        "ratio ops/s",
    )
    rows = []
    for name, results in ours.items():
        theirs = {r["clients"]: r for r in raw.get(name, [])}
        for r in results:
            t = theirs.get(r["clients"])
            rows.append(
                (
                    name,
                    str(r["clients"]),
                    f"{r['per_s']:.1f}",
                    _pcts(r["latency"], ("p50_ms", "p95_ms")),
                    str(r["errors"]),
                    f"{t['per_s']:.1f}" if t else "-",
                    _pcts(t["latency"], ("p50_ms", "p95_ms")) if t else "-",
                    _x(ratio(r["per_s"], t["per_s"])) if t else "-",
                )
            )
    errors = [
        f"  errors ({r['clients']} clients, {name}): {e}"
        for name, results in ours.items()
        for r in results
        for e in r["error_samples"]
    ]
    return "\n".join([title, format_table(headers, rows), *errors])


def scale_section(ours: Json, raw: Json | None, start_at_1: float | None) -> str:
    title = (
        "3. Scale: N idle sessions open at once (cumulative); memory = PSS summed over the "
        "Chromium processes below the server (raw: below the worker) minus the baseline with 0 "
        f"sessions, divided by N; start p50 over {SCALE_STARTS} starts+closes on top of the N"
    )
    raw_rows = {r["n"]: r for r in (raw or {}).get("rows", [])}
    headers = (
        "N",
        "server MiB/session",
        "raw MiB/context",
        "Chromium procs",
        "start p50 ms",
        "vs p50 at 1",
        "raw start p50 ms",
    )
    rows = []
    for r in ours["rows"]:
        theirs = raw_rows.get(r["n"])
        rows.append(
            (
                str(r["n"]),
                f"{r['pss_per_session_mib']:.1f}",
                f"{theirs['pss_per_session_mib']:.1f}" if theirs else "-",
                str(r["processes"]),
                f"{r['start']['p50_ms']:.1f}",
                _x(ratio(r["start"]["p50_ms"], start_at_1)),
                f"{theirs['start']['p50_ms']:.1f}" if theirs else "-",
            )
        )
    lines = [
        "server " + _before_after(ours),
        "the server's 0-session baseline includes its warm-pool contexts, if any; 'vs p50 at 1' "
        "divides by the start p50 of section 1 (one client, no idle sessions)",
    ]
    if raw:
        lines.append("raw " + _before_after(raw))
    return "\n".join([title, format_table(headers, rows), *lines])


def _before_after(side: Json) -> str:
    base, after = side["baseline"], side["after_close"]
    return (
        f"Chromium with 0 sessions: {base['pss_kb'] / 1024:.0f} MiB PSS in {base['processes']} "
        f"processes; after closing all: {after['pss_kb'] / 1024:.0f} MiB in "
        f"{after['processes']} processes ({_drain_note(after)})"
    )


def _drain_note(after: Json) -> str:
    if not after["drained"]:
        return f"WARNING: still more processes than at 0 sessions after {after['drain_s']:g} s"
    return f"back to the baseline's count {after['drain_s']:g} s after the closes answered"


def reaper_section(r: Json) -> str:
    title = (
        f"4. Reaper lag: {r['sessions']} sessions with session_timeout_minutes "
        f"{REAPER_TIMEOUT_MIN}, idle until reaped; lag = closed_at - (last_accessed_at + "
        f"{REAPER_TIMEOUT_MIN} min), both server-side timestamps"
    )
    headers = ("sessions", "reaped", "interval s", "lag p50/p95/p99/max ms", "p99 / interval")
    lag = r["lag"]
    row = (
        str(r["sessions"]),
        str(r["reaped"]),
        f"{r['interval_s']:g}",
        _pcts(lag, ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
        _x(r["p99_over_interval"]),
    )
    lines = [title, format_table(headers, [row])]
    if r["not_reaped"]:
        lines.append(f"NOT reaped within {REAPER_BOUND_S:.0f} s: {r['not_reaped']} sessions")
        lines += [f"  {s}" for s in r["not_reaped_samples"]]
    return "\n".join(lines)


# ------------------------------------------------------------- egress cost

EGRESS_ROWS = (
    "start",
    "start+screenshot",
    "observe",
    "observe+screenshot",
    "step click",
    "scrape",
    "observe /gallery",
)
# A policy that blocks nothing (the allowed networks cover the always-blocked link-local
# ones) runs no proxy: Chromium connects directly, as before issue 8.
NO_PROXY_ENV = {"SESSIONS_ALLOWED_NETWORKS": "169.254.0.0/16,fe80::/10"}


def tree_cpu_s(root: int) -> float:
    """CPU seconds used so far by ``root`` and its descendants, reaped ones included."""
    total = 0.0
    with suppress(psutil.Error):
        parent = psutil.Process(root)
        for proc in [parent, *parent.children(recursive=True)]:
            with suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
    return total


def _time_once(op: Op, pause_s: float, pid: int) -> tuple[float, float]:
    """Wall ms of one timed run, and the CPU ms the server's process tree used for it."""
    state = op.setup()
    time.sleep(pause_s)
    cpu0 = tree_cpu_s(pid)
    t0 = time.perf_counter()
    result = op.timed(state)
    elapsed = _ms(t0)
    cpu = (tree_cpu_s(pid) - cpu0) * 1000.0
    op.teardown(result)
    return elapsed, cpu


def _gallery(ops: ServerOps) -> Callable[[Any], Any]:
    return lambda _: ops.observe("/gallery")


def egress_cost(plan: Plan) -> Json:
    """The egress proxy's cost: the same operations on a server with the default policy
    (proxy on) and one without a proxy, both running, each repeat alternating which goes
    first, so load from elsewhere on the machine hits both sides alike. Besides wall time,
    the CPU each server's process tree (Python + Chromium) used per operation, which other
    people's load on the machine hardly changes."""
    samples: dict[str, dict[str, list[float]]] = {"proxy": {}, "direct": {}}
    cpu: dict[str, dict[str, list[float]]] = {"proxy": {}, "direct": {}}
    with (
        run_server(50, plan.warm_pool) as proxied,
        run_server(50, plan.warm_pool, NO_PROXY_ENV) as direct,
    ):
        sides = {"proxy": ServerOps(proxied.client(), plan.site)}
        sides["direct"] = ServerOps(direct.client(), plan.site)
        pids = {"proxy": proxied.pid, "direct": direct.pid}
        try:
            ops = {side: {op.name: op for op in o.ops()} for side, o in sides.items()}
            for side, o in sides.items():  # a page with 20 uncached images: 21 requests
                ops[side]["observe /gallery"] = Op("observe /gallery", _gallery(o))
            for name in EGRESS_ROWS:
                with Progress(f"egress cost: {name}", plan.warmup + plan.repeats) as bar:
                    for i in range(plan.warmup + plan.repeats):
                        order = ("proxy", "direct") if i % 2 == 0 else ("direct", "proxy")
                        for side in order:
                            wall, used = _time_once(ops[side][name], plan.pause_s, pids[side])
                            if i >= plan.warmup:
                                samples[side].setdefault(name, []).append(wall)
                                cpu[side].setdefault(name, []).append(used)
                        bar.advance()
        finally:
            for o in sides.values():
                with suppress(*FAILURES):
                    o.release()
                o.client.close()
    logs = {"proxy": proxied.log_text, "direct": direct.log_text}
    checks = {
        "proxy": "egress proxy on 127.0.0.1" in logs["proxy"],
        "direct": "egress policy blocks nothing" in logs["direct"],
    }
    if not all(checks.values()):
        raise BenchError(f"egress cost: the servers did not run as intended: {checks}")
    paired = {
        name: percentile([a - b for a, b in zip(p, samples["direct"][name], strict=True)], 50)
        for name, p in samples["proxy"].items()
    }
    return {
        "proxy": _summaries(samples["proxy"]),
        "direct": _summaries(samples["direct"]),
        "paired_diff_p50_ms": paired,
        "cpu_ms_mean": {
            side: {name: sum(v) / len(v) for name, v in ops.items()} for side, ops in cpu.items()
        },
        "samples_ms": samples,
        "cpu_samples_ms": cpu,
        "direct_env": NO_PROXY_ENV,
    }


def egress_section(plan: Plan, result: Json) -> str:
    title = (
        "5. Egress policy cost: two servers at once, the default policy (every connection "
        "through the egress proxy) and one without a proxy (SESSIONS_ALLOWED_NETWORKS="
        f"{NO_PROXY_ENV['SESSIONS_ALLOWED_NETWORKS']}: nothing blocked); {plan.repeats} repeats "
        f"each after {plan.warmup} warm-up, alternating which side goes first"
    )
    headers = (
        "operation",
        "proxy p50/p95/p99 ms",
        "direct p50/p95/p99 ms",
        "ratio p50",
        "paired Δ p50 ms",
        "CPU ms/op proxy / direct",
    )
    cpu = result["cpu_ms_mean"]
    rows = [
        (
            name,
            _pcts(result["proxy"].get(name)),
            _pcts(result["direct"].get(name)),
            _x(_p50_ratio(result["proxy"], result["direct"], name)),
            f"{result['paired_diff_p50_ms'][name]:+.1f}",
            f"{cpu['proxy'][name]:.1f} / {cpu['direct'][name]:.1f}",
        )
        for name in EGRESS_ROWS
    ]
    note = (
        "paired Δ: median over repeats of (proxy - direct), the two runs of one repeat being "
        "back to back; CPU: mean user+system time of each server's process tree (Python and "
        "Chromium) during the timed call, which other load on the machine hardly changes"
    )
    return "\n".join([title, format_table(headers, rows), note])


def run_egress_phase(plan: Plan, report: Report) -> None:
    with report.phase("egress cost"):
        report.data["egress"] = egress_cost(plan)
    report.show(egress_section(plan, report.data["egress"]))


# ----------------------------------------------------------------------- run


class Report:
    """Everything measured so far; printed section by section, written as JSON at the end."""

    def __init__(self, plan: Plan, json_path: Path | None) -> None:
        self.json_path = json_path
        self.began = time.perf_counter()
        self.data: Json = {"plan": dataclasses.asdict(plan), "phase_seconds": {}}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.data["phase_seconds"][name] = round(time.perf_counter() - t0, 1)

    def show(self, text: str) -> None:
        print(text + "\n", flush=True)

    def finish(self, failure: str | None) -> None:
        self.data["total_seconds"] = round(time.perf_counter() - self.began, 1)
        self.data["failure"] = failure
        print(f"total bench time {self.data['total_seconds']:.1f} s", flush=True)
        if self.json_path is not None:
            self.json_path.write_text(json.dumps(self.data, indent=2) + "\n")
            log(f"wrote {self.json_path}")


def _summaries(times: dict[str, list[float]]) -> dict[str, Json]:
    return {name: summary(samples) for name, samples in times.items() if samples}


def run_server_phases(server: Server, plan: Plan, report: Report) -> None:
    raw: Json = report.data["raw"]
    with report.phase("server latency"):
        times = server_latency(server, plan)
    ours = _summaries(times)
    theirs = _summaries(raw["latency_ms"])
    report.data["latency"] = {"flask_sessions": ours, "raw_playwright": theirs}
    report.data["latency_samples_ms"] = {"flask_sessions": times, "raw": raw["latency_ms"]}
    report.show(latency_section(plan, ours, theirs))
    with report.phase("server throughput"):
        report.data["throughput"] = server_throughput(server, plan)
    report.show(throughput_section(plan, report.data["throughput"], raw["throughput"]))
    if plan.scale_n:
        with report.phase("server scale"):
            report.data["scale"] = server_scale(server, plan)
        at_1 = _p50(ours.get("start"))
        report.show(scale_section(report.data["scale"], raw.get("scale"), at_1))
    if plan.reaper_sessions:
        with report.phase("reaper lag"):
            report.data["reaper"] = reaper_lag(server, plan.reaper_sessions)
        report.show(reaper_section(report.data["reaper"]))
    client = server.client()
    try:
        report.data["server_health_end"] = client.api.health()
    finally:
        client.close()


def _footer(server: Server, report: Report) -> list[str]:
    raw: Json = report.data.get("raw", {})
    lines = [f"browser flags: {' '.join(raw.get('args', []))}"]
    match = re.search(r"launched .*\(Chromium ([^)]+)\)", server.log_text)
    if match and raw.get("chromium_version") and match.group(1) != raw["chromium_version"]:
        lines.append(f"Chromium differs: server {match.group(1)}, raw {raw['chromium_version']}")
    end = report.data.get("server_health_end")
    if end is not None:
        flag = "LEAK? " if end.get("active_sessions") else ""
        lines.append(f"{flag}server /healthz after the bench closed all its sessions: {end}")
    if server.exit_code != 0:
        lines.append(f"server exit code {server.exit_code} after SIGTERM")
    if server.leftovers:
        lines.append(f"processes left after the server exited: {', '.join(server.leftovers)}")
    notes = server_notes(server.log_text)
    report.data["server_notes"] = notes
    lines += [f"server log: {n}" for n in notes[:20]]
    if len(notes) > 20:
        lines.append(f"server log: … {len(notes) - 20} more warnings/errors (in the JSON)")
    return lines


def _run_server_side(plan: Plan, report: Report) -> None:
    max_sessions = max(700, max(plan.scale_n, default=0) + 200)
    server: Server | None = None
    try:
        with run_server(max_sessions, plan.warm_pool) as server:
            report.data["server_health_start"] = server.health
            print(f"server /healthz at start: {server.health}\n", flush=True)
            run_server_phases(server, plan, report)
    finally:
        if server is not None:  # stopped by now, so its whole log is there
            print("\n".join(_footer(server, report)), flush=True)


def run(plan: Plan, json_path: Path | None) -> int:
    report = Report(plan, json_path)
    failure: str | None = "interrupted"
    site, site_url = start_demo_site()
    plan = dataclasses.replace(plan, site=site_url)
    try:
        report.data["machine"] = machine = machine_info()
        print(machine_line(machine))
        report.data["code"] = code = code_line()
        print(code)
        report.data["load_at_start"] = load = other_load()
        print(load_line("at start", load))
        pool = "server default" if plan.warm_pool is None else str(plan.warm_pool)
        print(f"SESSIONS_WARM_POOL: {pool}; demo site {site_url}\n", flush=True)
        if plan.cdp:
            cdp_bench(plan, report)
        else:
            if not plan.egress_only:
                with report.phase("raw worker"):
                    report.data["raw"] = run_raw_worker(plan)
                _run_server_side(plan, report)
            if plan.egress or plan.egress_only:
                run_egress_phase(plan, report)
        failure = None
    except FAILURES as exc:
        failure = str(exc)
        print(f"FAILED: {exc}", file=sys.stderr)
    finally:
        site.shutdown()
        site.server_close()
        report.data["load_at_end"] = load = other_load()
        print(load_line("at end", load))
        report.finish(failure)
    return 1 if failure else 0


# -------------------------------------------------------------------- CDP (--cdp)

CDP_ATTACHES = 20  # timed connect_over_cdp → first page
CDP_EVALS = 300  # timed Runtime.evaluate('1') round trips
CDP_SESSIONS = 50  # sessions for the memory comparison


async def _attach_times(url: str, headers: dict[str, str], repeats: int) -> list[float]:
    """connect_over_cdp until ``contexts[0].pages[0]`` is there, then disconnect; ms each."""
    times = []
    async with async_playwright() as p:
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            browser = await p.chromium.connect_over_cdp(url, headers=headers)
            page = browser.contexts[0].pages[0]
            took = _ms(t0)
            if not page.url:
                raise BenchError("connect_over_cdp gave a page without a URL")
            await browser.close()
            if i:  # the first one warms the driver up
                times.append(took)
    return times


async def _eval_times(url: str, headers: dict[str, str], repeats: int) -> dict[str, list[float]]:
    """Runtime.evaluate('1') round trips: through Playwright's CDPSession, and a bare socket."""
    out: dict[str, list[float]] = {"playwright": [], "websocket": []}
    async with async_playwright() as p:
        browser = await p.chromium.connect_over_cdp(url, headers=headers)
        context = browser.contexts[0]
        cdp = await context.new_cdp_session(context.pages[0])
        for i in range(repeats + 10):
            t0 = time.perf_counter()
            await cdp.send("Runtime.evaluate", {"expression": "1"})
            if i >= 10:
                out["playwright"].append(_ms(t0))
        await browser.close()
    ws: ClientConnection = await ws_connect(
        url, additional_headers=headers, proxy=None, max_size=None, compression=None
    )
    try:
        next_id = 0

        async def call(method: str, params: Json, session: str | None = None) -> Json:
            nonlocal next_id
            next_id += 1
            message: Json = {"id": next_id, "method": method, "params": params}
            if session:
                message["sessionId"] = session
            await ws.send(json.dumps(message))
            while True:
                answer: Json = json.loads(await ws.recv())
                if answer.get("id") == next_id:
                    return answer

        targets = (await call("Target.getTargets", {}))["result"]["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        attached = await call(
            "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}
        )
        session = attached["result"]["sessionId"]
        for i in range(repeats + 10):
            t0 = time.perf_counter()
            await call("Runtime.evaluate", {"expression": "1"}, session)
            if i >= 10:
                out["websocket"].append(_ms(t0))
    finally:
        await ws.close()
    return out


@contextmanager
def raw_cdp_chromium() -> Iterator[tuple[str, int]]:
    """Chromium started by hand with ``--remote-debugging-port`` (one about:blank page)."""
    choice = find_browser()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-cdp-") as profile:
        cmd = [
            choice.executable,
            *launch_args(),
            "--headless",
            f"--remote-debugging-port={port}",
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        chromium = start_process(cmd, f"http://127.0.0.1:{port}")
        try:
            chromium.wait_ready("/json/version", HEALTH_TIMEOUT_S)
            yield chromium.base, chromium.pid
        finally:
            stop_process(chromium, "raw chromium")


def _tree_with_root(pid: int) -> Json:
    """PSS of ``pid`` itself (if Chromium) plus its Chromium descendants."""
    tree = chromium_tree(pid)
    with suppress(psutil.Error, OSError):
        if _is_chromium(psutil.Process(pid)):
            tree = {"pss_kb": tree["pss_kb"] + _pss_kb(pid), "processes": tree["processes"] + 1}
    return tree


def _server_pss_kb(pid: int) -> int:
    with suppress(OSError):
        return _pss_kb(pid)
    return 0


async def _hold_clients(
    urls: list[str], headers: dict[str, str], ready: Callable[[], None]
) -> None:
    async with async_playwright() as p:
        browsers = [await p.chromium.connect_over_cdp(url, headers=headers) for url in urls]
        for browser in browsers:
            await browser.contexts[0].pages[0].evaluate("1")
        await asyncio.to_thread(ready)
        for browser in browsers:
            await browser.close()


def cdp_bench(plan: Plan, report: Report) -> None:
    repeats = 5 if plan.repeats <= 5 else CDP_ATTACHES
    evals = 50 if plan.repeats <= 5 else CDP_EVALS
    n = 10 if plan.repeats <= 5 else CDP_SESSIONS
    raw: Json = {}
    with report.phase("raw cdp"), raw_cdp_chromium() as (endpoint, pid):
        time.sleep(SETTLE_S)
        raw["one_page_tree"] = _tree_with_root(pid)
        log("raw: attach")
        raw["attach_ms"] = asyncio.run(_attach_times(endpoint, {}, repeats))
        version = httpx.get(endpoint + "/json/version", timeout=5, trust_env=False).json()
        log("raw: Runtime.evaluate round trips")
        raw["eval_ms"] = asyncio.run(_eval_times(version["webSocketDebuggerUrl"], {}, evals))
    ours: Json = {}
    with report.phase("server cdp"), run_server(n + 10, 0) as server:
        client = server.client()
        headers = {"Authorization": f"Bearer {server.token}"}
        record = client.start({"url": plan.site + "/report"})
        log("server: attach")
        ours["attach_ms"] = asyncio.run(_attach_times(record["cdp_url"], headers, repeats))
        log("server: Runtime.evaluate round trips")
        ours["eval_ms"] = asyncio.run(_eval_times(record["cdp_url"], headers, evals))
        client.delete(record["session_id"])
        time.sleep(SETTLE_S * 2)
        base, base_py = chromium_tree(server.pid), _server_pss_kb(server.pid)
        log(f"server: {n} plain sessions")
        records = [client.start({}) for _ in range(n)]
        time.sleep(SETTLE_S)
        plain, plain_py = chromium_tree(server.pid), _server_pss_kb(server.pid)
        log(f"server: a Playwright client attached to each of the {n}")
        seen: Json = {}

        def measure() -> None:
            time.sleep(SETTLE_S)
            seen["tree"], seen["py"] = chromium_tree(server.pid), _server_pss_kb(server.pid)

        asyncio.run(_hold_clients([r["cdp_url"] for r in records], headers, measure))
        for r in records:
            client.delete(r["session_id"])
        ours["memory"] = {
            "n": n,
            "base": base,
            "plain": plain,
            "attached": seen["tree"],
            "server_py_pss_kb": {"base": base_py, "plain": plain_py, "attached": seen["py"]},
        }
    report.data["cdp"] = {"raw": raw, "flask_sessions": ours}
    report.show(cdp_section(raw, ours))


def cdp_section(raw: Json, ours: Json) -> str:
    def row(name: str, mine: list[float], theirs: list[float], goal: str) -> list[str]:
        a, b = summary(mine), summary(theirs)
        return [name, _pcts(a), _pcts(b), _x(ratio(_p50(a), _p50(b))), goal]

    lat = format_table(
        ["CDP", "proxy p50/p95/p99 ms", "raw p50/p95/p99 ms", "ratio p50", "goal"],
        [
            row("attach to first page", ours["attach_ms"], raw["attach_ms"], "≤ 1.5x"),
            row(
                "Runtime.evaluate (Playwright CDPSession)",
                ours["eval_ms"]["playwright"],
                raw["eval_ms"]["playwright"],
                "≤ 1.3x",
            ),
            row(
                "Runtime.evaluate (bare WebSocket)",
                ours["eval_ms"]["websocket"],
                raw["eval_ms"]["websocket"],
                "-",
            ),
        ],
    )
    mem = ours["memory"]
    n = mem["n"]
    plain = per_session_mib(mem["plain"], mem["base"], n)
    attached = per_session_mib(mem["attached"], mem["base"], n)
    py = mem["server_py_pss_kb"]
    py_plain = (py["plain"] - py["base"]) / 1024 / n
    py_attached = (py["attached"] - py["base"]) / 1024 / n
    one_browser = raw["one_page_tree"]["pss_kb"] / 1024
    memory = format_table(
        ["PSS per session", "Chromium MiB", "+ server process MiB", "total MiB", "ratio"],
        [
            [
                f"plain (N={n})",
                f"{plain:.1f}",
                f"{py_plain:.2f}",
                f"{plain + py_plain:.1f}",
                "1.00x",
            ],
            [
                f"CDP client attached (N={n})",
                f"{attached:.1f}",
                f"{py_attached:.2f}",
                f"{attached + py_attached:.1f}",
                _x(ratio(attached + py_attached, plain + py_plain)),
            ],
            [
                "a dedicated browser (raw Chromium, 1 page)",
                f"{one_browser:.1f}",
                "-",
                f"{one_browser:.1f}",
                _x(ratio(one_browser, plain + py_plain)),
            ],
        ],
    )
    return (
        "5. CDP: our per-session WebSocket (auth + allow-list proxy) beside Playwright's "
        "connect_over_cdp to a raw Chromium with --remote-debugging-port\n"
        + lat
        + f"\n\nMemory at N={n} sessions (goal: attached ≤ 1.2x plain; Chromium processes "
        f"{mem['plain']['processes']} plain, {mem['attached']['processes']} attached):\n" + memory
    )


def _positive(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value

    return parse


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def _n_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(
            "send comma-separated whole numbers, e.g. 50,200"
        ) from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError("send at least one number, each 1 or more")
    return values


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--repeats", type=_positive(1), help="timed repeats per operation (30)")
    p.add_argument("--warmup", type=_positive(0), help="discarded repeats first (3)")
    p.add_argument(
        "--pause-ms", type=_positive(0), default=100, help="pause before each timed op (100)"
    )
    p.add_argument("--duration", type=_seconds, help="seconds per throughput phase (5)")
    p.add_argument("--scale", action="store_true", help="add the scale section (N idle)")
    p.add_argument("--scale-n", type=_n_list, default=(50, 200, 500), help="N list (50,200,500)")
    p.add_argument("--warm-pool", type=_positive(0), help="SESSIONS_WARM_POOL for the server")
    p.add_argument("--quick", action="store_true", help="smoke run: 5 repeats, 2 s, no reaper")
    p.add_argument("--cdp", action="store_true", help="only the CDP section (see above)")
    p.add_argument("--json", type=Path, help="write every number here as JSON")
    p.add_argument(
        "--cluster", action="store_true", help="fronts and hosts beside embedded mode (Redis)"
    )
    p.add_argument(
        "--perception", action="store_true", help="only the perception section (issue 22)"
    )
    p.add_argument(
        "--options", action="store_true", help="per-session browser options (bench_options.py)"
    )
    p.add_argument(  # profiles (issue 18)
        "--profiles", action="store_true", help="only the profiles section (bench_profiles.py)"
    )
    p.add_argument(  # issue 21
        "--adapters", action="store_true", help="Notte's SDK and the MCP server beside our API"
    )
    p.add_argument(  # issue 20
        "--live", action="store_true", help="the live view and recordings (bench_live.py)"
    )
    p.add_argument("--no-egress", action="store_true", help="skip the egress cost section")
    # session files (issue 19)
    p.add_argument("--files", action="store_true", help="only session files: MB/s and PDFs")
    p.add_argument("--egress-only", action="store_true", help="run only the egress section")
    p.add_argument("--raw-worker", metavar="PLAN", help=argparse.SUPPRESS)
    return p


def plan_from_args(args: argparse.Namespace) -> Plan:
    base = QUICK if args.quick else FULL
    reaper = max(args.scale_n) if args.scale else DEFAULT_REAPER_SESSIONS
    return Plan(
        repeats=args.repeats or int(base["repeats"]),
        warmup=int(base["warmup"]) if args.warmup is None else args.warmup,
        pause_ms=args.pause_ms,
        duration_s=args.duration or base["duration"],
        clients=CONCURRENCY,
        scale_n=args.scale_n if args.scale else (),
        reaper_sessions=0 if args.quick else reaper,
        warm_pool=args.warm_pool,
        cdp=args.cdp,
        egress=not args.no_egress,
        egress_only=args.egress_only,
    )


def _stop_cleanly_on_signals() -> None:
    """Ctrl-C, SIGTERM and SIGHUP unwind (so the ``finally`` blocks stop what we started).

    The server and the raw worker run in sessions of their own (a terminal's Ctrl-C does not
    reach them): if this process died without unwinding, they would be left running. SIGINT
    is reset too because ``cmd &`` in a non-interactive shell starts with it ignored.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    signal.signal(signal.SIGHUP, _exit_on_sigterm)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.raw_worker:
        return raw_worker_main(args.raw_worker)
    _stop_cleanly_on_signals()
    if args.cluster:
        from scripts import bench_cluster

        return bench_cluster.main(quick=args.quick)
    if args.perception:  # perception II (issue 22): its own section and module
        from scripts import bench_perception

        return bench_perception.main(quick=args.quick)
    if args.options:  # per-session browser options (issue 18a)
        from scripts import bench_options

        return bench_options.main(quick=args.quick)
    if args.live:  # issue 20: scripts/bench_live.py
        from scripts import bench_live

        return bench_live.main(quick=args.quick)

    if args.profiles:  # profiles (issue 18)
        from scripts import bench_profiles

        return bench_profiles.main(quick=args.quick)
    if args.files:  # session files (issue 19)
        from scripts import bench_files

        return bench_files.main(quick=args.quick)
    if args.adapters:  # issue 21: scripts/bench_adapters.py
        from scripts import bench_adapters

        return bench_adapters.main(quick=args.quick)
    try:
        return run(plan_from_args(args), args.json)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
