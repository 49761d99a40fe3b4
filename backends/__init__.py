"""Throw-away real servers for tests, benchmarks and the demo.

Each launcher is named after the program it starts (``apache``, ``slapd``, ``postgres``, ``mariadb``, ``redis``; the
class is the module's name capitalised: ``Apache``, ``Slapd``, ``Postgres``, ``MariaDB``, ``Redis``). It writes its
config into a temp dir, picks a free loopback port, starts the real server, polls until it answers and fails fast if
it exits. The life cycle is :class:`backends._common.Launcher`'s: ``start()``, ``stop()``, ``kill()``,
``restart()``, ``close()``, ``with``, and ``serve()`` for ``python -m backends.NAME``. Their data is in
``backends/data/``; wsgiauth's SQL schema ships inside the package (``wsgiauth/data/sql/``). The pytest fixtures
that start them are in :mod:`backends.pytest_plugin`. Never anything but loopback.
"""
