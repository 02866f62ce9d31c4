"""Live view: a person watches a session's page and, with an interactive ticket, drives it.

::

    Chromium ─ Page.startScreencast on the current tab (the host's own CDP session) ─► _Cast
    _Cast ─ the latest JPEG only ─► each _Viewer ─ws, binary─► the live page's <canvas>
    the live page ─ws, JSON─► _Viewer ─► Input.dispatchMouseEvent / dispatchKeyEvent /
                                         insertText on the current tab (interactive only)

**Where.** The CDP WebSocket server (``cdp.py``) serves it on its own port at
``/live/<session_id>?ticket=…``: one server, one per-session socket cap
(``SESSIONS_MAX_CDP_CLIENTS_PER_SESSION`` counts CDP clients and viewers together), and the
same one-use HMAC tickets (:class:`~flask_sessions.host.cdp.Tickets`), whose signed payload
here also names the scope, ``view`` or ``interact``. The page a person opens
(``<prefix>/ui/live/<id>``, ``front/viewer.py``) is only HTML and script; it reads the
ticket from its URL's fragment and connects here. A ticket is good once and until its end
(``ttl_seconds``): the socket closes then, or when the session ends, saying why.

**Frames.** Only while a viewer is connected; one frame source per session, on the host's
own CDP session of the current tab (so they follow ``switch_tab`` and a replaced page, and
survive navigations). Every viewer gets each frame as its *next* frame (an older unsent one
is dropped, so nothing queues for a slow viewer), and the next frame is taken only once a
viewer has written the last one to its socket, and no sooner than
``1 / SESSIONS_LIVE_MAX_FPS`` after it: the frame rate follows the fastest viewer, up to the
cap. Frames are as large as the largest viewer asked, up to the viewport.

Where frames come from depends on the page. While it is still or changes now and then,
from Chromium's screencast (``Page.startScreencast``, JPEG, each frame acknowledged with
``Page.screencastFrameAck`` in its turn): a frame comes when the page paints, and a still
page costs nothing (one ``Page.captureScreenshot`` gives the first frame). But the
screencast captures *every* paint, whatever is acknowledged (Chromium drops what it cannot
send after capturing it), on browser threads all pages share: measured on an animated page,
that slowed other sessions' clicks about 8x on a loaded 2-core host, against about 1.3x for
captures at the frame rate. So when screencast frames keep coming faster than they are
shown (the page animates), the screencast stops and frames are captured with
``Page.captureScreenshot`` in their turn; when most captures of a second show nothing new,
the screencast takes over again. A page that animated starts its next viewer with
captures (``LiveViews.animates``, per session and URL), not with a screencast burst.

**Other sessions first.** While another session of the host is in a call (its lock is
held: a step, an observe…), a capture waits for that call to end (others idle for
``QUIET_SECONDS``, not a gap between two calls), up to ``1 / SESSIONS_LIVE_BUSY_FPS`` after
the last frame: frames cost Chromium threads and this loop's time that the agents' calls
would wait for (measured: 1.5-1.9x another session's step p50 at 15 frames/s on a loaded
2-core host, about 1x at 1). A viewer's input lifts it for ``INPUT_BOOST_SECONDS``.
Screencast acknowledgements never wait for it (see :meth:`_Cast._yield_to_others`).

**Input.** Mouse (move, down, up, wheel) in fractions of the frame, mapped here to the
viewport's CSS pixels; keys with their modifiers; text (an IME's, or a paste) with
``Input.insertText``. All of it goes, in order, to the current tab; mouse moves are coalesced.
A view-only viewer's input is dropped here (logged, counted), whatever its page sends. Input
counts as access for the idle timeout and sets the session's ``human_input_at``; watching
does neither.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from playwright.async_api import CDPSession, Page
from playwright.async_api import Error as PlaywrightError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from flask_sessions.errors import SessionNotFound, SessionsError, Unauthorized
from flask_sessions.schemas import Status, ViewerRequest, ViewerResponse
from flask_sessions.timefmt import iso_datetime

if TYPE_CHECKING:
    from flask_sessions.host.cdp import CdpProxy
    from flask_sessions.host.live import LiveSession

log = logging.getLogger("flask_sessions")

LIVE_PATH = re.compile(r"/live/([A-Za-z0-9_-]{1,64})/?$")
"""A viewer's socket path (after the CDP server's public base)."""

VIEW, INTERACT = "view", "interact"
SCOPES = frozenset({VIEW, INTERACT})
JPEG_QUALITY = 70
FOLLOW_SECONDS = 0.25  # how often a screencast looks for a tab switch or a new URL
EXPIRY_CHECK_SECONDS = 1.0  # how often a viewer compares its ticket's end with the clock
MAX_MESSAGE = 256 * 1024  # bytes of one message from a viewer (a long paste fits)
MAX_TEXT = 100_000  # characters of one text or paste
MAX_QUEUED_INPUT = 1000  # input events waiting for the page; past it, new ones are dropped
INPUT_TIMEOUT_SECONDS = 10.0  # one Input.* command (a hung page never answers)
STALL_SECONDS = 30.0  # a viewer whose socket does not take a frame for this long is dropped
CAST, POLL = "cast", "poll"  # frames from the screencast, or captures at the frame rate
BUSY_WINDOW, BUSY_OVERLAPS = 8, 6  # of the last 8 screencast frames, 6 came early: it animates
EARLY_SECONDS = 0.05  # a frame this soon after an acknowledgement was painted meanwhile
BUSY_RATE = 6  # screencast frames in a second that mean it animates (at most 0.8 x the rate)
MIN_SIDE, MAX_SIDE = 16, 8192
BUSY_POLL_SECONDS = 0.02  # how often a frame that yields to other sessions looks again
QUIET_SECONDS = 0.1  # other sessions idle this long: their calls are over, frames go on
INPUT_BOOST_SECONDS = 2.0  # after a viewer's input, frames come at the full rate this long

# CDP modifier bits
ALT, CTRL, META, SHIFT = 1, 2, 4, 8
MOUSE_EVENTS = {"move": "mouseMoved", "down": "mousePressed", "up": "mouseReleased"}
BUTTONS = frozenset({"none", "left", "middle", "right", "back", "forward"})
INPUT_TYPES = frozenset({"mouse", "wheel", "key", "text", "paste"})


class _Busy(SessionsError):
    """429 at the upgrade: the session has all the sockets its cap allows."""

    status_code = 429


class LiveViews:
    """The live viewers of one app (or host) and their screencasts; lives on the runtime loop
    except :meth:`mint`, which Flask threads call."""

    def __init__(self, proxy: CdpProxy) -> None:
        self.proxy = proxy
        self.manager = proxy.manager
        self.settings = proxy.settings
        self._casts: dict[str, _Cast] = {}
        # session -> the URL of its page that animated when last watched: the next viewer's
        # frames start as captures at the frame rate, not with a screencast of every paint
        self.animates: dict[str, str] = {}
        self.frames = 0  # frames written to viewers, every session (for /metrics)
        self.inputs = 0  # input events passed to pages
        self.refused = 0  # input events of view-only viewers, dropped

    # ------------------------------------------------------------ Flask side

    def mint(
        self, principal: str, session_id: str, request: ViewerRequest, page_url: str
    ) -> ViewerResponse:
        """A viewer_url for the principal's active session (404/409 like REST): ``page_url``
        (the live page, on the front the caller used) with a one-use ticket in its fragment.

        The record keeps the URL until it expires; minting counts as access.
        """
        seconds = request.ttl_seconds or self.settings.viewer_ttl_seconds
        scope = INTERACT if request.interactive else VIEW
        manager = self.manager

        async def mint() -> ViewerResponse:
            record = manager.active_record(principal, session_id)
            now = manager.clock()
            ticket, expires = self.proxy.tickets.mint(
                session_id, now, scope, timedelta(seconds=seconds)
            )
            url = f"{page_url}#ticket={ticket}"
            record.viewer_url, record.viewer_expires = url, expires
            manager.touch(session_id, timedelta(0))  # publishes the record too
            return ViewerResponse(
                session_id=session_id,
                viewer_url=url,
                expires_at=iso_datetime(expires),
                interactive=request.interactive,
            )

        return manager._run(mint())

    def socket_url(self, session_id: str) -> str | None:
        """ws(s)://…/live/<id> for the current request (None while the server is down)."""
        url = self.proxy.url_for(session_id)
        if url is None:
            return None
        return url.removesuffix(f"/cdp/{session_id}") + f"/live/{session_id}"

    # ------------------------------------------------------------- loop side

    def count(self, session_id: str) -> int:
        cast = self._casts.get(session_id)
        return len(cast.viewers) if cast is not None else 0

    def viewers(self) -> int:
        return sum(len(cast.viewers) for cast in list(self._casts.values()))

    def admit(self, session_id: str, ticket: str) -> tuple[str, str, datetime]:
        """(principal, scope, ticket's end) for a viewer's upgrade; the ticket is used up only
        when everything else passes. 401 bad ticket, 404 ended session, 429 full."""
        tickets, now = self.proxy.tickets, self.manager.clock()
        if not ticket:
            raise Unauthorized(
                "this live view needs its ticket: open the viewer_url exactly as it was given "
                "(POST /session/<id>/viewer mints one)"
            )
        if tickets.redeem_scoped(ticket, session_id, now, SCOPES, consume=False) is None:
            raise Unauthorized(
                "this viewer link has expired, was used already, or is for another session; "
                "ask for a new one (POST /session/<id>/viewer)"
            )
        record = self.manager._records.get(session_id)
        if (
            record is None
            or record.status is not Status.active
            or self.manager.live(session_id) is None
        ):
            raise SessionNotFound(
                f"session {session_id} has ended (or never existed); its live view ended with it"
            )
        limit = self.settings.max_cdp_clients_per_session
        if self.proxy.clients(session_id) >= limit:
            raise _Busy(
                f"session {session_id} already has {limit} sockets (CDP clients and viewers, "
                "SESSIONS_MAX_CDP_CLIENTS_PER_SESSION); close one first"
            )
        granted = tickets.redeem_scoped(ticket, session_id, now, SCOPES)
        if granted is None:  # another upgrade used it a moment ago
            raise Unauthorized("this viewer link was used already; ask for a new one")
        scope, expires = granted
        return record.principal, scope, expires

    async def serve(
        self, ws: ServerConnection, session_id: str, scope: str, expires: datetime
    ) -> None:
        """One viewer's socket, until it closes, its ticket ends or the session does."""
        live = self.manager.live(session_id)
        record = self.manager._records.get(session_id)
        if live is None or record is None or record.status is not Status.active:
            await ws.close(1000, "the session has ended")
            return
        if self.proxy.clients(session_id) >= self.settings.max_cdp_clients_per_session:
            await ws.close(1013, "too many sockets on this session")  # raced another upgrade
            return
        cast = self._casts.get(session_id)
        if cast is None or cast.stopped:
            cast = self._casts[session_id] = _Cast(self, session_id, live)
        viewer = _Viewer(self, cast, ws, scope == INTERACT, expires)
        cast.add(viewer)
        record.viewers += 1
        self.manager._changed(record)
        log.info(
            "flask_sessions: live viewer (%s) joined session %s",
            scope,
            session_id,
            extra={"event": "viewer_joined", "session_id": session_id, "scope": scope},
        )
        try:
            await viewer.run()
        finally:
            cast.remove(viewer)
            if not cast.viewers and self._casts.get(session_id) is cast:
                del self._casts[session_id]
            record.viewers = max(0, record.viewers - 1)
            self.manager._changed(record)

    def session_ended(self, session_id: str, code: int, reason: str) -> None:
        """The session ended: close its viewers saying why (their screencast stops)."""
        self.animates.pop(session_id, None)
        cast = self._casts.get(session_id)
        if cast is not None:
            for viewer in list(cast.viewers):
                viewer.end(code, reason)

    def close(self) -> None:
        """Shutdown: close every viewer."""
        for cast in list(self._casts.values()):
            for viewer in list(cast.viewers):
                viewer.end(1001, "server shutting down")

    def metrics(self) -> Iterable[Metric]:
        """Gauges and counters for ``/metrics`` (no per-session labels)."""
        yield GaugeMetricFamily(
            "flask_sessions_live_viewers", "Live viewers connected.", value=self.viewers()
        )
        yield GaugeMetricFamily(
            "flask_sessions_live_screencasts",
            "Screencasts running (sessions with a live viewer).",
            value=sum(1 for cast in list(self._casts.values()) if cast.running),
        )
        yield CounterMetricFamily(
            "flask_sessions_live_frames", "Frames sent to live viewers.", value=self.frames
        )
        yield CounterMetricFamily(
            "flask_sessions_live_inputs", "Viewer input events passed to pages.", value=self.inputs
        )
        yield CounterMetricFamily(
            "flask_sessions_live_inputs_refused",
            "Input events of view-only viewers, dropped.",
            value=self.refused,
        )


class _Cast:
    """One session's frames and input queue, while it has viewers.

    Two ways to get frames, switched by how the page changes (see the module doc):
    ``cast`` (Chromium's screencast: a frame when the page paints) while it is still or
    changes now and then, and ``poll`` (``Page.captureScreenshot`` at the frame rate) while
    it animates faster than the frame rate.
    """

    def __init__(self, views: LiveViews, session_id: str, live: LiveSession) -> None:
        self.views = views
        self.session_id = session_id
        self.live = live
        self.viewers: set[_Viewer] = set()
        self.cdp: CDPSession | None = None
        self.page: Page | None = None
        self.size: tuple[int, int] = (0, 0)  # of the frames now
        self.mode = CAST
        self.running = False  # frames are being taken (either way)
        self._casting = False  # Chromium's screencast is on (on self.cdp)
        self.stopped = False
        self.frames = 0
        self.last: bytes | None = None  # the latest frame, for a viewer who joins now
        self.url = ""
        self._fps = views.settings.live_max_fps
        self._changed = asyncio.Event()
        self._drained = asyncio.Event()
        self._next_slot = 0.0  # loop time before which no frame is taken or acknowledged
        self._granted = 0.0  # loop time of the last frame's turn
        self._busy_at = float("-inf")  # loop time another session was last seen in a call
        self._input_at = -INPUT_BOOST_SECONDS  # loop time of the last viewer input
        self._busy_fps = views.settings.live_busy_fps
        self._acked = 0.0  # loop time of the last acknowledgement
        # for the last screencast frames: whether each came while another waited for its turn
        self._overlaps: deque[bool] = deque(maxlen=BUSY_WINDOW)
        self._arrivals: deque[float] = deque(maxlen=BUSY_RATE)
        self._busy_rate = max(2, min(BUSY_RATE, round(0.8 * self._fps)))
        self._acks: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._input: deque[tuple[str, dict[str, Any]]] = deque()
        self._input_ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._input_task: asyncio.Task[None] | None = None

    def add(self, viewer: _Viewer) -> None:
        self.viewers.add(viewer)
        if self.last is not None:
            viewer.offer(self.last)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
            self._input_task = asyncio.get_running_loop().create_task(self._dispatch())
        self.changed()

    def remove(self, viewer: _Viewer) -> None:
        self.viewers.discard(viewer)
        self._drained.set()  # a frame waiting for this viewer need not
        self.changed()

    def changed(self) -> None:
        self._changed.set()

    def drained(self) -> None:
        self._drained.set()

    # ----------------------------------------------------------- frames

    async def _run(self) -> None:
        state = self.live.state
        try:
            while self.viewers and not state.ended.is_set():
                self._changed.clear()
                page = state.page if state.tabs else None
                if page is not None and not page.is_closed():
                    size = self._wanted_size(page)
                    if page is not self.page or size != self.size or not self.running:
                        await self._start(page, size)
                    self._announce(page)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), FOLLOW_SECONDS)
        finally:
            self.stopped = True
            await self._stop()
            if self._input_task is not None:
                self._input_task.cancel()

    def _wanted_size(self, page: Page) -> tuple[int, int]:
        """The largest size a viewer asked for (device pixels), up to the viewport."""
        viewport = page.viewport_size or {"width": 1280, "height": 720}
        width, height = viewport["width"], viewport["height"]
        asked = [v.size for v in self.viewers if v.size is not None]
        if asked:
            width = min(width, max(w for w, _ in asked))
            height = min(height, max(h for _, h in asked))
        return width, height

    async def _start(self, page: Page, size: tuple[int, int]) -> None:
        """Frames of ``page`` at ``size``, the current way (a new tab or size: the
        screencast first, and one still frame at once)."""
        try:
            if page is not self.page or self.cdp is None:
                await self._stop()
                self.cdp = await self.live.context.new_cdp_session(page)
                self.page = page
                self.cdp.on("Page.screencastFrame", self._on_frame)
                self.mode = POLL if self.views.animates.get(self.session_id) == page.url else CAST
            else:
                await self._pause()
            self.size = size
            before = self.frames
            if self.mode == CAST:
                self._overlaps.clear()
                self._arrivals.clear()
                await self.cdp.send(
                    "Page.startScreencast",
                    {
                        "format": "jpeg",
                        "quality": JPEG_QUALITY,
                        "maxWidth": size[0],
                        "maxHeight": size[1],
                        "everyNthFrame": 1,
                    },
                )
                self._casting = self.running = True
                data = await self._capture()
                if data is not None and self.frames == before:
                    self._deliver(data)
            else:
                self._poller = asyncio.get_running_loop().create_task(self._poll(self.cdp))
                self.running = True
        except PlaywrightError:  # the tab closed or crashed meanwhile: the next look retries
            await self._stop()

    async def _pause(self) -> None:
        """Stop taking frames (the CDP session stays)."""
        for task in list(self._acks):
            task.cancel()
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
        if self._casting and self.cdp is not None:
            with contextlib.suppress(PlaywrightError):
                await self.cdp.send("Page.stopScreencast")
        self._casting = self.running = False

    async def _stop(self) -> None:
        await self._pause()
        self._casting = False
        cdp, self.cdp, self.page = self.cdp, None, None
        if cdp is not None:
            with contextlib.suppress(PlaywrightError):
                await cdp.detach()

    def _switch(self, mode: str) -> None:
        """From the screencast to captures at the frame rate, or back (the run loop does it)."""
        if self.mode != mode:
            self.mode = mode
            if mode == POLL and self.page is not None:
                self.views.animates[self.session_id] = self.page.url
            else:
                self.views.animates.pop(self.session_id, None)
            self.running = False
            self.changed()

    async def _capture(self) -> bytes | None:
        """One frame now, at the current size (None if the page does not answer)."""
        cdp, page = self.cdp, self.page
        if cdp is None or page is None:
            return None
        viewport = page.viewport_size or {"width": 1280, "height": 720}
        width, height = viewport["width"], viewport["height"]
        scale = min(1.0, self.size[0] / width, self.size[1] / height)
        params: dict[str, Any] = {
            "format": "jpeg",
            "quality": JPEG_QUALITY,
            "optimizeForSpeed": True,
        }
        if scale < 0.99:  # a clip re-renders the page at its scale: only for smaller frames
            params["clip"] = {"x": 0, "y": 0, "width": width, "height": height, "scale": scale}
        try:
            shot = await asyncio.wait_for(
                cdp.send("Page.captureScreenshot", params), INPUT_TIMEOUT_SECONDS
            )
            return base64.b64decode(shot["data"])
        except (PlaywrightError, TimeoutError, KeyError, ValueError):
            return None  # a hung or closed page: frames come when it paints again

    async def _slot(self, yielding: bool = False) -> None:
        """Wait for the next frame's turn: no sooner than 1/SESSIONS_LIVE_MAX_FPS after the
        last, and once a viewer has taken the last one (a slow viewer queues nothing)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        wait = self._next_slot - now
        self._next_slot = max(now, self._next_slot) + 1 / self._fps
        if wait > 0:
            await asyncio.sleep(wait)
        if yielding:
            await self._yield_to_others()
        while self.viewers and not any(v.ready for v in self.viewers):
            self._drained.clear()
            await self._drained.wait()

    async def _yield_to_others(self) -> None:
        """While another session of this host is in a call (a step, an observe…), wait for
        it to end, up to 1/SESSIONS_LIVE_BUSY_FPS after the last frame: a capture costs
        Chromium and this loop time that the agents' calls would wait for. A viewer's input
        lifts this for a moment (the person sees what they did at the full rate).

        Only captures yield: the screencast's acknowledgements never wait for it, because
        Chromium goes on capturing every paint while a frame waits to be acknowledged, and
        frames must keep coming to tell that the page animates."""
        loop = asyncio.get_running_loop()
        if self._busy_fps < self._fps:
            until = self._granted + 1 / self._busy_fps
            while (now := loop.time()) < until and now - self._input_at > INPUT_BOOST_SECONDS:
                if self._others_busy():
                    self._busy_at = now
                elif now - self._busy_at >= QUIET_SECONDS:
                    break  # the others' calls are over (not a gap between two of them)
                await asyncio.sleep(BUSY_POLL_SECONDS)
        self._granted = loop.time()
        self._next_slot = max(self._next_slot, self._granted + 1 / self._fps)

    def _others_busy(self) -> bool:
        """Whether another session of this host is in a call now."""
        return any(
            live.lock.locked()
            for session_id, live in list(self.views.manager._live.items())
            if session_id != self.session_id
        )

    async def _poll(self, cdp: CDPSession) -> None:
        """Captures at the frame rate while the page animates; back to the screencast once
        most captures of the last second showed nothing new (a still page, a caret)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        captures: deque[tuple[float, bool]] = deque()  # (when, whether it was new)
        last = b""
        me = asyncio.current_task()
        # ``_pause`` forgets this task before cancelling it: a cancellation that
        # ``asyncio.wait_for`` swallows (Python < 3.12, when the capture answers at that
        # moment) must not keep it polling at the old size while ``_pause`` waits for it
        while cdp is self.cdp and self._poller is me:
            await self._slot(yielding=True)
            data = await self._capture()
            now = loop.time()
            new = data is not None and data != last
            if data is not None and new:
                last = data
                self._deliver(data)
            captures.append((now, new))
            while captures and captures[0][0] < now - 1.0:
                captures.popleft()
            fresh = sum(1 for _, was_new in captures if was_new)
            if now - started > 1.0 and len(captures) >= 3 and fresh * 2 < len(captures):
                self._switch(CAST)
                return

    def _announce(self, page: Page) -> None:
        """Tell viewers where the page is (its URL, and which tab of how many)."""
        tabs = self.live.state.tabs
        text = json.dumps(
            {
                "type": "page",
                "url": page.url,
                "tab": self.live.state.current,
                "tabs": len(tabs),
            }
        )
        if text != self.url:
            self.url = text
            for viewer in self.viewers:
                viewer.say(text)

    def _on_frame(self, params: dict[str, Any]) -> None:
        cdp = self.cdp
        try:
            data = base64.b64decode(params["data"])
            frame_id = int(params["sessionId"])
        except (KeyError, ValueError, TypeError):
            return
        if self.mode != CAST:
            return
        self._deliver(data)
        # Frames that keep coming (a frame came while the last one still waited for its turn,
        # or right after it was acknowledged; or many this second): the page paints faster
        # than frames are shown, and the screencast captures every paint whatever is
        # acknowledged, on the compositor thread every page shares.
        now = asyncio.get_running_loop().time()
        self._overlaps.append(bool(self._acks) or now - self._acked < EARLY_SECONDS)
        self._arrivals.append(now)
        recent = sum(1 for at in self._arrivals if at > now - 1.0)
        early = len(self._overlaps) == BUSY_WINDOW and sum(self._overlaps) >= BUSY_OVERLAPS
        if early or recent >= self._busy_rate:
            self._switch(POLL)
            return
        task = asyncio.get_running_loop().create_task(self._ack(cdp, frame_id))
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)

    def _deliver(self, data: bytes) -> None:
        self.frames += 1
        self.last = data
        for viewer in self.viewers:
            viewer.offer(data)

    async def _ack(self, cdp: CDPSession | None, frame_id: int) -> None:
        """Acknowledge a screencast frame in its turn: until then Chromium sends no more."""
        await self._slot()
        if cdp is not None and cdp is self.cdp and self.mode == CAST:
            self._acked = asyncio.get_running_loop().time()
            with contextlib.suppress(PlaywrightError):
                await cdp.send("Page.screencastFrameAck", {"sessionId": frame_id})

    # ----------------------------------------------------------- input

    def input(self, method: str, params: dict[str, Any]) -> bool:
        """Queue one input command for the current tab (a move replaces a waiting move);
        False when the queue is full."""
        self._input_at = asyncio.get_running_loop().time()
        if method == "Input.dispatchMouseEvent" and params.get("type") == "mouseMoved":
            last = self._input[-1] if self._input else None
            if last is not None and last[1].get("type") == "mouseMoved":
                self._input[-1] = (method, params)
                return True
        if len(self._input) >= MAX_QUEUED_INPUT:
            return False
        self._input.append((method, params))
        self._input_ready.set()
        return True

    async def _dispatch(self) -> None:
        while True:
            while not self._input:
                self._input_ready.clear()
                await self._input_ready.wait()
            method, params = self._input.popleft()
            cdp, page = self.cdp, self.page
            if cdp is None or page is None:
                continue  # no page on screen (the tab is being replaced): nowhere to send
            if "fx" in params:
                viewport = page.viewport_size or {"width": 1280, "height": 720}
                params = dict(params)
                params["x"] = params.pop("fx") * viewport["width"]
                params["y"] = params.pop("fy") * viewport["height"]
            try:
                await asyncio.wait_for(cdp.send(method, params), INPUT_TIMEOUT_SECONDS)
                self.views.inputs += 1
            except (PlaywrightError, TimeoutError):
                pass  # the page closed, crashed or hangs: the input is lost, as a person's is


class _Viewer:
    """One viewer's socket: frames out (the latest only), JSON in."""

    def __init__(
        self,
        views: LiveViews,
        cast: _Cast,
        ws: ServerConnection,
        interactive: bool,
        expires: datetime,
    ) -> None:
        self.views = views
        self.cast = cast
        self.ws = ws
        self.interactive = interactive
        self.expires = expires
        self.size: tuple[int, int] | None = None
        self.frame: bytes | None = None  # the next frame to write (older ones were dropped)
        self._texts: deque[str] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._refused = 0

    @property
    def ready(self) -> bool:
        """Nothing waits to be written: the last frame went out."""
        return self.frame is None

    def offer(self, frame: bytes) -> None:
        self.frame = frame
        self._wake.set()

    def say(self, text: str) -> None:
        if len(self._texts) < 100:
            self._texts.append(text)
            self._wake.set()

    def end(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        task = asyncio.get_running_loop().create_task(self.ws.close(code, _reason(reason)))
        task.add_done_callback(_ignore)

    async def run(self) -> None:
        page = self.cast.live.state.page
        viewport = page.viewport_size or {"width": 1280, "height": 720}
        self.say(
            json.dumps(
                {
                    "type": "hello",
                    "session_id": self.cast.session_id,
                    "interactive": self.interactive,
                    "expires_at": iso_datetime(self.expires),
                    "viewport": viewport,
                }
            )
        )
        writer = asyncio.get_running_loop().create_task(self._write())
        expiry = asyncio.get_running_loop().create_task(self._expire())
        try:
            async for message in self.ws:
                if self._closing:
                    break
                self._on_message(message)
        except ConnectionClosed:
            pass
        finally:
            for task in (writer, expiry):
                task.cancel()
            await asyncio.gather(writer, expiry, return_exceptions=True)
            if self._refused:
                log.info(
                    "flask_sessions: view-only viewer of session %s sent %d input events (dropped)",
                    self.cast.session_id,
                    self._refused,
                    extra={"event": "viewer_left", "session_id": self.cast.session_id},
                )

    async def _expire(self) -> None:
        """Close the socket when the ticket's time is up (on the server's clock)."""
        clock = self.views.manager.clock
        while clock() < self.expires:
            await asyncio.sleep(EXPIRY_CHECK_SECONDS)
        self.end(1000, "this viewer link has expired; ask for a new one")

    async def _write(self) -> None:
        while True:
            while self.frame is None and not self._texts:
                self._wake.clear()
                await self._wake.wait()
            if self._texts:
                await self.ws.send(self._texts.popleft())
                continue
            frame, self.frame = self.frame, None
            assert frame is not None
            try:
                await asyncio.wait_for(self.ws.send(frame), STALL_SECONDS)
            except TimeoutError:
                self.end(1008, f"viewer too slow: no frame taken in {STALL_SECONDS:g} s")
                return
            self.views.frames += 1
            self.cast.drained()

    # ------------------------------------------------------------- input

    def _on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes) or len(message) > MAX_MESSAGE:
            self.end(1003, "send JSON text messages of at most 256 KB")
            return
        try:
            data = json.loads(message)
            kind = data["type"] if isinstance(data, dict) else None
        except (ValueError, KeyError):
            kind = None
        if kind == "size":
            try:
                self.size = (_side(data["width"]), _side(data["height"]))
            except (KeyError, TypeError, ValueError):
                self.end(1007, "size needs whole numbers width and height")
                return
            self.cast.changed()
            return
        if kind == "ping":
            return
        if kind not in INPUT_TYPES:
            self.end(1003, f"unknown message type; send one of: size, {', '.join(INPUT_TYPES)}")
            return
        if not self.interactive:
            self.views.refused += 1
            self._refused += 1
            if self._refused == 1:
                log.warning(
                    "flask_sessions: refused %s input from a view-only viewer of session %s",
                    kind,
                    self.cast.session_id,
                    extra={"event": "viewer_input_refused", "session_id": self.cast.session_id},
                )
            return
        try:
            method, params = input_command(data)
        except (KeyError, TypeError, ValueError) as exc:
            self.end(1007, f"bad {kind} message: {exc}")
            return
        if not self.cast.input(method, params):
            return  # flooded: dropped
        manager = self.views.manager
        record = manager._records.get(self.cast.session_id)
        if record is not None and record.status is Status.active:
            record.human_input_at = manager.clock()
            manager.touch(self.cast.session_id)


def input_command(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A viewer's input message as the CDP command for the page (coordinates as fractions
    ``fx``/``fy`` of the frame, mapped to the viewport when sent). ValueError if it is wrong."""
    kind = data["type"]
    modifiers = _int(data.get("modifiers", 0), 0, 15, "modifiers")
    if kind in ("mouse", "wheel"):
        fx = _fraction(data["x"], "x")
        fy = _fraction(data["y"], "y")
        if kind == "wheel":
            return "Input.dispatchMouseEvent", {
                "type": "mouseWheel",
                "fx": fx,
                "fy": fy,
                "deltaX": _number(data.get("deltaX", 0), 10_000, "deltaX"),
                "deltaY": _number(data.get("deltaY", 0), 10_000, "deltaY"),
                "modifiers": modifiers,
            }
        event = MOUSE_EVENTS.get(data["event"])
        button = data.get("button", "none")
        if event is None:
            raise ValueError("event must be move, down or up")
        if button not in BUTTONS:
            raise ValueError(f"button must be one of {', '.join(sorted(BUTTONS))}")
        return "Input.dispatchMouseEvent", {
            "type": event,
            "fx": fx,
            "fy": fy,
            "button": button,
            "buttons": _int(data.get("buttons", 0), 0, 31, "buttons"),
            "clickCount": _int(
                data.get("clickCount", 0 if event == "mouseMoved" else 1), 0, 3, "clickCount"
            ),
            "modifiers": modifiers,
        }
    if kind == "key":
        down = {"down": True, "up": False}.get(data["event"])
        if down is None:
            raise ValueError("event must be down or up")
        key = _short(data["key"], "key")
        code = _short(data.get("code", ""), "code")
        key_code = _int(data.get("keyCode", 0), 0, 255, "keyCode")
        location = _int(data.get("location", 0), 0, 3, "location")
        text = ""
        if down and not modifiers & (CTRL | META):
            text = "\r" if key == "Enter" else key if len(key) == 1 else ""
        params: dict[str, Any] = {
            "type": ("keyDown" if text else "rawKeyDown") if down else "keyUp",
            "modifiers": modifiers,
            "key": key,
            "code": code,
            "windowsVirtualKeyCode": key_code,
            "nativeVirtualKeyCode": key_code,
            "autoRepeat": bool(data.get("repeat", False)),
            "isKeypad": location == 3,
            "location": location,
        }
        if text:
            params["text"] = params["unmodifiedText"] = text
        return "Input.dispatchKeyEvent", params
    text = data["text"]
    if not isinstance(text, str) or not 0 < len(text) <= MAX_TEXT:
        raise ValueError(f"text must be 1 to {MAX_TEXT} characters")
    return "Input.insertText", {"text": text}


def _int(value: Any, low: int, high: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}")
    return value


def _number(value: Any, bound: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError(f"{name} must be a number")
    return float(max(-bound, min(bound, value)))


def _fraction(value: Any, name: str) -> float:
    """A coordinate as a fraction of the frame, kept within it."""
    return max(0.0, min(1.0, _number(value, 2.0, name)))


def _short(value: Any, name: str) -> str:
    if not isinstance(value, str) or len(value) > 32:
        raise ValueError(f"{name} must be a string of at most 32 characters")
    return value


def _side(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("not a number")
    return max(MIN_SIDE, min(MAX_SIDE, int(value)))


def _reason(text: str) -> str:
    """A close reason within the 123 bytes a close frame allows."""
    return text.encode("utf-8")[:123].decode("utf-8", errors="ignore")


def _ignore(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()
