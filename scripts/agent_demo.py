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
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# ``python scripts/agent_demo.py`` puts scripts/ first on sys.path, not the repo root; add
# the root so the demo site imports as ``scripts.demo_site`` (the name mypy checks it by).
_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from flask_sessions.client import Session, SessionsClient, SessionsError, StepArgs  # noqa: E402
from flask_sessions.schemas import Action, Observation  # noqa: E402
from flask_sessions.testing import ServerProcessError, serve, server_env  # noqa: E402
from scripts.demo_site import PASSWORD, USER, start_demo_site  # noqa: E402

REQUEST_TIMEOUT_S = 90.0
BIO = "Curiouser and curiouser."


class AgentError(Exception):
    """A step did not do what the plan expected."""


def short(value: Any, limit: int = 500) -> str:
    """``value`` as text, cut to ``limit`` characters for an error message."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"


def find_action(observation: Observation, roles: set[str], name: str) -> Action:
    """The first enabled action with one of ``roles`` whose name is ``name`` (any case)."""
    wanted = name.casefold()
    for exact in (True, False):
        for action in observation.actions:
            got = action.name.casefold()
            hit = got == wanted if exact else wanted in got
            if action.role in roles and action.enabled and hit:
                return action
    listed = "; ".join(f"{a.id} {a.role} {a.name!r}" for a in observation.actions)
    raise AgentError(
        f"no enabled {'/'.join(sorted(roles))} named {name!r} on {observation.url} "
        f"(title {observation.title!r}); actions: {listed or 'none'}"
    )


class Agent:
    """The fixed plan on one session, one printed line per step."""

    def __init__(self, session: Session, site: str) -> None:
        self.session = session
        self.site = site.rstrip("/")
        self.observation: Observation | None = None

    def _path(self, url: str) -> str:
        return url.removeprefix(self.site) or "/"

    def _take(self, observation: Observation) -> Observation:
        if observation.error:
            raise AgentError(f"page error on {observation.url}: {observation.error}")
        self.observation = observation
        return observation

    @property
    def seen(self) -> Observation:
        if self.observation is None:
            raise AgentError("nothing observed yet")
        return self.observation

    def observe(self, url: str | None = None, screenshot: bool = False) -> Observation:
        answer = self.session.observe(url=url, screenshot=screenshot)
        if answer.session.status != "active":
            raise AgentError(f"session is not active after observe: {short(answer.session)}")
        observation = self._take(answer.observation)
        print(f"observe {self._path(observation.url)} → {len(observation.actions)} actions")
        return observation

    def act(self, kind: str, roles: set[str], name: str, **fields: Any) -> Observation:
        action = find_action(self.seen, roles, name)
        label = f"{kind} {action.name} ({action.id})"
        step: StepArgs = {"type": kind, "id": action.id, **fields}  # type: ignore[typeddict-item]
        answer = self.session.step(**step)
        if not answer.success:
            raise AgentError(f"{label}: not successful: {answer.message}")
        observation = self._take(answer.observation)
        print(f"{label} → ok ({self._path(observation.url)})")
        return observation

    def expect(self, what: str, ok: bool, detail: Any) -> None:
        if not ok:
            raise AgentError(f"expected {what}; got {short(detail)}")
        print(f"verify {what} → ok")

    def value_of(self, roles: set[str], name: str) -> Any:
        return find_action(self.seen, roles, name).value

    def run(self, screenshot_path: Path | None) -> None:
        obs = self.observe(f"{self.site}/login")
        self.act("fill", {"textbox"}, "Username", value=USER)
        self.act("fill", {"textbox"}, "Password", value=PASSWORD)
        obs = self.act("click", {"button"}, "Sign in")
        welcome = f"Welcome, {USER}"
        self.expect(
            f"{welcome!r} on the page",
            welcome in obs.text or welcome in obs.title,
            {"url": obs.url, "title": obs.title, "text": obs.text},
        )

        obs = self.act("click", {"link"}, "Edit profile")
        self.expect("the profile form", obs.title == "Profile", obs.title)
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
            obs.title == "Profile saved" and "Profile saved" in obs.text,
            {"url": obs.url, "title": obs.title, "text": obs.text},
        )

        scraped = self.session.scrape(format="markdown")
        content = scraped.content
        if not scraped.success or not content:
            raise AgentError(f"scrape: {short(scraped)}")
        print(f"scrape {self._path(scraped.url)} as markdown → {len(content)} chars")
        print("    " + content.strip().replace("\n", "\n    "))
        for field, value in (("color", "blue"), ("news", "yes"), ("bio", BIO)):
            self.expect(f"saved {field} = {value!r}", f"| {field} | {value} |" in content, content)

        if screenshot_path is not None:
            shot = self.session.screenshot()
            if shot.format != "png" or not shot.data.startswith(b"\x89PNG\r\n\x1a\n"):
                raise AgentError(f"screenshot is not a PNG: {shot.media_type}, {shot.data[:16]!r}")
            screenshot_path.write_bytes(shot.data)
            print(f"screenshot → {screenshot_path} ({len(shot.data)} bytes)")


@contextmanager
def run_server() -> Iterator[tuple[str, str]]:
    """``python -m flask_sessions`` on a free port; yields (base URL, token), then stops it."""
    token = secrets.token_urlsafe(24)
    # its own process group: a Ctrl-C here does not reach it before we stop it
    server = serve(server_env(token), cwd=_REPO_ROOT, new_session=True, timeout=60)
    print(f"server: pid {server.pid} on {server.base}")
    try:
        yield server.base, token
    finally:
        leftovers = server.stop()
        print(f"server: stopped (exit {server.proc.returncode})")
        if leftovers:
            print(f"server: killed what it left running: {', '.join(leftovers)}")


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
    try:
        if args.site:
            site = str(args.site).rstrip("/")
        else:
            site_server, site = start_demo_site()
            print(f"demo site: {site}")
        server = _given(args.server, args.token) if args.server else run_server()
        with server as (base, token), SessionsClient(base, token, timeout=REQUEST_TIMEOUT_S) as c:
            session: Session | None = None
            try:
                with c.session(keep_alive=True) as session:  # closed however the plan ends
                    print(f"start {session.session_id} → active")
                    Agent(session, site).run(args.screenshot)
            finally:
                if session is not None and session.close_error is not None:  # after the plan's
                    print(f"also: close failed: {session.close_error}", file=sys.stderr)
            status = session.record.status.value if session.record else "?"
            print(f"close {session.session_id} → {status}")
        print("done: all steps ok")
        return 0
    except (AgentError, SessionsError, ServerProcessError) as exc:
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
