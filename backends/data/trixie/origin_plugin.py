"""pytest plugin for the unit tests run inside the Debian 13 root: the report header says which wsgiauth is tested,
and tests that need a server of the host (slapd, Redis, PostgreSQL, MariaDB, mod_wsgi-express) are deselected.

tests/test_debian13.py loads it with ``-p origin_plugin`` and checks that the header names the wheel installed in the
root's venv (not a checkout's src/) and its compiled core. The root holds Debian's apache2 but none of those servers
(runtime packages only): a unit-test module that gains a test on one of the server fixtures of
backends/pytest_plugin.py keeps its other tests here, and the deselected ones run on the host in the same suite.
"""

import sys

SERVER_FIXTURES = {"slapd", "redis_server", "postgres", "mariadb", "apache_available", "apache_factory", "launch"}
_deselected = []


def pytest_report_header(config):
    import wsgiauth
    import wsgiauth._lowlevel
    import wsgiauth._native
    import wsgiauth._native_bdb
    import wsgiauth._native_dbm

    return [
        f"wsgiauth-origin: {wsgiauth.__file__}",
        f"wsgiauth-native: {wsgiauth._native.__file__}",
        f"wsgiauth-native-dbm: {wsgiauth._native_dbm.__file__}",
        f"wsgiauth-native-bdb: {wsgiauth._native_bdb.__file__}",
        f"wsgiauth-core-in-use: {'compiled' if wsgiauth._lowlevel.NATIVE else 'pure-Python fallback'}",
        f"wsgiauth-python: {sys.version.split()[0]} {sys.prefix}",
    ]


def pytest_collection_modifyitems(config, items):
    keep = []
    for item in items:
        (_deselected if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())) else keep).append(item)
    if _deselected:
        config.hook.pytest_deselected(items=list(_deselected))
        items[:] = keep


def pytest_terminal_summary(terminalreporter):
    names = ", ".join(item.nodeid for item in _deselected) or "none"
    terminalreporter.write_line(f"wsgiauth-deselected-server-tests: {names}")
