"""The LDAP backend against a real throw-away slapd (backends/slapd.py; one server for the whole module).

The directory is backends/data/slapd/seed.ldif: users alice, bob, Carol (stored case), zoë (UTF-8), dave (in a chain of
nested groups), eve (in a cycle of groups), mallory (disabled: employeeType=disabled), admin, two "twin" entries;
groups of every kind (groupOfNames/member, groupOfUniqueNames/uniqueMember, posixGroup/memberUid, nested, memberOf
from the memberof overlay).
"""

from __future__ import annotations

import hashlib
import os
import random
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
    DNs alike, as mod_authnz_ldap sees too: " ALICE" is alice. Apache records the stored name, not what was typed:
    the entry's own value of the search attribute, or of remote_user_attribute."""
    for kw in ({}, {"bind_template": f"uid={{user}},{slapd.people}"}):
        assert make(**kw).check_password(ENV, " ALICE ", "secret") == "alice"
        assert make(remote_user_attribute="uid", **kw).check_password(ENV, " ALICE ", "secret") == "alice"
        assert make(remote_user_attribute="cn", **kw).check_password(ENV, " ALICE ", "secret") == "Alice Liddell"


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


# ---------------------------------------------------------------------- names: canonical name, identity, user_key

ALICE_DN = b"uid=alice,ou=people,dc=example,dc=org"
# Spellings of alice, and whether slapd (OpenLDAP 2.5/2.6, uid is caseIgnoreMatch) matches each to uid=alice: measured
# by the test below against the real server, so this table is what slapd does, not what RFC 4518 says it should.
SPELLINGS: dict[str, bool] = {
    "alice": True,
    "Alice": True,
    "ALICE": True,
    "ａｌｉｃｅ": True,  # fullwidth: NFKC
    "ＡＬＩＣＥ": True,
    "ALİCE": True,  # U+0130, folded to "i" by slapd (RFC 3454's B.2 would give "i" + U+0307)
    "alİce": True,
    "\xa0alice": True,  # NO-BREAK SPACE at the start: insignificant
    "alice\xa0": True,
    " alice ": True,
    "\u2003alice": True,  # EM SPACE
    "\u3000alice": True,  # IDEOGRAPHIC SPACE
    "ａlice": True,
    "alice\u202f": True,  # NARROW NO-BREAK SPACE
    "\U0001d41alice": True,  # MATHEMATICAL BOLD SMALL A: NFKC
    "\u24d0lice": True,  # CIRCLED LATIN SMALL LETTER A: NFKC
    "ALICE\t": False,  # a tab: RFC 4518 maps it to SPACE, slapd keeps it
    "\u1680alice": False,  # OGHAM SPACE MARK: the same
    "al\xadice": False,  # SOFT HYPHEN: RFC 4518 maps it to nothing, slapd keeps it
    "al\u200bice": False,  # ZERO WIDTH SPACE: the same
    "alıce": False,  # dotless i is another letter
    "ALI\u0307CE": False,  # I + COMBINING DOT ABOVE is not U+0130 for slapd
    "al ice": False,  # an inner space is significant
    "álice": False,
}


def test_user_key_is_one_key_for_every_spelling_of_alice(backend: ldap.Backend) -> None:
    """What a throttle counts an unknown name under: LDAP's matching (RFC 4518), not the bytes typed. The names come
    as UTF-8 bytes, as a browser sends them."""
    key = backend.user_key(b"alice")
    assert key == b"alice"
    for spelling in ("Alice", "ALICE", "ａｌｉｃｅ", "ALİCE", "\xa0alice"):
        assert backend.user_key(spelling.encode("utf-8")) == key, spelling
    for spelling, matched in SPELLINGS.items():
        if matched:
            assert backend.user_key(spelling.encode("utf-8")) == key, spelling
    assert backend.user_key(b"bob") != key
    assert backend.user_key(b"al ice") == b"al ice" and backend.user_key(b"al  ice") == b"al ice"
    assert backend.user_key("zoë".encode()) == backend.user_key("ZOE\u0308".encode()) == "zoë".encode()
    assert backend.user_key(b"zo\xeb") == b"zo\xeb"  # not UTF-8: as it is (no entry can hold it)
    assert isinstance(backend.user_key(b""), bytes)


def test_every_spelling_slapd_matches_gets_the_same_identity(backend: ldap.Backend) -> None:
    """Measured against slapd: every spelling that logs in as alice yields her DN as the identity, in the grant and
    in a wrong-password denial alike, with the same user_key; those slapd keeps apart are unknown."""
    measured = {}
    for spelling in SPELLINGS:
        raw = spelling.encode("utf-8")
        right = backend.authenticate(raw, b"secret")
        wrong = backend.authenticate(raw, b"not-the-password")
        measured[spelling] = right.granted
        if right.granted:
            assert right.identity == wrong.identity == ALICE_DN, spelling
            assert wrong.outcome is Outcome.DENIED
            assert right.name == b"alice"  # the stored value, whatever was typed
            assert backend.user_key(raw) == backend.user_key(b"alice"), spelling
        else:
            assert right.outcome is wrong.outcome is Outcome.UNKNOWN, spelling
            assert right.identity is wrong.identity is None
    assert measured == SPELLINGS


def _variants(rng: random.Random, n: int) -> list[str]:
    """Spellings of "alice" a guesser might try: per letter upper/lower case, fullwidth, mathematical and circled
    forms; spaces of several kinds at the ends; now and then an ignorable character or a space inside."""
    forms: list[Callable[[str], str]] = [
        str.upper, str.lower, lambda c: chr(ord(c) - ord("a") + 0xFF41), lambda c: chr(ord(c) - ord("a") + 0xFF21),
        lambda c: chr(ord(c) - ord("a") + 0x1D41A), lambda c: chr(ord(c) - ord("a") + 0x24D0),
        lambda c: "\u0130" if c == "i" else c.upper(),
    ]
    spaces = ["", "", " ", "\xa0", "\u2003", "\u3000", "\u202f", "\t", "\u1680", "\u2028"]
    inside = [""] * 20 + ["\xad", "\u200b", "\u200d", "\ufe0f", "\u034f", "\u2060", " "]
    out = []
    for _ in range(n):
        core = "".join(rng.choice(forms)(c) + rng.choice(inside) for c in "alice")
        out.append(rng.choice(spaces) + core + rng.choice(spaces))
    return out


def test_user_key_agrees_with_slapd_on_random_spellings(backend: ldap.Backend) -> None:
    """A seeded sample of spellings: every one that slapd matches to alice has alice's user_key (the throttle's key
    never splits what the directory joins)."""
    rng = random.Random(4518)
    matched = 0
    for spelling in _variants(rng, 150):
        raw = spelling.encode("utf-8")
        decision = backend.authenticate(raw, b"secret")
        if decision.granted:
            matched += 1
            assert decision.identity == ALICE_DN
            assert backend.user_key(raw) == b"alice", ascii(spelling)
    assert matched >= 20  # enough of the sample reaches alice for the check to mean something


def test_a_throttle_counts_every_spelling_of_alice_as_alice(make: Callable[..., ldap.Backend]) -> None:
    """Finding 2 end to end, on slapd: wrong guesses under spellings the directory matches to alice (each its own
    raw bytes) lock alice; the right password is then refused in every spelling; bob is not locked. Unknown names
    are counted under their user_key, so spellings of one unknown name share a counter too."""
    from wsgiauth.throttle import throttled

    backend = throttled(make(), max_failures=5, per="user")
    for n, spelling in enumerate(["Alice", "ALICE", "ａｌｉｃｅ", "ALİCE", "\xa0alice"]):
        assert backend.lockouts == 0, n
        answer = backend.check_password(ENV, w(spelling), "a-wrong-guess")
        assert answer is not True and not isinstance(answer, str)
    assert backend.lockouts == 1  # the fifth spelling of alice locked her
    for spelling in ("alice", "ａｌｉｃｅ", "AlIcE", "\u3000alice"):
        assert backend.check_password(ENV, w(spelling), "secret") is False, spelling
    assert backend.check_password(ENV, "bob", "hunter2") is True
    for spelling in ("nobody", "NOBODY", "ｎｏｂｏｄｙ", "Nobody", "\xa0nobody"):
        backend.check_password(ENV, w(spelling), "x")
    assert backend.lockouts == 2
    assert backend.refusal("ＮＯＢＯＤＹ".encode()) is not None


def test_canonical_name_is_the_entrys_own_value_by_default(make: Callable[..., ldap.Backend],
                                                            slapd: slapd_launcher.Slapd) -> None:
    """REMOTE_USER is the stored uid, never the spelling a guesser chose (ａｌｉｃｅ, ALICE)."""
    for kw in ({}, {"bind_template": f"uid={{user}},{slapd.people}"}):
        b = make(**kw)
        assert b.check_password(ENV, "alice", "secret") is True  # as stored: True
        assert b.check_password(ENV, "ALICE", "secret") == "alice"
        assert b.check_password(ENV, w("ａｌｉｃｅ"), "secret") == "alice"
        assert b.check_password(ENV, w("\xa0alice"), "secret") == "alice"
        assert b.check_password(ENV, "carol", "Carol.pw") == "Carol"
        assert b.check_password(ENV, w("ZOË"), w("ünïcødé")) == "zoë"
        assert b.check_password(ENV, "ALICE", "wrong") is False


def test_several_values_of_the_search_attribute(make: Callable[..., ldap.Backend],
                                                slapd: slapd_launcher.Slapd) -> None:
    """An entry with two uid values: the canonical name is the value the typed name matched."""
    slapd.add_ldif(f"dn: uid=duo,{slapd.people}\nobjectClass: inetOrgPerson\nuid: duo\nuid: Duo-Alias\ncn: Duo\n"
                   f"sn: Duo\nuserPassword: duo.pw\n")
    b = make()
    assert b.check_password(ENV, "DUO", "duo.pw") == "duo"
    assert b.check_password(ENV, "duo-alias", "duo.pw") == "Duo-Alias"
    assert b.authenticate(b"duo", b"duo.pw").identity == b.authenticate(b"DUO-ALIAS", b"x").identity == \
        f"uid=duo,{slapd.people}".encode()


def test_identity_is_the_dn_of_the_one_entry_found(make: Callable[..., ldap.Backend], backend: ldap.Backend,
                                                   slapd: slapd_launcher.Slapd) -> None:
    assert backend.authenticate(b"Carol", b"Carol.pw").identity == f"uid=Carol,{slapd.people}".encode()
    assert backend.authenticate(b"CAROL", b"wrong").identity == f"uid=Carol,{slapd.people}".encode()
    assert backend.authenticate(b"nobody", b"secret").identity is None
    assert backend.authenticate(b"mallory", b"disabled.pw").identity is None  # excluded by the filter: no entry
    whole = make(f"{slapd.url}/{slapd.suffix}")
    assert whole.authenticate(b"twin", b"twin.pw").identity is None  # two entries: none of them
    direct = make(bind_template=f"uid={{user}},{slapd.people}")
    assert direct.authenticate(b"ALICE", b"secret").identity == ALICE_DN
    assert direct.authenticate(b"ALICE", b"wrong").identity is None  # the server says only "invalid credentials"


@pytest.fixture(scope="module")
def slapd_limit_1(launch: Callable[..., Any]) -> slapd_launcher.Slapd:
    """A slapd whose size limit is 1: a search that matches two entries returns one, then sizeLimitExceeded."""
    server: slapd_launcher.Slapd = launch(slapd_launcher.Slapd, size_limit=1)
    return server


def test_uniqueness_does_not_depend_on_the_servers_size_limit(slapd_limit_1: slapd_launcher.Slapd) -> None:
    """twin has an entry in ou=people and one in ou=contractors. With sizelimit 1 the server returns one of them
    and resultCode 4: ambiguous, refused like two entries, after the same dummy bind."""
    s = slapd_limit_1
    b = ldap.Backend(f"{s.url}/{s.suffix}?uid?sub?(objectClass=inetOrgPerson)", bind_dn=s.service_dn,
                     bind_password=s.service_pw, connect_timeout=1.0, timeout=2.0)
    try:
        assert b.check_password(ENV, "alice", "secret") is True  # one match: within the limit
        before = b.stats()
        decision = b.authenticate(b"twin", b"twin.pw")
        after = b.stats()
        assert decision.outcome is Outcome.UNKNOWN and "size limit" in decision.reason
        assert decision.identity is None
        assert b.check_password(ENV, "twin", "twin.pw") is None
        # the same work as a wrong password: one search and one (dummy) bind
        assert [after[p]["checkouts"] - before[p]["checkouts"] for p in ("search", "bind")] == [1, 1]
    finally:
        b.close()


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


def test_idle_connections_pass_the_who_am_i_check(make: Callable[..., ldap.Backend]) -> None:
    """check_after=0: every checkout validates the connection with a Who-am-I, read by the strict decoder: slapd's
    real answers pass, so no connection is dropped and reopened."""
    b = make(check_after=0)
    for _ in range(5):
        assert b.check_password(ENV, "alice", "secret") is True
        assert b.groups_for_user(ENV, "alice")
    for pool in b.stats().values():
        assert pool["checks_failed"] == 0 and pool["opened"] == 1


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
