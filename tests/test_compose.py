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
        if self.down:
            raise BackendError(f"{self.label} unreachable")
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


def test_a_failed_member_is_skipped_only_with_the_opt_in():
    down = Store("ldap", {}, down=True)
    local = Store("file", {b"alice": Record(H)})
    c = chain(down, local, on_member_error="next")
    assert c.check_password(env(), "alice", "pw") is True
    e = env()
    assert c.check_password(e, "ghost", "pw") is None
    assert "ldap unreachable" in e["wsgi.errors"].getvalue()
    with pytest.raises(BackendError):
        chain(down, local, on_error="raise", on_member_error="next").check_password(env(), "ghost", "pw")


# ------------------------------------------------------------------ a failing member ends the chain (issue 15, F1)

OLD = hashes.hash_password(b"old-pw", "apr1")  # a password the directory no longer accepts


@pytest.mark.parametrize("member_on_error", ["unknown", "deny", "raise"])
def test_a_failing_member_never_lets_a_later_member_decide(member_on_error):
    """Apache's `AuthBasicProvider ldap file` stops at AUTH_GENERAL_ERROR: a stale file never grants the old password."""
    down = Store("ldap", {}, down=True)
    down.on_error = member_on_error
    stale = Store("file", {b"alice": Record(OLD)}, {b"alice": [b"staff"]})
    c = chain(down, stale)
    e = env()
    answer = c.check_password(e, "alice", "old-pw")
    assert answer is not True
    assert answer is (False if member_on_error == "deny" else None)
    log = e["wsgi.errors"].getvalue()
    assert "ldap unreachable" in log and "granted" not in log and "old-pw" not in log
    if member_on_error == "deny":
        assert ("failed: MemberFailedError: ldap failed (BackendError: ldap unreachable); its on_error 'deny' ends "
                "the chain") in log
    # the chain's own on_error says what a failure of the chain becomes at the hook
    assert chain(down, stale, on_error="deny").check_password(env(), "alice", "old-pw") is False
    if member_on_error != "deny":
        with pytest.raises(BackendError, match="ldap unreachable"):
            chain(down, stale, on_error="raise").check_password(env(), "alice", "old-pw")
    # the same for Digest and groups: nothing from the member after the failing one
    assert c.groups_for_user(env(), "alice") == []


def test_an_outage_of_a_deny_member_is_not_counted_as_failed_logins():
    """A member that fails with on_error="deny" raises (MemberFailedError) rather than answering "denied", so a
    throttle above the chain does not lock out the users who log in during the outage."""
    from wsgiauth import throttled

    down = Store("ldap", {}, down=True)
    down.on_error = "deny"
    stale = Store("file", {b"alice": Record(OLD)})
    t = throttled(chain(down, stale), max_failures=2)
    for _ in range(5):
        assert t.check_password(env(), "alice", "old-pw") is False
    assert t.status(user=b"alice")["user"] == {"failures": 0, "locked": 0.0}


def test_opting_in_to_fallthrough_grants_what_the_later_member_holds():
    down = Store("ldap", {}, down=True)
    down.on_error = "deny"
    stale = Store("file", {b"alice": Record(OLD)}, {b"alice": [b"staff"]})
    c = chain(down, stale, on_member_error="next")
    assert c.check_password(env(), "alice", "old-pw") is True  # the documented risk of the opt-in
    assert c.groups_for_user(env(), "alice") == ["staff"]
    with pytest.raises(ValueError, match="on_member_error"):
        chain(down, stale, on_member_error="skip")  # type: ignore[arg-type]


class DigestStore(Backend):
    def __init__(self, label, ha1=None, down=False, on_error="unknown"):
        super().__init__(label=label, on_error=on_error)
        self.ha1, self.down, self.asked = ha1, down, 0

    def realm_hash(self, user, realm):
        self.asked += 1
        if self.down:
            raise BackendError(f"{self.label} unreachable")
        return self.ha1


@pytest.mark.parametrize("member_on_error", ["unknown", "deny", "raise"])
def test_realm_hash_stops_at_a_failing_member(member_on_error):
    down = DigestStore("ldap", down=True, on_error=member_on_error)
    stale = DigestStore("file", ha1="0" * 32)
    assert chain(down, stale).get_realm_hash(env(), "alice", "realm") is None
    assert stale.asked == 0
    if member_on_error != "deny":
        with pytest.raises(BackendError):
            chain(down, stale, on_error="raise").get_realm_hash(env(), "alice", "realm")
    assert chain(down, stale, on_member_error="next").get_realm_hash(env(), "alice", "realm") == "0" * 32


class Counting(Store):
    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.dummies = 0

    def dummy_authenticate(self, user, password):
        self.dummies += 1
        super().dummy_authenticate(user, password)


def test_dummy_check_does_the_work_of_a_real_one_up_to_the_failure():
    down = Counting("ldap", {}, down=True)
    after = Counting("file", {b"alice": Record(OLD)})
    chain(down, after).dummy_authenticate(b"alice", b"x")  # never raises: a dummy decides nothing
    assert (down.dummies, after.dummies) == (1, 0)  # authenticate stops at ldap too
    chain(down, after, on_member_error="next").dummy_authenticate(b"alice", b"x")
    assert (down.dummies, after.dummies) == (2, 1)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_stopped_slapd_never_lets_a_stale_file_grant(slapd, tmp_path):
    """The real thing: ldap.Backend(on_error="deny") on a slapd that is stopped, then an htpasswd file with the old
    password of alice (the directory's password is "secret")."""
    from backends.apache import htpasswd_line
    from wsgiauth.backends import htpasswd, ldap

    users = tmp_path / "users"
    users.write_bytes(htpasswd_line("alice", "old-pw", "-m"))
    directory = ldap.Backend(f"{slapd.url}/{slapd.people}?uid?sub", bind_dn=slapd.service_dn,
                             bind_password=slapd.service_pw, connect_timeout=1.0, timeout=2.0, on_error="deny",
                             label="corp")
    stale = htpasswd.Backend(users=str(users), label="local")
    strict = chain(directory, stale)
    try:
        assert strict.check_password(env(), "alice", "secret") is True
        assert strict.check_password(env(), "alice", "old-pw") is False  # the directory knows alice: it decides
        slapd.stop()
        try:
            for password in ("old-pw", "secret"):
                e = env()
                assert strict.check_password(e, "alice", password) is False
                assert "MemberFailedError: corp failed (BackendUnavailableError" in e["wsgi.errors"].getvalue()
            lenient = chain(directory, stale, on_member_error="next")
            assert lenient.check_password(env(), "alice", "old-pw") is True  # what the opt-in means
        finally:
            slapd.start()
    finally:
        directory.close()


def test_the_same_through_a_configuration_file(tmp_path):
    """`[backends.NAME] type = "chain"`: a failing member stops the chain unless `on_member_error = "next"`. The
    failing member is a real LDAP backend on a loopback port where nothing listens."""
    from backends._common import free_port
    from backends.apache import htpasswd_line
    from wsgiauth import load

    (tmp_path / "users").write_bytes(htpasswd_line("alice", "old-pw", "-m"))
    site = """\
        backend = "everyone"
        [backends.corp]
        type = "ldap"
        url = "ldap://127.0.0.1:{port}/ou=people,dc=example,dc=org?uid"
        on_error = "deny"
        connect_timeout = 0.5
        [backends.local]
        type = "htpasswd"
        users = "users"
        [backends.everyone]
        type = "chain"
        members = ["corp", "local"]
        {extra}
        """
    port = free_port()
    for name, extra, expected in (("strict.toml", "", False), ("lenient.toml", 'on_member_error = "next"', True)):
        path = tmp_path / name
        path.write_text("\n".join(line.strip() for line in site.format(port=port, extra=extra).splitlines()))
        cfg = load(path)
        try:
            e = env()
            assert cfg.hooks()[0](e, "alice", "old-pw") is expected, e["wsgi.errors"].getvalue()
        finally:
            cfg.close()


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
