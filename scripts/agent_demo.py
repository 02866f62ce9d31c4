"""A scripted agent (no LLM, a fixed plan) driving flask_sessions over HTTP alone.

It logs in to the demo site, edits the profile, saves it, scrapes the result as Markdown
and closes its session, printing one line per step. Every element is found in the
observation's ``actions`` by role and name, never by a hard-coded id.

By default it starts what it needs: the demo site (in this process) and the real server
(``python -m flask_sessions`` as a subprocess on a free port with a random token), and shuts
both down at the end. ``--server URL --token T`` uses a running server instead, ``--site URL``
a running demo site.

Run from the repo root: ``python scripts/agent_demo.py [--screenshot /tmp/final.png]``.
Exit status 0 when every step did what was expected, 1 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import requests

# ``python scripts/agent_demo.py`` puts scripts/ first on sys.path, not the repo root; add
# the root so the demo site imports as ``scripts.demo_site`` (the name mypy checks it by).
_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from scripts.api_client import ApiClient as Client  # noqa: E402
from scripts.api_client import ApiError as AgentError  # noqa: E402
from scripts.api_client import Json  # noqa: E402
from scripts.api_client import short as _short  # noqa: E402
from scripts.demo_site import PASSWORD, USER, start_demo_site  # noqa: E402

HEALTH_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 90.0
TERM_GRACE_S = 20.0
BIO = "Curiouser and curiouser."


def find_action(observation: Json, roles: set[str], name: str) -> Json:
    """The first enabled action with one of ``roles`` whose name is ``name`` (any case)."""
    wanted = name.casefold()
    actions: list[Json] = observation.get("actions") or []
    for exact in (True, False):
        for action in actions:
            got = str(action.get("name", "")).casefold()
            hit = got == wanted if exact else wanted in got
            if action.get("role") in roles and action.get("enabled") and hit:
                return action
    listed = "; ".join(f"{a.get('id')} {a.get('role')} {a.get('name')!r}" for a in actions)
    raise AgentError(
        f"no enabled {'/'.join(sorted(roles))} named {name!r} on {observation.get('url')} "
        f"(title {observation.get('title')!r}); actions: {listed or 'none'}"
    )


class Agent:
    """The fixed plan, one printed line per step."""

    def __init__(self, client: Client, site: str) -> None:
        self.client = client
        self.site = site.rstrip("/")
        self.session_id: str | None = None
        self.observation: Json = {}

    def _path(self, url: str) -> str:
        return url.removeprefix(self.site) or "/"

    def _take(self, answer: Json) -> Json:
        observation = answer.get("observation")
        if not isinstance(observation, dict):
            raise AgentError(f"answer has no observation: {_short(answer)}")
        if observation.get("error"):
            raise AgentError(f"page error on {observation.get('url')}: {observation['error']}")
        self.observation = observation
        return observation

    def observe(self, url: str | None = None, screenshot: bool = False) -> Json:
        body: Json = {"screenshot": screenshot}
        if url is not None:
            body["url"] = url
        if self.session_id is None:
            body["keep_alive"] = True
        else:
            body["session_id"] = self.session_id
        answer = self.client.post("/env/observe", body)
        session = answer.get("session") or {}
        if self.session_id is None:
            self.session_id = session.get("session_id")
            if not isinstance(self.session_id, str):
                raise AgentError(f"observe gave no session_id: {_short(answer)}")
        if session.get("status") != "active":
            raise AgentError(f"session is not active after observe: {_short(session)}")
        observation = self._take(answer)
        where = self._path(str(observation.get("url")))
        print(f"observe {where} → {len(observation.get('actions') or [])} actions")
        return observation

    def step(self, kind: str, label: str, **fields: Any) -> Json:
        body: Json = {"session_id": self.session_id, "type": kind, **fields}
        answer = self.client.post("/env/step", body)
        if answer.get("success") is not True:
            raise AgentError(f"{kind} {label}: not successful: {_short(answer)}")
        observation = self._take(answer)
        print(f"{label} → ok ({self._path(str(observation.get('url')))})")
        return observation

    def act(self, kind: str, roles: set[str], name: str, **fields: Any) -> Json:
        action = find_action(self.observation, roles, name)
        label = f"{kind} {action['name']} ({action['id']})"
        return self.step(kind, label, id=action["id"], **fields)

    def expect(self, what: str, ok: bool, detail: Any) -> None:
        if not ok:
            raise AgentError(f"expected {what}; got {_short(detail)}")
        print(f"verify {what} → ok")

    def value_of(self, roles: set[str], name: str) -> Any:
        return find_action(self.observation, roles, name).get("value")

    def run(self, screenshot_path: Path | None) -> None:
        obs = self.observe(f"{self.site}/login")
        self.act("fill", {"textbox"}, "Username", value=USER)
        self.act("fill", {"textbox"}, "Password", value=PASSWORD)
        obs = self.act("click", {"button"}, "Sign in")
        welcome = f"Welcome, {USER}"
        self.expect(
            f"{welcome!r} on the page",
            welcome in str(obs.get("text")) or welcome in str(obs.get("title")),
            {"url": obs.get("url"), "title": obs.get("title"), "text": obs.get("text")},
        )

        obs = self.act("click", {"link"}, "Edit profile")
        self.expect("the profile form", obs.get("title") == "Profile", obs.get("title"))
        self.act(
            "select_dropdown_option", {"combobox", "listbox"}, "Favourite colour", value="Blue"
        )
        colour = self.value_of({"combobox", "listbox"}, "Favourite colour")
        self.expect("colour shows 'Blue'", colour == "Blue", colour)
        self.act("check", {"checkbox"}, "Send me news", value=True)
        news = self.value_of({"checkbox"}, "Send me news")
        self.expect("news is checked", news == "checked", news)
        self.act("fill", {"textbox"}, "Bio", value=BIO)
        bio = self.value_of({"textbox"}, "Bio")
        self.expect("bio is filled", bio == BIO, bio)

        obs = self.act("click", {"button"}, "Save")
        self.expect(
            "'Profile saved'",
            obs.get("title") == "Profile saved" and "Profile saved" in str(obs.get("text")),
            {"url": obs.get("url"), "title": obs.get("title"), "text": obs.get("text")},
        )

        scraped = self.client.post(
            "/env/scrape", {"session_id": self.session_id, "format": "markdown"}
        )
        content = str(scraped.get("content", ""))
        if scraped.get("success") is not True or not content:
            raise AgentError(f"scrape: {_short(scraped)}")
        print(f"scrape {self._path(str(scraped.get('url')))} as markdown → {len(content)} chars")
        print("    " + content.strip().replace("\n", "\n    "))
        for field, value in (("color", "blue"), ("news", "yes"), ("bio", BIO)):
            self.expect(f"saved {field} = {value!r}", f"| {field} | {value} |" in content, content)

        if screenshot_path is not None:
            obs = self.observe(screenshot=True)
            shot = obs.get("screenshot")
            if not isinstance(shot, str) or not shot:
                raise AgentError(f"observe with screenshot true gave screenshot={shot!r}")
            try:
                png = base64.b64decode(shot, validate=True)
            except binascii.Error as exc:
                raise AgentError(f"screenshot is not base64: {exc}") from None
            if not png.startswith(b"\x89PNG\r\n\x1a\n"):
                raise AgentError(f"screenshot is not a PNG: starts {png[:16]!r}")
            screenshot_path.write_bytes(png)
            print(f"screenshot → {screenshot_path} ({len(png)} bytes)")

    def close(self) -> None:
        if self.session_id is None:
            return
        session_id, self.session_id = self.session_id, None
        answer = self.client.post("/session/close", {"session_id": session_id})
        status = answer.get("status") or (answer.get("session") or {}).get("status")
        if status != "closed":
            raise AgentError(f"close {session_id}: {_short(answer)}")
        print(f"close {session_id} → {status}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _log_tail(log: Any, lines: int = 30) -> str:
    log.flush()
    log.seek(0)
    text: str = log.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


@contextmanager
def run_server() -> Iterator[tuple[str, str]]:
    """``python -m flask_sessions`` on a free port; yields (base URL, token), then stops it."""
    token = secrets.token_urlsafe(24)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "SESSIONS_TOKENS": token}
    cmd = [sys.executable, "-m", "flask_sessions", "--host", "127.0.0.1", "--port", str(port)]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            cmd,
            cwd=_REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our own group: Ctrl-C here does not hit it first
        )
        print(f"server: started pid {proc.pid} on {base}")
        try:
            deadline = time.monotonic() + HEALTH_TIMEOUT_S
            while True:
                if proc.poll() is not None:
                    raise AgentError(
                        f"server exited with {proc.returncode} before it was healthy:\n"
                        + _log_tail(log)
                    )
                with suppress(requests.RequestException):
                    resp = requests.get(base + "/healthz", timeout=2)
                    if resp.status_code == 200:
                        print(f"server: healthy {resp.json()}")
                        break
                if time.monotonic() > deadline:
                    raise AgentError(
                        f"server not healthy after {HEALTH_TIMEOUT_S:.0f} s:\n" + _log_tail(log)
                    )
                time.sleep(0.2)
            yield base, token
        finally:
            stop_server(proc)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=TERM_GRACE_S)
        except subprocess.TimeoutExpired:
            print(f"server: pid {proc.pid} ignored SIGTERM for {TERM_GRACE_S:.0f} s; killing it")
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its group: Chromium too
            proc.wait()
    print(f"server: stopped (exit {proc.returncode})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", help="use this running flask_sessions (base URL)")
    parser.add_argument("--token", help="bearer token for --server")
    parser.add_argument("--site", help="use this running demo site (base URL)")
    parser.add_argument("--screenshot", type=Path, help="save the final page here as PNG")
    args = parser.parse_args(argv)
    if bool(args.server) != bool(args.token):
        parser.error("--server and --token go together")

    site_server = None
    agent: Agent | None = None
    try:
        if args.site:
            site = str(args.site).rstrip("/")
        else:
            site_server, site = start_demo_site()
            print(f"demo site: {site}")
        server = _given(args.server, args.token) if args.server else run_server()
        with server as (base, token):
            client = Client(base, token, REQUEST_TIMEOUT_S)
            agent = Agent(client, site)
            failed = True
            try:
                agent.run(args.screenshot)
                failed = False
            finally:
                try:
                    agent.close()
                except AgentError as exc:
                    if not failed:
                        raise
                    print(f"also: {exc}", file=sys.stderr)  # keep the first failure's report
                finally:
                    client.close()
        print("done: all steps ok")
        return 0
    except AgentError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if site_server is not None:
            site_server.shutdown()
            site_server.server_close()


@contextmanager
def _given(server: str, token: str) -> Iterator[tuple[str, str]]:
    yield str(server).rstrip("/"), str(token)


if __name__ == "__main__":
    raise SystemExit(main())
