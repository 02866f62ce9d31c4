"""Profiles bench (issue 18): ``python scripts/bench.py --profiles`` (``make bench ARGS=…``).

1. Start with a profile of 50 cookies over 5 origins (each origin with 5 localStorage items),
   through the real server (``python -m flask_sessions``, file store) and the typed client,
   beside raw Playwright doing the same in this process afterwards (same Chromium, same
   flags): ``new_context(storage_state=…)`` + ``new_page()``. Also a start with the same
   state inline (``storage_state``). Goal: ≤ 1.2x raw.
2. Save at close: the write-back a persisting session does before its context closes
   (``storage_state(indexed_db=True)`` of a live context holding a 50-cookie state, then
   sealing and writing it), p50, with the file store and with a Redis store (a real
   redis-server on 127.0.0.1). Goals: ≤ 15 ms (file), ≤ 25 ms (Redis). Timed in-process on
   the room's own code path, beside raw ``context.storage_state(indexed_db=True)`` of the
   same context; ``POST /session/<id>/profile/save`` over HTTP is shown too. With the 5
   origins' localStorage as well, the capture itself dominates: Playwright reads the
   storage of an origin no page shows by loading that origin in a hidden page.

The server and raw Playwright never run at the same time (2 cores). Every process started
here is stopped before it exits.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flask_sessions import testing  # noqa: E402
from flask_sessions.config import load  # noqa: E402
from flask_sessions.host.browser import find_browser, launch_args  # noqa: E402
from flask_sessions.host.manager import SessionRecord  # noqa: E402
from flask_sessions.host.profiles import LEASE_SECONDS, ProfileRoom, _Hold, owner_of  # noqa: E402
from flask_sessions.profile_schemas import SessionProfile  # noqa: E402

TOKEN = "bench-profiles-token"
KEY = "bench-profiles-key-0123456789abcdef"
ORIGINS = 5
COOKIES = 50


def fifty_cookie_state() -> dict[str, Any]:
    """50 cookies over 5 sites, each site's origin with 5 localStorage items."""
    cookies, origins = [], []
    for site in range(ORIGINS):
        domain = f"site{site}.example"
        for i in range(COOKIES // ORIGINS):
            cookies.append(
                {
                    "name": f"c{i}",
                    "value": f"{site}-{i}-" + "v" * 40,
                    "domain": domain,
                    "path": "/",
                    "expires": 4_000_000_000,
                    "httpOnly": i % 2 == 0,
                    "secure": True,
                    "sameSite": "Lax",
                }
            )
        items = [{"name": f"k{i}", "value": "x" * 64} for i in range(5)]
        origins.append({"origin": f"https://{domain}", "localStorage": items})
    return {"cookies": cookies, "origins": origins}


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def server_starts(state: dict[str, Any], repeats: int, store: str) -> dict[str, list[float]]:
    env = testing.server_env(
        TOKEN, SESSIONS_PROFILE_STORE=f"file://{store}", SESSIONS_PROFILE_KEY=KEY
    )
    env["SESSIONS_REAPER_INTERVAL_SECONDS"] = "1"
    out: dict[str, list[float]] = {"profile": [], "inline": [], "default": [], "save_http": []}
    with testing.serve(env, timeout=60, cwd=ROOT) as server, server.client() as client:
        pid = client.create_profile("bench").profile_id
        client.put_profile_state(pid, state)
        bodies: dict[str, dict[str, Any]] = {
            "profile": {"profile": {"id": pid}},
            "inline": {"storage_state": state},
            "default": {},
        }
        # one kind at a time, the default last: its warm-pool refills would otherwise run
        # during the next timed start
        for name, body in bodies.items():
            for i in range(repeats + 3):
                time.sleep(0.4 if name == "default" else 0.1)
                t0 = time.perf_counter()
                sid = client.start(**body).session_id
                if i >= 3:
                    out[name].append(_ms(t0))
                client.close(sid)
        sid = client.start(profile={"id": pid, "persist": True}).session_id
        for _ in range(repeats):
            time.sleep(0.05)
            t0 = time.perf_counter()
            client.save_profile(sid)
            out["save_http"].append(_ms(t0))
        client.close(sid)
    return out


async def raw_starts(state: dict[str, Any], repeats: int) -> dict[str, list[float]]:
    args = [*launch_args(), "--remote-debugging-port=0"]  # as the server's (SESSIONS_CDP)
    out: dict[str, list[float]] = {"raw": [], "raw_default": []}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=find_browser().executable, args=args, headless=True
        )
        try:
            for i in range(repeats + 3):
                for name, kwargs in (("raw", {"storage_state": state}), ("raw_default", {})):
                    await asyncio.sleep(0.1)
                    t0 = time.perf_counter()
                    context = await browser.new_context(**kwargs)  # type: ignore[arg-type]
                    await context.new_page()
                    if i >= 3:
                        out[name].append(_ms(t0))
                    await context.close()
        finally:
            await browser.close()
    return out


class _Live:
    def __init__(self, context: Any) -> None:
        self.context = context


async def saves(uri: str, state: dict[str, Any], repeats: int) -> dict[str, list[float]]:
    """The write-back at close, timed on the room's own path; raw ``storage_state()`` of the
    same context beside it."""
    settings = load({"SESSIONS_PROFILE_STORE": uri, "SESSIONS_PROFILE_KEY": KEY}, environ=False)
    room = ProfileRoom(settings, lambda: datetime.now(UTC))
    principal = "bench"
    pid = (await asyncio.to_thread(room.create, principal, "bench")).profile_id
    args = [*launch_args(), "--remote-debugging-port=0"]
    out: dict[str, list[float]] = {"ours": [], "raw": []}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=find_browser().executable, args=args, headless=True
        )
        try:
            context = await browser.new_context(storage_state=state)  # type: ignore[arg-type]
            await context.new_page()
            now = datetime.now(UTC)
            record = SessionRecord("bench-session", principal, now, now, 5, False)
            record.profile = SessionProfile(profile_id=pid, persist=True)
            store, _ = room.opened()
            await asyncio.to_thread(
                store.lock, owner_of(principal), pid, record.session_id, LEASE_SECONDS
            )
            room._held[record.session_id] = _Hold(principal, pid, room._known(principal, pid))
            for i in range(repeats + 3):
                await asyncio.sleep(0.05)
                t0 = time.perf_counter()
                info = await room._write_back(record, _Live(context), raise_errors=True)  # type: ignore[arg-type]
                if i >= 3:
                    out["ours"].append(_ms(t0))
                await asyncio.sleep(0.05)
                t0 = time.perf_counter()
                await context.storage_state(indexed_db=True)
                if i >= 3:
                    out["raw"].append(_ms(t0))
            assert info is not None and len(info.domains) >= ORIGINS
            await context.close()
        finally:
            await browser.close()
            await room.close()
    return out


def redis_url(procs: list[testing.ServerProcess]) -> str:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is missing: run `make redis`")
    port = testing.free_port()
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    procs.append(testing.start_process(args, f"redis://127.0.0.1:{port}"))
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.RedisError:
            time.sleep(0.05)
    client.close()
    return f"redis://127.0.0.1:{port}/0"


def row(name: str, ours: list[float], theirs: list[float] | None, goal: str) -> str:
    ratio = f"{p50(ours) / p50(theirs):.2f}x" if theirs else "-"
    raw = f"{p50(theirs):.1f}" if theirs else "-"
    return f"| {name:<44} | {p50(ours):>9.1f} | {raw:>9} | {ratio:>6} | {goal:<8} |"


def main(quick: bool = False) -> int:
    repeats = 10 if quick else 30
    state = fifty_cookie_state()
    load_at_start = os.getloadavg()
    procs: list[testing.ServerProcess] = []
    with tempfile.TemporaryDirectory(prefix="bench-profiles-") as tmp:
        try:
            print(f"profiles bench: {repeats} repeats, load {load_at_start}", flush=True)
            ours = server_starts(state, repeats, os.path.join(tmp, "server-store"))
            raw = asyncio.run(raw_starts(state, repeats))
            cookies_only = {"cookies": state["cookies"], "origins": []}
            file_saves = asyncio.run(saves(f"file://{tmp}/store", cookies_only, repeats))
            url = redis_url(procs)
            redis_saves = asyncio.run(saves(url, cookies_only, repeats))
            full_saves = asyncio.run(saves(f"file://{tmp}/store2", state, max(5, repeats // 3)))
        finally:
            for proc in procs:
                proc.stop()
    print(
        "\nProfiles (issue 18): p50 ms; a 50-cookie, 5-origin state (5 localStorage items "
        "each); server over HTTP with the typed client, raw Playwright in-process\n"
    )
    print(f"| {'operation':<44} |   ours ms |    raw ms |  ratio | goal     |")
    print(f"|{'-' * 46}|-----------|-----------|--------|----------|")
    print(row("start with the profile", ours["profile"], raw["raw"], "≤ 1.2x"))
    print(row("start with the state inline (storage_state)", ours["inline"], raw["raw"], "≤ 1.2x"))
    print(row("default start (warm pool)", ours["default"], raw["raw_default"], "~0.1x"))
    print(
        row(
            "save at close, 50 cookies, file store",
            file_saves["ours"],
            file_saves["raw"],
            "≤ 15 ms",
        )
    )
    print(
        row(
            "save at close, 50 cookies, Redis store",
            redis_saves["ours"],
            redis_saves["raw"],
            "≤ 25 ms",
        )
    )
    print(
        row("save at close, + 5 origins' storage, file", full_saves["ours"], full_saves["raw"], "-")
    )
    print(row("POST /session/<id>/profile/save (HTTP)", ours["save_http"], None, "-"))
    print(
        "\nraw: new_context(storage_state=…) + new_page(); default: new_context() + new_page(); "
        "save: context.storage_state(indexed_db=True) of the same context (ours adds sealing "
        "and the store's write). "
        f"Load average at start {load_at_start[0]:.2f}, at end {os.getloadavg()[0]:.2f}.",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main("--quick" in sys.argv))
