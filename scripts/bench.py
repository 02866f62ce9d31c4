"""Benchmark of ``POST /session/start`` latency against raw Playwright, in one run.

It starts the real server (``python -m flask_sessions`` as a subprocess on a free port with a
random token) and times, over HTTP with a keep-alive ``requests.Session``:

- ``start``: ``POST /session/start`` with ``{}`` (the close after it is timed as ``close``);
- ``start+screenshot``: ``POST /session/start`` with ``{"screenshot": true}``, then close;
- ``close``: ``DELETE /session/<id>`` of the sessions made by ``start``.

Then a raw-Playwright baseline in its own subprocess (``--raw-worker``, async API, the same
Chromium executable and launch flags) times ``new_context(viewport 1280x720) + new_page()``,
the same plus ``page.screenshot(type="png")``, and ``context.close()``.

It prints one table (p50 / p95 in ms and the p50 ratio ours/raw) and the machine; ``--json
PATH`` writes every number. Run from the repo root: ``python scripts/bench.py [--repeats 30]
[--warmup 3] [--json /tmp/bench.json]``. Every process it starts is stopped before it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import math
import os
import platform
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import psutil
import requests

_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from flask_sessions.browser import find_browser, launch_args  # noqa: E402

Json = dict[str, Any]

HEALTH_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 30.0
TERM_GRACE_S = 20.0
WORKER_TIMEOUT_S = 90.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
OPERATIONS = ("start", "start+screenshot", "close")


class BenchError(Exception):
    """Something did not answer as expected; the message says what and what came back."""


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _short(value: Any, limit: int = 500) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"


# ------------------------------------------------------------------ numbers


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of a non-empty list."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(samples: list[float]) -> Json:
    return {
        "n": len(samples),
        "p50_ms": percentile(samples, 50),
        "p95_ms": percentile(samples, 95),
        "min_ms": min(samples),
        "max_ms": max(samples),
        "mean_ms": sum(samples) / len(samples),
    }


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _check_png(png: bytes, where: str) -> None:
    if not png.startswith(PNG_MAGIC):
        raise BenchError(f"{where}: screenshot is not a PNG: starts {png[:16]!r}")


# --------------------------------------------------------- process hygiene


class Descendants:
    """Every process seen below ``root`` (pid + create time), to make sure they all end."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.seen: set[psutil.Process] = set()

    def snapshot(self) -> None:
        with suppress(psutil.Error):
            self.seen.update(psutil.Process(self.root).children(recursive=True))

    def reap(self, grace: float = 5.0) -> list[str]:
        """Wait for the seen processes to end; kill survivors. Returns what had to be killed."""
        alive = [p for p in self.seen if p.is_running()]
        _, alive = psutil.wait_procs(alive, timeout=grace)
        killed = []
        for proc in alive:
            with suppress(psutil.Error):
                killed.append(f"{proc.pid} {proc.name()}")
                proc.kill()
        if alive:
            psutil.wait_procs(alive, timeout=5)
        return killed


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _read_log(logfile: IO[bytes]) -> str:
    logfile.flush()
    logfile.seek(0)
    return logfile.read().decode("utf-8", "replace")


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


def stop_process(proc: subprocess.Popen[bytes], tree: Descendants, name: str) -> list[str]:
    """SIGTERM, wait up to TERM_GRACE_S, else SIGKILL; then make sure its children ended."""
    tree.snapshot()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=TERM_GRACE_S)
        except subprocess.TimeoutExpired:
            log(f"{name}: pid {proc.pid} ignored SIGTERM for {TERM_GRACE_S:.0f} s; killing it")
            proc.kill()
            proc.wait()
    killed = tree.reap()
    if killed:
        log(f"{name}: killed leftover processes after exit: {', '.join(killed)}")
    return killed


def _server_env(token: str, max_sessions: int) -> dict[str, str]:
    # Inherited SESSIONS_* settings (extra browser flags, viewport …) would make the two sides
    # differ; only the browser path is kept, and both sides honour it through find_browser().
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONS_")}
    if "SESSIONS_BROWSER_PATH" in os.environ:
        env["SESSIONS_BROWSER_PATH"] = os.environ["SESSIONS_BROWSER_PATH"]
    env["SESSIONS_TOKENS"] = token
    env["SESSIONS_MAX_SESSIONS"] = str(max_sessions)
    return env


class Server:
    """What a running server exposes to the benchmark."""

    def __init__(self, base: str, token: str, logfile: IO[bytes]) -> None:
        self.base = base
        self.token = token
        self.logfile = logfile
        self.log_text = ""
        self.leftovers: list[str] = []
        self.exit_code: int | None = None


@contextmanager
def run_server(max_sessions: int) -> Iterator[Server]:
    """``python -m flask_sessions`` on a free port, healthy; stopped (SIGTERM) on exit."""
    token = secrets.token_urlsafe(24)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "flask_sessions", "--host", "127.0.0.1", "--port", str(port)]
    with tempfile.TemporaryFile() as logfile:
        proc = subprocess.Popen(
            cmd,
            cwd=_REPO_ROOT,
            env=_server_env(token, max_sessions),
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C here does not reach it before we SIGTERM it
        )
        tree = Descendants(proc.pid)
        server = Server(base, token, logfile)
        log(f"server: pid {proc.pid} on {base}")
        try:
            started = time.perf_counter()
            deadline = time.monotonic() + HEALTH_TIMEOUT_S
            while True:
                if proc.poll() is not None:
                    raise BenchError(
                        f"server exited with {proc.returncode} before it was healthy:\n"
                        + _tail(_read_log(logfile))
                    )
                with suppress(requests.RequestException):
                    resp = requests.get(base + "/healthz", timeout=2)
                    if resp.status_code == 200:
                        log(f"server: healthy after {_ms(started):.0f} ms: {resp.json()}")
                        break
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"server not healthy after {HEALTH_TIMEOUT_S:.0f} s:\n"
                        + _tail(_read_log(logfile))
                    )
                time.sleep(0.1)
            tree.snapshot()
            yield server
        finally:
            server.leftovers = stop_process(proc, tree, "server")
            server.exit_code = proc.returncode
            server.log_text = _read_log(logfile)
            log(f"server: stopped (exit {proc.returncode})")


# ------------------------------------------------------- flask_sessions side


class Client:
    """The benchmark's HTTP client: one keep-alive session with the bearer token."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body: Json | None = None) -> Json:
        try:
            resp = self.http.request(method, self.base + path, json=body, timeout=REQUEST_TIMEOUT_S)
        except requests.RequestException as exc:
            raise BenchError(f"{method} {path}: no answer: {exc}") from None
        try:
            data = resp.json()
        except ValueError:
            raise BenchError(
                f"{method} {path}: HTTP {resp.status_code}, not JSON: {_short(resp.text)}"
            ) from None
        if resp.status_code != 200 or not isinstance(data, dict):
            raise BenchError(f"{method} {path} {body}: HTTP {resp.status_code}: {_short(data)}")
        return data

    def close(self) -> None:
        self.http.close()


def _started_id(answer: Json, want_screenshot: bool) -> str:
    session_id = answer.get("session_id")
    if not isinstance(session_id, str) or answer.get("status") != "active":
        raise BenchError(f"start did not give an active session: {_short(answer)}")
    shot = answer.get("screenshot")
    if want_screenshot:
        if not isinstance(shot, str) or not shot:
            raise BenchError(f"start with screenshot true gave screenshot={_short(shot)}")
        try:
            png = base64.b64decode(shot, validate=True)
        except binascii.Error as exc:
            raise BenchError(f"start: screenshot is not base64: {exc}") from None
        _check_png(png, "start")
    elif shot is not None:
        raise BenchError(f"start without screenshot gave one ({len(str(shot))} chars)")
    return session_id


def bench_server(client: Client, repeats: int, warmup: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {
        "start": [],
        "start+screenshot": [],
        "close": [],
        "close_after_screenshot": [],
        "get_record": [],
    }

    def one(screenshot: bool, keep: bool) -> None:
        body: Json = {"screenshot": True} if screenshot else {}
        t0 = time.perf_counter()
        answer = client.call("POST", "/session/start", body)
        elapsed = _ms(t0)
        session_id = _started_id(answer, screenshot)
        # A read that goes through auth and the browser loop but not Chromium: the floor.
        t0 = time.perf_counter()
        client.call("GET", f"/session/{session_id}")
        read = _ms(t0)
        t0 = time.perf_counter()
        closed = client.call("DELETE", f"/session/{session_id}")
        close = _ms(t0)
        if closed.get("status") != "closed":
            raise BenchError(f"DELETE /session/{session_id}: {_short(closed)}")
        if keep:
            times["start+screenshot" if screenshot else "start"].append(elapsed)
            times["close_after_screenshot" if screenshot else "close"].append(close)
            times["get_record"].append(read)

    for screenshot in (False, True):
        label = "start+screenshot" if screenshot else "start"
        log(f"flask_sessions: {label}: {warmup} warm-up + {repeats} timed")
        for i in range(warmup + repeats):
            one(screenshot, keep=i >= warmup)
    return times


# ------------------------------------------------------------ raw Playwright


async def raw_bench(repeats: int, warmup: int) -> Json:
    """The baseline: the same Chromium and flags, driven directly with the async API."""
    from playwright.async_api import async_playwright

    choice = find_browser()
    args = launch_args()
    times: dict[str, list[float]] = {
        "start": [],
        "start+screenshot": [],
        "close": [],
        "close_after_screenshot": [],
    }
    async with async_playwright() as pw:
        t0 = time.perf_counter()
        browser = await pw.chromium.launch(
            executable_path=choice.executable, args=args, headless=True
        )
        launch_ms = _ms(t0)
        try:
            for screenshot in (False, True):
                for i in range(warmup + repeats):
                    t0 = time.perf_counter()
                    context = await browser.new_context(viewport={"width": 1280, "height": 720})
                    page = await context.new_page()
                    if screenshot:
                        _check_png(await page.screenshot(type="png"), "raw")
                    elapsed = _ms(t0)
                    t0 = time.perf_counter()
                    await context.close()
                    close = _ms(t0)
                    if i >= warmup:
                        times["start+screenshot" if screenshot else "start"].append(elapsed)
                        times["close_after_screenshot" if screenshot else "close"].append(close)
            version = browser.version
        finally:
            await browser.close()
    return {
        "executable": choice.executable,
        "source": choice.source,
        "args": args,
        "chromium_version": version,
        "launch_ms": launch_ms,
        "times_ms": times,
    }


def run_raw_worker(repeats: int, warmup: int) -> Json:
    """``--raw-worker`` in a subprocess; its JSON (last stdout line) parsed."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--raw-worker",
        "--repeats",
        str(repeats),
        "--warmup",
        str(warmup),
    ]
    log(f"raw Playwright: worker subprocess, {warmup} warm-up + {repeats} timed per operation")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            cmd, cwd=_REPO_ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        tree = Descendants(proc.pid)
        try:
            deadline = time.monotonic() + WORKER_TIMEOUT_S
            while proc.poll() is None:
                tree.snapshot()
                if time.monotonic() > deadline:
                    raise BenchError(f"raw worker still running after {WORKER_TIMEOUT_S:.0f} s")
                time.sleep(0.2)
        finally:
            stop_process(proc, tree, "raw worker")
        stdout, stderr = _read_log(out), _read_log(err)
    if proc.returncode != 0:
        raise BenchError(f"raw worker exited with {proc.returncode}:\n{_tail(stderr)}")
    lines = stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1]) if lines else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise BenchError(f"raw worker printed no JSON: {_short(stdout)}\n{_tail(stderr)}")
    return data


# -------------------------------------------------------------------- report


def machine_info(chromium_version: str | None) -> Json:
    cpu = platform.processor() or "unknown"
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                cpu = value.strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "chromium_version": chromium_version,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
    }


def server_notes(log_text: str) -> list[str]:
    """Warnings, errors and tracebacks from the server's log, worth a look."""
    notes = []
    for line in log_text.splitlines():
        if re.search(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback", line):
            notes.append(line.strip())
    return notes


def format_table(ours: dict[str, Json], raw: dict[str, Json]) -> str:
    headers = (
        "operation",
        "flask_sessions p50 / p95 (ms)",
        "raw Playwright p50 / p95 (ms)",
        "ratio p50 (ours/raw)",
    )
    rows = []
    for op in OPERATIONS:
        a, b = ours[op], raw[op]
        ratio = a["p50_ms"] / b["p50_ms"] if b["p50_ms"] > 0 else float("inf")
        rows.append(
            (
                op,
                f"{a['p50_ms']:.1f} / {a['p95_ms']:.1f}",
                f"{b['p50_ms']:.1f} / {b['p95_ms']:.1f}",
                f"{ratio:.2f}x",
            )
        )
    widths = [max(len(r[i]) for r in (headers, *rows)) for i in range(len(headers))]

    def line(cells: tuple[str, ...]) -> str:
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        out = [cells[0].ljust(widths[0]), *rest]
        return "| " + " | ".join(out) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def _summarise(times: dict[str, list[float]]) -> dict[str, Json]:
    return {op: summary(samples) for op, samples in times.items() if samples}


def run(repeats: int, warmup: int, json_path: Path | None) -> int:
    began = time.perf_counter()
    with run_server(max_sessions=1000) as server:
        client = Client(server.base, server.token)
        try:
            ours_times = bench_server(client, repeats, warmup)
        finally:
            client.close()
    raw = run_raw_worker(repeats, warmup)
    raw_times: dict[str, list[float]] = raw["times_ms"]
    ours, theirs = _summarise(ours_times), _summarise(raw_times)

    match = re.search(r"launched .*\(Chromium ([^)]+)\)", server.log_text)
    server_version = match.group(1) if match else None
    machine = machine_info(raw.get("chromium_version") or server_version)
    notes = server_notes(server.log_text)
    if server.exit_code != 0:
        notes.append(f"server exit code {server.exit_code} after SIGTERM")
    if server.leftovers:
        notes.append(f"processes left after the server exited: {', '.join(server.leftovers)}")
    if server_version and raw.get("chromium_version") != server_version:
        notes.append(
            f"Chromium versions differ: server {server_version}, raw {raw.get('chromium_version')}"
        )

    print(f"POST /session/start latency: {repeats} timed repeats after {warmup} warm-up each")
    print(format_table(ours, theirs))
    floor = ours.get("get_record")
    if floor:
        print(
            f"floor: GET /session/<id> (HTTP + auth + browser-loop hop, no Chromium) "
            f"p50 {floor['p50_ms']:.1f} / p95 {floor['p95_ms']:.1f} ms"
        )
    print(
        f"machine: nproc {machine['nproc']}, CPU {machine['cpu_model']}, "
        f"Chromium {machine['chromium_version']}, Python {machine['python_version']}"
    )
    print(f"browser: {raw['executable']} ({raw['source']}), flags {' '.join(raw['args'])}")
    for note in notes:
        print(f"server log: {note}")
    elapsed_s = time.perf_counter() - began
    print(f"total bench time {elapsed_s:.1f} s")

    if json_path is not None:
        report = {
            "repeats": repeats,
            "warmup": warmup,
            "machine": machine,
            "browser": {k: raw[k] for k in ("executable", "source", "args")},
            "raw_launch_ms": raw["launch_ms"],
            "summary_ms": {"flask_sessions": ours, "raw_playwright": theirs},
            "ratio_p50": {
                op: ours[op]["p50_ms"] / theirs[op]["p50_ms"] for op in OPERATIONS if op in theirs
            },
            "samples_ms": {"flask_sessions": ours_times, "raw_playwright": raw_times},
            "server_notes": notes,
            "total_seconds": elapsed_s,
        }
        json_path.write_text(json.dumps(report, indent=2) + "\n")
        log(f"wrote {json_path}")
    return 0


def _positive(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeats", type=_positive(1), default=30, help="timed repeats (30)")
    parser.add_argument("--warmup", type=_positive(0), default=3, help="discarded repeats (3)")
    parser.add_argument("--json", type=Path, help="write every number here as JSON")
    parser.add_argument("--raw-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.raw_worker:
        print(json.dumps(asyncio.run(raw_bench(args.repeats, args.warmup))), flush=True)
        return 0
    try:
        return run(args.repeats, args.warmup, args.json)
    except BenchError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
