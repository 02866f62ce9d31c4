"""``make bench ARGS=--perception``: what perception costs, beside raw Playwright, in one run.

Raw Playwright first (same Chromium executable and flags, its own context, the same init
script), then two real servers (``python -m flask_sessions``): one as configured by default
and one with ``SESSIONS_SETTLE_MS=0`` (no settling after a step), timed alternately so the
machine's noise falls on both alike. Never two sides at the same time on one row.

Rows (p50/p95 ms; ratio of p50s):
- ``observe /report`` and ``step click`` (``/pages/1`` → ``/pages/2``): the perception rows
  of the main bench, beside raw ``goto + content()`` and ``click`` until loaded;
- ``observe /big``: a page of 5,000 elements, over HTTP, beside raw ``goto + content()``;
- ``observe.js /big, box on / off``: the page script alone (``page.evaluate``), with the
  geometry (``box``, ``scroll_container``) and without: the cost of the boxes (goal ≤ 1.1x);
- ``press_key Tab`` on a static page (``/report``): settled, beside the server without
  settling (paired Δ: the cost of the settling, goal ≤ +10 ms) and raw ``keyboard.press +
  content()``;
- ``drag``: the card of ``/board`` from one column to the other and back (HTML5 drag and
  drop) over HTTP, beside raw ``locator.drag_to``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from playwright.async_api import Page, async_playwright

from flask_sessions.host.browser import find_browser, launch_args
from flask_sessions.page.scripts import OBSERVE_JS, QUIET_INIT_JS
from scripts.bench import (
    FAILURES,
    VIEWPORT,
    BenchError,
    Client,
    Progress,
    code_line,
    format_table,
    load_line,
    log,
    machine_info,
    machine_line,
    other_load,
    percentile,
    run_server,
)
from scripts.demo_site import start_demo_site

Samples = dict[str, list[float]]
OBSERVE_ARGS: dict[str, Any] = {
    "limit": 300,
    "offset": 0,
    "find": None,
    "maxText": 20000,
    "counters": {},
    "frameCount": 0,
    "viewW": VIEWPORT["width"],
    "viewH": VIEWPORT["height"],
}


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


async def _raw(site: str, repeats: int, warmup: int, pause: float) -> Samples:
    """The raw-Playwright side of every row, and observe.js with and without boxes."""
    samples: Samples = {}

    async def timed(name: str, setup: Callable[[], Any], work: Callable[[], Any]) -> None:
        with Progress(f"raw: {name}", warmup + repeats) as bar:
            for i in range(warmup + repeats):
                await setup()
                await asyncio.sleep(pause)
                t0 = time.perf_counter()
                await work()
                if i >= warmup:
                    samples.setdefault(name, []).append(_ms(t0))
                bar.advance()

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=find_browser().executable, args=launch_args()
        )
        context = await browser.new_context(viewport=VIEWPORT)
        await context.add_init_script(QUIET_INIT_JS)
        page = await context.new_page()

        async def nothing() -> None:
            return None

        async def goto_content(path: str) -> None:
            await page.goto(site + path, wait_until="load")
            await page.content()

        async def click() -> None:
            await page.click("a")
            await page.wait_for_url("**/pages/2", wait_until="load")
            await page.content()

        async def at(path: str) -> None:
            if not page.url.endswith(path):
                await page.goto(site + path, wait_until="load")

        await timed("observe /report", nothing, lambda: goto_content("/report"))
        await timed("step click", lambda: page.goto(site + "/pages/1"), click)
        await timed("observe /big", nothing, lambda: goto_content("/big"))
        await at("/big")
        # with and without the boxes alternately, so the machine's noise falls on both
        with Progress("raw: observe.js /big, box on / off", warmup + repeats) as bar:
            for i in range(warmup + repeats):
                for geometry in (True, False) if i % 2 == 0 else (False, True):
                    await asyncio.sleep(pause)
                    t0 = time.perf_counter()
                    args = {**OBSERVE_ARGS, "geometry": geometry}
                    json.loads(await page.evaluate(OBSERVE_JS, args))
                    if i >= warmup:
                        name = f"observe.js /big, box {'on' if geometry else 'off'}"
                        samples.setdefault(name, []).append(_ms(t0))
                bar.advance()

        async def key(page: Page = page) -> None:
            await page.keyboard.press("Tab")
            await page.content()

        await timed("press_key Tab", lambda: at("/report"), key)
        await at("/board")
        moves = ["#right", "#left"]

        async def drag() -> None:
            to = moves[0]
            moves.reverse()
            await page.locator("#card").drag_to(page.locator(to))
            if not await page.locator(f"{to} #card").count():
                raise BenchError(f"raw drag: the card did not land in {to}")

        await timed("drag", nothing, drag)
        await browser.close()
    return samples


def _server_rows(
    ours: Client, plain: Client, site: str, repeats: int, warmup: int, pause: float
) -> tuple[Samples, Samples]:
    """Each row on the default server; press_key also on the one that does not settle,
    the two alternating within each repeat."""
    sides = {"ours": ours, "no settle": plain}
    sessions = {name: c.start_id({"keep_alive": True}) for name, c in sides.items()}
    samples: Samples = {}
    unsettled: Samples = {}
    board = ["R", "L"]

    def observe(client: Client, sid: str, path: str) -> Any:
        seen = client.api.observe(sid, url=site + path).observation
        if seen.error or not seen.url.endswith(path):
            raise BenchError(f"observe {path}: {seen.error}")
        return seen

    def click(client: Client, sid: str) -> None:
        answer = client.api.step(sid, type="click", selector="a")
        if not answer.success or not answer.observation.url.endswith("/pages/2"):
            raise BenchError(f"step click: {answer.message}")

    def key(client: Client, sid: str) -> None:
        answer = client.api.step(sid, type="press_key", key="Tab")
        if not answer.success:
            raise BenchError(f"press_key: {answer.message}")

    def drag(client: Client, sid: str) -> None:
        to = "#right" if board[0] == "R" else "#left"
        board.reverse()
        answer = client.api.step(sid, type="drag", selector="#card", to_selector=to)
        if not answer.success or "HTML5 drag and drop" not in answer.message:
            raise BenchError(f"drag: {answer.message}")

    sid = sessions["ours"]
    rows: list[tuple[str, Callable[[], Any], Callable[[], Any], Callable[[Client, str], Any]]] = [
        ("observe /report", lambda: None, lambda: None, lambda c, s: observe(c, s, "/report")),
        ("step click", lambda: None, lambda: observe(ours, sid, "/pages/1"), click),
        ("observe /big", lambda: None, lambda: None, lambda c, s: observe(c, s, "/big")),
        ("drag", lambda: observe(ours, sid, "/board"), lambda: None, drag),
    ]
    try:
        for name, once, setup, work in rows:
            once()
            with Progress(f"flask_sessions: {name}", warmup + repeats) as bar:
                for i in range(warmup + repeats):
                    setup()
                    time.sleep(pause)
                    t0 = time.perf_counter()
                    work(ours, sid)
                    if i >= warmup:
                        samples.setdefault(name, []).append(_ms(t0))
                    bar.advance()
        for name, client in sides.items():
            observe(client, sessions[name], "/report")
        with Progress("flask_sessions: press_key Tab, settled / not", warmup + repeats) as bar:
            for i in range(warmup + repeats):
                order = ("ours", "no settle") if i % 2 == 0 else ("no settle", "ours")
                for side in order:
                    time.sleep(pause)
                    t0 = time.perf_counter()
                    key(sides[side], sessions[side])
                    if i >= warmup:
                        into = samples if side == "ours" else unsettled
                        into.setdefault("press_key Tab", []).append(_ms(t0))
                bar.advance()
    finally:
        for name, client in sides.items():
            with suppress(*FAILURES):
                client.delete(sessions[name])
    return samples, unsettled


def _p(samples: list[float] | None) -> str:
    if not samples:
        return "-"
    return f"{percentile(samples, 50):.1f} / {percentile(samples, 95):.1f}"


def _ratio(a: list[float] | None, b: list[float] | None) -> str:
    if not a or not b:
        return "-"
    return f"{percentile(a, 50) / percentile(b, 50):.2f}x"


def table(ours: Samples, unsettled: Samples, raw: Samples) -> str:
    headers = ["operation", "flask_sessions p50/p95 ms", "raw p50/p95 ms", "ratio p50", "goal"]
    rows = [
        [name, _p(ours.get(name)), _p(raw.get(name)), _ratio(ours.get(name), raw.get(name)), ""]
        for name in ("observe /report", "step click", "observe /big", "drag")
    ]
    on, off = raw.get("observe.js /big, box on"), raw.get("observe.js /big, box off")
    rows.append(
        ["observe.js /big, box on / off (in the page)", _p(on), _p(off), _ratio(on, off), "≤ 1.1x"]
    )
    key, plain = ours.get("press_key Tab"), unsettled.get("press_key Tab")
    paired = (
        percentile([a - b for a, b in zip(key or [], plain or [], strict=False)], 50)
        if key and plain
        else None
    )
    rows.append(
        [
            "press_key Tab: settled / SESSIONS_SETTLE_MS=0",
            _p(key),
            _p(plain),
            _ratio(key, plain) + (f" (paired Δ {paired:+.1f} ms)" if paired is not None else ""),
            "≤ +10 ms",
        ]
    )
    rows.append(
        [
            "press_key Tab (raw: keyboard.press + content())",
            _p(key),
            _p(raw.get("press_key Tab")),
            _ratio(key, raw.get("press_key Tab")),
            "",
        ]
    )
    return format_table(headers, rows)


def main(quick: bool = False) -> int:
    repeats, warmup, pause = (5, 1, 0.1) if quick else (30, 3, 0.1)
    server, site = start_demo_site()
    result: dict[str, Any] = {}
    try:
        print(machine_line(machine_info()))
        print(code_line())
        print(load_line("at start", other_load()), flush=True)
        log("raw Playwright (alone)")
        raw = asyncio.run(_raw(site, repeats, warmup, pause))
        with (
            run_server(50, None) as ours,
            run_server(50, None, {"SESSIONS_SETTLE_MS": "0"}) as plain,
        ):
            a, b = ours.client(), plain.client()
            try:
                samples, unsettled = _server_rows(a, b, site, repeats, warmup, pause)
            finally:
                a.close()
                b.close()
        result = {"flask_sessions": samples, "no_settle": unsettled, "raw": raw}
        print(
            f"Perception ({repeats} repeats after {warmup} warm-up, {pause * 1000:.0f} ms "
            "pause before each; one client)"
        )
        print(table(samples, unsettled, raw))
        print(load_line("at end", other_load()), flush=True)
    except FAILURES as exc:
        print(f"FAILED: {exc}")
        return 1
    finally:
        server.shutdown()
        server.server_close()
    log(f"perception bench done: {len(result)} sides")
    return 0
