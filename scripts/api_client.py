"""A small HTTP client of flask_sessions for the scripts (agent demo, benchmark)."""

from __future__ import annotations

from typing import Any

import requests

Json = dict[str, Any]


class ApiError(Exception):
    """An unexpected answer: the message says what was asked and what came back."""


def short(value: Any, limit: int = 500) -> str:
    """``value`` as text, cut to ``limit`` characters for an error message."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"


class ApiClient:
    """One keep-alive HTTP session with the bearer token; anything but 200 + JSON fails."""

    def __init__(self, base: str, token: str, timeout: float = 90.0) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body: Json | None = None) -> Json:
        try:
            resp = self.http.request(method, self.base + path, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ApiError(f"{method} {path} {body}: no answer: {exc}") from None
        try:
            data = resp.json()
        except ValueError:
            raise ApiError(
                f"{method} {path} {body}: HTTP {resp.status_code}, not JSON: {short(resp.text)}"
            ) from None
        if resp.status_code != 200 or not isinstance(data, dict):
            raise ApiError(f"{method} {path} {body}: HTTP {resp.status_code}: {short(data)}")
        return data

    def post(self, path: str, body: Json) -> Json:
        return self.call("POST", path, body)

    def close(self) -> None:
        self.http.close()
