"""``make bench ARGS=--files``: session files (issue 19), against the tools doing the same work.

1. Throughput over loopback of a 100 MB file, with curl: uploaded (multipart, ``curl -F``)
   and downloaded, into and out of a session, on the server itself (direct) and through a
   front (a host behind it); against curl to a static file server on the same machine
   (nginx when installed: ``sendfile`` out, WebDAV ``PUT`` in; else Python's
   ``http.server`` and a Python PUT sink, and the table says which). Goal: >= 0.5x.
2. PDFs as text: pypdfium2 (ours, Markdown), pypdfium2's plain text, pypdf and
   pdfminer.six on PDFs Chromium printed: p50 of a 20-page PDF, and whether each keeps the
   words in order, a table's rows, and two columns' reading order. Then an observe of that
   PDF's URL through the server (download + conversion), p50.

Everything listens on 127.0.0.0/8; every process started here is stopped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import requests
from playwright.async_api import async_playwright

from flask_sessions.host.browser import find_browser, launch_args
from flask_sessions.page.pdf import read_pdf
from flask_sessions.testing import ServerProcess, free_port, server_env, start_process

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-files-token"
SECRET = "bench-files-secret-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MB = 1 << 20
LIMITS = {"SESSIONS_MAX_UPLOAD_MB": "200", "SESSIONS_MAX_SESSION_FILES_MB": "400"}

# ------------------------------------------------------------------- curl timing


def _curl(*args: str) -> float:
    """Seconds curl took (its own %{time_total}); fails loudly on an HTTP error."""
    out = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "-o", "/dev/null", "-w", "%{time_total}", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip())


def _rates(times: list[float], size: int) -> float:
    """Median MB/s."""
    return statistics.median(size / MB / t for t in times)


# ------------------------------------------------------------ the static baseline


@contextlib.contextmanager
def static_server(folder: Path) -> Iterator[tuple[str, str, int]]:
    """(base URL, what it is, its pid) of a static file server over ``folder`` that also
    takes PUT."""
    nginx = shutil.which("nginx")
    port = free_port()
    if nginx:
        conf = folder.parent / "nginx.conf"
        (folder.parent / "body").mkdir(exist_ok=True)
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(
            f"""{user}
daemon off; worker_processes 1; pid {folder.parent}/nginx.pid;
error_log {folder.parent}/nginx-error.log;
events {{}}
http {{
  access_log off; sendfile on; tcp_nopush on;
  client_body_temp_path {folder.parent}/body; client_max_body_size 0;
  server {{
    listen 127.0.0.1:{port}; root {folder};
    location / {{ dav_methods PUT; create_full_put_path on; }}
  }}
}}
"""
        )
        proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(folder.parent)])
        what = "nginx (sendfile; WebDAV PUT)"
    else:
        proc = subprocess.Popen(
            [sys.executable, "-c", _PY_STATIC, str(port), str(folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        what = "Python http.server (+ a PUT sink)"
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                requests.get(base + "/", timeout=1)
                break
            time.sleep(0.1)
        yield base, what, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


_PY_STATIC = """
import sys, functools
from http.server import ThreadingHTTPServer, SimpleHTTPRequestHandler
class H(SimpleHTTPRequestHandler):
    def do_PUT(self):
        left = int(self.headers["Content-Length"])
        with open(self.translate_path(self.path), "wb") as out:
            while left:
                chunk = self.rfile.read(min(left, 1 << 20)); left -= len(chunk); out.write(chunk)
        self.send_response(201); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
port, folder = int(sys.argv[1]), sys.argv[2]
ThreadingHTTPServer(("127.0.0.1", port), functools.partial(H, directory=folder)).serve_forever()
"""


# ------------------------------------------------------------------- throughput


def _cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) the server processes used so far, their workers
    (nginx's) included, Chromium not."""
    total = 0.0
    for pid in pids:
        proc = psutil.Process(pid)
        for one in [proc, *proc.children()]:
            if one.pid == pid or "nginx" in one.name():
                times = one.cpu_times()
                total += times.user + times.system
    return total


class _Target:
    """One side measured: the static server, or a session on ours (direct or via a front);
    ``pids``: the server processes whose CPU time each transfer is charged."""

    def __init__(
        self, name: str, base: str, big: Path, pids: list[int], static: bool = False
    ) -> None:
        self.name, self.base, self.big, self.static = name, base, big, static
        self.pids = pids
        self.ups: list[float] = []
        self.downs: list[float] = []
        self.up_cpu: list[float] = []
        self.down_cpu: list[float] = []
        self.sid = ""
        if not static:
            self.sid = requests.post(
                base + "/session/start", json={}, headers=AUTH, timeout=60
            ).json()["session_id"]

    def once(self, i: int) -> None:
        """One upload and one download of the 100 MB file (each timed by curl)."""
        auth = f"Authorization: Bearer {TOKEN}"
        files = f"{self.base}/session/{self.sid}/files"
        cpu = _cpu(self.pids)
        if self.static:  # WebDAV PUT of the same bytes
            self.ups.append(_curl("-T", str(self.big), f"{self.base}/put-{i}.bin"))
        else:
            self.ups.append(_curl("-H", auth, "-F", f"file=@{self.big}", files))
        self.up_cpu.append(_cpu(self.pids) - cpu)
        cpu = _cpu(self.pids)
        if self.static:  # GET of the same file
            self.downs.append(_curl(f"{self.base}/{self.big.name}"))
        else:
            self.downs.append(_curl("-H", auth, f"{files}/{self.big.name}"))
        self.down_cpu.append(_cpu(self.pids) - cpu)
        if not self.static:
            requests.delete(f"{files}/{self.big.name}", headers=AUTH, timeout=30)

    def close(self) -> None:
        if self.sid:
            requests.delete(f"{self.base}/session/{self.sid}", headers=AUTH, timeout=30)


def throughput(repeats: int) -> tuple[list[list[str]], str]:
    """Every server runs for the whole measure and the rounds interleave them (static,
    direct, front, static, ...), so that a shared machine's changing load falls on all
    sides alike and the ratios compare like with like."""
    procs: list[ServerProcess] = []
    with tempfile.TemporaryDirectory(prefix="bench-files-") as tmp:
        www = Path(tmp, "www")
        www.mkdir()
        big = Path(tmp, "big.bin")
        with big.open("wb") as handle:
            for _ in range(100):
                handle.write(os.urandom(MB))
        shutil.copy(big, www / big.name)
        size = big.stat().st_size
        try:
            env = server_env(TOKEN, SESSIONS_WARM_POOL="0", **LIMITS)
            port = free_port()
            direct = start_process(
                [sys.executable, "-m", "flask_sessions", "--port", str(port)],
                f"http://127.0.0.1:{port}",
                env,
                cwd=ROOT,
            )
            procs.append(direct)
            host_port = free_port("127.0.0.2")
            host = start_process(
                [
                    *(sys.executable, "-m", "flask_sessions", "host"),
                    *("--host", "127.0.0.2", "--port", str(host_port)),
                ],
                f"http://127.0.0.2:{host_port}",
                server_env(
                    TOKEN,
                    SESSIONS_CLUSTER_SECRET=SECRET,
                    SESSIONS_PROFILE_KEY=SECRET,  # hosts need one (issue 18)
                    SESSIONS_WARM_POOL="0",
                    **LIMITS,
                ),
                cwd=ROOT,
            )
            procs.append(host)
            direct.wait_ready()
            host.wait_ready()
            front_port = free_port()
            front = start_process(
                [sys.executable, "-m", "flask_sessions", "--port", str(front_port)],
                f"http://127.0.0.1:{front_port}",
                server_env(
                    TOKEN, SESSIONS_CLUSTER_SECRET=SECRET, SESSIONS_HOSTS=host.base, **LIMITS
                ),
                cwd=ROOT,
            )
            procs.append(front)
            front.wait_ready()
            with static_server(www) as (base, what, pid):
                print(f"static baseline: {what}", flush=True)
                sides = [
                    _Target("static", base, big, [pid], static=True),
                    _Target("direct", direct.base, big, [direct.pid]),
                    _Target("through a front", front.base, big, [front.pid, host.pid]),
                ]
                for i in range(repeats):
                    print(f"round {i + 1} of {repeats} ...", flush=True)
                    for side in sides:
                        side.once(i)
                for side in sides:
                    side.close()
        finally:
            for proc in reversed(procs):
                proc.stop()
    static = sides[0]
    rows = []
    for side in sides[1:]:
        for way, ours, theirs, our_cpu, their_cpu in (
            ("upload (curl -F)", side.ups, static.ups, side.up_cpu, static.up_cpu),
            ("download", side.downs, static.downs, side.down_cpu, static.down_cpu),
        ):
            mine, other = _rates(ours, size), _rates(theirs, size)
            rows.append(
                [
                    way,
                    side.name,
                    f"{mine:,.0f}",
                    f"{other:,.0f}",
                    _x(mine, other),
                    f"{statistics.median(our_cpu):.2f} / {statistics.median(their_cpu):.2f}",
                ]
            )
    return rows, what


def _x(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x" if theirs else "-"


# -------------------------------------------------------------------------- PDFs

WORDS = [f"w{i:03d}" for i in range(120)]
ROWS = [(f"Widget {i}", str(i), f"{i * 3}.50 EUR") for i in range(1, 8)]
HTML = {
    "text": "<title>Text</title>"
    + "".join(f"<p>{' '.join(WORDS[i : i + 12])}</p>" for i in range(0, 120, 12)),
    "table": "<title>Invoice</title><table border=1><tr><th>Item</th><th>Qty</th><th>Price</th>"
    + "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in ROWS)
    + "</table>",
    "columns": "<title>Columns</title><div style='column-count:2'>"
    + "".join(f"<p>Column sentence {i} goes on here with words.</p>" for i in range(60))
    + "</div>",
    "pages": "<title>Twenty pages</title>"
    + "".join(
        f"<h2>Section {i}</h2>"
        + "".join(
            f"<p>Page {i} paragraph {j}: lorem ipsum dolor sit amet, consectetur adipiscing "
            "elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.</p>"
            for j in range(14)
        )
        + "<div style='break-after: page'></div>"
        for i in range(20)
    ),
}


async def _print_pdfs() -> dict[str, bytes]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=find_browser().executable, args=launch_args()
        )
        page = await browser.new_page()
        out = {}
        for name, html in HTML.items():
            await page.set_content(html)
            out[name] = await page.pdf()
        await browser.close()
        return out


def _pypdf(data: bytes) -> str:
    import pypdf

    return "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages)


def _pdfminer(data: bytes) -> str:
    from pdfminer.high_level import extract_text

    return str(extract_text(io.BytesIO(data)))


def _pdfium_plain(data: bytes) -> str:
    import pypdfium2

    document = pypdfium2.PdfDocument(data)
    try:
        out = []
        for page in document:
            text = page.get_textpage()
            out.append(text.get_text_range())
            text.close()
            page.close()
        return "\n".join(out)
    finally:
        document.close()


def _ours_markdown(data: bytes) -> str:
    return read_pdf(data).markdown


def _words_in_order(text: str) -> bool:
    return re.findall(r"w\d{3}", text) == WORDS


def _rows_kept(text: str) -> bool:
    lines = text.splitlines()
    return all(
        any(re.search(rf"{a}\W+{b}\W+{re.escape(c)}", line) for line in lines) for a, b, c in ROWS
    )


def _columns_in_order(text: str) -> bool:
    return [int(n) for n in re.findall(r"sentence (\d+)", text)] == list(range(60))


def pdfs(repeats: int) -> tuple[list[list[str]], dict[str, bytes]]:
    printed = asyncio.run(_print_pdfs())
    readers: list[tuple[str, Callable[[bytes], str]]] = [
        ("pypdfium2, Markdown (ours)", _ours_markdown),
        ("pypdfium2, plain text", _pdfium_plain),
        ("pypdf 'plain'", _pypdf),
        ("pdfminer.six", _pdfminer),
    ]
    rows = []
    for name, read in readers:
        try:
            checks = (
                _words_in_order(read(printed["text"])),
                _rows_kept(read(printed["table"])),
                _columns_in_order(read(printed["columns"])),
            )
            read(printed["pages"])
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                read(printed["pages"])
                times.append((time.perf_counter() - t0) * 1000)
        except ImportError:
            rows.append([name, "not installed", "", "", ""])
            continue
        rows.append(
            [name, f"{statistics.median(times):.0f}", *("yes" if ok else "NO" for ok in checks)]
        )
    return rows, printed


class _Pdf(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/pdf")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def observe_pdf(data: bytes, repeats: int) -> float:
    """p50 ms of an observe whose URL is the 20-page PDF (download + conversion)."""
    handler = type("Handler", (_Pdf,), {"body": data})
    site = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{site.server_address[1]}/twenty.pdf"
    port = free_port()
    server = start_process(
        [sys.executable, "-m", "flask_sessions", "--port", str(port)],
        f"http://127.0.0.1:{port}",
        server_env(TOKEN, SESSIONS_WARM_POOL="0"),
        cwd=ROOT,
    )
    try:
        server.wait_ready()
        sid = requests.post(
            server.base + "/session/start", json={}, headers=AUTH, timeout=60
        ).json()["session_id"]
        times = []
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            answer = requests.post(
                server.base + "/env/observe",
                json={"session_id": sid, "url": url},
                headers=AUTH,
                timeout=60,
            ).json()
            took = (time.perf_counter() - t0) * 1000
            if answer["observation"]["pages"] != 20:
                raise RuntimeError(f"not the PDF's text: {str(answer)[:300]}")
            if i:
                times.append(took)
        return statistics.median(times)
    finally:
        server.stop()
        site.shutdown()
        site.server_close()


# ------------------------------------------------------------------------- report


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
        for r in rows
    ]
    return "\n".join([line, rule, *body])


def main(quick: bool = False) -> int:
    repeats = 2 if quick else 5
    print(f"load at start: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores", flush=True)
    rows, what = throughput(repeats)
    print(f"\n### Session files: 100 MB over loopback with curl (MB/s, median of {repeats})\n")
    print(
        _table(
            [
                "",
                "flask_sessions",
                "MB/s",
                f"static: {what}",
                "ratio (goal >= 0.5x)",
                "server CPU s, ours / static",
            ],
            rows,
        )
    )
    pdf_rows, printed = pdfs(5 if quick else 20)
    print("\n### PDFs as text (Chromium's PDFs: text, a table, two columns, 20 pages)\n")
    print(
        _table(
            ["library", "20 pages p50 ms", "words in order", "table rows", "two columns"],
            pdf_rows,
        )
    )
    p50 = observe_pdf(printed["pages"], 3 if quick else 10)
    print(f"\nobserve of the 20-page PDF's URL (download + Markdown), p50: {p50:.0f} ms")
    print(f"load at end: {os.getloadavg()[0]:.2f} (1 min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(quick="--quick" in sys.argv))
