"""What an action's downloads mean for its answer (issue 19): the downloads a step (or an
observe's ``url``) started, and the PDF it led to, read as text.

Headless Chromium has no PDF viewer: a navigation to a PDF (``goto``, a link, an observe or
scrape ``url``) becomes a download, the tab stays on the page it was on, and Playwright's
``goto`` fails with "Download is starting". So after an action, when the current tab's last
main-frame load ended without showing a document and a download of that same URL began, the
action "led to" that download. If it is a PDF, it is waited for (up to the navigation
timeout), read with :func:`flask_sessions.page.pdf.read_pdf` (in a worker thread), and the
answer is its text: ``content_type: "application/pdf"``, ``pages``, the Markdown as
``text`` (observe, step) or ``content`` (scrape). The tab "shows" that PDF until its next
load: an observe or scrape without ``url`` answers it again (``SessionFiles.pdf_view``).
Any other download is listed in ``downloads`` and the load's abort is not an error.
"""

from __future__ import annotations

import asyncio
import html
import posixpath
from dataclasses import dataclass
from urllib.parse import urlsplit

from playwright.async_api import Request

from flask_sessions.config import Settings
from flask_sessions.host.files import FileEntry, SessionFiles
from flask_sessions.host.live import LiveSession
from flask_sessions.page.pdf import PdfText, read_pdf
from flask_sessions.page.state import Tab
from flask_sessions.schemas import DownloadInfo, Observation

PDF = "application/pdf"
ANNOUNCE_SECONDS = 2.0  # how long a load that became a download waits for its announcement


@dataclass
class PdfView:
    """The PDF a tab's load led to: read, or why not."""

    tab: Tab
    load: Request
    url: str
    name: str
    pdf: PdfText | None = None
    error: str | None = None

    @property
    def title(self) -> str:
        return (self.pdf.title if self.pdf else "") or self.name

    def shown(self, files: SessionFiles, tab: Tab) -> bool:
        """Whether ``tab`` still shows this PDF (no load since)."""
        return files.pdf_view is self and tab is self.tab and tab.load is self.load


@dataclass
class ActionFiles:
    """The downloads an action started, and the PDF it led to (if any)."""

    downloads: list[FileEntry]
    pdf: PdfView | None = None
    became: FileEntry | None = None  # the download the tab's load became

    def step_outcome(self, success: bool, message: str) -> tuple[bool, str]:
        """A step's ``(success, message)``, told what its downloads were."""
        if self.became is not None and not success and "Download is starting" in message:
            success, message = True, f"opened {self.became.url}: the browser downloads it"
        message += self.message()
        if self.pdf is not None:
            if self.pdf.error:
                return False, f"{message}; but {self.pdf.error}"
            pages = self.pdf.pdf.pages if self.pdf.pdf else 0
            message += f"; it is a PDF ({pages} page(s)): the observation's text is its text"
        return success, message

    def infos(self) -> list[DownloadInfo]:
        return [entry.download_info() for entry in self.downloads]

    def message(self) -> str:
        """Words for a step's ``message``: what it downloaded."""
        if not self.downloads:
            return ""
        listed = ", ".join(
            f"{e.name} ({e.state.replace('_', ' ')}, {e.size:,} bytes)" for e in self.downloads
        )
        return f"; it started {len(self.downloads)} download(s): {listed}"


def mark(live: LiveSession) -> tuple[int, int] | None:
    """Where the session's downloads stand before an action."""
    return live.files.downloads.mark() if live.files is not None else None


async def after_action(
    live: LiveSession, settings: Settings, before: tuple[int, int] | None
) -> ActionFiles:
    """The downloads started since ``before`` (waited for within SESSIONS_SETTLE_MS), and
    the PDF the current tab's load became, read."""
    files = live.files
    if files is None or before is None:
        return ActionFiles([])
    downloads = files.downloads
    tab = live.state.tab
    load = tab.load
    became_download = bool(
        load is not None and load is not tab.committed and load not in tab.inflight and tab.error
    )
    started = await downloads.started_since(before, 1.0)
    entry = None
    if became_download and load is not None:  # its announcement may come a little later
        entry = await downloads.announced(before, load.url, ANNOUNCE_SECONDS)
        started = downloads.files.downloads_after(before[0])
    if entry is not None and _looks_like_pdf(entry):  # the answer is its text: wait for it
        await downloads.finished(entry, settings.navigation_timeout_ms / 1000)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.settle_ms / 1000  # the others, as long as a settle
    for other in started:
        await downloads.finished(other, max(0.0, deadline - loop.time()))
    result = ActionFiles(started, became=entry)
    if entry is None or load is None:
        return result
    tab.error = None  # the load became this download: not a failed load
    if not _looks_like_pdf(entry):
        return result
    view = PdfView(tab, load, load.url, entry.name)
    if entry.state == "too_large":
        view.error = (
            f"the PDF at {load.url} is larger than the session's files may hold "
            f"({files.limit_mb:g} MB, SESSIONS_MAX_SESSION_FILES_MB); it was not kept"
        )
    elif entry.state != "complete":
        view.error = f"the PDF at {load.url} did not download ({entry.state.replace('_', ' ')})"
    elif entry.content_type == PDF:
        try:
            view.pdf = await asyncio.to_thread(read_pdf, files.path(entry))
        except ValueError as exc:
            view.error = f"{entry.name} is {exc}"
    else:
        return result  # named .pdf, but its bytes are not a PDF: just a download
    files.pdf_view = view
    result.pdf = view
    return result


def current_pdf(live: LiveSession) -> PdfView | None:
    """The PDF the current tab shows (its last load led to it), if any."""
    files = live.files
    view = files.pdf_view if files is not None else None
    if not isinstance(view, PdfView) or files is None or not view.shown(files, live.state.tab):
        return None
    return view


def _looks_like_pdf(entry: FileEntry) -> bool:
    if entry.content_type == PDF:
        return True
    path = urlsplit(entry.url or "").path
    return posixpath.splitext(path)[1].lower() == ".pdf" or entry.name.lower().endswith(".pdf")


def apply(
    observation: Observation,
    action: ActionFiles | None,
    view: PdfView | None,
    live: LiveSession,
    settings: Settings,
) -> Observation:
    """The observation with the action's downloads, and, when the tab shows a PDF, the PDF
    in place of the page (no actions: the ids of the page it hides are dropped)."""
    if action is not None:
        observation.downloads = action.infos()
    if view is None:
        return observation
    observation.url = view.url
    observation.title = view.title
    observation.content_type = PDF
    observation.error = view.error
    observation.actions, observation.actions_total, observation.actions_truncated = [], 0, False
    observation.frames = []
    live.state.ids = {}
    if view.pdf is None:
        observation.text, observation.text_truncated, observation.pages = "", False, None
        return observation
    pdf = view.pdf
    limit = settings.observe_max_text
    observation.pages = pdf.pages
    observation.text = pdf.markdown[:limit].rstrip()
    observation.text_truncated = len(pdf.markdown) > limit
    if not pdf.has_text:
        observation.warnings.append(no_text_layer(view))
    return observation


def no_text_layer(view: PdfView) -> str:
    pages = view.pdf.pages if view.pdf else 0
    return (
        f"the PDF {view.name} has no text layer ({pages} page(s) of images: a scan?): there "
        "is no text to read; it is in the session's files"
    )


def scrape_answer(view: PdfView, fmt: str, selector: str | None) -> tuple[bool, str, str]:
    """``(success, message, content)`` of a scrape of the PDF the tab shows."""
    if view.error:
        return False, view.error, ""
    if selector is not None:
        return False, f"selector {selector!r} does not apply: the URL is a PDF, read whole", ""
    pdf = view.pdf
    assert pdf is not None
    if not pdf.has_text:
        return True, no_text_layer(view), ""
    if fmt == "text":
        content = pdf.text
    elif fmt == "html":
        content = "<pre>" + html.escape(pdf.text) + "</pre>"
    else:
        content = pdf.markdown
    return True, f"read the PDF {view.name} ({pdf.pages} page(s))", content
