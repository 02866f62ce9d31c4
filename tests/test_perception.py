"""Perception through shadow DOM, iframes, SPAs, tabs and dialogs; steps that report what
really happened (issue 11).

Real Chromium through Flask's test client; every page comes from ``perception_site`` on
127.0.0.1 (and 127.0.0.2 for the cross-origin widget). Each page is driven only through
observe and step, finding elements by role and name.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask.testing import FlaskClient

from flask_sessions.page.ops import convert, describe_error

from .conftest import AUTH_A, AppFactory
from .perception_site import Site, start_site


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    server = start_site()
    yield server
    server.close()


def post(client: FlaskClient, path: str, expect: int = 200, **body: Any) -> Any:
    response = client.post(path, json=body, headers=AUTH_A)
    assert response.status_code == expect, (path, body, response.get_json())
    return response.get_json()


def open_page(client: FlaskClient, url: str, **extra: Any) -> tuple[str, Any]:
    body = post(client, "/env/observe", url=url, keep_alive=True, **extra)
    return body["session"]["session_id"], body["observation"]


def step(client: FlaskClient, sid: str, kind: str, **fields: Any) -> Any:
    return post(client, "/env/step", session_id=sid, type=kind, **fields)


def find(observation: Any, name: str, role: str | None = None) -> Any:
    """The one action called ``name`` (of ``role``)."""
    found = [
        a
        for a in observation["actions"]
        if a["name"] == name and (role is None or a["role"] == role)
    ]
    assert len(found) == 1, (name, role, [(a["role"], a["name"]) for a in observation["actions"]])
    return found[0]


def ident(observation: Any, name: str, role: str | None = None) -> str:
    return str(find(observation, name, role)["id"])


@pytest.fixture
def client(make_app: AppFactory) -> FlaskClient:
    return make_app().test_client()


# ------------------------------------------------------------------ shadow DOM, frames


def test_a_web_component_form_in_an_open_shadow_root(client: FlaskClient, site: Site) -> None:
    sid, obs = open_page(client, site.base + "/shadow")
    email = find(obs, "Email address", "textbox")
    assert " >> " in email["selector"]  # host >> inside the shadow root
    assert find(obs, "Nickname", "textbox")  # a placeholder names it
    join = ident(obs, "Join the newsletter", "button")  # aria-labelledby, inside the root
    assert "Join the newsletter" in obs["text"]  # shadow text is part of the page's text

    result = step(client, sid, "fill", id=email["id"], value="ann@example.org")
    assert result["success"] is True, result["message"]
    result = step(client, sid, "click", id=join)
    assert result["success"] is True, result["message"]
    assert "Thanks, ann@example.org!" in result["observation"]["text"]

    # a button whose label is slotted light DOM text
    result = step(client, sid, "click", id=ident(result["observation"], "Read more", "button"))
    assert result["success"] is True and result["observation"]["title"] == "More read"


def test_a_login_form_in_a_same_origin_iframe(client: FlaskClient, site: Site) -> None:
    sid, obs = open_page(client, site.base + "/frame")
    (frame,) = obs["frames"]
    assert frame["url"] == site.base + "/frame/login" and frame["name"] == "Login"
    assert frame["cross_origin"] is False and frame["observed"] is True
    user = find(obs, "Username", "textbox")
    assert user["frame"] == frame["id"]
    assert f"[frame {frame['id']}: {site.base}/frame/login]" in obs["text"]
    assert "Please log in below." in obs["text"]

    assert step(client, sid, "fill", id=user["id"], value="alice")["success"] is True
    password = ident(obs, "Password", "textbox")
    result = step(client, sid, "fill", id=password, value="secret", press_enter=True)
    assert result["success"] is True, result["message"]
    assert "Welcome, alice!" in result["observation"]["text"]
    assert result["observation"]["url"] == site.base + "/frame"  # the outer page stayed


def test_a_cross_origin_iframe_is_listed_and_observed(client: FlaskClient, site: Site) -> None:
    sid, obs = open_page(client, site.base + "/cross")
    (frame,) = obs["frames"]
    assert frame["cross_origin"] is True and frame["observed"] is True
    assert frame["url"] == site.other + "/widget" and frame["name"] == "Like widget"
    like = find(obs, "Like", "button")
    assert like["frame"] == frame["id"]
    assert "Nobody likes this yet" in obs["text"]
    result = step(client, sid, "click", id=like["id"])
    assert result["success"] is True, result["message"]
    assert "You liked this" in result["observation"]["text"]


# ------------------------------------------------------------------ settling


def test_a_client_side_route_is_observed_after_its_fetch(client: FlaskClient, site: Site) -> None:
    sid, obs = open_page(client, site.base + "/spa")
    result = step(client, sid, "click", id=ident(obs, "Orders", "link"))
    assert result["success"] is True, result["message"]
    after = result["observation"]
    assert after["url"] == site.base + "/spa/orders"
    assert "Loading" not in after["text"] and "Your orders" in after["text"]
    assert find(after, "Order #103", "link")


def test_an_observe_that_opens_a_page_waits_for_its_first_fetch(
    client: FlaskClient, site: Site
) -> None:
    _, obs = open_page(client, site.base + "/boot")
    assert "Orders: 101, 102, 103" in obs["text"] and "Loading" not in obs["text"]


def test_infinite_scroll_items_show_in_the_scroll_steps_observation(
    client: FlaskClient, site: Site
) -> None:
    sid, obs = open_page(client, site.base + "/infinite")
    assert obs["actions_total"] == 20
    result = step(client, sid, "scroll_down", amount=2000)
    assert result["success"] is True
    after = result["observation"]
    assert after["actions_total"] >= 40, after["actions_total"]
    assert find(after, "Item 40", "link")["id"] == "L40"
    assert "Item 40" in after["text"]


# ------------------------------------------------------------------ tabs and dialogs


def test_new_tabs_switch_and_close(client: FlaskClient, site: Site) -> None:
    sid, obs = open_page(client, site.base + "/tabs")
    assert obs["tabs"] == [
        {"index": 0, "url": site.base + "/tabs", "title": "Links", "current": True}
    ]
    result = step(client, sid, "click", id=ident(obs, "Open the report", "link"))
    assert result["success"] is True
    assert "opened a new tab (1:" in result["message"], result["message"]
    after = result["observation"]
    assert after["url"] == site.base + "/tabs/child" and after["title"] == "Quarterly report"
    assert [(t["index"], t["title"], t["current"]) for t in after["tabs"]] == [
        (0, "Links", False),
        (1, "Quarterly report", True),
    ]
    assert "Sales went up." in after["text"]

    result = step(client, sid, "switch_tab", index=0)
    assert result["success"] is True and result["observation"]["url"] == site.base + "/tabs"
    popup = ident(result["observation"], "Open a popup", "button")
    result = step(client, sid, "click", id=popup)  # window.open()
    assert "opened a new tab (2:" in result["message"], result["message"]
    assert result["observation"]["title"] == "Popup"

    result = step(client, sid, "switch_tab", index=7)
    assert result["success"] is False and "no tab 7" in result["message"]
    result = step(client, sid, "close_tab", index=1)
    assert result["success"] is True
    assert [t["title"] for t in result["observation"]["tabs"]] == ["Links", "Popup"]
    assert result["observation"]["title"] == "Popup"  # still on the popup, now tab 1
    result = step(client, sid, "close_tab")  # the current tab
    assert result["success"] is True and result["observation"]["title"] == "Links"
    result = step(client, sid, "close_tab")
    assert result["success"] is False and "only tab" in result["message"]
    assert len(result["observation"]["tabs"]) == 1


def test_a_tab_over_the_page_cap_is_closed_and_never_becomes_current(
    make_app: AppFactory, site: Site
) -> None:
    client = make_app(SESSIONS_MAX_PAGES_PER_SESSION=2).test_client()
    sid, obs = open_page(client, site.base + "/tabs")
    result = step(client, sid, "click", id=ident(obs, "Open the report", "link"))
    assert "opened a new tab (1:" in result["message"]  # two pages: within the cap
    result = step(client, sid, "switch_tab", index=0)
    result = step(client, sid, "click", id=ident(result["observation"], "Open a popup"))
    assert result["success"] is True and "new tab" not in result["message"]
    after = result["observation"]
    assert after["url"] == site.base + "/tabs" and len(after["tabs"]) == 2
    assert after["popups_blocked"] == 1 and "SESSIONS_MAX_PAGES_PER_SESSION" in after["warnings"][0]


def test_dialogs_are_reported_and_answered_as_asked(client: FlaskClient, site: Site) -> None:
    sid, obs = open_page(client, site.base + "/dialogs")
    delete = ident(obs, "Delete account", "button")

    result = step(client, sid, "click", id=delete)  # confirm() dismissed: nothing deleted
    assert result["success"] is False
    assert "Really delete your account?" in result["message"]
    assert '"dialog": "accept"' in result["message"]
    after = result["observation"]
    assert after["dialog"] == {
        "type": "confirm",
        "message": "Really delete your account?",
        "answer": "dismissed",
        "prompt_text": None,
    }
    assert "Active" in after["text"]

    result = step(client, sid, "click", id=delete, dialog="accept")
    assert result["success"] is True, result["message"]
    assert result["observation"]["dialog"]["answer"] == "accepted"
    assert "Deleted" in result["observation"]["text"]

    result = step(client, sid, "click", id=ident(obs, "Say hi", "button"))
    assert result["success"] is True and "Hello there" in result["message"]
    assert result["observation"]["dialog"]["type"] == "alert"
    assert result["observation"]["dialog"]["message"] == "Hello there"

    result = step(client, sid, "click", id=ident(obs, "Name", "button"), prompt_text="Ann")
    assert result["success"] is True, result["message"]
    assert result["observation"]["dialog"]["prompt_text"] == "Ann"
    assert "Hi, Ann" in result["observation"]["text"]

    # a later observation does not repeat an old dialog; one shown at load is reported
    assert post(client, "/env/observe", session_id=sid)["observation"]["dialog"] is None
    greeting = post(client, "/env/observe", session_id=sid, url=site.base + "/greeting")
    assert greeting["observation"]["dialog"]["message"] == "Welcome back!"


# ------------------------------------------------------------------ covered, long pages


def test_a_covered_button_is_flagged_and_a_click_fails_at_once(
    client: FlaskClient, site: Site
) -> None:
    sid, obs = open_page(client, site.base + "/covered")
    buy = find(obs, "Buy now", "button")
    accept = find(obs, "Accept all", "button")
    assert buy["covered"] is True and buy["in_viewport"] is True
    assert 'id="cookie-banner"' in buy["covered_by"] and accept["id"] in buy["covered_by"]
    assert accept["covered"] is False and accept["covered_by"] is None

    result = step(client, sid, "click", id=buy["id"])
    assert result["success"] is False
    # the fast path: said before any click was tried, naming what covers it
    assert result["message"].startswith(f'{buy["id"]} is covered by <div id="cookie-banner">')
    assert "Timeout" not in result["message"]

    assert step(client, sid, "click", id=accept["id"])["success"] is True
    result = step(client, sid, "click", id=buy["id"])
    assert result["success"] is True and result["observation"]["title"] == "Bought"


def test_a_long_page_lists_around_the_viewport_and_pages_on(
    client: FlaskClient, site: Site
) -> None:
    sid, obs = open_page(client, site.base + "/long")
    assert len(obs["actions"]) == 300 and obs["actions_total"] == 2000
    assert obs["actions_truncated"] is True
    assert obs["actions"][0]["name"] == "Link 1" and obs["actions"][0]["in_viewport"] is True
    assert obs["actions"][-1]["in_viewport"] is False

    more = post(client, "/env/observe", session_id=sid, offset=300)["observation"]
    assert [a["name"] for a in more["actions"][:2]] == ["Link 301", "Link 302"]
    assert more["actions"][0]["id"] == "L301"  # ids count every element, listed or not
    tail = post(client, "/env/observe", session_id=sid, offset=1990)["observation"]
    assert len(tail["actions"]) == 10 and tail["actions_truncated"] is False

    found = post(client, "/env/observe", session_id=sid, find="link 1500")["observation"]
    assert [(a["id"], a["name"]) for a in found["actions"]] == [("L1500", "Link 1500")]
    result = step(client, sid, "click", id="L1500")
    assert result["success"] is True and "You picked 1500" in result["observation"]["text"]

    sid, obs = open_page(client, site.base + "/long")
    result = step(client, sid, "scroll_down", amount=50_000)
    after = result["observation"]
    first = after["actions"][0]
    assert first["in_viewport"] is True or int(first["id"][1:]) > 1000, first
    assert first["name"] != "Link 1"
    seen = [a for a in after["actions"] if a["in_viewport"]]
    assert seen and all(a["id"] == "L" + a["name"].split()[1] for a in after["actions"])
    names = [a["name"] for a in after["actions"]]
    assert "Link 1" in names  # then the rest, in document order


# ------------------------------------------------------------------ loads


@pytest.mark.parametrize("navigation_timeout_ms", [15000, 1000])
def test_a_superseded_navigation_leaves_no_error(
    make_app: AppFactory, site: Site, navigation_timeout_ms: int
) -> None:
    client = make_app(SESSIONS_NAVIGATION_TIMEOUT_MS=navigation_timeout_ms).test_client()
    # /aborted goes to a 3 s page, then 150 ms later to /landing: the first is aborted
    _, obs = open_page(client, site.base + "/aborted")
    assert obs["url"] == site.base + "/landing"
    assert obs["http_status"] == 200 and obs["error"] is None


def test_a_stopped_load_never_colours_a_later_observation(make_app: AppFactory, site: Site) -> None:
    client = make_app(SESSIONS_NAVIGATION_TIMEOUT_MS=500).test_client()
    sid, obs = open_page(client, site.base + "/slow?ms=1500")
    assert obs["error"] and "timed out" in obs["error"]
    result = step(client, sid, "goto", url=site.base + "/static")
    assert result["success"] is True and result["observation"]["error"] is None
    step(client, sid, "wait", time_ms=2000)  # the stopped load's server answers meanwhile
    obs = post(client, "/env/observe", session_id=sid)["observation"]
    assert obs["http_status"] == 200 and obs["error"] is None


def test_a_hung_page_answers_promptly_and_goto_replaces_it(
    make_app: AppFactory, site: Site
) -> None:
    client = make_app(SESSIONS_PAGE_PROBE_MS=500).test_client()
    sid, _ = open_page(client, site.base + "/set-cookie")
    obs = post(client, "/env/observe", session_id=sid, url=site.base + "/hung")["observation"]
    result = step(client, sid, "click", id=ident(obs, "Spin", "button"))
    assert result["success"] is False and "not responding" in result["message"]
    assert result["observation"]["error"] == "the page is not responding"
    record = client.get(f"/session/{sid}", headers=AUTH_A).get_json()
    assert record["status"] == "active" and record["error"] == "the page is not responding"

    body = post(client, "/env/observe", 409, session_id=sid)
    assert body["page_not_responding"] is True and "goto or reload" in body["error"]
    post(client, "/env/scrape", 409, session_id=sid)
    assert client.get(f"/session/{sid}/screenshot", headers=AUTH_A).status_code == 409
    result = step(client, sid, "click", id=ident(obs, "Landing", "link"))
    assert result["success"] is False and "not responding" in result["message"]

    result = step(client, sid, "goto", url=site.base + "/landing")
    assert result["success"] is True and "replaced" in result["message"]
    assert "cookie: visitor=alice" in result["observation"]["text"]  # same context
    assert client.get(f"/session/{sid}", headers=AUTH_A).get_json()["error"] is None

    obs = post(client, "/env/observe", session_id=sid, url=site.base + "/hung")["observation"]
    assert step(client, sid, "click", id=ident(obs, "Spin", "button"))["success"] is False
    result = step(client, sid, "reload")
    assert result["success"] is True and result["observation"]["title"] == "Busy"
    assert len(result["observation"]["tabs"]) == 1


@contextmanager
def stalling_server(first_bytes: bytes) -> Iterator[str]:
    """A server on 127.0.0.1 that accepts, reads the request, sends ``first_bytes`` (perhaps
    nothing) and then never another byte, until the test ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            held.append(conn)
            with contextlib.suppress(OSError):
                conn.recv(65536)
                conn.sendall(first_bytes)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/stalled"
    finally:
        listener.close()
        thread.join(5)
        for conn in held:
            conn.close()


NAVIGATION_MS = 3000
PROBE_MS = 300


@pytest.fixture
def slow_network_client(make_app: AppFactory) -> FlaskClient:
    """Probes far more often than a load may take: a probe held by a pending navigation would
    be read as a hung page ten times over before the load times out."""
    app = make_app(SESSIONS_NAVIGATION_TIMEOUT_MS=NAVIGATION_MS, SESSIONS_PAGE_PROBE_MS=PROBE_MS)
    return app.test_client()


def test_a_server_that_never_answers_is_a_timed_out_load_not_a_hung_page(
    slow_network_client: FlaskClient, site: Site
) -> None:
    client = slow_network_client
    sid, _ = open_page(client, site.base + "/static")
    with stalling_server(b"") as url:
        started = time.monotonic()
        obs = post(client, "/env/observe", session_id=sid, url=url)["observation"]
        took = time.monotonic() - started
        assert obs["error"] == (
            f"loading {url} timed out after {NAVIGATION_MS} ms (SESSIONS_NAVIGATION_TIMEOUT_MS) "
            "and was stopped; the page is what had loaded"
        )
        assert took <= NAVIGATION_MS / 1000 + 1, took
        assert obs["http_status"] is None
        # the load was stopped like the Stop button: the page is the one that was there
        assert obs["url"] == site.base + "/static" and obs["title"] == "Static"
        record = client.get(f"/session/{sid}", headers=AUTH_A).get_json()
        assert record["status"] == "active" and record["error"] is None
        # a goto there fails as a step (its message is the load's error), and nothing more
        result = step(client, sid, "goto", url=url)
        assert result["success"] is False and result["message"] == obs["error"], result
        assert result["observation"]["error"] == obs["error"]
        result = step(client, sid, "goto", url=site.base + "/landing")
        assert result["success"] is True and result["observation"]["error"] is None


def test_a_body_that_stalls_midway_shows_what_arrived(
    slow_network_client: FlaskClient, site: Site
) -> None:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Content-Length: 100000\r\n\r\n<!doctype html><title>Half</title><p>first half arrived"
    )
    sid, _ = open_page(slow_network_client, site.base + "/static")  # Chromium is up
    with stalling_server(head) as url:
        started = time.monotonic()
        obs = post(slow_network_client, "/env/observe", session_id=sid, url=url)["observation"]
        assert time.monotonic() - started <= NAVIGATION_MS / 1000 + 1
        assert obs["url"] == url and obs["title"] == "Half" and obs["http_status"] == 200
        assert "first half arrived" in obs["text"]
        assert obs["error"] and f"loading {url} timed out" in obs["error"]


def test_a_script_that_never_yields_on_load_is_a_hung_page(
    slow_network_client: FlaskClient, site: Site
) -> None:
    client = slow_network_client
    sid, _ = open_page(client, site.base + "/static")
    started = time.monotonic()
    body = post(client, "/env/observe", 409, session_id=sid, url=site.base + "/spin")
    took = time.monotonic() - started
    assert body["page_not_responding"] is True and "never yields" in body["error"]
    # within about two probe periods, well before the navigation timeout
    assert took < NAVIGATION_MS / 1000, took
    record = client.get(f"/session/{sid}", headers=AUTH_A).get_json()
    assert record["status"] == "active" and record["error"] == "the page is not responding"
    result = step(client, sid, "goto", url=site.base + "/landing")  # goto replaces it
    assert result["success"] is True and result["observation"]["title"] == "Landing"


# ------------------------------------------------------------------ steps


def test_hover_opens_a_menu(client: FlaskClient, site: Site) -> None:
    sid, obs = open_page(client, site.base + "/hover")
    assert [a["name"] for a in obs["actions"]] == ["Products"]
    result = step(client, sid, "hover", id=ident(obs, "Products", "button"))
    assert result["success"] is True and result["message"].startswith("hovered over")
    laptops = ident(result["observation"], "Laptops", "link")
    result = step(client, sid, "click", id=laptops)
    assert result["success"] is True and result["observation"]["title"] == "Laptops"


def test_select_multiple_and_aria_listboxes(client: FlaskClient, site: Site) -> None:
    sid, obs = open_page(client, site.base + "/selects")
    toppings = ident(obs, "Toppings", "listbox")
    result = step(client, sid, "select_dropdown_option", id=toppings, value=["Cheese", "olives"])
    assert result["success"] is True, result["message"]
    assert find(result["observation"], "Toppings")["value"] == "Cheese, Olives"

    size = ident(obs, "Size", "combobox")
    result = step(client, sid, "select_dropdown_option", id=size, value=["Small", "Large"])
    assert result["success"] is False and "takes one option" in result["message"]

    country = ident(obs, "Country", "combobox")
    result = step(client, sid, "select_dropdown_option", id=country, value="Germany")
    assert result["success"] is True, result["message"]
    assert find(result["observation"], "Country")["value"] == "Germany"
    result = step(client, sid, "select_dropdown_option", id=country, value="Italy")
    assert result["success"] is False
    assert "'France', 'Germany', 'Spain'" in result["message"]

    colours = ident(result["observation"], "Colours", "listbox")  # ids of the last observation
    result = step(client, sid, "select_dropdown_option", id=colours, value=["Red", "blue"])
    assert result["success"] is True, result["message"]
    assert find(result["observation"], "Colours")["value"] == "Red, Blue"

    city = ident(result["observation"], "City", "combobox")  # an autocomplete: type to see options
    result = step(client, sid, "select_dropdown_option", id=city, value="Porto")
    assert result["success"] is True, result["message"]
    assert find(result["observation"], "City")["value"] == "Porto"


def test_names_come_from_labels_labelledby_and_placeholders(
    client: FlaskClient, site: Site
) -> None:
    _, obs = open_page(client, site.base + "/names")
    assert {(a["role"], a["name"]) for a in obs["actions"]} == {
        ("textbox", "Full name"),
        ("textbox", "Postcode"),
        ("textbox", "Search the site"),
        ("button", "Close dialog"),
        ("link", "Home page"),
        ("combobox", "Plan"),
        ("checkbox", "I accept the terms"),
        ("button", "Custom action"),
        ("textbox", "Comments"),
        ("button", "Settings"),  # an SVG's <title>
        ("button", "Submit"),  # <input type=submit>: the browser's default label
        ("combobox", "Country"),  # a label around the select, its options left out
        ("textbox", "Billing address"),  # aria-labelledby with two ids
    }


def test_markdown_table_cells_keep_pipes_and_line_breaks_inside(
    client: FlaskClient, site: Site
) -> None:
    body = post(client, "/env/scrape", url=site.base + "/table", selector="table")
    assert body["content"] == (
        "| Symbol | Meaning |\n| --- | --- |\n| a \\| b | either<br>or both |\n| a & b | both |\n"
    )
    html = {"html": "<table><tr><th>x|y</th></tr><tr><td><p>one</p><p>two</p></td></tr></table>"}
    assert convert(html, "markdown") == "| x\\|y |\n| --- |\n| one two |\n"


def test_failed_actions_keep_playwrights_detail() -> None:
    message = describe_error(
        Exception(
            "Locator.click: Timeout 5000ms exceeded.\nCall log:\n"
            '  - waiting for locator("#b")\n'
            '    - locator resolved to <button id="b">Buy</button>\n'
            "  - attempting click action\n"
            "    2 × waiting for element to be visible, enabled and stable\n"
            '      - <p>We use cookies</p> from <div id="ov">…</div> subtree intercepts pointer '
            "events\n"
            "    - retrying click action\n"
        )
    )
    assert message == (
        "Locator.click: Timeout 5000ms exceeded. "
        '(locator resolved to <button id="b">Buy</button>; '
        '<p>We use cookies</p> from <div id="ov">…</div> subtree intercepts pointer events)'
    )


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/env/step", {"type": "hover"}, "id"),
        ("/env/step", {"type": "select_dropdown_option", "id": "S1", "value": []}, "value"),
        ("/env/step", {"type": "switch_tab", "index": -1}, "index"),
        ("/env/step", {"type": "switch_tab"}, "index"),
        ("/env/step", {"type": "close_tab", "index": "x"}, "index"),
        ("/env/step", {"type": "click", "id": "B1", "dialog": "maybe"}, "dialog"),
        ("/env/step", {"type": "wait", "time_ms": 1, "prompt_text": 5}, "prompt_text"),
        ("/env/observe", {"offset": -1}, "offset"),
        ("/env/observe", {"find": ""}, "find"),
    ],
)
def test_new_fields_are_validated(
    client: FlaskClient, path: str, body: dict[str, Any], field: str
) -> None:
    payload = post(client, path, 400, **body)
    assert field in {f["field"] for f in payload["fields"]}, payload
