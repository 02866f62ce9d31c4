"""The OpenAPI document (``GET <prefix>/openapi.json``): valid, complete, and true.

- valid: ``openapi-spec-validator`` accepts it as OpenAPI 3.1;
- complete: every rule of the blueprint's ``url_map`` (paths and methods) is in it and
  nothing else is, with any prefix and probe paths;
- true: the fields the server accepts (it names them when refusing an unknown one) are the
  fields the document describes, for every body, step type and query string;
- live: schemathesis drives every operation of a real ``python -m flask_sessions`` server
  (real Chromium, pages from 127.0.0.1 only): no 5xx, and every answer has a documented
  status, media type, headers and schema. ``OPENAPI_FUZZ_EXAMPLES`` (default 10) bounds the
  examples per operation; ``make stress`` runs a larger fuzz (``OPENAPI_STRESS_EXAMPLES``).
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from flask_sessions import FlaskSessions
from flask_sessions.config import load
from flask_sessions.front.notte import ENDPOINT_PREFIX as NOTTE_ENDPOINTS
from flask_sessions.front.notte import NOTTE_ROUTES
from flask_sessions.front.openapi import ROUTES, build_document, openapi_path
from flask_sessions.schemas import check_url

from .conftest import AUTH_A, AppFactory
from .test_server import TOKEN, Server, launch, server_env

HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
JSON = "application/json"


def document(app: Flask) -> dict[str, Any]:
    response = app.test_client().get(FlaskSessions.state(app).settings.url_prefix + "/openapi.json")
    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_json()
    assert isinstance(data, dict)
    return data


def operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method.upper())
        for path, item in doc["paths"].items()
        for method in item
        if method.upper() in HTTP_METHODS
    }


def served(app: Flask) -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every rule of our blueprint in the app's url_map."""
    return {
        (openapi_path(rule.rule), method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("flask_sessions.")
        and not rule.endpoint.startswith("flask_sessions." + NOTTE_ENDPOINTS)
        for method in (rule.methods or set()) & HTTP_METHODS
    }


def notte_served(app: Flask) -> set[tuple[str, str, str]]:
    """(endpoint, method, rule) of the Notte routes in the app's url_map."""
    return {
        (rule.endpoint.removeprefix("flask_sessions."), method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("flask_sessions." + NOTTE_ENDPOINTS)
        for method in (rule.methods or set()) & HTTP_METHODS
    }


@pytest.mark.parametrize(
    "config",
    [{}, {"SESSIONS_URL_PREFIX": "/browser", "SESSIONS_NOTTE_PREFIX": "/compat/notte"}],
    ids=["default", "prefixed"],
)
def test_notte_routes_are_exactly_their_table_and_the_document_says_where(
    make_app: AppFactory, config: dict[str, Any]
) -> None:
    """Notte's routes follow Notte's contract, so they are not operations of our document; the
    url_map holds exactly NOTTE_ROUTES under the Notte prefix, and the document says where."""
    app = make_app(**config)
    settings = FlaskSessions.state(app).settings
    root = settings.url_prefix + settings.notte_prefix
    assert notte_served(app) == {(e, m, root + r) for e, m, r in NOTTE_ROUTES}
    assert f"`{root}`" in document(app)["info"]["description"]
    off = make_app(SESSIONS_NOTTE_API=False)
    assert notte_served(off) == set()
    assert "Notte" not in document(off)["info"]["description"]


CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "prefix and probe paths": {
        "SESSIONS_URL_PREFIX": "/browser",
        "SESSIONS_HEALTH_PATH": "/internal/live",
        "SESSIONS_READY_PATH": "/internal/ready",
        "SESSIONS_METRICS_PATH": "/internal/metrics",
        "SESSIONS_PROBES_REQUIRE_AUTH": True,
    },
    "probes and page off": {
        "SESSIONS_HEALTH_PATH": "",
        "SESSIONS_READY_PATH": "",
        "SESSIONS_METRICS_PATH": "",
        "SESSIONS_UI": False,
    },
}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=list(CONFIGS))
def test_the_document_is_valid_openapi_31_and_covers_every_route(
    make_app: AppFactory, config: dict[str, Any]
) -> None:
    app = make_app(**config)
    doc = document(app)
    validate(doc)  # raises on anything OpenAPI 3.1 does not allow
    assert doc["openapi"].startswith("3.1")
    missing = served(app) - operations(doc)
    extra = operations(doc) - served(app)
    assert not missing, f"routes not in the document (add them to ROUTES in openapi.py): {missing}"
    assert not extra, f"documented operations the app does not serve: {extra}"
    prefix = config.get("SESSIONS_URL_PREFIX", "")
    assert all(path.startswith(prefix + "/") for path, _ in operations(doc))


def test_probe_paths_and_their_security_follow_the_settings(make_app: AppFactory) -> None:
    doc = document(make_app(**CONFIGS["prefix and probe paths"]))
    live = doc["paths"]["/browser/internal/live"]["get"]
    assert "security" not in live  # the document's default: the bearer token
    assert "401" in live["responses"]
    ready = doc["paths"]["/browser/internal/ready"]["get"]["responses"]["503"]
    assert ready["headers"]["Retry-After"]
    assert doc["paths"]["/browser/openapi.json"]["get"]["security"] == []
    open_probes = document(make_app())
    assert open_probes["paths"]["/healthz"]["get"]["security"] == []
    assert "401" not in open_probes["paths"]["/healthz"]["get"]["responses"]
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    assert doc["security"] == [{"bearerAuth": []}]


def test_the_servers_caps_are_in_the_document(make_app: AppFactory) -> None:
    doc = document(make_app(SESSIONS_MAX_TIMEOUT_MINUTES=10, SESSIONS_MAX_WAIT_MS=2500))
    schemas = doc["components"]["schemas"]
    assert schemas["StartRequest"]["properties"]["session_timeout_minutes"]["maximum"] == 10
    assert schemas["WaitStep"]["properties"]["time_ms"]["maximum"] == 2500
    alias = schemas["StartRequest"]["properties"]["session_timeout"]
    assert alias["deprecated"] is True


def _numeric_schemas(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        if value.get("type") in ("integer", "number"):
            yield value
        for item in value.values():
            yield from _numeric_schemas(item)
    elif isinstance(value, list):
        for item in value:
            yield from _numeric_schemas(item)


def test_bounds_are_in_json_schemas_words(make_app: AppFactory) -> None:
    """``minimum``/``maximum``, never pydantic's ``ge``/``le`` (which validators ignore)."""
    doc = document(make_app())
    numbers = list(_numeric_schemas(doc))
    assert numbers
    assert not [n for n in numbers if {"ge", "le", "gt", "lt"} & set(n)]
    schemas = doc["components"]["schemas"]
    quality = schemas["StartRequest"]["properties"]["screenshot_quality"]["anyOf"][0]
    assert (quality["minimum"], quality["maximum"]) == (0, 100)
    amount = schemas["ScrollStep"]["properties"]["amount"]["anyOf"][0]
    assert (amount["exclusiveMinimum"], amount["maximum"]) == (0, 100_000)


def _ref_name(ref: dict[str, Any]) -> str:
    return str(ref["$ref"]).rsplit("/", 1)[1]


def _accepted(response: Any) -> set[str]:
    """The fields the server accepts, as its 400 for an unknown field names them."""
    assert response.status_code == 400, response.get_data(as_text=True)
    message = response.get_json()["fields"][0]["message"]
    listed = re.search(r"accepted fields are: (.*)$", message)
    assert listed, message
    return set(listed.group(1).split(", "))


def _documented_body(doc: dict[str, Any], path: str, method: str = "post") -> dict[str, Any]:
    schema = doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    resolved: dict[str, Any] = doc["components"]["schemas"][_ref_name(schema)]
    return resolved


def test_every_body_documents_the_fields_its_view_validates(make_app: AppFactory) -> None:
    """Drift between a view's model and the document: the server says what it accepts."""
    app = make_app()
    doc = document(app)
    client = app.test_client()
    bodies = [r for r in ROUTES if r.body is not None and r.path != "/env/step"]
    assert bodies
    for route in bodies:
        path = openapi_path(route.path)
        url = route.path.replace("<session_id>", "Qd1nE0m7v0b7Yk1bqS3iVg")
        url = url.replace("<profile_id>", "pQd1nE0m7v0b7Yk1bqS3iV")
        answer = client.open(url, method=route.method, json={"no_such_field": 1}, headers=AUTH_A)
        documented = set(_documented_body(doc, path, route.method.lower())["properties"])
        assert _accepted(answer) == documented, route.path


def test_every_step_type_documents_the_fields_its_model_validates(make_app: AppFactory) -> None:
    app = make_app()
    doc = document(app)
    client = app.test_client()
    union = _documented_body(doc, "/env/step")
    mapping = union["discriminator"]["mapping"]
    assert {_ref_name(m) for m in union["oneOf"]} == {
        _ref_name({"$ref": r}) for r in mapping.values()
    }
    listed = re.search(r"One action, chosen by `type`: (.*)\.$", union["description"])
    assert listed and set(listed.group(1).split(", ")) == set(mapping)
    for step_type, ref in mapping.items():
        member = doc["components"]["schemas"][_ref_name({"$ref": ref})]
        assert member["properties"]["type"].get("const", step_type) in (step_type, None) or (
            step_type in member["properties"]["type"].get("enum", [])
        )
        answer = client.post("/env/step", json={"type": step_type, "no_such": 1}, headers=AUTH_A)
        assert _accepted(answer) == set(member["properties"]), step_type
    unknown = client.post("/env/step", json={"type": "teleport"}, headers=AUTH_A)
    assert unknown.status_code == 400


def test_every_query_string_documents_the_fields_its_view_validates(
    make_app: AppFactory,
) -> None:
    app = make_app()
    doc = document(app)
    client = app.test_client()
    for route in ROUTES:
        if route.query is None:
            continue
        path = openapi_path(route.path)
        url = route.path.replace("<session_id>", "Qd1nE0m7v0b7Yk1bqS3iVg")
        answer = client.open(url + "?no_such_field=1", method=route.method, headers=AUTH_A)
        params = doc["paths"][path][route.method.lower()]["parameters"]
        documented = {p["name"] for p in params if p["in"] == "query"}
        accepted = _accepted(answer)
        assert documented == accepted - {"session_timeout"}, route.path  # the alias: in the body


def test_the_document_needs_no_token_and_answers_under_several_workers(
    make_app: AppFactory,
) -> None:
    """A deployment error (several workers) refuses the API, not the document."""
    app = make_app()
    client = app.test_client()
    several = {"wsgi.multiprocess": True}
    assert client.get("/openapi.json", environ_overrides=several).status_code == 200
    refused = client.get("/sessions", headers=AUTH_A, environ_overrides=several)
    assert refused.status_code == 503


# ------------------------------------------------------------------ schemathesis, live

EXAMPLES = int(os.environ.get("OPENAPI_FUZZ_EXAMPLES", "10"))
STRESS_EXAMPLES = int(os.environ.get("OPENAPI_STRESS_EXAMPLES", "150"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
STATS: dict[str, Counter[int]] = defaultdict(Counter)
MEDIA: Counter[str] = Counter()  # the media types of the 2xx answers
RNG = random.Random(13)
FUZZ_FILE = "fuzz.txt"  # the file a case about one file names (session files, issue 19)


class Live:
    """The real server, the local pages, and one long-lived session to aim cases at."""

    def __init__(self, server: Server, pages: str) -> None:
        self.server = server
        self.pages = pages
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {TOKEN}"
        self.session_id = ""
        self.recorded_id = ""  # a session started with record: true (issue 20)

        self.profiles: dict[str, str] = {}

    def a_profile(self, use: str = "cases") -> str:
        """A profile of ours for ``use`` (a new one if a case deleted the last one): the live
        session persists into its own, so cases may delete or replace theirs."""
        known = self.profiles.get(use)
        if known:
            answer = self.http.get(f"{self.server.base}/profiles/{known}", timeout=30)
            if answer.ok:
                return known
        answer = self.http.post(f"{self.server.base}/profiles", json={"name": use}, timeout=30)
        answer.raise_for_status()
        self.profiles[use] = answer.json()["profile_id"]
        return self.profiles[use]

    def urls(self) -> list[str]:
        return [
            self.pages + "/",
            self.pages + "/second",
            "about:blank",
            "data:text/html,<title>d</title><input id=q><button>go</button>",
        ]

    def live_session(self) -> str:
        """An active session of ours on a local page (a new one if the last one ended)."""
        if self.session_id:
            answer = self.http.get(f"{self.server.base}/session/{self.session_id}", timeout=30)
            if answer.ok and answer.json()["status"] == "active":
                return self.session_id
        # it persists into a profile, so POST /session/<id>/profile/save has work to do
        profile = {"id": self.a_profile("live session"), "persist": True}
        answer = self.http.post(
            f"{self.server.base}/session/start",
            json={"keep_alive": True, "url": self.pages + "/", "profile": profile},
            timeout=30,
        )
        answer.raise_for_status()
        self.session_id = answer.json()["session_id"]
        return self.session_id

    def with_file(self, session_id: str) -> str:
        """A file in the session (session files, issue 19): a case about one names it."""
        listed = self.http.get(f"{self.server.base}/session/{session_id}/files", timeout=30)
        if listed.ok and any(f["name"] == FUZZ_FILE for f in listed.json()["files"]):
            return FUZZ_FILE
        self.http.post(
            f"{self.server.base}/session/{session_id}/files",
            files={"file": (FUZZ_FILE, b"fuzz")},
            timeout=30,
        )
        return FUZZ_FILE

    def recorded_session(self) -> str:
        """An active session of ours that records (a new one if it ended or its recording
        was deleted), for the recording routes."""
        if self.recorded_id:
            answer = self.http.get(f"{self.server.base}/session/{self.recorded_id}", timeout=30)
            if answer.ok and answer.json()["recording"] == "recording":
                return self.recorded_id
            self.http.delete(f"{self.server.base}/session/{self.recorded_id}", timeout=30)
        answer = self.http.post(
            f"{self.server.base}/session/start",
            json={"keep_alive": True, "url": self.pages + "/", "record": True},
            timeout=30,
        )
        answer.raise_for_status()
        self.recorded_id = answer.json()["session_id"]
        return self.recorded_id

    def close_others(self, response: requests.Response) -> None:
        """Close a session a case started, so cases never fill the server."""
        try:
            data = response.json()
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        nested = data.get("session")
        record: dict[str, Any] = nested if isinstance(nested, dict) else data
        sid = record.get("session_id")
        mine = (self.session_id, self.recorded_id)
        if isinstance(sid, str) and sid not in mine and record.get("status") == "active":
            self.http.delete(f"{self.server.base}/session/{sid}", timeout=30)


def _offline(value: Any, urls: list[str]) -> Any:
    """A URL the server would open becomes one of the local pages; others stay (a 400)."""
    if not isinstance(value, str):
        return value
    try:
        check_url(value)
    except ValueError:
        return value
    return RNG.choice(urls)


def aim(case: Any, live: Live) -> None:
    """Keep every case offline, and aim about half of them at a real, active session."""
    urls = live.urls()
    if case.path.endswith("/screenshot"):  # both answers: the PNG and the JSON
        case.headers = {**(case.headers or {}), "Accept": RNG.choice(["image/png", JSON])}
    for container in (case.body, case.query):
        if isinstance(container, dict) and "url" in container:
            container["url"] = _offline(container["url"], urls)
        # per-session browser options (issue 18a): a proxy's host name would be looked up in
        # DNS at start; aim every proxy at a loopback port (nothing listens there)
        proxy = container.get("proxy") if isinstance(container, dict) else None
        if isinstance(proxy, dict) and isinstance(proxy.get("server"), str):
            proxy["server"] = "http://127.0.0.1:1080"
    if RNG.random() < 0.5:
        recorded = case.path.endswith("/recording")
        sid = live.recorded_session() if recorded else live.live_session()
        if isinstance(case.path_parameters, dict) and "session_id" in case.path_parameters:
            case.path_parameters["session_id"] = sid
        if isinstance(case.path_parameters, dict) and "file_name" in case.path_parameters:
            case.path_parameters["file_name"] = live.with_file(sid)
        if isinstance(case.body, dict) and "session_id" in case.body:
            case.body["session_id"] = sid
        if isinstance(case.query, dict) and "session_id" in case.query:
            case.query["session_id"] = sid
        if isinstance(case.path_parameters, dict) and "profile_id" in case.path_parameters:
            case.path_parameters["profile_id"] = live.a_profile()
        profile = case.body.get("profile") if isinstance(case.body, dict) else None
        if isinstance(profile, dict) and "id" in profile:
            profile["id"] = live.a_profile()
        cookies = case.body.get("cookies") if isinstance(case.body, dict) else None
        for cookie in cookies if isinstance(cookies, list) else []:
            if isinstance(cookie, dict):  # a cookie for a local page: url, no domain or path
                cookie.pop("domain", None)
                cookie.pop("path", None)
                cookie.pop("partitionKey", None)
                cookie["url"] = live.pages + "/"


FUZZ_ENV = {
    # pages may reach 127.0.0.0/8 only (every generated URL is rewritten to a local page
    # before it is sent; this is the second guard)
    "SESSIONS_BLOCKED_NETWORKS": "0.0.0.0/0,::/0",
    "SESSIONS_ALLOWED_NETWORKS": "127.0.0.0/8",
    "SESSIONS_NAVIGATION_TIMEOUT_MS": "5000",
    "SESSIONS_ACTION_TIMEOUT_MS": "500",
    "SESSIONS_MAX_WAIT_MS": "300",
    "SESSIONS_SETTLE_MS": "200",
    "SESSIONS_WARM_POOL": "1",
    "SESSIONS_ACCESS_LOG": "false",
}


@pytest.fixture(scope="module")
def live(page_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    store = tmp_path_factory.mktemp("profiles") / "store"
    env = server_env(json.dumps([TOKEN]), **FUZZ_ENV, SESSIONS_PROFILE_STORE=f"file://{store}")
    server = launch(env)
    state = Live(server, page_server)
    try:
        # the document schemathesis runs on is the one this server serves
        served_doc = requests.get(server.base + "/openapi.json", timeout=30).json()
        assert served_doc == FUZZ_DOCUMENT, "the server serves another document than the test's"
        yield state
    finally:
        state.http.close()
        server.stop()


# Built here, not fetched in a fixture: schemathesis's lazy loader (from_fixture) fails on
# pytest 9 (it sets Function._nodeid). The live fixture checks the server serves the same.
FUZZ_DOCUMENT = build_document(load(FUZZ_ENV, environ=False))
schema = schemathesis.openapi.from_dict(copy.deepcopy(FUZZ_DOCUMENT))


def _run(case: Any, live: Live) -> None:
    aim(case, live)
    started = time.monotonic()
    response = case.call(
        base_url=live.server.base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    )
    STATS[f"{case.method} {case.path}"][response.status_code] += 1
    if 200 <= response.status_code < 300:
        media = response.headers.get("content-type", [""])[0]  # schemathesis: lists
        MEDIA[media.split(";")[0]] += 1
    try:
        case.validate_response(response, checks=CHECKS)
    finally:
        live.close_others(response)
    assert time.monotonic() - started < 30


def _fuzz_settings(examples: int, coverage: bool) -> Callable[[Any], Any]:
    """Bounded and repeatable; ``coverage`` adds schemathesis's boundary and method cases."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate] if coverage else [Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


@schema.parametrize()
@_fuzz_settings(EXAMPLES, coverage=False)
def test_schemathesis_against_the_live_server(case: Any, live: Live) -> None:
    _run(case, live)


@pytest.mark.stress
@schema.parametrize()
@_fuzz_settings(STRESS_EXAMPLES, coverage=True)
def test_schemathesis_stress(case: Any, live: Live) -> None:
    _run(case, live)


def _summary() -> None:
    """Print the figures (for the notes); fail if an operation never answered 2xx."""
    if not STATS:
        pytest.skip("the schemathesis test did not run")
    total = sum(sum(c.values()) for c in STATS.values())
    documented = {f"{m.upper()} {p}" for p, item in FUZZ_DOCUMENT["paths"].items() for m in item}
    lines = [f"{op}: {dict(sorted(c.items()))}" for op, c in sorted(STATS.items())]
    other = sum(sum(c.values()) for op, c in STATS.items() if op not in documented)
    print(
        f"\nschemathesis: {total} requests ({other} with an undocumented method)\n"
        + "\n".join(line for line in lines if line.split(":")[0] in documented)
        + f"\n2xx media types: {dict(MEDIA)}"
    )
    no_success = [op for op in documented if not any(200 <= s < 300 for s in STATS[op])]
    assert not no_success, lines


def test_the_fuzz_reached_every_operation_with_success() -> None:
    """Not only 400s: each operation answered 2xx at least once."""
    _summary()


@pytest.mark.stress
def test_the_stress_fuzz_reached_every_operation_with_success() -> None:
    _summary()
