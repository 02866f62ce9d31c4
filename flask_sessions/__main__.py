"""The command line: ``python -m flask_sessions [serve | host | mcp] [options]``.

``serve`` (the default) serves ``create_app()`` with waitress: the API, with the browser in
this process (or, with ``SESSIONS_HOSTS`` / ``SESSIONS_REGISTRY_URL``, a front for hosts).
``host`` runs a browser host for fronts (``host.py``); ``mcp`` an MCP server that drives a
server's sessions (``front/mcp.py``). Both bind their port before
launching anything; SIGTERM and Ctrl-C close every session and Chromium before exiting.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from flask_sessions import __version__, logs
from flask_sessions.config import PREFIX, ConfigError, Settings, load
from flask_sessions.errors import SessionsError

if TYPE_CHECKING:  # imported where used: `mcp` starts without the app, host or browser
    from flask_sessions.host.runtime import BrowserRuntime

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _prog() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "python -m flask_sessions" if name in ("", "__main__.py", "-c", "-m") else name


def _environment_help() -> str:
    lines = ["environment variables (app.config keys in a mounted app):"]
    for name, info in Settings.model_fields.items():
        default = info.get_default(call_default_factory=True)
        shown = "" if default in (None, "", (), {}) else f" (default {default})"
        lines.append(f"  {PREFIX}{name.upper():<34} {info.description}{shown}")
    return "\n".join(lines)


def parser(command: str = "serve") -> argparse.ArgumentParser:
    if command == "host":
        prog, port = f"{_prog()} host", 8765
        about = (
            "Run a browser host: Chromium, the sessions and the reaper, behind an internal API "
            "that fronts call with SESSIONS_CLUSTER_SECRET (see the README's Deploying)."
        )
    else:
        prog, port = _prog(), 8000
        about = (
            "Live headless Chromium sessions over HTTP. Serves the API with waitress in one "
            "process; SIGTERM or Ctrl-C closes every session and Chromium. "
            f"'{_prog()} host' runs a browser host for fronts instead; '{_prog()} mcp' an MCP "
            "server that drives a server's sessions (see its --help)."
        )
    p = argparse.ArgumentParser(
        prog=prog,
        description=about,
        epilog=_environment_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=port, help=f"port (default {port}; 0 picks a free one)"
    )
    p.add_argument("--threads", type=int, default=16, help="request threads (default 16)")
    p.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        help="log level (default: SESSIONS_LOG_LEVEL, else INFO)",
    )
    p.add_argument("--version", action="version", version=f"flask_sessions {__version__}")
    p.add_argument(
        "--cdp-port",
        type=int,
        default=None,
        help="port of the per-session CDP WebSocket (default SESSIONS_CDP_PORT, else any free "
        "one); it listens on --host unless SESSIONS_CDP_HOST says otherwise",
    )
    p.add_argument(
        "--find-browser",
        action="store_true",
        help="print the Chromium the server would launch (exit 1 if none) and exit",
    )
    return p


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything is launched (OSError if it cannot)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_or_say(prog: str, host: str, port: int) -> socket.socket | None:
    try:
        return bind(host, port)
    except OSError as exc:
        why = "the address is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        print(
            f"{prog}: cannot listen on {host}:{port}: {why}; "
            "stop the other server or choose another --port",
            file=sys.stderr,
        )
        return None


def _config_problems(prog: str, exc: ConfigError) -> int:
    print(f"{prog}: bad configuration:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)
    return 2


def _stop_on_signals(runtime: BrowserRuntime | None) -> None:
    """SIGTERM exits, Ctrl-C interrupts; either first marks the runtime as shutting down,
    since Chromium may get the same signal and its exit is then not a crash. SIGINT is set
    even when the parent started us with it ignored (`cmd &`)."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if runtime is not None:
            runtime.begin_shutdown()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


# --- `mcp`: an MCP server over the client (front/mcp.py, issue 21)

MCP_MISSING = (
    "needs the mcp package (the official MCP SDK), which is not installed; "
    "install it with: pip install 'flask_sessions[mcp]'"
)


def mcp_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{_prog()} mcp",
        description="An MCP server whose tools (browser_start, browser_observe, browser_step, "
        "browser_scrape, browser_screenshot, browser_files, browser_upload, browser_close, "
        "browser_list) drive the sessions of "
        "a flask_sessions server at --url, as the token in SESSIONS_MCP_TOKEN. Over stdio "
        "(default) it serves one MCP client; --transport streamable-http serves MCP over HTTP.",
        epilog="environment: SESSIONS_MCP_TOKEN  a token the server accepts (required; never "
        "printed). Needs the mcp package: pip install 'flask_sessions[mcp]'.",
    )
    p.add_argument(
        "--url",
        default="http://127.0.0.1:8000",
        help="the flask_sessions server, with its prefix if mounted (default "
        "http://127.0.0.1:8000); a cluster front works the same",
    )
    p.add_argument(
        "--transport",
        choices=("stdio", "streamable-http"),
        default="stdio",
        help="stdio (default: the MCP client starts this command) or streamable-http",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="streamable-http: address to bind (default 127.0.0.1)"
    )
    p.add_argument("--port", type=int, default=8931, help="streamable-http: port (default 8931)")
    p.add_argument(
        "--files-dir",
        default=None,
        help="a local directory for session files: browser_files saves each file it fetches "
        "there (and gives the path), browser_upload reads paths inside it; without it no local "
        "file is read or written (small text, PDF text and images still come inline)",
    )
    p.add_argument("--version", action="version", version=f"flask_sessions {__version__}")
    return p


def _serve_mcp(argv: list[str]) -> int:
    args = mcp_parser().parse_args(argv)
    prog = f"{_prog()} mcp"
    try:
        import anyio

        from flask_sessions.client import AsyncSessionsClient
        from flask_sessions.front import mcp as mcp_front
    except ImportError as exc:
        if exc.name is None or not exc.name.startswith("mcp"):
            raise
        print(f"{prog}: {MCP_MISSING}", file=sys.stderr)
        return 2
    token = os.environ.get(mcp_front.TOKEN_ENV, "").strip()
    if not token:
        print(
            f"{prog}: set {mcp_front.TOKEN_ENV} to a token the server at {args.url} accepts",
            file=sys.stderr,
        )
        return 2
    files_dir = None
    if args.files_dir is not None:
        files_dir = Path(args.files_dir).expanduser().resolve()
        if not files_dir.is_dir():
            print(f"{prog}: --files-dir {args.files_dir}: not a directory", file=sys.stderr)
            return 2
    server = mcp_front.build_server(AsyncSessionsClient(args.url, token), files_dir)
    try:
        if args.transport == "stdio":
            anyio.run(mcp_front.serve_stdio, server)
        else:
            print(
                f"{prog}: MCP over streamable HTTP on http://{args.host}:{args.port}/mcp, "
                f"driving {args.url}",
                file=sys.stderr,
                flush=True,
            )
            server.run("streamable-http", host=args.host, port=args.port)
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "mcp":
        return _serve_mcp(argv[1:])
    from flask_sessions.app import create_app
    from flask_sessions.extension import FlaskSessions
    from flask_sessions.host import browser
    from flask_sessions.serving import serve

    command = argv.pop(0) if argv and argv[0] in ("serve", "host") else "serve"
    args = parser(command).parse_args(argv)
    if args.find_browser:
        return browser.main()
    prog = _prog() if command == "serve" else f"{_prog()} host"
    if args.log_level:
        os.environ[PREFIX + "LOG_LEVEL"] = args.log_level
    try:
        settings: Settings | None = load()
    except ConfigError as exc:
        if command == "host":
            return _config_problems(prog, exc)
        settings = None  # create_app below reports it with every key named
    logs.configure_root(
        settings.log_level if settings else "INFO", settings.log_format if settings else "text"
    )
    sock = _bind_or_say(prog, args.host, args.port)
    if sock is None:
        return 2
    if command == "host":
        assert settings is not None
        return _serve_host(prog, settings, sock, args.host, args.threads)
    cdp: dict[str, object] = {}
    if "SESSIONS_CDP_HOST" not in os.environ:
        cdp["SESSIONS_CDP_HOST"] = args.host
    if args.cdp_port is not None:
        cdp["SESSIONS_CDP_PORT"] = args.cdp_port
    try:
        app = create_app(cdp)
    except ConfigError as exc:
        sock.close()
        return _config_problems(prog, exc)
    state = FlaskSessions.state(app)

    _stop_on_signals(state.local.runtime if state.local is not None else None)
    port = sock.getsockname()[1]
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    base = f"http://{shown_host}:{port}{state.settings.url_prefix}"
    log = logging.getLogger("flask_sessions")
    try:
        try:  # launch Chromium now so the first start is fast; 503s with a hint if absent
            if state.local is not None:
                state.local.ensure_started(launch_browser=True)
        except SessionsError as exc:
            log.error("flask_sessions: %s", exc.message)
        log.info("flask_sessions %s serving on %s", __version__, base)
        token = app.config.get("SESSIONS_GENERATED_TOKEN")
        if token:
            print(f"{prog}: generated token (set SESSIONS_TOKENS to choose your own): {token}")
            print(
                f"  try: curl -s -X POST {base}/session/start -H 'Authorization: Bearer {token}' "
                "-H 'Content-Type: application/json' -d '{\"screenshot\": true}'"
            )
        print(f"{prog}: serving on {base}")
        if state.cdp is not None and state.cdp.port is not None:
            print(f"{prog}: CDP WebSocket on ws://{shown_host}:{state.cdp.port}/cdp/<session_id>")
        sys.stdout.flush()
        serve(app, sockets=[sock], threads=args.threads, ident="flask_sessions")
    except KeyboardInterrupt:
        pass
    finally:
        state.backend.shutdown()
        sock.close()
    return 0


def _serve_host(
    prog: str, settings: Settings, sock: socket.socket, bound: str, threads: int
) -> int:
    from flask_sessions.cluster.node import Host
    from flask_sessions.serving import serve

    port = sock.getsockname()[1]
    shown = socket.gethostname() if bound in ("0.0.0.0", "::", "") else bound
    shown = f"[{shown}]" if ":" in shown else shown
    url = settings.host_url or f"http://{shown}:{port}"
    if settings.cdp_host is None:  # the CDP WebSocket listens where the host does
        settings = settings.model_copy(update={"cdp_host": bound})
    try:
        host = Host.build(settings, url)
    except ValueError as exc:
        sock.close()
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2

    _stop_on_signals(host.manager.runtime)
    try:
        try:
            host.start()
        except SessionsError as exc:
            logging.getLogger("flask_sessions").error("flask_sessions: %s", exc.message)
        print(f"{prog}: host {host.host_id} serving on {url}")
        sys.stdout.flush()
        serve(host.app, sockets=[sock], threads=threads, ident="flask_sessions_host")
    except KeyboardInterrupt:
        pass
    finally:
        host.shutdown()
        sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
