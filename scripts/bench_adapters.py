"""``make bench ARGS=--adapters``: Notte's SDK and the MCP server beside our own API, in one run.

Prints, for the demo site's login page on one real server (``python -m flask_sessions``):

1. Notte's ``session.observe()`` through the Notte routes against our ``/env/observe`` through
   ``flask_sessions.client`` doing the same work (the actions, the text and a JPEG of the
   viewport, as a Notte observation always has), p50 and the ratio (goal ≤ 1.1×); our observe
   without a screenshot beside them, for scale.
2. An MCP ``browser_observe`` round trip over stdio (the mcp SDK's client, ``flask-sessions
   mcp`` as its subprocess) against the same call through ``AsyncSessionsClient``, p50 and the
   ratio (goal ≤ 1.2×); and an MCP round trip that makes no HTTP call (a tool error at
   once), the transport's own cost.

The timed calls alternate between the two sides, so drift in the machine's load hits both.
Everything listens on 127.0.0.1; every process started here is stopped at the end.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from flask_sessions import testing
from flask_sessions.client import AsyncSessionsClient, SessionsClient
from scripts.demo_site import start_demo_site

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-adapters-token"


def p50(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def alternate(
    a: Callable[[], Any], b: Callable[[], Any], repeats: int, warmup: int
) -> tuple[list[float], list[float]]:
    """Time ``a`` and ``b`` in turns (seconds each)."""
    out: tuple[list[float], list[float]] = ([], [])
    for i in range(warmup + repeats):
        for fn, samples in ((a, out[0]), (b, out[1])):
            t0 = time.perf_counter()
            fn()
            if i >= warmup:
                samples.append(time.perf_counter() - t0)
    return out


async def alternate_async(
    a: Callable[[], Awaitable[Any]], b: Callable[[], Awaitable[Any]], repeats: int, warmup: int
) -> tuple[list[float], list[float]]:
    out: tuple[list[float], list[float]] = ([], [])
    for i in range(warmup + repeats):
        for fn, samples in ((a, out[0]), (b, out[1])):
            t0 = time.perf_counter()
            await fn()
            if i >= warmup:
                samples.append(time.perf_counter() - t0)
    return out


def notte_section(base: str, page: str, repeats: int, warmup: int) -> list[list[str]]:
    os.environ["DISABLE_TELEMETRY"] = "true"
    os.environ["NOTTE_ENABLE_NEST_ASYNCIO"] = "false"
    import notte_sdk.endpoints.base as notte_base
    from notte_sdk import NotteClient

    notte_base._version_check_performed = True  # no PyPI look-up from a benchmark
    client = NotteClient(api_key=TOKEN, server_url=base + "/notte", max_retries=0)
    with client.Session() as s, SessionsClient(base, TOKEN) as ours:
        s.execute(type="goto", url=page)
        sid = s.session_id
        notte, same = alternate(
            lambda: s.observe(),
            lambda: ours.observe(sid, screenshot=True, screenshot_format="jpeg"),
            repeats,
            warmup,
        )
        _, bare = alternate(lambda: None, lambda: ours.observe(sid), repeats, warmup)
    return [
        ["Notte SDK observe (Notte routes)", f"{p50(notte):.1f}", f"{p50(notte) / p50(same):.2f}x"],
        ["/env/observe + JPEG (client)", f"{p50(same):.1f}", "1.00x"],
        ["/env/observe, no screenshot", f"{p50(bare):.1f}", f"{p50(bare) / p50(same):.2f}x"],
    ]


async def mcp_section(base: str, page: str, repeats: int, warmup: int) -> list[list[str]]:
    from mcp import Client, StdioServerParameters

    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "flask_sessions", "mcp", "--url", base],
        env={"SESSIONS_MCP_TOKEN": TOKEN},
        cwd=str(ROOT),
    )
    async with Client(server) as mcp, AsyncSessionsClient(base, TOKEN) as ours:
        first = await mcp.call_tool("browser_observe", {"url": page})
        assert not first.is_error, first.content
        listed = await ours.list("active")
        sid = listed[-1].session_id

        async def through_mcp() -> None:
            result = await mcp.call_tool("browser_observe", {"session_id": sid})
            assert not result.is_error

        async def through_client() -> None:
            await ours.observe(sid)

        async def no_http() -> None:  # the MCP round trip alone: a tool error at once
            result = await mcp.call_tool("browser_upload", {})
            assert result.is_error

        via_mcp, direct = await alternate_async(through_mcp, through_client, repeats, warmup)
        bare, _ = await alternate_async(no_http, lambda: asyncio.sleep(0), repeats, warmup)
    ratio = p50(via_mcp) / p50(direct)
    return [
        ["MCP browser_observe (stdio)", f"{p50(via_mcp):.1f}", f"{ratio:.2f}x"],
        ["AsyncSessionsClient.observe", f"{p50(direct):.1f}", "1.00x"],
        ["MCP round trip, no HTTP", f"{p50(bare):.1f}", f"{p50(bare) / p50(direct):.2f}x"],
    ]


def table(rows: list[list[str]]) -> str:
    headers = ["operation", "p50 ms", "ratio"]
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(3)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def main(quick: bool = False) -> int:
    repeats, warmup = (10, 2) if quick else (40, 5)
    site, site_base = start_demo_site()
    try:
        with testing.serve(tokens=TOKEN, timeout=60, cwd=ROOT) as server:
            page = site_base + "/login"
            print("Notte SDK vs /env/observe (goal <= 1.1x)", file=sys.stderr)
            notte = notte_section(server.base, page, repeats, warmup)
            print("MCP over stdio vs the client (goal <= 1.2x)", file=sys.stderr)
            mcp = asyncio.run(mcp_section(server.base, page, repeats, warmup))
    finally:
        site.shutdown()
        site.server_close()
    load = os.getloadavg()
    print(
        f"\nAdapters ({repeats} timed calls each, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})"
    )
    print(table(notte))
    print()
    print(table(mcp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(quick="--quick" in sys.argv))
