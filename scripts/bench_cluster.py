"""``make bench ARGS=--cluster``: fronts and hosts beside embedded mode, in one run.

Prints: start and observe p50 through a front (one host; fixed list and Redis) beside the
embedded server; start+close throughput with 4 clients on 1, 2 and 3 hosts (Redis); and
the Redis commands and round trips per start and per observe, from Redis's own counters.
Everything listens on 127.0.0.0/8; every process started here is stopped at the end.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis
import requests

from flask_sessions import testing
from flask_sessions.testing import ServerProcess, free_port, server_env

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-cluster-token"
SECRET = "bench-cluster-secret-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PAGE = b"<!doctype html><title>Bench</title><h1>bench</h1><a href='/'>home</a><button>ok</button>"


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Procs(list[ServerProcess]):
    """Processes started here; all stopped (and their descendants killed) at the end."""

    def env(self, **settings: str) -> dict[str, str]:
        # the default reaper interval, as a deployment has it (server_env's is for tests)
        return server_env(
            TOKEN,
            SESSIONS_CLUSTER_SECRET=SECRET,
            SESSIONS_PROFILE_KEY=SECRET,  # hosts need one (issue 18)
            SESSIONS_REAPER_INTERVAL_SECONDS="1",
            **settings,
        )

    def stop_all(self) -> None:
        for proc in reversed(self):
            proc.stop(timeout=30)
        self.clear()


def serve(procs: Procs, env: dict[str, str]) -> ServerProcess:
    procs.append(testing.serve(procs.env(**env), timeout=60, cwd=ROOT))
    return procs[-1]


def host(procs: Procs, address: str, env: dict[str, str]) -> str:
    procs.append(testing.serve(procs.env(**env), role="host", host=address, timeout=60, cwd=ROOT))
    return procs[-1].base


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


def timed(fn: Callable[[], None], repeats: int, pause: float = 0.1) -> list[float]:
    out = []
    for _ in range(3):
        fn()
    for _ in range(repeats):
        time.sleep(pause)
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def latency(base: str, page: str, repeats: int) -> dict[str, float]:
    http = requests.Session()
    http.headers.update(AUTH)

    def start_close() -> None:
        sid = http.post(base + "/session/start", json={}, timeout=60).json()["session_id"]
        http.post(base + "/session/close", json={"session_id": sid}, timeout=60)

    starts: list[float] = []
    for _ in range(repeats + 3):
        time.sleep(0.1)
        t0 = time.perf_counter()
        r = http.post(base + "/session/start", json={}, timeout=60)
        starts.append((time.perf_counter() - t0) * 1000)
        http.post(base + "/session/close", json={"session_id": r.json()["session_id"]}, timeout=60)
    sid = http.post(base + "/session/start", json={"url": page}, timeout=60).json()["session_id"]
    observes = timed(
        lambda: http.post(
            base + "/env/observe", json={"session_id": sid}, timeout=60
        ).raise_for_status(),
        repeats,
    )
    reads = timed(lambda: http.get(f"{base}/session/{sid}", timeout=60).raise_for_status(), repeats)
    http.post(base + "/session/close", json={"session_id": sid}, timeout=60)
    return {"start": p50(starts[3:]), "observe": p50(observes), "status": p50(reads)}


def throughput(base: str, clients: int, seconds: float) -> float:
    done = [0] * clients
    stop = time.monotonic() + seconds

    def loop(i: int) -> None:
        http = requests.Session()
        http.headers.update(AUTH)
        while time.monotonic() < stop:
            r = http.post(base + "/session/start", json={}, timeout=60)
            if r.status_code == 200:
                http.post(
                    base + "/session/close", json={"session_id": r.json()["session_id"]}, timeout=60
                )
                done[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - t0)


def redis_server(procs: Procs) -> tuple[str, redis.Redis]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is missing: run `make redis` (apt-get install redis-server)")
    port = free_port()
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    procs.append(testing.start_process(args, f"redis://127.0.0.1:{port}"))
    client = redis.Redis(port=port)
    for _ in range(50):
        with contextlib.suppress(redis.RedisError):
            if client.ping():
                break
        time.sleep(0.1)
    return f"redis://127.0.0.1:{port}/0", client


def commands(client: redis.Redis) -> dict[str, int]:
    stats: dict[str, Any] = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def redis_costs(base: str, client: redis.Redis, page: str, n: int) -> dict[str, dict[str, float]]:
    http = requests.Session()
    http.headers.update(AUTH)
    time.sleep(2.5)  # let a heartbeat pass, then count only what the calls cause
    out: dict[str, dict[str, float]] = {}
    before = commands(client)
    t0 = time.monotonic()
    sids = []
    for _ in range(n):
        sids.append(http.post(base + "/session/start", json={}, timeout=60).json()["session_id"])
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    after = commands(client)
    out["start"] = _per_op(before, after, n, elapsed)
    sid = sids[0]
    http.post(base + "/env/observe", json={"session_id": sid, "url": page}, timeout=60)
    time.sleep(0.2)
    before = commands(client)
    t0 = time.monotonic()
    for _ in range(n):
        http.post(base + "/env/observe", json={"session_id": sid}, timeout=60)
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    out["observe"] = _per_op(before, commands(client), n, elapsed)
    for sid in sids:
        http.post(base + "/session/close", json={"session_id": sid}, timeout=60)
    return out


def _per_op(
    before: dict[str, int], after: dict[str, int], n: int, elapsed: float
) -> dict[str, float]:
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    # Heartbeats (a SET ... GET and an SADD every 2 s per host) are not the calls' doing.
    beats = elapsed / 2.0
    delta["sadd"] = max(0, delta.get("sadd", 0) - round(beats))
    front = (
        delta.get("evalsha", 0) + delta.get("eval", 0) + delta.get("get", 0) + delta.get("mget", 0)
    )
    host_pipelines = delta.get("zadd", 0)  # one ZADD per record in each host pipeline
    total = sum(v for k, v in delta.items() if k not in ("info", "ping"))
    return {
        "commands": (total - round(beats)) / n,
        "front_round_trips": front / n,
        "host_round_trips": host_pipelines / n,
    }


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return "\n".join([line, sep, *body])


@contextlib.contextmanager
def page_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def main(quick: bool = False) -> int:
    repeats = 10 if quick else 40
    seconds = 3.0 if quick else 8.0
    procs = Procs()
    try:
        with page_server() as page:
            print(
                "cluster bench: embedded, then front + hosts (fixed list, then Redis)", flush=True
            )
            results: dict[str, dict[str, float]] = {}
            base = serve(procs, {"SESSIONS_WARM_POOL": "2"}).base
            results["embedded"] = latency(base, page, repeats)
            embedded_tput = throughput(base, 4, seconds)
            procs.stop_all()

            procs = Procs()
            h = host(procs, "127.0.0.2", {"SESSIONS_WARM_POOL": "2"})
            base = serve(procs, {"SESSIONS_HOSTS": h}).base
            results["front + 1 host (SESSIONS_HOSTS)"] = latency(base, page, repeats)
            procs.stop_all()

            procs = Procs()
            url, client = redis_server(procs)
            tput: dict[int, float] = {}
            hosts: list[str] = []
            front = serve(procs, {"SESSIONS_REGISTRY_URL": url})
            base = front.base
            costs: dict[str, dict[str, float]] = {}
            for n in (1, 2, 3):
                hosts.append(
                    host(
                        procs,
                        f"127.0.0.{n + 1}",
                        {"SESSIONS_REGISTRY_URL": url, "SESSIONS_WARM_POOL": "2"},
                    )
                )
                front.wait_ready("/readyz", 60, contains=f"{n} browser host")
                if n == 1:
                    results["front + 1 host (Redis)"] = latency(base, page, repeats)
                    costs = redis_costs(base, client, page, repeats)
                tput[n] = throughput(base, 4, seconds)
    finally:
        procs.stop_all()

    emb = results["embedded"]
    rows = []
    for name, r in results.items():
        rows.append(
            [
                name,
                f"{r['start']:.1f}",
                f"{r['start'] - emb['start']:+.1f}",
                f"{r['observe']:.1f}",
                f"{r['observe'] - emb['observe']:+.1f}",
                f"{r['status']:.1f}",
            ]
        )
    print("\n1. Latency p50 (one client, 100 ms between calls; ms)")
    print(table(["mode", "start", "vs embedded", "observe", "vs embedded", "status read"], rows))
    print("\n2. Start+close throughput, 4 clients (Redis registry; one front process)")
    trows = [["embedded", "-", f"{embedded_tput:.1f}", "1.00x"]]
    trows += [
        [f"front + {n} host(s)", str(n), f"{v:.1f}", f"{v / embedded_tput:.2f}x"]
        for n, v in tput.items()
    ]
    print(table(["mode", "hosts", "starts/s", "vs embedded"], trows))
    print(
        "   every process shares the same 2 cores here, so added hosts compete for CPU with "
        "each other and the front;\n   with a core (or machine) per host, starts/s would scale "
        "with the hosts until the front saturates."
    )
    print("\n3. Redis per call (front + 1 host; from Redis's commandstats, heartbeats excluded)")
    crow = [
        [
            op,
            f"{c['commands']:.2f}",
            f"{c['front_round_trips']:.2f}",
            f"{c['host_round_trips']:.2f}",
        ]
        for op, c in costs.items()
    ]
    print(table(["call", "commands", "front round trips", "host round trips"], crow))
    print(
        json.dumps(
            {
                "latency": results,
                "throughput": tput,
                "embedded_throughput": embedded_tput,
                "redis": costs,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main("--quick" in sys.argv))
