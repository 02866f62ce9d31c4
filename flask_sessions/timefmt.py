"""ISO 8601 text for datetimes and durations, as the API returns them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def iso_datetime(value: datetime) -> str:
    """``2026-11-29T02:43:47.123+00:00``: UTC, millisecond precision, explicit offset."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: the API only shows times with a time zone")
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def iso_duration(value: timedelta) -> str:
    """ISO 8601 duration, e.g. ``PT0S``, ``PT1M5.25S``, ``P1DT2H``; negatives clamp to 0."""
    total_ms = max(0, round(value.total_seconds() * 1000))
    days, rem_ms = divmod(total_ms, 86_400_000)
    hours, rem_ms = divmod(rem_ms, 3_600_000)
    minutes, rem_ms = divmod(rem_ms, 60_000)
    seconds, millis = divmod(rem_ms, 1000)
    out = "P" + (f"{days}D" if days else "")
    time = ""
    if hours:
        time += f"{hours}H"
    if minutes:
        time += f"{minutes}M"
    if seconds or millis:
        time += f"{seconds}.{millis:03d}".rstrip("0").rstrip(".") + "S"
    if time:
        out += "T" + time
    elif not days:
        out += "T0S"
    return out
