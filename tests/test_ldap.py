"""The LDAP backend against a real throw-away slapd (backends/slapd.py; one server for the whole module).

The directory is backends/data/slapd/seed.ldif: users alice, bob, Carol (stored case), zoë (UTF-8), dave (in a chain of
nested groups), eve (in a cycle of groups), mallory (disabled: employeeType=disabled), admin, two "twin" entries;
groups of every kind (groupOfNames/member, groupOfUniqueNames/uniqueMember, posixGroup/memberUid, nested, memberOf
from the memberof overlay).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backends import slapd as slapd_launcher
from wsgiauth._ldapurl import Host, parse_ldap_url
from wsgiauth.adapter import Outcome
from wsgiauth.backends import ldap
from wsgiauth.exceptions import BackendError, BackendUnavailableError, ConfigError

ENV: dict[str, Any] = {"REMOTE_ADDR": "127.0.0.1"}

# ldap3 checks the certificate's host name with ssl.match_hostname (its own copy on Python >= 3.12)
pytestmark = pytest.mark.filterwarnings("ignore:ssl.match_hostname:DeprecationWarning")


def w(text: str) -> str:
    """What mod_wsgi hands the hooks for a UTF-8 name or password: the raw bytes decoded as latin-1."""
    return text.encode("utf-8").decode("latin-1")


# ---------------------------------------------------------------------- the AuthLDAPURL parser (no server)


def test_url_defaults_are_mod_authnz_ldaps() -> None:
    u = parse_ldap_url("ldap://ldap.example.org/dc=example,dc=org")
    assert (u.scheme, u.hosts, u.base_dn, u.attribute, u.scope, u.filter) == (
        "ldap", (Host("ldap.example.org", 389),), "dc=example,dc=org", "uid", "sub", "(objectClass=*)")


def test_url_several_hosts_ports_and_parts() -> None:
    u = parse_ldap_url("ldaps://ldap1.example.org ldap2.example.org:1636 [::1]:7636/ou=People,dc=x?"
                       "sAMAccountName,mail?one?objectClass=person")
    assert u.use_ssl
    assert u.hosts == (Host("ldap1.example.org", 636), Host("ldap2.example.org", 1636), Host("::1", 7636))
    assert u.attribute == "sAMAccountName"  # only the first of a list is searched, as in Apache
    assert u.scope == "one"
    assert u.filter == "(objectClass=person)"  # parentheses added, as mod_authnz_ldap does


def test_url_percent_decoding() -> None:
    u = parse_ldap_url("ldap://h/ou=a%20b,dc=x?cn??(%26(objectClass=person)(!(title=x)))")
    assert u.base_dn == "ou=a b,dc=x"
    assert u.attribute == "cn" and u.scope == "sub"
    assert u.filter == "(&(objectClass=person)(!(title=x)))"


@pytest.mark.parametrize("url", [
    "http://h/dc=x", "ldap:///dc=x", "ldap://h/dc=x?uid?subtree", "ldap://h/dc=x?u id", "ldap://h:99999/dc=x",
    "ldap://h/dc=x?uid?sub?(a=b", "ldap://h/dc=x?uid?sub?(a=b)(c=d)", "ldap://h/dc=x?uid?sub?(a=b)?ext",
])
def test_url_errors_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_ldap_url(url)


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="URL"):
        ldap.Backend()
    with pytest.raises(ConfigError, match="bind_password"):
        ldap.Backend("ldap://127.0.0.1/dc=x", bind_dn="cn=svc,dc=x")
    with pytest.raises(ConfigError, match="exclude"):
        ldap.Backend("ldaps://127.0.0.1/dc=x", starttls=True)
    with pytest.raises(ConfigError, match="user"):
        ldap.Backend("ldap://127.0.0.1/dc=x", bind_template="uid=x,dc=x")
    with pytest.raises(ConfigError, match="ca_file"):
        ldap.Backend("ldaps://127.0.0.1/dc=x", ca_file="/nonexistent/ca.pem")


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def make(slapd: slapd_launcher.Slapd) -> Iterator[Callable[..., ldap.Backend]]:
    """Build backends on the module's slapd: the URL of ou=people with the active filter, the service account."""
    made: list[ldap.Backend] = []

    def factory(url: str | None = None, **kw: Any) -> ldap.Backend:
        kw.setdefault("bind_dn", slapd.service_dn)
        kw.setdefault("bind_password", slapd.service_pw)
        kw.setdefault("group_base", slapd.groups)
        kw.setdefault("connect_timeout", 1.0)
        kw.setdefault("timeout", 2.0)
        if kw["bind_dn"] is None:
            kw.pop("bind_password")
        backend = ldap.Backend(url or f"{slapd.url}/{slapd.people}?uid?sub?{slapd.active_filter}", **kw)
        made.append(backend)
        return backend

    yield factory
    for b in made:
        b.close()


@pytest.fixture(scope="module")
def backend(make: Callable[..., ldap.Backend]) -> ldap.Backend:
    return make()


# ---------------------------------------------------------------------- passwords


def test_right_wrong_unknown(backend: ldap.Backend) -> None:
    assert backend.check_password(ENV, "alice", "secret") is True
    assert backend.check_password(ENV, "bob", "hunter2") is True
    assert backend.check_password(ENV, "alice", "hunter2") is False
    assert backend.check_password(ENV, "alice", "Secret") is False
    assert backend.check_password(ENV, "nobody", "secret") is None


def test_utf8_name_and_password(backend: ldap.Backend) -> None:
    assert backend.check_password(ENV, w("zoë"), w("ünïcødé")) is True
    assert backend.check_password(ENV, w("zoë"), "unicode") is False
    # the same name in latin-1 bytes is another (unknown) name, not zoë
    assert backend.check_password(ENV, "zoë", w("ünïcødé")) is None


def test_invalid_utf8_name_is_unknown_after_equal_work(backend: ldap.Backend) -> None:
    before = backend.stats()
    assert backend.check_password(ENV, b"zo\xeb".decode("latin-1"), "secret") is None
    after = backend.stats()
    assert after["search"]["checkouts"] == before["search"]["checkouts"] + 1
    assert after["bind"]["checkouts"] == before["bind"]["checkouts"] + 1


def test_unknown_and_wrong_cost_the_same_round_trips(backend: ldap.Backend) -> None:
    """An unknown user costs a search and a (dummy) bind, exactly as a wrong password does."""
    costs = []
    for user, password in (("alice", "wrong"), ("nobody", "wrong")):
        before = backend.stats()
        backend.authenticate(user.encode(), password.encode())
        after = backend.stats()
        costs.append(tuple(after[p]["checkouts"] - before[p]["checkouts"] for p in ("search", "bind")))
    assert costs[0] == costs[1] == (1, 1)


def test_empty_password_is_denied_before_any_bind(backend: ldap.Backend) -> None:
    before = backend.stats()
    assert backend.check_password(ENV, "alice", "") is False
    assert backend.check_password(ENV, "nobody", "") is False
    after = backend.stats()
    assert after["bind"]["checkouts"] == before["bind"]["checkouts"]
    assert after["search"]["checkouts"] == before["search"]["checkouts"]


def test_disabled_account_is_excluded_by_the_filter(make: Callable[..., ldap.Backend],
                                                   slapd: slapd_launcher.Slapd) -> None:
    active = make()
    assert active.check_password(ENV, "mallory", "disabled.pw") is None
    assert active.groups_for_user(ENV, "mallory") == []
    everyone = make(f"{slapd.url}/{slapd.people}")  # no filter: the password itself is right
    assert everyone.check_password(ENV, "mallory", "disabled.pw") is True


def test_canonical_name_from_attribute(make: Callable[..., ldap.Backend]) -> None:
    b = make(remote_user_attribute="uid")
    assert b.check_password(ENV, "carol", "Carol.pw") == "Carol"
    assert b.check_password(ENV, "CAROL", "Carol.pw") == "Carol"
    assert b.check_password(ENV, "Carol", "Carol.pw") is True  # same as typed: True
    assert b.check_password(ENV, "ALICE", "secret") == "alice"
    assert b.check_password(ENV, "carol", "wrong") is False
    cn = make(remote_user_attribute="cn")
    assert cn.check_password(ENV, w("zoë"), w("ünïcødé")) == "Zoë Ørsted"


def test_several_matching_entries_are_unknown(make: Callable[..., ldap.Backend], slapd: slapd_launcher.Slapd) -> None:
    whole = make(f"{slapd.url}/{slapd.suffix}")  # twin exists in ou=people and in ou=contractors
    assert whole.check_password(ENV, "twin", "twin.pw") is None
    people = make(f"{slapd.url}/{slapd.people}")
    assert people.check_password(ENV, "twin", "twin.pw") is True


INJECTIONS = ["*", "a*", "*e", ")(uid=*", "*)(uid=*))(|(uid=*", "\\", "alice\\", "alice\x00", "\x00",
              "admin)(|(uid=*", "alice)(|(objectClass=*", "(uid=alice)", "alice*", "al\\2a", "al\\69ce", ""]


@pytest.mark.parametrize("user", INJECTIONS)
def test_ldap_injection_never_matches_anyone(make: Callable[..., ldap.Backend], slapd: slapd_launcher.Slapd,
                                             user: str) -> None:
    b = make(f"{slapd.url}/{slapd.suffix}")
    for password in ("secret", "hunter2", "admin.pw", "Carol.pw", "x"):
        assert b.check_password(ENV, user, password) is None, (user, password)
    assert b.groups_for_user(ENV, user) == []
    assert b.authenticate(user.encode(), b"secret").outcome is Outcome.UNKNOWN


@pytest.mark.parametrize("user", ["alice,ou=people,dc=example,dc=org", "*", "alice+cn=x", "alice\x00", "",
                                  "uid=alice", "alice\\", "#alice", "al*"])
def test_dn_template_injection_never_binds_as_anyone(make: Callable[..., ldap.Backend], slapd: slapd_launcher.Slapd,
                                                     user: str) -> None:
    b = make(bind_template=f"uid={{user}},{slapd.people}")
    assert b.check_password(ENV, user, "secret") is not True


def test_ldap_matching_ignores_case_and_outer_spaces_so_use_the_canonical_name(
        make: Callable[..., ldap.Backend], slapd: slapd_launcher.Slapd) -> None:
    """LDAP compares uid values case-insensitively and ignores surrounding spaces (RFC 4518), in searches and in
    DNs alike, as mod_authnz_ldap sees too: " ALICE" is alice. remote_user_attribute makes Apache record the stored
    name instead of what was typed."""
    for kw in ({}, {"bind_template": f"uid={{user}},{slapd.people}"}):
        assert make(**kw).check_password(ENV, " ALICE ", "secret") is True
        assert make(remote_user_attribute="uid", **kw).check_password(ENV, " ALICE ", "secret") == "alice"


def test_direct_bind_from_template(make: Callable[..., ldap.Backend], slapd: slapd_launcher.Slapd) -> None:
    b = make(bind_template=f"uid={{user}},{slapd.people}", bind_dn=None)
    assert b.check_password(ENV, "alice", "secret") is True
    assert b.check_password(ENV, "alice", "wrong") is False
    assert b.check_password(ENV, "nobody", "secret") is False  # a direct bind cannot tell unknown from wrong
    assert b.check_password(ENV, w("zoë"), w("ünïcødé")) is True
    # the filter still applies after the bind: the disabled account is refused
    assert b.check_password(ENV, "mallory", "disabled.pw") is None
    c = make(bind_template=f"uid={{user}},{slapd.people}", remote_user_attribute="uid")
    assert c.check_password(ENV, "carol", "Carol.pw") == "Carol"


def test_anonymous_search(make: Callable[..., ldap.Backend]) -> None:
    b = make(bind_dn=None)
    assert b.check_password(ENV, "alice", "secret") is True
    assert b.check_password(ENV, "alice", "nope") is False
    assert b.check_password(ENV, "nobody", "secret") is None


def test_wrong_service_password_is_a_clear_error(make: Callable[..., ldap.Backend], slapd: slapd_launcher.Slapd,
                                                 ) -> None:
    b = make(bind_password="not-the-password")
    with pytest.raises(BackendError, match=r"service account .*cannot bind.*check bind_dn and bind_password"):
        b.authenticate(b"alice", b"secret")
    assert b.check_password(ENV, "alice", "secret") is None
    assert make(bind_password="not-the-password", on_error="deny").check_password(ENV, "alice", "secret") is False


def test_keyword_configuration_without_url(slapd: slapd_launcher.Slapd) -> None:
    b = ldap.Backend(hosts=[f"127.0.0.1:{slapd.tls_port}"], use_ssl=True, ca_file=slapd.ca_file,
                    base_dn=slapd.people, attribute="cn", scope="one", filter=slapd.active_filter,
                    bind_dn=slapd.service_dn, bind_password=slapd.service_pw)
    try:
        assert b.check_password(ENV, "Alice Liddell", "secret") is True  # searched by cn
        assert b.check_password(ENV, "alice", "secret") is None
        assert repr(b).startswith(f"<ldap.Backend 'ldap' ldaps://127.0.0.1:{slapd.tls_port}/{slapd.people}?cn?one?")
        assert slapd.service_pw not in repr(b)
    finally:
        b.close()


def test_several_servers_are_tried_in_order(make: Callable[..., ldap.Backend], slapd: slapd_launcher.Slapd) -> None:
    from backends._common import free_port

    dead = free_port()  # nothing listens there: refused at once
    b = make(f"ldap://127.0.0.1:{dead} 127.0.0.1:{slapd.port}/{slapd.people}")
    t = time.monotonic()
    assert b.check_password(ENV, "alice", "secret") is True
    assert time.monotonic() - t < 1.5


# ---------------------------------------------------------------------- groups


def groups(b: ldap.Backend, user: str) -> set[str]:
    found = b.groups_for_user(ENV, w(user))
    assert isinstance(found, list) and all(isinstance(g, str) for g in found)
    return set(found)


def test_every_group_style(backend: ldap.Backend) -> None:
    # alice: devs (member DN), unixusers (memberUid name), staff (nested: staff holds devs)
    assert groups(backend, "alice") == {"devs", "unixusers", "staff"}
    # bob: staff (member DN), ops (uniqueMember DN), unixusers (memberUid)
    assert groups(backend, "bob") == {"staff", "ops", "unixusers"}
    # zoë: ops through a uniqueMember holding her UTF-8 DN (names come back as the raw bytes, latin-1 decoded)
    assert groups(backend, "zoë") == {"ops"}
    # the name as typed in another case finds the same entry
    assert groups(backend, "ALICE") == {"devs", "unixusers", "staff"}
    assert groups(backend, "nobody") == set()


def test_member_of_attribute(make: Callable[..., ldap.Backend]) -> None:
    only = make(group_attributes=(), group_name_attributes=(), member_of_attribute="memberOf")
    assert groups(only, "alice") == {"devs"}  # memberOf (from the overlay) lists direct groupOfNames only
    assert groups(only, "bob") == {"staff"}
    both = make(member_of_attribute="memberOf")
    assert groups(both, "Carol") == {"devs", "staff"}


def test_group_name_attribute(make: Callable[..., ldap.Backend]) -> None:
    b = make(group_name_attribute="gidNumber")
    assert groups(b, "alice") == {"10000"}  # only the posixGroup has a gidNumber


@pytest.mark.parametrize(("depth", "expected"), [
    (0, {"chain3"}), (1, {"chain3", "chain2"}), (2, {"chain3", "chain2", "chain1"}), (10, {"chain3", "chain2", "chain1"}),
])
def test_nested_depth_limit(make: Callable[..., ldap.Backend], depth: int, expected: set[str]) -> None:
    assert groups(make(max_depth=depth), "dave") == expected


def test_group_cycle_terminates(backend: ldap.Backend) -> None:
    t = time.monotonic()
    assert groups(backend, "eve") == {"cycA", "cycB"}
    assert time.monotonic() - t < 2


# ---------------------------------------------------------------------- Digest


def test_digest_from_attribute(make: Callable[..., ldap.Backend], backend: ldap.Backend) -> None:
    b = make(digest_attribute="wsgiauthDigestHA1")
    expected = hashlib.md5(b"alice:ldap realm:secret").hexdigest()  # htdigest's HA1
    assert b.get_realm_hash(ENV, "alice", "ldap realm") == expected
    assert b.get_realm_hash(ENV, "bob", "other realm") == hashlib.md5(b"bob:other realm:hunter2").hexdigest()
    assert b.get_realm_hash(ENV, "bob", "no such realm") is None
    assert b.get_realm_hash(ENV, "Carol", "ldap realm") is None  # no HA1 stored
    assert b.get_realm_hash(ENV, "nobody", "ldap realm") is None
    assert backend.get_realm_hash(ENV, "alice", "ldap realm") is None  # not configured: LDAP has no HA1
    # the attribute is readable by the service account only
    anon = make(digest_attribute="wsgiauthDigestHA1", bind_dn=None)
    assert anon.get_realm_hash(ENV, "alice", "ldap realm") is None


# ---------------------------------------------------------------------- TLS


def test_ldaps_and_starttls(make: Callable[..., ldap.Backend], slapd: slapd_launcher.Slapd) -> None:
    ldaps = make(f"{slapd.ldaps_url}/{slapd.people}", ca_file=slapd.ca_file)
    assert ldaps.check_password(ENV, "alice", "secret") is True
    assert ldaps.check_password(ENV, "alice", "wrong") is False
    assert ldaps.groups_for_user(ENV, "bob")
    starttls = make(f"ldap://localhost:{slapd.port}/{slapd.people}", starttls=True, ca_file=slapd.ca_file)
    assert starttls.check_password(ENV, "bob", "hunter2") is True
    assert starttls.check_password(ENV, "bob", "wrong") is False


def test_wrong_ca_is_a_clear_error_and_never_a_grant(make: Callable[..., ldap.Backend], slapd: slapd_launcher.Slapd,
                                                     tmp_path: Path) -> None:
    other_ca, _, _ = slapd_launcher.make_ca(tmp_path, name="some other CA")
    for b in (make(f"{slapd.ldaps_url}/{slapd.people}", ca_file=other_ca),
              make(f"{slapd.url}/{slapd.people}", starttls=True, ca_file=other_ca)):
        with pytest.raises(BackendUnavailableError, match=r"certificate verification failed.*check ca_file"):
            b.authenticate(b"alice", b"secret")
        assert b.check_password(ENV, "alice", "secret") is None
        assert b.groups_for_user(ENV, "alice") == []


def test_certificate_for_another_host_is_refused(tmp_path: Path) -> None:
    """The right CA, but the certificate names another host: refused (host name checking is on)."""
    with slapd_launcher.Slapd(tmp_path / "other", seed=False, cert_hosts=("ldap.example.invalid",)) as other:
        for b in (ldap.Backend(f"{other.ldaps_url}/{other.suffix}", ca_file=other.ca_file, connect_timeout=1),
                  ldap.Backend(f"{other.url}/{other.suffix}", starttls=True, ca_file=other.ca_file, connect_timeout=1)):
            try:
                with pytest.raises(BackendUnavailableError, match="does not name this host"):
                    b.authenticate(b"alice", b"secret")
                assert b.check_password(ENV, "alice", "secret") is None
            finally:
                b.close()
        # and verify=False (tests only) accepts it
        insecure = ldap.Backend(f"{other.ldaps_url}/{other.suffix}", verify=False)
        try:
            assert insecure.check_password(ENV, "alice", "secret") is None  # no seed: unknown, but connected
            assert insecure.stats()["search"]["opened"] == 1
        finally:
            insecure.close()


def test_no_ca_means_the_system_store_which_refuses_the_test_ca(make: Callable[..., ldap.Backend],
                                                                slapd: slapd_launcher.Slapd) -> None:
    b = make(f"{slapd.ldaps_url}/{slapd.people}")
    with pytest.raises(BackendUnavailableError, match="certificate verification failed"):
        b.authenticate(b"alice", b"secret")


# ---------------------------------------------------------------------- connections, outages, threads, fork


def test_no_connection_growth_over_1000_authentications_and_a_reimport(
        make: Callable[..., ldap.Backend], slapd: slapd_launcher.Slapd) -> None:
    url = f"{slapd.url}/{slapd.people}?uid?sub?{slapd.active_filter}"
    b = make(url, pool_size=2)
    assert b.check_password(ENV, "alice", "secret") is True
    assert b.check_password(ENV, "nobody", "secret") is None
    baseline = slapd.connections()
    for i in range(1000):
        user, password, expected = [("alice", "secret", True), ("alice", "x", False), ("nobody", "x", None),
                                    ("bob", "hunter2", True)][i % 4]
        assert b.check_password(ENV, user, password) is expected
    assert slapd.connections() == baseline
    # mod_wsgi re-imports a changed script without cleaning up: the new backend finds the same pools
    again = ldap.Backend(url, bind_dn=slapd.service_dn, bind_password=slapd.service_pw, group_base=slapd.groups,
                        connect_timeout=1.0, timeout=2.0, pool_size=2)
    for _ in range(50):
        assert again.check_password(ENV, "alice", "secret") is True
        assert again.groups_for_user(ENV, "alice")
    assert slapd.connections() == baseline
    stats = again.stats()
    assert stats["search"]["opened"] <= 2 and stats["bind"]["opened"] <= 2


def test_threads_share_bounded_pools(make: Callable[..., ldap.Backend], slapd: slapd_launcher.Slapd) -> None:
    b = make(pool_size=3, breaker_threshold=0)
    results: list[object] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        user, password = [("alice", "secret"), ("bob", "hunter2"), ("Carol", "Carol.pw")][n % 3]
        for _ in range(40):
            r = (b.check_password(ENV, user, password), b.check_password(ENV, user, "bad"))
            with lock:
                results.append(r)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 320 and set(results) == {(True, False)}
    s = b.stats()
    assert s["search"]["opened"] <= 3 and s["bind"]["opened"] <= 3


def test_fork_child_opens_its_own_connections(backend: ldap.Backend) -> None:
    assert backend.check_password(ENV, "alice", "secret") is True
    parent_opened = backend.stats()["bind"]["opened"]
    pid = os.fork()
    if pid == 0:  # child: must not touch the parent's sockets, must work on its own
        code = 1
        try:
            ok = backend.check_password(ENV, "bob", "hunter2") is True and \
                backend.check_password(ENV, "bob", "x") is False
            code = 0 if ok and backend.stats()["bind"]["opened"] == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert backend.check_password(ENV, "alice", "secret") is True  # the parent's connections still work
    assert backend.stats()["bind"]["opened"] == parent_opened


def test_outage_fails_fast_and_recovers_after_restart(make: Callable[..., ldap.Backend],
                                                      slapd: slapd_launcher.Slapd) -> None:
    b = make(connect_timeout=1.0, timeout=2.0, breaker_threshold=3, breaker_reset=0.5)
    assert b.check_password(ENV, "alice", "secret") is True
    # a restart kills the pooled connections: the next request retries once on a fresh one, unnoticed
    slapd.restart()
    assert b.check_password(ENV, "alice", "secret") is True
    assert b.check_password(ENV, "alice", "wrong") is False
    slapd.stop()
    try:
        for _ in range(5):
            t = time.monotonic()
            assert b.check_password(ENV, "alice", "secret") is None  # unknown, never a grant
            assert b.groups_for_user(ENV, "alice") == []
            assert time.monotonic() - t < 3.0  # within the timeouts, not a hung thread
        assert b.stats()["search"]["breaker_open"] == 1
    finally:
        slapd.start()
    deadline = time.monotonic() + 5
    while b.check_password(ENV, "alice", "secret") is not True:
        assert time.monotonic() < deadline, "no recovery within 5 s of the restart"
        time.sleep(0.1)
    assert b.check_password(ENV, "alice", "wrong") is False


def test_hung_server_fails_within_the_timeout(make: Callable[..., ldap.Backend], slapd: slapd_launcher.Slapd) -> None:
    """A server that accepts connections but never answers (SIGSTOP) costs at most the receive timeout per try."""
    b = make(connect_timeout=1.0, timeout=1.0, breaker_threshold=2, breaker_reset=0.5)
    assert b.check_password(ENV, "alice", "secret") is True
    slapd.pause()
    try:
        t = time.monotonic()
        assert b.check_password(ENV, "alice", "secret") is None  # a timeout, a retry, a timeout: unknown
        first = time.monotonic() - t
        t = time.monotonic()
        assert b.check_password(ENV, "alice", "secret") is None  # the breaker is open now: at once
        second = time.monotonic() - t
    finally:
        slapd.resume()
    assert 0.9 < first < 3.5, first
    assert second < 0.5, second  # the open breaker answers at once
    deadline = time.monotonic() + 5
    while b.check_password(ENV, "alice", "secret") is not True:
        assert time.monotonic() < deadline, "no recovery within 5 s of resuming"
        time.sleep(0.1)


@pytest.mark.parametrize("reply", [b"", b"HTTP/1.0 400 Bad Request\r\n\r\n", b"\x30\x84\xff\xff\xff\xff", b"\x30\x05\x02"])
def test_a_server_that_does_not_speak_ldap_is_a_clean_unknown(reply: bytes) -> None:
    """Garbage, a truncated or absurdly long BER message, or a closed socket: unknown within the timeout."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            try:
                conn.recv(4096)
                conn.sendall(reply)
            except OSError:
                pass
            finally:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    b = ldap.Backend(f"ldap://127.0.0.1:{port}/dc=example,dc=org", connect_timeout=1, timeout=1, breaker_threshold=0)
    try:
        t = time.monotonic()
        assert b.check_password(ENV, "alice", "secret") is None
        assert b.groups_for_user(ENV, "alice") == []
        assert time.monotonic() - t < 5
    finally:
        b.close()
        stop.set()
        thread.join()
        listener.close()
