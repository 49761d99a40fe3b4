"""A connection pool tuned for Apache child processes (used by the SQL and LDAP backends, and the cache).

What makes it fit mod_wsgi's embedded mode (see design.md §5):

* **Lazy**: constructing a `Pool` opens nothing. The first connection is opened on first use, which
  happens in an Apache child, never in the parent that imported the script before forking.
* **Fork-safe**: the pool remembers the pid that owns its connections. Every checkout compares it with
  `os.getpid`, and an `os.register_at_fork` hook does the same right after a fork. A child
  *drops* the connections it inherited: it never closes them (closing could send a "terminate" message on a
  socket the parent still uses) and never uses them; it keeps a reference so that no destructor runs, and
  opens its own.
* **Bounded**: at most ``max_size`` connections exist per process (open, being opened or in use, all
  counted). A checkout waits at most ``timeout`` seconds for a free one, then raises
  `PoolTimeoutError`. The ``connect`` callable must itself have a bounded
  timeout (the drivers' ``connect_timeout``).
* **Fresh**: a connection idle longer than ``max_idle`` or older than ``max_lifetime`` (jittered by -10%..0
  so that a process's connections do not all expire together) is closed instead of reused; one idle longer
  than ``check_after`` is validated with ``check`` before it is handed out.
* **Resilient**: `Pool.run` retries once, on a fresh connection, when a connection turns out dead (an
  error ``is_dead`` accepts). A dead connection also drops the idle ones (after a server restart they are all
  dead). After ``breaker_threshold`` consecutive failures (connect errors, dead connections) the circuit
  breaker opens: for ``breaker_reset`` seconds every checkout fails at once with
  `BackendUnavailableError` (a fast "unknown" instead of a hung Apache thread);
  then one trial request is let through, and its success closes the breaker.
* **Findable**: `get_pool` keeps one pool per key for the whole process, so an auth script that
  mod_wsgi re-imports (without cleaning up the old module) finds its pool again instead of opening a second.

Logging goes to the ``wsgiauth.pool`` logger; `Pool.stats` returns counters.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from . import _registry
from ._options import POOL_OPTIONS, PoolOptions, check_options
from .exceptions import BackendError, BackendUnavailableError, PoolTimeoutError

__all__ = ["Pool", "default_is_dead", "get_pool", "pool_arguments"]

logger = logging.getLogger("wsgiauth.pool")

C = TypeVar("C")
T = TypeVar("T")

# The Pool keyword of each backend keyword that is named differently.
_POOL_ARGUMENT = {"pool_size": "max_size", "pool_timeout": "timeout"}


def pool_arguments(options: PoolOptions, *, what: str) -> dict[str, Any]:
    """Check a backend's pool keywords and return `Pool`'s keyword arguments (defaults filled in).

    Args:
        options: the keywords of `wsgiauth._options.PoolOptions` the backend received.
        what: the backend's name, for the error about an unknown keyword.

    Raises:
        TypeError: a keyword that is not a pool option.
        OptionError: a value out of range (a `ConfigError`, naming the keyword).
    """
    checked = check_options(POOL_OPTIONS, options, what=what)
    return {_POOL_ARGUMENT.get(name, name): value for name, value in checked.items()}


# Connections inherited from a parent process: kept referenced forever so that no destructor (which might
# close or terminate a socket the parent still uses) ever runs on them in the child. Bounded by max_size.
_inherited: list[Any] = []

_DEAD_NAMES = frozenset({"OperationalError", "InterfaceError"})


def default_is_dead(exc: BaseException) -> bool:
    """The default test for "this error means the connection is dead".

    Accepts OS-level errors (``OSError``, including socket timeouts and ``ConnectionError``), ``EOFError``,
    and the DB-API's ``OperationalError`` / ``InterfaceError`` (by class name, so no driver needs importing).

    Args:
        exc: the exception raised while using a connection.

    Returns:
        ``True`` when the connection should be discarded (and the operation may be retried on a fresh one).
    """
    if isinstance(exc, BackendError):
        return False
    if isinstance(exc, (OSError, EOFError)):
        return True
    return any(cls.__name__ in _DEAD_NAMES for cls in type(exc).__mro__)


def _close_default(conn: Any) -> None:
    close = getattr(conn, "close", None)
    if close is not None:
        close()


class _Slot(Generic[C]):
    """One open connection and its timestamps (monotonic seconds)."""

    __slots__ = ("conn", "created", "expires", "last_used")

    def __init__(self, conn: C, now: float, lifetime: float) -> None:
        self.conn = conn
        self.created = now
        self.expires = now + lifetime * random.uniform(0.9, 1.0) if lifetime > 0 else float("inf")
        self.last_used = now


class Pool(Generic[C]):
    """A thread-safe, fork-aware pool of connections of any kind.

    Args:
        connect: opens a new connection; must time out by itself (driver ``connect_timeout``). Called without
            the pool's lock held.
        name: a label for logs and stats.
        max_size: the most connections this process ever holds open at once (>= 1).
        timeout: the longest a checkout waits for a free connection before `PoolTimeoutError`.
        max_idle: an idle connection unused for longer than this is closed instead of reused (<= 0: never).
        max_lifetime: a connection older than this (jittered by -10%..0) is closed instead of reused (<= 0:
            never).
        check: validates a connection (e.g. ``SELECT 1``); raises if it is dead. Run on connections idle
            longer than ``check_after`` before they are handed out.
        check_after: the idle time after which ``check`` runs.
        close: closes a connection (default: ``conn.close()``). Errors are logged and ignored.
        reset: run on every connection returned to the pool (e.g. rollback); an error discards the connection.
        is_dead: which exceptions mean "the connection is dead" (default: `default_is_dead`).
        breaker_threshold: consecutive failures that open the circuit breaker (<= 0: no breaker).
        breaker_reset: how long the breaker stays open before one trial request is let through.

    Raises:
        ValueError: a size or duration is out of range.
    """

    def __init__(
        self,
        connect: Callable[[], C],
        *,
        name: str = "pool",
        max_size: int = 4,
        timeout: float = 5.0,
        max_idle: float = 300.0,
        max_lifetime: float = 3600.0,
        check: Callable[[C], None] | None = None,
        check_after: float = 30.0,
        close: Callable[[C], None] | None = None,
        reset: Callable[[C], None] | None = None,
        is_dead: Callable[[BaseException], bool] | None = None,
        breaker_threshold: int = 5,
        breaker_reset: float = 10.0,
    ) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, not {max_size!r}")
        if timeout < 0:
            raise ValueError(f"timeout must be >= 0 seconds, not {timeout!r}")
        if breaker_reset < 0 or check_after < 0:
            raise ValueError("breaker_reset and check_after must be >= 0 seconds")
        self.name = name
        self.max_size = max_size
        self.timeout = timeout
        self.max_idle = max_idle
        self.max_lifetime = max_lifetime
        self.check_after = check_after
        self._connect = connect
        self._check = check
        self._close = close or _close_default
        self._reset = reset
        self._is_dead = is_dead or default_is_dead
        self.breaker_threshold = breaker_threshold
        self.breaker_reset = breaker_reset
        self._closed = False
        _registry.per_process(self)  # calls _reset_for_process now and in every forked child

    # ------------------------------------------------------------------ per-process state

    def _init_process_state(self) -> None:
        """(Re)initialise everything that belongs to one process: lock, connections, counters, breaker."""
        self._pid = os.getpid()
        self._cond = threading.Condition(threading.Lock())
        self._idle: deque[_Slot[C]] = deque()  # right end = most recently returned (LIFO reuse)
        self._in_use: dict[int, _Slot[C]] = {}  # checked out, by id()
        self._opening = 0
        self._waiting = 0
        self._failures = 0  # consecutive
        self._open_until = 0.0  # breaker open while monotonic() < this
        self._breaker_open = False
        self._trial = False  # a half-open trial is in flight
        self._counters: dict[str, int] = dict.fromkeys(
            ("opened", "closed", "checkouts", "timeouts", "errors", "retries", "checks_failed", "expired",
             "fast_failures", "breaker_trips"), 0)

    def _reset_for_process(self) -> None:
        """Fresh per-process state: at creation, and in a forked child, where the parent's connections are dropped
        (never closed, never used)."""
        inherited = [s.conn for s in getattr(self, "_idle", ())]
        inherited += [s.conn for s in getattr(self, "_in_use", {}).values()]
        closed = self._closed
        self._init_process_state()
        self._closed = closed
        if inherited:
            _inherited.extend(inherited)
            logger.debug("pool %s: forked child %d dropped %d inherited connection(s)", self.name, self._pid,
                         len(inherited))

    def _ensure_pid(self) -> None:
        if self._pid != os.getpid():
            with _registry.lock():
                if self._pid != os.getpid():
                    self._reset_for_process()

    # ------------------------------------------------------------------ checkout / return

    @contextmanager
    def connection(self) -> Iterator[C]:
        """Check a connection out for the duration of a ``with`` block.

        An exception ``is_dead`` accepts discards the connection (and the idle ones) and counts as a failure
        for the circuit breaker; any other exception returns the connection to the pool (after ``reset``)
        and propagates.

        Yields:
            a connection, used by this thread only until the block ends.

        Raises:
            PoolTimeoutError: no connection became free within ``timeout`` seconds.
            BackendUnavailableError: the pool is closed, the breaker is open, or a new connection could not
                be opened.
        """
        slot, trial = self._checkout()
        pid = self._pid
        try:
            yield slot.conn
        except BaseException as exc:
            if pid != os.getpid():  # forked inside the block: the connection belongs to the parent
                raise
            if self._is_dead(exc):
                self._discard(slot, reason=f"dead ({type(exc).__name__})", purge_idle=True)
                self._failure(trial, exc)
            else:
                self._checkin(slot)
                self._success(trial)
            raise
        if pid != os.getpid():
            return
        self._checkin(slot)
        self._success(trial)

    def run(self, fn: Callable[[C], T]) -> T:
        """Call ``fn(connection)`` and return its result; retry once on a fresh connection if it was dead.

        Args:
            fn: the work to do with a connection. It may be called twice, so it should be idempotent (a
                query).

        Returns:
            what ``fn`` returned.

        Raises:
            PoolTimeoutError: no connection became free in time.
            BackendUnavailableError: the server is unreachable (connect failed, the connection died twice) or
                the breaker is open.
            Exception: any error of ``fn`` that does not mean a dead connection, unchanged.
        """
        retried = False
        while True:
            try:
                with self.connection() as conn:
                    return fn(conn)
            except BackendError:
                raise
            except Exception as exc:
                if not self._is_dead(exc):
                    raise
                if retried:
                    raise BackendUnavailableError(
                        f"pool {self.name}: connection failed twice ({type(exc).__name__}: {exc})") from exc
                logger.info("pool %s: connection dead (%s), retrying once on a fresh one", self.name,
                            type(exc).__name__)
                self._count("retries")
                retried = True

    def _checkout(self) -> tuple[_Slot[C], bool]:
        self._ensure_pid()
        deadline = time.monotonic() + self.timeout
        trial = False
        while True:
            slot, trial = self._reserve(deadline, trial)
            if slot is None:
                return self._open(trial), trial
            if self._check is not None and time.monotonic() - slot.last_used > self.check_after:
                try:
                    self._check(slot.conn)
                except Exception as exc:  # noqa: BLE001 - any failure means "do not use it"
                    self._count("checks_failed")
                    self._discard(slot, reason=f"check failed ({type(exc).__name__})", purge_idle=True)
                    continue
            return slot, trial

    def _reserve(self, deadline: float, trial: bool) -> tuple[_Slot[C] | None, bool]:
        """Under the lock: take an idle connection (slot) or reserve the right to open one (None).

        ``trial`` is True when the caller already holds the breaker's half-open trial (a retry after a failed
        check).
        """
        stale: list[_Slot[C]] = []
        try:
            with self._cond:
                if self._closed:
                    raise BackendUnavailableError(f"pool {self.name} is closed")
                if not trial:
                    trial = self._breaker_gate()
                try:
                    while True:
                        now = time.monotonic()
                        self._sweep(now, stale)
                        if self._idle:
                            slot = self._idle.pop()
                            self._in_use[id(slot)] = slot
                            self._counters["checkouts"] += 1
                            return slot, trial
                        if self._size() < self.max_size:
                            self._opening += 1
                            self._counters["checkouts"] += 1
                            return None, trial
                        remaining = deadline - now
                        if remaining <= 0:
                            self._counters["timeouts"] += 1
                            raise PoolTimeoutError(
                                f"pool {self.name}: no free connection within {self.timeout:g}s "
                                f"({self.max_size} in use; raise max_size or timeout)")
                        self._waiting += 1
                        try:
                            self._cond.wait(remaining)
                        finally:
                            self._waiting -= 1
                except BaseException:
                    if trial:
                        self._trial = False
                    raise
        finally:
            for s in stale:
                self._close_conn(s.conn, "expired")

    def _sweep(self, now: float, stale: list[_Slot[C]]) -> None:
        """Move expired idle connections (too old, idle too long) to ``stale``; the caller closes them
        unlocked."""
        keep: deque[_Slot[C]] = deque()
        for s in self._idle:
            if now >= s.expires or (self.max_idle > 0 and now - s.last_used > self.max_idle):
                stale.append(s)
                self._counters["expired"] += 1
            else:
                keep.append(s)
        if stale:
            self._idle = keep

    def _size(self) -> int:
        return len(self._idle) + len(self._in_use) + self._opening

    def _open(self, trial: bool) -> _Slot[C]:
        try:
            conn = self._connect()
        except BaseException as exc:
            with self._cond:
                self._opening -= 1
                self._counters["errors"] += 1
                self._cond.notify()
            self._failure(trial, exc)
            logger.warning("pool %s: cannot connect: %s: %s", self.name, type(exc).__name__, exc)
            if isinstance(exc, BackendError):
                raise
            if not isinstance(exc, Exception):
                raise
            raise BackendUnavailableError(
                f"pool {self.name}: cannot connect ({type(exc).__name__}: {exc})") from exc
        slot = _Slot(conn, time.monotonic(), self.max_lifetime)
        with self._cond:
            self._opening -= 1
            self._in_use[id(slot)] = slot
            self._counters["opened"] += 1
        logger.debug("pool %s: opened a connection (pid %d)", self.name, self._pid)
        return slot

    def _checkin(self, slot: _Slot[C]) -> None:
        if self._reset is not None:
            try:
                self._reset(slot.conn)
            except Exception as exc:  # noqa: BLE001
                self._discard(slot, reason=f"reset failed ({type(exc).__name__})",
                              purge_idle=self._is_dead(exc))
                return
        now = time.monotonic()
        with self._cond:
            self._in_use.pop(id(slot), None)
            if not self._closed and now < slot.expires:
                slot.last_used = now
                self._idle.append(slot)
                self._cond.notify()
                return
            self._counters["expired"] += 0 if self._closed else 1
            self._cond.notify()
        self._close_conn(slot.conn, "expired" if not self._closed else "pool closed")

    def _discard(self, slot: _Slot[C], *, reason: str, purge_idle: bool) -> None:
        with self._cond:
            self._in_use.pop(id(slot), None)
            stale: list[_Slot[C]] = []
            if purge_idle and self._idle:
                stale = list(self._idle)
                self._idle.clear()
            self._cond.notify_all()
        logger.info("pool %s: discarding a connection: %s%s", self.name, reason,
                    f" (and {len(stale)} idle one(s))" if stale else "")
        self._close_conn(slot.conn, reason)
        for s in stale:
            self._close_conn(s.conn, reason)

    def _close_conn(self, conn: C, reason: str) -> None:
        try:
            self._close(conn)
        except Exception as exc:  # noqa: BLE001 - a failing close must not break a request
            logger.debug("pool %s: closing a connection (%s) failed: %s", self.name, reason,
                         type(exc).__name__)
        with self._cond:
            self._counters["closed"] += 1

    # ------------------------------------------------------------------ circuit breaker

    def _breaker_gate(self) -> bool:
        """Under the lock: fail fast while the breaker is open; return True for the one half-open trial."""
        if not self._breaker_open:
            return False
        if time.monotonic() < self._open_until or self._trial:
            self._counters["fast_failures"] += 1
            raise BackendUnavailableError(
                f"pool {self.name}: server unavailable ({self._failures} consecutive failures; "
                f"circuit breaker open, next trial in {max(0.0, self._open_until - time.monotonic()):.1f}s)")
        self._trial = True
        return True

    def _failure(self, trial: bool, exc: BaseException) -> None:
        with self._cond:
            self._failures += 1
            if trial:
                self._trial = False
            if self.breaker_threshold > 0 and (trial or self._failures >= self.breaker_threshold):
                if not self._breaker_open or trial:
                    self._counters["breaker_trips"] += 1
                    logger.warning(
                        "pool %s: circuit breaker open for %gs after %d consecutive failure(s) (%s)",
                        self.name, self.breaker_reset, self._failures, type(exc).__name__)
                self._breaker_open = True
                self._open_until = time.monotonic() + self.breaker_reset

    def _success(self, trial: bool) -> None:
        if not self._failures and not trial:
            return
        with self._cond:
            if self._breaker_open:
                logger.warning("pool %s: server reachable again, circuit breaker closed", self.name)
            self._failures = 0
            self._breaker_open = False
            self._trial = False

    # ------------------------------------------------------------------ misc

    def _count(self, key: str) -> None:
        with self._cond:
            self._counters[key] += 1

    def stats(self) -> dict[str, int | float]:
        """Counters and gauges of this process's pool.

        Returns:
            ``size`` (open + being opened), ``idle``, ``in_use``, ``opening``, ``waiting``, ``max_size``, ``pid``,
            ``breaker_open`` (0/1), ``failures`` (consecutive), and the running totals ``opened``, ``closed``,
            ``checkouts``, ``timeouts``, ``errors`` (failed connects), ``retries``, ``checks_failed``, ``expired``,
            ``fast_failures`` (refused by the open breaker), ``breaker_trips``.
        """
        self._ensure_pid()
        with self._cond:
            out: dict[str, int | float] = {
                "size": self._size(),
                "idle": len(self._idle),
                "in_use": len(self._in_use),
                "opening": self._opening,
                "waiting": self._waiting,
                "max_size": self.max_size,
                "pid": self._pid,
                "breaker_open": int(self._breaker_open),
                "failures": self._failures,
            }
            out.update(self._counters)
            return out

    def close(self) -> None:
        """Close the idle connections now and the ones in use when they come back; later checkouts fail."""
        self._ensure_pid()
        with self._cond:
            self._closed = True
            stale = list(self._idle)
            self._idle.clear()
            self._cond.notify_all()
        for s in stale:
            self._close_conn(s.conn, "pool closed")

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

    def __repr__(self) -> str:
        return f"<Pool {self.name!r} size={self._size()}/{self.max_size} pid={self._pid}>"


# ---------------------------------------------------------------------- registry

def get_pool(key: Hashable, factory: Callable[[], Pool[Any]]) -> Pool[Any]:
    """The process-wide pool registered under `key`, created by `factory` on first use.

    An auth script that mod_wsgi re-imports finds the pool it created before (and its open connections) instead of
    opening more. A pool that was closed is replaced by a new one.

    Args:
        key: identifies the pool, e.g. `("sql", dsn, user)`; it must not hold a password in clear (it is not logged
            here, but a key may appear in a debugger or a log of the caller).
        factory: builds the pool (it opens nothing until first use).

    Returns:
        The registered pool, never a closed one.
    """
    full = ("wsgiauth.pool", key)
    pool: Pool[Any] = _registry.shared(full, factory)
    if pool.closed:
        pool = _registry.replace(full, pool, factory)
    return pool
