"""``python -m flask_sessions``: serve ``create_app()`` with waitress (one process).

Sessions live in this process's memory, so it is one process with threads, never
several workers. SIGTERM and Ctrl-C close every session and Chromium before exiting.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from types import FrameType

from waitress import serve

from . import browser
from .app import create_app
from .errors import SessionsError
from .extension import FlaskSessions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flask_sessions", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks one)")
    parser.add_argument("--threads", type=int, default=16, help="WSGI worker threads")
    parser.add_argument(
        "--cdp-port",
        type=int,
        default=None,
        help="port of the per-session CDP WebSocket (default SESSIONS_CDP_PORT, else ephemeral); "
        "it listens on --host unless SESSIONS_CDP_HOST says otherwise",
    )
    parser.add_argument(
        "--find-browser",
        action="store_true",
        help="print the Chromium the server would launch (exit 1 if none) and exit",
    )
    args = parser.parse_args(argv)
    if args.find_browser:
        return browser.main()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    cdp: dict[str, object] = {}
    if "SESSIONS_CDP_HOST" not in os.environ:
        cdp["SESSIONS_CDP_HOST"] = args.host
    if args.cdp_port is not None:
        cdp["SESSIONS_CDP_PORT"] = args.cdp_port
    try:
        app = create_app(cdp)
    except ValueError as exc:
        print(f"flask_sessions: bad configuration: {exc}", file=sys.stderr)
        return 2
    state = FlaskSessions.state(app)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    # Ctrl-C must work even when the parent started us with SIGINT ignored (`cmd &`).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:  # launch Chromium now so the first start is fast; serve 503s with a hint if absent
        state.manager.ensure_started(launch_browser=True)
    except SessionsError as exc:
        logging.getLogger("flask_sessions").error("flask_sessions: %s", exc.message)
    token = app.config.get("SESSIONS_GENERATED_TOKEN")
    base = f"http://{args.host}:{args.port}{state.settings.url_prefix}"
    if state.cdp is not None and state.cdp.port is not None:
        print(
            f"flask_sessions: CDP WebSocket on ws://{args.host}:{state.cdp.port}/cdp/<session_id>"
        )
    if token:
        print(f"flask_sessions: generated token (set SESSIONS_TOKENS to choose your own): {token}")
        print(
            f"  try: curl -s -X POST {base}/session/start -H 'Authorization: Bearer {token}' "
            "-H 'Content-Type: application/json' -d '{\"screenshot\": true}'"
        )
    sys.stdout.flush()
    try:
        serve(app, host=args.host, port=args.port, threads=args.threads, ident="flask_sessions")
    except KeyboardInterrupt:
        pass
    finally:
        state.manager.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
