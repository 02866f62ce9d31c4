"""Accessible names: observe.js's own algorithm against Chromium's accessibility tree.

For each page of the demo site and the perception test site, on one raw Playwright page:

- ``observe.js``: our observation (names computed in the page, ids tagged);
- ``+ AX tree``: the same, plus CDP ``Accessibility.getFullAXTree`` and
  ``DOM.getDocument(pierce)`` to map each tagged element to Chromium's name and role
  (what "prefer the browser's names" would cost on top of the walk we need anyway for
  visibility, ids, ``covered`` and values);
- ``aria_snapshot(ai)``: Playwright's snapshot for AI (roles, names and refs, YAML).

It prints median milliseconds per page and every action whose name or role differs from
Chromium's. Run from the repo root: ``python scripts/names_bench.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from playwright.async_api import CDPSession, Page, async_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_sessions.host.browser import find_browser, launch_args
from flask_sessions.page.scripts import OBSERVE_JS
from scripts.demo_site import start_demo_site
from tests.perception_site import start_site

ARGS: dict[str, Any] = {"limit": 300, "offset": 0, "find": None, "maxText": 20000, "counters": {}}


async def observe(page: Page) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(await page.evaluate(OBSERVE_JS, ARGS))
    return data


async def ax_names(cdp: CDPSession) -> dict[str, tuple[str, str]]:
    """data-fs-id -> (Chromium's role, Chromium's name), for the tagged elements."""
    tree, doc = await asyncio.gather(
        cdp.send("Accessibility.getFullAXTree"),
        cdp.send("DOM.getDocument", {"depth": -1, "pierce": True}),
    )
    tagged: dict[int, str] = {}
    stack = [doc["root"]]
    while stack:
        node = stack.pop()
        attrs = node.get("attributes") or []
        for key, value in zip(attrs[::2], attrs[1::2], strict=True):
            if key == "data-fs-id":
                tagged[node["backendNodeId"]] = value
        stack += node.get("children", []) + node.get("shadowRoots", [])
    out = {}
    for ax in tree["nodes"]:
        ident = tagged.get(ax.get("backendDOMNodeId", -1))
        if ident:
            role = (ax.get("role") or {}).get("value", "")
            out[ident] = (str(role), str((ax.get("name") or {}).get("value", "")))
    return out


async def timed(fn: Any, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        began = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples)


async def main(repeats: int) -> None:
    demo, demo_base = start_demo_site()
    site = start_site()
    pages = [demo_base + p for p in ("/login", "/profile", "/report")] + [
        site.base + p for p in ("/names", "/shadow", "/selects", "/dialogs", "/covered", "/long")
    ]
    choice = find_browser(None)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=choice.executable, args=launch_args(()), headless=True
        )
        page = await browser.new_page(viewport={"width": 1280, "height": 720})
        cdp = await page.context.new_cdp_session(page)
        print(
            f"{'page':<10} {'actions':>7} {'observe.js':>11} {'+ AX tree':>10} "
            f"{'aria ai':>8}  names or roles differing from Chromium's"
        )
        differ: list[str] = []
        for url in pages:
            await page.goto(url)
            data = await observe(page)
            ours = {a["id"]: (a["role"], a["name"]) for a in data["actions"]}
            chromium = await ax_names(cdp)
            t_ours = await timed(lambda: observe(page), repeats)
            t_ax = await timed(lambda: asyncio.gather(observe(page), ax_names(cdp)), repeats)
            t_aria = await timed(lambda: page.locator("body").aria_snapshot(mode="ai"), repeats)
            diffs = [
                f"{ident}: ours {ours[ident]!r}, Chromium {chromium.get(ident)!r}"
                for ident in ours
                if chromium.get(ident, ("", ""))[1] != ours[ident][1]
                or chromium.get(ident, ("", ""))[0] != ours[ident][0]
            ]
            differ += [f"{url.rsplit('/', 1)[1]} {d}" for d in diffs]
            name = "/" + url.rsplit("/", 1)[1]
            print(
                f"{name:<10} {len(ours):>7} {t_ours:>9.1f}ms {t_ax:>8.1f}ms {t_aria:>6.1f}ms"
                f"  {len(diffs)}"
            )
        await browser.close()
    for line in differ:
        print(" ", line)
    demo.shutdown()
    site.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    asyncio.run(main(parser.parse_args().repeats))
