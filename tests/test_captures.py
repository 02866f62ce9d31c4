"""Screenshots through CDP (issue 12): the same pixels as Playwright's own capture, PNG,
JPEG and WebP everywhere a screenshot is taken, the caret hidden, the full-page cap kept.

Real Chromium through Flask's test client; pages from a local server.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from PIL import Image, ImageChops
from playwright.async_api import async_playwright

from flask_sessions.host.browser import find_browser, launch_args
from flask_sessions.page.capture import image_size

from .conftest import AUTH_A, AppFactory, html_pages, serving

STATIC = (
    "<!doctype html><title>Static</title>"
    "<style>body{margin:0;font:16px sans-serif;background:#fafafa}"
    ".box{width:300px;height:120px;background:linear-gradient(90deg,#c33,#33c)}</style>"
    "<h1 style='color:#0a0'>Captured page</h1><div class=box></div>"
    "<p>Text with <b>bold</b>, <i>italics</i> and a <a href='#x'>link</a>.</p>"
    "<table border=1><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>"
)
# an input focused on load: its caret blinks, so two captures would differ by it
FOCUSED = (
    "<!doctype html><title>Focused</title>"
    "<input id=q autofocus value='search words' style='font-size:40px'>"
    "<textarea style='font-size:30px'>more</textarea>"
)
TALL = "<!doctype html><title>Tall</title><body style='margin:0'><div style='height:20000px;"
TALL += "background:linear-gradient(#fff,#000)'>top</div>"

_PAGES = {"/static": STATIC, "/focused": FOCUSED, "/tall": TALL}


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serving(html_pages(_PAGES, "<title>404</title>")) as base:
        yield base


def image(data: bytes | str) -> Image.Image:
    raw = base64.b64decode(data) if isinstance(data, str) else data
    img = Image.open(io.BytesIO(raw))
    img.load()  # decodes every pixel: a broken image fails here
    return img


def same_pixels(a: Image.Image, b: Image.Image) -> bool:
    if a.size != b.size:
        return False
    return ImageChops.difference(a.convert("RGBA"), b.convert("RGBA")).getbbox() is None


def playwright_capture(url: str, width: int, height: int, **options: Any) -> bytes:
    """What raw Playwright's page.screenshot() gives for ``url`` (same Chromium binary)."""

    async def run() -> bytes:
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=find_browser().executable, args=launch_args()
            )
            try:
                page = await browser.new_page(viewport={"width": width, "height": height})
                await page.goto(url)
                return await page.screenshot(**options)
            finally:
                await browser.close()

    return asyncio.run(run())


def start(client: FlaskClient, **body: Any) -> dict[str, Any]:
    response = client.post("/session/start", json=body, headers=AUTH_A)
    assert response.status_code == 200, response.get_json()
    answer: dict[str, Any] = response.get_json()
    return answer


def shot(client: FlaskClient, sid: str, query: str = "", accept: str = "image/*") -> Any:
    return client.get(f"/session/{sid}/screenshot{query}", headers={**AUTH_A, "Accept": accept})


def test_png_is_pixel_for_pixel_playwrights_own(client: FlaskClient, site: str) -> None:
    body = start(client, url=site + "/static", screenshot=True)
    assert body["screenshot_format"] == "png"
    ours = image(body["screenshot"])
    theirs = image(playwright_capture(site + "/static", 1280, 720))
    assert ours.format == "PNG" and ours.size == (1280, 720)
    assert same_pixels(ours, theirs)
    route = shot(client, body["session_id"])
    assert route.status_code == 200 and route.mimetype == "image/png"
    assert same_pixels(image(route.data), theirs)


def test_full_page_is_pixel_for_pixel_playwrights_own(make_app: AppFactory, site: str) -> None:
    # a page taller than the viewport, within the pixel cap: the whole page, as Playwright
    client = make_app(SESSIONS_VIEWPORT_WIDTH=400, SESSIONS_VIEWPORT_HEIGHT=300).test_client()
    sid = start(client, url=site + "/static")["session_id"]
    route = shot(client, sid, "?full_page=true")
    assert route.status_code == 200, route.get_json()
    theirs = image(playwright_capture(site + "/static", 400, 300, full_page=True))
    ours = image(route.data)
    assert ours.size == theirs.size and ours.size[1] > 300
    assert same_pixels(ours, theirs)


def test_the_caret_never_shows(client: FlaskClient, site: str) -> None:
    """A focused input's caret blinks: hidden, every capture of a still page is the same,
    and the same as Playwright's (which hides it too)."""
    sid = start(client, url=site + "/focused")["session_id"]
    captures = {shot(client, sid).data for _ in range(6)}  # over about a blink period
    assert len(captures) == 1
    theirs = image(playwright_capture(site + "/focused", 1280, 720))
    assert same_pixels(image(captures.pop()), theirs)


@pytest.mark.parametrize(
    ("fmt", "pil_format", "media_type"),
    [("jpeg", "JPEG", "image/jpeg"), ("webp", "WEBP", "image/webp")],
)
def test_each_format_everywhere(
    client: FlaskClient, site: str, fmt: str, pil_format: str, media_type: str
) -> None:
    opts = {"screenshot": True, "screenshot_format": fmt}
    body = start(client, url=site + "/static", **opts)
    sid = body["session_id"]
    assert body["screenshot_format"] == fmt
    assert image(body["screenshot"]).format == pil_format

    observed = client.post("/env/observe", json={"session_id": sid, **opts}, headers=AUTH_A)
    observation = observed.get_json()["observation"]
    assert observation["screenshot_format"] == fmt
    assert image(observation["screenshot"]).size == (1280, 720)

    step = {"session_id": sid, "type": "scroll_down", **opts}
    stepped = client.post("/env/step", json=step, headers=AUTH_A).get_json()
    assert stepped["observation"]["screenshot_format"] == fmt
    assert image(stepped["observation"]["screenshot"]).format == pil_format

    route = shot(client, sid, f"?format={fmt}")
    assert route.status_code == 200 and route.mimetype == media_type
    assert image(route.data).format == pil_format
    assert image_size(route.data) == (1280, 720)  # our own header reader agrees

    as_json = shot(client, sid, f"?format={fmt}", accept="application/json").get_json()
    assert as_json["format"] == fmt and image(as_json["screenshot"]).format == pil_format


def test_quality_changes_the_jpeg(client: FlaskClient, site: str) -> None:
    sid = start(client, url=site + "/static")["session_id"]
    low = shot(client, sid, "?format=jpeg&quality=5").data
    high = shot(client, sid, "?format=jpeg&quality=95").data
    assert len(low) < len(high)
    assert image(low).size == image(high).size == (1280, 720)


def test_no_screenshot_no_format(client: FlaskClient, site: str) -> None:
    body = start(client, url=site + "/static", screenshot_format="jpeg")
    assert body["screenshot"] is None and body["screenshot_format"] is None


def test_full_page_jpeg_keeps_the_pixel_cap(make_app: AppFactory, site: str) -> None:
    cap = 1280 * 4000
    client = make_app(SESSIONS_MAX_SCREENSHOT_PIXELS=cap).test_client()
    sid = start(client, url=site + "/tall")["session_id"]
    route = shot(client, sid, "?full_page=true&format=jpeg&quality=50")
    assert route.status_code == 200 and route.mimetype == "image/jpeg"
    width, height = image(route.data).size
    assert width * height <= cap and width == 1280
    assert route.headers["X-Screenshot-Clipped"] == f"{width}x{height} of 1280x20000"


@pytest.mark.parametrize(
    ("where", "body", "field", "words"),
    [
        ("/session/start", {"screenshot_format": "gif"}, "screenshot_format", "png, jpeg or webp"),
        (
            "/session/start",
            {"screenshot": True, "screenshot_quality": 50},
            "screenshot_quality",
            "jpeg and webp only",
        ),
        (
            "/session/start",
            {"screenshot_format": "jpeg", "screenshot_quality": 101},
            "screenshot_quality",
            "0 to 100",
        ),
        ("/env/observe", {"screenshot_format": "PNG"}, "screenshot_format", "png, jpeg or webp"),
    ],
)
def test_bad_format_options_name_the_field(
    client: FlaskClient, where: str, body: dict[str, Any], field: str, words: str
) -> None:
    response = client.post(where, json=body, headers=AUTH_A)
    assert response.status_code == 400
    error = response.get_json()
    assert [f["field"] for f in error["fields"]] == [field]
    assert words in error["error"], error


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ("?format=bmp", "format", "png, jpeg or webp"),
        ("?quality=50", "quality", "jpeg and webp only"),
        ("?format=webp&quality=-1", "quality", "0 to 100"),
    ],
)
def test_bad_route_options_name_the_field(
    client: FlaskClient, site: str, query: str, field: str, words: str
) -> None:
    sid = start(client)["session_id"]
    response = shot(client, sid, query)
    assert response.status_code == 400
    error = response.get_json()
    assert [f["field"] for f in error["fields"]] == [field]
    assert words in error["error"], error
