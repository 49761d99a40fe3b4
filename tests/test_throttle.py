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
from wsgiauth.adapter import Backend, Record
from wsgiauth.cache import cached
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
