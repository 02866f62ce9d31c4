"""``flask-sessions mcp``: an MCP server (the official ``mcp`` SDK) over ``flask_sessions.client``.

It gives a model browser tools on a flask_sessions server (standalone, mounted in an app, or a
cluster front: it only speaks HTTP to it)::

    SESSIONS_MCP_TOKEN=tok flask-sessions mcp --url http://127.0.0.1:8000          # stdio
    SESSIONS_MCP_TOKEN=tok flask-sessions mcp --transport streamable-http --port 8931

Tools: ``browser_start``, ``browser_observe``, ``browser_step``, ``browser_scrape``,
``browser_screenshot``, ``browser_files``, ``browser_upload``, ``browser_close``,
``browser_list``. Each MCP client has a current session, so a model need not carry ids:
stdio serves one client; over streamable HTTP each MCP session (``Mcp-Session-Id``) has its
own, and clients of the stateless 2026-07-28 protocol, which have no MCP session, share the
server's (give each agent its own server, or pass ``session_id``, which every tool takes).
Every error answer of the server, and every bad argument, becomes a tool error
(``isError``) with the server's message naming the field. The token comes from
``SESSIONS_MCP_TOKEN`` and goes only into the Authorization header: never printed, logged or
put in a result. Sessions this server started are closed when it exits; others end by their
idle timeout.

``browser_start``'s and ``browser_step``'s JSON schemas are made from the API's own models
(``StartRequest``, ``options.BrowserOptionFields``, the ``*Step`` models of ``schemas.py``),
and their arguments are validated by those models (in the client), so the tools take what
the API takes and answer its words when something is wrong.

Files: ``browser_files`` lists the session's files, or fetches one: text, a PDF (as
Markdown text, read here with the same PDFium code as the server) and images come inline
when small; with ``--files-dir DIR`` every fetched file is also saved in DIR and its path
given. ``browser_upload`` puts a file into the session from ``text``, ``content_base64``,
or a ``path`` inside ``--files-dir`` (the only local files this server reads).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import io
import json
import logging
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata
from mcp.server.stdio import stdio_server
from mcp_types import ImageContent, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from flask_sessions import schemas
from flask_sessions.client import (
    AsyncSessionsClient,
    InvalidRequest,
    SessionNotFound,
    SessionsError,
)
from flask_sessions.errors import InvalidInput
from flask_sessions.options import OPTION_FIELDS
from flask_sessions.schemas import (
    FileInfo,
    Observation,
    SessionFields,
    SessionResponse,
    StartRequest,
    Status,
    StepRequest,
)

log = logging.getLogger("flask_sessions.mcp")

TOKEN_ENV = "SESSIONS_MCP_TOKEN"
MAX_TEXT = 4000  # characters of page text in an observation (the rest: text_offset)
DEFAULT_SLOT = "default"
MAX_FILE_TEXT = 20_000  # characters of a fetched text file or PDF shown inline at once
MAX_INLINE_BYTES = 10 * 1024 * 1024  # a file fetched into memory (text, PDF, image) at most
MAX_INLINE_IMAGE = 4 * 1024 * 1024  # an image given inline at most
MAX_UPLOAD_INLINE = 50 * 1024 * 1024  # content_base64/text of one browser_upload at most

Content = list[TextContent | ImageContent]
SessionId = Annotated[
    str | None,
    Field(description="a session from browser_list instead of this client's current one"),
]


def _text(value: str) -> TextContent:
    return TextContent(type="text", text=value)


# ------------------------------------------------------------ observations as text


def _action_line(a: Any) -> str:
    line = f"{a.id} {a.role} {a.name!r}" if a.name else f"{a.id} {a.role}"
    if a.value:
        line += f" = {a.value[:80]!r}"
    flags = []
    if not a.enabled:
        flags.append("disabled")
    if a.readonly:
        flags.append("readonly")
    if a.invalid:
        flags.append("invalid")
    if a.draggable:
        flags.append("draggable")
    if a.drop_target:
        flags.append("drop target")
    if not a.in_viewport:
        flags.append("off-screen")
    if a.covered and a.covered_by:
        flags.append(f"covered by {a.covered_by}")
    if a.scroll_container:
        flags.append(f"in scroll box {a.scroll_container}")
    if a.frame:
        flags.append(f"frame {a.frame}")
    if flags:
        line += f" ({', '.join(flags)})"
    if a.description:
        line += f" - {a.description[:120]}"
    return line


def compact(seen: Observation, max_text: int = MAX_TEXT) -> str:
    """An observation as a model reads it best: the page, its actions by id, its text."""
    head = f"Page: {seen.title or '(no title)'} - {seen.url}"
    if seen.http_status is not None:
        head += f" [HTTP {seen.http_status}]"
    if seen.content_type == "application/pdf":
        head += f" [PDF, {seen.pages} pages]" if seen.pages else " [PDF]"
    if seen.busy:
        head += " [busy]"
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
    if seen.downloads:
        lines.append(
            "Downloads (browser_files to fetch): "
            + ", ".join(f"{d.name} ({d.state}, {d.size} bytes)" for d in seen.downloads)
        )
    if seen.viewport is not None:
        v = seen.viewport
        lines.append(
            f"Viewport: {v.width}x{v.height} scrolled to {v.scroll_x},{v.scroll_y} "
            f"of {v.page_width}x{v.page_height}"
        )
    shown = len(seen.actions)
    more = (
        f" of {seen.actions_total}; browser_observe(offset=…) or find=… for more"
        if seen.actions_truncated
        else ""
    )
    lines.append(f"Actions ({shown}{more}):")
    lines += [_action_line(a) for a in seen.actions]
    text = seen.text[:max_text]
    start = seen.text_offset
    end = start + len(text)
    following = start + max_text if len(seen.text) > max_text else seen.text_next_offset
    if following is not None or start:
        total = max(seen.text_length, end)
        span = f"characters {start}-{end} of {total}"
        if following is not None:
            span += f"; browser_observe(text_offset={following}) for more"
        lines.append(f"Text ({span}):")
    elif seen.text_truncated:
        lines.append("Text (cut: browser_scrape for all of it):")
    else:
        lines.append("Text:")
    lines.append(text)
    return "\n".join(lines)


def _record(record: SessionResponse) -> str:
    page = f" {record.page.title!r} {record.page.url}" if record.page is not None else ""
    why = f" ({record.error})" if record.error else ""
    return f"{record.session_id} {record.status.value}{why}{page}"


# ------------------------------------------------------------ schemas from our models


_BOUNDS = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum", "le": "maximum"}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """A JSON schema with its ``$ref``s inlined, titles and null defaults dropped, and
    ``X | None`` shown as X (leaving a field out is how a tool call says None)."""
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = _inline(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        return {**target, **{k: _inline(v, defs) for k, v in node.items() if k != "$ref"}}
    out = {
        _BOUNDS.get(key, key): _inline(value, defs)
        for key, value in node.items()
        if key != "title" and not (key == "default" and value is None)
    }
    options = out.get("anyOf")
    if isinstance(options, list):
        flat = [o for x in options for o in (x["anyOf"] if list(x) == ["anyOf"] else [x])]
        kept = []
        for option in flat:
            if option != {"type": "null"} and option not in kept:
                kept.append(option)
        out["anyOf"] = kept
        if len(kept) == 1:
            del out["anyOf"]
            out = {**kept[0], **out}
    return out


def _properties(model: type[BaseModel]) -> dict[str, dict[str, Any]]:
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    return {name: _inline(prop, defs) for name, prop in schema["properties"].items()}


def _described(prop: dict[str, Any], description: str | None) -> dict[str, Any]:
    if description:
        return {**prop, "description": description}
    return prop


START_HELP = {
    "url": "http(s) URL to open first",
    "timeout_minutes": "idle minutes before the session closes (1-29)",
    "keep_alive": "no idle timeout (the server's lifetime cap still applies)",
    "record": "record a Playwright trace of the session (the server keeps it after close)",
    "profile": 'load a saved profile\'s cookies and storage: {"id": "…", "persist": true} also '
    "saves them back when the session ends",
    "proxy": 'an upstream http:// proxy {"server", "username", "password", "bypass"}, chained '
    "behind the egress proxy; its credentials are never shown back",
}
START_FIELDS = ("url", "keep_alive", "record", "profile", *OPTION_FIELDS)
"""browser_start's arguments from ``StartRequest`` (plus ``timeout_minutes``)."""


def start_schema() -> dict[str, Any]:
    """browser_start's input schema: StartRequest's fields that make a session."""
    props = _properties(StartRequest)
    out = {name: _described(props[name], START_HELP.get(name)) for name in START_FIELDS}
    timeout = props["session_timeout_minutes"]
    out["timeout_minutes"] = _described(timeout, START_HELP["timeout_minutes"])
    return {"type": "object", "properties": out, "additionalProperties": False}


STEP_MODELS: tuple[type[BaseModel], ...] = get_args(get_args(StepRequest)[0])
"""The ``*Step`` models of the API's step union (schemas.py)."""

STEP_HELP = {
    "type": "the action",
    "id": "the element's id from the last observation, e.g. B3",
    "selector": "a CSS or Playwright selector instead of id",
    "value": "fill/type: the text; check: true or false; select_dropdown_option: an option's "
    "value or label (a list for a multiple select)",
    "press_enter": "fill: press Enter after",
    "clear_before_fill": "fill: clear the field first (default true)",
    "key": "press_key: a key or chord, e.g. Enter, Tab, Control+A",
    "url": "goto: the URL",
    "amount": "scroll: pixels (default a screen); with id/selector it scrolls that element's "
    "scroll box",
    "time_ms": "wait: milliseconds",
    "index": "switch_tab/close_tab: the tab's index",
    "position": 'click/hover: {"x", "y"} in CSS px within the element, or in the viewport '
    "with no id/selector",
    "to_id": "drag: the id to drop onto",
    "to_selector": "drag: a selector to drop onto",
    "offset": 'drag: {"x", "y"} CSS px to move by instead of a target',
    "files": "upload_file: names of the session's files (browser_upload, browser_files)",
    "dialog": "how to answer a dialog the step opens (default dismiss)",
    "prompt_text": "the text to answer a prompt() the step opens with (accepts it)",
}


def step_schema() -> dict[str, Any]:
    """browser_step's input schema: the union of the step models' own fields, each saying
    which actions take it (generated, so it never drifts from schemas.py)."""
    session = set(SessionFields.model_fields)
    types: list[str] = []
    fields: dict[str, list[dict[str, Any]]] = {}
    users: dict[str, list[str]] = {}
    for model in STEP_MODELS:
        props = _properties(model)
        tag = props["type"]
        names = tag.get("enum") or [tag["const"]]
        types += names
        for name, prop in props.items():
            if name == "type" or name in session:
                continue
            prop = {k: v for k, v in prop.items() if k not in ("default", "description")}
            known = fields.setdefault(name, [])
            for variant in prop["anyOf"] if list(prop) == ["anyOf"] else [prop]:
                if variant not in known:
                    known.append(variant)
            users.setdefault(name, []).extend(n for n in names if n not in users[name])
    out: dict[str, Any] = {"type": {"type": "string", "enum": types, "description": "the action"}}
    for name, variants in fields.items():
        help_ = STEP_HELP.get(name) or name
        prop = variants[0] if len(variants) == 1 else {"anyOf": variants}
        if len(users[name]) < len(types) and ":" not in help_:
            help_ += f" ({', '.join(users[name])})"
        out[name] = _described(prop, help_)
    out["session_id"] = {"type": "string", "description": SESSION_HELP}
    return {
        "type": "object",
        "properties": out,
        "required": ["type"],
        "additionalProperties": False,
    }


SESSION_HELP = "a session from browser_list instead of this client's current one"


def _decoded(arguments: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Objects and lists some clients send as JSON strings, decoded (as the SDK does)."""
    out = dict(arguments)
    for name, value in arguments.items():
        prop = schema["properties"].get(name) or {}
        kinds = {prop.get("type")} | {o.get("type") for o in prop.get("anyOf", [])}
        if isinstance(value, str) and kinds & {"object", "array"} and "string" not in kinds:
            with contextlib.suppress(ValueError):
                out[name] = json.loads(value)
    return out


class _OwnArguments(FuncMetadata):
    """A tool whose arguments our own models validate (in the client), not the SDK: its
    schema comes from those models, and a bad field is answered in the API's words."""

    def validate_arguments(self, arguments_to_validate: dict[str, Any]) -> dict[str, Any]:
        return {"arguments": dict(arguments_to_validate)}


def _own_tool(
    fn: Callable[[Context, dict[str, Any]], Awaitable[Content]],
    description: str,
    schema: dict[str, Any],
    annotations: ToolAnnotations | None = None,
) -> Tool:
    tool = Tool.from_function(fn, description=description, annotations=annotations)
    meta = tool.fn_metadata
    tool.fn_metadata = _OwnArguments(
        arg_model=meta.arg_model,
        output_schema=meta.output_schema,
        output_model=meta.output_model,
        wrap_output=meta.wrap_output,
    )
    tool.parameters = schema
    return tool


# ------------------------------------------------------------ files


_TEXT_TYPES = (
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-ndjson",
    "application/csv",
    "application/yaml",
    "application/x-yaml",
    "application/sql",
)
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


def _kind(content_type: str) -> Literal["text", "pdf", "image", "binary"]:
    bare = content_type.split(";")[0].strip().lower()
    if bare.startswith("text/") or bare in _TEXT_TYPES or bare.endswith(("+json", "+xml")):
        return "text"
    if bare == "application/pdf":
        return "pdf"
    if bare in _IMAGE_TYPES:
        return "image"
    return "binary"


def _file_line(f: FileInfo) -> str:
    state = "" if f.state == "complete" else f", {f.state}"
    origin = f" from {f.url}" if f.url else ""
    return f"{f.name} ({f.size} bytes, {f.content_type}, {f.source}{state}){origin}"


def _page_of(text: str, offset: int, what: str) -> str:
    part = text[offset : offset + MAX_FILE_TEXT]
    end = offset + len(part)
    if offset == 0 and end >= len(text):
        return f"{what}:\n{part}"
    more = f"; text_offset={end} for more" if end < len(text) else ""
    return f"{what} (characters {offset}-{end} of {len(text)}{more}):\n{part}"


def _local_path(files_dir: Path | None, path: str) -> Path:
    """``path`` inside ``--files-dir`` (relative to it, or absolute within it)."""
    if files_dir is None:
        raise ToolError(
            "path: this MCP server reads no local files (its user can start it with "
            "--files-dir DIR, then paths inside DIR work); send text or content_base64 "
            "with a name instead"
        )
    base = files_dir.resolve()
    target = (base / os.path.expanduser(path)).resolve()
    if not target.is_relative_to(base):
        raise ToolError(f"path: {path!r} is outside the files directory {base}")
    if not target.is_file():
        raise ToolError(f"path: there is no file {path!r} in {base}")
    return target


# ------------------------------------------------------------ the sessions of clients


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
        try:  # checked before the previous session is closed: a typo must not end it
            schemas.parse(StartRequest, fields, {"max_timeout_minutes": 29})
        except InvalidInput as exc:
            raise InvalidRequest(400, exc.message, exc.to_json()) from None
        slot = self.slot(ctx)
        previous = self.current.pop(slot, None)
        if previous is not None:  # one current session per client: the last one is closed
            self.started.discard(previous)
            with contextlib.suppress(SessionsError):
                await self.client.close(previous)
        record = await self.client.start(**fields)
        self.current[slot] = record.session_id
        self.started.add(record.session_id)
        return record

    def current_of(self, ctx: Context, session_id: str | None) -> str | None:
        return session_id or self.current.get(self.slot(ctx))

    async def session(self, ctx: Context, session_id: str | None) -> str:
        """The session to act on: the given one, this client's current one, or a new one."""
        current = self.current_of(ctx, session_id)
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
async def _errors(rename: dict[str, str] | None = None) -> AsyncIterator[None]:
    """Our error answers as tool errors, with the server's own message."""
    try:
        yield
    except SessionsError as exc:
        message = str(exc)
        for ours, theirs in (rename or {}).items():
            message = message.replace(ours, theirs)
        raise ToolError(message) from None


def _started_text(started: SessionResponse) -> str:
    lines = [f"started session {started.session_id} (idle timeout {started.timeout_minutes} min)"]
    if started.options is not None:  # the record's view: header names only, no credentials
        shown = started.options.model_dump(mode="json", exclude_none=True)
        lines.append("options: " + json.dumps(shown, separators=(", ", ": ")))
    if started.profile is not None:
        saving = " (saved back at close)" if started.profile.persist else ""
        lines.append(f"profile: {started.profile.profile_id}{saving}")
    if started.recording is not None:
        lines.append(f"recording: {started.recording}")
    if started.page is not None:
        page = f"page: {started.page.title!r} {started.page.url}"
        if started.page.error:
            page += f" (error: {started.page.error})"
        lines.append(page)
    lines.append("browser_observe shows what to do next")
    return "\n".join(lines)


def build_server(client: AsyncSessionsClient, files_dir: Path | None = None) -> MCPServer[Any]:
    """The MCP server whose tools drive ``client``'s server; ``files_dir``: where fetched
    files are saved and local uploads are read (None: no local files)."""
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

    start_args = start_schema()

    async def browser_start(ctx: Context, arguments: dict[str, Any]) -> Content:
        fields = _decoded(arguments, start_args)
        if "timeout_minutes" in fields:
            fields["session_timeout_minutes"] = fields.pop("timeout_minutes")
        unknown = sorted(set(fields) - set(start_args["properties"]) - {"session_timeout_minutes"})
        if unknown:
            raise ToolError(
                f"{', '.join(unknown)}: unknown argument; browser_start takes: "
                + ", ".join(sorted(start_args["properties"]))
            )
        async with _errors({"session_timeout_minutes": "timeout_minutes"}):
            started = await bridge.start(ctx, **fields)
        return [_text(_started_text(started))]

    step_args = step_schema()

    async def browser_step(ctx: Context, arguments: dict[str, Any]) -> Content:
        fields = _decoded(arguments, step_args)
        session_id = fields.pop("session_id", None)
        if session_id is not None and not isinstance(session_id, str):
            raise ToolError("session_id: send a session id string from browser_list")
        unknown = sorted(set(fields) - set(step_args["properties"]))
        if unknown:
            raise ToolError(
                f"{', '.join(unknown)}: unknown argument; browser_step takes: "
                + ", ".join(sorted(step_args["properties"]))
            )
        async with _errors():
            done = await client.step(await bridge.session(ctx, session_id), **fields)
        verdict = "done" if done.success else "FAILED"
        return [_text(f"{verdict}: {done.message}\n\n{compact(done.observation)}")]

    tools = [
        _own_tool(
            browser_start,
            "Start a new browser session (closing this client's previous one): optionally a "
            "URL, browser options (viewport, device, locale, proxy, …), a saved profile, a "
            "recording.",
            start_args,
        ),
        _own_tool(
            browser_step,
            "Do one thing on the page (click, fill, type, drag, press_key, select, check, "
            "scroll, upload_file, goto, tabs, …) by element id; answers with the page after it.",
            step_args,
        ),
    ]
    server: MCPServer[Any] = MCPServer(
        "flask_sessions",
        instructions=(
            "Drive a real Chromium browser: browser_start (or just browser_observe with a url), "
            "then browser_observe to see the page's actions by id, browser_step to act on one, "
            "browser_scrape to read the page, browser_files/browser_upload for files, "
            "browser_close when done."
        ),
        lifespan=lifespan,
        log_level="WARNING",
        tools=tools,
    )
    readonly = ToolAnnotations(read_only_hint=True, open_world_hint=True)

    @server.tool(
        description="See the current page: its interactive elements by id, and its text "
        "(optionally open a URL first, page through the text, or add a screenshot).",
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
        text_offset: Annotated[
            int, Field(ge=0, description="the page's text from this character on")
        ] = 0,
        session_id: SessionId = None,
    ) -> Content:
        fields: dict[str, Any] = {}
        if offset:
            fields["offset"] = offset
        if url is not None:
            fields["url"] = url
        if find is not None:
            fields["find"] = find
        if screenshot:
            fields["screenshot"] = True
        # the server pages its text by its own cap; this shows MAX_TEXT from text_offset on
        if text_offset:
            fields["text_offset"] = text_offset
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

    @server.tool(
        description="List the session's files (uploads and downloads), or fetch one by name: "
        "text, PDF text and images inline; saved to the user's files directory if it has one.",
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=True),
    )
    async def browser_files(
        ctx: Context,
        name: Annotated[
            str | None, Field(description="the file to fetch (omit it to list the files)")
        ] = None,
        text_offset: Annotated[
            int, Field(ge=0, description="text or PDF: from this character on")
        ] = 0,
        session_id: SessionId = None,
    ) -> Content:
        target = bridge.current_of(ctx, session_id)
        if target is None:
            return [_text("no current session: browser_start or browser_observe first")]
        async with _errors():
            listed = await client.files(target)
        if name is None:
            if not listed.files:
                return [_text(f"session {target} has no files yet")]
            lines = [
                f"{len(listed.files)} files, {listed.total_bytes} of {listed.limit_bytes} bytes:"
            ]
            lines += [_file_line(f) for f in listed.files]
            return [_text("\n".join(lines))]
        info = next((f for f in listed.files if f.name == name), None)
        if info is None:
            known = ", ".join(f.name for f in listed.files[:20]) or "none"
            raise ToolError(f"name: session {target} has no file {name!r} (its files: {known})")
        if info.state != "complete":
            raise ToolError(f"name: {name} is {info.state} ({info.size} bytes so far)")
        return await _fetch(target, info, text_offset)

    async def _fetch(session_id: str, info: FileInfo, text_offset: int) -> Content:
        kind = _kind(info.content_type)
        out: Content = []
        saved: Path | None = None
        data: bytes | None = None
        if files_dir is not None:
            if os.path.basename(info.name) != info.name or info.name in (".", ".."):
                raise ToolError(f"name: {info.name!r} cannot be a file name here")
            async with _errors():
                done = await client.download(session_id, info.name, files_dir / info.name)
            saved = done.path
            if kind != "binary" and info.size <= MAX_INLINE_BYTES and saved is not None:
                data = await anyio.Path(saved).read_bytes()
        elif kind != "binary" and info.size <= MAX_INLINE_BYTES:
            sink = io.BytesIO()
            async with _errors():
                await client.download(session_id, info.name, sink)
            data = sink.getvalue()
        head = _file_line(info) + (f"\nsaved to {saved}" if saved is not None else "")
        out.append(_text(head))
        if data is not None and kind == "text":
            out.append(_text(_page_of(data.decode("utf-8", "replace"), text_offset, "Text")))
        elif data is not None and kind == "pdf":
            from flask_sessions.page.pdf import read_pdf

            try:
                pdf = await anyio.to_thread.run_sync(read_pdf, data)
            except ValueError as exc:  # a broken PDF (PdfiumError is one): say so
                out.append(_text(f"not readable as a PDF ({exc})"))
            else:
                what = f"PDF text as Markdown ({pdf.pages} pages)"
                if not pdf.has_text:
                    out.append(_text(f"{what}: none (a scan without a text layer?)"))
                else:
                    out.append(_text(_page_of(pdf.markdown, text_offset, what)))
        elif data is not None and kind == "image" and len(data) <= MAX_INLINE_IMAGE:
            mime = info.content_type.split(";")[0].strip().lower()
            out.append(
                ImageContent(type="image", data=base64.b64encode(data).decode(), mime_type=mime)
            )
        elif saved is None:
            raise ToolError(
                f"name: {info.name} is {info.size} bytes of {info.content_type}, which is not "
                "given inline; the MCP server's user can start it with --files-dir DIR to have "
                "fetched files saved there"
            )
        return out

    @server.tool(
        description="Put a file into the session (from text, base64 content, or a path in the "
        "user's files directory) for a later upload_file step."
    )
    async def browser_upload(
        ctx: Context,
        name: Annotated[
            str | None,
            Field(description="the file's name in the session (default: the path's name)"),
        ] = None,
        text: Annotated[str | None, Field(description="the file's content as UTF-8 text")] = None,
        content_base64: Annotated[
            str | None, Field(description="the file's content, base64-encoded")
        ] = None,
        path: Annotated[
            str | None,
            Field(description="a file in the MCP server's files directory (--files-dir)"),
        ] = None,
        session_id: SessionId = None,
    ) -> Content:
        sources = (("text", text), ("content_base64", content_base64), ("path", path))
        given = [key for key, value in sources if value is not None]
        if len(given) != 1:
            raise ToolError("send exactly one of text, content_base64 or path")
        if path:
            local = _local_path(files_dir, path)
            shown, size = name or local.name, local.stat().st_size
            with local.open("rb") as handle:  # streamed to the server, not read in here
                async with _errors():
                    target = await bridge.session(ctx, session_id)
                    stored = await client.upload(target, (shown, handle))
        else:
            if not name:
                raise ToolError(f'name: is required with {given[0]} (e.g. "notes.txt")')
            if text is not None:
                data = text.encode("utf-8")
            else:
                try:
                    data = base64.b64decode(content_base64 or "", validate=True)
                except (binascii.Error, ValueError):
                    raise ToolError("content_base64: is not valid base64") from None
            if len(data) > MAX_UPLOAD_INLINE:
                raise ToolError(
                    f"{given[0]}: {len(data)} bytes; at most {MAX_UPLOAD_INLINE} inline "
                    "(a path in --files-dir takes larger files)"
                )
            shown, size = name, len(data)
            async with _errors():
                target = await bridge.session(ctx, session_id)
                stored = await client.upload(target, (name, data))
        if stored.files:  # the upload's answer lists what it stored, by the names given
            shown = stored.files[-1].name  # (made safe and unique by the server)
        return [
            _text(
                f"uploaded {shown} ({size} bytes) into session {target}; use it with "
                f'browser_step(type="upload_file", id=…, files=["{shown}"])'
            )
        ]

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


# ------------------------------------------------------------ stdio on the loop's own pipes

STDIO_LINE_MAX = 256 * 1024 * 1024  # one JSON-RPC message at most (a large upload's base64)


def _pipe_like(fd: int) -> bool:
    """Whether the loop can watch ``fd`` (a pipe, a socket or a terminal; not a file)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


class _Lines:
    """stdin's lines, read by the event loop (the SDK's stdio reads each in a worker thread)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> bytes:
        line = await self.reader.readline()
        if not line:
            raise StopAsyncIteration
        return line


class _Out:
    """stdout written by the event loop (the SDK's stdio writes and flushes in a thread)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    async def write(self, text: str) -> None:
        self.writer.write(text.encode("utf-8"))

    async def flush(self) -> None:
        await self.writer.drain()


async def serve_stdio(server: MCPServer[Any]) -> None:
    """Serve ``server`` on stdin/stdout through the event loop's pipe transports: a round
    trip then costs no thread hand-offs (issue 21's bench: the MCP overhead of an observe).
    As the SDK does, fd 0 reads the null device and fd 1 goes to stderr meanwhile, so stray
    output never breaks the protocol. On a regular file (no pipe): the SDK's own stdio."""
    if not (_pipe_like(0) and _pipe_like(1)):
        await server.run_stdio_async()
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=STDIO_LINE_MAX)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(os.dup(0), "rb", 0)
    )
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(os.dup(1), "wb", 0)
    )
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    saved_in, saved_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    lowlevel = server._lowlevel_server
    try:
        lines: Any = _Lines(reader)
        out: Any = _Out(writer)
        async with stdio_server(stdin=lines, stdout=out) as (read, write):
            await lowlevel.run(read, write, lowlevel.create_initialization_options())
    finally:
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        os.close(saved_in)
        os.close(saved_out)
        writer.close()
