"""Private folders of this user: where a host keeps session files (issue 19) and
recordings (issue 20), which hold what pages showed and what was typed into them.

Both may default to the shared temp folder, where another user could have made the path
first (a folder of theirs, or a link to one): :func:`own_folder` makes the folder ``0700``
and says whether it is a directory of this user.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def user_id() -> int:
    """This process's effective user (0 where the platform has none)."""
    return os.geteuid() if hasattr(os, "geteuid") else 0


def own_folder(path: str | Path, *, follow_link: bool = False, narrow: bool = False) -> bool:
    """Make ``path`` (``0700``, parents too) if it is missing; whether it is a directory of
    this user, and not a link unless ``follow_link``. With ``narrow``, one of this user's that
    others may read is made ``0700``. ``OSError`` (it cannot be made) reaches the caller."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.stat(path) if follow_link else os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != user_id():
        return False
    if narrow and stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return True
