"""Shared helpers for the server launchers: the :class:`Launcher` life cycle, free ports, waiting, tool discovery,
data paths, CI-aware skipping."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from types import FrameType, TracebackType
from typing import NoReturn, Self

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
LOOPBACK = "127.0.0.1"

DATA = Path(__file__).resolve().parent / "data"
"""The launchers' data: ``slapd/`` (seed LDIF, test LDAP schema), ``sql/seed.sql``, ``demo/`` (the demo's store)."""


def package_data(*parts: str) -> Path:
    """A file shipped inside the wsgiauth package (``src/wsgiauth/data/...``): ``package_data("sql", "schema.sql")``."""
    return Path(str(resources.files("wsgiauth").joinpath("data", *parts)))


SQL_SCHEMA = package_data("sql", "schema.sql")
"""wsgiauth's minimal SQL schema for SQLite and PostgreSQL (shipped with the package: ``wsgiauth/data/sql/``)."""
SQL_SCHEMA_MYSQL = package_data("sql", "schema.mysql.sql")
"""The same schema for MariaDB and MySQL (binary, no-pad names)."""
SQL_SEED = DATA / "sql" / "seed.sql"
"""The seed users of the tests, benchmarks and demo (portable SQL: SQLite, PostgreSQL, MariaDB)."""


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


def missing(reason: str) -> NoReturn:
    """Skip outside CI; fail with CI=true, where every server and tool must be present."""
    import pytest

    if IN_CI:
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


class _Stop(Exception):
    """Raised by :meth:`Launcher.serve`'s SIGTERM/SIGINT handler to leave its loop."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signum)


class Launcher:
    """The life cycle every server launcher shares.

    * ``start()`` starts the server (configuring it on the first call) and waits until it answers; returns ``self``.
    * ``stop()`` stops it gracefully; the data, configuration and ports are kept, so ``start()`` brings it back.
    * ``kill()`` kills it abruptly (SIGKILL to its process group: a crash, for fault tests); ``start()`` recovers.
    * ``restart()`` is ``stop()`` then ``start()``.
    * ``close()`` stops it and removes its temp dir; ``with Launcher(...) as server`` starts, then closes.
    * ``serve(banner)`` is the ``python -m backends.NAME`` entry: start, print, run until SIGTERM/SIGINT, close.

    Subclasses set ``dir`` (their temp dir) and ``port`` in ``__init__`` and implement :meth:`start`, which runs the
    server as ``self.proc`` (in its own session, so that :meth:`kill` reaches its children). They tune
    :attr:`stop_signal`, :attr:`stop_timeout` and :meth:`ports`, and may hook :meth:`_after_kill`.
    """

    name = "server"
    """What the messages call the server (``"redis-server"``, ``"slapd"``...)."""
    stop_signal: signal.Signals = signal.SIGTERM
    """The signal of a graceful stop."""
    stop_timeout = 10.0
    """Seconds a graceful stop may take before the process group is killed."""

    dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    """The server's log file (its tail ends the error messages)."""
    keep = False
    """Keep the temp dir on :meth:`close` (for debugging); its path is printed."""
    owns_dir = True
    """Whether :meth:`close` removes :attr:`dir` (``False`` when the caller gave the directory)."""

    def start(self) -> Self:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def ports(self) -> tuple[int, ...]:
        """The ports the server listens on: :meth:`stop` and :meth:`kill` wait until they are closed."""
        return (self.port,)

    def stop(self) -> None:
        """Stop the server (:attr:`stop_signal`; SIGKILL to its process group after :attr:`stop_timeout`) and wait
        until its ports are closed. Idempotent; the data and ports are kept for :meth:`start`.

        Raises:
            ServerError: a port was still open 10 s after the server exited.
        """
        self._end(graceful=True)

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL to its process group), for fault tests; :meth:`start` recovers.

        Raises:
            ServerError: a port was still open 10 s after the server died.
        """
        if self._end(graceful=False):
            self._after_kill()

    def _after_kill(self) -> None:
        """What a server needs after a crash before :meth:`start` works again (e.g. removing a stale pid file)."""

    def _end(self, *, graceful: bool) -> bool:
        """Stop (``graceful``) or kill the process, then wait until the ports are closed; False when none ran."""
        proc, self.proc = self.proc, None
        if proc is None:
            return False
        if proc.poll() is None:
            if graceful:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGCONT)  # a paused (SIGSTOP) server could not act on the stop signal
                proc.send_signal(self.stop_signal)
            else:
                _kill_group(proc)
            try:
                proc.wait(timeout=self.stop_timeout if graceful else 10.0)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                proc.wait(timeout=5)
        for port in self.ports():
            wait_until(lambda port=port: not port_open(port), timeout=10.0, what=f"{self.name} port {port} to close")
        return True

    def restart(self) -> Self:
        """Stop, then start again on the same port with the same data."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and remove its temp dir (unless :attr:`keep`, or the caller gave the directory)."""
        self.stop()
        if self.keep:
            print(f"backends: kept {self.dir}", file=sys.stderr)
        elif self.owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def serve(self, banner: Callable[[Self], str]) -> int:
        """Run the server by hand (the ``python -m backends.NAME`` entry) until SIGTERM or SIGINT (Ctrl-C).

        Starts the server, prints ``"NAME running (pid PID) in DIR"`` and ``banner(self)`` (which may load data
        first), waits, and on SIGTERM/SIGINT stops the server and removes its temp dir (:meth:`close`).

        Returns:
            The exit status: 0 after a signal, 1 when the server stopped by itself (its log tail is printed).
        """
        handled = (signal.SIGTERM, signal.SIGINT)
        previous = {s: signal.signal(s, _raise_stop) for s in handled}
        status = 0
        try:
            self.start()
            print(f"{self.name} running (pid {self.pid}) in {self.dir}", flush=True)
            print(banner(self), flush=True)
            while self.running:
                time.sleep(0.2)
            print(f"{self.name} stopped by itself{_tail(self.log)}", file=sys.stderr, flush=True)
            status = 1
        except (_Stop, KeyboardInterrupt):
            print(f"stopping {self.name} ...", flush=True)
        finally:
            for s in handled:  # a second Ctrl-C must not interrupt the clean-up
                signal.signal(s, signal.SIG_IGN)
            try:
                self.close()
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)
        print("stopped.", flush=True)
        return status


class Database(Launcher):
    """What the database launchers (:mod:`backends.postgres`, :mod:`backends.mariadb`) share: the application account
    and database they create on the first start, their URL, and wsgiauth's schema with the seed users.

    Args:
        port: the TCP port on 127.0.0.1 (default: a free one). Kept across :meth:`restart`.
        user: the application account, created with ``password`` on the first start.
        password: the application account's password.
        database: the application database, created on the first start.
        max_connections: the server's ``max_connections``.
        prefix: the temp dir's name prefix.

    Subclasses check that their programs exist before calling ``__init__`` (which makes the temp dir), set
    :attr:`scheme` and :attr:`schema`, and implement ``load_sql(*files)``.
    """

    scheme = ""
    """The URL scheme: ``"postgresql"``, ``"mysql"``."""
    schema = SQL_SCHEMA
    """wsgiauth's schema in this server's dialect."""

    def __init__(self, port: int | None, *, user: str, password: str, database: str, max_connections: int,
                 prefix: str) -> None:
        self.port = port or free_port()
        self.host = LOOPBACK
        self.user = user
        self.password = password
        self.database = database
        self.max_connections = max_connections
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.data = self.dir / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        self._initialized = False

    @property
    def url(self) -> str:
        """``SCHEME://user:password@127.0.0.1:PORT/database`` (the application account)."""
        return f"{self.scheme}://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"

    def load_sql(self, *files: str | Path) -> None:
        raise NotImplementedError

    def load_seed(self) -> None:
        """Create wsgiauth's minimal schema (:attr:`schema`) and the seed users (:data:`SQL_SEED`)."""
        self.load_sql(self.schema, SQL_SEED)

    def seeded(self) -> str:
        """The banner of ``python -m backends.NAME`` (:meth:`serve`): loads the seed, says where the server is."""
        self.load_seed()
        return f"  {self.url}   (wsgiauth's schema and the seed users)\nCtrl-C (or SIGTERM) stops it."


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group a launcher started (``start_new_session=True``), or the process alone."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
