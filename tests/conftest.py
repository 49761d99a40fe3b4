"""The suite's shared fixtures are the server fixtures of :mod:`backends.pytest_plugin` (``slapd``, ``redis_server``,
``postgres``, ``mariadb``, ``apache_available``, ``apache_factory`` and their factory ``launch``): see its docstring.
``backends`` is a top-level package of the checkout, importable through pyproject's ``pythonpath = ["."]``.
"""

pytest_plugins = ["backends.pytest_plugin"]
