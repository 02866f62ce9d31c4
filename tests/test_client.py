"""``flask_sessions.client`` against the real server (``python -m flask_sessions`` on a free
127.0.0.1 port, real Chromium), under a URL prefix; pages from ``page_server`` on 127.0.0.1.

Only the retry policy's transport failures (a read timeout, a reset) are simulated, with
httpx's ``MockTransport``: a real server cannot be made to fail that way on cue.
"""

from __future__ import annotations

import asyncio
import base64
import json
import typing
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, cast

import httpx
import pytest
from playwright.async_api import async_playwright
from pydantic import BaseModel

from flask_sessions import schemas
from flask_sessions.client import (
    AsyncSessionsClient,
    CapacityReached,
    InvalidRequest,
    NotFound,
    ObserveArgs,
    PageFailed,
    PageNotResponding,
    PayloadTooLarge,
    Retries,
    ScrapeArgs,
    ScreenshotArgs,
    SessionArgs,
    SessionEnded,
    SessionNotFound,
    SessionsClient,
    SessionsError,
    StaleAction,
    StartArgs,
    StepArgs,
    TransportError,
    Unauthorized,
    error_from,
    parse_retry_after,
)
from flask_sessions.testing import ServerProcess, free_port, serve, server_env

TOKEN = "client-token-alice"
OTHER = "client-token-bob"
PREFIX = "/browser"
MAX_SESSIONS = 3
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    env = server_env(
        json.dumps([TOKEN, OTHER]),
        SESSIONS_URL_PREFIX=PREFIX,
        SESSIONS_MAX_SESSIONS=str(MAX_SESSIONS),
        SESSIONS_MAX_TIMEOUT_MINUTES="10",
        SESSIONS_WARM_POOL="1",
    )
    with serve(env, ready_path=PREFIX + "/healthz") as srv:
        yield srv


@pytest.fixture
def base(server: ServerProcess) -> Iterator[str]:
    """The prefixed base URL; every session a test left open is closed after it."""
    yield server.base + PREFIX
    for token in (TOKEN, OTHER):
        with SessionsClient(server.base + PREFIX, token) as client:
            for record in client.list("active"):
                client.close(record.session_id)


@pytest.fixture
def client(base: str) -> Iterator[SessionsClient]:
    with SessionsClient(base, TOKEN) as client:
        yield client


class Sleeps:
    """An injected sleep: records what it was asked, sleeps nothing, then runs ``then``."""

    def __init__(self, then: typing.Callable[[], None] | None = None) -> None:
        self.calls: list[float] = []
        self.then = then

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self.then is not None:
            self.then()

    async def asleep(self, seconds: float) -> None:
        self(seconds)


# ------------------------------------------------------------------- methods


def test_every_method_under_a_prefix(client: SessionsClient, page_server: str) -> None:
    with client.session(url=f"{page_server}/", screenshot=True, keep_alive=True) as s:
        assert s.record is not None and s.record.status == "active" and s.record.keep_alive
        assert s.record.screenshot and s.record.page and s.record.page.title == "Home"
        assert s.cdp_url == f"{s.record.cdp_url}" and s.cdp_url.startswith("ws://127.0.0.1:")
        assert client.get(s.session_id).session_id == s.session_id
        assert [r.session_id for r in client.list("active")] == [s.session_id]
        assert s.session_id in {r.session_id for r in client.list()}

        seen = s.observe(url=f"{page_server}/")
        assert seen.observation.title == "Home" and seen.session.session_id == s.session_id
        link = next(a for a in seen.observation.actions if a.name == "second")
        stepped = s.step(type="click", id=link.id)
        assert stepped.success and stepped.observation.url == f"{page_server}/second"
        scraped = s.scrape(format="markdown")
        assert scraped.success and "second page" in scraped.content
        assert client.scrape(s.session_id, format="text").format == "text"

        shot = s.screenshot()
        assert shot.data.startswith(PNG) and shot.format == "png" and not shot.clipped
        assert client.screenshot(s.session_id, full_page=True).data.startswith(PNG)
        ticket = s.cdp_ticket()
        assert ticket.cdp_url.startswith(f"{s.cdp_url}?ticket=") and ticket.ticket
        assert s.get().status == "active"
    assert s.record.status == "closed"  # the block closed it
    assert client.get(s.session_id).status == "closed"
    assert client.close(s.session_id).status == "closed"  # closing again: its record


def test_screenshot_formats(client: SessionsClient, page_server: str) -> None:
    jpeg_magic, webp_magic = b"\xff\xd8\xff", b"RIFF"
    home = f"{page_server}/"
    with client.session(
        url=home, screenshot=True, screenshot_format="jpeg", screenshot_quality=50
    ) as s:
        assert s.record is not None and s.record.screenshot_format == "jpeg"
        assert base64.b64decode(s.record.screenshot or "").startswith(jpeg_magic)
        jpeg = s.screenshot(format="jpeg", quality=40)
        assert jpeg.media_type == "image/jpeg" and jpeg.format == "jpeg"
        assert jpeg.data.startswith(jpeg_magic)
        webp = s.screenshot(format="webp")
        assert webp.format == "webp" and webp.data.startswith(webp_magic)
        assert webp.data[8:12] == b"WEBP"
        assert s.screenshot(format="png").data.startswith(PNG)
        touched = s.get().last_accessed_at
        assert s.screenshot(touch=False).data.startswith(PNG)  # a look, not an access
        assert s.get().last_accessed_at == touched
        seen = s.observe(screenshot=True, screenshot_format="webp")
        assert seen.observation.screenshot_format == "webp"
    with pytest.raises(InvalidRequest) as png_quality:
        client.screenshot("abc", quality=50)  # a PNG has no quality: refused before sending
    assert png_quality.value.fields[0]["field"] == "quality"


def test_start_touches_and_one_shot_observe(client: SessionsClient, page_server: str) -> None:
    record = client.start(session_timeout_minutes=7)
    assert record.timeout_minutes == 7
    again = client.start(session_id=record.session_id)
    assert again.session_id == record.session_id
    assert again.last_accessed_at >= record.last_accessed_at
    one_shot = client.observe(url=f"{page_server}/second")  # no id: a session for one call
    assert one_shot.observation.title == "Second"
    assert client.get(one_shot.session.session_id).status == "closed"
    bound = client.bind(record.session_id)  # an existing session's methods; nothing sent
    assert bound.record is None and bound.cdp_url is None
    assert bound.observe(url=f"{page_server}/").observation.title == "Home"
    assert bound.record is not None and bound.cdp_url == bound.record.cdp_url
    assert bound.close().status == "closed"


def test_session_closes_when_the_block_raises(client: SessionsClient) -> None:
    with pytest.raises(RuntimeError, match="agent failed"), client.session() as s:
        assert client.get(s.session_id).status == "active"
        raise RuntimeError("agent failed")
    assert client.get(s.session_id).status == "closed"
    assert s.close_error is None


def test_a_failing_close_does_not_hide_the_blocks_error(base: str) -> None:
    with SessionsClient(base, TOKEN) as client:
        with pytest.raises(RuntimeError, match="first"), client.session() as s:
            client.http.headers["Authorization"] = "Bearer wrong"  # the close will be refused
            raise RuntimeError("first")
        assert isinstance(s.close_error, Unauthorized)
        client.http.headers["Authorization"] = f"Bearer {TOKEN}"
        assert client.close(s.session_id).status == "closed"


# -------------------------------------------------------------------- errors


def test_errors_carry_the_servers_message(
    client: SessionsClient, base: str, server: ServerProcess
) -> None:
    with pytest.raises(SessionNotFound) as missing:
        client.get("no-such-session")
    assert missing.value.status == 404 and "no session 'no-such-session'" in missing.value.message

    bob = SessionsClient(base, OTHER)
    with bob, client.session() as s, pytest.raises(SessionNotFound):  # someone else's
        bob.observe(s.session_id)
    with pytest.raises(SessionEnded) as ended:  # closed by the block above
        client.observe(s.session_id)
    assert ended.value.status == 409 and ended.value.session_status == "closed"
    assert f"session {s.session_id} is closed" in ended.value.message

    with SessionsClient(base, "not-a-token") as stranger, pytest.raises(Unauthorized) as denied:
        stranger.list()
    assert denied.value.status == 401 and denied.value.message

    with SessionsClient(server.base, TOKEN) as unprefixed, pytest.raises(NotFound) as route:
        unprefixed.list()
    assert not isinstance(route.value, SessionNotFound)
    assert "no such endpoint" in route.value.message


def test_invalid_fields_are_named(client: SessionsClient, base: str) -> None:
    # the server's own cap (10 minutes here), which only the server knows
    with pytest.raises(InvalidRequest) as capped:
        client.start(session_timeout_minutes=20)
    assert capped.value.status == 400
    assert capped.value.fields[0]["field"] == "session_timeout_minutes"
    assert "cap of 10 minutes" in capped.value.message

    # refused before sending, with the server's own words (its models)
    with pytest.raises(InvalidRequest) as typo:
        client.start(**cast(Any, {"keep_alvie": True}))
    assert [f["field"] for f in typo.value.fields] == ["keep_alvie"]
    with pytest.raises(InvalidRequest) as bad_step:
        client.step("abc", **cast(Any, {"type": "click"}))
    assert bad_step.value.fields[0]["field"] == "id"
    with pytest.raises(InvalidRequest):
        client.get("not a session id")

    # what the server answers for the same typo maps the same way
    raw = client.http.post("session/start", json={"keep_alvie": True})
    mapped = error_from(raw)
    assert isinstance(mapped, InvalidRequest) and mapped.fields[0]["field"] == "keep_alvie"
    assert mapped.message == typo.value.message

    big = client.http.post("session/start", content=b"x" * (2 << 20))
    too_large = error_from(big)
    assert isinstance(too_large, PayloadTooLarge) and too_large.status == 413


def test_stale_action_id(client: SessionsClient, page_server: str) -> None:
    with client.session(url=f"{page_server}/") as s:
        s.observe()
        with pytest.raises(StaleAction) as stale:
            s.step(type="click", id="B99")
    assert stale.value.stale_id == "B99" and "observe again" in stale.value.message


def test_the_409s_and_a_foreign_answer_map_by_their_bodies() -> None:
    """Answers the real server gives only after minutes or on a hung page, and a proxy's page."""
    ended = error_from(httpx.Response(409, json={"error": "timed out", "status": "timed_out"}))
    assert isinstance(ended, SessionEnded) and ended.session_status == "timed_out"
    hung = {"error": "the page stopped", "status": "active", "page_not_responding": True}
    assert isinstance(error_from(httpx.Response(409, json=hung)), PageNotResponding)
    proxy = error_from(httpx.Response(502, text="<html>Bad Gateway</html>"))
    assert isinstance(proxy, PageFailed) and proxy.message == "<html>Bad Gateway</html>"


# -------------------------------------------------- capacity and retrying


def _fill(client: SessionsClient) -> list[str]:
    return [client.start(session_timeout_minutes=1).session_id for _ in range(MAX_SESSIONS)]


def test_capacity_429_with_retry_after(client: SessionsClient, base: str) -> None:
    ids = _fill(client)
    sleeps = Sleeps()
    once = SessionsClient(base, TOKEN, retries=Retries(max_retries=0), sleep=sleeps)
    with once, pytest.raises(CapacityReached) as full:
        once.start()
    assert full.value.status == 429 and f"all {MAX_SESSIONS} session slots" in full.value.message
    # the soonest idle deadline (1 minute) plus a reaper tick (0.5 s), rounded up
    assert full.value.retry_after is not None and 0 < full.value.retry_after <= 61
    assert sleeps.calls == []

    # a Retry-After beyond the budget is raised at once, not slept
    short = SessionsClient(base, TOKEN, retries=Retries(max_wait=5), sleep=sleeps)
    with short, pytest.raises(CapacityReached):
        short.start()
    assert sleeps.calls == []

    # within the budget: it waits what the server said (injected), then succeeds
    def free_a_slot() -> None:
        client.close(ids[0])

    sleeps = Sleeps(then=free_a_slot)
    with SessionsClient(base, TOKEN, retries=Retries(max_wait=120), sleep=sleeps) as patient:
        record = patient.start()
    assert record.status == "active"
    assert sleeps.calls == [full.value.retry_after] or (
        len(sleeps.calls) == 1 and abs(sleeps.calls[0] - full.value.retry_after) <= 1
    )


def test_retry_after_is_read_as_seconds_or_a_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), True), now) == 30.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_connect_errors_are_retried_with_backoff_then_raised() -> None:
    sleeps = Sleeps()
    closed_port = f"http://127.0.0.1:{free_port()}"
    c = SessionsClient(closed_port, TOKEN, retries=Retries(max_retries=2), sleep=sleeps)
    with c, pytest.raises(TransportError) as failed:
        c.start()  # a POST: safe, since a failed connect never reached the server
    assert failed.value.sent is False and failed.value.status is None
    assert isinstance(failed.value.__cause__, httpx.ConnectError)
    assert sleeps.calls == [0.2, 0.4]


def test_a_post_that_may_have_arrived_is_not_retried() -> None:
    tries: list[str] = []

    def timeout(request: httpx.Request) -> httpx.Response:
        tries.append(f"{request.method} {request.url.path}")
        raise httpx.ReadTimeout("no answer", request=request)

    sleeps = Sleeps()
    transport = httpx.MockTransport(timeout)
    with SessionsClient("http://x/p", TOKEN, sleep=sleeps, transport=transport) as c:
        with pytest.raises(TransportError) as post:
            c.start()
        assert post.value.sent and tries == ["POST /p/session/start"] and sleeps.calls == []
        with pytest.raises(TransportError):
            c.get("abc")  # a GET changes nothing: retried
    assert tries[1:] == ["GET /p/session/abc"] * 4 and sleeps.calls == [0.2, 0.4, 0.8]


def test_503_is_retried_only_with_retry_after() -> None:
    answers = [
        httpx.Response(503, json={"error": "low memory"}, headers={"Retry-After": "2"}),
        httpx.Response(503, json={"error": "no Chromium"}),
    ]
    sleeps = Sleeps()
    transport = httpx.MockTransport(lambda request: answers.pop(0))
    c = SessionsClient("http://x", TOKEN, sleep=sleeps, transport=transport)
    with c, pytest.raises(SessionsError, match="no Chromium") as failed:
        c.start()
    assert failed.value.status == 503 and sleeps.calls == [2.0]


# --------------------------------------------------------------------- async


def test_async_client_and_session(base: str, page_server: str) -> None:
    async def run() -> None:
        async with AsyncSessionsClient(base, TOKEN) as client:
            async with client.session(url=f"{page_server}/") as s:
                seen = await s.observe()
                assert seen.observation.title == "Home"
                link = next(a for a in seen.observation.actions if a.name == "second")
                assert (await s.step(type="click", id=link.id)).observation.title == "Second"
                assert "second page" in (await s.scrape(format="text")).content
                assert (await s.screenshot()).data.startswith(PNG)
                assert [r.session_id for r in await client.list("active")] == [s.session_id]
                assert (await client.get(s.session_id)).status == "active"
                assert (await s.cdp_ticket()).cdp_url.startswith(f"{s.cdp_url}?ticket=")
            assert s.record is not None and s.record.status == "closed"

            with pytest.raises(ValueError, match="boom"):
                async with client.session() as failing:
                    raise ValueError("boom")
            assert (await client.get(failing.session_id)).status == "closed"
            with pytest.raises(SessionNotFound):
                await client.close("gone-for-good")

            ids = [(await client.start()).session_id for _ in range(MAX_SESSIONS)]
            sleeps = Sleeps()

            async def free_a_slot(seconds: float) -> None:
                sleeps(seconds)
                await client.close(ids[0])

            async with AsyncSessionsClient(base, TOKEN, sleep=free_a_slot) as patient:
                patient.retries = Retries(max_wait=600)
                assert (await patient.start()).status == "active"
            assert len(sleeps.calls) == 1 and sleeps.calls[0] > 0

    asyncio.run(run())


# ----------------------------------------------------------------------- CDP


def test_cdp_url_works_with_playwright(base: str, page_server: str) -> None:
    async def run() -> None:
        client = AsyncSessionsClient(base, TOKEN)
        async with client, async_playwright() as pw, client.session(url=f"{page_server}/") as s:
            assert s.cdp_url is not None
            browser = await pw.chromium.connect_over_cdp(s.cdp_url, headers=s.cdp_headers)
            page = browser.contexts[0].pages[0]
            assert await page.title() == "Home"
            await page.goto(f"{page_server}/second")
            assert (await s.observe()).observation.title == "Second"  # one page, two doors
            await browser.close()
            # a client that cannot send headers: a one-use ticket in the URL
            ticket = await s.cdp_ticket()
            browser = await pw.chromium.connect_over_cdp(ticket.cdp_url)
            assert await browser.contexts[0].pages[0].title() == "Second"
            await browser.close()

    asyncio.run(run())


# -------------------------------------------------------- one source of truth


@pytest.mark.parametrize(
    ("args", "models"),
    [
        (StartArgs, [schemas.StartRequest]),
        (ObserveArgs, [schemas.ObserveRequest]),
        (ScrapeArgs, [schemas.ScrapeRequest]),
        (StepArgs, list(schemas._STEP_MODELS)),
        (ScreenshotArgs, [schemas.ScreenshotQuery]),
    ],
    ids=["start", "observe", "scrape", "step", "screenshot"],
)
def test_keyword_arguments_are_the_request_models_fields(
    args: type[SessionArgs | ScreenshotArgs], models: list[type[BaseModel]]
) -> None:
    fields = {name for model in models for name in model.model_fields}
    if args is not StartArgs:
        fields.discard("session_id")  # the methods' first argument
    assert set(typing.get_type_hints(args)) == fields


def test_step_types_are_the_servers() -> None:
    ours = set(typing.get_args(typing.get_type_hints(StepArgs)["type"]))
    theirs = {
        kind
        for model in schemas._STEP_MODELS
        for kind in typing.get_args(model.model_fields["type"].annotation)
    }
    assert ours == theirs
