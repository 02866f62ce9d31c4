"""Bodies and answers of the cookie, storage-state and profile routes (issue 18).

A session's state is Playwright's storage state: cookies (HttpOnly ones included), and per
origin its localStorage and IndexedDB. The shapes here are Playwright's own
(``BrowserContext.storage_state(indexed_db=True)`` and ``new_context(storage_state=…)``), so a
state exported here loads in Playwright and one Playwright saved loads here. sessionStorage,
the HTTP cache, OPFS and WebAuthn credentials are not kept (see the README).

This module imports nothing of ``schemas.py``; ``schemas.py`` takes :class:`StorageState`,
:class:`ProfileRef` and :class:`SessionProfile` from here.
"""

from __future__ import annotations

import json
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

PROFILE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

MAX_COOKIES = 5000  # cookies in one state (Chromium keeps at most 3300)
MAX_ADD_COOKIES = 1000  # cookies in one POST /session/<id>/cookies
MAX_ORIGINS = 1000
MAX_ITEMS = 10_000  # localStorage items of one origin; databases, stores, records
MAX_COOKIE_BYTES = 4096  # name + value, as browsers limit a cookie

SameSite = Literal["Strict", "Lax", "None"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL, e.g. https://example.org/")
    return value


class Cookie(_Strict):
    """A cookie to set, in Playwright's shape: ``url``, or ``domain`` and ``path``.

    ``expires`` is in Unix seconds (-1 or absent: a session cookie, which is kept all the
    same); ``domain`` with a leading dot covers the subdomains.
    """

    name: str = Field(min_length=1, max_length=MAX_COOKIE_BYTES)
    value: str = Field(max_length=MAX_COOKIE_BYTES)
    domain: str | None = Field(default=None, min_length=1, max_length=255)
    # validated with the domain (below): the rule names this field when it is missing
    path: str | None = Field(default=None, min_length=1, max_length=1024, validate_default=True)
    url: str | None = Field(default=None, max_length=2048, validate_default=True)
    expires: float | None = Field(default=None, ge=-1)
    httpOnly: bool | None = None
    secure: bool | None = None
    sameSite: SameSite | None = None
    partitionKey: str | None = Field(default=None, max_length=2048)

    @field_validator("name", "value")
    @classmethod
    def _no_separators(cls, value: str, info: ValidationInfo) -> str:
        if any(c in value for c in ";\r\n\0"):
            raise ValueError("must not contain ';', CR, LF or NUL")
        if info.field_name == "name" and any(c in value for c in "= \t"):
            raise ValueError("must not contain '=', spaces or tabs")
        return value

    @field_validator("path")
    @classmethod
    def _path_with_domain(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("must start with '/', e.g. '/'")
        if value is None and info.data.get("domain") is not None:
            raise ValueError("is required with domain: send '/' for the whole site")
        return value

    @field_validator("url")
    @classmethod
    def _url_or_domain(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            if info.data.get("domain") is not None or info.data.get("path") is not None:
                raise ValueError("send url, or domain and path, not both")
            return _http_url(value)
        if "domain" in info.data and info.data["domain"] is None:
            raise ValueError(
                "a cookie needs url, or domain and path: send url (e.g. https://example.org/) "
                "or both domain ('example.org') and path ('/')"
            )
        return value

    @field_validator("partitionKey")
    @classmethod
    def _partition(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @model_validator(mode="after")
    def _size(self) -> Cookie:
        if len(self.name.encode()) + len(self.value.encode()) > MAX_COOKIE_BYTES:
            raise ValueError(f"name and value together must be at most {MAX_COOKIE_BYTES} bytes")
        return self


class CookieInfo(BaseModel):
    """A cookie of the session, as Chromium has it (``expires`` -1: a session cookie)."""

    name: str
    value: str
    domain: str
    path: str
    expires: float
    httpOnly: bool
    secure: bool
    sameSite: SameSite
    partitionKey: str | None = None


class LocalStorageItem(_Strict):
    name: str = Field(max_length=100_000)
    value: str


class IndexedDBRecord(_Strict):
    """One record; Playwright writes values it cannot keep as JSON in ``*Encoded``."""

    key: Any = None
    keyEncoded: Any = None
    value: Any = None
    valueEncoded: Any = None


class IndexedDBIndex(_Strict):
    name: str
    keyPath: str | None = None
    keyPathArray: list[str] | None = None
    multiEntry: bool
    unique: bool


class IndexedDBStore(_Strict):
    name: str
    autoIncrement: bool
    keyPath: str | None = None
    keyPathArray: list[str] | None = None
    records: list[IndexedDBRecord] = Field(max_length=MAX_ITEMS)
    indexes: list[IndexedDBIndex] = Field(default_factory=list, max_length=1000)


class IndexedDBDatabase(_Strict):
    name: str
    version: int
    stores: list[IndexedDBStore] = Field(max_length=1000)


class OriginState(_Strict):
    """One origin's storage: ``origin`` is scheme://host[:port], as Playwright writes it."""

    origin: str = Field(max_length=2048)
    localStorage: list[LocalStorageItem] = Field(default_factory=list, max_length=MAX_ITEMS)
    indexedDB: list[IndexedDBDatabase] | None = Field(default=None, max_length=1000)

    @field_validator("origin")
    @classmethod
    def _origin(cls, value: str) -> str:
        _http_url(value)
        parts = urlsplit(value)
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise ValueError("must be an origin: scheme://host[:port], e.g. https://example.org")
        return value


class StorageState(_Strict):
    """Playwright's storage state: cookies, and localStorage and IndexedDB per origin.

    The same JSON that ``context.storage_state(indexed_db=True)`` returns and
    ``browser.new_context(storage_state=…)`` takes.
    """

    cookies: list[Cookie] = Field(default_factory=list, max_length=MAX_COOKIES)
    origins: list[OriginState] = Field(default_factory=list, max_length=MAX_ORIGINS)

    def to_playwright(self) -> dict[str, Any]:
        """The state as Playwright takes it (only what was given: nulls it did not send are
        left out)."""
        return self.model_dump(mode="json", exclude_unset=True)

    def domains(self) -> list[str]:
        return state_domains(self.to_playwright())


def state_bytes(state: dict[str, Any]) -> bytes:
    """The compact JSON of a state: what size bounds measure and what a profile stores."""
    return json.dumps(state, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def kept_state(raw: dict[str, Any]) -> dict[str, Any]:
    """What of Playwright's storage state is kept: cookies (their known fields), and per
    origin its localStorage and IndexedDB (not OPFS or credentials, should they be there)."""
    keys = set(CookieInfo.model_fields)
    cookies = [{k: v for k, v in c.items() if k in keys} for c in raw.get("cookies") or []]
    origins = []
    for origin in raw.get("origins") or []:
        kept: dict[str, Any] = {
            "origin": origin["origin"],
            "localStorage": origin.get("localStorage") or [],
        }
        if origin.get("indexedDB"):
            kept["indexedDB"] = origin["indexedDB"]
        origins.append(kept)
    return {"cookies": cookies, "origins": origins}


def state_domains(state: dict[str, Any]) -> list[str]:
    """The cookie domains and the origins a state holds, sorted, without repeats."""
    found = {
        str(c.get("domain") or urlsplit(str(c.get("url", ""))).hostname or "")
        for c in state.get("cookies") or []
    }
    found |= {str(o.get("origin", "")) for o in state.get("origins") or []}
    return sorted(d for d in found if d)


class ProfileRef(_Strict):
    """``profile`` on start: load profile ``id``; with ``persist``, save the session's state
    back into it when the session ends normally (one persisting session at a time)."""

    id: str = Field(pattern=PROFILE_ID_PATTERN)
    persist: bool = False


class SessionProfile(BaseModel):
    """The profile a session was started with, and what became of its state.

    ``saved_at``: the last time this session wrote the profile; ``not_saved``: why the last
    write-back did not happen (the profile then keeps its last good state).
    """

    profile_id: str
    persist: bool
    saved_at: str | None = None
    not_saved: str | None = None


class CookiesQuery(_Strict):
    """Query string of ``GET /session/<id>/cookies``: only the cookies ``url`` would send."""

    url: str | None = Field(default=None, max_length=2048)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)


class AddCookiesRequest(_Strict):
    """Body of ``POST /session/<id>/cookies``."""

    cookies: list[Cookie] = Field(min_length=1, max_length=MAX_ADD_COOKIES)


class DeleteCookiesQuery(_Strict):
    """Query string of ``DELETE /session/<id>/cookies``: every given filter must match
    (none: every cookie of the session)."""

    name: str | None = Field(default=None, min_length=1, max_length=MAX_COOKIE_BYTES)
    domain: str | None = Field(default=None, min_length=1, max_length=255)
    path: str | None = Field(default=None, min_length=1, max_length=1024)


class CookieList(BaseModel):
    """``GET /session/<id>/cookies``."""

    session_id: str
    cookies: list[CookieInfo]


class CookiesChanged(BaseModel):
    """``POST`` and ``DELETE /session/<id>/cookies``: how many were added or deleted, and how
    many cookies the session has now."""

    session_id: str
    added: int = 0
    deleted: int = 0
    cookies: int


class ProfileCreate(_Strict):
    """Body of ``POST /profiles``."""

    name: str = Field(min_length=1, max_length=200)


class ProfileInfo(BaseModel):
    """A profile's metadata (never a cookie value): ``domains`` are its cookie domains and
    origins; ``in_use_by`` the session holding it with ``persist: true``, if one does."""

    profile_id: str
    name: str
    created_at: str
    updated_at: str
    size_bytes: int
    domains: list[str]
    in_use_by: str | None = None


class ProfileList(BaseModel):
    """``GET /profiles``: the caller's profiles, oldest first."""

    profiles: list[ProfileInfo]


# The fix shown for each field of these bodies in a 400 (merged into schemas._HINTS).
HINTS = {
    "cookies": "send a list of cookies, each with name, value and url (or domain and path)",
    "storage_state": "send a Playwright storage state: {cookies: [...], origins: [...]}",
    "profile": 'send {"id": "<profile_id from POST /profiles>", "persist": true or false}',
    "domain": "send a cookie domain, e.g. example.org",
    "path": "send a path starting with '/'",
}
