"""The standalone server: ``python -m flask_sessions`` or ``flask-sessions``.

Serves ``create_app()`` with waitress: one process (sessions live in its memory) with
threads for requests. SIGTERM and Ctrl-C close every session and Chromium before exiting.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import socket
import sys
from types import FrameType

from waitress import serve

from . import __version__, browser, logs
from .app import create_app
from .config import PREFIX, ConfigError, Settings, load
from .errors import SessionsError
from .extension import FlaskSessions

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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=_prog(),
        description="Live headless Chromium sessions over HTTP. Serves the API with waitress "
        "in one process; SIGTERM or Ctrl-C closes every session and Chromium.",
        epilog=_environment_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--threads", type=int, default=16, help="request threads (default 16)")
    p.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        help="log level (default: SESSIONS_LOG_LEVEL, else INFO)",
    )
    p.add_argument("--version", action="version", version=f"flask_sessions {__version__}")
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


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.find_browser:
        return browser.main()
    prog = _prog()
    if args.log_level:
        os.environ[PREFIX + "LOG_LEVEL"] = args.log_level
    try:
        settings: Settings | None = load()
    except ConfigError:  # create_app below reports it with every key named
        settings = None
    logs.configure_root(
        settings.log_level if settings else "INFO", settings.log_format if settings else "text"
    )
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        why = "the address is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        print(
            f"{prog}: cannot listen on {args.host}:{args.port}: {why}; "
            "stop the other server or choose another --port",
            file=sys.stderr,
        )
        return 2
    try:
        app = create_app()
    except ConfigError as exc:
        sock.close()
        print(f"{prog}: bad configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    state = FlaskSessions.state(app)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        state.runtime.begin_shutdown()  # Chromium may get the same signal: not a crash
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    # Ctrl-C must work even when the parent started us with SIGINT ignored (`cmd &`).
    signal.signal(signal.SIGINT, on_signal)
    port = sock.getsockname()[1]
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    base = f"http://{shown_host}:{port}{state.settings.url_prefix}"
    log = logging.getLogger("flask_sessions")
    try:
        try:  # launch Chromium now so the first start is fast; 503s with a hint if absent
            state.manager.ensure_started(launch_browser=True)
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
        sys.stdout.flush()
        serve(app, sockets=[sock], threads=args.threads, ident="flask_sessions")
    except KeyboardInterrupt:
        pass
    finally:
        state.manager.shutdown()
        sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
