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
from pathlib import Path
from typing import Any, TextIO

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
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
    "browser_files",
    "browser_upload",
    "browser_close",
    "browser_list",
}
PAGES = {
    "/form": "<!doctype html><title>Form</title><form action='/hello'>"
    "<label>Name <input name='name'></label><button>Send</button></form>"
    "<a href='/about'>About</a>",
    "/about": "<!doctype html><title>About</title><h1>About</h1><p>All about us.</p>",
    # issue 21, part 2: options, files, the new steps
    "/env": "<!doctype html><title>Env</title><p id=env></p><script>"
    "document.getElementById('env').textContent = 'lang=' + navigator.language + ' size=' + "
    "innerWidth + 'x' + innerHeight + ' zone=' + Intl.DateTimeFormat().resolvedOptions()"
    ".timeZone + ' dark=' + matchMedia('(prefers-color-scheme: dark)').matches;</script>",
    "/upload": "<!doctype html><title>Upload</title>"
    "<label>CV <input type=file id=cv></label><p id=out>nothing chosen</p><script>"
    "document.getElementById('cv').onchange = async (e) => { const f = e.target.files[0];"
    "document.getElementById('out').textContent = 'chose ' + f.name + ': ' + "
    "(await f.text()).trim(); };</script>",
    "/write": "<!doctype html><title>Write</title><label>Notes <textarea></textarea></label>",
    "/dl": "<!doctype html><title>Downloads</title><a href='/report.csv'>Report</a>",
    "/board": "<!doctype html><title>Board</title><style>.col{display:inline-block;"
    "width:200px;min-height:120px;border:1px solid #999;margin:8px}</style>"
    "<div class=col id=todo aria-label='To do'><div draggable=true id=c1>Write spec</div></div>"
    "<div class=col id=done aria-label='Done'></div><p id=note>No moves yet</p><script>"
    "document.getElementById('c1').addEventListener('dragstart', (e) => "
    "e.dataTransfer.setData('text/plain', 'c1'));"
    "for (const col of document.querySelectorAll('.col')) {"
    "col.addEventListener('dragover', (e) => e.preventDefault());"
    "col.addEventListener('drop', (e) => { e.preventDefault();"
    "col.appendChild(document.getElementById(e.dataTransfer.getData('text/plain')));"
    "document.getElementById('note').textContent = 'Write spec moved to ' + "
    "col.getAttribute('aria-label'); }); }</script>",
}
REPORT = "city,people\nBerlin,3850809\nParis,2102650\n"


def _page(path: str) -> tuple[int, str, dict[str, str]]:
    if path == "/report.csv":
        return 200, REPORT, {"Content-Disposition": "attachment; filename=report.csv"}
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


def stdio(api: ServerProcess, *extra: str) -> StdioServerParameters:
    command = [sys.executable, "-m", "flask_sessions", "mcp", "--url", api.base, *extra]
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

    async def call(tool: str, **args: Any) -> CallToolResult:
        result = await client.call_tool(tool, args)
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
    up = ok(await call("browser_upload", name="plan.txt", text="step one"))
    assert "uploaded plan.txt (8 bytes)" in up
    assert "plan.txt (8 bytes, text/plain" in ok(await call("browser_files"))
    assert "step one" in ok(await call("browser_files", name="plan.txt"))
    no_dir = await call("browser_upload", path="plan.txt")
    assert no_dir.is_error and "--files-dir" in text(no_dir)
    ok(await call("browser_upload", name="blob.bin", content_base64="AAEC"))
    binary = await call("browser_files", name="blob.bin")  # no --files-dir: not given inline
    assert binary.is_error and "--files-dir" in text(binary) and "3 bytes" in text(binary)

    stale = await call("browser_step", type="click", id="B99")
    assert stale.is_error and "not in this session's last observation" in text(stale)
    negative = await call("browser_observe", text_offset=-1)  # the SDK's check: a tool error
    assert negative.is_error and "text_offset" in text(negative)
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


def test_stdio_options_profile_files_and_the_whole_step_vocabulary(
    api: ServerProcess, site: str, tmp_path: Path
) -> None:
    """Issue 21, part 2: browser_start with options, a profile and a recording; a local
    file uploaded and set on a file input; a download fetched inline and saved; type; bad
    arguments as tool errors naming the field; never the token or a credential."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "cv.txt").write_text("Ada Lovelace, analyst\n")
    with api.client() as ours:
        profile = ours.create_profile("mcp-part-2").profile_id
    log = tmp_path / "mcp.log"
    said: list[str] = []

    async def run(errlog: TextIO) -> None:
        params = stdio(api, "--files-dir", str(files))
        async with Client(stdio_client(params, errlog=errlog)) as client:

            async def call(tool: str, **args: Any) -> CallToolResult:
                result = await client.call_tool(tool, args)
                said.append(text(result))
                return result

            tools = {t.name: t for t in (await client.list_tools()).tools}
            start = tools["browser_start"].input_schema["properties"]
            for name in ("viewport", "device", "locale", "timezone_id", "geolocation"):
                assert start[name]["description"], name
            for name in ("permissions", "color_scheme", "extra_http_headers", "proxy"):
                assert start[name]["description"], name
            assert {"profile", "record", "block_resources"} <= set(start)
            assert start["profile"]["properties"]["persist"]["type"] == "boolean"

            bad = await call("browser_start", viewport={"width": 10, "height": 600})
            assert bad.is_error and "viewport.width" in text(bad)
            bad = await call(
                "browser_start",
                proxy={"server": "ftp://proxy.test:21", "username": "u", "password": "pw-4711"},
            )
            assert bad.is_error and "proxy.server" in text(bad)
            assert "pw-4711" not in text(bad)
            bad = await call("browser_start", colour_scheme="dark")
            assert bad.is_error and "colour_scheme" in text(bad)

            started = ok(
                await call(
                    "browser_start",
                    url=site + "/env",
                    viewport={"width": 900, "height": 700},
                    locale="de-DE",
                    timezone_id="Asia/Tokyo",
                    color_scheme="dark",
                    extra_http_headers={"X-Run": "header-value-4711"},
                    block_resources=["font"],
                    profile={"id": profile, "persist": False},
                    record=True,
                )
            )
            assert f"profile: {profile}" in started and "recording: recording" in started
            assert '"X-Run"' in started and "header-value-4711" not in started
            seen = ok(await call("browser_observe"))
            assert "lang=de-DE size=900x700 zone=Asia/Tokyo dark=true" in seen

            # a local file of --files-dir, then inline text; then the upload_file step
            ok(await call("browser_observe", url=site + "/upload"))
            up = ok(await call("browser_upload", path="cv.txt"))
            assert "uploaded cv.txt" in up and 'files=["cv.txt"]' in up
            ok(await call("browser_upload", name="note.md", text="# hello"))
            outside = await call("browser_upload", path="../mcp.log")
            assert outside.is_error and "outside the files directory" in text(outside)
            no_name = await call("browser_upload", content_base64="aGk=")
            assert no_name.is_error and "name" in text(no_name)
            seen = ok(await call("browser_observe"))
            cv = action_id(seen, "CV")
            done = ok(await call("browser_step", type="upload_file", id=cv, files=["cv.txt"]))
            assert "chose cv.txt: Ada Lovelace, analyst" in done
            bad = await call("browser_step", type="upload_file", id=cv, files=[])
            assert bad.is_error and "files" in text(bad)

            # type (issue 22), a download, the files listed and fetched
            seen = ok(await call("browser_observe", url=site + "/write"))
            typed = ok(
                await call(
                    "browser_step", type="type", id=action_id(seen, "Notes"), value="hi there"
                )
            )
            assert "= 'hi there'" in typed
            seen = ok(await call("browser_observe", url=site + "/board"))
            card, done_col = action_id(seen, "Write spec"), action_id(seen, "Done")
            assert "(draggable)" in seen and "(drop target)" in seen, seen
            moved = ok(await call("browser_step", type="drag", id=card, to_id=done_col))
            assert "Write spec moved to Done" in moved, moved
            seen = ok(await call("browser_observe", url=site + "/dl"))
            clicked = ok(await call("browser_step", type="click", id=action_id(seen, "Report")))
            assert "report.csv" in clicked
            listed = ok(await call("browser_files"))
            assert all(n in listed for n in ("cv.txt", "note.md", "report.csv")), listed
            fetched = ok(await call("browser_files", name="report.csv"))
            assert "Berlin,3850809" in fetched and f"saved to {files / 'report.csv'}" in fetched
            assert (files / "report.csv").read_text() == REPORT
            missing = await call("browser_files", name="nope.bin")
            assert missing.is_error and "nope.bin" in text(missing)
            # a PDF comes as its text; an image as image content (and both are saved)
            pdf = base64.b64encode(tiny_pdf("Quarterly numbers 42")).decode()
            ok(await call("browser_upload", name="q.pdf", content_base64=pdf))
            read = ok(await call("browser_files", name="q.pdf"))
            assert "PDF text as Markdown (1 pages)" in read and "Quarterly numbers 42" in read
            shot = await call("browser_screenshot")
            png = next(c for c in shot.content if isinstance(c, ImageContent)).data
            ok(await call("browser_upload", name="shot.png", content_base64=png))
            image = await call("browser_files", name="shot.png")
            assert not image.is_error
            assert [c.data for c in image.content if isinstance(c, ImageContent)] == [png]
            assert (files / "shot.png").read_bytes() == base64.b64decode(png)

            stale = await call("browser_step", type="drag", id="B99", offset={"x": 5, "y": 0})
            assert stale.is_error and "B99" in text(stale)
            wrong = await call("browser_step", type="drag", id=cv)
            assert wrong.is_error and "to_id" in text(wrong)
            ok(await call("browser_close"))

    with log.open("w") as errlog:
        asyncio.run(run(errlog))
    assert not any(TOKEN in s for s in said)
    assert TOKEN not in log.read_text()


def tiny_pdf(text: str) -> bytes:
    """A one-page PDF whose text layer says ``text`` (Helvetica), with a correct xref."""
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def test_step_schema_is_made_from_the_step_models() -> None:
    """Every field of every step model is in browser_step's schema, described."""
    from flask_sessions.front.mcp import STEP_HELP, STEP_MODELS, step_schema
    from flask_sessions.schemas import STEP_TYPES, SessionFields

    schema = step_schema()
    props = schema["properties"]
    assert props["type"]["enum"] == STEP_TYPES.split(", ")
    for model in STEP_MODELS:
        for name in set(model.model_fields) - set(SessionFields.model_fields):
            assert name in props and name in STEP_HELP, (model.__name__, name)
    assert schema["required"] == ["type"]


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


def test_the_mcp_server_loads_no_app_host_or_browser_code() -> None:
    """`flask-sessions mcp` starts faster without them: the package root loads its exports
    on first use, and the CLI imports the server's parts only for `serve` and `host`."""
    probe = (
        "import sys; import flask_sessions.front.mcp, flask_sessions.__main__; "
        "heavy = ['playwright', 'redis', 'waitress', 'flask_sessions.app', "
        "'flask_sessions.host.manager', 'flask_sessions.cluster.node']; "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
    from flask_sessions import FlaskSessions, Status, create_app

    assert FlaskSessions.__name__ == "FlaskSessions" and Status.active == "active"
    assert callable(create_app)
