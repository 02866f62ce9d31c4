"""``flask-sessions mcp``: an MCP server (the official ``mcp`` SDK) over ``flask_sessions.client``.

It gives a model browser tools on a flask_sessions server (standalone, mounted in an app, or a
cluster front: it only speaks HTTP to it)::

    SESSIONS_MCP_TOKEN=tok flask-sessions mcp --url http://127.0.0.1:8000          # stdio
    SESSIONS_MCP_TOKEN=tok flask-sessions mcp --transport streamable-http --port 8931

Tools: ``browser_start``, ``browser_observe``, ``browser_step``, ``browser_scrape``,
``browser_screenshot``, ``browser_close``, ``browser_list``. Each MCP client has a current
session, so a model need not carry ids: stdio serves one client; over streamable HTTP each
MCP session (``Mcp-Session-Id``) has its own, and clients of the stateless 2026-07-28
protocol, which have no MCP session, share the server's (give each agent its own server, or
pass ``session_id``, which every tool takes). Every error answer of the server becomes a tool
error (``isError``) with the server's message. The token comes from ``SESSIONS_MCP_TOKEN``
and goes only into the Authorization header: never printed, logged or put in a result.
Sessions this server started are closed when it exits; others end by their idle timeout.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ImageContent, TextContent, ToolAnnotations
from pydantic import Field

from flask_sessions.client import AsyncSessionsClient, SessionNotFound, SessionsError
from flask_sessions.schemas import Observation, SessionResponse, Status

log = logging.getLogger("flask_sessions.mcp")

TOKEN_ENV = "SESSIONS_MCP_TOKEN"
MAX_TEXT = 4000  # characters of page text in an observation (the rest: browser_scrape)
DEFAULT_SLOT = "default"

Content = list[TextContent | ImageContent]
SessionId = Annotated[
    str | None,
    Field(description="a session from browser_list instead of this client's current one"),
]


def _text(value: str) -> TextContent:
    return TextContent(type="text", text=value)


def compact(seen: Observation, max_text: int = MAX_TEXT) -> str:
    """An observation as a model reads it best: the page, its actions by id, its text."""
    head = f"Page: {seen.title or '(no title)'} - {seen.url}"
    if seen.http_status is not None:
        head += f" [HTTP {seen.http_status}]"
    lines = [head]
    if seen.error:
        lines.append(f"Error: {seen.error}")
    if len(seen.tabs) > 1:
        lines.append(
            "Tabs: " + ", ".join(f"{t.index}{'*' if t.current else ''} {t.url}" for t in seen.tabs)
        )
    if seen.dialog is not None:
        lines.append(f"Dialog ({seen.dialog.type}, {seen.dialog.answer}): {seen.dialog.message}")
    lines += [f"Warning: {w}" for w in seen.warnings]
    shown = len(seen.actions)
    more = (
        f" of {seen.actions_total}; browser_observe(offset=…) or find=… for more"
        if seen.actions_truncated
        else ""
    )
    lines.append(f"Actions ({shown}{more}):")
    for a in seen.actions:
        line = f"{a.id} {a.role} {a.name!r}" if a.name else f"{a.id} {a.role}"
        if a.value:
            line += f" = {a.value[:80]!r}"
        if not a.enabled:
            line += " (disabled)"
        if a.covered and a.covered_by:
            line += f" (covered by {a.covered_by})"
        if a.frame:
            line += f" (frame {a.frame})"
        lines.append(line)
    text = seen.text[:max_text]
    cut = (
        " (cut: browser_scrape for all of it)"
        if seen.text_truncated or len(seen.text) > max_text
        else ""
    )
    lines += [f"Text{cut}:", text]
    return "\n".join(lines)


def _record(record: SessionResponse) -> str:
    page = f" {record.page.title!r} {record.page.url}" if record.page is not None else ""
    why = f" ({record.error})" if record.error else ""
    return f"{record.session_id} {record.status.value}{why}{page}"


class Bridge:
    """This MCP server's clients and their current sessions."""

    def __init__(self, client: AsyncSessionsClient) -> None:
        self.client = client
        self.current: dict[str, str] = {}  # MCP client -> its current session
        self.started: set[str] = set()  # every session this server started (closed at exit)

    @staticmethod
    def slot(ctx: Context) -> str:
        """Which MCP client asks: its MCP session over HTTP, else the one client."""
        headers = ctx.headers or {}
        return headers.get("mcp-session-id") or DEFAULT_SLOT

    async def start(self, ctx: Context, **fields: Any) -> SessionResponse:
        slot = self.slot(ctx)
        previous = self.current.pop(slot, None)
        if previous is not None:  # one current session per client: the last one is closed
            with contextlib.suppress(SessionsError):
                await self.client.close(previous)
        record = await self.client.start(**fields)
        self.current[slot] = record.session_id
        self.started.add(record.session_id)
        return record

    async def session(self, ctx: Context, session_id: str | None) -> str:
        """The session to act on: the given one, this client's current one, or a new one."""
        if session_id:
            return session_id
        current = self.current.get(self.slot(ctx))
        if current is not None:
            return current
        return (await self.start(ctx)).session_id

    async def close_all(self) -> None:
        for session_id in list(self.started):
            with contextlib.suppress(SessionsError):
                await self.client.close(session_id)
        self.started.clear()
        self.current.clear()


@contextlib.asynccontextmanager
async def _errors() -> AsyncIterator[None]:
    """Our error answers as tool errors, with the server's own message."""
    try:
        yield
    except SessionsError as exc:
        raise ToolError(str(exc)) from None


def build_server(client: AsyncSessionsClient) -> MCPServer[Any]:
    """The MCP server whose tools drive ``client``'s server."""
    bridge = Bridge(client)

    @contextlib.asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[dict[str, Any]]:
        try:
            yield {}
        finally:  # shielded: a Ctrl-C or a closed stdin still closes what we started
            with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                with contextlib.suppress(Exception):
                    await bridge.close_all()
                with contextlib.suppress(Exception):
                    await client.close_client()

    server: MCPServer[Any] = MCPServer(
        "flask_sessions",
        instructions=(
            "Drive a real Chromium browser: browser_start (or just browser_observe with a url), "
            "then browser_observe to see the page's actions by id, browser_step to act on one, "
            "browser_scrape to read the page, browser_close when done."
        ),
        lifespan=lifespan,
        log_level="WARNING",
    )
    readonly = ToolAnnotations(read_only_hint=True, open_world_hint=True)

    @server.tool(
        description="Start a new browser session (closing this client's previous one), "
        "optionally opening a URL."
    )
    async def browser_start(
        ctx: Context,
        url: Annotated[str | None, Field(description="http(s) URL to open first")] = None,
        timeout_minutes: Annotated[
            int | None, Field(description="idle minutes before the session closes (1-29)")
        ] = None,
        keep_alive: Annotated[
            bool, Field(description="no idle timeout (the server's lifetime cap still applies)")
        ] = False,
        profile: Annotated[
            str | None, Field(description="a saved profile to load (not available yet)")
        ] = None,
        record: Annotated[
            bool, Field(description="record the session (not available yet)")
        ] = False,
        options: Annotated[
            dict[str, Any] | None,
            Field(
                description="browser options: viewport, user_agent, headers, proxy "
                "(not available yet)"
            ),
        ] = None,
    ) -> Content:
        for name, value in (("profile", profile), ("record", record), ("options", options)):
            if value:
                raise ToolError(f"{name}: not available on this flask_sessions server yet")
        fields: dict[str, Any] = {"keep_alive": keep_alive}
        if url is not None:
            fields["url"] = url
        if timeout_minutes is not None:
            fields["session_timeout_minutes"] = timeout_minutes
        async with _errors():
            started = await bridge.start(ctx, **fields)
        page = ""
        if started.page is not None:
            page = f"; page: {started.page.title!r} {started.page.url}"
            if started.page.error:
                page += f" (error: {started.page.error})"
        return [
            _text(
                f"started session {started.session_id} (idle timeout "
                f"{started.timeout_minutes} min){page}; browser_observe shows what to do next"
            )
        ]

    @server.tool(
        description="See the current page: its interactive elements by id, and its text "
        "(optionally open a URL first, or add a screenshot).",
        annotations=readonly,
    )
    async def browser_observe(
        ctx: Context,
        url: Annotated[str | None, Field(description="http(s) URL to open first")] = None,
        screenshot: Annotated[bool, Field(description="add a PNG of the viewport")] = False,
        find: Annotated[
            str | None, Field(description="list only actions whose name contains this")
        ] = None,
        offset: Annotated[int, Field(ge=0, description="skip this many actions")] = 0,
        session_id: SessionId = None,
    ) -> Content:
        fields: dict[str, Any] = {"offset": offset}
        if url is not None:
            fields["url"] = url
        if find is not None:
            fields["find"] = find
        if screenshot:
            fields["screenshot"] = True
        async with _errors():
            answer = await client.observe(await bridge.session(ctx, session_id), **fields)
        out: Content = [_text(compact(answer.observation))]
        if answer.observation.screenshot:
            out.append(
                ImageContent(
                    type="image", data=answer.observation.screenshot, mime_type="image/png"
                )
            )
        return out

    @server.tool(
        description="Do one thing on the page: click/hover/fill/check/select_dropdown_option an "
        "element by id, or press_key, goto, go_back, go_forward, reload, scroll_down, scroll_up, "
        "wait, switch_tab, close_tab; answers with the page after it."
    )
    async def browser_step(
        ctx: Context,
        type: Annotated[
            Literal[
                "click",
                "fill",
                "check",
                "hover",
                "select_dropdown_option",
                "press_key",
                "goto",
                "go_back",
                "go_forward",
                "reload",
                "scroll_down",
                "scroll_up",
                "wait",
                "switch_tab",
                "close_tab",
            ],
            Field(description="the action"),
        ],
        id: Annotated[
            str | None, Field(description="the element's id from the last observation, e.g. B3")
        ] = None,
        selector: Annotated[
            str | None, Field(description="a CSS or Playwright selector instead of id")
        ] = None,
        value: Annotated[
            str | bool | list[str] | None,
            Field(description="fill: the text; check: true/false; select: option(s)"),
        ] = None,
        press_enter: Annotated[bool, Field(description="fill: press Enter after")] = False,
        key: Annotated[str | None, Field(description="press_key: e.g. Enter, Tab")] = None,
        url: Annotated[str | None, Field(description="goto: the URL")] = None,
        amount: Annotated[
            int | None, Field(description="scroll: pixels (default a screen)")
        ] = None,
        time_ms: Annotated[int | None, Field(description="wait: milliseconds")] = None,
        index: Annotated[int | None, Field(description="switch_tab/close_tab: tab index")] = None,
        dialog: Annotated[
            Literal["accept", "dismiss"] | None,
            Field(description="how to answer a dialog the step opens"),
        ] = None,
        session_id: SessionId = None,
    ) -> Content:
        given = {
            "id": id,
            "selector": selector,
            "value": value,
            "key": key,
            "url": url,
            "amount": amount,
            "time_ms": time_ms,
            "index": index,
            "dialog": dialog,
        }
        fields: dict[str, Any] = {"type": type, **{k: v for k, v in given.items() if v is not None}}
        if type == "fill":
            fields["press_enter"] = press_enter
        async with _errors():
            done = await client.step(await bridge.session(ctx, session_id), **fields)
        verdict = "done" if done.success else "FAILED"
        return [_text(f"{verdict}: {done.message}\n\n{compact(done.observation)}")]

    @server.tool(
        description="Read the page (or the part a selector matches) as Markdown, text or HTML.",
        annotations=readonly,
    )
    async def browser_scrape(
        ctx: Context,
        format: Annotated[
            Literal["markdown", "text", "html"], Field(description="the output format")
        ] = "markdown",
        selector: Annotated[str | None, Field(description="only this part of the page")] = None,
        url: Annotated[str | None, Field(description="http(s) URL to open first")] = None,
        session_id: SessionId = None,
    ) -> Content:
        fields: dict[str, Any] = {"format": format}
        if selector is not None:
            fields["selector"] = selector
        if url is not None:
            fields["url"] = url
        async with _errors():
            scraped = await client.scrape(await bridge.session(ctx, session_id), **fields)
        if not scraped.success:
            raise ToolError(scraped.message)
        return [_text(f"# {scraped.title} - {scraped.url}\n\n{scraped.content}")]

    @server.tool(description="A PNG (or JPEG) image of the page.", annotations=readonly)
    async def browser_screenshot(
        ctx: Context,
        full_page: Annotated[
            bool, Field(description="the whole page, not just the viewport")
        ] = False,
        format: Annotated[Literal["png", "jpeg"], Field(description="image format")] = "png",
        session_id: SessionId = None,
    ) -> Content:
        async with _errors():
            shot = await client.screenshot(
                await bridge.session(ctx, session_id), full_page=full_page, format=format
            )
        data = base64.b64encode(shot.data).decode("ascii")
        out: Content = [ImageContent(type="image", data=data, mime_type=shot.media_type)]
        if shot.clipped and shot.page_size:
            out.append(_text(f"clipped: the page is {shot.page_size[0]}x{shot.page_size[1]}"))
        return out

    @server.tool(description="Close this client's current browser session (or session_id).")
    async def browser_close(ctx: Context, session_id: SessionId = None) -> Content:
        slot = bridge.slot(ctx)
        target = session_id or bridge.current.get(slot)
        if target is None:
            return [_text("no current session")]
        async with _errors():
            try:
                record = await client.close(target)
            except SessionNotFound:
                record = None
        if bridge.current.get(slot) == target:
            del bridge.current[slot]
        bridge.started.discard(target)
        if record is None:
            return [_text(f"session {target} is gone")]
        return [_text(f"session {record.session_id} is {record.status.value}")]

    @server.tool(
        description="List this token's browser sessions; * marks this client's current one.",
        annotations=readonly,
    )
    async def browser_list(
        ctx: Context,
        status: Annotated[
            Literal["active", "closed", "error", "timed_out"] | None,
            Field(description="only sessions with this status"),
        ] = None,
    ) -> Content:
        async with _errors():
            records = await client.list(Status(status) if status else None)
        current = bridge.current.get(bridge.slot(ctx))
        lines = [("* " if r.session_id == current else "  ") + _record(r) for r in records]
        return [_text("\n".join(lines) or "no sessions")]

    return server
