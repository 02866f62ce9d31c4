"""Perception II (issue 22): drag, points and boxes; scroll boxes and keys that move the
page; popups that close themselves; the state of fields and pages; two wrong answers fixed.

Real Chromium through Flask's test client; every page comes from ``perception2_site`` on
127.0.0.1, and each step is judged by what that server received or what the page shows
afterwards, not by our own observation alone.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_sessions import FlaskSessions

from .conftest import AUTH_A, AppFactory, wait_for
from .perception2_site import Site, start_site


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    server = start_site()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def fresh(site: Site) -> None:
    site.reset()


@pytest.fixture
def client(make_app: AppFactory) -> FlaskClient:
    return make_app().test_client()


def post(client: FlaskClient, path: str, expect: int = 200, **body: Any) -> Any:
    response = client.post(path, json=body, headers=AUTH_A)
    assert response.status_code == expect, (path, body, response.get_json())
    return response.get_json()


def open_page(client: FlaskClient, url: str, **extra: Any) -> tuple[str, Any]:
    body = post(client, "/env/observe", url=url, keep_alive=True, **extra)
    return body["session"]["session_id"], body["observation"]


def step(client: FlaskClient, sid: str, kind: str, **fields: Any) -> Any:
    return post(client, "/env/step", session_id=sid, type=kind, **fields)


def observe(client: FlaskClient, sid: str, **fields: Any) -> Any:
    return post(client, "/env/observe", session_id=sid, **fields)["observation"]


def find(observation: Any, name: str, role: str | None = None) -> Any:
    found = [
        a
        for a in observation["actions"]
        if a["name"] == name and (role is None or a["role"] == role)
    ]
    assert len(found) == 1, (name, role, [(a["role"], a["name"]) for a in observation["actions"]])
    return found[0]


def ident(observation: Any, name: str, role: str | None = None) -> str:
    return str(find(observation, name, role)["id"])


def centre(action: Any) -> dict[str, float]:
    box = action["box"]
    return {"x": box["x"] + box["width"] / 2, "y": box["y"] + box["height"] / 2}


# ------------------------------------------------------------------ 1. the pointer


def test_html5_drag_and_drop_moves_a_card_onto_a_column(client: FlaskClient, site: Site) -> None:
    sid, obs = open_page(client, site.base + "/kanban")
    card = find(obs, "Write spec", "draggable")
    assert card["draggable"] is True and card["id"].startswith("D")
    done = find(obs, "Done", "dropzone")  # a drop listener, named by its aria-label
    assert done["drop_target"] is True and done["id"].startswith("Z")

    result = step(client, sid, "drag", id=card["id"], to_id=done["id"])
    assert result["success"] is True, result["message"]
    assert "HTML5 drag and drop" in result["message"], result["message"]
    assert site.received("/api/move") == [{"card": "c1", "to": "done"}]
    assert "Write spec moved to Done" in result["observation"]["text"]

    # onto something that takes no drop: the drag starts, nothing accepts it, and it says so
    heading = find(result["observation"], "Fix bug", "draggable")
    result = step(client, sid, "drag", id=heading["id"], offset={"x": 0, "y": 260})
    assert result["success"] is False and "nothing took the drop" in result["message"]
    assert len(site.received("/api/move")) == 1


def test_drag_and_drop_inside_a_frame(client: FlaskClient, site: Site) -> None:
    sid, obs = open_page(client, site.base + "/framed-board")
    card = find(obs, "Fix bug", "draggable")
    done = find(obs, "Done", "dropzone")
    assert card["frame"] == done["frame"] == obs["frames"][0]["id"]
    result = step(client, sid, "drag", id=card["id"], to_id=done["id"])
    assert result["success"] is True and "HTML5 drag and drop" in result["message"]
    assert site.received("/api/move") == [{"card": "c2", "to": "done"}]


def test_a_pointer_event_sortable_by_target_and_by_offset(client: FlaskClient, site: Site) -> None:
    sid, obs = open_page(client, site.base + "/sortable")
    item_c = find(obs, "Item C", "draggable")  # cursor: grab from the style sheet
    item_a = find(obs, "Item A", "draggable")
    result = step(client, sid, "drag", id=item_c["id"], to_id=item_a["id"])
    assert result["success"] is True, result["message"]
    assert "pointer events" in result["message"] and "no HTML5 drag" in result["message"]
    assert site.received("/api/order") == [{"ids": "c,a,b,d"}]

    obs = result["observation"]
    item_d = find(obs, "Item D", "draggable")
    # by an offset, onto B
    result = step(client, sid, "drag", selector="li[data-id=d]", offset={"x": 0, "y": -44})
    assert result["success"] is True, result["message"]
    assert item_d["box"]["height"] == 42  # 40 px and its border
    assert site.received("/api/order")[-1] == {"ids": "c,a,d,b"}


def test_a_canvas_is_listed_and_clicked_at_a_point(client: FlaskClient, site: Site) -> None:
    sid, obs = open_page(client, site.base + "/canvas")
    canvas = find(obs, "Shop counter", "canvas")
    assert canvas["id"].startswith("G")
    assert canvas["box"]["width"] == 402 and canvas["box"]["height"] == 302  # with its border

    # a point within the element, from its top-left corner (the border is 1 px)
    result = step(client, sid, "click", id=canvas["id"], position={"x": 301, "y": 221})
    assert result["success"] is True, result["message"]
    assert site.received("/api/canvas") == [{"hit": "buy", "x": "300", "y": "220"}]
    assert "Bought at 300,220" in result["observation"]["text"]

    # a point in the viewport, no element: the canvas's box says where it is
    box = canvas["box"]
    point = {"x": box["x"] + 11, "y": box["y"] + 11}
    result = step(client, sid, "click", position=point)
    assert result["success"] is True and "<canvas" in result["message"], result["message"]
    assert site.received("/api/canvas")[-1] == {"hit": "none", "x": "10", "y": "10"}

    # hover at a point
    result = step(client, sid, "hover", id=canvas["id"], position={"x": 300, "y": 210})
    assert result["success"] is True
    assert "Hovering over Buy" in result["observation"]["text"]

    # a point outside the element or the viewport fails at once, saying why
    result = step(client, sid, "click", id=canvas["id"], position={"x": 500, "y": 10})
    assert result["success"] is False and "outside" in result["message"]
    result = step(client, sid, "click", position={"x": 5000, "y": 10})
    assert result["success"] is False and "outside the viewport" in result["message"]


def test_clickables_only_a_listener_or_cursor_marks(client: FlaskClient, site: Site) -> None:
    sid, obs = open_page(client, site.base + "/clickables")
    sales = find(obs, "Sales", "clickable")
    inbox = find(obs, "Open inbox", "clickable")  # a click listener, no cursor
    assert sales["id"].startswith("B") and inbox["id"].startswith("B")
    names = [a["name"] for a in obs["actions"]]
    assert names.count("Sales") == 1  # its span inherits the cursor: not listed again
    assert "I agree" not in names or find(obs, "I agree")["role"] == "checkbox"
    assert not [a for a in obs["actions"] if a["name"].startswith("One Two")]  # a toolbar

    result = step(client, sid, "click", id=sales["id"])
    assert result["success"] is True and site.received("/api/tile") == [{"name": "Sales"}]
    # every action's box ties it to the screen: a click at its centre reaches it
    result = step(client, sid, "click", position=centre(inbox))
    assert result["success"] is True, result["message"]
    assert site.received("/api/tile")[-1] == {"name": "inbox"}


# ------------------------------------------------------------------ 2. scroll boxes, keys


def test_a_chat_log_and_a_side_panel_scroll_in_their_own_boxes(
    client: FlaskClient, site: Site
) -> None:
    sid, obs = open_page(client, site.base + "/boxes")
    log = find(obs, "Chat log", "scrollable")
    panel = find(obs, "Records", "scrollable")
    assert log["id"].startswith("R") and log["value"].startswith("0 of ")
    record = find(obs, "Record 3", "link")
    assert record["scroll_container"] == panel["id"]  # scroll that box to reach it
    assert find(obs, "Record 2", "link")["in_viewport"] is True
    assert find(obs, "Record 10", "link")["in_viewport"] is False  # hidden in its box

    result = step(client, sid, "scroll_down", id=log["id"], amount=1000)
    assert result["success"] is True, result["message"]
    assert (
        result["message"]
        == f"scrolled the scroll box {log['id']} down 1000 px; "
        + (f"{2400 - 160 - 1000 - 2} px more below")
        or "1000 px" in result["message"]
    ), result["message"]
    assert wait_for(lambda: bool(site.received("/api/seen")), 10)
    assert site.received("/api/seen")[-1]["box"] == "log"

    result = step(client, sid, "scroll_down", id=log["id"], amount=100_000)
    message = result["message"]
    assert result["success"] is True and "(of 100000 asked)" in message, message
    assert "it reached the bottom" in message
    assert wait_for(lambda: site.received("/api/seen")[-1].get("last") == "100", 10)
    again = step(client, sid, "scroll_down", id=log["id"])
    assert again["success"] is False and "already at the bottom; nothing moved" in again["message"]

    # a target inside a box scrolls that box: the link's nearest scrollable ancestor
    result = step(client, sid, "scroll_down", id=record["id"], amount=60)
    assert result["success"] is True, result["message"]
    assert f"the scroll box {panel['id']} around {record['id']}" in result["message"]
    assert wait_for(lambda: {"box": "panel", "top": "60"} in site.received("/api/seen"), 10)


def test_window_scrolling_says_how_far_it_really_moved(client: FlaskClient, site: Site) -> None:
    sid, _ = open_page(client, site.base + "/static")  # nothing to scroll
    result = step(client, sid, "scroll_down", amount=24000)
    assert result["success"] is False, result["message"]
    assert result["message"] == "the page is already at the bottom; nothing moved"
    # a page that does not scroll itself (an app shell): its largest scroll box does
    sid, obs = open_page(client, site.base + "/boxes")
    result = step(client, sid, "scroll_down", amount=100)
    log = ident(obs, "Chat log", "scrollable")
    assert result["message"] == f"scrolled the scroll box {log} down 100 px; 2140 px more below"

    sid, _ = open_page(client, site.base + "/tall")
    result = step(client, sid, "scroll_down", amount=24000)
    assert result["success"] is True
    moved = int(result["message"].split(" down ")[1].split(" px")[0])
    assert 2000 < moved < 24000 and "(of 24000 asked): it reached the bottom" in result["message"]
    assert "The foot of the page" in result["observation"]["text"]
    result = step(client, sid, "scroll_up")
    assert result["success"] is True and "scrolled the page up 720 px" in result["message"]


def test_press_key_observes_the_rows_a_key_scrolled_into_view(
    client: FlaskClient, site: Site
) -> None:
    sid, obs = open_page(client, site.base + "/grid")
    assert "Row 1\n" in obs["text"] and "Row 13" not in obs["text"]  # 12 rows, recycled
    grid = find(obs, "Records grid")
    assert step(client, sid, "click", id=grid["id"])["success"] is True  # focus it
    for press in range(1, 4):
        result = step(client, sid, "press_key", key="PageDown")
        assert result["success"] is True
        first = int(site.received("/api/rendered")[-1]["first"])
        assert first > 1 + (press - 1) * 8, first  # the grid moved a page down
        text = result["observation"]["text"]
        # the recycled rows hold what the page rendered last, in this very observation
        assert f"Row {first}\n" in text + "\n", (first, text)
        assert f"Row {first - 1}\n" not in text + "\n"


# ------------------------------------------------------------------ 3. tabs that close


def tabs_open(app: Flask, sid: str) -> int:
    """How many tabs the session holds now (read on the loop)."""
    state = FlaskSessions.state(app)

    async def count() -> int:
        return len(state.manager._live[sid].state.tabs)

    return state.runtime.submit(count(), 10)


def sign_in_popup(client: FlaskClient, site: Site, mode: str) -> tuple[str, str]:
    """Open the shop, click "Sign in with Provider": the session is on the popup."""
    sid, obs = open_page(client, f"{site.base}/opener?mode={mode}")
    result = step(client, sid, "click", id=ident(obs, "Sign in with Provider", "button"))
    assert "opened a new tab (1:" in result["message"], result["message"]
    assert result["observation"]["title"] == "Provider"
    return sid, ident(result["observation"], "Allow", "button")


def back_on_the_opener(observation: Any, site: Site) -> None:
    assert observation["url"] == site.base + "/opener?mode=" + observation["url"][-4:].split("=")[
        -1
    ] or observation["url"].startswith(site.base + "/opener")
    assert "Signed in as alice" in observation["text"]
    assert len(observation["tabs"]) == 1 and observation["tabs"][0]["current"] is True


MOVED = "was closed and the session moved to tab 0 (the tab that opened it)"


def test_a_popup_closing_itself_as_it_is_clicked(make_app: AppFactory, site: Site) -> None:
    app = make_app()
    client = app.test_client()
    sid, allow = sign_in_popup(client, site, "sync")
    result = step(client, sid, "click", id=allow)  # window.close() in the click handler
    assert result["success"] is True, result["message"]
    assert f"tab 1 ({site.base}/oauth?mode=sync) {MOVED}" in result["message"]
    back_on_the_opener(result["observation"], site)
    assert wait_for(lambda: site.received("/api/allowed") == [{"mode": "sync"}], 10)
    record = client.get(f"/session/{sid}", headers=AUTH_A).get_json()
    assert record["status"] == "active" and record["error"] is None


def test_a_popup_closing_itself_while_the_step_settles(make_app: AppFactory, site: Site) -> None:
    app = make_app(SESSIONS_SETTLE_MS=5000)
    client = app.test_client()
    sid, allow = sign_in_popup(client, site, "settle")
    answers: list[Any] = []
    clicking = threading.Thread(target=lambda: answers.append(step(client, sid, "click", id=allow)))
    clicking.start()
    # the click has run and started a request that is held: the step is settling now
    assert wait_for(lambda: bool(site.received("/api/hold")), 30)
    site.close_signal.set()  # the popup closes itself, mid-settle
    clicking.join(60)
    (result,) = answers
    assert result["success"] is True, result["message"]
    assert f"tab 1 ({site.base}/oauth?mode=settle) {MOVED}" in result["message"]
    back_on_the_opener(result["observation"], site)
    assert client.get(f"/session/{sid}", headers=AUTH_A).get_json()["status"] == "active"


def test_a_popup_closing_itself_after_the_step(make_app: AppFactory, site: Site) -> None:
    app = make_app()
    client = app.test_client()
    sid, allow = sign_in_popup(client, site, "after")
    result = step(client, sid, "click", id=allow)
    assert result["success"] is True and "Allowed" in result["observation"]["text"]
    assert result["observation"]["title"] == "Provider"
    site.close_signal.set()  # now, after the step answered
    assert wait_for(lambda: tabs_open(app, sid) == 1, 30)

    # a step with an id of the closed tab: stale, and it says why
    body = post(client, "/env/step", 409, session_id=sid, type="click", id=allow)
    assert body["stale_id"] == allow and MOVED in body["error"], body
    obs = observe(client, sid)
    back_on_the_opener(obs, site)
    assert any(MOVED in warning for warning in obs["warnings"]), obs["warnings"]
    result = step(client, sid, "click", id=ident(obs, "Continue", "link"))
    assert result["success"] is True and result["observation"]["title"] == "Landing"


def crash_renderer(app: Flask, sid: str) -> None:
    """Crash the session's current renderer, as Chromium does when it dies (CDP Page.crash)."""
    state = FlaskSessions.state(app)

    async def crash() -> None:
        page = state.manager._live[sid].state.page
        cdp = await page.context.new_cdp_session(page)
        answer = asyncio.ensure_future(cdp.send("Page.crash"))  # never answered: it dies
        answer.add_done_callback(lambda task: task.cancelled() or task.exception())
        crashes.append(answer)

    crashes: list[Any] = []
    state.runtime.submit(crash(), 10)


def test_a_real_renderer_crash_still_ends_the_session(make_app: AppFactory, site: Site) -> None:
    app = make_app()
    client = app.test_client()
    sid, obs = open_page(client, site.base + "/crashy")
    answers: list[Any] = []

    def save() -> None:
        answers.append(
            client.post(
                "/env/step",
                json={"session_id": sid, "type": "click", "id": ident(obs, "Save", "button")},
                headers=AUTH_A,
            )
        )

    saving = threading.Thread(target=save)
    saving.start()
    assert wait_for(lambda: bool(site.received("/api/hold")), 30)  # mid-step
    crash_renderer(app, sid)
    saving.join(60)
    (answer,) = answers
    assert answer.status_code == 409, answer.get_json()
    assert answer.get_json()["status"] == "error"
    assert "the page crashed" in answer.get_json()["error"]
    record = client.get(f"/session/{sid}", headers=AUTH_A).get_json()
    assert record["status"] == "error"
    assert record["error"] == "the page crashed; start a new session"

    # between steps too
    sid, _ = open_page(client, site.base + "/static")
    crash_renderer(app, sid)
    assert wait_for(
        lambda: client.get(f"/session/{sid}", headers=AUTH_A).get_json()["status"] == "error", 30
    )
    assert post(client, "/env/observe", 409, session_id=sid)["status"] == "error"


# ------------------------------------------------------------------ 4. state an agent needs


def test_a_read_only_field_says_which_widget_sets_it(make_app: AppFactory, site: Site) -> None:
    client = make_app(SESSIONS_ACTION_TIMEOUT_MS=20000).test_client()
    sid, obs = open_page(client, site.base + "/forms")
    date = find(obs, "Date", "textbox")
    assert date["readonly"] is True and "readonly" not in find(obs, "Email", "textbox")
    result = step(client, sid, "fill", id=date["id"], value="2024-05-12")
    assert result["success"] is False
    message = result["message"]
    assert message.startswith(f"{date['id']} is read-only (readonly)"), message
    assert "aria-haspopup" in message and "timed out" not in message  # at once
    # the widget: the button beside it, then a day
    result = step(client, sid, "click", id=ident(obs, "Choose date", "button"))
    result = step(client, sid, "click", id=ident(result["observation"], "12", "button"))
    assert find(result["observation"], "Date")["value"] == "2024-05-12"
    by_selector = step(client, sid, "fill", selector="#date", value="x")
    assert by_selector["success"] is False and "read-only" in by_selector["message"]


def test_invalid_fields_carry_their_error_messages(client: FlaskClient, site: Site) -> None:
    sid, obs = open_page(client, site.base + "/forms")
    email = find(obs, "Email", "textbox")
    assert "invalid" not in email  # required and empty, but untouched: left out (false)
    assert email["description"] == "We never share it"
    result = step(client, sid, "fill", id=email["id"], value="not-an-email")
    email = find(result["observation"], "Email", "textbox")
    assert email["invalid"] is True, email
    assert email["description"].startswith("We never share it ")
    assert "@" in email["description"]  # the browser's own message, e.g. "include an '@'"

    # a field the server checks as it is typed (debounced): its error is tied to it
    user = ident(obs, "Username", "textbox")
    result = step(client, sid, "fill", id=user, value="taken")
    assert site.received("/api/username") == [{"u": "taken"}]
    field = find(result["observation"], "Username", "textbox")
    assert field["invalid"] is True and field["description"] == "That name is taken", field
    result = step(client, sid, "fill", id=user, value="ann")
    field = find(result["observation"], "Username", "textbox")
    assert "invalid" not in field and "description" not in field


def test_a_busy_page_says_so(client: FlaskClient, site: Site) -> None:
    sid, obs = open_page(client, site.base + "/forms")
    assert obs["busy"] is False
    result = step(client, sid, "click", id=ident(obs, "Load report", "button"))
    assert result["success"] is True
    assert "still busy when the settling ended" in result["message"], result["message"]
    assert "/api/slow-report" in result["message"]
    assert result["observation"]["busy"] is True and "Loading" in result["observation"]["text"]
    assert observe(client, sid)["busy"] is True  # aria-busy, still
    site.report_ready.set()
    assert wait_for(lambda: "Revenue: 42" in observe(client, sid)["text"], 20)
    assert observe(client, sid)["busy"] is False


def test_long_text_is_paged_with_the_cut_at_a_line(make_app: AppFactory, site: Site) -> None:
    client = make_app(SESSIONS_OBSERVE_MAX_TEXT=5000).test_client()
    sid, obs = open_page(client, site.base + "/long-text")
    assert obs["text_offset"] == 0 and obs["text_truncated"] is True
    total = obs["text_length"]
    assert total > 60_000 and "Order confirmed" not in obs["text"]
    pages = [obs["text"]]
    offset = obs["text_next_offset"]
    while offset is not None:
        assert 4000 <= offset - (obs["text_offset"]) <= 5000  # cut within the last 20%
        obs = observe(client, sid, text_offset=offset)
        assert obs["text_offset"] == offset and obs["text_length"] == total
        pages.append(obs["text"])
        offset = obs["text_next_offset"]
    assert obs["text_truncated"] is False and obs["text"].endswith("Order confirmed: #A-1234")
    lines = [line for line in "\n".join(pages).split("\n") if line]  # no clause is cut
    assert lines[0] == "Terms" and lines[-1] == "Order confirmed: #A-1234"
    assert lines[1:-1] == [
        f"Clause {i}: the parties agree to section {i} of these terms." for i in range(1, 1201)
    ]
    past = observe(client, sid, text_offset=total + 10)
    assert past["text"] == "" and past["text_next_offset"] is None


def test_a_rich_text_value_is_markdown_and_type_keeps_the_caret(
    client: FlaskClient, site: Site
) -> None:
    sid, obs = open_page(client, site.base + "/editor")
    editor = find(obs, "Message", "textbox")
    assert editor["value"] == "Hello **bold** and *slanted* and **heavy** and ~~old~~ news."
    result = step(client, sid, "type", id=editor["id"], value=" Now ")
    assert result["success"] is True and "at the end" in result["message"], result["message"]
    assert step(client, sid, "press_key", key="Control+B")["success"] is True
    result = step(client, sid, "type", value="strong")  # at the caret: bold is on
    assert result["success"] is True, result["message"]
    step(client, sid, "press_key", key="Control+B")
    result = step(client, sid, "type", id=editor["id"], value=" end")  # it has the focus
    assert "at the caret" in result["message"]
    value = find(result["observation"], "Message")["value"]
    assert value.endswith("~~old~~ news. Now **strong** end"), value

    subject = ident(obs, "Subject", "textbox")
    result = step(client, sid, "type", id=subject, value=" world")  # nothing cleared
    assert find(result["observation"], "Subject")["value"] == "Hello world"
    step(client, sid, "click", id=ident(obs, "Send", "button"))
    assert wait_for(lambda: bool(site.received("/api/sent")), 10)
    sent = json.loads(site.received("/api/sent")[0]["body"])
    assert "<b>strong</b>" in sent["html"] and sent["subject"] == "Hello world"


def test_type_with_nothing_focused_says_so(client: FlaskClient, site: Site) -> None:
    sid, _ = open_page(client, site.base + "/static")
    result = step(client, sid, "type", value="abc")
    assert result["success"] is False and "nothing has the focus" in result["message"]


# ------------------------------------------------------------------ 5. two wrong answers


def test_select_uses_the_listbox_the_button_opens(client: FlaskClient, site: Site) -> None:
    sid, obs = open_page(client, site.base + "/dropdowns")
    plan = ident(obs, "Plan: Free", "button")
    result = step(client, sid, "select_dropdown_option", id=plan, value="Team")
    assert result["success"] is True, result["message"]
    assert site.received("/api/plan") == [{"name": "Team"}]
    assert find(result["observation"], "Plan: Team", "button")

    plan = ident(result["observation"], "Plan: Team", "button")
    result = step(client, sid, "select_dropdown_option", id=plan, value="Gold")
    assert result["success"] is False
    assert result["message"].endswith("its options are: 'Free', 'Team', 'Enterprise'")
    assert "Newest" not in result["message"]  # the other listbox on the page


def test_fill_waits_for_the_debounced_suggestions(client: FlaskClient, site: Site) -> None:
    sid, obs = open_page(client, site.base + "/autocomplete")
    result = step(client, sid, "fill", id=ident(obs, "City", "combobox"), value="Par")
    assert site.received("/api/suggest") == [{"q": "Par"}]
    after = result["observation"]
    assert find(after, "Paris", "option") and find(after, "Parma", "option")
    # a timer that sets itself again (lodash's debounce) is followed too
    result = step(client, sid, "fill", id=ident(obs, "Airport", "textbox"), value="Ma")
    assert "Madrid airport" in result["observation"]["text"]
    assert site.received("/api/suggest")[-1] == {"q": "Ma"}
