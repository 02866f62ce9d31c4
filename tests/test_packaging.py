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


def test_the_editable_install_builds_without_warnings(tmp_path: Path) -> None:
    """What ``make install`` builds (PEP 660, as pip calls it) says nothing to the user."""
    script = (
        "import sys, setuptools.build_meta as backend; print(backend.build_editable(sys.argv[1]))"
    )
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "warning" not in output.lower(), output
    (wheel,) = tmp_path.glob("flask_sessions-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (pth,) = (n for n in archive.namelist() if n.endswith(".pth"))
        assert archive.read(pth).decode().strip() == str(ROOT)
