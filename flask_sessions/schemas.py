"""Request and response bodies (pydantic v2), and turning their errors into plain words.

Every request body is one of these models with ``extra="forbid"``: a misspelt field is a
400 naming it, not a silently ignored option.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from .errors import InvalidInput

SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class Status(StrEnum):
    active = "active"
    closed = "closed"
    error = "error"
    timed_out = "timed_out"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class StartRequest(_Body):
    """Body (or query string) of ``POST /session/start``."""

    session_id: str | None = Field(default=None, pattern=SESSION_ID_PATTERN)
    keep_alive: bool = False
    session_timeout_minutes: int | None = None
    screenshot: bool | None = None

    @field_validator("session_timeout_minutes", mode="before")
    @classmethod
    def _no_bool_minutes(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a whole number of minutes, not true/false")
        return value

    @field_validator("session_timeout_minutes")
    @classmethod
    def _timeout_in_range(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None:
            return None
        cap = (info.context or {}).get("max_timeout_minutes", 29)
        if not 0 < value < 30:
            raise ValueError(f"must be more than 0 and less than 30 minutes (got {value})")
        if value > cap:
            raise ValueError(f"must be at most this server's cap of {cap} minutes (got {value})")
        return value


class CloseRequest(_Body):
    """Body (or query string) of ``POST /session/close``."""

    session_id: str = Field(pattern=SESSION_ID_PATTERN)


class ListQuery(_Body):
    """Query string of ``GET /sessions``."""

    status: Status | None = None


class SessionResponse(BaseModel):
    """One session as the API shows it."""

    session_id: str
    created_at: str
    last_accessed_at: str
    closed_at: str | None
    duration: str
    status: Status
    timeout_minutes: int
    keep_alive: bool
    error: str | None
    screenshot: str | None = None


ALIASES = {"session_timeout": "session_timeout_minutes"}

_HINTS = {
    "session_id": "send the session_id string returned by POST /session/start, or null",
    "keep_alive": "send true or false",
    "session_timeout_minutes": "send a whole number of minutes from 1 to 29",
    "screenshot": "send true, false or null",
    "status": "send one of: active, closed, error, timed_out",
}

M = TypeVar("M", bound=BaseModel)


def merge_sources(query: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """Query string and body as one dict: aliases resolved, the body winning ties."""
    merged: dict[str, Any] = {}
    for source_name, source in (("query string", query), ("body", body)):
        resolved: dict[str, Any] = {}
        given_as: dict[str, str] = {}
        for key, value in source.items():
            name = ALIASES.get(key, key)
            if name in resolved and resolved[name] != value:
                alias = key if key != name else given_as[name]
                raise InvalidInput(
                    f"{alias}: is an alias of {name} and both are set in the {source_name} "
                    "with different values; send only one of them",
                    fields=[{"field": alias, "message": f"conflicts with {name}"}],
                )
            resolved[name] = value
            given_as[name] = key
        merged.update(resolved)
    return merged


def parse(model: type[M], data: Mapping[str, Any], context: dict[str, Any] | None = None) -> M:
    """Validate ``data`` into ``model``; a failure is an ``InvalidInput`` naming each field."""
    try:
        return model.model_validate(dict(data), context=context)
    except ValidationError as exc:
        raise invalid_input(exc, model) from None


def invalid_input(exc: ValidationError, model: type[BaseModel]) -> InvalidInput:
    fields: list[dict[str, Any]] = []
    for err in exc.errors(include_url=False, include_context=False):
        name = ".".join(str(part) for part in err["loc"]) or "body"
        if err["type"] == "extra_forbidden":
            accepted = ", ".join(sorted({*model.model_fields, *_aliases_for(model)}))
            message = f"unknown field; accepted fields are: {accepted}"
        elif err["type"] == "missing":
            message = "is required"
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "string_pattern_mismatch":
                message = "must be 1 to 64 letters, digits, '-' or '_'"
            elif err["type"] == "enum":
                message = "is not a known value"
        hint = _HINTS.get(name)
        entry: dict[str, Any] = {"field": name, "message": message}
        if hint and err["type"] != "extra_forbidden":
            entry["fix"] = hint
        if err["type"] != "missing":
            entry["got"] = _jsonable(err.get("input"))
        fields.append(entry)
    summary = "; ".join(
        f"{f['field']}: {f['message']}" + (f" ({f['fix']})" if "fix" in f else "") for f in fields
    )
    return InvalidInput(f"invalid request: {summary}", fields=fields)


def _aliases_for(model: type[BaseModel]) -> list[str]:
    return [alias for alias, name in ALIASES.items() if name in model.model_fields]


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value if not isinstance(value, str) or len(value) <= 200 else value[:200] + "…"
    return repr(value)[:200]
