"""The launchers' shared life cycle (backends/_common.py ``Launcher``): stop/start keep the port, kill() is a crash that
start() recovers from, close() removes the temp dir, and every ``python -m backends.NAME`` entry stops its server and
removes its temp dir on SIGTERM or Ctrl-C (SIGINT), or says so and exits 1 when the server dies by itself."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from backends._common import port_open, require_tool
from backends.postgres import Postgres
from backends.pytest_plugin import run_entry
from backends.redis import Redis

# python -m backends.NAME -> the tool it needs
ENTRIES = {"redis": "redis-server", "slapd": "slapd"}


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _ping(port: int) -> bool:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64).startswith(b"+PONG")


def test_stop_start_kill_restart_and_close_keep_the_promises() -> None:
    require_tool("redis-server")
    server = Redis()
    with server:
        port, pid = server.port, server.pid
        assert pid is not None and _ping(port)
        server.stop()
        assert not server.running and not port_open(port) and not _alive(pid)
        server.stop()  # idempotent
        server.start()
        assert server.port == port and _ping(port)  # the same port again
        pid = server.pid
        assert pid is not None
        server.kill()  # SIGKILL: a crash
        assert not server.running and not port_open(port) and not _alive(pid)
        assert server.restart() is server and _ping(port)
        assert server.pid != pid
        assert server.dir.is_dir()
    assert not server.running and not port_open(port)
    assert not server.dir.exists()  # close() (the with block's end) removed the temp dir


def _start_entry(name: str) -> tuple[subprocess.Popen[str], int, Path, int, str]:
    """Run ``python -m backends.NAME``; return it, the server's pid, its temp dir, its port and what it printed."""
    require_tool(ENTRIES[name])
    proc, text = run_entry(f"backends.{name}")
    running = re.search(r"running \(pid (\d+)\) in (\S+)", text)
    port = re.search(r"://127\.0\.0\.1:(\d+)", text)
    if running is None or port is None:
        proc.kill()
        pytest.fail(f"python -m backends.{name} did not say it runs:\n{text}{proc.communicate()[0]}")
    return proc, int(running.group(1)), Path(running.group(2)), int(port.group(1)), text


@pytest.mark.parametrize(("name", "sig"), [("redis", signal.SIGTERM), ("redis", signal.SIGINT),
                                           ("slapd", signal.SIGTERM)], ids=["redis-SIGTERM", "redis-SIGINT",
                                                                            "slapd-SIGTERM"])
def test_python_m_entry_stops_its_server_and_removes_its_dir_on_a_signal(name: str, sig: signal.Signals) -> None:
    proc, pid, directory, port, text = _start_entry(name)
    try:
        assert _alive(pid) and directory.is_dir() and port_open(port), text
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, text + rest
        assert "stopped." in rest
        assert not _alive(pid), f"the server (pid {pid}) outlived python -m backends.{name}"
        assert not directory.exists(), f"{directory} was left behind"
        assert not port_open(port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_python_m_entry_says_when_its_server_dies_and_still_cleans_up() -> None:
    proc, pid, directory, port, text = _start_entry("redis")
    try:
        os.kill(pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 1, text + rest
        assert "redis-server stopped by itself" in rest
        assert not directory.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_killed_postgres_starts_again_on_its_port_with_its_data(postgres: Postgres) -> None:
    users = postgres.execute("SELECT count(*) FROM wsgiauth_user")[0][0]
    assert users > 0  # the seed
    # The throw-away cluster commits asynchronously (synchronous_commit=off): a crash loses what the WAL writer has
    # not written yet. A checkpoint makes the seed durable first.
    postgres.execute("CHECKPOINT")
    port, pid = postgres.port, postgres.pid
    assert pid is not None
    postgres.kill()  # SIGKILL to the postmaster's process group: a crash
    assert not postgres.running and not port_open(port) and not _alive(pid)
    postgres.start()  # crash recovery, on the same port
    assert postgres.port == port
    assert postgres.execute("SELECT count(*) FROM wsgiauth_user")[0][0] == users
    assert postgres.count_connections() == 0
