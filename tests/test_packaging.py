"""Our own packaging builds without warnings: the wheel carries the SPDX licence and its file.

The build runs without isolation, on the test extras' setuptools (the same floor as
``[build-system]``), so it needs no network.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_builds_without_deprecation_warnings(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            *("-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"),
            *("-w", str(tmp_path), str(ROOT)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for marker in ("deprecat", "BuildBackendWarning", "SetuptoolsWarning"):
        assert marker.lower() not in output.lower(), output
    (wheel,) = tmp_path.glob("flask_sessions-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata,) = (n for n in names if n.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode()
    assert "License-Expression: MIT" in text
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
