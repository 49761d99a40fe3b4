"""The shared Redis tier of the cache and the throttle, against a real throw-away redis-server.

Separate processes share it (a lockout in one is seen by the other); Redis stopped mid-run leaves the per-process
tier serving, logged once; nothing secret is written to Redis; forged entries are ignored.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from backends._common import wait_until
from backends.redis import Redis
from wsgiauth import hashes
from wsgiauth._redis import RedisTier, get_tier
from wsgiauth.adapter import Backend, Record
from wsgiauth.cache import cached
from wsgiauth.throttle import throttled

KEY = b"0123456789abcdef-shared-test-key"
PASSWORD = b"Tr0ub4dor&3-redis"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server(redis_server: Redis) -> Redis:
    """The plugin's throw-away redis-server (backends/pytest_plugin.py)."""
    return redis_server


@pytest.fixture
def tier(server: Redis, request: pytest.FixtureRequest) -> RedisTier:
    if not server.proc or server.proc.poll() is not None:
        server.start()
    prefix = "t" + str(abs(hash(request.node.name)))  # each test its own namespace
    return RedisTier(server.url, prefix=prefix, retry_after=0.2)


@pytest.fixture
def raw(server: Redis) -> redis.Redis:
    return redis.Redis.from_url(server.url)


class Store(Backend):
    label = "store"

    def __init__(self, users: dict[bytes, str], groups: dict[bytes, tuple[bytes, ...]] | None = None) -> None:
        super().__init__()
        self.users = dict(users)
        self.group_map = groups or {}
        self.lookups = 0
        self.gen = 0

    def lookup(self, user: bytes) -> Record | None:
        self.lookups += 1
        h = self.users.get(user)
        return None if h is None else Record(h, groups=self.group_map.get(user))

    def generation(self) -> int:
        return self.gen


def users() -> dict[bytes, str]:
    return {b"alice": hashes.hash_password(PASSWORD, "bcrypt", cost=4),
            b"bob": hashes.hash_password(b"bobpw", "apr1")}


def test_two_caches_share_grants_through_redis(tier: RedisTier) -> None:
    """Two caches with their own per-process tiers (as two Apache children): one verification serves both."""
    a_store, b_store = Store(users(), {b"alice": (b"staff",)}), Store(users(), {b"alice": (b"staff",)})
    a = cached(a_store, redis=tier, key=KEY)
    b = cached(b_store, redis=tier, key=KEY)
    b.authenticate(b"nobody", b"x")  # b starts serving first (a first request retires older shared entries)
    assert a.check_password({}, "alice", PASSWORD.decode()) is True
    decision = b.authenticate(b"alice", PASSWORD)
    assert decision.granted and decision.reason == "cached (shared)" and decision.groups == (b"staff",)
    assert b_store.lookups == 1  # only the "nobody" look-up: alice's grant came from Redis
    assert b.check_password({}, "alice", "wrong") is False  # a shared grant is for that password only
    assert b.stats()["shared_hits"] == 1


def test_a_generation_change_in_one_process_retires_shared_entries(tier: RedisTier) -> None:
    a_store, b_store = Store(users()), Store(users())
    a = cached(a_store, redis=tier, key=KEY)
    b = cached(b_store, redis=tier, key=KEY)
    a.authenticate(b"x", b"x")
    b.authenticate(b"x", b"x")
    assert a.authenticate(b"alice", PASSWORD).granted
    # the file changes; process b reloads first
    for s in (a_store, b_store):
        s.users[b"alice"] = hashes.hash_password(b"new", "apr1")
    b_store.gen += 1
    assert not b.authenticate(b"alice", PASSWORD).granted
    # a third process (fresh cache) does not find the old grant either
    c = cached(Store(dict(b_store.users)), redis=tier, key=KEY)
    assert not c.authenticate(b"alice", PASSWORD).granted


def test_entries_not_written_with_the_key_are_ignored(tier: RedisTier, raw: redis.Redis) -> None:
    store = Store(users())
    a = cached(store, redis=tier, key=KEY)
    a.authenticate(b"x", b"x")
    assert a.authenticate(b"alice", PASSWORD).granted
    (entry_key,) = [k for k in raw.keys(tier.prefix + ":cache:*") if not k.endswith(b":epoch")]
    forged = cached(Store(users()), redis=tier, key=b"another key of 16+ bytes")
    assert forged.authenticate(b"alice", PASSWORD).reason != "cached (shared)"
    # tamper with the stored groups: the MAC no longer matches, so the entry is not used
    value = raw.get(entry_key)
    raw.set(entry_key, value.replace(b'"g":null', b'"g":["61646d696e"]'))
    other = Store(users())
    b = cached(other, redis=tier, key=KEY)
    decision = b.authenticate(b"alice", PASSWORD)
    assert decision.granted and decision.reason != "cached (shared)" and other.lookups == 1


def test_nothing_secret_reaches_redis_and_keys_are_prefixed(tier: RedisTier, raw: redis.Redis) -> None:
    store = Store(users())
    backend = throttled(cached(store, redis=tier, key=KEY), max_failures=3, redis=tier)
    backend.check_password({"REMOTE_ADDR": "192.0.2.5"}, "alice", PASSWORD.decode())
    backend.check_password({"REMOTE_ADDR": "192.0.2.5"}, "alice", "wrong-guess")
    keys = raw.keys("*")
    mine = [k for k in keys if k.startswith(tier.prefix.encode() + b":")]
    assert mine and len(mine) >= 4  # epoch, entry, failure counters
    dump = b"".join(k + (raw.dump(k) or b"") for k in mine)
    for secret in (PASSWORD, b"wrong-guess", store.users[b"alice"].encode(), KEY):
        assert secret not in dump


def test_a_lockout_in_one_process_is_seen_by_another(server: Redis, tier: RedisTier, tmp_path: Path) -> None:
    """Two real processes with the same configuration, as two Apache children (or two web servers)."""
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("alice:" + hashes.hash_password(PASSWORD, "bcrypt", cost=4) + "\n")
    script = textwrap.dedent(f"""
        import sys
        from wsgiauth.backends import htpasswd
        from wsgiauth.cache import cached
        from wsgiauth.throttle import throttled
        backend = throttled(cached(htpasswd.Backend(users={str(htpasswd)!r}), redis={server.url!r}, key={KEY!r},
                                   namespace="e2e"),
                            max_failures=3, per="user", lockout=30, redis={server.url!r}, namespace={tier.prefix!r})
        env = {{"REMOTE_ADDR": "192.0.2.9"}}
        out = []
        for password in sys.argv[1:]:
            out.append(repr(backend.check_password(env, "alice", password)))
            out.append(str(backend.inner.stats()["misses"]))
        print(" ".join(out))
    """)

    def run(*passwords: str) -> list[str]:
        done = subprocess.run([sys.executable, "-c", script, *passwords], capture_output=True, text=True,
                              timeout=60, cwd=ROOT, check=True)
        return done.stdout.split()

    assert run(PASSWORD.decode()) == ["True", "1"]
    assert run("guess1", "guess2", "guess3")[::2] == ["False"] * 3
    # another process: locked out, even with the right password, and it never asked its store
    assert run(PASSWORD.decode()) == ["False", "0"]


def test_counters_are_exact_through_redis_under_concurrency(tier: RedisTier) -> None:
    store = Store(users())
    backend = throttled(store, max_failures=10**6, redis=tier)
    barrier = threading.Barrier(20)

    def work(t: int) -> None:
        barrier.wait()
        for _ in range(25):
            backend.authenticate(b"bob", b"guess", f"10.1.0.{t}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tier.failures == 0
    assert backend.status("bob")["user"]["failures"] == 500
    assert backend.status(client="10.1.0.3")["address"]["failures"] == 25


def test_a_redis_lockout_ends(tier: RedisTier) -> None:
    store = Store(users())
    backend = throttled(store, max_failures=2, lockout=0.3, growth=1, per="user", redis=tier)
    backend.authenticate(b"bob", b"guess")
    backend.authenticate(b"bob", b"guess")
    assert not backend.authenticate(b"bob", b"bobpw").granted
    wait_until(lambda: backend.authenticate(b"bob", b"bobpw").granted, timeout=5, what="the lockout to end")


def test_redis_stopped_mid_run_keeps_serving_from_the_local_tier(
        server: Redis, tier: RedisTier, caplog: pytest.LogCaptureFixture) -> None:
    store = Store(users())
    backend = throttled(cached(store, redis=tier, key=KEY), max_failures=3, per="user", redis=tier)
    env = {"REMOTE_ADDR": "192.0.2.10"}
    assert backend.check_password(env, "alice", PASSWORD.decode()) is True
    with caplog.at_level(logging.WARNING, logger="wsgiauth.redis"):
        server.stop()
        started = time.monotonic()
        answers = [backend.check_password(env, "alice", PASSWORD.decode()) for _ in range(50)]
        elapsed = time.monotonic() - started
        assert answers == [True] * 50  # from the per-process tier
        assert backend.check_password(env, "bob", "bobpw") is True  # a miss goes to the store
        assert store.lookups == 2
        assert elapsed < 2.0  # no timeouts stacked per request
        for _ in range(3):  # the throttle counts locally meanwhile
            backend.check_password(env, "bob", "guess")
        assert backend.check_password(env, "bob", "bobpw") is False
        down = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(down) == 1  # logged once, not per request
        server.start()
        # the throttle asks Redis on every request: after retry_after it finds it again
        wait_until(lambda: backend.check_password(env, "alice", PASSWORD.decode()) is True and not tier._down,
                   timeout=5, what="the tier to come back")
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    assert backend.check_password(env, "alice", PASSWORD.decode()) is True


def test_a_dead_redis_at_start_costs_nothing_per_request(caplog: pytest.LogCaptureFixture) -> None:
    from backends._common import free_port

    tier = RedisTier(f"redis://127.0.0.1:{free_port()}/0", retry_after=60)
    store = Store(users())
    backend = throttled(cached(store, redis=tier, key=KEY), redis=tier)
    with caplog.at_level(logging.WARNING, logger="wsgiauth.redis"):
        for _ in range(20):
            assert backend.check_password({"REMOTE_ADDR": "192.0.2.1"}, "bob", "bobpw") is True
    assert store.lookups == 1
    assert tier.failures == 1 and tier.skipped > 20
    assert sum("unreachable" in r.getMessage() for r in caplog.records) == 1


def test_the_client_is_recreated_after_fork(tier: RedisTier) -> None:
    parent = tier.client()
    parent.ping()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            child = tier.client()
            ok = child is not parent and child.ping()
            os.write(w, repr(bool(ok)).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        answer = f.read()
    os.waitpid(pid, 0)
    assert answer == "True"
    assert tier.client() is parent and parent.ping()


def test_get_tier_finds_the_same_tier_again(server: Redis) -> None:
    a = get_tier(server.url, prefix="reg", socket_timeout=0.25)
    assert get_tier(server.url, prefix="reg", socket_timeout=0.25) is a
    assert get_tier(server.url, prefix="other") is not a


def test_a_password_in_the_url_is_not_logged() -> None:
    tier = RedisTier("redis://user:hunter2@127.0.0.1:1/0")
    assert "hunter2" not in repr(tier)


def test_a_hung_redis_costs_one_bounded_timeout_then_nothing(server: Redis, tier: RedisTier) -> None:
    """A Redis that accepts but never answers (SIGSTOP): the read timeout bounds the first request, the back-off
    spares the following ones."""
    import signal

    store = Store(users())
    backend = throttled(cached(store, redis=tier, key=KEY), redis=tier)
    env = {"REMOTE_ADDR": "192.0.2.11"}
    assert backend.check_password(env, "bob", "bobpw") is True
    assert server.proc is not None
    tier.retry_after = 60
    server.proc.send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        assert backend.check_password(env, "bob", "bobpw") is True
        first = time.monotonic() - t0
        t0 = time.monotonic()
        for _ in range(20):
            assert backend.check_password(env, "bob", "bobpw") is True
        rest = time.monotonic() - t0
    finally:
        server.proc.send_signal(signal.SIGCONT)
    assert first < 1.5  # socket_timeout 0.3 s (no retry on a timeout), not redis-py's default 5 s or more
    assert rest < 0.5
    assert tier.failures == 1


# ---------------------------------------------------------------------------------------------------- issue 15
# Finding 12: shared lockouts are mirrored and honoured through an outage; finding 13: the epoch cannot go back.


@pytest.mark.parametrize("outage", ["stopped", "hung", "out-of-connections"])
def test_shared_lockouts_are_honoured_through_a_redis_outage(server: Redis, request: pytest.FixtureRequest,
                                                             outage: str) -> None:
    """Two processes (their own per-process tiers): a lockout started in one and read by the other survives Redis
    going away in both, and counting goes on locally from the shared count."""
    import signal

    if not server.proc or server.proc.poll() is not None:
        server.start()
    prefix = "o" + str(abs(hash(request.node.name)))
    tier = RedisTier(server.url, prefix=prefix, retry_after=0.2, max_connections=1)

    def process() -> Any:
        return throttled(Store(users()), max_failures=3, lockout=2.5, growth=1, per="user", redis=tier)

    a, b = process(), process()
    for _ in range(3):
        a.authenticate(b"alice", b"guess")
    locked_at = time.monotonic()
    assert not b.authenticate(b"alice", PASSWORD).granted  # b reads the lockout from Redis
    for _ in range(2):
        a.authenticate(b"bob", b"guess")  # two of bob's three failures, counted in Redis
    assert a.status("bob")["user"]["failures"] == 2

    held = None
    if outage == "stopped":
        server.stop()
    elif outage == "hung":
        assert server.proc is not None
        server.proc.send_signal(signal.SIGSTOP)
    else:
        held = tier.client().connection_pool.get_connection()  # redis-py's only connection: MaxConnectionsError
    try:
        for p in (a, b):
            decision = p.authenticate(b"alice", PASSWORD)
            assert not decision.granted and "locked out" in decision.reason
        assert tier.failures >= 1  # Redis really was out of reach
        if outage == "stopped":  # refused until the lockout ends, then granted again
            wait_until(lambda: b.authenticate(b"alice", PASSWORD).granted, timeout=10, what="the lockout to end")
            assert time.monotonic() - locked_at > 2.0
        a.authenticate(b"bob", b"guess")  # the third failure: a goes on from the shared count of two
        assert not a.authenticate(b"bob", b"bobpw").granted
        assert b.authenticate(b"bob", b"bobpw").granted  # b saw none of bob's failures...
        for _ in range(3):
            b.authenticate(b"bob", b"guess")  # ...and counts fresh guesses itself
        assert not b.authenticate(b"bob", b"bobpw").granted
    finally:
        if outage == "hung":
            assert server.proc is not None
            server.proc.send_signal(signal.SIGCONT)
        if held is not None:
            tier.client().connection_pool.release(held)
        if outage == "stopped":
            server.start()
    # Redis is back (empty, after a restart): the lockouts the processes started meanwhile are written back, and a
    # process that never saw them finds them there
    for p in (a, b):
        wait_until(lambda p=p: p.authenticate(b"nobody", b"x") is not None and not tier._down, timeout=5,
                   what="the tier to come back")
    assert not process().authenticate(b"bob", b"bobpw").granted
    # the shared state rules again: a release made in a third process reaches both
    process().release(b"bob")
    assert a.authenticate(b"bob", b"bobpw").granted and b.authenticate(b"bob", b"bobpw").granted


class NoChangeSignal(Store):
    """An SQL/LDAP-like store: no generation() of its own, so a cache in front of it never bumps the epoch."""

    generation = Backend.generation  # type: ignore[assignment]


@pytest.mark.parametrize("replay", [False, True], ids=["epoch-set-back", "epoch-set-back-and-entry-replayed"])
def test_a_rolled_back_epoch_does_not_bring_an_old_password_back(tier: RedisTier, raw: redis.Redis,
                                                                 replay: bool) -> None:
    store = Store(users())
    a = cached(store, redis=tier, key=KEY)
    a.authenticate(b"x", b"x")  # a starts serving (that bumps the epoch)
    assert a.authenticate(b"alice", PASSWORD).granted
    epoch_key = tier.key("cache", a.namespace, "epoch")
    (entry_key,) = [k for k in raw.keys(tier.prefix + ":cache:*") if k != epoch_key.encode()]
    old_epoch, old_entry = raw.get(epoch_key), raw.get(entry_key)
    # alice's password changes; process a reloads its store, which retires the shared entries
    store.users[b"alice"] = hashes.hash_password(b"new-pw", "apr1")
    store.gen += 1
    assert not a.authenticate(b"alice", PASSWORD).granted
    new_epoch = int(raw.get(epoch_key) or 0)
    assert new_epoch > int(old_epoch or 0)
    # a process that only read the epoch (its store has no change signal, so it never bumps it)
    c = cached(NoChangeSignal(dict(store.users)), redis=tier, key=KEY, namespace=a.namespace)
    assert c.authenticate(b"bob", b"bobpw").granted
    # someone with write access to Redis (not to the key) sets the epoch back, and replays the old grant
    raw.set(epoch_key, old_epoch or b"0")
    if replay:
        raw.set(entry_key, old_entry or b"", px=60_000)
    for p in (a, c):
        decision = p.authenticate(b"alice", PASSWORD)
        assert not decision.granted and decision.reason != "cached (shared)"
    assert int(raw.get(epoch_key) or 0) >= new_epoch  # and the epoch was put back
    assert a.authenticate(b"alice", b"new-pw").granted  # the tier goes on serving the new password
    assert c.authenticate(b"alice", b"new-pw").reason == "cached (shared)"


def test_a_shared_cache_hit_of_a_locked_account_is_refused(tier: RedisTier) -> None:
    """The shared entry keeps the account the store resolved, so that a process which never saw the name still
    refuses a locked account's cached grant."""

    class Named(Store):
        def lookup(self, user: bytes) -> Record | None:
            found = super().lookup(user)
            return None if found is None else Record(found.hash, name=b"uid=" + user + b",ou=people")

    def process() -> Any:
        return throttled(cached(Named(users()), redis=tier, key=KEY), max_failures=3, per="user", redis=tier)

    a, b = process(), process()
    a.authenticate(b"x", b"x")
    b.authenticate(b"x", b"x")
    assert a.authenticate(b"alice", PASSWORD).granted
    for _ in range(3):
        b.authenticate(b"alice", b"guess")  # counted under uid=alice,ou=people
    fresh = process()
    decision = fresh.authenticate(b"alice", PASSWORD)
    assert not decision.granted and "locked out" in decision.reason
