"""Ready-made credential backends: ``htpasswd``, ``dbm``, ``sql``, ``ldap``.

Import the one you need (``from wsgiauth.backends import ldap``); each module is independent, so an auth script
loads only what it uses.
"""
