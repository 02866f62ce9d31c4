"""Real flask_sessions servers in subprocesses, for tests, benchmarks and demos.

::

    from flask_sessions.testing import serve

    with serve(tokens="t") as server:           # python -m flask_sessions on a free port
        with server.client() as client:        # a SessionsClient for it
            print(client.start().session_id)
    # stopped: SIGTERM, then SIGKILL; every process it started is gone (checked by PID)

Each process's output is read by threads into ``stdout`` and ``stderr`` (lists of lines), so
a full pipe never blocks it and a failure can show what it printed. Every process seen
below it (Playwright's driver, Chromium) is remembered, and :meth:`ServerProcess.stop`
kills whichever of them outlives it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any, Self

import httpx
import psutil

from flask_sessions.client import SessionsClient

READY_TIMEOUT = 45.0
STOP_TIMEOUT = 20.0


class ServerProcessError(RuntimeError):
    """The process exited before it was ready, or was not ready in time; says what it printed."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (the OS's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Playwright's driver, Chromium and its helpers)."""
    try:
        return {child.pid for child in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def alive(pids: Iterable[int]) -> set[int]:
    """The PIDs of ``pids`` still running (zombies count as gone)."""
    out = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.add(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def server_env(tokens: str | None, **extra: str) -> dict[str, str]:
    """This process's environment without its SESSIONS_* settings, plus the given ones.

    Inherited settings would make a server differ from what its caller asked; only
    ``SESSIONS_BROWSER_PATH`` (which Chromium) is kept. The reaper ticks every 0.5 s so
    timeouts show quickly (``SESSIONS_REAPER_INTERVAL_SECONDS`` in ``extra`` overrides it).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONS_")}
    if "SESSIONS_BROWSER_PATH" in os.environ:
        env["SESSIONS_BROWSER_PATH"] = os.environ["SESSIONS_BROWSER_PATH"]
    env.pop("PYTHONUNBUFFERED", None)  # the server must flush its token line itself
    if tokens is not None:
        env["SESSIONS_TOKENS"] = tokens
    env["SESSIONS_REAPER_INTERVAL_SECONDS"] = "0.5"
    env.update(extra)
    return env


def _pump(stream: IO[str], lines: list[str]) -> None:
    with contextlib.suppress(ValueError, OSError):
        for line in stream:
            lines.append(line)


@dataclass
class ServerProcess:
    """One subprocess serving at ``base``, what it printed, and every process seen below it."""

    proc: subprocess.Popen[str]
    base: str
    token: str | None = None
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    seen: set[psutil.Process] = field(default_factory=set)
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self, tail: int | None = None) -> str:
        """Exit code, stdout and stderr (their last ``tail`` lines each), for a failure."""
        out, err = self.stdout[-tail:] if tail else self.stdout, self.stderr
        err = err[-tail:] if tail else err
        return (
            f"exit code: {self.proc.poll()}\n--- stdout ---\n{''.join(out)}"
            f"--- stderr ---\n{''.join(err)}"
        )

    def remember_children(self) -> set[int]:
        """Note the processes below it now (they are killed if they outlive it); their PIDs."""
        with contextlib.suppress(psutil.Error):
            found = psutil.Process(self.pid).children(recursive=True)
            self.seen.update(found)
            return {p.pid for p in found}
        return set()

    def wait_for_stdout(self, pattern: str, timeout: float) -> re.Match[str] | None:
        """The first stdout line matching ``pattern``, waiting at most ``timeout`` s."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for line in list(self.stdout):
                match = regex.search(line)
                if match:
                    return match
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def wait_ready(
        self, path: str = "/healthz", timeout: float = READY_TIMEOUT, contains: str = ""
    ) -> Any:
        """Wait until ``GET base+path`` answers 200 (with ``contains`` in it); its JSON.

        Raises :class:`ServerProcessError` (with the output) if the process exits first or
        the time runs out; the process is left to the caller to stop.
        """
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2, trust_env=False) as http:
            while True:
                self.remember_children()
                if self.proc.poll() is not None:
                    for thread in self.threads:
                        thread.join(2)  # the last lines
                    raise ServerProcessError(
                        f"{self.base} exited before it was ready\n{self.output(40)}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    response = http.get(self.base + path)
                    if response.status_code == 200 and contains in response.text:
                        try:
                            return response.json()
                        except ValueError:
                            return response.text
                if time.monotonic() > deadline:
                    raise ServerProcessError(
                        f"{self.base}{path} not 200 within {timeout:g} s\n{self.output(40)}"
                    )
                time.sleep(0.1)

    def client(self, token: str | None = None, **options: Any) -> SessionsClient:
        """A :class:`SessionsClient` of this server (its token unless another is given)."""
        return SessionsClient(self.base, token or self.token, **options)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> list[str]:
        """``sig`` (SIGTERM), then SIGKILL after ``timeout`` s; then end, by PID, what it left.

        Returns the leftovers that had to be killed (``"pid name"``); empty when it cleaned
        up after itself.
        """
        self.remember_children()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        running = [p for p in self.seen if p.is_running()]
        _, survivors = psutil.wait_procs(running, timeout=5)
        killed = []
        for proc in survivors:
            with contextlib.suppress(psutil.Error):
                killed.append(f"{proc.pid} {proc.name()}")
                proc.kill()
        if survivors:
            psutil.wait_procs(survivors, timeout=5)
        for thread in self.threads:  # orphans may hold the pipes open: do not wait long
            thread.join(2)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        return killed

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_process(
    args: Sequence[str],
    base: str,
    env: Mapping[str, str] | None = None,
    *,
    token: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    new_session: bool = False,
    echo_stderr: bool = False,
) -> ServerProcess:
    """Start ``args`` (any server: ours, gunicorn, redis-server…) with its output captured.

    ``new_session``: its own process group, so a Ctrl-C in the caller's terminal does not
    reach it before :meth:`ServerProcess.stop` does. ``echo_stderr``: its stderr goes to
    ours (progress shown live) instead of into ``stderr``.
    """
    # A caller started in the background (SIGINT ignored) would pass the ignore on to the
    # child, which then could not be stopped with SIGINT the way a terminal's one can.
    restore = signal.getsignal(signal.SIGINT)
    if restore == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            list(args),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=None if echo_stderr else subprocess.PIPE,
            text=True,
            bufsize=1,
            start_new_session=new_session,
        )
    finally:
        if restore == signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    started = ServerProcess(proc, base, token)
    streams = [(proc.stdout, started.stdout), (proc.stderr, started.stderr)]
    for stream, lines in streams:
        if stream is None:
            continue
        thread = threading.Thread(target=_pump, args=(stream, lines), daemon=True)
        thread.start()
        started.threads.append(thread)
    return started


def serve(
    env: Mapping[str, str] | None = None,
    *,
    tokens: str | None = None,
    role: str | None = None,
    host: str = "127.0.0.1",
    args: Sequence[str] = (),
    ready: bool = True,
    ready_path: str = "/healthz",
    timeout: float = READY_TIMEOUT,
    cwd: str | os.PathLike[str] | None = None,
    new_session: bool = False,
    python: Sequence[str] = (sys.executable, "-m", "flask_sessions"),
) -> ServerProcess:
    """``python -m flask_sessions [role] --host HOST --port <free>``, ready unless told not.

    ``env`` is the complete environment (default: :func:`server_env` with ``tokens``);
    ``server.token`` is its ``SESSIONS_TOKENS`` when that is one token;
    ``role`` is ``"host"`` for a browser host; ready means ``GET ready_path`` answers 200;
    ``python`` replaces the command that runs the package (another checkout, say). If it
    is not ready in ``timeout`` s it is stopped and :class:`ServerProcessError` says why.
    """
    port = free_port(host)
    command = [*python, *([role] if role else []), "--host", host, "--port", str(port), *args]
    full_env = server_env(tokens) if env is None else env
    token = full_env.get("SESSIONS_TOKENS")
    if token is not None and token.lstrip().startswith(("[", "{")):
        token = None  # several tokens: the caller picks
    server = start_process(
        command, f"http://{host}:{port}", full_env, token=token, cwd=cwd, new_session=new_session
    )
    if ready:
        try:
            server.wait_ready(ready_path, timeout)
        except BaseException:
            server.stop()
            raise
    return server
