"""Observing a tab: its actions (observe.js), text, frames, tabs and dialog.

Coroutines here run on the runtime loop, with the session's lock held by the manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import Any

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Frame, FrameLocator, Page

from flask_sessions.config import Settings
from flask_sessions.page import capture
from flask_sessions.page.scripts import OBSERVE_JS
from flask_sessions.page.settle import evaluate_retrying, quiet_now, settle
from flask_sessions.page.state import (
    NOT_RESPONDING,
    PageNotResponding,
    PageState,
    Target,
    record_status,
)
from flask_sessions.schemas import (
    Action,
    FrameInfo,
    Observation,
    PageInfo,
    ShotOptions,
    TabInfo,
)

MAX_CROSS_ORIGIN_FRAMES = 10
"""Cross-origin frames observed through their own frame, per observation."""
TITLE_SECONDS = 0.5
"""How long the title of a background tab may take (a busy tab shows an empty title)."""

Root = Page | FrameLocator


async def page_info(state: PageState) -> PageInfo:
    tab = state.tab
    return PageInfo(
        url=tab.page.url,
        title=await _title(tab.page),
        http_status=tab.http_status,
        error=tab.error,
    )


async def _title(page: Page) -> str:
    try:
        return await page.title()
    except PlaywrightError:
        if page.is_closed():
            raise
        return ""  # mid-navigation: the old document is gone, the new one not there yet


async def _bounded_title(page: Page) -> str:
    try:
        async with asyncio.timeout(TITLE_SECONDS):
            return await page.title()
    except (PlaywrightError, TimeoutError):
        return ""


async def tabs_of(state: PageState, current_title: str | None) -> list[TabInfo]:
    """Every tab, with titles (a busy background tab shows an empty one)."""
    titles = await asyncio.gather(
        *(
            _noop(current_title)
            if i == state.current and current_title is not None
            else _bounded_title(t.page)
            for i, t in enumerate(state.tabs)
        )
    )
    return [
        TabInfo(index=i, url=t.page.url, title=title, current=i == state.current)
        for i, (t, title) in enumerate(zip(state.tabs, titles, strict=True))
    ]


async def _noop(value: str | None) -> str:
    return value or ""


def frame_root(page: Page, path: Sequence[str]) -> Root:
    root: Root = page
    for frame_id in path:
        root = root.frame_locator(f'[data-fs-frame="{frame_id}"]')
    return root


async def _frame_of(page: Page, path: Sequence[str]) -> Frame | None:
    """The Playwright frame of the iframe tagged ``path[-1]`` (inside ``path[:-1]``)."""
    element = frame_root(page, path[:-1]).locator(f'[data-fs-frame="{path[-1]}"]')
    try:
        handle = await element.element_handle(timeout=1000)
        return await handle.content_frame()
    except PlaywrightError:
        return None


async def _observe_frame(
    state: PageState, page: Page, path: Sequence[str], args: dict[str, Any]
) -> tuple[str, dict[str, Any]] | None:
    """observe.js in a cross-origin frame, through its own Playwright frame (None: cannot).

    Bounded by the probe time: a frame in a busy process leaves the observation without it.
    """
    frame = await _frame_of(page, path)
    if frame is None:
        return None
    try:
        async with asyncio.timeout(state.probe_ms / 1000):
            data: dict[str, Any] = json.loads(await frame.evaluate(OBSERVE_JS, args))
    except (PlaywrightError, TimeoutError):
        return None
    return frame.url, data


async def observe(
    state: PageState,
    settings: Settings,
    screenshot: ShotOptions | None,
    offset: int = 0,
    find: str | None = None,
    since: float | None = None,
) -> Observation:
    """Describe the current tab: its actions (see observe.js), text, frames, tabs, dialog.

    With ``since`` (a navigation's start, from :func:`open_url`), a page that is not quiet
    yet is settled first and looked at again.
    """
    return await state.guarded(_observe(state, settings, screenshot, offset, find, since))


async def observe_after_step(
    state: PageState, settings: Settings, screenshot: ShotOptions | None
) -> Observation:
    """The observation a step answers with; a page that stopped responding gets a short one."""
    if not state.hung:
        with contextlib.suppress(PageNotResponding):
            return await observe(state, settings, screenshot)
    page = state.page
    return Observation(
        url=page.url,
        title="",
        http_status=state.tab.http_status,
        error=NOT_RESPONDING,
        actions=[],
        text="",
        text_truncated=False,
        tabs=await tabs_of(state, ""),
        dialog=state.take_dialog(),
    )


async def _observe(
    state: PageState,
    settings: Settings,
    screenshot: ShotOptions | None,
    offset: int,
    find: str | None,
    since: float | None = None,
) -> Observation:
    page = state.page
    view = page.viewport_size or {
        "width": settings.viewport_width,
        "height": settings.viewport_height,
    }
    limit = settings.observe_max_actions
    max_text = settings.observe_max_text
    args: dict[str, Any] = {
        "limit": limit,
        "offset": offset,
        "find": find,
        "maxText": max_text,
        "counters": {},
        "frameCount": 0,
        "viewW": view["width"],
        "viewH": view["height"],
    }
    data: dict[str, Any] = json.loads(await evaluate_retrying(state, settings, OBSERVE_JS, args))
    if since is not None and not quiet_now(state, since, float(data["sinceDom"])):
        await settle(state, settings, since)
        page = state.page
        data = json.loads(await evaluate_retrying(state, settings, OBSERVE_JS, args))
    raw_actions: list[dict[str, Any]] = list(data["actions"])
    total = int(data["total"])
    text = str(data["text"])
    text_length = int(data["textLength"])
    frames: list[dict[str, Any]] = list(data["frames"])
    paths: dict[str, tuple[str, ...]] = {}
    observed: dict[str, bool] = {}
    pending = list(frames)
    visits = 0
    while pending:  # frames in document order; a frame's own frames come after it
        info = pending.pop(0)
        parent = info.get("parent")
        path = (*paths.get(parent, ()), info["id"]) if parent else (info["id"],)
        paths[info["id"]] = path
        observed[info["id"]] = not info["cross_origin"]  # same-origin: walked in the page
        if not info["cross_origin"]:
            continue
        visits += 1
        if visits > MAX_CROSS_ORIGIN_FRAMES or len(path) > 5:
            continue
        args.update(
            counters=data["counters"],
            frameCount=data["frameCount"],
            offset=max(0, offset - total),
            limit=max(0, limit - len(raw_actions)),
            maxText=max(1, max_text - len(text)),
            origin=info["origin"],
            clip=info["clip"],
            frame=info["id"],
        )
        found = await _observe_frame(state, page, path, args)
        if found is None:
            continue
        url, child = found
        observed[info["id"]] = True
        info["url"] = url
        data["counters"], data["frameCount"] = child["counters"], child["frameCount"]
        raw_actions += child["actions"]
        total += int(child["total"])
        if child["text"]:
            section = f"\n\n[frame {info['id']}: {url}]\n{child['text']}"
            text += section
            text_length += len(section) - len(child["text"]) + int(child["textLength"])
        frames += child["frames"]
        pending += child["frames"]
    actions = [Action(**raw) for raw in raw_actions]
    state.ids = {a.id: Target(a, paths.get(a.frame, ()) if a.frame else ()) for a in actions}
    tab = state.tab
    if tab.http_status is None and tab.error is None and data.get("navStatus"):
        record_status(tab, int(data["navStatus"]))  # a tab whose load began before we watched
    shot = await capture.screenshot(state, settings, screenshot) if screenshot else None
    shown = await page_info(state)
    return Observation(
        **shown.model_dump(),
        screenshot=shot,
        screenshot_format=screenshot.format if screenshot else None,
        actions=actions,
        actions_total=total,
        actions_truncated=offset + len(actions) < total,
        text=text[:max_text].rstrip(),
        text_truncated=text_length > max_text,
        frames=[
            FrameInfo(
                id=f["id"],
                url=f["url"],
                name=f["name"],
                parent=f["parent"],
                cross_origin=f["cross_origin"],
                observed=observed.get(f["id"], False),
            )
            for f in frames
        ],
        tabs=await tabs_of(state, shown.title),
        dialog=state.take_dialog(),
        viewport=data.get("viewport"),
    )
