"""Brute-force throttling (wsgiauth.throttle), per-process tier: lockout, its end, growth, isolation, threads."""

from __future__ import annotations

import io
import logging
import os
import statistics
import threading
import time

import pytest

from wsgiauth import hashes
from wsgiauth._options import THROTTLE_MAX_TRACKED
from wsgiauth.adapter import Backend, Decision, Outcome, Record
from wsgiauth.cache import cached
from wsgiauth.compose import canonicalize, chain
from wsgiauth.exceptions import ConfigError
from wsgiauth.throttle import throttled

PASSWORD = "s3cret-Pa55"


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


class Store(Backend):
    label = "store"

    def __init__(self, users: dict[bytes, str]) -> None:
        super().__init__()
        self.users = users
        self.lookups = 0

    def lookup(self, user: bytes) -> Record | None:
        self.lookups += 1
        h = self.users.get(user)
        return None if h is None else Record(h)


def env(addr: str = "198.51.100.7") -> dict[str, object]:
    return {"REMOTE_ADDR": addr, "wsgi.errors": io.StringIO()}


@pytest.fixture
def store() -> Store:
    return Store({b"alice": hashes.hash_password(PASSWORD.encode(), "apr1"),
                  b"bob": hashes.hash_password(b"bobpw", "apr1")})


@pytest.fixture
def dummies(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    calls: list[str | None] = []
    real = hashes.dummy_verify

    def counting(password: bytes, like: str | None) -> None:
        calls.append(like)
        real(password, like)

    monkeypatch.setattr(hashes, "dummy_verify", counting)
    return calls


def test_lockout_happens_refuses_the_right_password_and_ends(store: Store, dummies: list[str | None]) -> None:
    clock = Clock()
    backend = throttled(store, max_failures=3, window=60, lockout=30, clock=clock)
    for _ in range(3):
        assert backend.check_password(env(), "alice", "guess") is False
    lookups = store.lookups
    assert backend.check_password(env(), "alice", PASSWORD) is False  # refused although right
    # the store does its look-up as for any check (same cost), but the password only meets a dummy like alice's
    assert store.lookups == lookups + 1
    assert dummies == [store.users[b"alice"]]
    clock.now += 29.5
    assert backend.check_password(env(), "alice", PASSWORD) is False
    clock.now += 1.0
    assert backend.check_password(env(), "alice", PASSWORD) is True


def test_lockout_grows_for_repeat_offenders_and_is_capped(store: Store) -> None:
    clock = Clock()
    backend = throttled(store, max_failures=2, window=60, lockout=10, growth=3, max_lockout=50, per="user",
                        clock=clock)

    def lock_length() -> float:
        for _ in range(2):
            backend.check_password(env(), "alice", "guess")
        left: float = backend.status("alice")["user"]["locked"]
        clock.now += left + 0.01
        return left

    assert lock_length() == pytest.approx(10)
    assert lock_length() == pytest.approx(30)
    assert lock_length() == pytest.approx(50)  # 90 capped at 50
    assert lock_length() == pytest.approx(50)
    clock.now += 60 + 1  # forgiven max(window, max_lockout) = 60 s after the last lockout ended
    assert lock_length() == pytest.approx(10)


def test_failures_expire_with_the_window(store: Store) -> None:
    clock = Clock()
    backend = throttled(store, max_failures=3, window=60, lockout=30, clock=clock)
    for _ in range(2):
        backend.check_password(env(), "alice", "guess")
    clock.now += 61
    for _ in range(2):
        backend.check_password(env(), "alice", "guess")
    assert backend.check_password(env(), "alice", PASSWORD) is True
    assert backend.status("alice")["user"]["failures"] == 2


def test_per_address_isolation(store: Store) -> None:
    backend = throttled(store, max_failures=3, per="address", clock=Clock())
    for _ in range(3):
        backend.check_password(env("203.0.113.1"), "alice", "guess")
    assert backend.check_password(env("203.0.113.1"), "alice", PASSWORD) is False
    assert backend.check_password(env("203.0.113.1"), "bob", "bobpw") is False  # the address is locked
    assert backend.check_password(env("203.0.113.2"), "alice", PASSWORD) is True  # another address is not


def test_per_user_locks_the_name_from_every_address(store: Store) -> None:
    backend = throttled(store, max_failures=3, per="user", clock=Clock())
    for i in range(3):
        backend.check_password(env(f"203.0.113.{i}"), "alice", "guess")
    assert backend.check_password(env("203.0.113.99"), "alice", PASSWORD) is False
    assert backend.check_password(env("203.0.113.0"), "bob", "bobpw") is True


def test_both_locks_the_user_and_the_address(store: Store) -> None:
    backend = throttled(store, max_failures=3, clock=Clock())
    for _ in range(3):
        backend.check_password(env("203.0.113.1"), "alice", "guess")
    assert backend.check_password(env("203.0.113.50"), "alice", PASSWORD) is False  # user locked
    assert backend.check_password(env("203.0.113.1"), "bob", "bobpw") is False  # address locked
    assert backend.check_password(env("203.0.113.50"), "bob", "bobpw") is True


def test_a_success_does_not_reset_another_address_counter(store: Store) -> None:
    backend = throttled(store, max_failures=5, per="address", clock=Clock())
    for _ in range(4):
        backend.check_password(env("203.0.113.1"), "alice", "guess")
    assert backend.check_password(env("203.0.113.2"), "alice", PASSWORD) is True
    assert backend.status(client="203.0.113.1")["address"]["failures"] == 4
    backend.check_password(env("203.0.113.1"), "alice", "guess")
    assert backend.check_password(env("203.0.113.1"), "alice", PASSWORD) is False


def test_unknown_user_names_count_against_the_address(store: Store) -> None:
    backend = throttled(store, max_failures=3, per="address", clock=Clock())
    for i in range(3):
        assert backend.check_password(env("203.0.113.9"), f"nobody{i}", "x") is None
    assert backend.check_password(env("203.0.113.9"), "alice", PASSWORD) is False


def test_concurrent_failures_from_20_threads_are_counted_exactly(store: Store) -> None:
    backend = throttled(store, max_failures=10**6, per="both", clock=Clock())
    barrier = threading.Barrier(20)

    def work(t: int) -> None:
        barrier.wait()
        for _ in range(50):
            backend.authenticate(b"alice", b"guess", f"10.0.0.{t}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert backend.status("alice")["user"]["failures"] == 1000
    assert [backend.status(client=f"10.0.0.{t}")["address"]["failures"] for t in range(20)] == [50] * 20


def test_the_lockout_is_logged_with_user_and_address_never_the_password(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    backend = throttled(store, max_failures=2, clock=Clock())
    environs = [env("203.0.113.77") for _ in range(3)]
    with caplog.at_level(logging.WARNING, logger="wsgiauth"):
        backend.check_password(environs[0], "alice", "hunter2-guess")
        backend.check_password(environs[1], "alice", "hunter2-guess")
        backend.check_password(environs[2], "alice", PASSWORD)
    apache_log = "".join(e["wsgi.errors"].getvalue() for e in environs)  # type: ignore[attr-defined]
    everything = apache_log + caplog.text
    assert "locked out" in apache_log and "203.0.113.77" in apache_log and "'alice'" in apache_log
    assert "locked out" in caplog.text and "alice" in caplog.text
    assert "hunter2" not in everything and PASSWORD not in everything
    assert store.users[b"alice"] not in everything


def test_a_refused_attempt_costs_what_a_real_check_costs() -> None:
    """Response time must not reveal a lockout: compare refused and ordinary wrong-password attempts (bcrypt)."""
    store = Store({b"alice": hashes.hash_password(PASSWORD.encode(), "bcrypt", cost=8)})
    clock = Clock()
    backend = throttled(store, max_failures=3, per="address", clock=clock)

    def timed(addr: str) -> float:
        # CPU time of this thread: the work done, undisturbed by other processes on a busy machine
        t0 = time.thread_time()
        backend.authenticate(b"alice", b"guess", addr)
        return time.thread_time() - t0

    for _ in range(3):
        backend.authenticate(b"alice", b"guess", "203.0.113.1")  # locks that address; warms the dummy hash
    hashes.dummy_verify(b"x", store.users[b"alice"])
    normal, refused = [], []
    for i in range(9):
        normal.append(timed(f"203.0.114.{i}"))
        refused.append(timed("203.0.113.1"))
    assert backend.status(client="203.0.113.1")["address"]["locked"] > 0
    ratio = statistics.median(refused) / statistics.median(normal)
    assert 0.5 < ratio < 2.0, (normal, refused)


def test_throttle_in_front_of_the_cache_refuses_even_a_cached_password(store: Store) -> None:
    backend = throttled(cached(store), max_failures=3, per="user", clock=Clock())
    assert backend.check_password(env(), "alice", PASSWORD) is True
    assert backend.label == "store"
    for _ in range(3):
        backend.check_password(env(), "alice", "guess")
    assert backend.check_password(env(), "alice", PASSWORD) is False
    assert backend.timing_hash == store.users[b"alice"]


def test_release_lifts_a_lockout(store: Store) -> None:
    backend = throttled(store, max_failures=2, clock=Clock())
    for _ in range(2):
        backend.check_password(env(), "alice", "guess")
    assert backend.check_password(env(), "alice", PASSWORD) is False
    backend.release("alice", "198.51.100.7")
    assert backend.check_password(env(), "alice", PASSWORD) is True


def test_a_forked_child_starts_with_its_own_counters(store: Store) -> None:
    backend = throttled(store, max_failures=2, per="user", clock=Clock())
    backend.check_password(env(), "alice", "guess")
    backend.check_password(env(), "alice", "guess")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(w, repr(backend.check_password(env(), "alice", PASSWORD)).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        answer = f.read()
    os.waitpid(pid, 0)
    assert answer == "True"  # per-process counters are not inherited (use Redis to share them)
    assert backend.check_password(env(), "alice", PASSWORD) is False


def test_bad_configuration_is_refused(store: Store) -> None:
    for kwargs in ({"max_failures": 0}, {"window": 0}, {"lockout": -1}, {"growth": 0.5},
                   {"lockout": 60, "max_lockout": 10}, {"per": "host"}):
        with pytest.raises(ConfigError):
            throttled(store, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------- issue 15
# Finding 2: name variants share the account's counter; finding 3: lockouts are never evicted, IPv6 per /64;
# finding 16: admin calls take a Unicode str as UTF-8.


class Folding(Backend):
    """A store that matches names loosely (case-insensitively, as LDAP does) and names the account it resolved.

    ``fold_key``: also say so in `user_key` (as ldap.Backend does); without it, the throttle only learns the account
    from each decision. ``dn``: the identity is a DN-like key that no typed name equals (an LDAP entry's DN).
    """

    label = "folding"

    def __init__(self, users: dict[bytes, str], *, fold_key: bool = False, dn: bool = False) -> None:
        super().__init__()
        self.users = users
        self.fold_key = fold_key
        self.dn = dn
        self.lookups = 0

    def lookup(self, user: bytes) -> Record | None:
        self.lookups += 1
        name = user.lower()
        h = self.users.get(name)
        if h is None:
            return None
        return Record(h, name=b"uid=" + name + b",ou=people" if self.dn else name)

    def user_key(self, user: bytes) -> bytes:
        return user.lower() if self.fold_key else user


def test_2000_domain_variants_through_canonicalize_lock_alice(store: Store) -> None:
    """alice@x0 ... alice@x1999 are all alice to canonicalize(strip_domain=True): they are all alice's failures."""
    backend = throttled(canonicalize(store, strip_domain=True), max_failures=5, per="user", clock=Clock())
    answers = [backend.check_password(env(f"203.0.113.{i % 250}"), f"alice@x{i}", "guess") for i in range(2000)]
    assert answers == [False] * 2000
    assert backend.lockouts >= 1 and backend.refused >= 1990
    assert backend.check_password(env("192.0.2.1"), "alice", PASSWORD) is False  # the right password, refused
    assert backend.check_password(env("192.0.2.1"), "alice@example.org", PASSWORD) is False
    assert backend.check_password(env("192.0.2.1"), "bob", "bobpw") is True  # another account is not locked


@pytest.mark.parametrize("fold_key", [False, True], ids=["learnt-from-decisions", "user_key-folds"])
def test_spellings_the_store_resolves_to_one_account_share_its_counter(fold_key: bool) -> None:
    store = Folding({b"alice": hashes.hash_password(PASSWORD.encode(), "apr1")}, fold_key=fold_key)
    backend = throttled(store, max_failures=5, per="user", clock=Clock())
    for spelling in ("Alice", "ALICE", "aLiCe", "alIce", "ALice"):  # five spellings, one account
        assert backend.check_password(env(), spelling, "guess") is False
    assert backend.status("alice")["user"]["failures"] == 0  # the fifth failure locked it
    assert backend.status("alice")["user"]["locked"] > 0
    for spelling in ("alice", "ALICE", "AliCE"):  # a spelling seen before, the store's own, a new one
        assert backend.check_password(env(), spelling, PASSWORD) is False, spelling
    decision = backend.authenticate(b"aLICE", PASSWORD.encode())
    assert not decision.granted and "locked out" in decision.reason


def test_a_locked_account_behind_a_dn_is_refused_in_every_spelling_and_costs_a_normal_check() -> None:
    """The store's identity is a DN that no typed name equals (LDAP): the account is still locked for every
    spelling; a spelling never seen costs one normal check (then the refusal), a known one the dummy path."""
    store = Folding({b"alice": hashes.hash_password(PASSWORD.encode(), "apr1")}, dn=True)
    backend = throttled(store, max_failures=3, per="user", clock=Clock())
    for spelling in ("Alice", "ALICE", "aLiCe"):
        backend.check_password(env(), spelling, "guess")
    assert backend.status(b"uid=alice,ou=people")["user"]["locked"] > 0
    before = store.lookups
    assert backend.check_password(env(), "ALICe", PASSWORD) is False  # new spelling: normal check, then refused
    assert store.lookups == before + 1
    assert backend.check_password(env(), "ALICe", PASSWORD) is False  # known now: refused before the store
    assert backend.refusal(b"ALICe") is not None and "locked out" in (backend.refusal(b"Alice") or "")
    assert backend.refusal(b"bob") is None


def test_record_failure_counts_like_a_failed_check_and_refusal_reports_the_lockout(store: Store) -> None:
    backend = throttled(store, max_failures=3, clock=Clock())
    assert backend.refusal(b"alice", "198.51.100.7") is None
    for _ in range(3):
        backend.record_failure(b"alice", "198.51.100.8")  # e.g. three wrong Digest responses
    reason = backend.refusal(b"alice", "203.0.113.1")
    assert reason is not None and "user locked out" in reason
    assert backend.check_password(env("203.0.113.1"), "alice", PASSWORD) is False
    assert "address locked out" in (backend.refusal(b"bob", "198.51.100.8") or "")
    assert backend.check_password(env("203.0.113.1"), "bob", "bobpw") is True


def test_canonical_and_chain_user_keys_agree_with_their_members_matching() -> None:
    folding = Folding({b"alice": "x"}, fold_key=True)
    exact = Store({b"Bob": "x"})
    assert canonicalize(exact, strip_domain=True).user_key(b"alice@x7") == b"alice"
    assert canonicalize(folding, strip_domain=True).user_key(b"ALICE@x7") == b"alice"
    both = chain(canonicalize(exact, strip_domain=True), folding)
    # every spelling either member matches to alice has alice's key
    assert {both.user_key(n) for n in (b"alice", b"ALICE", b"alice@x1", b"ALICE@Y", b"EXAMPLE\\Alice")} == {b"alice"}
    assert chain(exact).user_key(b"Bob") == b"Bob"  # byte-exact stores keep the name as typed


class Fast(Backend):
    """A store that answers at once (no hashing), so that floods of failures take a fraction of a second.

    Names starting with ``acct`` are accounts (resolved, wrong password); ``alice`` has password ``pw``; any other
    name is unknown."""

    label = "fast"

    def authenticate(self, user: bytes, password: bytes, client: str | None = None) -> Decision:
        if user == b"alice":
            outcome = Outcome.GRANTED if password == b"pw" else Outcome.DENIED
            return Decision(outcome, backend=self.label, identity=user)
        if user.startswith(b"acct"):
            return Decision(Outcome.DENIED, backend=self.label, identity=user)
        return Decision(Outcome.UNKNOWN, backend=self.label)

    def dummy_authenticate(self, user: bytes, password: bytes) -> None:
        pass


@pytest.mark.parametrize(("max_tracked", "junk"), [(100, 10_001), (THROTTLE_MAX_TRACKED.default, 50_001)],
                         ids=["small-table", "default-table"])
def test_a_flood_of_junk_failures_never_unlocks_alice(max_tracked: int, junk: int) -> None:
    """Each junk failure (a new name from a new address) is two new subjects: far more than the table holds."""
    backend = throttled(Fast(), max_failures=3, lockout=600, max_tracked=max_tracked, clock=Clock())
    for _ in range(3):
        backend.authenticate(b"alice", b"guess", "192.0.2.1")
    assert not backend.authenticate(b"alice", b"pw", "192.0.2.2").granted
    for i in range(junk):
        backend.authenticate(b"junk%d" % i, b"x", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    decision = backend.authenticate(b"alice", b"pw", "192.0.2.3")
    assert not decision.granted and "user locked out" in decision.reason
    assert backend.status("alice")["user"]["locked"] > 500
    assert backend.status(client="192.0.2.1")["address"]["locked"] > 500  # the guessing address stays locked too


def test_the_table_stays_within_its_budget_whatever_the_flood() -> None:
    """Memory is bounded: a second, five times larger flood of junk grows the process by (almost) nothing."""
    import tracemalloc

    backend = throttled(Fast(), max_failures=3, lockout=600, max_tracked=2000, clock=Clock())

    def flood(start: int, n: int) -> None:
        for i in range(start, start + n):
            backend.authenticate(b"junk%d" % i, b"x", f"10.0.{i >> 8 & 255}.{i & 255}")

    tracemalloc.start()
    try:
        flood(0, 4000)  # fills the table
        full = tracemalloc.get_traced_memory()[0]
        flood(4000, 20_000)
        grown = tracemalloc.get_traced_memory()[0] - full
    finally:
        tracemalloc.stop()
    assert full > 300_000  # the table itself: 2,000 subjects of some 300 bytes
    assert grown < 50_000, grown  # 20,000 more subjects would be 5 MB


def test_junk_lockouts_make_room_but_account_and_address_lockouts_are_kept(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    backend = throttled(Fast(), max_failures=2, lockout=600, per="user", max_tracked=50, clock=clock)
    for _ in range(2):
        backend.authenticate(b"alice", b"guess")
    for i in range(500):  # 500 junk names locked out: names resolved to no account, the first to go when full
        for _ in range(2):
            backend.authenticate(b"junk%d" % i, b"x")
    assert not backend.authenticate(b"alice", b"pw").granted
    for _ in range(2):  # a new account is still counted and locked
        backend.authenticate(b"acct-new", b"x")
    assert backend.status("acct-new")["user"]["locked"] > 0
    # now fill the budget with lockouts of accounts: nothing is evicted; new names are not counted (logged once)
    with caplog.at_level(logging.WARNING, logger="wsgiauth.throttle"):
        for i in range(60):
            for _ in range(2):
                backend.authenticate(b"acct%d" % i, b"x")
    assert not backend.authenticate(b"alice", b"pw").granted
    assert all(backend.status(f"acct{i}")["user"]["locked"] > 0 for i in range(48))
    assert backend.untracked > 0
    assert sum("not counted" in r.getMessage() for r in caplog.records) == 1
    clock.now += 601  # every lockout ended: alice logs in, and new names are counted again
    assert backend.authenticate(b"alice", b"pw").granted
    for _ in range(2):
        backend.authenticate(b"acct-later", b"x")
    assert backend.status("acct-later")["user"]["locked"] > 0


def test_3000_addresses_of_one_ipv6_64_lock_the_64() -> None:
    backend = throttled(Fast(), max_failures=5, per="address", clock=Clock())
    for i in range(3000):
        backend.authenticate(b"acct%d" % i, b"x", f"2001:db8:1:2::{i:x}")
    assert backend.status(client="2001:db8:1:2::1")["address"]["locked"] > 0
    refused = backend.authenticate(b"alice", b"pw", "2001:db8:1:2:ffff:ffff:ffff:fffe")
    assert not refused.granted and "address locked out" in refused.reason
    assert backend.authenticate(b"alice", b"pw", "2001:db8:1:3::1").granted  # the next /64 is another client
    backend.release(client="2001:db8:1:2::abcd")  # an address stands for its /64
    assert backend.authenticate(b"alice", b"pw", "2001:db8:1:2::1").granted


def test_ipv4_mapped_addresses_are_their_ipv4_address_and_the_prefix_is_configurable() -> None:
    backend = throttled(Fast(), max_failures=3, per="address", clock=Clock())
    for client in ("::ffff:203.0.113.5", "203.0.113.5", "::ffff:cb00:7105"):
        backend.authenticate(b"junk", b"x", client)
    assert not backend.authenticate(b"alice", b"pw", "203.0.113.5").granted
    assert backend.address_key("::ffff:203.0.113.5") == b"203.0.113.5"
    assert backend.address_key("2001:DB8:0:0:1::9") == b"2001:db8::/64"
    per_address = throttled(Fast(), max_failures=3, per="address", ipv6_prefix=128, clock=Clock())
    for i in range(10):
        per_address.authenticate(b"junk", b"x", f"2001:db8::{i}")
    assert per_address.authenticate(b"alice", b"pw", "2001:db8::1").granted
    assert per_address.address_key("not an address") == b"not an address"
    for bad in (0, 129):
        with pytest.raises(ConfigError):
            throttled(Fast(), ipv6_prefix=bad)


ZOE_UTF8 = "zoë".encode()  # what a browser sends for the name zoë


def test_release_and_status_of_a_unicode_name_reach_the_utf8_user() -> None:
    store = Store({ZOE_UTF8: hashes.hash_password(PASSWORD.encode(), "apr1")})
    backend = throttled(store, max_failures=2, per="user", clock=Clock())
    as_mod_wsgi_passes_it = ZOE_UTF8.decode("latin-1")
    for _ in range(2):
        assert backend.check_password(env(), as_mod_wsgi_passes_it, "guess") is False
    assert backend.status(user="zoë")["user"]["locked"] > 0
    backend.release(user="zoë")
    assert backend.status(user="zoë")["user"]["locked"] == 0
    assert backend.check_password(env(), as_mod_wsgi_passes_it, PASSWORD) is True
    # request text from mod_wsgi is latin-1: its bytes are passed as bytes
    for _ in range(2):
        backend.check_password(env(), as_mod_wsgi_passes_it, "guess")
    backend.release(user=as_mod_wsgi_passes_it.encode("latin-1"))
    assert backend.check_password(env(), as_mod_wsgi_passes_it, PASSWORD) is True
