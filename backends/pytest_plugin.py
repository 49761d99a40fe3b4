"""The pytest fixtures that start the launchers' servers (``tests/conftest.py`` and ``benchmarks/conftest.py``
register this plugin with ``pytest_plugins``).

Every fixture here is module-scoped: a test module gets its own servers, started on first use and closed (stopped,
temp dir removed) when the module ends. A server that is not installed skips the test locally and fails it in CI
(:func:`backends._common.missing`); one that is installed but does not start is an error.

* ``launch``: the factory the others use. ``launch(cls, *args, **kwargs)`` starts ``cls(*args, **kwargs)`` (a
  :class:`backends._common.Launcher`) and returns it running. A module that needs its own data defines its fixture
  over it, e.g. a slapd with extra entries: ``server = launch(Slapd); server.add_ldif(...)``.
* ``slapd``: a :class:`backends.slapd.Slapd` with the seed directory (``backends/data/slapd/seed.ldif``).
* ``redis_server``: a :class:`backends.redis.Redis`.
* ``postgres``, ``mariadb``: a :class:`backends.postgres.Postgres` / :class:`backends.mariadb.MariaDB` with
  wsgiauth's schema and the seed users (``load_seed()``).
* ``apache_available`` (session) / :func:`require_apache`: skip locally, fail in CI, when a real Apache with
  mod_wsgi-express cannot be started here.
* ``apache_factory``: ``apache_factory(**kwargs)`` starts a :class:`backends.apache.Apache` (``launch(Apache, ...)``).

:func:`run_entry` runs a launcher's ``python -m backends.NAME`` and returns once it has printed its banner.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from backends._common import Launcher, ServerError, missing
from backends.apache import Apache, unavailable
from backends.mariadb import MariaDB
from backends.postgres import Postgres
from backends.redis import Redis
from backends.slapd import Slapd

L = TypeVar("L", bound=Launcher)
Launch = Callable[..., Any]
ROOT = Path(__file__).resolve().parents[1]


def run_entry(module: str, *args: str, timeout: float = 60.0) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m MODULE ARGS`` in the checkout and read its output up to the banner's ``Ctrl-C`` line.

    Returns:
        The running process (stdout still open: ``communicate()`` reads the rest) and what it printed so far (up to
        end of file, or ``timeout`` seconds, when the line does not come).
    """
    proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Ctrl-C"):
            break
    return proc, "".join(lines)


def require_apache() -> None:
    """Skip locally, fail in CI, when Apache or mod_wsgi-express is missing."""
    reason = unavailable()
    if reason is not None:
        missing(reason)


@pytest.fixture(scope="module")
def launch() -> Iterator[Launch]:
    started: list[Launcher] = []

    def factory(cls: type[L], *args: Any, **kwargs: Any) -> L:
        try:
            server = cls(*args, **kwargs)
        except ServerError as exc:  # the launchers raise it from __init__ when their programs are missing
            missing(f"{cls.__name__}: {exc}")
        started.append(server)
        return server.start()

    yield factory
    errors: list[BaseException] = []
    for server in reversed(started):  # every server is closed, even when one of them fails to
        try:
            server.close()
        except Exception as exc:  # noqa: BLE001 - reported below, after the others are closed
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture(scope="module")
def slapd(launch: Launch) -> Slapd:
    server: Slapd = launch(Slapd)
    return server


@pytest.fixture(scope="module")
def redis_server(launch: Launch) -> Redis:
    server: Redis = launch(Redis)
    return server


@pytest.fixture(scope="module")
def postgres(launch: Launch) -> Postgres:
    server: Postgres = launch(Postgres)
    server.load_seed()
    return server


@pytest.fixture(scope="module")
def mariadb(launch: Launch) -> MariaDB:
    server: MariaDB = launch(MariaDB)
    server.load_seed()
    return server


@pytest.fixture(scope="session")
def apache_available() -> None:
    require_apache()


@pytest.fixture(scope="module")
def apache_factory(apache_available: None, launch: Launch) -> Callable[..., Apache]:
    return functools.partial(launch, Apache)
