"""A PDF's text as Markdown, with pypdfium2 (PDFium; BSD-3-Clause / Apache-2.0).

Chosen by measurement among the maintained, permissively licensed libraries (PyMuPDF is
AGPL, so out): on local PDFs Chromium printed (text, a table, two columns, 20 pages),
pypdfium2, pypdf and pdfminer.six all keep the words in order, pdfminer.six breaks a
table's rows into column blocks, and pypdfium2 is about 15x faster than pypdf and 35x than
pdfminer.six (the README's "PDFs as text" has the figures; ``make bench ARGS=--files``
measures them again).

PDFium gives the text in reading order, one line per line, with each character's font
size and box and whether it is a gap PDFium inserted between two text runs. The Markdown
is made from those, by rules no library offers over PDFium:

* a line in a font well above the body's size is a heading (``#`` to ``###``);
* a vertical gap larger than half a line starts a new paragraph;
* two or more lines in a row cut into the same number of cells (two or more) by inserted
  gaps are a table (a pipe table, the first row its header), so rows stay rows;
* pages are separated by ``---``.

A PDF without a text layer (a scan) has no characters: :attr:`PdfText.has_text` is False.
PDFium is not thread-safe, so one lock serialises its use in this process.
"""

from __future__ import annotations

import statistics
import threading
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

MAX_PAGES = 500
"""Pages converted at most; past them the text says where it stopped."""

_LOCK = threading.Lock()


@dataclass
class PdfText:
    """A PDF read: its Markdown and plain text, its pages, its title."""

    markdown: str
    text: str
    pages: int
    title: str
    has_text: bool
    pages_read: int


@dataclass
class _Line:
    text: str
    cells: list[str]
    size: float
    top: float
    bottom: float


def read_pdf(source: str | bytes) -> PdfText:
    """The text of the PDF at path ``source`` (or its bytes). Raises ``ValueError`` for a
    file that is not a PDF PDFium can open (or one with a password)."""
    with _LOCK:
        try:
            document = pdfium.PdfDocument(source)
        except pdfium.PdfiumError as exc:
            raise ValueError(f"not a readable PDF ({exc})") from None
        try:
            count = len(document)
            title = str(document.get_metadata_value("Title") or "").strip()
            pages = [_page_lines(document, i) for i in range(min(count, MAX_PAGES))]
        finally:
            document.close()
    body = _body_size(pages)
    markdown = "\n\n---\n\n".join(_page_markdown(lines, body) for lines in pages).strip()
    text = "\n\n".join("\n".join(line.text for line in lines) for lines in pages).strip()
    has_text = any(line.text.strip() for lines in pages for line in lines)
    if count > MAX_PAGES:
        note = f"\n\n(the first {MAX_PAGES} of {count} pages; the rest is not shown)"
        markdown, text = markdown + note, text + note
    return PdfText(markdown, text, count, title, has_text, min(count, MAX_PAGES))


def _page_lines(document: pdfium.PdfDocument, index: int) -> list[_Line]:
    page = document[index]
    textpage = page.get_textpage()
    try:
        raw = textpage.raw
        count = textpage.count_chars()
        text = textpage.get_text_range(0, count) if count else ""
        lines: list[_Line] = []
        start = 0
        for part in text.split("\r\n"):
            end = min(start + len(part), count)
            cells = [""]
            cut = start
            for i in range(start, end):  # PDFium's inserted gaps cut the line into cells
                if text[i] == " " and pdfium_c.FPDFText_IsGenerated(raw, i) == 1:
                    cells[-1] = text[cut:i]
                    cells.append("")
                    cut = i + 1
            cells[-1] = text[cut:end]
            visible = [i for i in range(start, end) if not text[i].isspace()]
            samples = visible[:: max(1, len(visible) // 3)][:3]  # a few chars tell the size
            sizes = [pdfium_c.FPDFText_GetFontSize(raw, i) for i in samples]
            top = bottom = None
            if visible:
                _, bottom, _, top = textpage.get_charbox(visible[0])
            stripped = [c.strip() for c in cells if c.strip()]
            if stripped:
                lines.append(
                    _Line(
                        text=" ".join(stripped),
                        cells=stripped,
                        size=statistics.median(sizes) if sizes else 0.0,
                        top=top or 0.0,
                        bottom=bottom or 0.0,
                    )
                )
            start = end + 2  # the "\r\n" PDFium puts between lines
        return lines
    finally:
        textpage.close()
        page.close()


def _body_size(pages: list[list[_Line]]) -> float:
    """The font size most of the text is in."""
    weights: dict[float, int] = {}
    for lines in pages:
        for line in lines:
            key = round(line.size, 1)
            weights[key] = weights.get(key, 0) + len(line.text)
    return max(weights, key=lambda k: weights[k]) if weights else 0.0


def _page_markdown(lines: list[_Line], body: float) -> str:
    out: list[str] = []
    previous: _Line | None = None
    i = 0
    while i < len(lines):
        table = _table_at(lines, i)
        if table:
            out.append("")
            out.extend(_pipe_table([line.cells for line in lines[i : i + table]]))
            out.append("")
            previous = lines[i + table - 1]
            i += table
            continue
        line = lines[i]
        level = _heading_level(line, body)
        if level:
            out += ["", "#" * level + " " + line.text, ""]
        else:
            height = max(line.top - line.bottom, line.size * 0.5, 1.0)
            gap = previous.bottom - line.top if previous is not None else 0.0
            if previous is not None and gap > height * 0.5 and out and out[-1] != "":
                out.append("")
            out.append(_escape_start(line.text))
        previous = line
        i += 1
    text = "\n".join(out)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()


def _heading_level(line: _Line, body: float) -> int:
    if body <= 0 or len(line.text) > 120 or line.size < body * 1.15:
        return 0
    ratio = line.size / body
    return 1 if ratio >= 1.6 else 2 if ratio >= 1.3 else 3


def _table_at(lines: list[_Line], i: int) -> int:
    """How many lines from ``i`` form a table (0: none)."""
    width = len(lines[i].cells)
    if width < 2:
        return 0
    n = 1
    while i + n < len(lines) and len(lines[i + n].cells) == width:
        n += 1
    return n if n >= 2 else 0


def _pipe_table(rows: list[list[str]]) -> list[str]:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [row(rows[0]), "| " + " | ".join("---" for _ in rows[0]) + " |", *map(row, rows[1:])]


def _escape_start(text: str) -> str:
    """A text line that Markdown would read as a heading, quote or rule stays text."""
    if text.startswith(("#", ">", "---", "===")):
        return "\\" + text
    return text
