"""The command line: help, version, log level, a taken port, --port 0."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from flask_sessions.testing import descendants, server_env

from .conftest import alive, wait_for
from .test_server import ROOT

CONSOLE_SCRIPT = Path(sys.executable).parent / "flask-sessions"


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flask_sessions", *args],
        cwd=ROOT,
        env=server_env("cli-token"),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_help_lists_the_environment_and_has_no_markup() -> None:
    out = run("--help").stdout
    assert out.startswith("usage: python -m flask_sessions")
    for word in (
        "--log-level",
        "--version",
        "SESSIONS_TOKENS",
        "SESSIONS_MAX_SESSIONS_PER_PRINCIPAL",
    ):
        assert word in out
    assert "``" not in out


def test_console_script_says_its_own_name() -> None:
    out = subprocess.run(
        [str(CONSOLE_SCRIPT), "--help"], capture_output=True, text=True, timeout=30
    ).stdout
    assert out.startswith("usage: flask-sessions")


def test_version() -> None:
    from flask_sessions import __version__

    assert run("--version").stdout.strip() == f"flask_sessions {__version__}"


def test_bad_configuration_names_the_key_and_exits_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "flask_sessions", "--port", "0"],
        cwd=ROOT,
        env=server_env("t", SESSIONS_MAX_SESSION="5"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "did you mean SESSIONS_MAX_SESSIONS" in proc.stderr and "Traceback" not in proc.stderr


def test_a_taken_port_is_one_line_and_exit_2_before_anything_launches() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        started = time.monotonic()
        proc = run("--host", "127.0.0.1", "--port", str(port))
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "already in use" in lines[0] and str(port) in lines[0], proc.stderr
    assert "token" not in proc.stdout and "launched" not in proc.stderr
    assert time.monotonic() - started < 20


def test_port_zero_prints_the_real_port_and_log_level_applies() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask_sessions", "--port", "0", "--log-level", "warning"],
        cwd=ROOT,
        env=server_env("cli-token"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    children: set[int] = set()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "serving on http://127.0.0.1:" in line, line
        base = line.split("serving on ")[1].strip()
        assert not base.endswith(":0")
        assert requests.get(base + "/healthz", timeout=10).status_code == 200
        r = requests.get(
            base + "/sessions", headers={"Authorization": "Bearer cli-token"}, timeout=10
        )
        assert r.status_code == 200
        children = descendants(proc.pid)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert " INFO " not in err, err  # WARNING and up only
    assert wait_for(lambda: not alive(children), 10)
