"""What a session knows of its pages: the tabs, each tab's last load and network activity,
the dialogs it answered, and the ids of the last observation.

Everything here runs on the runtime loop. The Playwright events that feed it are the
context's (``page``, ``dialog``, ``request``…), so a tab opened by the page is watched from
its first request on, before anyone asked for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from playwright.async_api import (
    BrowserContext,
    CDPSession,
    Dialog,
    Frame,
    Page,
    Request,
    Response,
)
from playwright.async_api import Error as PlaywrightError

from flask_sessions.errors import SessionNotActive
from flask_sessions.host.egress import EGRESS_HEADER, TUNNEL_FAILED
from flask_sessions.schemas import Action, DialogInfo

NOT_RESPONDING = "the page is not responding"
DATA_TYPES = frozenset({"fetch", "xhr", "script", "eventsource"})
"""Requests whose end usually changes the page right after (a render, a script run)."""

MAX_INFLIGHT = 1000
"""Running requests remembered per tab (settling only looks at those a step started)."""

T = TypeVar("T")


class PageNotResponding(SessionNotActive):
    """409: the page's main thread did not answer a probe (a script that never yields)."""

    def __init__(self, probe_ms: int) -> None:
        super().__init__(
            f"{NOT_RESPONDING}: its main thread did not answer within {probe_ms} ms (a script "
            "that never yields?); step goto or reload to replace the page (cookies are kept)",
            status="active",
            page_not_responding=True,
        )


@dataclass
class Target:
    """An id of the last observation: its action, and the frames it sits in (outermost first)."""

    action: Action
    frames: tuple[str, ...] = ()


@dataclass
class Tab:
    """One page of the session, with its last main-frame load and its network activity."""

    page: Page
    http_status: int | None = None
    error: str | None = None
    load: Request | None = None  # the main-frame navigation http_status and error belong to
    egress_error: str | None = None  # that load's, once the egress proxy refused it
    loads: int = 0  # main-frame navigations seen (a redirect continues the one it ends)
    committed: Request | None = None  # the last ``load`` whose document replaced the old one
    answered: Request | None = None  # the last ``load`` whose server sent a response
    inflight: dict[Request, float] = field(default_factory=dict)  # request -> loop time
    last_network: float = 0.0  # loop time of the last request start or end
    last_data: float = 0.0  # loop time a fetch, XHR or script ended
    cdp: CDPSession | None = None
    # the ``committed`` load whose document's web fonts were seen loaded (captures skip the
    # wait from then on); a fresh tab has seen none
    fonts_loaded_in: Request | bool | None = False

    @property
    def navigating(self) -> bool:
        """A main-frame navigation is on its way: requested, its document not shown yet."""
        return (
            self.load is not None
            and self.load is not self.committed
            and (self.load in self.inflight)
        )

    @property
    def awaiting_server(self) -> bool:
        """A main-frame navigation waits for its server's first answer. Chromium holds CDP
        commands to the page until that navigation commits, so a probe then says nothing
        of the page's main thread."""
        return self.navigating and self.answered is not self.load

    def busy_since(self, since: float) -> bool:
        """Whether a request started at or after ``since`` is still running (the document
        on show does not count: its end may be reported after its load event)."""
        return any(
            started >= since and request is not self.committed
            for request, started in self.inflight.items()
        )


@dataclass
class _Answer:
    accept: bool
    prompt_text: str | None
    explicit: bool


class PageState:
    """A session's pages: tabs in opening order and the current one; see the module doc."""

    def __init__(
        self,
        context: BrowserContext,
        probe_ms: int = 2000,
        accepts: Callable[[Page], bool] | None = None,
    ) -> None:
        self.context = context
        self.probe_ms = probe_ms
        self.accepts = accepts  # False: a page the session's limits closed (over the cap)
        self.egress: Callable[[str], str | None] | None = None  # why the proxy refused a URL
        self.tabs: list[Tab] = []
        self.current = 0
        self.ids: dict[str, Target] = {}
        self.ended = asyncio.Event()
        self.hung = False  # the current page failed its last probe
        self.dialogs: list[DialogInfo] = []  # answered since the last observation
        self.on_crash: Callable[[], None] | None = None  # the current page crashed
        self._answer: _Answer | None = None  # how the running step answers dialogs
        self._step_dialogs: list[tuple[DialogInfo, bool]] | None = None
        self._opened: list[Page] | None = None  # pages opened while a step runs
        self._tab_opened = asyncio.Event()
        self.window_opened = False  # the running step's page opened a window
        self._by_page: dict[Page, Tab] = {}
        self._background: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------- tabs

    @property
    def tab(self) -> Tab:
        return self.tabs[self.current]

    @property
    def page(self) -> Page:
        return self.tabs[self.current].page

    def watch(self) -> None:
        """Listen to the context: pages, dialogs and every page's network."""
        ctx = self.context
        ctx.on("page", self._on_page)
        ctx.on("dialog", self._on_dialog)
        ctx.on("request", self._on_request)
        ctx.on("response", self._on_response)
        ctx.on("requestfinished", self._on_finished)
        ctx.on("requestfailed", self._on_failed)

    def adopt(self, page: Page) -> Tab:
        """The tab of ``page``, made (and appended) the first time it is seen."""
        tab = self._by_page.get(page)
        if tab is None:
            tab = Tab(page)
            self._by_page[page] = tab
            self.tabs.append(tab)
            page.on("close", self._on_close)
            page.on("crash", self._on_crash)
            page.on("framenavigated", lambda frame: _committed(tab, frame))
        return tab

    def _on_page(self, page: Page) -> None:
        if self.accepts is not None and not self.accepts(page):
            self._tab_opened.set()  # it came, and the page cap closed it: stop waiting
            return  # never a tab
        self.adopt(page)
        if self._opened is not None:
            self._opened.append(page)
            self._tab_opened.set()

    def _on_close(self, page: Page) -> None:
        tab = self._by_page.get(page)
        if tab is None or len(self.tabs) == 1:
            return  # the last tab stays until ensure_page replaces it
        self._remove(tab)

    def _remove(self, tab: Tab) -> None:
        index = self.tabs.index(tab)
        self.tabs.pop(index)
        del self._by_page[tab.page]
        if index < self.current or (index == self.current and index > 0):
            self.current -= 1
        self.current = min(self.current, len(self.tabs) - 1)

    def _on_crash(self, page: Page) -> None:
        tab = self._by_page.get(page)
        if tab is None:
            return
        if tab is self.tab:
            if self.on_crash is not None:
                self.on_crash()
        elif len(self.tabs) > 1:  # a background tab: drop it
            self._remove(tab)
            self._spawn(self._close_page(page))

    async def ensure_page(self) -> None:
        """Make sure the current tab is open (the page may have closed its last tab)."""
        if not self.tabs or self.page.is_closed():
            old = self.tabs[self.current] if self.tabs else None
            tab = self.adopt(await self.context.new_page())
            if old is not None:
                self._remove(old)
            self.current = self.tabs.index(tab)
            self.hung = False

    async def replace_page(self) -> Page:
        """A new page in the same context (cookies kept) in place of the current one.

        The old page is closed first, so the new one fits under the page cap.
        """
        old = self.tab
        index = self.current
        await self._close_page(old.page)
        page = await self.context.new_page()
        if page.is_closed() or (self.accepts is not None and not self.accepts(page)):
            raise SessionNotActive(
                "the page stopped responding and no new page fits under the session's page "
                "cap (SESSIONS_MAX_PAGES_PER_SESSION): close_tab another tab, then goto",
                status="active",
            )
        tab = self.adopt(page)
        self.tabs.remove(tab)
        if old in self.tabs:  # the last tab stays in the list when it closes
            self.tabs.remove(old)
        index = min(index, len(self.tabs))
        self.tabs.insert(index, tab)
        self._by_page.pop(old.page, None)
        self.current = index
        self.hung = False
        return page

    async def close_tab(self, index: int) -> None:
        tab = self.tabs[index]
        self._remove(tab)
        self._spawn(self._close_page(tab.page))
        with contextlib.suppress(PlaywrightError):
            await self.page.bring_to_front()

    async def switch_to(self, index: int) -> None:
        self.current = index
        self.hung = False
        with contextlib.suppress(PlaywrightError):
            await self.page.bring_to_front()

    async def _close_page(self, page: Page) -> None:
        with contextlib.suppress(PlaywrightError, asyncio.TimeoutError):
            await asyncio.wait_for(page.close(run_before_unload=False), 10)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------ a step's span

    def begin_step(self, dialog: str | None, prompt_text: str | None) -> None:
        """From now on collect opened tabs and dialogs; answer dialogs as the step says."""
        self._opened = []
        self._tab_opened.clear()
        self.window_opened = False
        self._step_dialogs = []
        if dialog is not None or prompt_text is not None:
            self._answer = _Answer(dialog != "dismiss", prompt_text, True)
        else:
            self._answer = None

    def opened(self) -> list[Page]:
        """Tabs the running step opened so far, still open."""
        return [p for p in self._opened or [] if p in self._by_page and not p.is_closed()]

    async def wait_for_tab(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the running step to open a tab (a target=_blank link)."""
        if not self.opened():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._tab_opened.wait(), seconds)

    def end_step(self) -> list[tuple[DialogInfo, bool]]:
        """Stop collecting; the dialogs of the step, each with whether the step chose the answer."""
        dialogs = self._step_dialogs or []
        self._opened = self._step_dialogs = self._answer = None
        return dialogs

    def take_dialog(self) -> DialogInfo | None:
        """The last dialog since the previous observation (then forgotten)."""
        last = self.dialogs[-1] if self.dialogs else None
        self.dialogs = []
        return last

    async def _on_dialog(self, dialog: Dialog) -> None:
        # alert/confirm/prompt would block every later call on the page: always answer
        answer = self._answer or _Answer(False, None, False)
        accept = answer.accept
        try:
            if answer.accept:
                if dialog.type == "prompt":
                    text = answer.prompt_text
                    await dialog.accept(text if text is not None else dialog.default_value)
                else:
                    await dialog.accept()
            else:
                await dialog.dismiss()
        except PlaywrightError:
            return
        info = DialogInfo(
            type=dialog.type,
            message=dialog.message[:2000],
            answer="accepted" if accept else "dismissed",
            prompt_text=answer.prompt_text if dialog.type == "prompt" and accept else None,
        )
        self.dialogs.append(info)
        if self._step_dialogs is not None:
            self._step_dialogs.append((info, answer.explicit))

    # ------------------------------------------------------- network

    def _tab_of(self, request: Request) -> Tab | None:
        try:
            return self._by_page.get(request.frame.page)
        except PlaywrightError:
            return None  # a worker's request: no frame

    @staticmethod
    def _is_main_load(request: Request) -> bool:
        try:
            return request.is_navigation_request() and request.frame.parent_frame is None
        except PlaywrightError:
            return False

    def _on_request(self, request: Request) -> None:
        tab = self._tab_of(request)
        if tab is None:
            return
        now = asyncio.get_running_loop().time()
        if len(tab.inflight) >= MAX_INFLIGHT:  # streams that never end: forget the oldest
            for old in sorted(tab.inflight, key=tab.inflight.__getitem__)[: MAX_INFLIGHT // 2]:
                del tab.inflight[old]
        tab.inflight[request] = now
        tab.last_network = now
        if request.redirected_from is not None:
            tab.inflight.pop(request.redirected_from, None)
        if self._is_main_load(request):
            redirect = request.redirected_from is not None and request.redirected_from is tab.load
            if not redirect:
                tab.loads += 1
            tab.load, tab.http_status, tab.error, tab.egress_error = request, None, None, None

    def _on_response(self, response: Response) -> None:
        tab = self._tab_of(response.request)
        if tab is not None and response.request is tab.load:
            tab.answered = tab.load
            record_status(tab, response.status)
            if response.status >= 400 and EGRESS_HEADER.lower() in response.headers:
                self.refused(tab, response.request.url)

    def _ended(self, request: Request) -> Tab | None:
        tab = self._tab_of(request)
        if tab is None:
            return None
        now = asyncio.get_running_loop().time()
        tab.inflight.pop(request, None)
        tab.last_network = now
        if request.resource_type in DATA_TYPES:
            tab.last_data = now
        return tab

    def _on_finished(self, request: Request) -> None:
        self._ended(request)

    def _on_failed(self, request: Request) -> None:
        tab = self._ended(request)
        if tab is not None and request is tab.load:
            # only the failure of the load the page is on: a stopped or superseded earlier
            # navigation fails too, later, and must not colour this one
            tab.error = f"loading {request.url} failed: {request.failure or 'unknown error'}"
            if TUNNEL_FAILED in (request.failure or ""):
                self.refused(tab, request.url)

    def refused(self, tab: Tab, url: str) -> None:
        """The egress proxy answered for ``url`` itself: record why, in its words (the rule
        that blocked it), instead of a bare net::ERR_TUNNEL_CONNECTION_FAILED or 403."""
        reason = self.egress(url) if self.egress is not None else None
        if reason:
            tab.http_status = None
            tab.error = tab.egress_error = f"loading {url} failed: {reason}"

    # ------------------------------------------------------- liveness

    async def cdp(self, tab: Tab | None = None) -> CDPSession:
        tab = tab or self.tab
        if tab.cdp is None:
            tab.cdp = await self.context.new_cdp_session(tab.page)
        return tab.cdp

    async def responsive(self, tab: Tab | None = None) -> bool:
        """Whether the page's main thread answers a probe within ``probe_ms``.

        CDP ``Runtime.evaluate`` in the current document: unlike Playwright's evaluate it
        answers during a pending navigation, so only a busy main thread fails it.
        """
        tab = tab or self.tab
        if tab.page.is_closed():
            return True  # nothing to wait for; the next call reopens a page
        try:
            async with asyncio.timeout(self.probe_ms / 1000):
                cdp = await self.cdp(tab)
                await cdp.send("Runtime.evaluate", {"expression": "0", "returnByValue": True})
        except TimeoutError:
            return False
        except PlaywrightError:
            tab.cdp = None  # detached (a crash, a close): the next probe attaches again
            return True
        return True

    async def guarded(self, work: Awaitable[T]) -> T:
        """Await ``work``, probing the page every ``probe_ms`` while it runs.

        A page that stops answering (a click that started an endless script) ends the wait
        within two probe periods with :class:`PageNotResponding`, instead of the whole
        action or operation timeout. While a navigation waits for its server the page is not
        probed (see :attr:`Tab.awaiting_server`): a slow network is not a hung page, and
        the navigation timeout bounds that wait.
        """
        tab = self.tab
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.probe_ms / 1000)
                if done:
                    return task.result()
                if tab.awaiting_server:
                    continue
                if not await self.responsive(tab):
                    if tab is self.tab:
                        self.hung = True
                    raise PageNotResponding(self.probe_ms)
        finally:
            if not task.done():
                task.cancel()
                task.add_done_callback(_retrieve)

    async def still_hung(self) -> bool:
        """Whether a page found hung before still fails its probe (a healthy page is not
        probed: the watchdog of :meth:`guarded` notices a new hang)."""
        await self.ensure_page()
        if self.hung:
            self.hung = not await self.responsive()
        return self.hung

    async def check_responsive(self) -> None:
        """:class:`PageNotResponding` if the page is known hung and still fails its probe."""
        if await self.still_hung():
            raise PageNotResponding(self.probe_ms)


def _committed(tab: Tab, frame: Frame) -> None:
    if frame.parent_frame is None:
        tab.committed = tab.load


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def record_status(tab: Tab, status: int | None) -> None:
    tab.http_status = status
    if status is not None and status >= 400:
        tab.error = f"the server answered HTTP {status}"
