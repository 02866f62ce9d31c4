"""``flask-sessions mcp`` driven by the official mcp SDK's own client, over stdio and over
streamable HTTP, against a real server (``python -m flask_sessions``, real Chromium) and
pages on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp_types import CallToolResult, ImageContent, TextContent

from flask_sessions.testing import ServerProcess, free_port, serve, start_process

from .conftest import html_pages, serving, wait_for

TOKEN = "mcp-secret-token-4711"
TOOLS = {
    "browser_start",
    "browser_observe",
    "browser_step",
    "browser_scrape",
    "browser_screenshot",
    "browser_close",
    "browser_list",
}
PAGES = {
    "/form": "<!doctype html><title>Form</title><form action='/hello'>"
    "<label>Name <input name='name'></label><button>Send</button></form>"
    "<a href='/about'>About</a>",
    "/about": "<!doctype html><title>About</title><h1>About</h1><p>All about us.</p>",
}


def _page(path: str) -> tuple[int, str, dict[str, str]]:
    if path.startswith("/hello"):
        name = path.partition("name=")[2]
        return 200, f"<!doctype html><title>Hello</title><p>Hello, {name}!</p>", {}
    return html_pages(PAGES, "<!doctype html><title>Missing</title>")(path)


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serving(_page) as base:
        yield base


@pytest.fixture(scope="module")
def api() -> Iterator[ServerProcess]:
    with serve(tokens=TOKEN) as server:
        yield server


def mcp_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONS_")}
    return {**env, "SESSIONS_MCP_TOKEN": TOKEN, **extra}


def stdio(api: ServerProcess) -> StdioServerParameters:
    command = [sys.executable, "-m", "flask_sessions", "mcp", "--url", api.base]
    return StdioServerParameters(command=command[0], args=command[1:], env=mcp_env())


def text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def ok(result: CallToolResult) -> str:
    assert not result.is_error, text(result)
    return text(result)


def action_id(observation: str, name: str) -> str:
    """The id of the action named ``name`` in a compact observation (``I1 textbox 'Name'``)."""
    for line in observation.splitlines():
        if f"'{name}'" in line:
            return line.split()[0]
    raise AssertionError(f"no action {name!r} in:\n{observation}")


async def drive(client: Client, site: str) -> list[str]:
    """The whole loop through the tools; every text they answered."""
    said: list[str] = []

    async def call(name: str, **args: Any) -> CallToolResult:
        result = await client.call_tool(name, args)
        said.append(text(result))
        return result

    said.append(ok(await call("browser_start")))
    seen = ok(await call("browser_observe", url=site + "/form"))
    assert "Page: Form" in seen
    ok(await call("browser_step", type="click", id=action_id(seen, "About")))
    assert "All about us." in ok(await call("browser_scrape"))
    ok(await call("browser_step", type="go_back"))
    seen = ok(await call("browser_observe"))
    filled = ok(
        await call(
            "browser_step", type="fill", id=action_id(seen, "Name"), value="Ada", press_enter=True
        )
    )
    assert filled.startswith("done:") and "Hello, Ada!" in filled
    shot = await call("browser_screenshot")
    assert not shot.is_error
    image = next(c for c in shot.content if isinstance(c, ImageContent))
    assert image.mime_type == "image/png"
    assert base64.b64decode(image.data)[:8] == b"\x89PNG\r\n\x1a\n"
    look = await call("browser_observe", screenshot=True)
    assert any(isinstance(c, ImageContent) for c in look.content)

    stale = await call("browser_step", type="click", id="B99")
    assert stale.is_error and "not in this session's last observation" in text(stale)
    gone = await call("browser_observe", session_id="no-such-session")
    assert gone.is_error and "HTTP 404" in text(gone)
    listed = ok(await call("browser_list"))
    current = [line for line in listed.splitlines() if line.startswith("* ")]
    assert len(current) == 1 and " active " in current[0]
    assert "closed" in ok(await call("browser_close"))
    return said


def test_stdio_tools_drive_a_session_and_errors_are_tool_errors(
    api: ServerProcess, site: str
) -> None:
    async def run() -> list[str]:
        async with Client(stdio(api)) as client:
            tools = (await client.list_tools()).tools
            assert {t.name for t in tools} == TOOLS
            for tool in tools:
                assert tool.description and "\n" not in tool.description.strip()
                assert tool.input_schema["type"] == "object"
            step = next(t for t in tools if t.name == "browser_step")
            assert "click" in str(step.input_schema["properties"]["type"])
            return await drive(client, site)

    said = asyncio.run(run())
    assert not any(TOKEN in s for s in said)  # the token never reaches the model
    with api.client() as ours:  # everything it started was closed
        assert all(r.status.value != "active" for r in ours.list())


def test_streamable_http_serves_the_same_tools(api: ServerProcess, site: str) -> None:
    port = free_port()
    command = [sys.executable, "-m", "flask_sessions", "mcp", "--url", api.base]
    command += ["--transport", "streamable-http", "--port", str(port)]
    mcp = start_process(command, f"http://127.0.0.1:{port}", mcp_env())
    try:

        def listening() -> bool:
            try:
                httpx.get(f"{mcp.base}/mcp", timeout=1)
            except httpx.HTTPError:
                return mcp.proc.poll() is not None
            return True

        assert wait_for(listening, 30) and mcp.proc.poll() is None, mcp.output()

        async def run() -> list[str]:
            async with Client(f"{mcp.base}/mcp") as client:
                assert {t.name for t in (await client.list_tools()).tools} == TOOLS
                return await drive(client, site)

        said = asyncio.run(run())
        assert not any(TOKEN in s for s in said)

        async def two_clients() -> tuple[str, str]:
            """Clients of the handshake protocol have MCP sessions: a current session each."""
            url = f"{mcp.base}/mcp"
            async with Client(url, mode="legacy") as a, Client(url, mode="legacy") as b:
                first = ok(await a.call_tool("browser_start", {}))
                second = ok(await b.call_tool("browser_start", {}))
                mine = ok(await a.call_tool("browser_list", {}))
                ok(await a.call_tool("browser_close", {}))
                ok(await b.call_tool("browser_close", {}))
            return first.split()[2], f"{second.split()[2]}|{mine}"

        a_id, rest = asyncio.run(two_clients())
        b_id, listed = rest.split("|", 1)
        assert a_id != b_id
        assert f"* {a_id} active" in listed and f"* {b_id}" not in listed
        assert TOKEN not in "".join(mcp.stdout + mcp.stderr)
    finally:
        mcp.stop()


def test_the_cli_says_what_is_missing(api: ServerProcess) -> None:
    command = [sys.executable, "-m", "flask_sessions", "mcp", "--url", api.base]
    env = mcp_env()
    del env["SESSIONS_MCP_TOKEN"]
    no_token = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert no_token.returncode == 2 and "SESSIONS_MCP_TOKEN" in no_token.stderr
    without_mcp = (
        "import sys; sys.modules['mcp'] = None; from flask_sessions.__main__ import main; "
        f"sys.exit(main(['mcp', '--url', {api.base!r}]))"
    )
    missing = subprocess.run(
        [sys.executable, "-c", without_mcp],
        env=mcp_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert "pip install 'flask_sessions[mcp]'" in missing.stderr
