"""wsgiauth: fast, secure credential backends for Apache mod_wsgi.

An ``auth.wsgi`` imports a backend (``from wsgiauth.backends import htpasswd``) or loads a config file and exports the
hooks mod_wsgi calls: ``check_password``, ``get_realm_hash``, ``groups_for_user``, ``allow_access``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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


if TYPE_CHECKING:  # typed bindings for the lazily imported names below (type checkers only; nothing is imported)
    from .cache import cached
    from .compose import canonicalize, chain
    from .config import load
    from .hostaccess import HostRules
    from .throttle import throttled

# Lazily imported public names: an auth script pays only for what it uses (no TOML, Redis or pool machinery at
# package import).
_LAZY = {
    "HostRules": "hostaccess",
    "cached": "cache",
    "canonicalize": "compose",
    "chain": "compose",
    "load": "config",
    "throttled": "throttle",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wsgiauth' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Backend",
    "BackendError",
    "BackendUnavailableError",
    "ConfigError",
    "Decision",
    "HostRules",
    "InvalidHashError",
    "Outcome",
    "PoolTimeoutError",
    "Record",
    "StoreError",
    "UnsupportedHashError",
    "WsgiAuthError",
    "__version__",
    "cached",
    "canonicalize",
    "chain",
    "load",
    "throttled",
]
