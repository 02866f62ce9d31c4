"""ISO 8601 text for datetimes, as the API returns them.

Durations are pydantic's own ISO 8601 serialization (``schemas.Duration``), which writes
the same text this module used to (``PT2M11.2S``) once rounded to the millisecond.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso_datetime(value: datetime) -> str:
    """``2026-11-29T02:43:47.123+00:00``: UTC, millisecond precision, explicit offset."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: the API only shows times with a time zone")
    return value.astimezone(UTC).isoformat(timespec="milliseconds")
