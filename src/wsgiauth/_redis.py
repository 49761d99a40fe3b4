"""The shared Redis tier used by `wsgiauth.cache` and `wsgiauth.throttle`.

A `RedisTier` owns one redis-py client (with redis-py's own connection pool) per process, following the same
rules as `wsgiauth.pool`:

* created lazily, on first use in the process that uses it, never at import in Apache's parent;
* recreated after ``fork``: the owning pid is checked on every use, so a child never touches its parent's sockets;
* bounded timeouts (connect and read, 0.3 s by default) and one retry on a dead connection only (a connection
  refused or reset, e.g. after a Redis restart), never a retry on a timeout;
* found again by a re-imported auth script: `get_tier` keeps one tier per (url, prefix, options) in the
  process-wide registry `wsgiauth.adapter.shared`.

When Redis cannot be reached the tier goes *down*: callers get `TierDown` at once (no network wait) and fall
back to their per-process tier; the outage is logged once, on the transition, not per request. After ``retry_after``
seconds the next call tries Redis again; a success logs the recovery once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ._registry import shared

__all__ = ["RedisTier", "TierDown", "get_tier"]

logger = logging.getLogger("wsgiauth.redis")

T = TypeVar("T")


class TierDown(Exception):
    """Redis is unreachable (or in its back-off period): use the per-process tier."""


def _redacted(url: str) -> str:
    """The URL without any password, fit for a log line."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable redis url>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


class RedisTier:
    """A fork-safe, outage-tolerant handle on one Redis database.

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]`` (or ``rediss://``, ``unix://``).
        prefix: prepended to every key (``prefix:...``) so that several applications can share a Redis.
        socket_timeout: seconds to wait for a reply before giving up (the request falls back to the local tier).
        connect_timeout: seconds to wait for a TCP connection.
        max_connections: the size of redis-py's pool in each process (one per concurrent Apache thread is plenty).
        retry_after: seconds to wait after a failure before trying Redis again.
        clock: a monotonic clock (injectable for tests).

    Raises:
        ValueError: an empty prefix or non-positive timeouts.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "wsgiauth",
        socket_timeout: float = 0.3,
        connect_timeout: float = 0.3,
        max_connections: int = 64,
        retry_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not prefix or any(c.isspace() for c in prefix):
            raise ValueError(f"prefix must be a non-empty word, not {prefix!r}")
        if socket_timeout <= 0 or connect_timeout <= 0 or retry_after < 0 or max_connections < 1:
            raise ValueError("timeouts and max_connections must be positive, retry_after >= 0")
        self.url = url
        self.prefix = prefix
        self.socket_timeout = socket_timeout
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.retry_after = retry_after
        self._clock = clock
        self._lock = threading.Lock()
        self._pid = -1
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._down_until = 0.0
        self._down = False
        self.failures = 0  # calls that failed on a Redis error (each one fell back)
        self.skipped = 0  # calls refused at once while in back-off

    # ------------------------------------------------------------------ keys

    def key(self, *parts: str) -> str:
        """A namespaced key: ``prefix:part1:part2...``."""
        return ":".join((self.prefix, *parts))

    # ------------------------------------------------------------------ client

    def _new_client(self) -> Any:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        pool = redis.ConnectionPool.from_url(
            self.url,
            socket_timeout=self.socket_timeout,
            socket_connect_timeout=self.connect_timeout,
            max_connections=self.max_connections,
            # one retry, without waiting, on a dead pooled connection; a timeout is not retried
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
            health_check_interval=30,
        )
        return redis.Redis(connection_pool=pool)

    def client(self) -> Any:
        """This process's ``redis.Redis`` client (created on first use, recreated after fork)."""
        pid = os.getpid()
        client = self._client
        if client is not None and self._pid == pid:
            return client
        with self._lock:
            if self._client is None or self._pid != pid:
                # After fork the parent's client is dropped, never closed: its sockets belong to the parent.
                self._client = self._new_client()
                self._scripts = {}
                self._pid = pid
                self._down = False
                self._down_until = 0.0
            return self._client

    def script(self, source: str) -> Any:
        """A registered Lua script (EVALSHA with a fallback to EVAL) for this process's client."""
        client = self.client()
        found = self._scripts.get(source)
        if found is None:
            found = client.register_script(source)
            self._scripts[source] = found
        return found

    # ------------------------------------------------------------------ calls

    @property
    def available(self) -> bool:
        """``False`` while in the back-off period after a failure."""
        return not (self._down and self._clock() < self._down_until)

    def call(self, op: Callable[[Any], T]) -> T:
        """Run ``op(client)``; on any Redis or socket error go down and raise `TierDown`.

        Args:
            op: a function of the redis client doing one round trip (a command, a pipeline, a script).

        Returns:
            What ``op`` returned.

        Raises:
            TierDown: Redis is unreachable now, or was within the last ``retry_after`` seconds.
        """
        import redis

        if self._down and self._clock() < self._down_until:
            self.skipped += 1
            raise TierDown("redis is in back-off")
        try:
            result = op(self.client())
        except (redis.RedisError, OSError) as exc:
            self._went_down(exc)
            raise TierDown(type(exc).__name__) from exc
        if self._down:
            self._came_back()
        return result

    def _went_down(self, exc: BaseException) -> None:
        with self._lock:
            self.failures += 1
            self._down_until = self._clock() + self.retry_after
            if self._down:
                return  # already logged for this outage
            self._down = True
        logger.warning("redis at %s unreachable (%s); using the per-process tier, retrying every %g s",
                       _redacted(self.url), type(exc).__name__, self.retry_after)

    def _came_back(self) -> None:
        with self._lock:
            if not self._down:
                return
            self._down = False
            self._down_until = 0.0
        logger.warning("redis at %s reachable again; using the shared tier", _redacted(self.url))

    def close(self) -> None:
        """Disconnect this process's pool (only when this process created it)."""
        with self._lock:
            client, self._client = self._client, None
            if client is not None and self._pid == os.getpid():
                client.connection_pool.disconnect()

    def __repr__(self) -> str:
        return f"<RedisTier {_redacted(self.url)} prefix={self.prefix!r}>"


def get_tier(url: str, **options: Any) -> RedisTier:
    """The process-wide `RedisTier` for ``url`` and ``options`` (see `RedisTier` for the options).

    A re-imported auth script gets the tier (and its open connections) it created before.

    Raises:
        ValueError: bad options.
    """
    key = ("wsgiauth._redis.RedisTier", url, tuple(sorted((k, repr(v)) for k, v in options.items())))
    tier: RedisTier = shared(key, lambda: RedisTier(url, **options))
    return tier
