"""wsgiauth.pool on fake connections: laziness, bounds, waiting, expiry, validation, retry, breaker, fork, registry.

The same pool against real PostgreSQL and MariaDB servers (connections counted on the server: fork, 20 threads,
outage, re-import) is tested in tests/test_sql.py.
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import threading
import time
from typing import Any

import pytest

from wsgiauth import pool as poolmod
from wsgiauth.exceptions import BackendError, BackendUnavailableError, PoolTimeoutError
from wsgiauth.pool import Pool, default_is_dead, get_pool

_ids = itertools.count(1)


class FakeConn:
    """A connection that records its use and can be made to die."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.id = next(_ids)
        self.closed = 0
        self.dead = False
        self.busy = False
        self.checks = 0
        self.resets = 0

    def query(self, value: Any = 1) -> Any:
        assert not self.busy, "a connection was used by two threads at once"
        self.busy = True
        try:
            if self.dead or not self.server.up:
                self.dead = True
                raise ConnectionResetError("server closed the connection")
            time.sleep(self.server.latency)
            return value
        finally:
            self.busy = False

    def close(self) -> None:
        self.closed += 1
        self.server.open.discard(self.id)


class FakeServer:
    """Counts connections like a real server would; can go down."""

    def __init__(self) -> None:
        self.up = True
        self.connects = 0
        self.open: set[int] = set()
        self.max_open = 0
        self.latency = 0.0
        self.lock = threading.Lock()

    def connect(self) -> FakeConn:
        with self.lock:
            self.connects += 1
            if not self.up:
                raise ConnectionRefusedError("connection refused")
            conn = FakeConn(self)
            self.open.add(conn.id)
            self.max_open = max(self.max_open, len(self.open))
            return conn


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


class Clock:
    """A controllable time.monotonic for expiry tests (Condition waits still use real time)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(poolmod, "time", c)
    return c


def test_nothing_is_opened_until_first_use(server: FakeServer) -> None:
    p = Pool(server.connect, max_size=3)
    assert server.connects == 0
    assert p.stats()["size"] == 0
    assert p.run(lambda c: c.query("x")) == "x"
    assert server.connects == 1


def test_sequential_use_reuses_one_connection(server: FakeServer) -> None:
    p = Pool(server.connect, max_size=4)
    seen = {p.run(lambda c: c.id) for _ in range(50)}
    assert len(seen) == 1
    s = p.stats()
    assert (s["opened"], s["idle"], s["in_use"], s["checkouts"]) == (1, 1, 0, 50)


def test_many_threads_never_exceed_max_size_and_never_share_a_connection(server: FakeServer) -> None:
    server.latency = 0.001
    p = Pool(server.connect, max_size=3, timeout=10)
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for i in range(40):
                assert p.run(lambda c, i=i: c.query(i)) == i
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert server.max_open <= 3
    assert server.connects == 3  # all three slots were used, none reopened
    s = p.stats()
    assert s["size"] <= 3 and s["timeouts"] == 0 and s["checkouts"] == 16 * 40


def test_bounded_wait_raises_pool_timeout(server: FakeServer) -> None:
    p = Pool(server.connect, max_size=1, timeout=0.2)
    with p.connection():
        t0 = time.monotonic()
        with pytest.raises(PoolTimeoutError, match=r"no free connection within 0\.2s"):
            p.run(lambda c: c.query())
        elapsed = time.monotonic() - t0
    assert 0.15 <= elapsed < 1.0
    assert p.stats()["timeouts"] == 1
    assert p.run(lambda c: c.query(7)) == 7  # free again


def test_waiter_gets_the_connection_when_it_is_returned(server: FakeServer) -> None:
    p = Pool(server.connect, max_size=1, timeout=5)
    got: list[int] = []
    with p.connection() as first:
        t = threading.Thread(target=lambda: got.append(p.run(lambda c: c.id)))
        t.start()
        deadline = time.monotonic() + 5
        while p.stats()["waiting"] == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert p.stats()["waiting"] == 1
    t.join(5)
    assert got == [first.id]
    assert server.connects == 1


def test_idle_connections_expire(server: FakeServer, clock: Clock) -> None:
    p = Pool(server.connect, max_idle=60, max_lifetime=0)
    first = p.run(lambda c: c)
    clock.now += 59
    assert p.run(lambda c: c) is first
    clock.now += 61
    second = p.run(lambda c: c)
    assert second is not first
    assert first.closed == 1
    assert p.stats()["expired"] == 1


def test_max_lifetime_is_jittered_down_by_at_most_ten_percent(server: FakeServer, clock: Clock) -> None:
    p = Pool(server.connect, max_idle=0, max_lifetime=100)
    first = p.run(lambda c: c)
    clock.now += 89.9  # below the jitter range: always kept
    assert p.run(lambda c: c) is first
    clock.now += 10.2  # past 100 s: always replaced
    assert p.run(lambda c: c) is not first
    assert first.closed == 1
    expiries = {round(poolmod._Slot(object(), 0.0, 100.0).expires, 3) for _ in range(50)}
    assert all(90.0 <= e <= 100.0 for e in expiries) and len(expiries) > 1


def test_connections_idle_longer_than_check_after_are_validated(server: FakeServer, clock: Clock) -> None:
    checked: list[int] = []

    def check(c: FakeConn) -> None:
        checked.append(c.id)
        c.query()

    p = Pool(server.connect, check=check, check_after=30)
    first = p.run(lambda c: c)
    clock.now += 10
    p.run(lambda c: c)
    assert checked == []  # fresh enough: no round trip
    clock.now += 31
    assert p.run(lambda c: c) is first
    assert checked == [first.id]
    first.dead = True  # the server dropped it while idle
    clock.now += 31
    replacement = p.run(lambda c: c)
    assert replacement is not first and first.closed == 1
    assert p.stats()["checks_failed"] == 1


def test_reset_runs_on_return_and_a_failing_reset_discards(server: FakeServer) -> None:
    def reset(c: FakeConn) -> None:
        c.resets += 1
        if c.resets == 2:
            raise RuntimeError("rollback failed")

    p = Pool(server.connect, reset=reset)
    first = p.run(lambda c: c)
    assert first.resets == 1
    assert p.run(lambda c: c) is first  # second reset fails: discarded
    assert first.closed == 1
    assert p.run(lambda c: c) is not first


def test_dead_connection_is_retried_once_on_a_fresh_one(server: FakeServer) -> None:
    p = Pool(server.connect, max_size=2)
    with p.connection() as a, p.connection() as b:
        pass
    a.dead = True  # e.g. the server restarted: b is dead too, but only a shows it at first
    b.dead = True
    assert p.run(lambda c: c.query("ok")) == "ok"
    s = p.stats()
    assert s["retries"] == 1
    assert a.closed == 1 and b.closed == 1  # the dead one, and the idle ones from the same era
    assert s["size"] == 1 and s["breaker_open"] == 0


def test_a_connection_dead_twice_is_backend_unavailable(server: FakeServer) -> None:
    p = Pool(server.connect, breaker_threshold=0)

    def always_dead(c: FakeConn) -> None:
        raise ConnectionResetError("reset by peer")

    with pytest.raises(BackendUnavailableError, match="failed twice") as info:
        p.run(always_dead)
    assert isinstance(info.value.__cause__, ConnectionResetError)
    assert p.stats()["retries"] == 1 and server.connects == 2


def test_other_errors_propagate_and_keep_the_connection(server: FakeServer) -> None:
    p = Pool(server.connect)
    first = p.run(lambda c: c)

    def bad_query(c: FakeConn) -> None:
        raise ValueError("syntax error at or near SELEC")

    with pytest.raises(ValueError, match="syntax error"):
        p.run(bad_query)
    assert p.run(lambda c: c) is first and first.closed == 0
    assert p.stats()["retries"] == 0


def test_connect_failure_is_backend_unavailable_and_opens_the_breaker(
        server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    server.up = False
    p = Pool(server.connect, name="db", breaker_threshold=3, breaker_reset=0.3)
    caplog.set_level(logging.WARNING, logger="wsgiauth.pool")
    for _ in range(3):
        with pytest.raises(BackendUnavailableError, match="cannot connect"):
            p.run(lambda c: c.query())
    assert server.connects == 3
    assert p.stats()["breaker_open"] == 1
    assert any(r.name == "wsgiauth.pool" and "circuit breaker open" in r.getMessage() for r in caplog.records)
    # while open: fail fast, without touching the server
    t0 = time.monotonic()
    for _ in range(20):
        with pytest.raises(BackendUnavailableError, match="circuit breaker open"):
            p.run(lambda c: c.query())
    assert time.monotonic() - t0 < 0.1
    assert server.connects == 3
    assert p.stats()["fast_failures"] == 20
    # after breaker_reset: one trial; it fails, so the breaker opens again at once
    time.sleep(0.35)
    with pytest.raises(BackendUnavailableError, match="cannot connect"):
        p.run(lambda c: c.query())
    assert server.connects == 4
    with pytest.raises(BackendUnavailableError, match="circuit breaker open"):
        p.run(lambda c: c.query())
    # server back: the next trial succeeds and closes the breaker
    server.up = True
    time.sleep(0.35)
    assert p.run(lambda c: c.query("back")) == "back"
    s = p.stats()
    assert s["breaker_open"] == 0 and s["failures"] == 0 and s["breaker_trips"] == 2
    assert p.run(lambda c: c.query("again")) == "again"


def test_half_open_breaker_lets_exactly_one_trial_through(server: FakeServer) -> None:
    server.up = False
    p = Pool(server.connect, breaker_threshold=1, breaker_reset=0.1, timeout=5)
    with pytest.raises(BackendUnavailableError):
        p.run(lambda c: c.query())
    server.up = True
    server.latency = 0.3
    time.sleep(0.15)
    results: list[str] = []
    lock = threading.Lock()

    def attempt() -> None:
        try:
            p.run(lambda c: c.query())
            outcome = "ok"
        except BackendUnavailableError:
            outcome = "fast"
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=attempt) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["fast"] * 4 + ["ok"]
    assert p.stats()["breaker_open"] == 0


def test_close_closes_idle_connections_and_refuses_checkouts(server: FakeServer) -> None:
    p = Pool(server.connect, max_size=2)
    with p.connection() as a, p.connection() as b:
        pass
    p.close()
    assert a.closed == 1 and b.closed == 1 and server.open == set()
    with pytest.raises(BackendUnavailableError, match="closed"):
        p.run(lambda c: c.query())


def test_forked_child_drops_the_parents_connections_and_opens_its_own(server: FakeServer) -> None:
    p = Pool(server.connect, max_size=2)
    parent_conn = p.run(lambda c: c)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            before = p.stats()
            child_conn = p.run(lambda c: c)
            report = {"before_size": before["size"], "pid_ok": p.stats()["pid"] == os.getpid(),
                      "new_conn": child_conn is not parent_conn, "parent_closed": parent_conn.closed,
                      "opened": p.stats()["opened"], "inherited_kept": parent_conn in poolmod._inherited}
            os.write(w, pickle.dumps(report))
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        report = pickle.loads(f.read())
    os.waitpid(pid, 0)
    assert report == {"before_size": 0, "pid_ok": True, "new_conn": True, "parent_closed": 0, "opened": 1,
                      "inherited_kept": True}
    # the parent's pool is untouched: same connection, never closed
    assert p.run(lambda c: c) is parent_conn
    assert parent_conn.closed == 0 and p.stats()["opened"] == 1


def test_pid_check_works_without_the_fork_hook(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # Apache forks its children from C; mod_wsgi runs Python's fork hooks, but the pid check must hold alone.
    p = Pool(server.connect)
    first = p.run(lambda c: c)
    monkeypatch.setattr(p, "_pid", -1)  # as if this process were a child that skipped the hook
    second = p.run(lambda c: c)
    assert second is not first and first.closed == 0
    assert first in poolmod._inherited


def test_registry_returns_the_same_pool_and_replaces_a_closed_one(server: FakeServer) -> None:
    made: list[Pool[Any]] = []

    def factory() -> Pool[Any]:
        made.append(Pool(server.connect))
        return made[-1]

    key = ("test_pool", id(server))
    a = get_pool(key, factory)
    b = get_pool(key, factory)
    assert a is b and len(made) == 1
    a.close()
    c = get_pool(key, factory)
    assert c is not a and not c.closed and len(made) == 2


def test_default_is_dead() -> None:
    class OperationalError(Exception):
        pass

    class InterfaceError(Exception):
        pass

    assert default_is_dead(ConnectionResetError())
    assert default_is_dead(TimeoutError())
    assert default_is_dead(EOFError())
    assert default_is_dead(OperationalError("server closed the connection unexpectedly"))
    assert default_is_dead(InterfaceError("connection already closed"))
    assert not default_is_dead(ValueError("bad"))
    assert not default_is_dead(BackendError("x"))


def test_rejects_bad_settings(server: FakeServer) -> None:
    with pytest.raises(ValueError, match="max_size"):
        Pool(server.connect, max_size=0)
    with pytest.raises(ValueError, match="timeout"):
        Pool(server.connect, timeout=-1)
