"""chain() behaves like `AuthBasicProvider a b`; canonicalize() sets the REMOTE_USER Apache records."""

from __future__ import annotations

import io

import pytest

from wsgiauth import hashes
from wsgiauth.adapter import Backend, Record
from wsgiauth.compose import canonicalize, chain
from wsgiauth.exceptions import BackendError

H = hashes.hash_password(b"pw", "apr1")
H2 = hashes.hash_password(b"pw2", "apr1")


class Store(Backend):
    def __init__(self, label, records, groups=None, down=False):
        super().__init__(label=label)
        self.records, self.group_map, self.down = records, groups or {}, down

    def lookup(self, user):
        if self.down:
            raise BackendError(f"{self.label} unreachable")
        return self.records.get(user)

    def groups(self, user):
        return self.group_map.get(user)


def env():
    return {"wsgi.errors": io.StringIO()}


def test_unknown_falls_through_and_first_known_decides():
    a = Store("a", {b"alice": Record(H)}, {b"alice": [b"ga"]})
    b = Store("b", {b"alice": Record(H2), b"bob": Record(H2)}, {b"alice": [b"gb"]})
    c = chain(a, b)
    assert c.check_password(env(), "alice", "pw") is True
    assert c.check_password(env(), "alice", "pw2") is False  # a knows alice: its "denied" stops the chain
    assert c.check_password(env(), "bob", "pw2") is True
    assert c.check_password(env(), "nobody", "pw") is None
    assert c.groups_for_user(env(), "alice") == ["ga", "gb"]
    assert c.authenticate(b"bob", b"pw2").backend == "b"


def test_a_failed_member_is_skipped_but_not_hidden():
    down = Store("ldap", {}, down=True)
    local = Store("file", {b"alice": Record(H)})
    c = chain(down, local)
    assert c.check_password(env(), "alice", "pw") is True
    e = env()
    assert c.check_password(e, "ghost", "pw") is None
    assert "ldap unreachable" in e["wsgi.errors"].getvalue()
    with pytest.raises(BackendError):
        chain(down, local, on_error="raise").check_password(env(), "ghost", "pw")


def test_chain_needs_backends():
    with pytest.raises(ValueError):
        chain()
    with pytest.raises(TypeError):
        chain(object())  # type: ignore[arg-type]


def test_canonical_name_becomes_remote_user():
    store = Store("file", {b"alice": Record(H)}, {b"alice": [b"staff"]})
    c = canonicalize(store, lower=True, strip_domain=True)
    assert c.check_password(env(), "Alice@EXAMPLE.ORG", "pw") == "alice"
    assert c.check_password(env(), "EXAMPLE\\ALICE", "pw") == "alice"
    assert c.check_password(env(), "alice", "pw") is True
    assert c.check_password(env(), "Alice", "bad") is False
    assert c.groups_for_user(env(), "ALICE") == ["staff"]


def test_canonical_function_on_utf8_text():
    store = Store("file", {"zoë".encode(): Record(H)})
    c = canonicalize(store, func=lambda s: s.lower())
    result = c.check_password(env(), "ZOË".encode().decode("latin-1"), "pw")
    assert result == "zoë"  # mod_wsgi encodes it as UTF-8: the stored bytes
