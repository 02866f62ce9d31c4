"""Unit tests: no browser, no sleeping. Time comes from a ManualClock."""

from __future__ import annotations

import asyncio
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flask_sessions import InvalidInput, ManualClock, StartRequest, Status
from flask_sessions.config import Settings
from flask_sessions.errors import BrowserUnavailable
from flask_sessions.front.auth import TokenRegistry
from flask_sessions.host.browser import find_browser, launch_args
from flask_sessions.host.live import LiveSession
from flask_sessions.host.manager import SessionManager, SessionRecord
from flask_sessions.host.pool import WarmPool
from flask_sessions.host.reaper import DeadlineQueue, EndedQueue, expiry_reason
from flask_sessions.host.runtime import BrowserRuntime
from flask_sessions.page.state import PageState
from flask_sessions.schemas import ListQuery, SessionResponse, merge_sources, parse
from flask_sessions.timefmt import iso_datetime

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def record(**kw: Any) -> SessionRecord:
    base: dict[str, Any] = {
        "session_id": "s1",
        "principal": "alice",
        "created_at": T0,
        "last_accessed_at": T0,
        "timeout_minutes": 5,
        "keep_alive": False,
    }
    base.update(kw)
    return SessionRecord(**base)


# ----------------------------------------------------------------- time text


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "PT0S"),
        (timedelta(milliseconds=250), "PT0.25S"),
        (timedelta(minutes=1, seconds=5, milliseconds=123), "PT1M5.123S"),
        (timedelta(hours=2), "PT2H"),
        (timedelta(days=1, hours=2, seconds=3), "P1DT2H3S"),
        (timedelta(days=2), "P2D"),
        (timedelta(seconds=-3), "PT0S"),
        (timedelta(microseconds=1500), "PT0.002S"),
    ],
)
def test_duration_is_iso_8601_to_the_millisecond(delta: timedelta, text: str) -> None:
    rec = record()
    rec.closed_at = rec.created_at + delta
    assert rec.to_response(rec.created_at).model_dump(mode="json")["duration"] == text
    assert SessionResponse.model_fields["duration"].annotation is timedelta


def test_iso_datetime_has_zone_and_rejects_naive() -> None:
    text = iso_datetime(T0 + timedelta(microseconds=123456))
    assert text == "2026-11-29T12:00:00.123+00:00"
    assert datetime.fromisoformat(text).tzinfo is not None
    with pytest.raises(ValueError):
        iso_datetime(datetime(2026, 1, 1))


def test_manual_clock_moves_only_forward() -> None:
    clock = ManualClock(T0)
    assert clock() == T0
    assert clock.advance(minutes=5) == T0 + timedelta(minutes=5)
    with pytest.raises(ValueError):
        clock.advance(seconds=-1)
    with pytest.raises(ValueError):
        ManualClock(datetime(2026, 1, 1))


# -------------------------------------------------------------- expiry rules

LIFETIME = timedelta(minutes=60)


def test_idle_timeout_is_strictly_after_deadline() -> None:
    rec = record()
    assert expiry_reason(rec, T0 + timedelta(minutes=5), LIFETIME) is None
    reason = expiry_reason(rec, T0 + timedelta(minutes=5, microseconds=1), LIFETIME)
    assert reason is not None and "idle timeout" in reason


def test_access_moves_the_deadline() -> None:
    rec = record(last_accessed_at=T0 + timedelta(minutes=4))
    assert expiry_reason(rec, T0 + timedelta(minutes=8), LIFETIME) is None
    assert expiry_reason(rec, T0 + timedelta(minutes=9, seconds=1), LIFETIME) is not None


def test_keep_alive_ignores_idle_but_not_lifetime() -> None:
    rec = record(keep_alive=True)
    assert expiry_reason(rec, T0 + timedelta(minutes=59), LIFETIME) is None
    reason = expiry_reason(rec, T0 + timedelta(minutes=60, seconds=1), LIFETIME)
    assert reason is not None and "lifetime cap" in reason


def test_lifetime_cap_applies_to_recently_touched_sessions() -> None:
    rec = record(last_accessed_at=T0 + timedelta(minutes=59))
    assert expiry_reason(rec, T0 + timedelta(minutes=61), LIFETIME) is not None


class FakeContext:
    """A stand-in BrowserContext for reaper unit tests (integration tests use Chromium)."""

    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        self.closed = True


class FakePage:
    def on(self, event: str, handler: Any) -> None:
        pass

    def is_closed(self) -> bool:
        return False


def fake_live() -> tuple[LiveSession, FakeContext]:
    context = FakeContext()
    state = PageState(context)  # type: ignore[arg-type]
    state.adopt(FakePage())  # type: ignore[arg-type]
    return LiveSession(context, state), context  # type: ignore[arg-type]


def test_reap_tick_times_out_closes_and_purges() -> None:
    clock = ManualClock(T0)
    settings = Settings(max_lifetime_minutes=60, retention_minutes=10)
    manager = SessionManager(settings, BrowserRuntime(), clock)
    contexts = {}
    for sid, keep in (("idle", False), ("kept", True)):
        live, contexts[sid] = fake_live()
        manager._register(record(session_id=sid, keep_alive=keep), live)

    clock.advance(minutes=5, seconds=1)
    asyncio.run(manager.reap())
    idle, kept = manager._records["idle"], manager._records["kept"]
    assert idle.status is Status.timed_out and contexts["idle"].closed
    assert idle.closed_at == clock() and idle.error and "idle timeout" in idle.error
    assert kept.status is Status.active and not contexts["kept"].closed
    assert manager.active_count == 1

    clock.advance(minutes=10, seconds=1)  # retention passes for "idle"
    asyncio.run(manager.reap())
    assert "idle" not in manager._records
    assert list(manager._by_principal["alice"]) == ["kept"]

    clock.advance(minutes=45)  # past the 60-minute lifetime cap
    asyncio.run(manager.reap())
    assert manager._records["kept"].status is Status.timed_out and contexts["kept"].closed
    assert kept.error and "lifetime cap" in kept.error


def test_retry_after_counts_down_to_the_soonest_expiry() -> None:
    clock = ManualClock(T0)
    manager = SessionManager(Settings(reaper_interval_seconds=1), BrowserRuntime(), clock)
    manager._register(record(session_id="a"), fake_live()[0])
    clock.advance(minutes=3)
    assert manager._retry_after(clock()) == 121  # 2 minutes left + one reaper tick
    clock.advance(minutes=10)
    assert manager._retry_after(clock()) == 1


# ------------------------------------------------------------------ schemas


def start(data: dict[str, Any], cap: int = 29) -> StartRequest:
    return parse(StartRequest, data, {"max_timeout_minutes": cap})


def test_start_defaults() -> None:
    req = start({})
    assert req.session_id is None and req.keep_alive is False
    assert req.session_timeout_minutes is None and req.screenshot is None


def test_query_strings_are_coerced() -> None:
    req = start({"keep_alive": "true", "session_timeout_minutes": "7", "screenshot": "1"})
    assert req.keep_alive is True and req.session_timeout_minutes == 7 and req.screenshot


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"session_timeout_minutes": 0}, "session_timeout_minutes"),
        ({"session_timeout_minutes": 30}, "session_timeout_minutes"),
        ({"session_timeout_minutes": -1}, "session_timeout_minutes"),
        ({"session_timeout_minutes": 2.5}, "session_timeout_minutes"),
        ({"session_timeout_minutes": "ten"}, "session_timeout_minutes"),
        ({"session_timeout_minutes": True}, "session_timeout_minutes"),
        ({"keep_alive": "maybe"}, "keep_alive"),
        ({"screenshot": [1]}, "screenshot"),
        ({"session_id": "has spaces!"}, "session_id"),
        ({"session_id": 42}, "session_id"),
        ({"sesion_timeout": 5}, "sesion_timeout"),
    ],
)
def test_start_rejects(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        start(data)
    assert err.value.message.startswith("invalid request: " + field)
    fields = err.value.extra["fields"]
    assert [f["field"] for f in fields] == [field]


def test_timeout_above_app_cap() -> None:
    assert start({"session_timeout_minutes": 10}, cap=10).session_timeout_minutes == 10
    with pytest.raises(InvalidInput) as err:
        start({"session_timeout_minutes": 11}, cap=10)
    assert "cap of 10 minutes" in err.value.message


def test_unknown_field_lists_accepted_ones() -> None:
    with pytest.raises(InvalidInput) as err:
        start({"foo": 1})
    assert "session_timeout" in err.value.message and "keep_alive" in err.value.message


def test_alias_and_body_wins() -> None:
    merged = merge_sources(
        {"session_timeout": "3", "screenshot": "true"}, {"session_timeout_minutes": 8}
    )
    assert merged == {"session_timeout_minutes": 8, "screenshot": "true"}
    with pytest.raises(InvalidInput) as err:
        merge_sources({}, {"session_timeout": 3, "session_timeout_minutes": 4})
    assert err.value.message.startswith("session_timeout: is an alias of session_timeout_minutes")


def test_list_status_filter() -> None:
    assert parse(ListQuery, {"status": "timed_out"}).status is Status.timed_out
    with pytest.raises(InvalidInput):
        parse(ListQuery, {"status": "sleeping"})


# ------------------------------------------------------------------- config


def test_token_registry() -> None:
    registry = TokenRegistry({"secret": "alice"})
    assert registry.principal("secret") == "alice"
    assert registry.principal("secreT") is None
    assert len(registry) == 1


# ------------------------------------------------------------------ browser


def test_browser_path_must_be_executable(tmp_path: Path) -> None:
    with pytest.raises(BrowserUnavailable) as err:
        find_browser(str(tmp_path / "missing"))
    assert "SESSIONS_BROWSER_PATH" in err.value.message and "apt-get" in err.value.message
    fake = tmp_path / "chrome"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    choice = find_browser(str(fake))
    assert choice.executable == str(fake) and choice.source == "SESSIONS_BROWSER_PATH"


def test_browser_search_order_and_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SESSIONS_BROWSER_PATH", raising=False)
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path / "pw"))
    shell = tmp_path / "pw" / "chromium_headless_shell-1200" / "chrome-linux"
    shell.mkdir(parents=True)
    binary = shell / "chrome-headless-shell"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert find_browser().executable == str(binary)  # Playwright's install wins

    binary.unlink()
    monkeypatch.setattr(
        "flask_sessions.host.browser._SYSTEM_CANDIDATES", (("no-such-chrome", "/x"),)
    )
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrowserUnavailable) as err:
        find_browser()
    assert "no Chromium found" in err.value.message and "no-such-chrome" in err.value.message


def test_launch_args() -> None:
    args = launch_args(("--foo", "--no-first-run"))
    assert args.count("--no-first-run") == 1 and args[-1] == "--foo"
    assert "--disable-background-networking" in args
    assert ("--no-sandbox" in args) == (os.geteuid() == 0)


def test_touch_moves_the_deadline_in_the_heap() -> None:
    clock = ManualClock(T0)
    manager = SessionManager(Settings(), BrowserRuntime(), clock)
    live, context = fake_live()
    rec = record()
    manager._register(rec, live)
    clock.advance(minutes=4)
    manager._touch(rec, clock())
    clock.advance(minutes=2)  # 6 min after start, 2 after the touch
    asyncio.run(manager.reap())
    assert rec.status is Status.active and not context.closed
    clock.advance(minutes=3, seconds=1)
    asyncio.run(manager.reap())
    assert manager._records["s1"].status is Status.timed_out and context.closed


def test_deadline_queue_pops_only_what_is_due() -> None:
    queue = DeadlineQueue()
    for minutes, sid in ((5, "b"), (1, "a"), (9, "c")):
        queue.push(T0 + timedelta(minutes=minutes), sid)
    assert queue.earliest() == T0 + timedelta(minutes=1)
    assert queue.due(T0 + timedelta(minutes=1)) == []  # strictly after the deadline
    assert queue.due(T0 + timedelta(minutes=6)) == ["a", "b"]
    assert len(queue) == 1


def test_ended_queue_purges_in_order() -> None:
    queue = EndedQueue()
    queue.push(T0, "a")
    queue.push(T0 + timedelta(minutes=1), "b")
    retention = timedelta(minutes=10)
    assert queue.due(T0 + timedelta(minutes=10), retention) == []
    assert queue.due(T0 + timedelta(minutes=10, seconds=1), retention) == ["a"]
    assert queue.due(T0 + timedelta(minutes=30), retention) == ["b"]


def test_warm_pool_fills_within_room_and_empties_on_low_memory() -> None:
    made: list[FakeContext] = []
    room = {"n": 3}
    memory = {"mb": 4096.0}

    async def make() -> LiveSession:
        live, context = fake_live()
        made.append(context)
        return live

    async def scenario() -> None:
        pool = WarmPool(5, make, lambda: room["n"] - len(pool), 512, memory_mb=lambda: memory["mb"])
        pool.refill_soon()
        await asyncio.sleep(0.01)
        assert len(pool) == 3  # capacity leaves room for 3, not the 5 asked
        first = pool.take()
        assert first is not None and len(made) == 3
        await asyncio.sleep(0.01)
        assert len(pool) == 3 and len(made) == 4  # refilled; the taken one is never reused
        memory["mb"] = 100.0
        second = pool.take()  # handed out; the refill then finds memory low
        await asyncio.sleep(0.01)
        assert second is not None and len(pool) == 0
        assert [c.closed for c in made] == [False, False, True, True]
        await pool.close()
        pool.refill_soon()
        assert len(pool) == 0

    asyncio.run(scenario())


def test_find_browser_flag(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask_sessions.__main__ import main

    monkeypatch.setenv("SESSIONS_BROWSER_PATH", "/nonexistent/chrome")
    assert main(["--find-browser"]) == 1
    assert "/nonexistent/chrome" in capsys.readouterr().err
    monkeypatch.delenv("SESSIONS_BROWSER_PATH")
    assert main(["--find-browser"]) == 0  # the suite runs with a Chromium installed
    assert capsys.readouterr().out.strip()
