"""Observe and step latency of two checkouts, side by side, in one run.

``bench.py`` runs one server; on a shared machine two of its runs minutes apart can differ
by 2x. This starts a server from each checkout (``python -m flask_sessions`` with that
checkout as working directory, like bench.py), and times the same operations on both,
alternating A, B, A, B…, so the noise of the machine falls on both alike:

- ``observe``: ``POST /env/observe {session_id, url: /report}`` (bench.py's row);
- ``step click``: ``POST /env/step {"type": "click", "selector": "a"}`` on ``/pages/1``
  (bench.py's row; the page is opened first, untimed).

``--perception`` adds (issue 22): ``observe /big`` (a page of 5,000 elements, by URL) and
``press_key``: ``POST /env/step {"type": "press_key", "key": "Tab"}`` on ``/report`` (a
static page; opened first, untimed).

Run: ``python scripts/ab_latency.py BASELINE_DIR [--repeats 40]`` (this checkout is B).
``--a-env``/``--b-env KEY=VALUE`` set a setting on one side: ``ab_latency.py .
--a-env SESSIONS_SETTLE_MS=0`` is what settling after a step costs.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_sessions.testing import serve, server_env
from scripts.demo_site import start_demo_site

HERE = Path(__file__).resolve().parent.parent


@contextmanager
def server(checkout: Path, settings: list[str]) -> Iterator[tuple[str, str]]:
    token = secrets.token_urlsafe(16)
    given = dict(item.partition("=")[::2] for item in settings)
    env = server_env(token, SESSIONS_REAPER_INTERVAL_SECONDS="1", **given)
    # the checkout's own package, whatever this venv's editable install points at
    boot = (
        "import runpy, sys; sys.meta_path[:] = [f for f in sys.meta_path "
        "if '__editable__' not in type(f).__module__ + getattr(f, '__module__', '')]; "
        "runpy.run_module('flask_sessions', run_name='__main__', alter_sys=True)"
    )
    python = (sys.executable, "-c", boot)
    with serve(env, python=python, cwd=checkout, new_session=True, timeout=60) as running:
        yield running.base, token


class Side:
    def __init__(self, name: str, base: str, token: str, site: str) -> None:
        self.name, self.base, self.site = name, base, site
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.sid = self.call("/session/start", {"keep_alive": True})["session_id"]
        self.samples: dict[str, list[float]] = {"observe": [], "step click": []}
        self.samples.update({"observe /big": [], "press_key": []})  # --perception

    def call(self, path: str, body: dict[str, Any]) -> Any:
        response = self.http.post(self.base + path, json=body, timeout=60)
        response.raise_for_status()
        return response.json()

    def observe(self) -> None:
        began = time.perf_counter()
        self.call("/env/observe", {"session_id": self.sid, "url": self.site + "/report"})
        self.samples["observe"].append((time.perf_counter() - began) * 1000)

    def click(self) -> None:
        self.call("/env/observe", {"session_id": self.sid, "url": self.site + "/pages/1"})
        body = {"session_id": self.sid, "type": "click", "selector": "a"}
        began = time.perf_counter()
        answer = self.call("/env/step", body)
        self.samples["step click"].append((time.perf_counter() - began) * 1000)
        assert answer["success"] and answer["observation"]["url"].endswith("/pages/2"), answer

    # --perception (issue 22)
    def observe_big(self) -> None:
        began = time.perf_counter()
        self.call("/env/observe", {"session_id": self.sid, "url": self.site + "/big"})
        self.samples["observe /big"].append((time.perf_counter() - began) * 1000)

    def press_key(self) -> None:
        self.call("/env/observe", {"session_id": self.sid, "url": self.site + "/report"})
        body = {"session_id": self.sid, "type": "press_key", "key": "Tab"}
        began = time.perf_counter()
        answer = self.call("/env/step", body)
        self.samples["press_key"].append((time.perf_counter() - began) * 1000)
        assert answer["success"], answer


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("baseline", type=Path, help="the other checkout (A)")
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--a-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--b-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--perception", action="store_true", help="observe /big, press_key too")
    args = parser.parse_args()
    ops = ["observe", "step click"] + (["observe /big", "press_key"] if args.perception else [])
    demo, site = start_demo_site()
    with ExitStack() as stack:
        a_name = f"A {args.baseline} {' '.join(args.a_env)}"
        b_name = f"B {HERE} {' '.join(args.b_env)}"
        a = Side(a_name, *stack.enter_context(server(args.baseline, args.a_env)), site)
        b = Side(b_name, *stack.enter_context(server(HERE, args.b_env)), site)

        def run(side: Side) -> None:
            side.observe()
            time.sleep(0.05)
            side.click()
            time.sleep(0.05)
            if args.perception:
                side.observe_big()
                time.sleep(0.05)
                side.press_key()
                time.sleep(0.05)

        for side in (a, b):  # warm up
            for _ in range(3):
                run(side)
            for samples in side.samples.values():
                samples.clear()
        for i in range(args.repeats):
            for side in (a, b) if i % 2 == 0 else (b, a):
                run(side)
    demo.shutdown()
    print(f"{'operation':<13} {'A p50 ms':>9} {'B p50 ms':>9} {'B/A':>6}   ({args.repeats} each)")
    for op in ops:
        pa = statistics.median(a.samples[op])
        pb = statistics.median(b.samples[op])
        print(f"{op:<13} {pa:>9.1f} {pb:>9.1f} {pb / pa:>5.2f}x")
    print(f"A = {a.name}\nB = {b.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
