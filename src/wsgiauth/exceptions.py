"""The exceptions wsgiauth raises.

``WsgiAuthError`` is the base class and is never raised directly. Errors about bad input (a malformed stored hash, a
bad configuration value) also subclass `ValueError`, so callers who only know the standard library can still
catch them.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "ConfigError",
    "InvalidHashError",
    "PoolTimeoutError",
    "StoreError",
    "UnsupportedHashError",
    "WsgiAuthError",
]


class WsgiAuthError(Exception):
    """Base class of every wsgiauth exception. Never raised directly."""


class InvalidHashError(WsgiAuthError, ValueError):
    """A stored hash is malformed: it can never verify any password."""


class UnsupportedHashError(InvalidHashError):
    """A stored hash is well-formed but its scheme is not supported here (or not enabled, e.g. plaintext)."""


class ConfigError(WsgiAuthError, ValueError):
    """A configuration value is wrong. The message names the key path and says what is expected."""


class BackendError(WsgiAuthError):
    """A backend could not answer (server down, query error, unreadable file).

    The mod_wsgi adapter logs it and turns it into the configured outcome (by default "user unknown", i.e. 401).
    """


class StoreError(BackendError):
    """A credential file or database cannot be opened or read. The message names the path and the process's uid."""


class BackendUnavailableError(BackendError):
    """A backend's server is unreachable, or its circuit breaker is open after repeated failures."""


class PoolTimeoutError(BackendError):
    """No connection could be checked out of a pool within its bounded wait."""


class MemberFailedError(BackendError):
    """A chain member failed, and that member's ``on_error`` decides the chain's answer (``"deny"``: 401).

    Raised rather than turned into a denial, so that nothing above the chain (a throttle) counts a server outage as
    a failed login.

    Attributes:
        member: the member's label.
        on_error: the outcome the member is configured for.
    """

    def __init__(self, member: str, cause: BaseException, on_error: str) -> None:
        what = f"{type(cause).__name__}: {cause}" if isinstance(cause, WsgiAuthError) else type(cause).__name__
        super().__init__(f"{member} failed ({what}); its on_error {on_error!r} ends the chain")
        self.member = member
        self.on_error = on_error
