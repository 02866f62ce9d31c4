"""Fronts and hosts: gunicorn workers on a fixed host list, and several hosts and fronts
on a real Redis server (Debian's redis-server, started here on a free loopback port).

Hosts listen on distinct loopback addresses (127.0.0.2, .3, .4); nothing leaves 127.0.0.0/8.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from flask_sessions.page.capture import image_size
from flask_sessions.testing import ServerProcess, free_port, server_env, start_process

from .conftest import wait_for
from .test_server import ROOT

SECRET = "cluster-secret-for-tests-0123456789"
PROFILE_KEY = "profile-key-for-tests-0123456789"
TOKENS = {"tok-a": "alice", "tok-b": "bob"}
A = {"Authorization": "Bearer tok-a"}
B = {"Authorization": "Bearer tok-b"}
GUNICORN = Path(sys.executable).parent / "gunicorn"


@pytest.fixture
def procs() -> Iterator[list[ServerProcess]]:
    running: list[ServerProcess] = []
    yield running
    for proc in reversed(running):
        proc.stop(timeout=30)


def spawn(procs: list[ServerProcess], args: list[str], base: str, **env: str) -> ServerProcess:
    full_env = server_env(
        json.dumps(TOKENS), SESSIONS_CLUSTER_SECRET=SECRET, SESSIONS_PROFILE_KEY=PROFILE_KEY, **env
    )
    started = start_process(args, base, full_env, cwd=ROOT)
    procs.append(started)
    return started


def host(procs: list[ServerProcess], address: str, **env: str) -> ServerProcess:
    port = free_port()
    args = [sys.executable, "-m", "flask_sessions", "host", "--host", address, "--port", str(port)]
    return spawn(procs, args, f"http://{address}:{port}", SESSIONS_WARM_POOL="1", **env)


def front(procs: list[ServerProcess], **env: str) -> ServerProcess:
    port = free_port()
    args = [sys.executable, "-m", "flask_sessions", "--port", str(port)]
    return spawn(procs, args, f"http://127.0.0.1:{port}", **env)


@pytest.fixture
def redis_url(procs: list[ServerProcess]) -> str:
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail(
            "redis-server is missing: `make test` installs it (apt-get install redis-server)"
        )
    port = free_port()
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    procs.append(start_process(args, f"redis://127.0.0.1:{port}"))
    import redis

    client = redis.Redis(port=port)
    assert wait_for(lambda: _pings(client), 10)
    return f"redis://127.0.0.1:{port}/0"


def _pings(client: object) -> bool:
    import redis

    try:
        return bool(client.ping())  # type: ignore[attr-defined]
    except redis.RedisError:
        return False


def start(base: str, headers: dict[str, str] = A) -> dict[str, object]:
    r = requests.post(base + "/session/start", headers=headers, json={}, timeout=60)
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def status(base: str, sid: str, headers: dict[str, str] = A) -> requests.Response:
    return requests.get(f"{base}/session/{sid}", headers=headers, timeout=30)


# --------------------------------------------------------- fixed hosts


@pytest.mark.parametrize("preload", [False, True], ids=["workers", "preload"])
def test_gunicorn_workers_share_one_host(procs: list[ServerProcess], preload: bool) -> None:
    h = host(procs, "127.0.0.2")
    h.wait_ready()
    port = free_port()
    args = [str(GUNICORN), "-w", "4", "-b", f"127.0.0.1:{port}"]
    if preload:
        args.append("--preload")
    fronts = spawn(
        procs,
        [*args, "flask_sessions:create_app()"],
        f"http://127.0.0.1:{port}",
        SESSIONS_HOSTS=h.base,
        SESSIONS_LAUNCH_AT_INIT="true" if preload else "false",
    )
    fronts.wait_ready()
    sids = [str(start(fronts.base)["session_id"]) for _ in range(5)]
    codes: Counter[int] = Counter()
    for i in range(100):  # a fresh connection each time: any worker may answer
        sid = sids[i % 5]
        if i % 2:
            r = status(fronts.base, sid)
        else:
            r = requests.post(
                fronts.base + "/env/observe", headers=A, json={"session_id": sid}, timeout=60
            )
        codes[r.status_code] += 1
    assert codes == Counter({200: 100}), codes
    listed = requests.get(fronts.base + "/sessions", headers=A, timeout=30).json()["sessions"]
    assert [s["session_id"] for s in listed] == sids  # oldest first
    assert status(fronts.base, sids[0], B).status_code == 404


def test_cdp_notte_and_mcp_through_a_front_reach_the_owner_host(
    procs: list[ServerProcess], page_server: str
) -> None:
    from playwright.sync_api import sync_playwright

    h = host(procs, "127.0.0.2")
    h.wait_ready()
    f = front(procs, SESSIONS_HOSTS=h.base)
    f.wait_ready()
    body = start(f.base)
    sid = str(body["session_id"])
    assert str(body["cdp_url"]).startswith("ws://127.0.0.2:")  # straight to the owner host
    r = requests.post(f"{f.base}/session/{sid}/cdp-ticket", headers=A, timeout=30)
    assert r.status_code == 200, r.text
    ticket_url = r.json()["cdp_url"]
    assert "?ticket=" in ticket_url and "tok-a" not in ticket_url
    assert (
        requests.post(f"{f.base}/session/{sid}/cdp-ticket", headers=B, timeout=30).status_code
        == 404
    )
    with sync_playwright() as p:
        browser = p.chromium.connect_over_cdp(ticket_url)
        page = browser.contexts[0].pages[0]
        page.goto(page_server + "/second")
        assert page.text_content("p") == "second page"
        browser.close()
    r = requests.post(f.base + "/env/observe", headers=A, json={"session_id": sid}, timeout=60)
    assert r.json()["observation"]["url"] == page_server + "/second"
    # A host sharing the fronts' tokens also takes the bearer token on the upgrade.
    with sync_playwright() as p:
        browser = p.chromium.connect_over_cdp(str(body["cdp_url"]), headers=A)
        assert browser.contexts[0].pages[0].url == page_server + "/second"
        browser.close()
    _notte_and_mcp_through(f.base, page_server)


def test_a_host_refuses_calls_without_the_secret(procs: list[ServerProcess]) -> None:
    h = host(procs, "127.0.0.2")
    h.wait_ready()
    for headers in ({}, {"X-Sessions-Secret": "wrong"}, A):
        r = requests.post(h.base + "/internal/v1/start", headers=headers, json={}, timeout=10)
        assert r.status_code == 401 and "secret" in r.json()["error"]
    metrics = requests.get(h.base + "/metrics", timeout=10).text
    assert "flask_sessions_browser_up" in metrics and "flask_sessions_capacity_left" in metrics


# ---------------------------------------------------------------- Redis


def test_hosts_and_fronts_on_redis(procs: list[ServerProcess], redis_url: str) -> None:
    hosts = [host(procs, f"127.0.0.{i}", SESSIONS_REGISTRY_URL=redis_url) for i in (2, 3, 4)]
    for h in hosts:
        h.wait_ready()
    fronts = [front(procs, SESSIONS_REGISTRY_URL=redis_url) for _ in range(2)]
    for f in fronts:
        f.wait_ready()
    assert wait_for(
        lambda: "3 browser host" in requests.get(fronts[0].base + "/readyz", timeout=5).text, 15
    )

    # 30 starts through both fronts spread over the three hosts.
    sessions = [start(fronts[i % 2].base) for i in range(30)]
    per_host = Counter(str(s["session_id"])[:8] for s in sessions)
    assert len(per_host) == 3 and max(per_host.values()) / min(per_host.values()) <= 1.5, per_host

    # Captures cross a front as they are: the image, its format, its size.
    mine_too = str(sessions[1]["session_id"])
    shot_url = f"{fronts[0].base}/session/{mine_too}/screenshot"
    r = requests.get(shot_url, params={"format": "jpeg", "quality": "50"}, headers=A, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/jpeg", r.text
    assert image_size(r.content) == (1280, 720)
    json_a = {**A, "Accept": "application/json"}
    r = requests.get(shot_url, params={"full_page": "true"}, headers=json_a, timeout=30)
    shot = r.json()
    assert shot["format"] == "png" and shot["clipped"] is False, shot
    assert shot["page_size"] == {"width": 1280, "height": 720}

    # Tenancy holds through any front.
    sid = str(sessions[0]["session_id"])
    for f in fronts:
        assert status(f.base, sid, B).status_code == 404
        r = requests.post(
            f.base + "/session/close", headers=B, json={"session_id": sid}, timeout=30
        )
        assert r.status_code == 404
        r = requests.post(f.base + "/env/observe", headers=B, json={"session_id": sid}, timeout=30)
        assert r.status_code == 404
        assert (
            requests.get(f"{f.base}/session/{sid}/screenshot", headers=B, timeout=30).status_code
            == 404
        )
        assert sid not in {
            s["session_id"]
            for s in requests.get(f.base + "/sessions", headers=B, timeout=30).json()["sessions"]
        }

    # SIGKILL one host: its sessions turn error within 5 s; the others keep answering.
    victim_id = str(sessions[0]["session_id"])[:8]
    victim = next(h for h in hosts if _host_id(h) == victim_id)
    mine = [str(s["session_id"]) for s in sessions if str(s["session_id"]).startswith(victim_id)]
    others = [
        str(s["session_id"]) for s in sessions if not str(s["session_id"]).startswith(victim_id)
    ]
    killed_at = time.monotonic()
    victim.stop(signal.SIGKILL)

    def all_error() -> bool:
        return all(status(fronts[1].base, sid).json().get("status") == "error" for sid in mine)

    assert wait_for(all_error, 6, 0.2)
    assert time.monotonic() - killed_at <= 6.0
    # A status read is a read: 200 with the record, through either front; the error names
    # the host by id and URL, and when it was last heard from (which is closed_at).
    listed = {
        s["session_id"]: s
        for s in requests.get(fronts[1].base + "/sessions", headers=A, timeout=30).json()[
            "sessions"
        ]
    }
    for f in fronts:
        for sid in mine:
            r = status(f.base, sid)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["status"] == "error" and body["closed_at"], body
            assert f"the host {victim_id} ({victim.base})" in body["error"], body["error"]
            assert "stopped answering at" in body["error"]
            assert {k: v for k, v in body.items() if k not in ("cdp_url", "page")} == {
                k: v for k, v in listed[sid].items() if k not in ("cdp_url", "page")
            }
            assert status(f.base, sid, B).status_code == 404  # still nobody else's
    # Closing it returns the same record; what needs the live page is a 409 naming the host.
    r = requests.post(
        fronts[0].base + "/session/close", headers=A, json={"session_id": mine[0]}, timeout=30
    )
    assert r.status_code == 200 and r.json()["status"] == "error", r.text
    r = requests.post(
        fronts[0].base + "/env/observe", headers=A, json={"session_id": mine[0]}, timeout=30
    )
    assert r.status_code == 409 and r.json()["status"] == "error", r.text
    assert victim.base in r.json()["error"]
    r = requests.get(f"{fronts[1].base}/session/{mine[0]}/screenshot", headers=A, timeout=30)
    assert r.status_code == 409, r.text
    five_xx = 0
    for sid in others:
        r = status(fronts[0].base, sid)
        five_xx += r.status_code >= 500
        assert r.status_code == 200 and r.json()["status"] == "active"
    assert five_xx == 0
    new = [str(start(fronts[i % 2].base)["session_id"])[:8] for i in range(6)]
    assert victim_id not in new
    listed = requests.get(fronts[0].base + "/sessions", headers=A, timeout=30).json()["sessions"]
    assert len(listed) == 36 and [s["created_at"] for s in listed] == sorted(
        s["created_at"] for s in listed
    )
    assert {s["status"] for s in listed if s["session_id"] in mine} == {"error"}

    # A host started again takes starts again.
    back = host(procs, victim.base.split("//")[1].split(":")[0], SESSIONS_REGISTRY_URL=redis_url)
    back.wait_ready()
    assert wait_for(
        lambda: "3 browser host" in requests.get(fronts[0].base + "/readyz", timeout=5).text, 15
    )
    landed = Counter(str(start(fronts[0].base)["session_id"])[:8] for _ in range(9))
    assert _host_id(back) in landed

    # Restart Redis (no persistence): hosts re-publish, no session is lost.
    before = {
        s["session_id"]: s["status"]
        for s in requests.get(fronts[1].base + "/sessions", headers=A, timeout=30).json()[
            "sessions"
        ]
    }
    redis_proc = next(p for p in procs if p.base.startswith("redis://"))
    port = redis_url.rsplit(":", 1)[1].split("/")[0]
    redis_proc.stop()
    # While Redis is down, live sessions still answer through a front that knows the owner;
    # starts answer 503 once the front's half-second view of the hosts has aged out.
    assert status(fronts[0].base, others[0]).status_code == 200
    time.sleep(0.6)
    assert (
        requests.post(fronts[0].base + "/session/start", headers=A, json={}, timeout=30).status_code
        == 503
    )
    server = shutil.which("redis-server")
    assert server
    args = [server, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    procs.append(start_process(args, redis_url))

    def restored() -> bool:
        now = requests.get(fronts[1].base + "/sessions", headers=A, timeout=30)
        if now.status_code != 200:
            return False
        after = {s["session_id"]: s["status"] for s in now.json()["sessions"]}
        live = {sid for sid, st in before.items() if st == "active"}
        return live <= set(after) and all(after[sid] == "active" for sid in live)

    assert wait_for(restored, 15, 0.3)


def _host_id(h: ServerProcess) -> str:
    info = requests.get(h.base + "/healthz", timeout=5).json()
    return str(info["host_id"])


# ------------------------------------------------------- profiles (issue 18)


def test_a_profile_saved_on_one_host_loads_on_another(
    procs: list[ServerProcess], redis_url: str
) -> None:
    """Two hosts and a front on Redis: the profile lives in Redis, encrypted; the persist
    lock holds across hosts; another principal sees nothing."""
    import redis

    from .login_site import login_site

    hosts = [host(procs, f"127.0.0.{i}", SESSIONS_REGISTRY_URL=redis_url) for i in (2, 3)]
    for h in hosts:
        h.wait_ready()
    f = front(procs, SESSIONS_REGISTRY_URL=redis_url)
    f.wait_ready()
    assert wait_for(
        lambda: "2 browser host" in requests.get(f.base + "/readyz", timeout=5).text, 15
    )

    def call(
        method: str, path: str, body: object = None, headers: dict[str, str] = A
    ) -> requests.Response:
        return requests.request(method, f.base + path, json=body, headers=headers, timeout=60)

    with login_site() as site:
        pid = call("POST", "/profiles", {"name": "shop"}).json()["profile_id"]
        first = call("POST", "/session/start", {"profile": {"id": pid, "persist": True}}).json()
        sid, saved_on = first["session_id"], first["session_id"][:8]
        for step in (
            {"type": "goto", "url": site.base + "/login"},
            {"type": "click", "selector": "#signin"},
        ):
            r = call("POST", "/env/step", {"session_id": sid, **step})
            assert r.status_code == 200, r.text

        def arrived() -> bool:  # the page stores its token and record, then moves on
            look = call("POST", "/env/observe", {"session_id": sid}).json()
            return "Welcome alice" in look["observation"]["text"]

        assert wait_for(arrived, 15, 0.2)
        # the lock holds across hosts: the next start goes to the other, freer host
        refused = call("POST", "/session/start", {"profile": {"id": pid, "persist": True}})
        assert refused.status_code == 409 and refused.json()["holder"] == sid
        assert call("GET", f"/profiles/{pid}").json()["in_use_by"] == sid
        closed = call("POST", "/session/close", {"session_id": sid}).json()
        assert closed["profile"]["saved_at"], closed

        # two read-only starts spread over both hosts: each is logged in, the other host too
        seen = set()
        for _ in range(2):
            body = {"profile": {"id": pid}, "url": site.base + "/account"}
            started = call("POST", "/session/start", body).json()
            seen.add(started["session_id"][:8])
            scrape = {"session_id": started["session_id"], "format": "text"}
            text = call("POST", "/env/scrape", scrape).json()["content"]
            assert "Welcome alice" in text and site.token in text and site.record in text
        assert len(seen) == 2 and saved_on in seen  # loaded on a host that did not save it
        assert site.logins == 1

        # Redis holds none of the secrets in the clear
        client = redis.Redis.from_url(redis_url)
        stored = b""
        for key in client.scan_iter("*"):
            kind = client.type(key)
            if kind == b"hash":
                stored += b"".join(bytes(v) for v in client.hgetall(key).values())  # type: ignore[arg-type]
            elif kind == b"string":
                stored += bytes(client.get(key) or b"")  # type: ignore[arg-type]
        assert any(k.startswith(b"fs:profile:") for k in client.scan_iter("fs:profile*"))
        assert not any(secret.encode() in stored for secret in site.secrets)

        # tenancy through the front
        assert call("GET", f"/profiles/{pid}", headers=B).status_code == 404
        assert call("GET", "/profiles", headers=B).json()["profiles"] == []
        other = call("POST", "/session/start", {"profile": {"id": pid}}, headers=B)
        assert other.status_code == 404


def _notte_and_mcp_through(front_base: str, page_server: str) -> None:
    """Notte's routes and the MCP server work on a cluster front as on one server (issue 21):
    both only call the backend (the front's RemoteBackend) or the HTTP API."""
    import asyncio

    from mcp import Client, StdioServerParameters
    from notte_sdk import NotteClient

    from . import test_notte

    assert test_notte.ALICE  # imported first: the SDK is told not to phone home
    with NotteClient(api_key="tok-a", server_url=front_base + "/notte", max_retries=0) as client:
        with client.Session() as s:
            assert s.execute(type="goto", url=page_server + "/second").success
            assert s.observe().metadata.title == "Second"
            assert s.response is not None and "?ticket=" in str(s.response.cdp_url)
            assert str(s.response.cdp_url).startswith("ws://127.0.0.2:")  # the owner host
            # cookies, files, the live view and profiles through the front (issues 18-20)
            cookie: Any = {"name": "k", "value": "v", "domain": "127.0.0.1", "path": "/"}
            assert s.set_cookies(cookies=[cookie | {"httpOnly": False}]).success
            assert [c["value"] for c in s.get_cookies() if c["name"] == "k"] == ["v"]
            with tempfile.TemporaryDirectory() as folder:
                note = Path(folder) / "note.txt"
                note.write_text("hi")
                assert s.storage.upload(str(note)).size == 2
                assert [f.filename for f in s.storage.list().files] == ["note.txt"]
                s.storage.download("note.txt", folder + "/out")
                assert (Path(folder) / "out" / "note.txt").read_text() == "hi"
            assert f"/ui/live/{s.session_id}#" in s.debug_info().debug_url
        assert client.sessions.status(s.session_id).close_reason == "manual"
        made = client.profiles.create(name="cluster")
        assert client.profiles.get(made.profile_id).name == "cluster"
        assert client.profiles.delete(made.profile_id)

    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "flask_sessions", "mcp", "--url", front_base],
        env={"SESSIONS_MCP_TOKEN": "tok-a"},
        cwd=str(ROOT),
    )

    async def drive() -> str:
        async with Client(server) as mcp:
            seen = await mcp.call_tool("browser_observe", {"url": page_server + "/"})
            assert not seen.is_error, seen.content
            return str(getattr(seen.content[0], "text", ""))

    assert "Page: Home" in asyncio.run(drive())
