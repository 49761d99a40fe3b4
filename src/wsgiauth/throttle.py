"""Brute-force throttling in front of any backend: too many failures lock a user name and/or a client address out.

`throttled` wraps a backend. Failed attempts (a wrong password, or a user name the backend does not know) are
counted per user name and per client address (``REMOTE_ADDR``, which the adapter passes as ``client``). When one of
them reaches ``max_failures`` failures within ``window`` seconds it is refused for ``lockout`` seconds; each further
lockout of the same subject lasts ``growth`` times longer, up to ``max_lockout`` (a subject is forgiven
``max(window, max_lockout)`` seconds after its last lockout ends).

While refused, every attempt is denied (the adapter answers ``False``, i.e. 401), **even with the right password**,
and costs the same time as a normal check: the refused path does the work of a real check without deciding
anything (`wsgiauth.adapter.Backend.dummy_authenticate`: the store look-up and a dummy verification, or for
LDAP the search and a bind that cannot succeed), so response times do not reveal a lockout. Each lockout is
logged with the user name and the address (never the password), and the denial's reason (logged by the adapter to
``wsgi.errors``) says so.

A success resets nothing. With Basic authentication the browser of a legitimate user sends the right password on
every request; if a success reset the counters, an attacker could interleave guesses with a login of their own (or
ride on the victim's activity) and never be locked out. Counters simply expire with their window; a success from one
address never touches another address's counter.

Counters are exact under concurrency (one lock per process; ``INCR`` in a Lua script on Redis). Attempts already in
flight when a lockout starts finish normally, so concurrent attackers get at most one extra guess per concurrent
request. With ``redis=``, counters and lockouts live in Redis and are shared by every Apache child on every server; if
Redis is down, the per-process counters take over (logged once) until it is back.

Order of composition: ``throttled(cached(backend))``. The throttle then sees every attempt, and a locked-out user is
refused even when the cache knows the password.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

from . import _registry
from ._options import (
    THROTTLE_GROWTH,
    THROTTLE_LOCKOUT,
    THROTTLE_MAX_FAILURES,
    THROTTLE_MAX_LOCKOUT,
    THROTTLE_MAX_TRACKED,
    THROTTLE_WINDOW,
    OptionError,
)
from ._redis import RedisTier, TierDown, get_tier
from .adapter import Backend, Decision, Outcome, Wrapper, _printable, as_bytes
from .exceptions import ConfigError

__all__ = ["Throttled", "throttled"]

logger = logging.getLogger("wsgiauth.throttle")

Per = Literal["user", "address", "both"]
T = TypeVar("T")
_Subject = tuple[str, bytes]  # ("user" | "address", raw value)

# KEYS: (failures, strikes, lock) for each subject. ARGV: max_failures, window_ms, lockout_ms, growth,
# max_lockout_ms, memory_ms. Returns, per subject: failures counted in the window, and the lockout started (ms, or 0).
_FAIL_SCRIPT = """
local out = {}
local maxf = tonumber(ARGV[1])
for i = 1, #KEYS, 3 do
  local n = redis.call('INCR', KEYS[i])
  if n == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
  local dur = 0
  if n >= maxf then
    local s = redis.call('INCR', KEYS[i + 1])
    dur = math.floor(math.min(tonumber(ARGV[3]) * tonumber(ARGV[4]) ^ (s - 1), tonumber(ARGV[5])))
    if dur < 1 then dur = 1 end
    redis.call('SET', KEYS[i + 2], s, 'PX', dur)
    redis.call('PEXPIRE', KEYS[i + 1], dur + tonumber(ARGV[6]))
    redis.call('DEL', KEYS[i])
  end
  out[#out + 1] = n
  out[#out + 1] = dur
end
return out
"""


class _Slot:
    __slots__ = ("failures", "locked_until", "strikes", "strikes_until", "window_end")

    def __init__(self) -> None:
        self.failures = 0
        self.window_end = 0.0
        self.strikes = 0
        self.strikes_until = 0.0
        self.locked_until = 0.0


class Throttled(Wrapper, _registry.PerProcess):
    """A backend that refuses user names and client addresses after repeated failures; see the module docs.

    Args:
        inner: the backend that really checks passwords (typically a `Cached`).
        max_failures: failures within ``window`` that trigger a lockout.
        window: seconds over which failures are counted (a fixed window opened by the first failure).
        lockout: seconds of the first lockout.
        growth: factor applied to each further lockout of the same subject (1 for constant lockouts).
        max_lockout: the longest lockout, in seconds.
        per: count per ``"user"``, per ``"address"`` or ``"both"`` (either one locked refuses the attempt).
        redis: a Redis URL or `RedisTier` to share counters between processes and servers.
        namespace: identifies this throttle's counters in Redis (default: the backend's label).
        max_tracked: subjects tracked per process (least recently failed forgotten first).
        clock: a monotonic clock for the per-process tier (injectable for tests); Redis uses its own expiry.
        backend_kwargs: ``on_error``, ``log_level``... (default: the inner backend's); the label is the inner's.

    Raises:
        ConfigError: a value out of range.
    """

    def __init__(
        self,
        inner: Backend,
        *,
        max_failures: int = THROTTLE_MAX_FAILURES.default,
        window: float = THROTTLE_WINDOW.default,
        lockout: float = THROTTLE_LOCKOUT.default,
        growth: float = THROTTLE_GROWTH.default,
        max_lockout: float = THROTTLE_MAX_LOCKOUT.default,
        per: Per = "both",
        redis: str | RedisTier | None = None,
        namespace: str | None = None,
        max_tracked: int = THROTTLE_MAX_TRACKED.default,
        clock: Callable[[], float] = time.monotonic,
        **backend_kwargs: Any,
    ) -> None:
        max_failures = THROTTLE_MAX_FAILURES.check("max_failures", max_failures)
        window = THROTTLE_WINDOW.check("window", window)
        lockout = THROTTLE_LOCKOUT.check("lockout", lockout)
        growth = THROTTLE_GROWTH.check("growth", growth)
        max_lockout = THROTTLE_MAX_LOCKOUT.check("max_lockout", max_lockout)
        max_tracked = THROTTLE_MAX_TRACKED.check("max_tracked", max_tracked)
        if max_lockout < lockout:
            raise OptionError("max_lockout", f"must be at least lockout ({lockout:g}), not {max_lockout:g}")
        if per not in ("user", "address", "both"):
            raise ConfigError(f"throttle per must be 'user', 'address' or 'both', not {per!r}")
        super().__init__(inner, **backend_kwargs)
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self.growth = growth
        self.max_lockout = max_lockout
        self.memory = max(window, max_lockout)
        self.per: Per = per
        self.max_tracked = max_tracked
        self.namespace = namespace or inner.label
        self._clock = clock
        self._tier: RedisTier | None = None if redis is None else (get_tier(redis) if isinstance(redis, str)
                                                                    else redis)
        self.refused = 0
        self.lockouts = 0
        self._start_per_process()

    def _fresh_state(self) -> None:
        """No per-process counters (a forked child starts without its parent's; shared ones stay in Redis)."""
        self._slots: OrderedDict[_Subject, _Slot] = OrderedDict()

    def _subjects(self, user: bytes, client: str | None) -> list[_Subject]:
        out: list[_Subject] = []
        if self.per in ("user", "both"):
            out.append(("user", user))
        if self.per in ("address", "both") and client:
            out.append(("address", client.encode("utf-8", "surrogateescape")))
        return out

    # ------------------------------------------------------------------ the backend interface

    def authenticate(self, user: bytes, password: bytes, client: str | None = None) -> Decision:
        """Refuse a locked-out user or address (after the same hashing work); otherwise ask the inner backend and
        count a failure.

        Returns:
            ``DENIED`` (reason names the lockout) while refused; else the inner decision, whose reason mentions a
            lockout it started.
        """
        if self._pid != os.getpid():
            self._reset_for_process()
        subjects = self._subjects(user, client)
        remaining = self._locked(subjects)
        if remaining is not None:
            kind, seconds = remaining
            # Cost what a real check costs, so a lockout cannot be told apart by timing.
            self.inner.dummy_authenticate(user, password)
            self.refused += 1
            return Decision(Outcome.DENIED, backend=self.inner.label,
                            reason=f"{kind} locked out for another {max(seconds, 0.001):.3g} s "
                                   f"(client {client or 'unknown'})")
        decision = self.inner.authenticate(user, password, client)
        if decision.outcome is Outcome.GRANTED or not subjects:
            return decision
        started = self._fail(subjects)
        if started:
            self.lockouts += 1
            what = ", ".join(f"{kind} for {secs:g} s" for kind, secs in started)
            logger.warning("user '%s' from %s: %d failures: locked out (%s)", _printable(user),
                           client or "unknown address", self.max_failures, what)
            decision = decision.replace(
                reason=f"{decision.reason or 'denied'}; too many failures: locked out ({what}) "
                       f"(client {client or 'unknown'})")
        return decision

    # ------------------------------------------------------------------ lockout state

    def _tiered(self, shared: Callable[[Sequence[_Subject]], T], local: Callable[[Sequence[_Subject]], T],
                subjects: Sequence[_Subject]) -> T:
        """`shared(subjects)` when there is a shared tier and Redis answers, else `local(subjects)`."""
        if self._tier is not None:
            try:
                return shared(subjects)
            except TierDown:
                pass
        return local(subjects)

    def _locked(self, subjects: Sequence[_Subject]) -> tuple[str, float] | None:
        """``(kind, seconds left)`` of the longest active lockout among ``subjects``, or ``None``."""
        if not subjects:
            return None
        return self._tiered(self._shared_locked, self._local_locked, subjects)

    def _local_locked(self, subjects: Sequence[_Subject]) -> tuple[str, float] | None:
        now = self._clock()
        best: tuple[str, float] | None = None
        with self._lock:
            for subject in subjects:
                slot = self._slots.get(subject)
                if slot is not None and slot.locked_until > now:
                    left = slot.locked_until - now
                    if best is None or left > best[1]:
                        best = (subject[0], left)
        return best

    def _fail(self, subjects: Sequence[_Subject]) -> list[tuple[str, float]]:
        """Count one failure for each subject; returns the lockouts this started as ``(kind, seconds)``."""
        return self._tiered(self._shared_fail, self._local_fail, subjects)

    def _local_fail(self, subjects: Sequence[_Subject]) -> list[tuple[str, float]]:
        now = self._clock()
        started: list[tuple[str, float]] = []
        with self._lock:
            for subject in subjects:
                slot = self._slots.get(subject)
                if slot is None:
                    slot = self._slots[subject] = _Slot()
                else:
                    self._slots.move_to_end(subject)
                if now >= slot.window_end:
                    slot.failures = 0
                    slot.window_end = now + self.window
                slot.failures += 1
                if slot.failures >= self.max_failures:
                    if now >= slot.strikes_until:
                        slot.strikes = 0
                    slot.strikes += 1
                    seconds = min(self.lockout * self.growth ** (slot.strikes - 1), self.max_lockout)
                    slot.locked_until = now + seconds
                    slot.strikes_until = slot.locked_until + self.memory
                    slot.failures = 0
                    slot.window_end = now
                    started.append((subject[0], seconds))
            while len(self._slots) > self.max_tracked:
                self._slots.popitem(last=False)
        return started

    # ------------------------------------------------------------------ shared tier

    def _keys(self, subject: _Subject) -> tuple[str, str, str]:
        assert self._tier is not None
        ident = hashlib.sha256(subject[1]).hexdigest()[:40]
        base = ("throttle", self.namespace, subject[0], ident)
        return (self._tier.key(*base, "failures"), self._tier.key(*base, "strikes"),
                self._tier.key(*base, "lock"))

    def _shared_locked(self, subjects: Sequence[_Subject]) -> tuple[str, float] | None:
        tier = self._tier
        assert tier is not None
        lock_keys = [self._keys(s)[2] for s in subjects]

        def op(r: Any) -> list[int]:
            pipe = r.pipeline(transaction=False)
            for k in lock_keys:
                pipe.pttl(k)
            return list(pipe.execute())

        best: tuple[str, float] | None = None
        for subject, ms in zip(subjects, tier.call(op), strict=True):
            if int(ms) > 0 and (best is None or ms / 1000.0 > best[1]):
                best = (subject[0], ms / 1000.0)
        return best

    def _shared_fail(self, subjects: Sequence[_Subject]) -> list[tuple[str, float]]:
        tier = self._tier
        assert tier is not None
        keys = [k for s in subjects for k in self._keys(s)]
        args = [self.max_failures, int(self.window * 1000), int(self.lockout * 1000), repr(self.growth),
                int(self.max_lockout * 1000), int(self.memory * 1000)]
        result = tier.call(lambda r: tier.script(_FAIL_SCRIPT)(keys=keys, args=args, client=r))
        started: list[tuple[str, float]] = []
        for i, subject in enumerate(subjects):
            ms = int(result[2 * i + 1])
            if ms > 0:
                started.append((subject[0], ms / 1000.0))
        return started

    # ------------------------------------------------------------------ inspection and management

    def status(self, user: bytes | str | None = None, client: str | None = None) -> dict[str, Any]:
        """The state of a user name and/or an address: failures in the current window and seconds locked.

        Args:
            user: a user name (bytes, or ``str`` as mod_wsgi passes it).
            client: a client address.

        Returns:
            ``{"user": {"failures": n, "locked": seconds}, "address": {...}}`` for the subjects given (from Redis
            when the shared tier is up, else from this process).
        """
        subjects: list[_Subject] = []
        if user is not None:
            subjects.append(("user", as_bytes(user)))
        if client is not None:
            subjects.append(("address", client.encode("utf-8", "surrogateescape")))
        out: dict[str, Any] = {}
        if self._tier is not None:
            tier = self._tier

            def op(r: Any) -> list[Any]:
                pipe = r.pipeline(transaction=False)
                for s in subjects:
                    f_key, _, l_key = self._keys(s)
                    pipe.get(f_key)
                    pipe.pttl(l_key)
                return list(pipe.execute())

            try:
                values = tier.call(op)
            except TierDown:
                pass
            else:
                for i, s in enumerate(subjects):
                    ms = int(values[2 * i + 1])
                    out[s[0]] = {"failures": int(values[2 * i] or 0), "locked": max(ms, 0) / 1000.0}
                return out
        now = self._clock()
        with self._lock:
            for s in subjects:
                slot = self._slots.get(s)
                if slot is None:
                    out[s[0]] = {"failures": 0, "locked": 0.0}
                else:
                    failures = slot.failures if now < slot.window_end else 0
                    out[s[0]] = {"failures": failures, "locked": max(slot.locked_until - now, 0.0)}
        return out

    def release(self, user: bytes | str | None = None, client: str | None = None) -> None:
        """Lift the lockout and clear the counters of a user name and/or an address (an administrator's action).

        Args:
            user: a user name.
            client: a client address.
        """
        subjects: list[_Subject] = []
        if user is not None:
            subjects.append(("user", as_bytes(user)))
        if client is not None:
            subjects.append(("address", client.encode("utf-8", "surrogateescape")))
        with self._lock:
            for s in subjects:
                self._slots.pop(s, None)
        if self._tier is not None and subjects:
            keys = [k for s in subjects for k in self._keys(s)]
            try:
                self._tier.call(lambda r: r.delete(*keys))
            except TierDown:
                pass

    # ------------------------------------------------------------------ forwarded

    # groups, lookup, generation and realm_hash are forwarded (Wrapper); realm_hash unthrottled: with Digest, Apache
    # checks the response itself and tells no hook of a failure.

    def __repr__(self) -> str:
        return (f"<Throttled {self.label!r} {self.max_failures} failures/{self.window:g}s -> "
                f"{self.lockout:g}s per {self.per}>")


def throttled(backend: Backend, **options: Any) -> Throttled:
    """Wrap `backend` in brute-force throttling: `Throttled(backend, **options)`; see `Throttled` for every option.

    Returns:
        The throttling backend, itself a `wsgiauth.adapter.Backend`.

    Raises:
        ConfigError: a value out of range.
    """
    return Throttled(backend, **options)
