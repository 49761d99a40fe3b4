"""The one adapter between wsgiauth backends and mod_wsgi's auth hooks.

Every backend implements a small internal interface on bytes (look up a user's record, list a user's groups, give a
Digest realm hash, or, for stores that cannot hand out a hash such as LDAP, ``authenticate`` directly). This module
turns that into the four callables mod_wsgi calls, applying each rule of mod_wsgi's contract exactly once:

* user, password and realm arrive as ``str`` decoded as latin-1 from the raw request bytes; they are turned back into
  those bytes before any lookup;
* ``check_password`` returns ``None`` (unknown), ``False`` (denied), ``True`` or a non-empty canonical name ``str``
  (mod_wsgi encodes that ``str`` as UTF-8 into REMOTE_USER), never an empty string, bytes or anything else;
* ``get_realm_hash`` returns ``None`` or a lowercase hex HA1 ``str``;
* ``groups_for_user`` returns a ``list`` of ``str`` (mod_wsgi encodes each as latin-1), never a bare string;
* an unknown user costs a dummy hash verification, so that timing does not reveal who exists;
* an exception inside a backend is logged to ``environ['wsgi.errors']`` (user name and reason, never the password)
  and becomes the configured outcome.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any, Literal

from . import hashes
from ._registry import shared
from ._value import Value
from .exceptions import InvalidHashError, MemberFailedError, WsgiAuthError

__all__ = [
    "Backend",
    "Decision",
    "Outcome",
    "Record",
    "Wrapper",
    "as_bytes",
    "client_address",
    "group_names",
    "name_for_apache",
    "shared",
    "utf8_text",
]

logger = logging.getLogger("wsgiauth")

Environ = Mapping[str, Any]
OnError = Literal["unknown", "deny", "raise"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
           "off": logging.CRITICAL + 10}


class Outcome(enum.Enum):
    """What a credential check concluded."""

    UNKNOWN = "unknown"  # no such user here: mod_wsgi's None (next provider, else 401)
    DENIED = "denied"  # user known, password wrong (or account refused): False, 401
    GRANTED = "granted"  # True, or the canonical name


class _Identity(Value):
    """The fields `Record` and `Decision` share: the canonical name and the groups the store gave for a user."""

    __slots__ = ("groups", "name")

    name: bytes | None
    groups: tuple[bytes, ...] | None


class Record(_Identity):
    """What a store holds for one user (immutable; compared, hashed and shown field by field like a dataclass).

    Attributes:
        hash: the stored password hash, exactly as in the store (``$apr1$...``, ``$2y$...``, ``{SHA}...``).
        name: the canonical user name as raw bytes, when the store knows one that differs from the name typed.
        groups: the user's groups (raw bytes each), when the same lookup returns them (DBM values, SQL columns).
        active: ``False`` for a disabled account: it is treated as unknown, after the same hashing work.
        attributes: further columns or attributes, exported for logging and tests (never the hash).
    """

    __slots__ = ("active", "attributes", "hash")
    __match_args__ = ("hash", "name", "groups", "active", "attributes")

    hash: str
    active: bool
    attributes: Mapping[str, str]

    def __init__(self, hash: str, name: bytes | None = None,
                 groups: tuple[bytes, ...] | None = None, active: bool = True,
                 attributes: Mapping[str, str] | None = None) -> None:
        self._init(hash, name, groups, active, {} if attributes is None else attributes)


class Decision(_Identity):
    """The result of `Backend.authenticate` (immutable; compared, hashed and shown like a dataclass).

    Attributes:
        outcome: unknown, denied or granted.
        name: the canonical name (raw bytes) when granted and the store knows one.
        groups: the user's groups (raw bytes each) when they came with the same lookup.
        backend: the label of the backend that answered.
        reason: a short reason for the log (never a password or a hash).
        identity: the store's own key of the account this decision is about, when the store resolved one (an LDAP
            entry's DN, a row's user name as stored): every spelling the store matches to that account yields the
            same identity. Throttling counts failures under it. ``None`` when the store found no account.
    """

    __slots__ = ("backend", "identity", "outcome", "reason")
    __match_args__ = ("outcome", "name", "groups", "backend", "reason", "identity")

    outcome: Outcome
    backend: str
    reason: str
    identity: bytes | None

    def __init__(self, outcome: Outcome, name: bytes | None = None, groups: tuple[bytes, ...] | None = None,
                 backend: str = "", reason: str = "", identity: bytes | None = None) -> None:
        self._init(outcome, name, groups, backend, reason, identity)

    def replace(self, **changes: Any) -> Decision:
        """A copy with some fields changed (what `dataclasses.replace` does for a dataclass)."""
        return self._replace(**changes)

    @property
    def granted(self) -> bool:
        return self.outcome is Outcome.GRANTED


def as_bytes(value: str | bytes) -> bytes:
    """Recover the raw request bytes of a value mod_wsgi decoded as latin-1 (bytes pass through)."""
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        # Not from mod_wsgi (which only produces latin-1 text): callers such as the middleware or the CLI may
        # hand us real Unicode; UTF-8 is what a browser sends for it.
        return value.encode("utf-8", "surrogateescape")


def name_for_apache(name: bytes) -> str | None:
    """The ``str`` to return from ``check_password`` so that Apache records exactly ``name`` as REMOTE_USER.

    mod_wsgi encodes a returned name as UTF-8, so the bytes must be valid UTF-8 (and free of NUL, which would cut the
    name short). Returns ``None`` when the name cannot be expressed; the caller then returns ``True`` instead.
    """
    return utf8_text(name)


def utf8_text(raw: bytes) -> str | None:
    """`raw` decoded as UTF-8, or `None` when it is empty, holds a NUL byte or is not valid UTF-8.

    What a store that keeps names as text (LDAP, a returned canonical name) can make of raw request bytes: a name
    for which this gives `None` cannot name any of its entries.
    """
    if not raw or b"\x00" in raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def client_address(environ: Environ | None) -> str | None:
    """The client's address from the cut-down environ mod_wsgi gives auth hooks (``REMOTE_ADDR``)."""
    if not environ:
        return None
    addr = environ.get("REMOTE_ADDR")
    return addr if isinstance(addr, str) and addr else None


def _log_target(environ: Environ | None) -> IO[str] | None:
    if environ is None:
        return None
    stream = environ.get("wsgi.errors")
    return stream if stream is not None and hasattr(stream, "write") else None


def _printable(user: bytes) -> str:
    """A user name safe to put in a log line (no control characters, bounded length)."""
    text = user[:128].decode("utf-8", "backslashreplace")
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return text + ("..." if len(user) > 128 else "")


class Backend:
    """Base class of every wsgiauth backend, and the mod_wsgi adapter.

    Subclasses implement some of `lookup`, `authenticate`, `groups` and `realm_hash` (all on
    raw bytes). Everything else, in particular the four mod_wsgi hooks, is provided here and is not meant to be
    overridden.

    Args:
        label: a short name used in logs and by ``wsgiauth check`` ("which backend answered").
        on_error: what a backend failure becomes: ``"unknown"`` (default: ``None``, Apache tries the next provider,
            else 401), ``"deny"`` (``False``, 401) or ``"raise"`` (the exception reaches mod_wsgi: 500).
        log_level: the lowest level written to ``environ['wsgi.errors']``: ``"debug"``, ``"info"``, ``"warning"``
            (default), ``"error"`` or ``"off"``.
        access: an optional callable ``(host: str) -> bool | None`` used by `allow_access`
            (see `wsgiauth.hostaccess`).
    """

    label: str = "backend"

    def __init__(
        self,
        *,
        label: str | None = None,
        on_error: OnError = "unknown",
        log_level: str = "warning",
        access: Callable[[str], bool | None] | None = None,
    ) -> None:
        if on_error not in ("unknown", "deny", "raise"):
            raise ValueError(f"on_error must be 'unknown', 'deny' or 'raise', not {on_error!r}")
        if log_level not in _LEVELS:
            raise ValueError(f"log_level must be one of {sorted(_LEVELS)}, not {log_level!r}")
        if label is not None:
            self.label = label
        self.on_error: OnError = on_error
        self.log_level = log_level
        self._level = _LEVELS[log_level]
        self.access = access
        # A stored hash of the kind this store holds, used to make an unknown user cost what a wrong password costs.
        self.timing_hash: str | None = None
        # Stores may enable clear-text passwords (Apache on Linux never accepts them); hashes.verify refuses them.
        self.allow_plaintext = False
        self._log_lock = threading.Lock()

    # ------------------------------------------------------------------ the internal interface (bytes)

    def lookup(self, user: bytes) -> Record | None:
        """The stored record of ``user``, or ``None`` when the store has no such user."""
        raise NotImplementedError(f"{type(self).__name__} does not look up password hashes")

    def authenticate(self, user: bytes, password: bytes, client: str | None = None) -> Decision:
        """Check a password. The default looks up the record and verifies its hash.

        ``client`` is the client address (``REMOTE_ADDR``) when known; wrappers such as throttling use it.

        An unknown or disabled user costs a dummy verification of a hash like the store's own, so that response time
        does not reveal whether the user exists. A malformed stored hash denies (fail closed) and is logged.
        """
        record = self.lookup(user)
        if record is None:
            hashes.dummy_verify(password, self.timing_hash)
            return Decision(Outcome.UNKNOWN, backend=self.label, reason="no such user")
        self.timing_hash = record.hash
        identity = record.name or user
        try:
            ok = hashes.verify(password, record.hash, allow_plaintext=self.allow_plaintext)
        except InvalidHashError as exc:
            # Still cost a verification, so a broken entry does not stand out by its speed.
            hashes.dummy_verify(password, None)
            return Decision(Outcome.DENIED, backend=self.label, reason=f"unusable stored hash: {exc}",
                            identity=identity)
        if not record.active:
            return Decision(Outcome.UNKNOWN, backend=self.label, reason="account disabled", identity=identity)
        if not ok:
            return Decision(Outcome.DENIED, backend=self.label, reason="wrong password", identity=identity)
        return Decision(Outcome.GRANTED, name=record.name, groups=record.groups, backend=self.label,
                        identity=identity)

    def dummy_authenticate(self, user: bytes, password: bytes) -> None:
        """Do the work `authenticate` would do for ``user``, and decide nothing.

        Used where an answer is already known (a locked-out user or address) but must cost what a real check costs,
        so timing does not reveal it. The default looks the user up (the same store round trip) and verifies the
        password against a dummy hash with the same parameters as the stored one. It never grants, never binds as
        the user and never counts as a failed login in the store.
        """
        try:
            record = self.lookup(user)
        except NotImplementedError:
            record = None
        hashes.dummy_verify(password, record.hash if record is not None else self.timing_hash)

    def groups(self, user: bytes) -> Sequence[bytes] | None:
        """The groups of ``user`` (raw bytes each), or ``None`` when unknown here."""
        return None

    def realm_hash(self, user: bytes, realm: bytes) -> str | None:
        """The Digest HA1 (lowercase hex MD5 of ``user:realm:password``) or ``None`` when unknown here."""
        return None

    def refusal(self, user: bytes, client: str | None = None) -> str | None:
        """Why ``user`` (from ``client``) is refused right now without a check, or ``None``.

        For callers that verify a credential themselves (the middleware's Digest): a throttle in the stack answers
        with its lockout's reason. The default, and every backend without a throttle, says ``None``.
        """
        return None

    def record_failure(self, user: bytes, client: str | None = None) -> None:
        """Count a failed attempt that did not go through `authenticate` (a wrong Digest response the caller
        checked itself). Only a throttle in the stack counts it; the default does nothing."""

    def user_key(self, user: bytes) -> bytes:
        """``user`` as this store matches names, without asking the store: every spelling that could match the same
        account maps to the same bytes (case and width folding where the store matches loosely, as LDAP does).

        Throttling counts failures of names the store did not resolve under this key. The default is the name as
        typed, for stores that match names byte for byte (htpasswd, DBM). It must be cheap and must not fail.
        """
        return user

    def generation(self) -> int:
        """A number that changes whenever the store's content may have changed (used to invalidate caches)."""
        return 0

    def close(self) -> None:
        """Release files, connections and pools held by this backend."""

    # ------------------------------------------------------------------ logging

    def log(self, environ: Environ | None, level: int, message: str) -> None:
        """Write ``message`` to Apache's error log (``wsgi.errors``) and to the ``wsgiauth`` logger."""
        if level < self._level:
            return
        logger.log(level, "%s", message)
        stream = _log_target(environ)
        if stream is not None:
            try:
                with self._log_lock:
                    stream.write(f"wsgiauth[{self.label}]: {logging.getLevelName(level).lower()}: {message}\n")
                    stream.flush()
            except Exception:  # noqa: BLE001, S110 - logging must never break an authentication
                pass

    def _on_error(self, exc: BaseException) -> OnError:
        """The outcome a failure gets: a failing chain member's own ``on_error`` where it decides, else ours."""
        if isinstance(exc, MemberFailedError) and exc.on_error == "deny":
            return "deny"
        return self.on_error

    def _failed(self, environ: Environ | None, hook: str, user: bytes, exc: BaseException) -> OnError:
        """Log a backend failure; raise it again for ``on_error="raise"``, else return the outcome it gets."""
        reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, WsgiAuthError) else type(exc).__name__
        self.log(environ, logging.ERROR, f"{hook} for user '{_printable(user)}' failed: {reason}")
        on_error = self._on_error(exc)
        if on_error == "raise":
            raise exc
        return on_error

    # ------------------------------------------------------------------ the mod_wsgi hooks

    def check_password(self, environ: Environ, user: str, password: str) -> bool | str | None:
        """mod_wsgi's Basic hook (``WSGIAuthUserScript``)."""
        raw_user = as_bytes(user)
        try:
            decision = self.authenticate(raw_user, as_bytes(password), client_address(environ))
        except Exception as exc:  # noqa: BLE001 - every failure gets the configured outcome
            return False if self._failed(environ, "check_password", raw_user, exc) == "deny" else None
        return self._answer(environ, raw_user, decision)

    def _answer(self, environ: Environ | None, raw_user: bytes, decision: Decision) -> bool | str | None:
        if decision.outcome is Outcome.GRANTED:
            if self._level <= logging.INFO:  # the text is built only when it will be written (the hot path)
                self.log(environ, logging.INFO,
                         f"user '{_printable(raw_user)}' granted by {decision.backend or self.label}")
            if decision.name is not None and decision.name != raw_user:
                name = name_for_apache(decision.name)
                if name is not None:
                    return name
            return True
        # Unknown and denied are logged at the same level (as Apache logs "not found" and "mismatch" alike), so the
        # log line costs the same in both cases and its cost does not tell who exists.
        if decision.outcome is Outcome.DENIED:
            what, default = "denied by", "denied"
        else:
            what, default = "unknown to", "not found"
        if self._level <= logging.WARNING:
            self.log(environ, logging.WARNING, f"user '{_printable(raw_user)}' {what} "
                                               f"{decision.backend or self.label}: {decision.reason or default}")
        return False if decision.outcome is Outcome.DENIED else None

    def get_realm_hash(self, environ: Environ, user: str, realm: str) -> str | None:
        """mod_wsgi's Digest hook (``WSGIAuthUserScript`` with ``AuthType Digest``)."""
        raw_user = as_bytes(user)
        try:
            ha1 = self.realm_hash(raw_user, as_bytes(realm))
        except Exception as exc:  # noqa: BLE001
            self._failed(environ, "get_realm_hash", raw_user, exc)
            return None
        if ha1 is None:
            self.log(environ, logging.INFO, f"user '{_printable(raw_user)}' unknown in realm (Digest)")
            return None
        ha1 = ha1.strip().lower()
        if len(ha1) != 32 or any(c not in "0123456789abcdef" for c in ha1):
            self.log(environ, logging.ERROR, f"user '{_printable(raw_user)}': stored Digest hash is not 32 hex digits")
            return None
        return ha1

    def groups_for_user(self, environ: Environ, user: str) -> list[str]:
        """mod_wsgi's group hook (``WSGIAuthGroupScript``): always a list of ``str``."""
        raw_user = as_bytes(user)
        try:
            found = self.groups(raw_user)
        except Exception as exc:  # noqa: BLE001
            self._failed(environ, "groups_for_user", raw_user, exc)
            return []
        return group_names(found)

    def allow_access(self, environ: Environ, host: str) -> bool | None:
        """mod_wsgi's host hook (``WSGIAccessScript``): ``True``, ``False`` (403) or ``None`` (no decision).

        The rules see the connection's address (``REMOTE_ADDR``), never ``host``: with ``HostnameLookups On`` that is
        the client's unverified reverse-DNS name. Without a client address (none, or empty) the answer is ``False``.
        """
        if self.access is None:
            return None
        from .hostaccess import client_host

        addr = client_host(environ)
        if not addr:
            self.log(environ, logging.WARNING, "allow_access: no client address (REMOTE_ADDR): refused")
            return False
        try:
            answer = self.access(addr)
        except Exception as exc:  # noqa: BLE001
            self._failed(environ, "allow_access", as_bytes(addr), exc)
            return False
        if self._level <= logging.DEBUG:
            what = "allowed" if answer is True else "refused" if answer is False else "no decision"
            name = _printable(as_bytes(host)) if isinstance(host, str) else "?"
            self.log(environ, logging.DEBUG, f"allow_access: client {_printable(as_bytes(addr))} (host '{name}'): "
                                             f"{what}")
        return answer

    def hooks(self) -> tuple[
        Callable[[Environ, str, str], bool | str | None],
        Callable[[Environ, str, str], str | None],
        Callable[[Environ, str], list[str]],
        Callable[[Environ, str], bool | None],
    ]:
        """``(check_password, get_realm_hash, groups_for_user, allow_access)``, ready to export from auth.wsgi."""
        return self.check_password, self.get_realm_hash, self.groups_for_user, self.allow_access

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label!r}>"


class Wrapper(Backend):
    """A backend in front of another one (cache, throttling, name mapping): forwards everything to ``inner``.

    Subclasses override only what they change. The wrapper takes the inner backend's label, ``on_error``,
    ``log_level`` and ``access`` unless given, and shares its ``timing_hash``.

    Raises:
        TypeError: ``inner`` is not a wsgiauth backend.
    """

    def __init__(self, inner: Backend, **backend_kwargs: Any) -> None:
        if not isinstance(inner, Backend):
            raise TypeError(f"{type(self).__name__} wraps a wsgiauth backend, not {type(inner).__name__}")
        self.inner = inner
        backend_kwargs.setdefault("label", inner.label)
        backend_kwargs.setdefault("on_error", inner.on_error)
        backend_kwargs.setdefault("log_level", inner.log_level)
        backend_kwargs.setdefault("access", inner.access)
        super().__init__(**backend_kwargs)

    def authenticate(self, user: bytes, password: bytes, client: str | None = None) -> Decision:
        return self.inner.authenticate(user, password, client)

    def dummy_authenticate(self, user: bytes, password: bytes) -> None:
        self.inner.dummy_authenticate(user, password)

    def lookup(self, user: bytes) -> Record | None:
        return self.inner.lookup(user)

    def user_key(self, user: bytes) -> bytes:
        return self.inner.user_key(user)

    def refusal(self, user: bytes, client: str | None = None) -> str | None:
        return self.inner.refusal(user, client)

    def record_failure(self, user: bytes, client: str | None = None) -> None:
        self.inner.record_failure(user, client)

    def groups(self, user: bytes) -> Sequence[bytes] | None:
        return self.inner.groups(user)

    def realm_hash(self, user: bytes, realm: bytes) -> str | None:
        return self.inner.realm_hash(user, realm)

    def generation(self) -> int:
        return self.inner.generation()

    @property
    def timing_hash(self) -> str | None:
        inner = self.__dict__.get("inner")
        return inner.timing_hash if inner is not None else None

    @timing_hash.setter
    def timing_hash(self, value: str | None) -> None:
        inner = self.__dict__.get("inner")
        if value is not None and inner is not None:
            inner.timing_hash = value

    def close(self) -> None:
        self.inner.close()


def group_names(found: Iterable[bytes | str] | None) -> list[str]:
    """Groups as mod_wsgi wants them: a list of ``str`` that encode to the stored bytes as latin-1.

    Duplicates (compared case-insensitively, as Apache does) and empty or NUL-bearing names are dropped.
    """
    if found is None:
        return []
    if isinstance(found, (str, bytes)):  # a bare string would be iterated letter by letter
        found = [found]
    out: list[str] = []
    seen: set[str] = set()
    for g in found:
        raw = g if isinstance(g, bytes) else as_bytes(g)
        if not raw or b"\x00" in raw:
            continue
        text = raw.decode("latin-1")
        key = text.lower()
        if key not in seen:
            seen.add(key)
            out.append(text)
    return out
