"""Cookies and storage state of a live session (issue 18): the loop side of
``/session/<id>/cookies`` and ``/session/<id>/state``.

Each function runs on the runtime loop with the session's lock held (the manager's
``on_session``), on the session's own browser context: Playwright's ``cookies``,
``add_cookies``, ``clear_cookies`` and ``storage_state(indexed_db=True)``.
"""

from __future__ import annotations

from typing import Any

from playwright.async_api import Error as PlaywrightError

from flask_sessions.errors import InvalidInput
from flask_sessions.host.live import LiveSession
from flask_sessions.profile_schemas import (
    AddCookiesRequest,
    CookieInfo,
    CookieList,
    CookiesChanged,
    DeleteCookiesQuery,
    kept_state,
)


def _cookie(raw: dict[str, Any]) -> CookieInfo:
    return CookieInfo.model_validate({k: v for k, v in raw.items() if k in CookieInfo.model_fields})


async def cookies(live: LiveSession, session_id: str, url: str | None) -> CookieList:
    """The context's cookies (only those ``url`` would be sent, if given)."""
    found = await live.context.cookies(url) if url else await live.context.cookies()
    return CookieList(session_id=session_id, cookies=[_cookie(dict(c)) for c in found])


async def add_cookies(
    live: LiveSession, session_id: str, request: AddCookiesRequest
) -> CookiesChanged:
    """Add (or replace, by name, domain and path) the request's cookies."""
    given = [c.model_dump(exclude_unset=True) for c in request.cookies]
    try:
        await live.context.add_cookies(given)  # type: ignore[arg-type]
    except PlaywrightError as exc:
        # Chromium's own refusals (a domain that does not match the url, …) are the
        # caller's to fix: a 400 with its words.
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else "refused"
        if "cookie" not in text.lower():
            raise
        raise InvalidInput(
            f"cookies: Chromium refused them: {text}",
            fields=[{"field": "cookies", "message": f"refused by Chromium: {text}"}],
        ) from None
    total = len(await live.context.cookies())
    return CookiesChanged(session_id=session_id, added=len(given), cookies=total)


async def delete_cookies(
    live: LiveSession, session_id: str, query: DeleteCookiesQuery
) -> CookiesChanged:
    """Delete the cookies matching every given filter (no filter: all of them)."""
    before = len(await live.context.cookies())
    filters = query.model_dump(exclude_none=True)
    await live.context.clear_cookies(**filters)
    after = len(await live.context.cookies())
    return CookiesChanged(session_id=session_id, deleted=before - after, cookies=after)


async def storage_state(live: LiveSession) -> dict[str, Any]:
    """The session's storage state: cookies, and localStorage and IndexedDB per origin
    (a page known to be hung answers 409 at once rather than holding the read up)."""
    await live.state.check_responsive()
    return kept_state(dict(await live.context.storage_state(indexed_db=True)))
