"""Throw-away real servers for tests, benchmarks and the demo.

Each launcher (``apache``, ``ldap``, ``postgres``, ``mysql``, ``redis``) writes its config into a temp dir, picks a
free loopback port, starts the real server, polls until it answers, fails fast if it exits, and offers ``restart()``
and ``stop()``. Never anything but loopback.
"""
