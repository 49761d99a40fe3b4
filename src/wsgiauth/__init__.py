"""wsgiauth: fast, secure credential backends for Apache mod_wsgi.

An ``auth.wsgi`` imports a backend (``from wsgiauth.backends import htpasswd``) or loads a config file and exports the
hooks mod_wsgi calls: ``check_password``, ``get_realm_hash``, ``groups_for_user``, ``allow_access``.
"""

from __future__ import annotations

from .adapter import Backend, Decision, Outcome, Record
from .exceptions import (
    BackendError,
    BackendUnavailableError,
    ConfigError,
    InvalidHashError,
    PoolTimeoutError,
    StoreError,
    UnsupportedHashError,
    WsgiAuthError,
)

__version__ = "0.1.0.dev0"


def __getattr__(name: str) -> object:
    # `from wsgiauth import load` without importing the config machinery (TOML, schemas) at package import.
    if name == "load":
        from .config import load

        return load
    raise AttributeError(f"module 'wsgiauth' has no attribute {name!r}")

__all__ = [
    "Backend",
    "BackendError",
    "BackendUnavailableError",
    "ConfigError",
    "Decision",
    "InvalidHashError",
    "Outcome",
    "PoolTimeoutError",
    "Record",
    "StoreError",
    "UnsupportedHashError",
    "WsgiAuthError",
    "__version__",
    "load",
]
