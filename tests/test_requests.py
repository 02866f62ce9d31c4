"""Bounded requests: body size, JSON depth, error size, and ids that cannot exist."""

from __future__ import annotations

import json

from flask.testing import FlaskClient

from .conftest import AUTH_A, AppFactory

ROUTES = ["/session/start", "/env/observe", "/env/step", "/env/scrape", "/session/close"]


def post_raw(client: FlaskClient, path: str, data: bytes) -> tuple[int, dict[str, object], int]:
    r = client.post(path, data=data, headers={**AUTH_A, "Content-Type": "application/json"})
    body = r.get_json()
    assert isinstance(body, dict), r.data[:200]
    return r.status_code, body, len(r.data)


def test_a_body_over_the_limit_is_413_json(make_app: AppFactory) -> None:
    client = make_app(SESSIONS_MAX_CONTENT_LENGTH=1000).test_client()
    status, body, _ = post_raw(client, "/session/start", b'{"a": "' + b"x" * 2000 + b'"}')
    assert status == 413 and "SESSIONS_MAX_CONTENT_LENGTH" in str(body["error"])


def test_the_default_limit_is_one_mib(make_app: AppFactory) -> None:
    client = make_app().test_client()
    status, _, _ = post_raw(client, "/session/start", b" " * (1024 * 1024 + 1))
    assert status == 413


def test_deep_json_is_400_on_every_route(make_app: AppFactory) -> None:
    client = make_app().test_client()
    for route in ROUTES:
        for depth in (1000, 100_000):
            nested = b'{"a": ' + b"[" * depth + b"]" * depth + b"}"
            status, body, _ = post_raw(client, route, nested)
            assert status == 400 and "nested" in str(body["error"]), (route, depth, body)
        status, body, _ = post_raw(client, route, b'{"url": ' + b"[" * 40 + b"]" * 40 + b"}")
        assert status == 400 and "SESSIONS_MAX_JSON_DEPTH" in str(body["error"]), body


def test_many_unknown_keys_get_a_short_error(make_app: AppFactory) -> None:
    client = make_app().test_client()
    keys = {f"k{i}": 1 for i in range(60_000)}
    data = json.dumps(keys).encode()
    assert len(data) < 1024 * 1024
    for route in ROUTES:
        status, body, size = post_raw(
            client,
            route,
            data if route != "/env/step" else json.dumps({"type": "click", **keys}).encode(),
        )
        assert status == 400, body
        assert size < 64 * 1024
        assert isinstance(body["fields"], list) and len(body["fields"]) <= 20
        assert body["unknown_fields_omitted"] == 60_000 - len(body["fields"])


def test_ids_that_cannot_exist_are_404_on_every_route(make_app: AppFactory) -> None:
    client = make_app().test_client()
    for bad in ("a.b", "x" * 65, "%E2%98%83", "a b", "..", "a%00b"):
        for method, path in (
            ("GET", f"/session/{bad}"),
            ("DELETE", f"/session/{bad}"),
            ("GET", f"/session/{bad}/screenshot"),
        ):
            r = client.open(path, method=method, headers=AUTH_A)
            assert r.status_code == 404, (method, path, r.status_code, r.data[:200])
            assert "error" in (r.get_json() or {})
    for method in ("GET", "DELETE", "HEAD", "OPTIONS"):  # an empty id: no redirect, a 404
        r = client.open("/session//screenshot", method=method, headers=AUTH_A)
        assert r.status_code == 404, (method, r.status_code, r.data[:200])
