"""The browser runtime: one thread, one asyncio loop, and every Playwright object.

Playwright objects are not thread-safe, so they are created and used only on this
loop. Flask threads hand coroutines over with :meth:`BrowserRuntime.submit` and wait for
the result with a timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from playwright.async_api import Browser, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from flask_sessions.errors import BrowserUnavailable, OperationTimeout, PageFailed, SessionsError
from flask_sessions.host.browser import BrowserChoice, find_browser, launch_args
from flask_sessions.host.egress import EgressProxy
from flask_sessions.host.upstream import ALLOW_ALL

if TYPE_CHECKING:
    from flask_sessions.host.cdp import DebuggingPort

log = logging.getLogger("flask_sessions")

T = TypeVar("T")

LEFTOVER_TASKS_SECONDS = 5.0  # at shutdown: how long the loop's other tasks get to end


class BrowserRuntime:
    """Owns the loop thread, Playwright and the one Chromium ``Browser``.

    Example::

        runtime = BrowserRuntime(browser_path=None, extra_args=())
        browser = runtime.submit(runtime.browser(), timeout=30)  # launched lazily
        runtime.stop()
    """

    def __init__(
        self,
        browser_path: str | None = None,
        extra_args: tuple[str, ...] = (),
        on_browser_lost: Callable[[str], None] | None = None,
        egress: EgressProxy | None = None,
    ) -> None:
        self._browser_path = browser_path
        self.egress = egress  # the proxy every connection of Chromium goes through, if any
        self._extra_args = extra_args
        self.on_browser_lost = on_browser_lost
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopped = False
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._launch_lock: asyncio.Lock | None = None
        self._closing_browser = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.choice: BrowserChoice | None = None
        self.launches = 0
        self.crashes = 0
        self.launch_error: str | None = None  # why the last launch failed, until one works
        self.launch_failed_at: float | None = None  # time.monotonic() of that failure
        self.stopping = False  # set at the first sign of shutdown (a signal, stop())
        self._pid = os.getpid()  # the process whose loop thread and Chromium these are
        self.debugging: DebuggingPort | None = None  # the CDP proxy's channel (cdp.py)
        # per-session upstream proxies (issue 18a): the chain when there is no egress proxy
        self._chain: EgressProxy | None = None
        self.traces_dir: str | None = None  # where tracing writes (recording.py, issue 20)

    # ----------------------------------------------------------- thread side

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        self.start()
        assert self._loop is not None
        return self._loop

    def forked(self) -> bool:
        """Whether this process is a fork of the one the runtime was made in."""
        return os.getpid() != self._pid

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's thread, loop, Playwright and Chromium.

        None of them crossed the fork (threads do not; the driver and Chromium are the
        parent's children), so the child starts its own on first use. The parent's stay
        the parent's: its shutdown closes them.
        """
        self._pid = os.getpid()
        self._start_lock = threading.Lock()
        self._loop = self._thread = None
        self._playwright = self._browser = None
        self._launch_lock = None
        self._tasks = set()
        self._closing_browser = False
        self.stopping = False

    def start(self) -> None:
        """Start the loop thread (idempotent)."""
        with self._start_lock:
            if self._stopped:
                raise BrowserUnavailable("the browser runtime has shut down; restart the server")
            if self._thread is not None:
                return
            # Made in an empty context: the loop's own handles copy the context they are
            # made in, and the caller's (a Flask request's) would keep the app alive.
            loop = contextvars.Context().run(asyncio.new_event_loop)
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=run, name="flask-sessions-runtime", daemon=True)
            thread.start()
            ready.wait()
            self._loop, self._thread = loop, thread

    @property
    def loop_started(self) -> bool:
        return self._thread is not None

    @property
    def on_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and wait up to ``timeout`` seconds for its result.

        On timeout the coroutine is cancelled and ``OperationTimeout`` raised. Errors the
        coroutine raises are re-raised here, in the calling thread.
        """
        if self.on_loop_thread:
            coro.close()
            raise RuntimeError("submit() called from the runtime thread; await instead")
        try:
            # In an empty context: the task must not keep the caller's contextvars (Flask's
            # request and app contexts), or a long-lived task would keep the app alive.
            future = contextvars.Context().run(asyncio.run_coroutine_threadsafe, coro, self.loop)
        except BaseException:
            coro.close()
            raise
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise OperationTimeout(
                f"the browser did not answer within {timeout:g} s; retry, or raise "
                "SESSIONS_OPERATION_TIMEOUT_SECONDS if pages are slow"
            ) from None

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` as a background task on the loop (cancelled at stop)."""

        def create() -> None:
            task = self.loop.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self.loop.call_soon_threadsafe(create, context=contextvars.Context())

    def begin_shutdown(self) -> None:
        """Shutdown has begun: Chromium exiting from now on is expected, not a crash.

        Called from signal handlers, before anything else: Ctrl-C reaches Chromium (the
        terminal signals the whole process group) and it may exit before we close it.
        """
        self.stopping = True

    def stop(self, timeout: float = 20.0) -> None:
        """Cancel background tasks, close the browser and Playwright, end the thread."""
        self.stopping = True
        with self._start_lock:
            if self._stopped:
                return
            self._stopped = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            future.result(timeout)
        except Exception:  # shutdown must go on whatever failed
            log.exception("flask_sessions: error while closing the browser")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()

    # ------------------------------------------------------------- loop side

    async def browser(self) -> Browser:
        """The running Browser, launched now if it never was or has died."""
        if self._browser is not None and self._browser.is_connected():
            return self._browser
        if self._launch_lock is None:
            self._launch_lock = asyncio.Lock()
        async with self._launch_lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            self._browser = await self._launch()
            return self._browser

    async def _launch(self) -> Browser:
        if self._stopped:
            raise BrowserUnavailable("the browser runtime is shutting down")
        try:
            choice = find_browser(self._browser_path)
        except BrowserUnavailable as exc:
            log.error("flask_sessions: %s", exc.message)
            self._launch_failed(exc.message)
            raise
        args = launch_args(self._extra_args)
        if self.egress is not None:
            try:
                await self.egress.start()
            except OSError as exc:
                raise BrowserUnavailable(f"the egress proxy could not start: {exc}") from None
            args += self.egress.browser_args()
        if self._playwright is None:
            self._playwright = await async_playwright().start()
        if self.debugging is not None:
            args += self.debugging.launch_args()
        try:
            browser = await self._playwright.chromium.launch(
                executable_path=choice.executable,
                args=args,
                headless=True,
                traces_dir=self.traces_dir,
                # Ctrl-C reaches Playwright's driver (our process group): it must not close
                # Chromium before shutdown has written persisting profiles back (issue 18);
                # shutdown closes it, and Chromium exits with the driver in any case.
                handle_sigint=False,
                handle_sigterm=False,
                handle_sighup=False,
            )
        except PlaywrightError as exc:
            log.error("flask_sessions: launching %s failed: %s", choice.describe(), exc)
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "unknown error"
            message = (
                f"Chromium ({choice.describe()}) failed to start: {first_line}; "
                "check the server log, or set SESSIONS_BROWSER_PATH to a working Chromium"
            )
            self._launch_failed(message)
            raise BrowserUnavailable(message) from None
        self.choice = choice
        self.launches += 1
        self.launch_error = self.launch_failed_at = None
        browser.on("disconnected", self._on_disconnected)
        log.info("flask_sessions: launched %s (Chromium %s)", choice.describe(), browser.version)
        if self.debugging is not None:
            await self.debugging.discover(browser)
        return browser

    def _launch_failed(self, message: str) -> None:
        self.launch_error, self.launch_failed_at = message, time.monotonic()

    def _on_disconnected(self, browser: Browser) -> None:
        if browser is self._browser:
            self._browser = None
        if self._closing_browser or self.stopping:
            log.info("flask_sessions: Chromium closed")
            return
        self.crashes += 1
        log.error("flask_sessions: Chromium exited unexpectedly; it relaunches on next start")
        if self.on_browser_lost is not None:
            self.on_browser_lost("Chromium exited unexpectedly; start a new session")

    async def _shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._closing_browser = True
        if self._browser is not None:
            with contextlib.suppress(PlaywrightError):
                await self._browser.close()
            self._browser = None
        if self._playwright is not None:
            await self._playwright.stop()
            self._playwright = None
        if self.egress is not None:
            await self.egress.stop()
        if self._chain is not None:
            await self._chain.stop()
        # what else still runs on the loop (a live view's frames, a CDP client's pump): ended
        # here, as asyncio.run ends its tasks, not dropped half-way when the loop closes
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        if others:
            await asyncio.wait(others, timeout=LEFTOVER_TASKS_SECONDS)

    # ------------------------------------------- per-session browser options (issue 18a)

    async def devices(self) -> dict[str, dict[str, Any]]:
        """Playwright's device descriptors, by name (the driver's own list; Playwright starts
        now if it has not)."""
        if self._playwright is None:
            await self.browser()
        assert self._playwright is not None
        return self._playwright.devices

    async def chain_proxy(self) -> EgressProxy:
        """The proxy a session's own upstream proxy is chained behind: the egress proxy, or,
        when the policy blocks nothing (no egress proxy: Chromium connects directly), one
        started for the chains alone (it allows every address, as the policy does)."""
        if self.egress is not None:
            await self.egress.start()
            return self.egress
        if self._chain is None:
            self._chain = EgressProxy(ALLOW_ALL)
        await self._chain.start()
        return self._chain

    def explain_egress(self, url: str) -> str | None:
        """Why the egress proxy just refused (or could not reach) ``url``; None if it did not."""
        proxy = self.egress if self.egress is not None else self._chain
        return proxy.explain(url) if proxy is not None else None

    @property
    def browser_connected(self) -> bool:
        return self._browser is not None and self._browser.is_connected()


def wrap_playwright_error(
    exc: PlaywrightError, doing: str, browser_connected: bool = False
) -> SessionsError:
    """A Playwright failure while ``doing`` something, with the status that says whose it is:

    - 504 ``OperationTimeout``: a Playwright timeout; the page was slow or hung, the
      browser is fine (a screenshot that takes longer than SESSIONS_ACTION_TIMEOUT_MS);
    - 503 ``BrowserUnavailable``: Chromium is gone (``browser_connected`` is False);
    - 502 ``PageFailed``: Chromium is up, but the page failed the operation.

    A page that crashed or was closed is the caller's to tell first (the session ends:
    409), see ``target_gone``.
    """
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, PlaywrightTimeoutError):
        return OperationTimeout(
            f"the page did not answer in time while {doing}: {first_line}; the session is "
            "still there: retry, or observe to see what the page is doing"
        )
    if not browser_connected:
        return BrowserUnavailable(f"the browser failed while {doing}: {first_line}")
    return PageFailed(f"the page failed while {doing}: {first_line}")


def target_gone(exc: PlaywrightError) -> bool:
    """True if ``exc`` says the page (or its context or browser) crashed or was closed."""
    text = str(exc)
    return type(exc).__name__ == "TargetClosedError" or any(
        marker in text for marker in ("Target crashed", "Page crashed", "has been closed")
    )
