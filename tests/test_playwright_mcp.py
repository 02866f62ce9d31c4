"""Microsoft's Playwright MCP (``@playwright/mcp``, pinned in package.json) attached to one of our
sessions through its ``cdp_url``, spoken to over stdio JSON-RPC as an MCP client does.

It navigates and snapshots a local page; our REST observe sees the same URL, a REST step is in
its next snapshot, and another session's page never shows in it. It runs on the server's
Chromium (Debian's chromium-headless-shell here) and downloads no browser of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import pytest

from flask_sessions.testing import ServerProcess, serve

from .conftest import html_pages, serving

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / "node_modules" / "@playwright" / "mcp" / "cli.js"
TOKEN = "pw-mcp-token"
PAGES = {
    "/mine": "<!doctype html><title>Mine</title><h1>My page</h1><a href='/next'>onwards</a>",
    "/next": "<!doctype html><title>Next</title><p>the next page</p>",
    "/secret": "<!doctype html><title>Secret</title><p>only session B sees this</p>",
}

pytestmark = [
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
    pytest.mark.skipif(
        not CLI.is_file(),
        reason="run scripts/install-node-deps (make test does) for @playwright/mcp",
    ),
]


class PlaywrightMcp:
    """``node cli.js --cdp-endpoint … --cdp-header …`` and a JSON-RPC conversation with it."""

    def __init__(self, cdp_url: str, token: str, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [
                "node",
                str(CLI),
                "--cdp-endpoint",
                cdp_url,
                "--cdp-header",
                f"Authorization: Bearer {token}",
            ],
            cwd=cwd,
            # its browser registry (files naming the browsers it drives) goes there, not ~/.cache
            env={**os.environ, "XDG_CACHE_HOME": str(cwd / "cache")},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: Queue[str] = Queue()
        self.ids = iter(range(1, 1_000_000))
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line)

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        self._send({"jsonrpc": "2.0", "method": method, **({"params": params} if params else {})})

    def request(self, method: str, params: dict[str, Any], timeout: float = 60) -> Any:
        number = next(self.ids)
        self._send({"jsonrpc": "2.0", "id": number, "method": method, "params": params})
        while True:
            try:
                message = json.loads(self.lines.get(timeout=timeout))
            except Empty:
                raise AssertionError(f"no answer to {method}: {self.stderr()}") from None
            if message.get("id") == number:
                assert "error" not in message, message
                return message["result"]

    def call(self, tool: str, **arguments: Any) -> str:
        result = self.request("tools/call", {"name": tool, "arguments": arguments})
        text = "\n".join(c["text"] for c in result["content"] if c["type"] == "text")
        assert not result.get("isError"), text
        return text

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def stderr(self) -> str:
        return (
            ""
            if self.proc.poll() is None
            else (self.proc.stderr.read() if self.proc.stderr else "")
        )

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(scope="module")
def api() -> Iterator[ServerProcess]:
    with serve(tokens=TOKEN) as server:
        yield server


def test_playwright_mcp_drives_a_session_and_sees_only_it(
    api: ServerProcess, tmp_path: Path
) -> None:
    with serving(html_pages(PAGES, "missing")) as site, api.client() as client:
        mine = client.start()
        other = client.start(url=site + "/secret")  # the same token's other session
        assert mine.cdp_url is not None
        mcp = PlaywrightMcp(mine.cdp_url, TOKEN, tmp_path)
        try:
            hello = mcp.request(
                "initialize",
                {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "flask_sessions-tests", "version": "1"},
                },
            )
            assert hello["serverInfo"]["name"] == "Playwright"
            mcp.notify("notifications/initialized")
            tools = {t["name"] for t in mcp.request("tools/list", {})["tools"]}
            assert {"browser_navigate", "browser_snapshot", "browser_tabs"} <= tools

            went = mcp.call("browser_navigate", url=site + "/mine")
            assert "Page Title: Mine" in went
            assert client.observe(mine.session_id).observation.url == site + "/mine"
            snapshot = mcp.call("browser_snapshot")
            assert "My page" in snapshot and "onwards" in snapshot

            client.step(mine.session_id, type="goto", url=site + "/next")  # a REST step…
            snapshot = mcp.call("browser_snapshot")  # …is in its next snapshot
            assert "the next page" in snapshot and site + "/next" in snapshot

            tabs = mcp.call("browser_tabs", action="list")
            assert "/next" in tabs
            for seen in (tabs, snapshot):
                assert "/secret" not in seen and "only session B" not in seen
            assert client.get(other.session_id).page.url == site + "/secret"  # type: ignore[union-attr]
        finally:
            mcp.close()
            client.close(mine.session_id)
            client.close(other.session_id)
