"""A verification cache in front of any backend: a right password checked once costs microseconds afterwards.

mod_wsgi calls the auth hook on every request and nothing in Apache caches its answer, so a slow hash (bcrypt,
SHA-crypt) or a directory round trip is paid on every request. `cached` wraps a backend and remembers, per user,
that a given password was *granted*:

* what is kept per user is a keyed digest of the password (keyed BLAKE2s over the user name and the password with a
  random per-process key; in a shared Redis tier, HMAC-SHA256 with a configured shared key), the decision, the
  canonical name and the groups. Never the password, never the stored hash;
* a hit computes one keyed digest and compares digests in constant time: no password hash, no store look-up;
* only grants are cached. A wrong password always goes to the backend again, so a failure can never turn a later
  right password into a denial (there is no negative cache);
* an entry lives ``ttl`` seconds at most and dies at once when the backend's `generation()`
  changes (file and DBM stores bump it when they reload), or on `Cached.invalidate`;
* the per-process tier is a bounded LRU (``max_size`` users), thread-safe;
* fork: **a child starts empty** (new lock, new random key, no entries), reset by ``os.register_at_fork`` (a pid
  check on every call where that hook does not exist). Nothing verified in the parent is trusted in a child. Apache
  forks its children in C, where no such hook runs, but mod_wsgi sets Python up in each child after the fork (and
  runs CPython's after-fork handling), so a child never holds a cache created in the parent.

Freshness. File and DBM backends: a changed or deleted password stops working as soon as the backend notices the
change (its ``check_interval``, 1 s by default). SQL and LDAP backends have no change signal: a changed or deleted
password keeps working from the cache for at most ``ttl`` seconds (``invalidate(user)`` ends it at once).

Shared tier (``redis=``). Entries are also written to Redis so that every Apache child on every web server shares
them: a process that misses its own tier asks Redis (one round trip, still no hash). The entry's digest is keyed with
the shared ``key`` and every entry carries a MAC over its content, so whoever can write to Redis but does not know the
key cannot forge a grant or change a user's groups. Invalidation across processes uses an epoch counter in Redis:
a process whose backend reloads (or that starts serving) bumps it, which retires every shared entry. The epoch never
goes back in a process: each one remembers the highest epoch it has read or written and takes an entry only when
its epoch (covered by the entry's MAC) is the one in force, so someone who sets the counter in Redis back, or replays
an old entry, gets no old password's grant served; a lower counter found in Redis is put back and logged once.
Redis down: the per-process tier keeps serving, the outage is logged once, Redis is retried after a back-off.

Admin calls: `Cached.invalidate` takes the name as a request carries it: ``bytes``, or a ``str`` encoded as UTF-8.
"""

from __future__ import annotations

import os
import struct
import time
from collections import OrderedDict

from . import _registry
from ._options import CACHE_MAX_SIZE, CACHE_TTL
from ._value import Value
from .adapter import Backend, Decision, Outcome, Wrapper
from .exceptions import ConfigError

# Only what the per-process tier needs is imported here (an auth script pays for it in every Apache child): the
# Redis tier (redis-py, urllib), hmac/hashlib (OpenSSL's libcrypto) and json are imported when a shared tier is used.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from hashlib import blake2s as _blake2s
    from hmac import compare_digest as _ct_equal
    from typing import Any

    from ._redis import RedisTier
else:
    try:
        from _operator import _compare_digest as _ct_equal  # what hmac.compare_digest is
    except ImportError:  # pragma: no cover - other Python implementations
        from hmac import compare_digest as _ct_equal
    try:
        from _blake2 import blake2s as _blake2s  # what hashlib.blake2s is
    except ImportError:  # pragma: no cover - a Python built without its own hash modules
        from hashlib import blake2s as _blake2s

__all__ = ["Cached", "cached"]

# KEYS: the epoch. ARGV: the highest epoch this process has seen, and 1 to bump it (0: only restore it). Never moves
# the epoch below what the process has seen (a rolled-back or lost epoch is put back first). Returns the epoch.
_EPOCH_SCRIPT = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local seen = tonumber(ARGV[1])
local bump = tonumber(ARGV[2])
if cur < seen or bump > 0 then
  if cur < seen then cur = seen end
  cur = cur + bump
  redis.call('SET', KEYS[1], cur)
end
return cur
"""


def _admin_bytes(value: str | bytes) -> bytes:
    """An administrator's user name as a request carries it: a ``str`` as UTF-8 (what a browser sends for a Unicode
    name), ``bytes`` unchanged (pass ``user.encode("latin-1")`` for text mod_wsgi decoded from a request)."""
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


def _frame(*parts: bytes) -> bytes:
    """Length-prefixed concatenation: no two different part lists give the same bytes."""
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


class _Entry(Value):
    """One remembered grant (immutable); ``decision`` is the answer a hit returns, built once at store time."""

    __slots__ = ("decision", "digest", "expires", "generation", "groups", "name")
    __match_args__ = ("digest", "name", "groups", "generation", "expires", "decision")

    # The decision keeps the account the store resolved (`Decision.identity`), which a throttle in front counts
    # under, so that a cached grant of a locked-out account is refused like any other.

    digest: bytes
    name: bytes | None
    groups: tuple[bytes, ...] | None
    generation: int
    expires: float
    decision: Decision

    def __init__(self, digest: bytes, name: bytes | None, groups: tuple[bytes, ...] | None, generation: int,
                 expires: float, decision: Decision) -> None:
        self._init(digest, name, groups, generation, expires, decision)


class Cached(Wrapper, _registry.PerProcess):
    """A backend whose grants are remembered; see the module documentation for the rules.

    Args:
        inner: the backend that really checks passwords.
        ttl: seconds a grant is trusted (per-process and shared tiers).
        max_size: users kept in the per-process tier (least recently used dropped first).
        redis: a Redis URL (``redis://127.0.0.1:6379/0``) or a `RedisTier` for the shared
            tier; ``None`` for the per-process tier only.
        key: the shared HMAC key for the Redis tier (at least 16 bytes; a ``str`` is UTF-8 encoded). Required with
            ``redis``; every process and server sharing the tier must use the same key. Keep it secret.
        local_ttl: with ``redis``, seconds an entry stays in the per-process tier (default ``min(ttl, 10)``), which
            bounds how long an ``invalidate()`` made elsewhere takes to reach this process.
        namespace: identifies the store in shared keys (default: the backend's class and label). Two backends
            sharing a Redis must have different namespaces (give them different labels).
        clock: a monotonic clock (injectable for tests).
        backend_kwargs: ``on_error``, ``log_level``... (default: the inner backend's); the label is the inner's.

    Raises:
        ConfigError: bad sizes or times, or ``redis`` without a usable ``key``.
    """

    def __init__(
        self,
        inner: Backend,
        *,
        ttl: float = CACHE_TTL.default,
        max_size: int = CACHE_MAX_SIZE.default,
        redis: str | RedisTier | None = None,
        key: bytes | str | None = None,
        local_ttl: float | None = None,
        namespace: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        **backend_kwargs: Any,
    ) -> None:
        ttl = CACHE_TTL.check("ttl", ttl)
        max_size = CACHE_MAX_SIZE.check("max_size", max_size)
        super().__init__(inner, **backend_kwargs)
        self.ttl = ttl
        self.max_size = max_size
        self._clock = clock
        self.namespace = namespace or f"{type(inner).__qualname__}:{inner.label}"

        self._tier: RedisTier | None = None
        self._shared_key = b""
        if redis is not None:
            if key is None:
                raise ConfigError("cache: a shared tier (redis=...) needs a shared secret key (key=..., "
                                  "at least 16 bytes, the same in every process and on every server)")
            shared_key = key.encode("utf-8") if isinstance(key, str) else bytes(key)
            if len(shared_key) < 16:
                raise ConfigError("cache: the shared key must be at least 16 bytes long")
            self._shared_key = shared_key
            if isinstance(redis, str):
                from ._redis import get_tier

                self._tier = get_tier(redis)
            else:
                self._tier = redis
        lt = min(ttl, 10.0) if local_ttl is None else float(local_ttl)
        if not lt > 0:
            raise ConfigError(f"cache local_ttl must be a positive number of seconds, not {local_ttl!r}")
        self.local_ttl = lt if self._tier is not None else ttl
        # A backend that keeps the base class's generation() has no change signal: nothing to announce.
        self._tracks_changes = type(inner).generation is not Backend.generation

        self.hits = 0
        self.shared_hits = 0
        self.misses = 0
        # The highest shared epoch this process has seen (kept across fork: it is no secret, and a child must not
        # accept an epoch its parent knew to be retired).
        self._epoch_seen = 0
        self._rollback_logged = 0
        self._start_per_process()

    # ------------------------------------------------------------------ per-process state

    def _fresh_state(self) -> None:
        """A new random key and no entries (a forked child starts empty)."""
        self._key = os.urandom(32)
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._groups: OrderedDict[bytes, tuple[int, float, tuple[bytes, ...] | None]] = OrderedDict()
        self._generation: int | None = None
        self._invalidations = 0

    def _current_generation(self) -> int:
        """The inner backend's generation; a change empties the per-process tier and retires shared entries."""
        if not _registry.AT_FORK and self._pid != os.getpid():
            self._reset_for_process()
        gen = self.inner.generation()
        if gen != self._generation:
            with self._lock:
                first = self._generation is None
                changed = gen != self._generation
                if changed:
                    self._entries.clear()
                    self._groups.clear()
                    self._generation = gen
                    self._invalidations += 1
            # A process that reloaded, or starts serving with what may be a newer copy of the store than the one
            # the shared entries were verified against, retires them.
            if changed and self._tier is not None and (self._tracks_changes or not first):
                self._bump_epoch()
        return gen

    # ------------------------------------------------------------------ digests

    def _local_digest(self, user: bytes, password: bytes) -> bytes:
        # Keyed BLAKE2s: a MAC by design, and the cheapest one CPython has built in (docs/benchmarks.md, the cache
        # hit). The user's length comes first, so no two (user, password) pairs hash the same bytes.
        return _blake2s(len(user).to_bytes(4, "big") + user + password, key=self._key).digest()

    def _shared_digest(self, user: bytes, password: bytes) -> bytes:
        import hmac

        return hmac.digest(self._shared_key, _frame(b"pw", self.namespace.encode(), user, password), "sha256")

    # ------------------------------------------------------------------ the backend interface

    def authenticate(self, user: bytes, password: bytes, client: str | None = None) -> Decision:
        """Answer from the cache when this password was granted before; otherwise ask the inner backend.

        Returns:
            The inner backend's decision, or a cached grant (same name, groups and backend label; reason
            ``"cached"``).
        """
        gen = self._current_generation()
        digest = self._local_digest(user, password)
        now = self._clock()
        with self._lock:
            entry = self._entries.get(user)
            if entry is not None:
                if entry.expires > now and entry.generation == gen:
                    self._entries.move_to_end(user)
                else:
                    del self._entries[user]
                    entry = None
            invalidations = self._invalidations
        if entry is not None and _ct_equal(entry.digest, digest):
            self.hits += 1
            return entry.decision

        epoch: int | None = None
        if self._tier is not None:
            epoch, found = self._shared_get(user, password)
            if found is not None:
                self.shared_hits += 1
                name, groups, identity, left = found
                self._store(user, digest, name, groups, identity, gen, invalidations, left)
                return Decision(Outcome.GRANTED, name=name, groups=groups, backend=self.inner.label,
                                reason="cached (shared)", identity=identity)

        self.misses += 1
        decision = self.inner.authenticate(user, password, client)
        if decision.outcome is Outcome.GRANTED:
            stored = self._store(user, digest, decision.name, decision.groups, decision.identity, gen,
                                 invalidations)
            if stored and epoch is not None:
                # Tagged with the epoch read *before* the verification: if a process reloaded the store
                # meanwhile, the entry is born retired.
                self._shared_put(user, password, decision.name, decision.groups, decision.identity, epoch)
        return decision

    def _store(self, user: bytes, digest: bytes, name: bytes | None, groups: tuple[bytes, ...] | None,
               identity: bytes | None, gen: int, invalidations: int, left: float | None = None) -> bool:
        """Remember a grant, unless the cache was invalidated while it was being verified."""
        with self._lock:
            if self._invalidations != invalidations or self._generation != gen:
                return False
            life = self.local_ttl if left is None else min(self.local_ttl, left)
            decision = Decision(Outcome.GRANTED, name=name, groups=groups, backend=self.inner.label,
                                reason="cached", identity=identity)
            self._entries[user] = _Entry(digest, name, groups, gen, self._clock() + life, decision)
            self._entries.move_to_end(user)
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)
            if groups is not None:
                self._put_groups(user, gen, groups)
        return True

    def groups(self, user: bytes) -> Sequence[bytes] | None:
        """The inner backend's groups, remembered for the TTL (and dropped when the generation changes)."""
        gen = self._current_generation()
        now = self._clock()
        with self._lock:
            found = self._groups.get(user)
            if found is not None:
                if found[0] == gen and found[1] > now:
                    self._groups.move_to_end(user)
                    return list(found[2]) if found[2] is not None else None
                del self._groups[user]
            invalidations = self._invalidations
        groups = self.inner.groups(user)
        frozen = tuple(groups) if groups is not None else None
        with self._lock:
            if self._invalidations == invalidations and self._generation == gen:
                self._put_groups(user, gen, frozen)
        return groups

    def _put_groups(self, user: bytes, gen: int, groups: tuple[bytes, ...] | None) -> None:
        self._groups[user] = (gen, self._clock() + self.local_ttl, groups)
        self._groups.move_to_end(user)
        while len(self._groups) > self.max_size:
            self._groups.popitem(last=False)

    # realm_hash and lookup are forwarded (Wrapper), never cached: a Digest HA1 is as good as the password and a
    # record holds the stored hash; the cache holds neither.

    def close(self) -> None:
        self.invalidate()
        self.inner.close()

    # ------------------------------------------------------------------ management

    def invalidate(self, user: bytes | str | None = None) -> None:
        """Forget one user's cached grant and groups (``user``), or everything (``None``), at once.

        With a shared tier, the user's shared entry is deleted (``None``: every shared entry of this namespace is
        retired); other processes drop their own copies within ``local_ttl``.

        Args:
            user: the user name as a request carries it: ``bytes``, or a ``str``, encoded as UTF-8 (so
                ``invalidate("zoë")`` is the user whose browser sends ``zo\xc3\xab``; for text that mod_wsgi
                decoded as latin-1, pass ``user.encode("latin-1")``); or ``None`` for all users.
        """
        raw = None if user is None else _admin_bytes(user)
        if self._pid != os.getpid():
            self._reset_for_process()
        with self._lock:
            self._invalidations += 1
            if raw is None:
                self._entries.clear()
                self._groups.clear()
            else:
                self._entries.pop(raw, None)
                self._groups.pop(raw, None)
        if self._tier is not None:
            if raw is None:
                self._bump_epoch()
            else:
                from ._redis import TierDown

                entry_key = self._entry_key(raw)
                try:
                    self._tier.call(lambda r: r.delete(entry_key))
                except TierDown:
                    pass

    def stats(self) -> dict[str, int]:
        """Counters of this process: ``hits``, ``shared_hits``, ``misses``, ``size``."""
        return {"hits": self.hits, "shared_hits": self.shared_hits, "misses": self.misses,
                "size": len(self._entries)}

    def __len__(self) -> int:
        return len(self._entries)

    # ------------------------------------------------------------------ shared tier

    def _entry_key(self, user: bytes) -> str:
        assert self._tier is not None
        import hmac

        uid = hmac.digest(self._shared_key, _frame(b"user", self.namespace.encode(), user), "sha256")
        return self._tier.key("cache", self.namespace, uid.hex()[:40])

    def _epoch_key(self) -> str:
        assert self._tier is not None
        return self._tier.key("cache", self.namespace, "epoch")

    def _mac(self, user: bytes, body: bytes) -> str:
        import hmac

        return hmac.digest(self._shared_key, _frame(b"entry", self.namespace.encode(), user, body), "sha256").hex()

    def _set_epoch(self, bump: int) -> int | None:
        """Move the shared epoch up by ``bump`` (0: only put it back up to the highest seen); the new epoch, or
        ``None`` when Redis does not answer."""
        tier = self._tier
        assert tier is not None
        from ._redis import TierDown

        keys = [self._epoch_key()]
        seen = self._epoch_seen
        try:
            epoch = int(tier.call(lambda r: tier.script(_EPOCH_SCRIPT)(keys=keys, args=[seen, bump], client=r)))
        except TierDown:
            return None
        self._saw_epoch(epoch)
        return epoch

    def _bump_epoch(self) -> None:
        self._set_epoch(1)

    def _saw_epoch(self, epoch: int) -> int:
        """Record a shared epoch read or written; returns the epoch in force: never lower than the highest seen."""
        with self._lock:
            seen = self._epoch_seen
            if epoch >= seen:
                self._epoch_seen = epoch
                return epoch
        if self._rollback_logged != seen:
            self._rollback_logged = seen
            import logging

            logging.getLogger("wsgiauth.cache").warning(
                "cache %s: the shared epoch went back from %d to %d (Redis flushed or restarted, or written by "
                "someone else): entries older than %d are ignored and the epoch is put back", self.label, seen,
                epoch, seen)
        self._set_epoch(0)
        return seen

    def _shared_put(self, user: bytes, password: bytes, name: bytes | None,
                    groups: tuple[bytes, ...] | None, identity: bytes | None, epoch: int) -> None:
        tier = self._tier
        assert tier is not None
        import json

        from ._redis import TierDown

        body = json.dumps({
            "d": self._shared_digest(user, password).hex(),
            "e": epoch,
            "x": round(time.time() + self.ttl, 3),  # wall clock: shared entries outlive no process's clock
            "n": None if name is None else name.hex(),
            "g": None if groups is None else [g.hex() for g in groups],
            "i": None if identity is None else identity.hex(),
        }, separators=(",", ":")).encode()
        value = self._mac(user, body).encode() + b":" + body
        entry_key = self._entry_key(user)
        ttl_ms = max(1, int(self.ttl * 1000))
        try:
            tier.call(lambda r: r.set(entry_key, value, px=ttl_ms))
        except TierDown:
            pass

    def _shared_get(self, user: bytes, password: bytes) -> tuple[
            int | None, tuple[bytes | None, tuple[bytes, ...] | None, bytes | None, float] | None]:
        """``(epoch, (name, groups, identity, seconds left) or None)``; the epoch is ``None`` when Redis was not
        asked. The epoch is the one in force: never lower than the highest this process has seen, so an entry of a
        retired epoch is a miss even if someone set the counter in Redis back."""
        tier = self._tier
        assert tier is not None
        import json

        from ._redis import TierDown

        keys = [self._epoch_key(), self._entry_key(user)]
        try:
            raw_epoch, raw = tier.call(lambda r: r.mget(keys))
            epoch = int(raw_epoch or 0)
        except TierDown:
            return None, None
        except ValueError:
            return None, None  # an epoch that is not a number: not ours, do not use the tier
        epoch = self._saw_epoch(epoch)
        if raw is None:
            return epoch, None
        try:
            mac, _, body = bytes(raw).partition(b":")
            if not _ct_equal(mac, self._mac(user, body).encode()):
                return epoch, None  # not written with our key: ignore it
            data = json.loads(body)
            if int(data["e"]) != epoch:
                return epoch, None
            if not _ct_equal(bytes.fromhex(data["d"]), self._shared_digest(user, password)):
                return epoch, None
            left = float(data["x"]) - time.time()
            if left <= 0:
                return epoch, None
            name = None if data["n"] is None else bytes.fromhex(data["n"])
            groups = None if data["g"] is None else tuple(bytes.fromhex(g) for g in data["g"])
            identity = None if data.get("i") is None else bytes.fromhex(data["i"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return epoch, None
        return epoch, (name, groups, identity, left)

    def __repr__(self) -> str:
        shared = f" shared={self._tier!r}" if self._tier is not None else ""
        return f"<Cached {self.label!r} ttl={self.ttl:g}s size={len(self._entries)}/{self.max_size}{shared}>"


def cached(backend: Backend, **options: Any) -> Cached:
    """Wrap `backend` in a verification cache: `Cached(backend, **options)`; see `Cached` for every option.

    Returns:
        The caching backend, itself a `wsgiauth.adapter.Backend` (it has `check_password` etc.).

    Raises:
        ConfigError: bad options.
    """
    return Cached(backend, **options)
