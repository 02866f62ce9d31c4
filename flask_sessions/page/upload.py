"""The ``upload_file`` step (issue 19): session files into a page's file input.

The target is either an ``<input type=file>`` (its files are set directly, hidden or not),
or anything whose click opens a file chooser (a styled button, a label, a drop zone), whose
chooser is then answered. Paths come from the session's files (``PageState.file_paths``),
never from the request: a name that is not one of them is a ``success: false`` listing
those there are. Playwright sets the files by path (the browser is local), so a large file
is never read into memory.
"""

from __future__ import annotations

from playwright.async_api import Locator

from flask_sessions.page.state import PageState

_IS_FILE_INPUT = (
    "el => el instanceof HTMLInputElement && el.type === 'file' "
    "? {input: true, multiple: el.multiple} : {input: false, multiple: false}"
)


async def set_files(
    state: PageState, locator: Locator, label: str, names: list[str], timeout: int
) -> tuple[bool, str]:
    """Set the session files ``names`` on the target; ``(success, message)``."""
    if state.file_paths is None:
        return False, (
            "files are off on this server (SESSIONS_MAX_SESSION_FILES_MB=0): there is nothing "
            "to upload"
        )
    paths, missing = state.file_paths(names)
    if missing is not None:
        return False, missing
    listed = ", ".join(names)
    info = await locator.evaluate(_IS_FILE_INPUT, timeout=timeout)
    if info["input"]:
        if len(paths) > 1 and not info["multiple"]:
            return False, f"{label} takes one file (it is not <input multiple>); send one name"
        await locator.set_input_files(paths, timeout=timeout)
        return True, f"set {listed} on {label}"
    async with state.page.expect_file_chooser(timeout=timeout) as chooser_info:
        await locator.click(timeout=timeout)
    chooser = await chooser_info.value
    if len(paths) > 1 and not chooser.is_multiple():
        await chooser.set_files([], timeout=timeout)
        return False, f"the file chooser {label} opened takes one file; send one name"
    await chooser.set_files(paths, timeout=timeout)
    return True, f"clicked {label} and chose {listed} in the file chooser it opened"
