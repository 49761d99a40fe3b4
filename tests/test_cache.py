"""The per-process verification cache (wsgiauth.cache): hits cost no hash, grants only, invalidation, LRU, threads,
fork."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Sequence

import pytest

from backends._common import require_tool
from wsgiauth import hashes
from wsgiauth.adapter import Backend, Record
from wsgiauth.backends import dbm, htpasswd
from wsgiauth.cache import Cached, cached
from wsgiauth.exceptions import ConfigError

ENV = {"REMOTE_ADDR": "192.0.2.1"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Store(Backend):
    """An in-memory store that counts look-ups; ``changes`` makes it behave like a file store (generation)."""

    label = "store"

    def __init__(self, users: dict[bytes, str], *, groups: dict[bytes, list[bytes]] | None = None,
                 tracks_changes: bool = True, names: dict[bytes, bytes] | None = None) -> None:
        super().__init__()
        self.users = dict(users)
        self.group_map = groups or {}
        self.names = names or {}
        self.lookups = 0
        self.group_calls = 0
        self.realm_calls = 0
        self.gen = 0
        self.tracks_changes = tracks_changes

    def lookup(self, user: bytes) -> Record | None:
        self.lookups += 1
        h = self.users.get(user)
        if h is None:
            return None
        return Record(h, name=self.names.get(user), groups=tuple(self.group_map.get(user, ())) or None)

    def groups(self, user: bytes) -> Sequence[bytes] | None:
        self.group_calls += 1
        return self.group_map.get(user)

    def realm_hash(self, user: bytes, realm: bytes) -> str | None:
        self.realm_calls += 1
        return hashes.ha1(user, realm, b"pw") if user in self.users else None

    def set_password(self, user: bytes, password: bytes | None) -> None:
        if password is None:
            self.users.pop(user, None)
        else:
            self.users[user] = hashes.hash_password(password, "apr1")
        if self.tracks_changes:
            self.gen += 1


class FileLike(Store):
    def generation(self) -> int:
        return self.gen


@pytest.fixture
def verifies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every real password-hash verification, by hash (the adapter calls wsgiauth.hashes.verify)."""
    calls: list[str] = []
    real = hashes.verify

    def counting(password: bytes, stored: str, **kw: bool) -> bool:
        calls.append(stored)
        return real(password, stored, **kw)

    monkeypatch.setattr(hashes, "verify", counting)
    return calls


def apr1(pw: bytes) -> str:
    return hashes.hash_password(pw, "apr1")


def test_right_password_after_a_cached_success_costs_no_hash(verifies: list[str]) -> None:
    store = FileLike({b"alice": hashes.hash_password(b"secret", "bcrypt", cost=4)})
    backend = cached(store)
    assert backend.check_password(ENV, "alice", "secret") is True
    assert store.lookups == 1 and len(verifies) == 1
    for _ in range(20):
        assert backend.check_password(ENV, "alice", "secret") is True
    assert store.lookups == 1 and len(verifies) == 1
    assert backend.stats()["hits"] == 20


def test_a_wrong_password_goes_to_the_backend_every_time_and_never_blocks_the_right_one(verifies: list[str]) -> None:
    store = FileLike({b"alice": apr1(b"secret")})
    backend = cached(store)
    assert backend.check_password(ENV, "alice", "wrong") is False
    assert backend.check_password(ENV, "alice", "wrong") is False
    assert store.lookups == 2  # no negative cache
    assert backend.check_password(ENV, "alice", "secret") is True
    assert backend.check_password(ENV, "alice", "wrong") is False  # a cached grant does not grant another password
    assert backend.check_password(ENV, "alice", "secret") is True
    assert store.lookups == 4
    assert len(backend) == 1


def test_unknown_users_are_not_cached() -> None:
    store = FileLike({b"alice": apr1(b"secret")})
    backend = cached(store)
    assert backend.check_password(ENV, "bob", "x") is None
    assert backend.check_password(ENV, "bob", "x") is None
    assert store.lookups == 2
    store.set_password(b"bob", b"x")
    assert backend.check_password(ENV, "bob", "x") is True  # a new user works at once


def test_a_cached_grant_is_per_user() -> None:
    store = FileLike({b"alice": apr1(b"same"), b"bob": apr1(b"other")})
    backend = cached(store)
    assert backend.check_password(ENV, "alice", "same") is True
    assert backend.check_password(ENV, "bob", "same") is False


def test_generation_change_invalidates_at_once() -> None:
    store = FileLike({b"alice": apr1(b"old"), b"bob": apr1(b"bob")})
    backend = cached(store)
    assert backend.check_password(ENV, "alice", "old") is True
    assert backend.check_password(ENV, "bob", "bob") is True
    store.set_password(b"alice", b"new")
    assert backend.check_password(ENV, "alice", "old") is False
    assert backend.check_password(ENV, "alice", "new") is True
    store.set_password(b"bob", None)  # deleted
    assert backend.check_password(ENV, "bob", "bob") is None


def test_htpasswd_file_change_is_picked_up_at_once(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "htpasswd")
    with open(path, "w") as f:
        f.write("alice:" + hashes.hash_password(b"old", "bcrypt", cost=4) + "\n")
        f.write("bob:" + apr1(b"bob") + "\n")
    store = htpasswd.Backend(users=path, check_interval=0)
    backend = cached(store)
    assert backend.check_password(ENV, "alice", "old") is True
    assert backend.check_password(ENV, "alice", "old") is True
    assert backend.stats()["hits"] == 1
    with open(path + ".new", "w") as f:
        f.write("alice:" + apr1(b"new") + "\n")
    os.replace(path + ".new", path)
    assert backend.check_password(ENV, "alice", "old") is False
    assert backend.check_password(ENV, "alice", "new") is True
    assert backend.check_password(ENV, "bob", "bob") is None  # deleted in the new file


def test_dbm_change_made_by_htdbm_is_picked_up_at_once(tmp_path: os.PathLike[str]) -> None:
    htdbm = require_tool("htdbm")
    path = os.path.join(tmp_path, "users")
    subprocess.run([htdbm, "-cbB", "-C", "4", "-TDB", path, "alice", "old"], check=True, capture_output=True)
    subprocess.run([htdbm, "-bm", "-TDB", path, "bob", "bob"], check=True, capture_output=True)
    backend = cached(dbm.Backend(path, type="db"))
    assert backend.check_password(ENV, "alice", "old") is True
    assert backend.check_password(ENV, "alice", "old") is True
    assert backend.check_password(ENV, "bob", "bob") is True
    assert backend.stats()["hits"] == 1
    subprocess.run([htdbm, "-bm", "-TDB", path, "alice", "new"], check=True, capture_output=True)  # in place
    assert backend.check_password(ENV, "alice", "old") is False
    assert backend.check_password(ENV, "alice", "new") is True
    subprocess.run([htdbm, "-x", "-TDB", path, "bob"], check=True, capture_output=True)  # deleted
    assert backend.check_password(ENV, "bob", "bob") is None


def test_stores_without_change_signal_follow_within_the_ttl() -> None:
    """SQL/LDAP-like stores: a changed or deleted password keeps working from the cache for at most ttl."""
    clock = Clock()
    store = Store({b"alice": apr1(b"old"), b"bob": apr1(b"bob")}, tracks_changes=False)
    backend = cached(store, ttl=60, clock=clock)
    assert backend.check_password(ENV, "alice", "old") is True
    assert backend.check_password(ENV, "bob", "bob") is True
    store.set_password(b"alice", b"new")
    store.set_password(b"bob", None)
    clock.now += 59
    assert backend.check_password(ENV, "alice", "old") is True  # documented: up to ttl
    assert backend.check_password(ENV, "alice", "new") is True  # the new one works at once (cache miss)
    assert backend.check_password(ENV, "bob", "bob") is True
    clock.now += 2
    assert backend.check_password(ENV, "alice", "old") is False
    assert backend.check_password(ENV, "bob", "bob") is None


def test_invalidate_one_user_or_all() -> None:
    store = Store({b"alice": apr1(b"a"), b"bob": apr1(b"b")}, tracks_changes=False)
    backend = cached(store)
    backend.check_password(ENV, "alice", "a")
    backend.check_password(ENV, "bob", "b")
    store.set_password(b"alice", b"a2")
    store.set_password(b"bob", b"b2")
    backend.invalidate("alice")
    assert backend.check_password(ENV, "alice", "a") is False
    assert backend.check_password(ENV, "bob", "b") is True  # still cached
    backend.invalidate()
    assert backend.check_password(ENV, "bob", "b") is False


def test_invalidation_during_a_verification_wins() -> None:
    """A grant verified against the old content must not be stored after an invalidate() made meanwhile."""

    class Racy(Store):
        cache: Cached | None = None

        def lookup(self, user: bytes) -> Record | None:
            record = super().lookup(user)
            if self.cache is not None:
                self.cache.invalidate(user)
            return record

    store = Racy({b"alice": apr1(b"a")}, tracks_changes=False)
    backend = cached(store)
    store.cache = backend
    assert backend.check_password(ENV, "alice", "a") is True
    assert len(backend) == 0
    store.cache = None
    backend.check_password(ENV, "alice", "a")
    assert len(backend) == 1


def test_bounded_lru() -> None:
    users = {f"u{i}".encode(): apr1(b"pw") for i in range(5)}
    store = FileLike(users)
    backend = cached(store, max_size=3)
    for i in range(4):
        backend.check_password(ENV, f"u{i}", "pw")
    assert len(backend) == 3
    backend.check_password(ENV, "u1", "pw")  # u1 becomes the most recent; u2 is now the oldest
    backend.check_password(ENV, "u4", "pw")  # evicts u2
    before = store.lookups
    backend.check_password(ENV, "u1", "pw")
    backend.check_password(ENV, "u3", "pw")
    assert store.lookups == before
    backend.check_password(ENV, "u2", "pw")
    assert store.lookups == before + 1


def test_expired_entries_go_to_the_backend() -> None:
    clock = Clock()
    store = FileLike({b"alice": apr1(b"a")})
    backend = cached(store, ttl=10, clock=clock)
    backend.check_password(ENV, "alice", "a")
    clock.now += 9.9
    backend.check_password(ENV, "alice", "a")
    assert store.lookups == 1
    clock.now += 0.2
    backend.check_password(ENV, "alice", "a")
    assert store.lookups == 2


def test_nothing_secret_is_kept() -> None:
    password = b"correct horse battery staple"
    stored = hashes.hash_password(password, "apr1")
    store = FileLike({b"alice": stored})
    backend = cached(store)
    backend.check_password(ENV, "alice", password.decode())
    (entry,) = backend._entries.values()
    kept = [getattr(entry, slot) for slot in type(entry).__slots__]
    flat = repr(kept).encode() + b"".join(v for v in kept if isinstance(v, bytes))
    assert password not in flat and stored.encode() not in flat
    assert entry.digest != password and len(entry.digest) == 32
    assert password.decode() not in repr(backend)


def test_canonical_name_groups_and_label_come_from_the_cache() -> None:
    store = FileLike({b"alice": apr1(b"a")}, groups={b"alice": [b"staff", b"ops"]},
                     names={b"alice": b"Alice Liddell"})
    backend = cached(store)
    assert backend.label == "store"
    first = backend.authenticate(b"alice", b"a", "192.0.2.1")
    second = backend.authenticate(b"alice", b"a", "192.0.2.1")
    assert second.reason == "cached" and first.reason != "cached"
    assert (second.name, second.groups, second.backend) == (first.name, first.groups, "store")
    assert backend.check_password(ENV, "alice", "a") == "Alice Liddell"
    # groups that came with the grant answer the group hook without asking the store
    assert backend.groups_for_user(ENV, "alice") == ["staff", "ops"]
    assert store.group_calls == 0


def test_groups_are_cached_and_follow_the_generation() -> None:
    store = FileLike({}, groups={b"bob": [b"dev"]})
    backend = cached(store)
    assert backend.groups_for_user(ENV, "bob") == ["dev"]
    assert backend.groups_for_user(ENV, "bob") == ["dev"]
    assert store.group_calls == 1
    store.group_map[b"bob"] = [b"ops"]
    store.gen += 1
    assert backend.groups_for_user(ENV, "bob") == ["ops"]
    assert backend.groups_for_user(ENV, "nobody") == []
    assert backend.groups_for_user(ENV, "nobody") == []
    assert store.group_calls == 3


def test_realm_hash_is_forwarded_never_cached() -> None:
    store = FileLike({b"alice": apr1(b"pw")})
    backend = cached(store)
    expected = hashes.ha1(b"alice", b"realm", b"pw")
    assert backend.get_realm_hash(ENV, "alice", "realm") == expected
    assert backend.get_realm_hash(ENV, "alice", "realm") == expected
    assert store.realm_calls == 2


def test_many_threads_get_right_answers() -> None:
    users = {f"u{i}".encode(): apr1(f"pw{i}".encode()) for i in range(10)}
    store = FileLike(users)
    backend = cached(store, max_size=5)  # smaller than the working set: evictions under concurrency
    errors: list[str] = []

    def work(t: int) -> None:
        for k in range(200):
            i = (t + k) % 10
            right = backend.check_password(ENV, f"u{i}", f"pw{i}")
            wrong = backend.check_password(ENV, f"u{i}", f"pw{i + 1}") if k % 20 == 0 else False
            if right is not True or wrong is not False:
                errors.append(f"u{i}: {right!r} {wrong!r}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(backend) <= 5


def test_a_forked_child_starts_empty() -> None:
    store = FileLike({b"alice": apr1(b"a")})
    backend = cached(store)
    backend.check_password(ENV, "alice", "a")
    assert len(backend) == 1
    parent_key = backend._key
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            empty = len(backend) == 0
            ok = backend.check_password(ENV, "alice", "a") is True
            new_key = backend._key != parent_key
            os.write(w, f"{empty} {ok} {store.lookups} {new_key}".encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        answer = f.read()
    os.waitpid(pid, 0)
    assert answer == "True True 2 True"  # empty, still right, asked the store again, new random key
    assert len(backend) == 1 and store.lookups == 1  # the parent is untouched


def test_bad_configuration_is_refused() -> None:
    store = FileLike({})
    with pytest.raises(ConfigError):
        cached(store, ttl=0)
    with pytest.raises(ConfigError):
        cached(store, max_size=0)
    with pytest.raises(ConfigError, match="shared secret key"):
        cached(store, redis="redis://127.0.0.1:1/0")
    with pytest.raises(ConfigError, match="16 bytes"):
        cached(store, redis="redis://127.0.0.1:1/0", key="short")
    with pytest.raises(TypeError):
        cached("not a backend")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------- issue 15


def test_invalidate_of_a_unicode_name_reaches_the_utf8_user() -> None:
    """Finding 16: invalidate("zoë") forgets the grant of the user whose browser sent zo\\xc3\\xab."""
    zoe = "zoë".encode()
    store = Store({zoe: apr1(b"old")}, tracks_changes=False)
    backend = cached(store)
    as_mod_wsgi_passes_it = zoe.decode("latin-1")
    assert backend.check_password(ENV, as_mod_wsgi_passes_it, "old") is True
    store.set_password(zoe, b"new")
    backend.invalidate("zoë")
    assert backend.check_password(ENV, as_mod_wsgi_passes_it, "old") is False  # the old password is gone at once
    assert backend.check_password(ENV, as_mod_wsgi_passes_it, "new") is True
    store.set_password(zoe, b"newer")
    backend.invalidate(as_mod_wsgi_passes_it.encode("latin-1"))  # request text: pass its bytes
    assert backend.check_password(ENV, as_mod_wsgi_passes_it, "new") is False


def test_a_cached_grant_keeps_the_account_the_store_resolved() -> None:
    """A throttle in front counts and locks under Decision.identity: a cache hit must carry it too."""
    store = Store({b"alice": apr1(b"a")}, names={b"alice": b"uid=alice,ou=people"}, tracks_changes=False)
    backend = cached(store)
    first = backend.authenticate(b"alice", b"a")
    hit = backend.authenticate(b"alice", b"a")
    assert hit.reason == "cached" and store.lookups == 1
    assert hit.identity == first.identity == b"uid=alice,ou=people"
