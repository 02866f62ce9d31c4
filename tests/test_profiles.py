"""Cookies and state of a live session, and encrypted profiles (issue 18, items 2 and 3).

Real Chromium and a login site on 127.0.0.1 (``login_site.py``): its login sets an HttpOnly
session cookie, a localStorage token and an IndexedDB record, each a random secret the
tests then look for in the store's raw bytes. The cluster case (two hosts and a front on a
real redis-server) is in ``test_cluster.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_sessions import FlaskSessions, ManualClock
from flask_sessions.client import (
    AsyncSessionsClient,
    InvalidRequest,
    PayloadTooLarge,
    ProfileInUse,
    ProfileNotFound,
    SessionsClient,
)
from flask_sessions.cluster.node import Host
from flask_sessions.config import ConfigError, load
from flask_sessions.testing import serve, server_env

from .conftest import AUTH_A, AUTH_B, AppFactory, wait_for
from .login_site import LoginSite, login_site

KEY_1 = "first-profile-key-0123456789abcdef"
KEY_2 = "second-profile-key-0123456789abcde"


@pytest.fixture
def site() -> Iterator[LoginSite]:
    with login_site() as running:
        yield running


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "profiles"


def app_on(make_app: AppFactory, store: Path, **config: Any) -> Flask:
    return make_app(SESSIONS_PROFILE_STORE=f"file://{store}", **config)


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def new_profile(client: FlaskClient, name: str = "shop", auth: dict[str, str] = AUTH_A) -> str:
    return str(ok(client.post("/profiles", json={"name": name}, headers=auth))["profile_id"])


def start(client: FlaskClient, auth: dict[str, str] = AUTH_A, **body: Any) -> dict[str, Any]:
    answer: dict[str, Any] = ok(client.post("/session/start", json=body, headers=auth))
    return answer


def log_in(client: FlaskClient, sid: str, site: LoginSite) -> None:
    """Open the login page and press Sign in: cookie, token and record are set."""
    step = {"session_id": sid, "type": "goto", "url": site.base + "/login"}
    ok(client.post("/env/step", json=step, headers=AUTH_A))
    click = {"session_id": sid, "type": "click", "selector": "#signin"}
    ok(client.post("/env/step", json=click, headers=AUTH_A))

    def arrived() -> bool:  # the page stores its token and record, then moves on by itself
        look = ok(client.post("/env/observe", json={"session_id": sid}, headers=AUTH_A))
        return "Welcome alice" in look["observation"]["text"]

    assert wait_for(arrived, 15, 0.2)


def account_text(client: FlaskClient, sid: str, site: LoginSite) -> str:
    body = {"session_id": sid, "url": site.base + "/account", "format": "text"}
    content: str = ok(client.post("/env/scrape", json=body, headers=AUTH_A))["content"]
    return content


def logged_in(text: str, site: LoginSite) -> bool:
    return "Welcome alice" in text and site.token in text and site.record in text


def close(client: FlaskClient, sid: str) -> dict[str, Any]:
    answer: dict[str, Any] = ok(
        client.post("/session/close", json={"session_id": sid}, headers=AUTH_A)
    )
    return answer


def raw_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


# ------------------------------------------------------------------ log in once


def test_log_in_once_then_come_back_logged_in(
    make_app: AppFactory, store: Path, site: LoginSite
) -> None:
    client = app_on(make_app, store).test_client()
    pid = new_profile(client)
    first = start(client, profile={"id": pid, "persist": True})
    assert first["profile"] == {
        "profile_id": pid,
        "persist": True,
        "saved_at": None,
        "not_saved": None,
    }
    log_in(client, first["session_id"], site)
    closed = close(client, first["session_id"])
    assert closed["profile"]["saved_at"] and closed["profile"]["not_saved"] is None

    info = ok(client.get(f"/profiles/{pid}", headers=AUTH_A))
    host = site.base.split("//")[1].split(":")[0]
    assert info["domains"] == sorted([host, site.base]) and info["in_use_by"] is None
    assert info["size_bytes"] > 0 and not any(s in json.dumps(info) for s in site.secrets)

    # session 2 is logged in without logging in (the site counts logins)
    second = start(client, profile={"id": pid})
    assert logged_in(account_text(client, second["session_id"], site), site)
    assert site.logins == 1
    # a session without the profile is not
    third = start(client)
    assert "Please log in" in account_text(client, third["session_id"], site)

    # at rest: encrypted, private; the key beside the store, 0600
    data = raw_bytes(store)
    assert data and not any(secret.encode() in data for secret in site.secrets)
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    for path in store.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    key = Path(str(store) + ".key")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().strip().encode() not in data


def test_the_persist_lock_is_one_session_at_a_time(
    make_app: AppFactory, store: Path, site: LoginSite
) -> None:
    client = app_on(make_app, store).test_client()
    pid = new_profile(client)
    holder = start(client, profile={"id": pid, "persist": True})["session_id"]
    refused = client.post(
        "/session/start", json={"profile": {"id": pid, "persist": True}}, headers=AUTH_A
    )
    assert refused.status_code == 409 and refused.get_json()["holder"] == holder
    assert holder in refused.get_json()["error"]
    # read-only use is not limited; metadata names the holder; delete and import wait
    start(client, profile={"id": pid})
    assert ok(client.get(f"/profiles/{pid}", headers=AUTH_A))["in_use_by"] == holder
    assert client.delete(f"/profiles/{pid}", headers=AUTH_A).status_code == 409
    put = client.put(f"/profiles/{pid}/state", json={"cookies": []}, headers=AUTH_A)
    assert put.status_code == 409
    close(client, holder)
    again = start(client, profile={"id": pid, "persist": True})
    assert again["profile"]["persist"] is True
    assert ok(client.get(f"/profiles/{pid}", headers=AUTH_A))["in_use_by"] == again["session_id"]


def test_state_is_written_back_at_idle_timeout_and_at_lifetime(
    make_app: AppFactory, store: Path, site: LoginSite, clock: ManualClock
) -> None:
    app = app_on(make_app, store, SESSIONS_REAPER_INTERVAL_SECONDS=0.1)
    client = app.test_client()
    idle, life = new_profile(client, "idle"), new_profile(client, "lifetime")
    a = start(client, profile={"id": idle, "persist": True}, session_timeout_minutes=1)
    b = start(client, profile={"id": life, "persist": True}, keep_alive=True)
    for sid in (a["session_id"], b["session_id"]):
        log_in(client, sid, site)
    for sid, pid, minutes in ((a["session_id"], idle, 2), (b["session_id"], life, 60)):
        clock.advance(minutes=minutes)  # a: the idle timeout; b: the lifetime cap
        assert wait_for(lambda s=sid: status(client, s)["status"] == "timed_out", 10)  # type: ignore[misc]

        # the record turns timed_out first; the write-back follows, before the context closes
        def saved(session_id: str = sid) -> bool:
            return status(client, session_id)["profile"]["saved_at"] is not None

        assert wait_for(saved, 10)
        exported = ok(client.get(f"/profiles/{pid}/state", headers=AUTH_A))
        assert [c["value"] for c in exported["cookies"]] == [site.cookie]
        assert ok(client.get(f"/profiles/{pid}", headers=AUTH_A))["in_use_by"] is None


def status(client: FlaskClient, sid: str) -> dict[str, Any]:
    answer: dict[str, Any] = ok(client.get(f"/session/{sid}", headers=AUTH_A))
    return answer


def test_save_now_and_an_error_end_keeps_the_last_saved_state(
    make_app: AppFactory, store: Path, site: LoginSite
) -> None:
    app = app_on(make_app, store)
    client = app.test_client()
    pid = new_profile(client)
    sid = start(client, profile={"id": pid, "persist": True})["session_id"]
    log_in(client, sid, site)
    saved = ok(client.post(f"/session/{sid}/profile/save", headers=AUTH_A))
    assert saved["profile_id"] == pid and saved["in_use_by"] == sid
    # then the session loses its cookie and its page crashes: nothing of that is saved
    ok(client.delete(f"/session/{sid}/cookies", headers=AUTH_A))
    state = FlaskSessions.state(app)

    async def crash() -> None:
        live = state.manager.live(sid)
        assert live is not None
        cdp = await live.context.new_cdp_session(live.page)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(cdp.send("Page.crash"), 2)

    state.runtime.submit(crash(), 10)
    assert wait_for(lambda: status(client, sid)["status"] == "error", 10)
    record = status(client, sid)["profile"]
    assert record["saved_at"] == saved["updated_at"]
    assert "ended in error" in record["not_saved"] and saved["updated_at"] in record["not_saved"]
    exported = ok(client.get(f"/profiles/{pid}/state", headers=AUTH_A))
    assert [c["value"] for c in exported["cookies"]] == [site.cookie]
    assert ok(client.get(f"/profiles/{pid}", headers=AUTH_A))["in_use_by"] is None


def test_a_state_over_the_profile_bound_is_not_saved_and_the_session_says_so(
    make_app: AppFactory, store: Path, site: LoginSite
) -> None:
    client = app_on(make_app, store, SESSIONS_MAX_PROFILE_MB=0.004).test_client()
    pid = new_profile(client)
    sid = start(client, profile={"id": pid, "persist": True})["session_id"]
    log_in(client, sid, site)
    ok(client.post(f"/session/{sid}/profile/save", headers=AUTH_A))  # small: saved
    before = ok(client.get(f"/profiles/{pid}/state", headers=AUTH_A))
    big = [{"name": f"c{i}", "value": "x" * 3000, "url": site.base + "/"} for i in range(3)]
    ok(client.post(f"/session/{sid}/cookies", json={"cookies": big}, headers=AUTH_A))
    refused = client.post(f"/session/{sid}/profile/save", headers=AUTH_A)
    assert refused.status_code == 413
    assert "SESSIONS_MAX_PROFILE_MB" in refused.get_json()["error"]
    record = close(client, sid)["profile"]
    assert "SESSIONS_MAX_PROFILE_MB" in record["not_saved"]
    assert ok(client.get(f"/profiles/{pid}/state", headers=AUTH_A)) == before


# ------------------------------------------------------------------ cookies and state


def test_the_cookie_api(make_app: AppFactory, store: Path, site: LoginSite) -> None:
    client = app_on(make_app, store).test_client()
    sid = start(client)["session_id"]
    log_in(client, sid, site)
    url = f"/session/{sid}/cookies"
    cookies = ok(client.get(url, headers=AUTH_A))["cookies"]
    assert [(c["name"], c["value"], c["httpOnly"]) for c in cookies] == [("sid", site.cookie, True)]
    added = [
        {"name": "a", "value": "1", "url": site.base + "/"},
        {"name": "b", "value": "2", "domain": "example.org", "path": "/", "secure": True},
        {"name": "c", "value": "3", "domain": "example.org", "path": "/shop", "expires": 4e9},
    ]
    answer = ok(client.post(url, json={"cookies": added}, headers=AUTH_A))
    assert answer == {"session_id": sid, "added": 3, "deleted": 0, "cookies": 4}
    mine = ok(client.get(url, query_string={"url": site.base + "/"}, headers=AUTH_A))["cookies"]
    assert {c["name"] for c in mine} == {"sid", "a"}
    shop = ok(client.get(url, query_string={"url": "https://example.org/shop"}, headers=AUTH_A))
    assert {c["name"] for c in shop["cookies"]} == {"b", "c"}
    gone = ok(
        client.delete(url, query_string={"domain": "example.org", "path": "/shop"}, headers=AUTH_A)
    )
    assert (gone["deleted"], gone["cookies"]) == (1, 3)
    assert ok(client.delete(url, query_string={"name": "a"}, headers=AUTH_A))["deleted"] == 1
    # the page sees what the API set, and the state has it all
    state = ok(client.get(f"/session/{sid}/state", headers=AUTH_A))
    assert {c["name"] for c in state["cookies"]} == {"sid", "b"}
    origin = next(o for o in state["origins"] if o["origin"] == site.base)
    assert origin["localStorage"] == [{"name": "token", "value": site.token}]
    assert site.record in json.dumps(origin["indexedDB"])
    assert ok(client.delete(url, headers=AUTH_A))["cookies"] == 0


@pytest.mark.parametrize(
    ("cookie", "field", "words"),
    [
        ({"name": "a", "value": "1"}, "cookies.0.url", "url, or domain and path"),
        ({"name": "a", "value": "1", "domain": "x.org"}, "cookies.0.path", "required with domain"),
        ({"name": "a", "value": "1", "url": "ftp://x.org/"}, "cookies.0.url", "http"),
        ({"name": "a;b", "value": "1", "url": "http://x.org/"}, "cookies.0.name", "';'"),
        (
            {"name": "a", "value": "1", "url": "http://x.org/", "path": "/"},
            "cookies.0.url",
            "not both",
        ),
        ({"name": "a", "value": "v" * 4096, "url": "http://x.org/"}, "cookies.0", "4096"),
        (
            {"name": "a", "value": "1", "url": "http://x.org/", "sameSite": "lax"},
            "cookies.0.sameSite",
            "",
        ),
    ],
)
def test_a_bad_cookie_is_a_400_naming_its_field(
    make_app: AppFactory, store: Path, cookie: dict[str, Any], field: str, words: str
) -> None:
    client = app_on(make_app, store).test_client()
    sid = start(client)["session_id"]
    for url, body in (
        (f"/session/{sid}/cookies", {"cookies": [cookie]}),
        ("/session/start", {"storage_state": {"cookies": [cookie]}}),
    ):
        answer = client.post(url, json=body, headers=AUTH_A)
        assert answer.status_code == 400, answer.get_data(as_text=True)
        named = [f for f in answer.get_json()["fields"] if f["field"].endswith(field)]
        assert named and words in named[0]["message"], answer.get_json()
    assert ok(client.get(f"/session/{sid}/cookies", headers=AUTH_A))["cookies"] == []


def test_start_with_an_inline_storage_state_and_its_bounds(
    make_app: AppFactory, store: Path, site: LoginSite
) -> None:
    app = app_on(make_app, store, SESSIONS_MAX_STATE_MB=0.01, SESSIONS_MAX_CONTENT_LENGTH=40_000)
    client = app.test_client()
    host = site.base.split("//")[1].split(":")[0]
    state = {
        "cookies": [
            {"name": "sid", "value": site.cookie, "domain": host, "path": "/", "httpOnly": True}
        ],
        "origins": [
            {"origin": site.base, "localStorage": [{"name": "token", "value": site.token}]}
        ],
    }
    sid = start(client, storage_state=state)["session_id"]
    text = account_text(client, sid, site)
    assert "Welcome alice" in text and site.token in text
    # larger than SESSIONS_MAX_STATE_MB (10 KB): 413 naming it, and no session started
    before = len(ok(client.get("/sessions", headers=AUTH_A))["sessions"])
    origin = {"origin": site.base, "localStorage": [{"name": "big", "value": "x" * 9000}]}
    big = {"cookies": [], "origins": [origin, {**origin, "origin": "http://other.test"}]}
    answer = client.post("/session/start", json={"storage_state": big}, headers=AUTH_A)
    assert answer.status_code == 413 and "SESSIONS_MAX_STATE_MB" in answer.get_json()["error"]
    assert answer.get_json()["limit"] == "SESSIONS_MAX_STATE_MB"
    # a body past SESSIONS_MAX_CONTENT_LENGTH (40 KB): 413 before it is read, naming it, the
    # state's bound, and the way to a larger state (a profile)
    huge = {
        "storage_state": {
            "origins": [{**origin, "localStorage": [{"name": "h", "value": "x" * 50_000}]}]
        }
    }
    answer = client.post("/session/start", json=huge, headers=AUTH_A)
    assert answer.status_code == 413, answer.get_data(as_text=True)
    message = answer.get_json()["error"]
    assert "SESSIONS_MAX_CONTENT_LENGTH" in message and "SESSIONS_MAX_STATE_MB" in message
    assert "PUT /profiles/<id>/state" in message
    assert len(ok(client.get("/sessions", headers=AUTH_A))["sessions"]) == before
    # with session_id, or with a profile too: 400 naming the field
    both = {"storage_state": state, "profile": {"id": "abc"}}
    answer = client.post("/session/start", json=both, headers=AUTH_A)
    assert answer.status_code == 400 and answer.get_json()["fields"][0]["field"] == "profile"
    answer = client.post(
        "/session/start", json={"session_id": sid, "storage_state": state}, headers=AUTH_A
    )
    assert answer.status_code == 400 and answer.get_json()["fields"][0]["field"] == "storage_state"


def test_export_and_import_a_profiles_state(
    make_app: AppFactory, store: Path, site: LoginSite
) -> None:
    app = app_on(make_app, store, SESSIONS_MAX_PROFILE_MB=0.01, SESSIONS_MAX_CONTENT_LENGTH=8000)
    client = app.test_client()
    sid = start(client)["session_id"]
    log_in(client, sid, site)
    state = ok(client.get(f"/session/{sid}/state", headers=AUTH_A))
    pid = new_profile(client, "imported")
    info = ok(client.put(f"/profiles/{pid}/state", json=state, headers=AUTH_A))
    assert info["size_bytes"] > 0 and site.base in info["domains"]
    assert ok(client.get(f"/profiles/{pid}/state", headers=AUTH_A)) == state
    second = start(client, profile={"id": pid})["session_id"]
    assert logged_in(account_text(client, second, site), site)
    # an import may be larger than SESSIONS_MAX_CONTENT_LENGTH (8 KB), up to a profile's bound
    origin = {"origin": site.base, "localStorage": [{"name": "mid", "value": "x" * 9000}]}
    assert ok(client.put(f"/profiles/{pid}/state", json={"origins": [origin]}, headers=AUTH_A))
    ok(client.put(f"/profiles/{pid}/state", json=state, headers=AUTH_A))
    # over SESSIONS_MAX_PROFILE_MB (10 KB), or its body over both: 413, the profile unchanged
    for size in (12_000, 30_000):
        origin = {"origin": site.base, "localStorage": [{"name": "big", "value": "x" * size}]}
        answer = client.put(f"/profiles/{pid}/state", json={"origins": [origin]}, headers=AUTH_A)
        assert answer.status_code == 413, answer.get_data(as_text=True)
        assert "SESSIONS_MAX_PROFILE_MB" in answer.get_json()["error"]
    bad = client.put(f"/profiles/{pid}/state", json={"cookies": [{"name": "x"}]}, headers=AUTH_A)
    assert bad.status_code == 400
    extra = client.put(f"/profiles/{pid}/state", json={"credentials": []}, headers=AUTH_A)
    assert extra.status_code == 400 and "credentials" in extra.get_json()["error"]
    assert ok(client.get(f"/profiles/{pid}/state", headers=AUTH_A)) == state


def test_profiles_crud_and_the_cap(make_app: AppFactory, store: Path) -> None:
    client = app_on(make_app, store, SESSIONS_MAX_PROFILES_PER_PRINCIPAL=2).test_client()
    first = ok(client.post("/profiles", json={"name": "one"}, headers=AUTH_A))
    assert set(first) >= {"profile_id", "name", "created_at"} and first["domains"] == []
    second = new_profile(client, "two")
    refused = client.post("/profiles", json={"name": "three"}, headers=AUTH_A)
    assert refused.status_code == 409
    assert "SESSIONS_MAX_PROFILES_PER_PRINCIPAL" in refused.get_json()["error"]
    listed = ok(client.get("/profiles", headers=AUTH_A))["profiles"]
    assert [p["name"] for p in listed] == ["one", "two"]
    assert ok(client.delete(f"/profiles/{second}", headers=AUTH_A))["name"] == "two"
    assert client.get(f"/profiles/{second}", headers=AUTH_A).status_code == 404
    new_profile(client, "three")
    for bad in ({"name": ""}, {"name": "x" * 201}, {}, {"name": "n", "extra": 1}):
        assert client.post("/profiles", json=bad, headers=AUTH_A).status_code == 400
    assert client.get("/profiles/..%2F..%2Fetc", headers=AUTH_A).status_code == 404
    assert client.get("/profiles/" + "x" * 65, headers=AUTH_A).status_code == 404


def test_another_principals_profile_is_a_404_everywhere(
    make_app: AppFactory, store: Path, site: LoginSite
) -> None:
    client = app_on(make_app, store).test_client()
    pid = new_profile(client)
    sid = start(client, profile={"id": pid, "persist": True})["session_id"]
    assert ok(client.get("/profiles", headers=AUTH_B))["profiles"] == []
    for method, url, body in (
        ("GET", f"/profiles/{pid}", None),
        ("DELETE", f"/profiles/{pid}", None),
        ("GET", f"/profiles/{pid}/state", None),
        ("PUT", f"/profiles/{pid}/state", {"cookies": []}),
        ("POST", "/session/start", {"profile": {"id": pid}}),
        ("POST", "/session/start", {"profile": {"id": pid, "persist": True}}),
        ("GET", f"/session/{sid}/cookies", None),
        (
            "POST",
            f"/session/{sid}/cookies",
            {"cookies": [{"name": "a", "value": "b", "url": site.base}]},
        ),
        ("DELETE", f"/session/{sid}/cookies", None),
        ("GET", f"/session/{sid}/state", None),
        ("POST", f"/session/{sid}/profile/save", None),
    ):
        answer = client.open(url, method=method, json=body, headers=AUTH_B)
        assert answer.status_code == 404, (method, url, answer.get_data(as_text=True))
    unknown = client.get("/profiles/nOsUcHpRoFiLe0000000000", headers=AUTH_A)
    mine_elsewhere = client.get(f"/profiles/{pid}", headers=AUTH_B)
    assert (
        unknown.get_json()["error"].split("'")[2]
        == mine_elsewhere.get_json()["error"].split("'")[2]
    )
    assert ok(client.get(f"/profiles/{pid}", headers=AUTH_A))["in_use_by"] == sid


def test_a_session_without_a_persisting_profile_has_nothing_to_save(
    make_app: AppFactory, store: Path
) -> None:
    client = app_on(make_app, store).test_client()
    pid = new_profile(client)
    for body in ({}, {"profile": {"id": pid}}):
        sid = start(client, **body)["session_id"]
        answer = client.post(f"/session/{sid}/profile/save", headers=AUTH_A)
        assert answer.status_code == 409 and "persist: true" in answer.get_json()["error"]


# ------------------------------------------------------------------ keys


def test_a_wrong_key_is_a_clear_error_and_keys_rotate(
    make_app: AppFactory, store: Path, site: LoginSite
) -> None:
    one = app_on(make_app, store, SESSIONS_PROFILE_KEY=KEY_1).test_client()
    pid = new_profile(one)
    sid = start(one, profile={"id": pid, "persist": True})["session_id"]
    log_in(one, sid, site)
    close(one, sid)
    assert not Path(str(store) + ".key").exists()  # a key was given: none is made

    two = app_on(make_app, store, SESSIONS_PROFILE_KEY=KEY_2).test_client()
    for method, url, body in (
        ("GET", f"/profiles/{pid}/state", None),
        ("GET", f"/profiles/{pid}", None),
        ("GET", "/profiles", None),
        ("POST", "/session/start", {"profile": {"id": pid}}),
    ):
        answer = two.open(url, method=method, json=body, headers=AUTH_A)
        assert answer.status_code == 503, answer.get_data(as_text=True)
        message = answer.get_json()["error"]
        assert "not in SESSIONS_PROFILE_KEY" in message and site.cookie not in message

    # rotation: the new key first, the old one after it; a write re-encrypts with the new
    both = app_on(make_app, store, SESSIONS_PROFILE_KEY=json.dumps([KEY_2, KEY_1])).test_client()
    state = ok(both.get(f"/profiles/{pid}/state", headers=AUTH_A))
    assert [c["value"] for c in state["cookies"]] == [site.cookie]
    ok(both.put(f"/profiles/{pid}/state", json=state, headers=AUTH_A))
    assert ok(two.get(f"/profiles/{pid}/state", headers=AUTH_A)) == state
    assert one.get(f"/profiles/{pid}/state", headers=AUTH_A).status_code == 503

    # bytes changed at rest fail authentication: nothing of them is used
    path = next(store.rglob("*.profile"))
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))
    answer = two.get(f"/profiles/{pid}/state", headers=AUTH_A)
    assert answer.status_code == 503 and "fails authentication" in answer.get_json()["error"]


def test_a_cluster_or_a_redis_store_needs_a_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SESSIONS_PROFILE_KEY"):
        load({"SESSIONS_PROFILE_STORE": "redis://127.0.0.1:6379/0"}, environ=False)
    settings = load({"SESSIONS_CLUSTER_SECRET": "s" * 20}, environ=False)
    with pytest.raises(ValueError, match="SESSIONS_PROFILE_KEY") as refused:
        Host.build(settings, "http://127.0.0.1:1")
    assert "\n" not in str(refused.value)
    for bad in ("short", '["ok-key-0123456789", "short"]', "file://relative/path"):
        key = "SESSIONS_PROFILE_STORE" if bad.startswith("file") else "SESSIONS_PROFILE_KEY"
        with pytest.raises(ConfigError, match=key):
            load({key: bad}, environ=False)
    assert load({"SESSIONS_PROFILE_KEY": "a" * 16 + "," + "b" * 16}, environ=False).profile_key == (
        "a" * 16,
        "b" * 16,
    )


# ------------------------------------------------------------------ a real server


def test_shutdown_writes_back_and_the_client_does_it_all(tmp_path: Path, site: LoginSite) -> None:
    """A real server (SIGTERM at the end saves the persisting session), driven by the typed
    client, sync and async."""
    store = tmp_path / "profiles"
    env = server_env("tok", SESSIONS_PROFILE_STORE=f"file://{store}", SESSIONS_WARM_POOL="0")
    server = serve(env)
    try:
        with server.client() as client:
            pid = client.create_profile("shop").profile_id
            with client.session(profile={"id": pid, "persist": True}) as s:
                assert s.record is not None and s.record.profile is not None
                s.step(type="goto", url=site.base + "/login")
                s.step(type="click", selector="#signin")
                assert wait_for(lambda: "Welcome alice" in s.observe().observation.text, 15, 0.2)
                assert [c.value for c in s.cookies()] == [site.cookie]
                assert s.add_cookies([{"name": "extra", "value": "1", "url": site.base}]).added == 1
                assert s.delete_cookies(name="extra").deleted == 1
                assert s.state()["cookies"][0]["value"] == site.cookie
                assert s.save_profile().in_use_by == s.session_id
                with pytest.raises(ProfileInUse) as held:
                    client.start(profile={"id": pid, "persist": True})
                assert held.value.holder == s.session_id
            assert [p.profile_id for p in client.list_profiles()] == [pid]
            copy = client.create_profile("copy")
            client.put_profile_state(copy.profile_id, client.profile_state(pid))
            assert client.get_profile(copy.profile_id).domains == client.get_profile(pid).domains
            assert client.delete_profile(copy.profile_id).name == "copy"
            with pytest.raises(ProfileNotFound):
                client.get_profile(copy.profile_id)
            with pytest.raises(InvalidRequest):
                client.add_cookies("x" * 10, [{"name": "a", "value": "b"}])
            with pytest.raises(PayloadTooLarge):
                big = {
                    "origins": [
                        {
                            "origin": site.base,
                            "localStorage": [{"name": "b", "value": "x" * 6_000_000}],
                        }
                    ]
                }
                client.put_profile_state(pid, big)

            async def async_side() -> str:
                async with AsyncSessionsClient(server.base, "tok") as aclient:
                    created = await aclient.create_profile("async")
                    async with aclient.session(profile={"id": pid}) as s:
                        await s.step(type="goto", url=site.base + "/account")
                        assert [c.value for c in await s.cookies()] == [site.cookie]
                        assert (await s.state())["origins"]
                    assert created.profile_id in {
                        p.profile_id for p in await aclient.list_profiles()
                    }
                    await aclient.delete_profile(created.profile_id)
                    return (await aclient.start(profile={"id": pid, "persist": True})).session_id

            last = asyncio.run(async_side())
            client.step(last, type="goto", url=site.base + "/account")
            client.add_cookies(last, [{"name": "at_shutdown", "value": "yes", "url": site.base}])
        server.stop(signal.SIGTERM)
        assert server.proc.returncode == 0, server.output(40)
    finally:
        server.stop()
    # the shutdown saved the last session's state: read it with the store and its key
    from flask_sessions.host.profiles import ProfileRoom

    settings = load({"SESSIONS_PROFILE_STORE": f"file://{store}"}, environ=False)
    room = ProfileRoom(settings, lambda: None)  # type: ignore[arg-type,return-value]
    principal = "token-1"
    state = room.export(principal, pid)
    assert {c["name"] for c in state["cookies"]} == {"sid", "at_shutdown"}
    assert room.info(principal, pid).in_use_by is None
    assert not any(s.encode() in raw_bytes(store) for s in site.secrets)
    assert os.path.exists(str(store) + ".key")
    with SessionsClient("http://127.0.0.1:1", "t") as offline, pytest.raises(InvalidRequest):
        offline.get_profile("../../etc/passwd")


# ------------------------------------------------------------------ the README


def _readme_blocks() -> tuple[str, str]:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Log in once: cookies, state and profiles", 1)[1].split("\n## ", 1)[0]
    shell = section.split("```sh\n", 1)[1].split("```", 1)[0]
    python = section.split("```python\n", 1)[1].split("```", 1)[0]
    return shell, python


def _expected(line: str) -> re.Pattern[str]:
    """A ``# → …`` line of the README as a pattern: ``…`` stands for anything."""
    parts = [re.escape(p) for p in line.split("…")]
    return re.compile("^" + ".*".join(parts) + "$")


def test_the_readmes_log_in_once_walkthrough_runs_as_written(tmp_path: Path) -> None:
    from scripts.demo_site import start_demo_site

    shell, python = _readme_blocks()
    store = tmp_path / "profiles"
    demo, demo_base = start_demo_site()
    server = serve(server_env("readme-token", SESSIONS_PROFILE_STORE=f"file://{store}"))
    try:
        ours = {"http://127.0.0.1:8000": server.base, "http://127.0.0.1:8100": demo_base}
        script = shell
        for written, real in ours.items():
            script = script.replace(written, real)
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env={**os.environ, "TOKEN": "readme-token"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        printed = done.stdout.splitlines()
        wanted = [
            line.split("# → ", 1)[1].replace("http://127.0.0.1:8100", demo_base)
            for line in shell.splitlines()
            if line.startswith("# → ")
        ]
        assert len(printed) == len(wanted), (printed, wanted)
        for out, want in zip(printed, wanted, strict=True):
            assert _expected(want).match(out), (out, want)

        code = python
        for written, real in ours.items():
            code = code.replace(written, real)
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured):
            exec(compile(code, "README.md", "exec"), {"TOKEN": "readme-token"})
        lines = captured.getvalue().splitlines()
        assert lines[0] == "[('demo_user', True)]" and lines[2] == "Account", lines
        assert re.match(r"^\d{4}-\d\d-\d\dT", lines[1]), lines
    finally:
        server.stop()
        demo.shutdown()
        demo.server_close()


def test_a_cookie_chromium_refuses_is_a_400_not_a_502(make_app: AppFactory, store: Path) -> None:
    client = app_on(make_app, store).test_client()
    pid = new_profile(client)
    refused = {"name": "a", "value": "b", "domain": ".", "path": "/"}
    answer = client.post(
        "/session/start", json={"storage_state": {"cookies": [refused]}}, headers=AUTH_A
    )
    assert answer.status_code == 400 and answer.get_json()["fields"][0]["field"] == "storage_state"
    # a profile holding such a state: the start says so, and gives the lease back
    ok(client.put(f"/profiles/{pid}/state", json={"cookies": [refused]}, headers=AUTH_A))
    body = {"profile": {"id": pid, "persist": True}}
    assert client.post("/session/start", json=body, headers=AUTH_A).status_code == 400
    assert ok(client.get(f"/profiles/{pid}", headers=AUTH_A))["in_use_by"] is None
    sid = start(client)["session_id"]
    added = client.post(f"/session/{sid}/cookies", json={"cookies": [refused]}, headers=AUTH_A)
    assert added.status_code == 400 and "Chromium" in added.get_json()["error"]


# ------------------------------------------------------------------ the stores themselves


def test_a_file_store_writes_atomically_and_its_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask_sessions.host.profiles import FileProfileStore, StoreDown, owner_of

    store = FileProfileStore(str(tmp_path / "s"))
    owner = owner_of("alice")
    store.put(owner, "p1", b"meta-1", b"state-1")

    # a write that fails before its rename leaves the last good profile, and no stray file
    def fail(*_: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(StoreDown):
        store.put(owner, "p1", b"meta-2", b"state-2" * 1000)
    monkeypatch.undo()
    got = store.get(owner, "p1", True)
    assert got is not None and (got.meta, got.state) == (b"meta-1", b"state-1")
    assert sorted(p.name for p in (tmp_path / "s" / owner).iterdir()) == ["p1.profile"]
    assert store.ids(owner) == ["p1"] and store.ids(owner_of("bob")) == []
    # the lease: one holder; the same holder renews; a lapsed one is taken over
    assert store.lock(owner, "p1", "s1", 60) is None
    assert store.lock(owner, "p1", "s2", 60) == "s1"
    assert store.lock(owner, "p1", "s1", 60) is None and store.holder(owner, "p1") == "s1"
    store.unlock(owner, "p1", "s2")  # not the holder: nothing happens
    assert store.holder(owner, "p1") == "s1"
    store.unlock(owner, "p1", "s1")
    assert store.holder(owner, "p1") is None
    assert store.lock(owner, "p1", "s3", -1) is None  # lapsed at once
    assert store.lock(owner, "p1", "s4", 60) is None
    # names from outside never become paths
    for bad in ("../x", "a/b", "", "x" * 65, "p1.profile"):
        with pytest.raises(ValueError):
            store.get(owner, bad, False)
    with pytest.raises(ValueError):
        store.ids("../../etc")
    assert store.delete(owner, "p1") and not store.delete(owner, "p1")


def test_a_redis_store_keeps_sealed_bytes_and_its_lease(tmp_path: Path) -> None:
    import shutil

    from flask_sessions.host.profiles import RedisProfileStore, owner_of
    from flask_sessions.testing import free_port, start_process

    exe = shutil.which("redis-server")
    assert exe, "redis-server is missing: `make test` installs it"
    port = free_port()
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = start_process(args, f"redis://127.0.0.1:{port}")
    try:
        assert wait_for(lambda: _pings(port), 10)
        store = RedisProfileStore(f"redis://127.0.0.1:{port}/0")
        owner = owner_of("alice")
        store.put(owner, "p1", b"m", b"s")
        got = store.get(owner, "p1", True)
        assert got is not None and (got.meta, got.state) == (b"m", b"s")
        assert store.get(owner, "p1", False) is not None and store.ids(owner) == ["p1"]
        assert store.lock(owner, "p1", "s1", 60) is None
        assert store.lock(owner, "p1", "s2", 60) == "s1"
        store.unlock(owner, "p1", "s2")
        assert store.holder(owner, "p1") == "s1"
        store.unlock(owner, "p1", "s1")
        assert store.lock(owner, "p1", "s2", 60) is None
        assert store.delete(owner, "p1") and store.ids(owner) == []
        assert store.holder(owner, "p1") is None  # the lease went with it
        store.close()
        assert RedisProfileStore("redis://:pw@127.0.0.1:1/0").where == "redis://127.0.0.1:1/0"
    finally:
        server.stop()


def _pings(port: int) -> bool:
    import redis as redis_lib

    try:
        return bool(redis_lib.Redis(port=port).ping())
    except redis_lib.RedisError:
        return False


def test_ctrl_c_writes_back_too(tmp_path: Path, site: LoginSite) -> None:
    """Ctrl-C in a terminal signals the whole process group, Playwright's driver included:
    Chromium must still be there when shutdown writes the persisting session back."""
    store = tmp_path / "profiles"
    env = server_env("tok", SESSIONS_PROFILE_STORE=f"file://{store}", SESSIONS_WARM_POOL="0")
    server = serve(env, new_session=True)
    try:
        with server.client() as client:
            pid = client.create_profile("shop").profile_id
            body = {"id": pid, "persist": True}
            sid = client.start(profile=body, url=site.base + "/login").session_id
            client.step(sid, type="click", selector="#signin")
            assert wait_for(
                lambda: "Welcome alice" in client.observe(sid).observation.text, 15, 0.2
            )
        server.remember_children()
        os.killpg(server.pid, signal.SIGINT)
        assert server.proc.wait(30) == 0, server.output(40)
    finally:
        assert server.stop() == []  # nothing outlived it
    from flask_sessions.host.profiles import ProfileRoom

    settings = load({"SESSIONS_PROFILE_STORE": f"file://{store}"}, environ=False)
    state = ProfileRoom(settings, lambda: None).export("token-1", pid)  # type: ignore[arg-type,return-value]
    assert [c["value"] for c in state["cookies"]] == [site.cookie]
