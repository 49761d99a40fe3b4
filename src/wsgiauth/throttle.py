"""Brute-force throttling in front of any backend: too many failures lock an account and/or a client out.

`throttled` wraps a backend. Failed attempts (a wrong password, or a user name the backend does not know) are
counted per user and per client (``REMOTE_ADDR``, which the adapter passes as ``client``). When one of them reaches
``max_failures`` failures within ``window`` seconds it is refused for ``lockout`` seconds; each further lockout of the
same subject lasts ``growth`` times longer, up to ``max_lockout`` (a subject is forgiven ``max(window, max_lockout)``
seconds after its last lockout ends).

Who is counted:

* a user under the account the store resolved (`wsgiauth.adapter.Decision.identity`: an LDAP entry's DN, the name a
  row holds), so that every spelling the store matches to that account (``Alice``, ``ALICE``, ``alice@x`` through
  `wsgiauth.compose.canonicalize`...) shares one counter; a name the store resolved to no account is counted under
  `wsgiauth.adapter.Backend.user_key` (the name as the store matches names). An attempt is refused when its
  ``user_key``, or the account that key was last seen to resolve to, is locked (checked before the store is asked),
  and also when the account the store resolves it to now is locked (checked after the store answered: even a
  right password is then refused, after exactly the work of a normal check);
* a client per IPv4 address and per IPv6 network of ``ipv6_prefix`` bits (a /64 by default, what one subscriber or
  host usually holds, as fail2ban-style tools count); an IPv4-mapped IPv6 address (``::ffff:192.0.2.1``) counts as
  its IPv4 address. An address that does not parse is counted as given.

While refused, every attempt is denied (the adapter answers ``False``, i.e. 401), **even with the right password**,
and costs the same time as a normal check: the refused path does the work of a real check without deciding
anything (`wsgiauth.adapter.Backend.dummy_authenticate`: the store look-up and a dummy verification, or for
LDAP the search and a bind that cannot succeed), so response times do not reveal a lockout. Each lockout is
logged with the user name and the address (never the password), and the denial's reason (logged by the adapter to
``wsgi.errors``) says so. Callers that verify a credential themselves (the middleware's Digest) ask `refusal` first
and report a wrong answer with `record_failure`.

A success resets nothing. With Basic authentication the browser of a legitimate user sends the right password on
every request; if a success reset the counters, an attacker could interleave guesses with a login of their own (or
ride on the victim's activity) and never be locked out. Counters simply expire with their window; a success from one
address never touches another address's counter.

Memory: the per-process tier tracks at most ``max_tracked`` subjects (300 to 350 bytes each, so some 35 MB for the
default 100,000; the names an account last resolved to take as many entries again at most). When it is full, the
subject forgotten first is the least recently failed one that is not locked out. A live lockout of an account or an
address is never forgotten before it ends. Only a lockout of a name the store resolved to no account (there is no
password to guess for it: junk names) may go, soonest-ending first, when everything else tracked is locked out.
When the budget is all live lockouts of accounts and addresses, a new subject is not tracked (its failures are not
counted in this process) until one of them ends; that is logged once.

Counters are exact under concurrency (one lock per process; ``INCR`` in a Lua script on Redis). Attempts already in
flight when a lockout starts finish normally, so concurrent attackers get at most one extra guess per concurrent
request. With ``redis=``, counters and lockouts live in Redis and are shared by every Apache child on every server.
Every lockout and counter this process reads from or writes to Redis is mirrored in its own tier with its expiry,
so when Redis is down (refused, timed out, or redis-py out of pooled connections) those lockouts are still honoured
and counting goes on from the shared count, per process (logged once). When Redis answers again it is the
authority again: lockouts started during the outage are written to it first (never shortening a longer one).

Order of composition: ``throttled(cached(backend))``. The throttle then sees every attempt, and a locked-out user is
refused even when the cache knows the password.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

from . import _registry
from ._options import (
    THROTTLE_GROWTH,
    THROTTLE_IPV6_PREFIX,
    THROTTLE_LOCKOUT,
    THROTTLE_MAX_FAILURES,
    THROTTLE_MAX_LOCKOUT,
    THROTTLE_MAX_TRACKED,
    THROTTLE_WINDOW,
    OptionError,
)
from ._redis import RedisTier, TierDown, get_tier
from .adapter import Backend, Decision, Outcome, Record, Wrapper, _printable
from .exceptions import ConfigError

__all__ = ["Throttled", "throttled"]

logger = logging.getLogger("wsgiauth.throttle")

Per = Literal["user", "address", "both"]
T = TypeVar("T")
_Subject = tuple[str, bytes]  # ("user" | "address", the account, the user key or the client's network)
_Failure = tuple[_Subject, bool]  # a subject to count, and whether it is an account or an address (not a junk name)

# The value of a lock key in Redis: an account's or address's lockout, or that of a name resolved to no account.
_ACCOUNT, _UNRESOLVED = b"a", b"u"

# KEYS: (failures, strikes, lock) for each subject. ARGV: max_failures, window_ms, lockout_ms, growth,
# max_lockout_ms, memory_ms, then one lock value per subject. Returns, per subject: failures counted in the window,
# the lockout started (ms, or 0), the window's milliseconds left, and the strikes (when a lockout started).
_FAIL_SCRIPT = """
local out = {}
local maxf = tonumber(ARGV[1])
local j = 6
for i = 1, #KEYS, 3 do
  j = j + 1
  local n = redis.call('INCR', KEYS[i])
  if n == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
  local left = redis.call('PTTL', KEYS[i])
  local dur = 0
  local s = 0
  if n >= maxf then
    s = redis.call('INCR', KEYS[i + 1])
    dur = math.floor(math.min(tonumber(ARGV[3]) * tonumber(ARGV[4]) ^ (s - 1), tonumber(ARGV[5])))
    if dur < 1 then dur = 1 end
    redis.call('SET', KEYS[i + 2], ARGV[j], 'PX', dur)
    redis.call('PEXPIRE', KEYS[i + 1], dur + tonumber(ARGV[6]))
    redis.call('DEL', KEYS[i])
  end
  out[#out + 1] = n
  out[#out + 1] = dur
  out[#out + 1] = left
  out[#out + 1] = s
end
return out
"""

# Lockouts Redis does not have (started while it was down, or lost when it restarted empty), written to it when it
# answers again. KEYS: the namespace's marker, then (strikes, lock) per subject. ARGV: memory_ms, then (ms left,
# strikes, lock value) per subject. A longer lockout already in Redis is kept.
_PUSH_SCRIPT = """
redis.call('SET', KEYS[1], '1')
local memory = tonumber(ARGV[1])
local j = 2
for i = 2, #KEYS, 2 do
  local ms = tonumber(ARGV[j])
  local s = tonumber(ARGV[j + 1])
  if redis.call('PTTL', KEYS[i + 1]) < ms then
    redis.call('SET', KEYS[i + 1], ARGV[j + 2], 'PX', ms)
  end
  if tonumber(redis.call('GET', KEYS[i]) or '0') < s then
    redis.call('SET', KEYS[i], s, 'PX', ms + memory)
  end
  j = j + 3
end
return 1
"""


def _admin_bytes(value: str | bytes) -> bytes:
    """The bytes an administrator's user name stands for: a ``str`` as UTF-8 (what a browser sends for a Unicode
    name, and what a request for ``zoë`` carries), ``bytes`` unchanged.

    Text that mod_wsgi decoded as latin-1 from a request (a hook's ``user`` argument) is not Unicode: pass
    ``user.encode("latin-1")``, the request's own bytes.
    """
    if isinstance(value, bytes):
        return value
    return value.encode("utf-8", "surrogateescape")


class _Slot:
    __slots__ = ("account", "failures", "locked_until", "strikes", "strikes_until", "window_end")

    def __init__(self) -> None:
        self.failures = 0
        self.window_end = 0.0
        self.strikes = 0
        self.strikes_until = 0.0
        self.locked_until = 0.0
        self.account = False  # an account or an address (never evicted while locked), not a junk name


class _Table:
    """The per-process subjects within a budget of ``budget`` entries (callers hold the throttle's lock).

    ``counting`` holds the subjects not locked out, least recently failed first; ``locked`` those with a live lockout.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.counting: OrderedDict[_Subject, _Slot] = OrderedDict()
        self.locked: dict[_Subject, _Slot] = {}
        self._ends: list[tuple[float, _Subject]] = []  # heap: when each lockout ends
        self._spare: list[tuple[float, _Subject]] = []  # heap: lockouts of names resolved to no account
        self.full = False

    def __len__(self) -> int:
        return len(self.counting) + len(self.locked)

    def get(self, subject: _Subject, now: float) -> _Slot | None:
        slot = self.locked.get(subject)
        if slot is None:
            return self.counting.get(subject)
        if slot.locked_until <= now:
            self.unlock(subject, slot, now)
        return slot

    def track(self, subject: _Subject, now: float) -> _Slot | None:
        """The subject's slot, made the most recently failed; a new one if there is room; else ``None``."""
        slot = self.get(subject, now)
        if slot is not None:
            if subject in self.counting:
                self.counting.move_to_end(subject)
            return slot
        if len(self) >= self.budget and not self._make_room(now):
            self.full = True
            return None
        self.full = False
        slot = self.counting[subject] = _Slot()
        return slot

    def lock(self, subject: _Subject, slot: _Slot, until: float) -> None:
        if self.locked.get(subject) is slot and abs(slot.locked_until - until) < 0.5:
            return  # already known (a mirror of the same Redis lockout): keep the heaps small
        slot.locked_until = until
        self.counting.pop(subject, None)
        self.locked[subject] = slot
        heapq.heappush(self._ends, (until, subject))
        if not slot.account:
            heapq.heappush(self._spare, (until, subject))
        if len(self._ends) > 2 * len(self.locked) + 64:
            self._ends = [(s.locked_until, k) for k, s in self.locked.items()]
            heapq.heapify(self._ends)
        if len(self._spare) > 2 * len(self.locked) + 64:
            self._spare = [(s.locked_until, k) for k, s in self.locked.items() if not s.account]
            heapq.heapify(self._spare)

    def unlock(self, subject: _Subject, slot: _Slot, now: float) -> None:
        """The lockout ended (or was lifted): the subject is counted again, first in line to be forgotten."""
        slot.locked_until = min(slot.locked_until, now)
        if self.locked.pop(subject, None) is not None:
            self.counting[subject] = slot
            self.counting.move_to_end(subject, last=False)

    def pop(self, subject: _Subject) -> None:
        self.locked.pop(subject, None)
        self.counting.pop(subject, None)

    def _make_room(self, now: float) -> bool:
        ends = self._ends
        while ends and ends[0][0] <= now:
            _, subject = heapq.heappop(ends)
            slot = self.locked.get(subject)
            if slot is not None and slot.locked_until <= now:
                self.unlock(subject, slot, now)
        if self.counting:
            self.counting.popitem(last=False)
            return True
        spare = self._spare
        while spare:
            _, subject = heapq.heappop(spare)
            slot = self.locked.get(subject)
            if slot is not None and not slot.account:
                del self.locked[subject]
                return True
        return False


class Throttled(Wrapper, _registry.PerProcess):
    """A backend that refuses accounts and clients after repeated failures; see the module docs.

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
        max_tracked: the per-process budget of subjects (see the module docs, Memory).
        ipv6_prefix: IPv6 clients are counted per network of this many leading bits (128: per address).
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
        ipv6_prefix: int = THROTTLE_IPV6_PREFIX.default,
        clock: Callable[[], float] = time.monotonic,
        **backend_kwargs: Any,
    ) -> None:
        max_failures = THROTTLE_MAX_FAILURES.check("max_failures", max_failures)
        window = THROTTLE_WINDOW.check("window", window)
        lockout = THROTTLE_LOCKOUT.check("lockout", lockout)
        growth = THROTTLE_GROWTH.check("growth", growth)
        max_lockout = THROTTLE_MAX_LOCKOUT.check("max_lockout", max_lockout)
        max_tracked = THROTTLE_MAX_TRACKED.check("max_tracked", max_tracked)
        ipv6_prefix = THROTTLE_IPV6_PREFIX.check("ipv6_prefix", ipv6_prefix)
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
        self._per_user = per in ("user", "both")
        self._per_address = per in ("address", "both")
        self.max_tracked = max_tracked
        self.ipv6_prefix = ipv6_prefix
        self.namespace = namespace or inner.label
        self._clock = clock
        self._tier: RedisTier | None = None if redis is None else (get_tier(redis) if isinstance(redis, str)
                                                                    else redis)
        self.refused = 0
        self.lockouts = 0
        self.untracked = 0  # failures not counted in this process: the budget was all live lockouts
        self._start_per_process()

    def _fresh_state(self) -> None:
        """No per-process counters (a forked child starts without its parent's; shared ones stay in Redis)."""
        self._table = _Table(self.max_tracked)
        self._aliases: OrderedDict[bytes, bytes] = OrderedDict()  # user key -> the account it resolved to
        self._unshared: set[_Subject] = set()  # lockouts started while Redis was down, not yet written to it
        self._full_logged = False

    # ------------------------------------------------------------------ subjects

    def address_key(self, client: str) -> bytes:
        """The bytes a client address is counted under: an IPv4 address as is, an IPv6 one as its network
        (``2001:db8:1:2::/64``), an IPv4-mapped IPv6 address as the IPv4 address."""
        if ":" not in client:
            return client.encode("utf-8", "surrogateescape")
        import ipaddress

        try:
            addr = ipaddress.IPv6Address(client.split("%", 1)[0])  # a zone (fe80::1%eth0) is not part of it
        except ValueError:
            return client.encode("utf-8", "surrogateescape")
        mapped = addr.ipv4_mapped
        if mapped is not None:
            return str(mapped).encode()
        bits = 128 - self.ipv6_prefix
        net = ipaddress.IPv6Address(int(addr) >> bits << bits)
        return f"{net}/{self.ipv6_prefix}".encode()

    def _checked(self, key: bytes, alias: bytes | None, client: str | None) -> list[_Subject]:
        """The subjects whose lockout refuses an attempt before the store is asked."""
        out: list[_Subject] = []
        if self._per_user:
            out.append(("user", key))
            if alias is not None and alias != key:
                out.append(("user", alias))
        if self._per_address and client:
            out.append(("address", self.address_key(client)))
        return out

    def _learn(self, key: bytes, identity: bytes) -> None:
        with self._lock:
            aliases = self._aliases
            if aliases.get(key) != identity:
                aliases[key] = identity
                while len(aliases) > self.max_tracked:
                    aliases.popitem(last=False)

    # ------------------------------------------------------------------ the backend interface

    def authenticate(self, user: bytes, password: bytes, client: str | None = None) -> Decision:
        """Refuse a locked-out account or address (after the same hashing work); otherwise ask the inner backend
        and count a failure.

        Returns:
            ``DENIED`` (reason names the lockout) while refused; else the inner decision, whose reason mentions a
            lockout it started.
        """
        if self._pid != os.getpid():
            self._reset_for_process()
        key = self.inner.user_key(user) if self._per_user else user
        alias = self._aliases.get(key) if self._per_user else None
        checked = self._checked(key, alias, client)
        held = self._locked(checked)
        if held is not None:
            # Cost what a real check costs, so a lockout cannot be told apart by timing.
            self.inner.dummy_authenticate(user, password)
            return self._refusal_decision(held, client)
        decision = self.inner.authenticate(user, password, client)
        failures: list[_Failure] = []
        if self._per_user:
            identity = decision.identity
            if identity is None:
                failures.append((("user", key), False))
            else:
                failures.append((("user", identity), True))
                if identity != key and identity != alias:
                    self._learn(key, identity)
                    # Another spelling of a locked account: refused now that the store named it. The work done was
                    # a normal check's, so this refusal costs what any answer costs.
                    held = self._locked([("user", identity)])
                    if held is not None:
                        return self._refusal_decision(held, client)
        if decision.outcome is Outcome.GRANTED:
            return decision
        if self._per_address and client:
            failures.append((("address", self.address_key(client)), True))
        started = self._fail(failures) if failures else []
        if started:
            decision = decision.replace(
                reason=f"{decision.reason or 'denied'}; {self._started(user, client, started)}")
        return decision

    def refusal(self, user: bytes, client: str | None = None) -> str | None:
        """The reason ``user`` (from ``client``) is locked out now (its user key, the account it last resolved to,
        or the client's address), or the inner backend's refusal, or ``None``."""
        if self._pid != os.getpid():
            self._reset_for_process()
        key = self.inner.user_key(user) if self._per_user else user
        held = self._locked(self._checked(key, self._aliases.get(key) if self._per_user else None, client))
        if held is not None:
            return self._refusal_decision(held, client).reason
        return self.inner.refusal(user, client)

    def record_failure(self, user: bytes, client: str | None = None) -> None:
        """Count one failed attempt of ``user`` from ``client`` that did not go through `authenticate` (a wrong
        Digest response): under the account the user key last resolved to, else the key, and the address."""
        if self._pid != os.getpid():
            self._reset_for_process()
        failures: list[_Failure] = []
        if self._per_user:
            key = self.inner.user_key(user)
            # A caller reports a failure for a name whose credential it could check: an account.
            failures.append((("user", self._aliases.get(key, key)), True))
        if self._per_address and client:
            failures.append((("address", self.address_key(client)), True))
        if failures:
            started = self._fail(failures)
            if started:
                self._started(user, client, started)
        self.inner.record_failure(user, client)

    def _refusal_decision(self, held: tuple[str, float], client: str | None) -> Decision:
        kind, seconds = held
        self.refused += 1
        return Decision(Outcome.DENIED, backend=self.inner.label,
                        reason=f"{kind} locked out for another {max(seconds, 0.001):.3g} s "
                               f"(client {client or 'unknown'})")

    def _started(self, user: bytes, client: str | None, started: list[tuple[str, float]]) -> str:
        """Log the lockouts one failure started; returns the words for the decision's reason."""
        self.lockouts += 1
        what = ", ".join(f"{kind} for {secs:g} s" for kind, secs in started)
        logger.warning("user '%s' from %s: %d failures: locked out (%s)", _printable(user),
                       client or "unknown address", self.max_failures, what)
        return f"too many failures: locked out ({what}) (client {client or 'unknown'})"

    # ------------------------------------------------------------------ lockout state

    def _tiered(self, shared: Callable[[Sequence[Any]], T], local: Callable[[Sequence[Any]], T],
                subjects: Sequence[Any]) -> T:
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
                slot = self._table.get(subject, now)
                if slot is not None and slot.locked_until > now:
                    left = slot.locked_until - now
                    if best is None or left > best[1]:
                        best = (subject[0], left)
        return best

    def _fail(self, failures: Sequence[_Failure]) -> list[tuple[str, float]]:
        """Count one failure for each subject; returns the lockouts this started as ``(kind, seconds)``."""
        return self._tiered(self._shared_fail, self._local_fail, failures)

    def _local_fail(self, failures: Sequence[_Failure]) -> list[tuple[str, float]]:
        now = self._clock()
        started: list[tuple[str, float]] = []
        table = self._table
        with self._lock:
            for subject, account in failures:
                slot = table.track(subject, now)
                if slot is None:
                    self._untracked()
                    continue
                if not table.full:
                    self._full_logged = False
                if account:
                    slot.account = True
                if now >= slot.window_end:
                    slot.failures = 0
                    slot.window_end = now + self.window
                slot.failures += 1
                if slot.failures >= self.max_failures:
                    if now >= slot.strikes_until:
                        slot.strikes = 0
                    slot.strikes += 1
                    seconds = min(self.lockout * self.growth ** (slot.strikes - 1), self.max_lockout)
                    table.lock(subject, slot, now + seconds)
                    slot.strikes_until = slot.locked_until + self.memory
                    slot.failures = 0
                    slot.window_end = now
                    if self._tier is not None:
                        self._unshared.add(subject)
                    started.append((subject[0], seconds))
        return started

    def _untracked(self) -> None:
        """A failure not counted in this process: the budget is all live lockouts (logged once until there is room
        again). Called with the lock held."""
        self.untracked += 1
        if not self._full_logged:
            self._full_logged = True
            logger.warning("throttle %s: all %d tracked subjects are live lockouts of accounts or addresses; new "
                           "ones are not counted in this process until some end (raise max_tracked, or share "
                           "counters through Redis)", self.label, self.max_tracked)

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
        if self._unshared:
            self._push_unshared()
        marker = self._marker()
        lock_keys = [self._keys(s)[2] for s in subjects]

        def op(r: Any) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            pipe.exists(marker)
            for k in lock_keys:
                pipe.pttl(k)
                pipe.get(k)
            return list(pipe.execute())

        present, *values = tier.call(op)
        now = self._clock()
        table = self._table
        if not present:
            # Redis lost what it held (restarted empty, flushed): the lockouts this process knows go back first,
            # and count for this answer.
            with self._lock:
                self._unshared.update(s for s, slot in table.locked.items() if slot.locked_until > now)
            self._push_unshared(mark=True)
        best = self._local_locked(subjects) if not present else None
        with self._lock:
            for i, subject in enumerate(subjects):
                ms = int(values[2 * i])
                slot = table.get(subject, now)
                if ms > 0:
                    left = ms / 1000.0
                    if best is None or left > best[1]:
                        best = (subject[0], left)
                    # Mirrored, to be honoured if Redis goes away.
                    if slot is None:
                        slot = table.track(subject, now)
                    if slot is not None:
                        if values[2 * i + 1] != _UNRESOLVED:
                            slot.account = True
                        table.lock(subject, slot, now + left)
                elif present and slot is not None and slot.locked_until > now and subject not in self._unshared:
                    table.unlock(subject, slot, now)  # lifted in Redis (released by an administrator)
        return best

    def _marker(self) -> str:
        """A key present as long as Redis keeps this namespace's state (absent after a restart without data)."""
        assert self._tier is not None
        return self._tier.key("throttle", self.namespace, "present")

    def _shared_fail(self, failures: Sequence[_Failure]) -> list[tuple[str, float]]:
        tier = self._tier
        assert tier is not None
        keys = [k for s, _ in failures for k in self._keys(s)]
        args: list[Any] = [self.max_failures, int(self.window * 1000), int(self.lockout * 1000), repr(self.growth),
                           int(self.max_lockout * 1000), int(self.memory * 1000)]
        args += [_ACCOUNT if account else _UNRESOLVED for _, account in failures]
        result = tier.call(lambda r: tier.script(_FAIL_SCRIPT)(keys=keys, args=args, client=r))
        started: list[tuple[str, float]] = []
        now = self._clock()
        table = self._table
        with self._lock:
            for i, (subject, account) in enumerate(failures):
                n, ms, left, strikes = (int(v) for v in result[4 * i:4 * i + 4])
                if ms > 0:
                    started.append((subject[0], ms / 1000.0))
                # Mirrored: if Redis goes away, this process goes on from the shared count.
                slot = table.track(subject, now)
                if slot is None:
                    continue
                if account:
                    slot.account = True
                if ms > 0:
                    slot.strikes = strikes
                    table.lock(subject, slot, now + ms / 1000.0)
                    slot.strikes_until = slot.locked_until + self.memory
                    slot.failures = 0
                    slot.window_end = now
                    self._unshared.discard(subject)
                else:
                    slot.failures = n
                    slot.window_end = now + (left / 1000.0 if left > 0 else self.window)
        return started

    def _push_unshared(self, mark: bool = False) -> None:
        """Write the lockouts that Redis does not have (raises `TierDown` if it is still down); ``mark``: set the
        namespace's marker even when there is none."""
        tier = self._tier
        assert tier is not None
        now = self._clock()
        pending: list[tuple[_Subject, int, int, bytes]] = []
        with self._lock:
            for subject in list(self._unshared):
                slot = self._table.get(subject, now)
                if slot is None or slot.locked_until <= now:
                    self._unshared.discard(subject)
                    continue
                pending.append((subject, max(1, int((slot.locked_until - now) * 1000)), slot.strikes,
                                _ACCOUNT if slot.account else _UNRESOLVED))
        if not pending and not mark:
            return
        keys = [self._marker(), *(k for s, _, _, _ in pending for k in self._keys(s)[1:])]
        args: list[Any] = [int(self.memory * 1000)]
        for _, ms, strikes, value in pending:
            args += [ms, strikes, value]
        tier.call(lambda r: tier.script(_PUSH_SCRIPT)(keys=keys, args=args, client=r))
        with self._lock:
            for subject, _, _, _ in pending:
                self._unshared.discard(subject)

    # ------------------------------------------------------------------ inspection and management

    def _admin_subjects(self, user: bytes | str | None, client: str | None) -> list[_Subject]:
        """What an administrator's name and address stand for: the name as given (``str`` as UTF-8), its user key,
        the account it resolves to (learnt from requests, or from the store's record when it has one), and the
        client's counted address."""
        out: list[_Subject] = []
        if user is not None:
            raw = _admin_bytes(user)
            names = [raw, self.inner.user_key(raw)]
            identity = self._aliases.get(names[1])
            if identity is None:
                try:
                    record: Record | None = self.inner.lookup(names[1])
                except Exception:  # noqa: BLE001 - not every store looks records up; the store may be down
                    record = None
                if record is not None:
                    identity = record.name or names[1]
            if identity is not None:
                names.append(identity)
            out += [("user", n) for n in dict.fromkeys(names)]
        if client is not None:
            out.append(("address", self.address_key(client)))
        return out

    def status(self, user: bytes | str | None = None, client: str | None = None) -> dict[str, Any]:
        """The state of a user name and/or an address: failures in the current window and seconds locked.

        Args:
            user: a user name: ``bytes`` as a request carries it, or a ``str`` (encoded as UTF-8; for text mod_wsgi
                decoded as latin-1, pass ``user.encode("latin-1")``). Its user key and the account it resolves to
                are looked at too (for LDAP pass the entry's DN, or a name a request has used in this process).
            client: a client address (an IPv6 one stands for its ``ipv6_prefix`` network).

        Returns:
            ``{"user": {"failures": n, "locked": seconds}, "address": {...}}`` for the subjects given (from Redis
            when the shared tier is up, else from this process); for a user, the most locked of what it stands for.
        """
        if self._pid != os.getpid():
            self._reset_for_process()
        subjects = self._admin_subjects(user, client)
        found: list[tuple[str, int, float]] = []
        shared = False
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
                shared = True
                for i, s in enumerate(subjects):
                    found.append((s[0], int(values[2 * i] or 0), max(int(values[2 * i + 1]), 0) / 1000.0))
        if not shared:
            now = self._clock()
            with self._lock:
                for s in subjects:
                    slot = self._table.get(s, now)
                    if slot is None:
                        found.append((s[0], 0, 0.0))
                    else:
                        failures = slot.failures if now < slot.window_end else 0
                        found.append((s[0], failures, max(slot.locked_until - now, 0.0)))
        out: dict[str, Any] = {}
        for kind, failures, locked in found:
            best = out.get(kind)
            if best is None or (locked, failures) > (best["locked"], best["failures"]):
                out[kind] = {"failures": failures, "locked": locked}
        return out

    def release(self, user: bytes | str | None = None, client: str | None = None) -> None:
        """Lift the lockout and clear the counters of a user name and/or an address (an administrator's action).

        Args:
            user: a user name, as for `status` (its user key and account are released too).
            client: a client address (an IPv6 one releases its ``ipv6_prefix`` network).
        """
        if self._pid != os.getpid():
            self._reset_for_process()
        subjects = self._admin_subjects(user, client)
        with self._lock:
            for s in subjects:
                self._table.pop(s)
                self._unshared.discard(s)
        if self._tier is not None and subjects:
            keys = [k for s in subjects for k in self._keys(s)]
            try:
                self._tier.call(lambda r: r.delete(*keys))
            except TierDown:
                pass

    # ------------------------------------------------------------------ forwarded

    # groups, lookup, generation and realm_hash are forwarded (Wrapper); a caller that checks a Digest response
    # itself asks `refusal` first and reports a wrong one with `record_failure`.

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
