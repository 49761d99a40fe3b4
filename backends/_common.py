"""Shared helpers for the server launchers: free ports, waiting, tool discovery, CI-aware skipping."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
LOOPBACK = "127.0.0.1"


class ServerError(RuntimeError):
    """A throw-away server could not be started or did not answer in time."""


def free_port() -> int:
    """A TCP port that is free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], *, timeout: float = 30.0, interval: float = 0.05,
               proc: subprocess.Popen[bytes] | None = None, what: str = "server",
               log: Path | None = None) -> None:
    """Poll ``check`` until it returns True; fail fast if ``proc`` exits, and fail with the log tail on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServerError(f"{what} exited with status {proc.returncode}{_tail(log)}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(interval)
    raise ServerError(f"{what} did not answer within {timeout:.0f}s{_tail(log)}")


def port_open(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(log: Path | None, lines: int = 30) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return "\n--- " + str(log) + " ---\n" + "\n".join(text)


def find_tool(name: str, *extra_dirs: str) -> str | None:
    """Path of an executable, looking on PATH and in ``extra_dirs`` (e.g. /usr/sbin, /usr/lib/postgresql/15/bin)."""
    found = shutil.which(name)
    if found:
        return found
    for d in (*extra_dirs, "/usr/sbin", "/sbin", "/usr/local/sbin"):
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def require_tool(name: str, *extra_dirs: str) -> str:
    """Path of a tool the test needs: a missing tool skips the test locally but fails it in CI (CI=true)."""
    path = find_tool(name, *extra_dirs)
    if path is None:
        missing(f"{name} is not installed (run `make test`, which installs it)")
    assert path is not None
    return path


def missing(reason: str) -> None:
    """Skip outside CI; fail with CI=true, where every server and tool must be present."""
    import pytest

    if IN_CI:
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


class Launcher:
    """The life cycle shared by the server launchers: ``restart()``, ``cleanup()`` and use as a context manager.

    Subclasses provide ``start()`` (returning self), ``stop()`` and ``dir`` (their temp dir).
    """

    dir: Path

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def restart(self) -> Self:
        """Stop, then start again on the same port with the same data."""
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        """Stop the server and remove its temp dir."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cleanup()
