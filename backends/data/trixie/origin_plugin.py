"""pytest plugin for the unit tests run inside the Debian 13 root: the report header says which wsgiauth is tested.

tests/test_debian13.py loads it with ``-p origin_plugin`` and checks that the header names the wheel installed in the
root's venv (not a checkout's src/) and its compiled core.
"""

import sys


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
