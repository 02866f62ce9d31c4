"""Finding a Chromium to launch, and the flags it is launched with.

Order: ``SESSIONS_BROWSER_PATH`` (config or environment), then a Chromium that
``playwright install`` put in Playwright's cache, then Debian's
``chromium-headless-shell``, then ``chromium``. Nothing is downloaded at run time.

``python -m flask_sessions --find-browser`` prints what it finds (exit 0) or what it
tried (exit 1); ``scripts/install-browser`` uses it.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from flask_sessions.errors import BrowserUnavailable

# Flags for a machine with no network and nothing to sync: no background requests,
# no component updates, no first-run work.
BASE_ARGS = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    # perception II (issue 22): a key that scrolls (PageDown, arrows) moves the page at once,
    # not over an animation the next observation would be in the middle of
    "--disable-smooth-scrolling",
)

# Debian's /usr/bin wrappers are shell scripts that do not exec; launching the real
# binary keeps Chromium a direct child of Playwright, so closing it ends it.
_SYSTEM_CANDIDATES = (
    ("chromium-headless-shell", "/usr/lib/chromium/chromium-headless-shell"),
    ("chromium", "/usr/lib/chromium/chromium"),
)

INSTALL_HINT = (
    "install one: on Debian/Ubuntu as root `apt-get install -y chromium-headless-shell`, "
    "elsewhere `python -m playwright install chromium`, or set SESSIONS_BROWSER_PATH "
    "to a Chromium executable (scripts/install-browser does the right one)"
)


@dataclass
class BrowserChoice:
    """What to launch, where it was found, and what was looked at before it."""

    executable: str
    source: str
    tried: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return f"{self.source}: {self.executable}"


def _is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def playwright_browsers_dir() -> Path:
    env = os.environ.get("PLAYWRIGHT_BROWSERS_PATH")
    if env and env != "0":
        return Path(env)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "ms-playwright"
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home())) / "ms-playwright"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ms-playwright"


def _playwright_installed() -> str | None:
    """A Chromium that ``playwright install`` downloaded, if any."""
    root = playwright_browsers_dir()
    patterns = (
        "chromium_headless_shell-*/chrome-*/chrome-headless-shell*",
        "chromium_headless_shell-*/chrome-*/headless_shell*",
        "chromium-*/chrome-*/chrome",
        "chromium-*/chrome-*/Chromium.app/Contents/MacOS/Chromium",
        "chromium-*/chrome-*/chrome.exe",
    )
    for pattern in patterns:
        for path in sorted(glob.glob(str(root / pattern)), reverse=True):
            if _is_executable(path):
                return path
    return None


def find_browser(configured: str | None = None) -> BrowserChoice:
    """Pick the Chromium to launch, or raise ``BrowserUnavailable`` saying what was tried."""
    tried: list[str] = []
    explicit = configured or os.environ.get("SESSIONS_BROWSER_PATH")
    if explicit:
        resolved = shutil.which(explicit) or explicit
        if _is_executable(resolved):
            return BrowserChoice(resolved, "SESSIONS_BROWSER_PATH", tried)
        raise BrowserUnavailable(
            f"SESSIONS_BROWSER_PATH={explicit!r} is not an executable file; "
            f"fix the path or unset it to search automatically ({INSTALL_HINT})"
        )
    tried.append("SESSIONS_BROWSER_PATH (unset)")

    installed = _playwright_installed()
    if installed:
        return BrowserChoice(installed, "playwright install", tried)
    tried.append(f"Playwright's browsers in {playwright_browsers_dir()}")

    for command, real_binary in _SYSTEM_CANDIDATES:
        if _is_executable(real_binary):
            return BrowserChoice(real_binary, f"system {command}", tried)
        found = shutil.which(command)
        if found:
            return BrowserChoice(found, f"system {command}", tried)
        tried.append(f"{command} on PATH and {real_binary}")

    raise BrowserUnavailable(f"no Chromium found (tried: {'; '.join(tried)}); {INSTALL_HINT}")


def launch_args(extra: tuple[str, ...] = ()) -> list[str]:
    """Chromium flags: the base set, ``--no-sandbox`` as root, then ``extra``."""
    args = list(BASE_ARGS)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to sandbox as root
    args.extend(a for a in extra if a not in args)
    return args


def main() -> int:
    try:
        choice = find_browser()
    except BrowserUnavailable as exc:
        print(exc.message, file=sys.stderr)
        return 1
    print(choice.describe())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
