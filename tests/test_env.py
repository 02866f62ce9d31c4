"""Integration tests of the agent loop: observe, step, scrape and screenshots (issue 3).

Real Chromium through Flask's test client; pages come from the demo site
(``scripts/demo_site.py``) on 127.0.0.1, or from ``data:`` URLs. Time comes from the test's
ManualClock. Ids are looked up by name in each observation, never hard-coded, except where
a test is about a specific id.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_sessions import FlaskSessions, ManualClock
from flask_sessions.extension import SessionsState
from scripts.demo_site import PASSWORD, USER, start_demo_site

from .conftest import AUTH_A, AUTH_B, AppFactory, png_size, wait_for

# ------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    """Base URL of the demo site, served on 127.0.0.1 for this module."""
    server, base = start_demo_site()
    yield base
    server.shutdown()
    server.server_close()


def post(
    client: FlaskClient, path: str, expect: int = 200, headers: dict[str, str] = AUTH_A, **body: Any
) -> Any:
    response = client.post(path, json=body, headers=headers)
    assert response.status_code == expect, (path, body, response.get_json())
    assert response.is_json
    return response.get_json()


def observe(client: FlaskClient, expect: int = 200, **body: Any) -> Any:
    return post(client, "/env/observe", expect, **body)


def step(client: FlaskClient, session_id: str, kind: str, expect: int = 200, **fields: Any) -> Any:
    return post(client, "/env/step", expect, session_id=session_id, type=kind, **fields)


def scrape(client: FlaskClient, expect: int = 200, **body: Any) -> Any:
    return post(client, "/env/scrape", expect, **body)


def open_session(client: FlaskClient, url: str) -> tuple[str, Any]:
    """A kept-alive session on ``url``: (session_id, first observation)."""
    body = observe(client, url=url, keep_alive=True)
    assert body["session"]["status"] == "active"
    return body["session"]["session_id"], body["observation"]


def action_id(observation: Any, name: str, role: str | None = None) -> str:
    """The id of the one action called ``name`` (and of ``role``, if given)."""
    found = [
        a["id"]
        for a in observation["actions"]
        if a["name"] == name and (role is None or a["role"] == role)
    ]
    assert len(found) == 1, (name, observation["actions"])
    return str(found[0])


def action(observation: Any, ident: str) -> Any:
    """The action with id ``ident`` in ``observation``."""
    return next(a for a in observation["actions"] if a["id"] == ident)


def login(client: FlaskClient, base: str, password: str = PASSWORD) -> tuple[str, Any]:
    """Log in on a new kept-alive session: (session_id, the last step's response)."""
    sid, obs = open_session(client, base + "/login")
    assert obs["title"] == "Log in" and obs["http_status"] == 200
    user = action_id(obs, "Username", "textbox")
    secret = action_id(obs, "Password", "textbox")
    filled = step(client, sid, "fill", id=user, value=USER)
    assert filled["success"] is True
    assert action(filled["observation"], user)["value"] == USER
    return sid, step(client, sid, "fill", id=secret, value=password, press_enter=True)


def state_of(app: Flask) -> SessionsState:
    return FlaskSessions.state(app)


def context_count(app: Flask) -> int:
    """How many BrowserContexts the app's Chromium has open for sessions (launches it if
    needed); the warm pool's ready contexts are not sessions and are left out."""
    state = FlaskSessions.state(app)

    async def count() -> int:
        browser = await state.runtime.browser()
        await state.manager.settled()
        pooled = state.manager.pool.ready_contexts()
        return len([c for c in browser.contexts if c not in pooled])

    return state.runtime.submit(count(), 20)


def session_status(client: FlaskClient, session_id: str) -> Any:
    response = client.get(f"/session/{session_id}", headers=AUTH_A)
    assert response.status_code == 200
    return response.get_json()


def closed_port() -> int:
    """A local port nothing listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def data_url(html: str) -> str:
    return "data:text/html," + quote(html)


def png_of(data: bytes) -> tuple[int, int]:
    return png_size(base64.b64encode(data).decode("ascii"))


# ------------------------------------------------------------------------ login


def test_login_with_fill_and_press_enter(make_app: AppFactory, demo: str) -> None:
    client = make_app().test_client()
    sid, result = login(client, demo)
    assert result["success"] is True and "pressed Enter" in result["message"]
    obs = result["observation"]
    assert obs["url"] == demo + "/account"  # POST /login → 303 → /account, followed
    assert obs["title"] == "Account" and obs["http_status"] == 200 and obs["error"] is None
    assert obs["text"].startswith("Welcome, alice")
    assert {a["name"] for a in obs["actions"]} == {"Edit profile", "Home"}
    assert all(a["id"].startswith("L") and a["role"] == "link" for a in obs["actions"])
    assert result["session"]["session_id"] == sid and result["session"]["status"] == "active"

    # The password never comes back in an observation.
    again = observe(client, session_id=sid, url=demo + "/login")["observation"]
    secret = action_id(again, "Password")
    filled = step(client, sid, "fill", id=secret, value="hunter2")
    assert action(filled["observation"], secret)["value"] == "••••"
    assert "hunter2" not in str(filled)


def test_login_with_a_wrong_password_shows_the_401_page(make_app: AppFactory, demo: str) -> None:
    client = make_app().test_client()
    _, result = login(client, demo, password="not-the-password")
    assert result["success"] is True  # the action worked; the site said no
    obs = result["observation"]
    assert obs["title"] == "Log in failed" and obs["http_status"] == 401
    assert "401" in obs["error"]
    assert "Wrong username or password." in obs["text"]
    assert action_id(obs, "Retry", "link")


# ------------------------------------------------------------- links and history


def test_links_across_three_pages_and_history(make_app: AppFactory, demo: str) -> None:
    client = make_app().test_client()
    sid, obs = open_session(client, demo + "/pages/1")
    assert obs["title"] == "Page 1"
    for n in (2, 3):
        result = step(client, sid, "click", id=action_id(obs, "Next page", "link"))
        assert result["success"] is True, result["message"]
        obs = result["observation"]
        assert (obs["url"], obs["title"]) == (f"{demo}/pages/{n}", f"Page {n}")
        assert obs["http_status"] == 200
    assert "The end." in obs["text"] and obs["actions"] == []

    for kind, n in (("go_back", 2), ("go_back", 1), ("go_forward", 2), ("go_forward", 3)):
        result = step(client, sid, kind)
        assert result["success"] is True, (kind, result["message"])
        assert result["message"] == f"{kind.replace('_', ' ')}: now at {demo}/pages/{n}"
        page = result["observation"]
        assert (page["url"], page["title"]) == (f"{demo}/pages/{n}", f"Page {n}")

    result = step(client, sid, "go_forward")  # at the end of the history
    assert result["success"] is False and "no page to go forward" in result["message"]
    assert result["observation"]["title"] == "Page 3"
    result = step(client, sid, "reload")
    assert result["success"] is True and result["observation"]["title"] == "Page 3"

    fresh = post(client, "/session/start")["session_id"]  # about:blank, no history
    result = step(client, fresh, "go_back")
    assert result["success"] is False and "no page to go back to" in result["message"]
    assert result["observation"]["url"] == "about:blank"


def test_go_back_over_a_hash_navigation_succeeds(make_app: AppFactory, demo: str) -> None:
    client = make_app().test_client()
    sid, _ = open_session(client, demo + "/pages/1")
    assert step(client, sid, "goto", url=demo + "/pages/1#top")["success"] is True
    result = step(client, sid, "go_back")
    assert result["observation"]["url"] == demo + "/pages/1"  # it did go back…
    assert result["success"] is True, result["message"]  # …but says it could not


# ------------------------------------------------------------------ form controls


def test_profile_select_check_textarea_and_disabled_button(make_app: AppFactory, demo: str) -> None:
    client = make_app().test_client()
    sid, result = login(client, demo)
    assert result["observation"]["title"] == "Account"
    obs = observe(client, session_id=sid, url=demo + "/profile")["observation"]
    assert obs["title"] == "Profile"
    colour = action_id(obs, "Favourite colour", "combobox")
    news = action_id(obs, "Send me news", "checkbox")
    bio = action_id(obs, "Bio", "textbox")
    save = action_id(obs, "Save", "button")
    delete = action_id(obs, "Delete", "button")
    assert (colour[0], news[0], bio[0], save[0]) == ("S", "C", "I", "B")
    assert action(obs, colour)["value"] == "Red" and action(obs, news)["value"] == "unchecked"
    assert action(obs, delete)["enabled"] is False and action(obs, save)["enabled"] is True

    result = step(client, sid, "click", id=delete)
    assert result["success"] is False and "disabled" in result["message"]
    assert result["observation"]["url"] == demo + "/profile"

    result = step(client, sid, "select_dropdown_option", id=colour, value="blue")  # by value
    assert result["success"] is True and action(result["observation"], colour)["value"] == "Blue"
    result = step(client, sid, "select_dropdown_option", id=colour, value="Green")  # by label
    assert result["success"] is True and action(result["observation"], colour)["value"] == "Green"

    result = step(client, sid, "check", id=news)
    assert result["success"] is True and action(result["observation"], news)["value"] == "checked"
    result = step(client, sid, "check", id=news, value=False)
    assert action(result["observation"], news)["value"] == "unchecked"
    result = step(client, sid, "check", id=news)
    assert action(result["observation"], news)["value"] == "checked"

    step(client, sid, "fill", id=bio, value="Likes tea")
    result = step(client, sid, "fill", id=bio, value="&cake", clear_before_fill=False)
    assert action(result["observation"], bio)["value"] == "Likes tea&cake"
    result = step(client, sid, "fill", id=bio, value="Likes tea")  # clears by default
    assert action(result["observation"], bio)["value"] == "Likes tea"

    result = step(client, sid, "click", id=save)
    assert result["success"] is True, result["message"]
    saved = result["observation"]
    assert saved["title"] == "Profile saved" and saved["http_status"] == 200
    lines = saved["text"].splitlines()
    for row in ("Field Value", "bio Likes tea", "color green", "news yes"):
        assert row in lines, (row, lines)
    table = scrape(client, session_id=sid, selector="table")
    assert table["success"] is True
    assert table["content"] == (
        "| Field | Value |\n| --- | --- |\n| bio | Likes tea |\n| color | green |\n| news | yes |\n"
    )


def test_fill_types_the_value_verbatim(make_app: AppFactory) -> None:
    client = make_app().test_client()
    page = data_url("<title>Text</title><textarea aria-label='Notes'>Likes tea</textarea>")
    sid, obs = open_session(client, page)
    notes = action_id(obs, "Notes", "textbox")
    result = step(client, sid, "fill", id=notes, value=" and cake", clear_before_fill=False)
    assert action(result["observation"], notes)["value"] == "Likes tea and cake"
    result = step(client, sid, "fill", id=notes, value="  padded  ")
    assert action(result["observation"], notes)["value"] == "  padded  "


# ------------------------------------------------------------------ stale ids


def test_ids_go_stale_when_the_page_changes(make_app: AppFactory, demo: str) -> None:
    client = make_app().test_client()
    sid, obs = open_session(client, demo + "/changing")
    button = action_id(obs, "Change the page", "button")
    home = action_id(obs, "Home", "link")
    result = step(client, sid, "click", id=button)
    assert result["success"] is True
    after = result["observation"]
    assert after["text"].startswith("After")
    assert [a["name"] for a in after["actions"]] == ["Again"]

    r = client.post(
        "/env/step", json={"session_id": sid, "type": "click", "id": home}, headers=AUTH_A
    )
    assert r.status_code == 409 and r.is_json
    assert r.get_json()["stale_id"] == home and "observe again" in r.get_json()["error"]
    r = client.post(
        "/env/step", json={"session_id": sid, "type": "click", "id": "B99"}, headers=AUTH_A
    )
    assert r.status_code == 409 and r.get_json()["stale_id"] == "B99"
    r = client.post(
        "/env/step",
        json={"session_id": sid, "type": "fill", "id": "I7", "value": "x"},
        headers=AUTH_A,
    )
    assert r.status_code == 409 and r.get_json()["stale_id"] == "I7"
    # A stale id is the agent's mistake, not the session's end.
    assert session_status(client, sid)["status"] == "active"
    again = action_id(after, "Again", "button")
    assert step(client, sid, "click", id=again)["success"] is True


def test_an_observed_element_removed_by_the_page_is_stale(make_app: AppFactory) -> None:
    client = make_app().test_client()
    page = data_url(
        "<title>Vanishing</title><button onclick='void 0'>Soon gone</button>"
        "<script>setTimeout(() => { document.body.innerHTML = '<p>gone</p>'; }, 500)</script>"
    )
    sid, obs = open_session(client, page)
    button = action_id(obs, "Soon gone", "button")
    time.sleep(1.0)  # the page rewrites itself; no observation in between
    r = client.post(
        "/env/step", json={"session_id": sid, "type": "click", "id": button}, headers=AUTH_A
    )
    assert r.status_code == 409 and r.get_json()["stale_id"] == button
    assert "gone" in r.get_json()["error"]
    assert session_status(client, sid)["status"] == "active"


# ------------------------------------------------------------- timeouts and errors


def test_slow_page_times_out_and_the_session_lives_on(make_app: AppFactory, demo: str) -> None:
    app = make_app(SESSIONS_NAVIGATION_TIMEOUT_MS=500, SESSIONS_ACTION_TIMEOUT_MS=300)
    client = app.test_client()
    body = observe(client, url=demo + "/slow?ms=3000", keep_alive=True)
    assert body["session"]["status"] == "active"
    sid = body["session"]["session_id"]
    assert "timed out" in body["observation"]["error"]
    assert "SESSIONS_NAVIGATION_TIMEOUT_MS" in body["observation"]["error"]

    obs = observe(client, session_id=sid, url=demo + "/pages/1")["observation"]
    assert obs["title"] == "Page 1" and obs["error"] is None and obs["http_status"] == 200
    result = step(client, sid, "click", id=action_id(obs, "Next page"))
    assert result["success"] is True and result["observation"]["title"] == "Page 2"

    result = step(client, sid, "click", selector="#no-such-element")
    assert result["success"] is False and "timed out" in result["message"]
    assert "SESSIONS_ACTION_TIMEOUT_MS" in result["message"]
    assert result["observation"]["title"] == "Page 2"
    assert session_status(client, sid)["status"] == "active"


def test_a_timed_out_navigation_answers_within_the_timeout(make_app: AppFactory, demo: str) -> None:
    client = make_app(SESSIONS_NAVIGATION_TIMEOUT_MS=500).test_client()
    observe(client, url="about:blank")  # Chromium launched before timing
    began = time.monotonic()
    body = observe(client, url=demo + "/slow?ms=3000")
    elapsed = time.monotonic() - began
    assert "timed out" in body["observation"]["error"]
    assert elapsed < 2.5, f"observe took {elapsed:.1f} s with a 0.5 s navigation timeout"


def test_404_refused_and_redirected_pages(make_app: AppFactory, demo: str) -> None:
    client = make_app().test_client()
    sid, obs = open_session(client, demo + "/no/such/page")
    assert obs["http_status"] == 404 and "404" in obs["error"]
    assert obs["title"] == "Not found" and "No such page." in obs["text"]

    url = f"http://127.0.0.1:{closed_port()}/"
    body = observe(client, session_id=sid, url=url)
    assert body["session"]["status"] == "active"
    obs = body["observation"]
    assert obs["error"] and "ERR_CONNECTION_REFUSED" in obs["error"] and url in obs["error"]
    assert obs["http_status"] is None
    result = step(client, sid, "goto", url=url)
    assert result["success"] is False and "ERR_CONNECTION_REFUSED" in result["message"]

    result = step(client, sid, "goto", url=demo + "/redirect")  # 302 → /
    assert result["success"] is True
    obs = result["observation"]
    assert obs["url"] == demo + "/" and obs["title"] == "Demo home"
    assert obs["http_status"] == 200 and obs["error"] is None
    assert session_status(client, sid)["status"] == "active"


def test_observe_limits_are_configurable(make_app: AppFactory, demo: str) -> None:
    app = make_app(SESSIONS_OBSERVE_MAX_TEXT=10, SESSIONS_OBSERVE_MAX_ACTIONS=2)
    obs = observe(app.test_client(), url=demo + "/")["observation"]
    assert obs["text"] == "Demo shop" and obs["text_truncated"] is True  # cut, then trimmed
    assert [a["name"] for a in obs["actions"]] == ["Log in", "Report"]
    assert [a["id"] for a in obs["actions"]] == ["L1", "L2"]


# ------------------------------------------------------------------------- scrape

REPORT_MARKDOWN = """\
# Quarterly report

Figures for [Q3]({base}/pages/1).

| Region | Sales |
| --- | --- |
| North | 120 |
| South | 80 |

## Notes

- Growth
  - North up 20%
  - South flat
- Next steps
"""


def test_scrape_formats_and_selectors(make_app: AppFactory, demo: str) -> None:
    client = make_app().test_client()
    body = scrape(client, url=demo + "/report", keep_alive=True)
    sid = body["session"]["session_id"]
    assert body["success"] is True and body["format"] == "markdown"
    assert (body["url"], body["title"]) == (demo + "/report", "Quarterly report")
    assert body["content"] == REPORT_MARKDOWN.format(base=demo)

    text = scrape(client, session_id=sid, format="text")
    assert text["success"] is True and text["format"] == "text"
    lines = text["content"].splitlines()
    assert lines[0] == "Quarterly report"
    for line in ("Figures for Q3.", "Region Sales", "North 120", "North up 20%", "Next steps"):
        assert line in lines, (line, lines)
    assert "window.demo" not in text["content"] and "font-family" not in text["content"]

    html = scrape(client, session_id=sid, format="html")
    assert html["success"] is True and html["format"] == "html"
    content = html["content"]
    assert content.startswith("<body>") and "<table>" in content and "<h2>Notes</h2>" in content
    assert f'href="{demo}/pages/1"' in content
    for boilerplate in ("<script", "<style", "window.demo", "font-family", "data-fs-id"):
        assert boilerplate not in content, boilerplate

    table = scrape(client, session_id=sid, selector="table")
    assert table["success"] is True and table["message"] == "scraped table"
    assert table["content"] == (
        "| Region | Sales |\n| --- | --- |\n| North | 120 |\n| South | 80 |\n"
    )
    nested = scrape(client, session_id=sid, selector="ul", format="text")
    assert nested["content"].splitlines() == ["Growth", "North up 20%", "South flat", "Next steps"]

    nothing = scrape(client, session_id=sid, selector="#no-such-thing")
    assert nothing["success"] is False and "matched nothing" in nothing["message"]
    assert nothing["content"] == ""

    bad = scrape(client, 400, session_id=sid, selector="a[[")
    assert "selector" in bad["error"]
    assert [f["field"] for f in bad["fields"]] == ["selector"]
    bad = scrape(client, 400, session_id=sid, format="pdf")
    assert [f["field"] for f in bad["fields"]] == ["format"]
    assert session_status(client, sid)["status"] == "active"


def test_scrape_markdown_leaves_out_hidden_text(make_app: AppFactory, demo: str) -> None:
    client = make_app().test_client()
    text = scrape(client, url=demo + "/login", format="text")["content"]
    assert "You should not see this" not in text
    markdown = scrape(client, url=demo + "/login")["content"]
    assert "You should not see this" not in markdown


# ----------------------------------------------------------- one-shot sessions


def test_one_shot_calls_leave_no_context_open(make_app: AppFactory, demo: str) -> None:
    app = make_app()
    client = app.test_client()
    assert context_count(app) == 0

    body = observe(client, url=demo + "/pages/1")
    assert body["observation"]["title"] == "Page 1"
    assert body["session"]["status"] == "closed" and body["session"]["closed_at"]
    assert context_count(app) == 0

    body = scrape(client, url=demo + "/report", selector="h1")
    assert body["content"] == "# Quarterly report\n" and body["session"]["status"] == "closed"
    assert context_count(app) == 0

    body = post(client, "/env/step", type="goto", url=demo + "/pages/2")
    assert body["success"] is True and body["observation"]["title"] == "Page 2"
    assert body["session"]["status"] == "closed"
    assert context_count(app) == 0

    scrape(client, 400, url=demo + "/report", selector="a[[")  # fails inside the page
    r = client.post("/env/step", json={"type": "click", "id": "B1"}, headers=AUTH_A)
    assert r.status_code == 409  # a fresh session has no observation yet
    assert context_count(app) == 0
    sessions = client.get("/sessions", headers=AUTH_A).get_json()["sessions"]
    assert sessions and {s["status"] for s in sessions} == {"closed"}

    body = observe(client, url=demo + "/pages/1", keep_alive=True)
    sid = body["session"]["session_id"]
    assert body["session"]["status"] == "active" and context_count(app) == 1
    result = step(client, sid, "click", id=action_id(body["observation"], "Next page"))
    assert result["success"] is True and result["observation"]["title"] == "Page 2"

    body = scrape(client, url=demo + "/report", keep_alive=True)
    kept = body["session"]["session_id"]
    assert body["session"]["status"] == "active" and context_count(app) == 2
    scrolled = step(client, kept, "scroll_down", amount=50)  # the report fits the window
    assert scrolled["message"] == "the page is already at the bottom; nothing moved"
    assert observe(client, session_id=kept)["observation"]["title"] == "Quarterly report"

    # Calls on an existing session never close it, keep_alive or not.
    observe(client, session_id=sid, keep_alive=False)
    scrape(client, session_id=sid)
    assert session_status(client, sid)["status"] == "active" and context_count(app) == 2


# -------------------------------------------------------------- step body fuzz


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "click", "id": 3}, "id"),
        ({"type": "click", "id": "B1", "selector": 7}, "selector"),
        ({"type": "fill", "id": "I1", "value": "x", "press_enter": "maybe"}, "press_enter"),
        ({"type": "fill", "id": "I1", "value": 5}, "value"),
        ({"type": "fill", "id": "I1"}, "value"),
        ({"type": "check", "id": "C1", "value": "very"}, "value"),
        ({"type": "select_dropdown_option", "id": "S1"}, "value"),
        ({"type": "wait", "time_ms": "x"}, "time_ms"),
        ({"type": "wait", "time_ms": -1}, "time_ms"),
        ({"type": "wait", "time_ms": 10_001}, "time_ms"),
        ({"type": "wait"}, "time_ms"),
        ({"type": "scroll_down", "amount": 0}, "amount"),
        ({"type": "press_key", "key": ""}, "key"),
        ({"type": "dance"}, "type"),
        ({"type": 5}, "type"),
        ({"id": "B1"}, "type"),
        ({}, "type"),
        ({"type": "click"}, "id"),
        ({"type": "fill", "value": "x"}, "id"),
        ({"type": "click", "id": "B1", "selector": "button"}, "id"),
        ({"type": "click", "selector": ""}, "selector"),
        ({"type": "goto", "url": "file:///etc/passwd"}, "url"),
        ({"type": "goto", "url": "javascript:alert(1)"}, "url"),
        ({"type": "goto", "url": "JavaScript:alert(1)"}, "url"),
        ({"type": "goto"}, "url"),
        ({"type": "click", "id": "B1", "colour": "red"}, "colour"),
        ({"type": "go_back", "id": "B1"}, "id"),
        ({"type": "click", "id": "B1", "session_id": "../etc"}, "session_id"),
        ({"type": "click", "id": "B1", "keep_alive": "sometimes"}, "keep_alive"),
    ],
)
def test_step_400_names_the_field(make_app: AppFactory, body: dict[str, Any], field: str) -> None:
    app = make_app()
    r = app.test_client().post("/env/step", json=body, headers=AUTH_A)
    assert r.status_code == 400 and r.is_json, r.get_json()
    payload = r.get_json()
    assert field in {f["field"] for f in payload["fields"]}, payload
    assert field in payload["error"] and "Traceback" not in payload["error"]
    assert state_of(app).runtime.launches == 0  # refused before any browser work


def test_step_400_messages_say_how_to_fix(make_app: AppFactory) -> None:
    client = make_app().test_client()
    r = client.post("/env/step", json={"type": "click"}, headers=AUTH_A)
    assert "selector" in r.get_json()["error"]  # the field is id; the fix mentions both
    r = client.post("/env/step", json={"type": "dance"}, headers=AUTH_A)
    assert "select_dropdown_option" in r.get_json()["error"]  # the known types are listed
    r = client.post("/env/step", json={"type": "click", "id": "B1", "x": 1}, headers=AUTH_A)
    assert "accepted fields are" in r.get_json()["error"]
    r = client.post("/env/step", data="[1]", content_type="application/json", headers=AUTH_A)
    assert r.status_code == 400 and r.get_json()["fields"][0]["field"] == "body"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/env/observe", {"url": "ftp://x"}, "url"),
        ("/env/observe", {"url": "file:///etc/passwd"}, "url"),
        ("/env/observe", {"url": "http://"}, "url"),
        ("/env/observe", {"selector": "h1"}, "selector"),
        ("/env/observe", {"screenshot": "please"}, "screenshot"),
        ("/env/scrape", {"url": "javascript:alert(1)"}, "url"),
        ("/env/scrape", {"format": "pdf"}, "format"),
        ("/env/scrape", {"selector": ""}, "selector"),
        ("/session/start", {"url": "chrome://settings"}, "url"),
    ],
)
def test_observe_scrape_start_400_name_the_field(
    make_app: AppFactory, path: str, body: dict[str, Any], field: str
) -> None:
    app = make_app()
    r = app.test_client().post(path, json=body, headers=AUTH_A)
    assert r.status_code == 400 and r.is_json
    assert field in {f["field"] for f in r.get_json()["fields"]}
    assert state_of(app).runtime.launches == 0


def test_a_malformed_action_id_gets_the_id_message(make_app: AppFactory) -> None:
    r = (
        make_app()
        .test_client()
        .post("/env/step", json={"type": "click", "id": "nope"}, headers=AUTH_A)
    )
    assert r.status_code == 400
    (entry,) = r.get_json()["fields"]
    assert entry["field"] == "id"
    assert "1 to 64" not in entry["message"], entry


def test_booleans_are_not_milliseconds(make_app: AppFactory) -> None:
    r = (
        make_app()
        .test_client()
        .post("/env/step", json={"type": "wait", "time_ms": True}, headers=AUTH_A)
    )
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["fields"][0]["field"] == "time_ms"


# ------------------------------------------------------------------ screenshots


TALL_PAGE = data_url("<title>Tall</title><div style='height:3000px'>tall</div><p>bottom</p>")


def test_screenshot_endpoint(make_app: AppFactory, clock: ManualClock) -> None:
    client = make_app().test_client()
    sid = post(client, "/session/start")["session_id"]
    body = observe(client, session_id=sid, url=TALL_PAGE, screenshot=True)
    assert body["observation"]["title"] == "Tall"
    assert png_size(body["observation"]["screenshot"]) == (1280, 720)

    r = client.get(f"/session/{sid}/screenshot", headers=AUTH_A)
    assert r.status_code == 200 and r.mimetype == "image/png"
    assert png_of(r.data) == (1280, 720)
    r = client.get(f"/session/{sid}/screenshot?full_page=true", headers=AUTH_A)
    width, height = png_of(r.data)
    assert r.status_code == 200 and width == 1280 and height > 3000
    r = client.get(f"/session/{sid}/screenshot", headers={**AUTH_A, "Accept": "application/json"})
    assert r.status_code == 200 and r.is_json
    payload = r.get_json()
    assert payload["session_id"] == sid and png_size(payload["screenshot"]) == (1280, 720)
    r = client.get(f"/session/{sid}/screenshot?full_page=maybe", headers=AUTH_A)
    assert r.status_code == 400 and "full_page" in r.get_json()["error"]

    # Taking a screenshot counts as access; reading the status does not.
    before = datetime.fromisoformat(session_status(client, sid)["last_accessed_at"])
    clock.advance(minutes=2)
    assert datetime.fromisoformat(session_status(client, sid)["last_accessed_at"]) == before
    assert client.get(f"/session/{sid}/screenshot", headers=AUTH_A).status_code == 200
    after = datetime.fromisoformat(session_status(client, sid)["last_accessed_at"])
    assert after - before == timedelta(minutes=2)

    assert client.get(f"/session/{sid}/screenshot", headers=AUTH_B).status_code == 404
    assert client.get("/session/nope/screenshot", headers=AUTH_A).status_code == 404
    assert client.get(f"/session/{sid}/screenshot").status_code == 401
    post(client, "/session/close", session_id=sid)
    r = client.get(f"/session/{sid}/screenshot", headers=AUTH_A)
    assert r.status_code == 409 and r.is_json and r.get_json()["status"] == "closed"


def test_observe_step_and_scrape_count_as_access(
    make_app: AppFactory, clock: ManualClock, demo: str
) -> None:
    client = make_app().test_client()
    sid, _ = open_session(client, demo + "/pages/1")
    last = datetime.fromisoformat(session_status(client, sid)["last_accessed_at"])
    calls: list[Callable[[], Any]] = [
        lambda: observe(client, session_id=sid),
        lambda: step(client, sid, "wait", time_ms=0),
        lambda: scrape(client, session_id=sid),
    ]
    for call in calls:
        clock.advance(minutes=1)
        call()
        now = datetime.fromisoformat(session_status(client, sid)["last_accessed_at"])
        assert now - last == timedelta(minutes=1)
        last = now
    # Other principals can neither use nor see it.
    r = client.post("/env/observe", json={"session_id": sid}, headers=AUTH_B)
    assert r.status_code == 404


def test_start_with_url_and_screenshot(make_app: AppFactory, demo: str) -> None:
    client = make_app().test_client()
    body = post(client, "/session/start", url=demo + "/report", screenshot=True)
    assert body["status"] == "active"
    assert body["page"] == {
        "url": demo + "/report",
        "title": "Quarterly report",
        "http_status": 200,
        "error": None,
    }
    assert png_size(body["screenshot"]) == (1280, 720)
    obs = observe(client, session_id=body["session_id"])["observation"]
    assert obs["title"] == "Quarterly report"
    plain = post(client, "/session/start")
    assert plain["page"] is None and plain["screenshot"] is None


# ------------------------------------------------------------------ concurrency


def run_in_threads(app: Flask, bodies: list[dict[str, Any]]) -> list[Any]:
    """POST each body to /env/step from its own thread; the responses, in order."""
    results: list[Any] = [None] * len(bodies)

    def run(index: int) -> None:
        results[index] = app.test_client().post("/env/step", json=bodies[index], headers=AUTH_A)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive(), "a step hung"
    return results


def test_steps_on_one_session_run_one_at_a_time(make_app: AppFactory) -> None:
    app = make_app()
    client = app.test_client()
    one = post(client, "/session/start")["session_id"]
    two = post(client, "/session/start")["session_id"]

    began = time.monotonic()
    results = run_in_threads(app, [{"session_id": one, "type": "wait", "time_ms": 300}] * 2)
    elapsed = time.monotonic() - began
    for r in results:
        assert r.status_code == 200 and r.get_json()["success"] is True, r.get_json()
    assert elapsed >= 0.6, f"two 300 ms waits on one session took only {elapsed:.2f} s"

    # Different sessions do not wait for each other.
    began = time.monotonic()
    results = run_in_threads(
        app,
        [
            {"session_id": one, "type": "wait", "time_ms": 1000},
            {"session_id": two, "type": "wait", "time_ms": 1000},
        ],
    )
    elapsed = time.monotonic() - began
    assert all(r.status_code == 200 for r in results)
    assert elapsed < 1.9, f"waits on two sessions ran one after the other ({elapsed:.2f} s)"


def test_closing_a_session_fails_the_queued_step_with_409(make_app: AppFactory) -> None:
    app = make_app()
    client = app.test_client()
    sid = post(client, "/session/start")["session_id"]
    live = state_of(app).manager.live(sid)
    assert live is not None
    results: dict[str, Any] = {}

    def run(name: str, ms: int) -> None:
        body = {"session_id": sid, "type": "wait", "time_ms": ms}
        results[name] = app.test_client().post("/env/step", json=body, headers=AUTH_A)

    running = threading.Thread(target=run, args=("running", 1000))
    running.start()
    assert wait_for(live.lock.locked, 10)
    queued = threading.Thread(target=run, args=("queued", 5000))
    queued.start()
    # The second step is waiting for the session's lock (asyncio.Lock keeps its waiters).
    assert wait_for(lambda: len(live.lock._waiters or ()) == 1, 10)

    closed = post(client, "/session/close", session_id=sid)
    assert closed["status"] == "closed"
    began = time.monotonic()
    queued.join(10)
    running.join(10)
    assert not queued.is_alive() and not running.is_alive(), "a step hung on a closed session"
    assert time.monotonic() - began < 5, "the queued 5 s wait ran on a closed session"
    for name in ("queued", "running"):
        r = results[name]
        assert r.status_code == 409 and r.is_json, (name, r.get_json())
        assert r.get_json()["status"] == "closed", (name, r.get_json())
    r = client.post("/env/step", json={"session_id": sid, "type": "reload"}, headers=AUTH_A)
    assert r.status_code == 409
