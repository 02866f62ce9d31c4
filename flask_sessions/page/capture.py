"""Screenshots straight through the tab's CDP session (``Page.captureScreenshot``).

Playwright's ``page.screenshot()`` runs scripts in every frame before and after each
capture (hide the caret, wait for fonts, then clean up), about 13 ms of a 33 ms capture.
Here the caret is hidden once per document by the init script (``quiet.js``), the wait for
web fonts is one ``Runtime.evaluate`` per document (until it saw them loaded), and the
capture is one CDP call on the session the tab already keeps for its liveness probe. The
pixels are the same as Playwright's for a static page (tests/test_captures.py compares).

The image comes back base64-encoded, which is what the JSON answers carry: it is passed
through as it is, and decoded only for the screenshot route's binary answer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import struct
from typing import Any

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from flask_sessions.config import Settings
from flask_sessions.errors import OperationTimeout
from flask_sessions.page.state import PageState, Tab
from flask_sessions.schemas import Shot, ShotOptions

FONTS_WAIT_S = 1.0
"""Longest wait for the page's web fonts before capturing anyway."""

_FONTS_READY = (
    "document.fonts.status === 'loaded' || document.fonts.ready.then(() => true, () => true)"
)

_RETRIES = 6  # about 2 s of retries in all

PNG = ShotOptions()


async def screenshot(state: PageState, settings: Settings, options: ShotOptions = PNG) -> str:
    """The current tab's viewport, base64-encoded as ``options`` say.

    Each attempt is bounded by ``SESSIONS_ACTION_TIMEOUT_MS``, as Playwright's own capture
    was: past it, a Playwright ``TimeoutError`` (a 504 that names the screenshot).

    A capture that meets a navigation (a meta refresh, a JS redirect) fails in Chromium
    with "Unable to capture screenshot": wait for the new document and try again, a few
    times, rather than answer an error for a page that is merely moving.
    """
    return await _capture(state, settings, options, None)


def screenshot_clip(width: int, height: int, max_pixels: int, strip: int) -> tuple[int, int]:
    """The part of a ``width`` x ``height`` page a full-page screenshot keeps: the whole
    page if it has at most ``max_pixels`` pixels, else its top, as tall as fits (and no
    wider than leaves room for a ``strip``-pixel-tall band)."""
    width, height = max(1, width), max(1, height)
    clip_width = min(width, max(1, max_pixels // max(1, min(height, strip))))
    return clip_width, min(height, max(1, max_pixels // clip_width))


async def full_page_screenshot(
    state: PageState, settings: Settings, options: ShotOptions = PNG
) -> Shot:
    """A full-page image of at most ``SESSIONS_MAX_SCREENSHOT_PIXELS`` pixels.

    The page's size comes from Chromium's layout (``Page.getLayoutMetrics``), not from a
    script the page could redefine. The clip is always passed, so a page that grows
    between measuring and capturing still gets at most that many pixels; Chromium then
    renders only the clipped part (a 200,000 px tall page costs what a 16,384 px one does).
    """
    try:
        async with asyncio.timeout(settings.action_timeout_ms / 1000):
            page_width, page_height = await state.guarded(_content_size(state, settings))
    except TimeoutError:
        raise OperationTimeout(
            f"the page did not answer within {settings.action_timeout_ms} ms "
            "(SESSIONS_ACTION_TIMEOUT_MS) while measuring it for a full-page screenshot; "
            "the session is still there: retry, or observe to see what the page is doing"
        ) from None
    clip_width, clip_height = screenshot_clip(
        page_width, page_height, settings.max_screenshot_pixels, settings.viewport_height
    )
    clip = {"x": 0, "y": 0, "width": clip_width, "height": clip_height, "scale": 1}
    data = base64.b64decode(await _capture(state, settings, options, clip))
    width, height = image_size(data)
    return Shot(
        data,
        width,
        height,
        max(page_width, width),
        max(page_height, height),
        options.format,
    )


async def _content_size(state: PageState, settings: Settings) -> tuple[int, int]:
    cdp = await state.cdp()
    metrics = await cdp.send("Page.getLayoutMetrics")
    try:
        size = metrics["cssContentSize"]
        view = metrics["cssLayoutViewport"]
        width = max(int(size["width"]), int(view["clientWidth"]))
        height = max(int(size["height"]), int(view["clientHeight"]))
    except (KeyError, TypeError, ValueError):
        return settings.viewport_width, settings.viewport_height
    return width, height


async def _capture(
    state: PageState, settings: Settings, options: ShotOptions, clip: dict[str, Any] | None
) -> str:
    timeout_ms = settings.action_timeout_ms
    for attempt in range(_RETRIES):
        tab = state.tab
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                return await state.guarded(_capture_once(state, tab, options, clip))
        except TimeoutError:
            raise PlaywrightTimeoutError(
                f"Timeout {timeout_ms}ms exceeded while capturing the screenshot"
            ) from None
        except PlaywrightError as exc:
            if tab.page.is_closed() or attempt == _RETRIES - 1:
                raise
            if "Unable to capture" not in str(exc):
                if tab.cdp is None or not _detached(exc):
                    raise
                tab.cdp = None  # the session went with its target's process: attach again
                continue
            with contextlib.suppress(PlaywrightError):
                await tab.page.wait_for_load_state("load", timeout=2000)
            await asyncio.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def _detached(exc: PlaywrightError) -> bool:
    text = str(exc)
    return "closed" in text or "detached" in text or "No target" in text


async def _capture_once(
    state: PageState, tab: Tab, options: ShotOptions, clip: dict[str, Any] | None
) -> str:
    cdp = await state.cdp(tab)
    if tab.fonts_loaded_in is not tab.committed:
        document = tab.committed
        with contextlib.suppress(PlaywrightError, TimeoutError):
            async with asyncio.timeout(FONTS_WAIT_S):
                await cdp.send(
                    "Runtime.evaluate",
                    {"expression": _FONTS_READY, "awaitPromise": True, "returnByValue": True},
                )
                tab.fonts_loaded_in = document
    params: dict[str, Any] = {"format": options.format}
    if options.format == "png":
        # a faster zlib setting: the same pixels, a larger file (about 1.6x on a text page),
        # and about 30 % less time (see the README's Performance section)
        params["optimizeForSpeed"] = True
    if options.quality is not None:
        params["quality"] = options.quality
    if clip is not None:
        params["clip"] = clip
        params["captureBeyondViewport"] = True
    result = await cdp.send("Page.captureScreenshot", params)
    data = result.get("data")
    if not isinstance(data, str) or not data:
        raise PlaywrightError("Unable to capture screenshot: Chromium sent no image")
    return data


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG, JPEG or WebP, read from its header (0, 0 if unknown)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return 0, 0


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(width), int(height)
        i += 2 + length
    return 0, 0


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return 0, 0
