"""The mod_wsgi contract (design.md §2), applied once by the adapter for every backend."""

from __future__ import annotations

import io
from collections.abc import Sequence

import pytest

from wsgiauth import hashes
from wsgiauth.adapter import Backend, Decision, Outcome, Record, group_names, name_for_apache
from wsgiauth.exceptions import BackendError

# htpasswd -nbm alice secret (any apr1 hash of "secret" will do; made once with Debian's htpasswd 2.4)
APR1_SECRET = hashes.hash_password(b"secret", "apr1")


class DictBackend(Backend):
    """A store in a dict: user bytes -> Record."""

    def __init__(self, records: dict[bytes, Record], groups: dict[bytes, list[bytes]] | None = None, **kw):
        super().__init__(label="dict", **kw)
        self.records = records
        self.group_map = groups or {}
        self.lookups: list[bytes] = []

    def lookup(self, user: bytes) -> Record | None:
        self.lookups.append(user)
        return self.records.get(user)

    def groups(self, user: bytes) -> Sequence[bytes] | None:
        return self.group_map.get(user)

    def realm_hash(self, user: bytes, realm: bytes) -> str | None:
        if user in self.records:
            return hashes.ha1(user, realm, b"secret").upper()  # stores may hold upper-case hex
        return None


class Exploding(Backend):
    def authenticate(self, user, password, client=None):
        raise BackendError("server down")

    def groups(self, user):
        raise BackendError("server down")

    def realm_hash(self, user, realm):
        raise RuntimeError("bug")


def env() -> dict:
    return {"wsgi.errors": io.StringIO(), "REMOTE_ADDR": "127.0.0.1"}


def latin1(raw: bytes) -> str:
    """What mod_wsgi passes: the raw request bytes decoded as latin-1."""
    return raw.decode("latin-1")


@pytest.fixture
def backend() -> DictBackend:
    return DictBackend(
        {
            b"alice": Record(APR1_SECRET),
            "zoë".encode(): Record(APR1_SECRET),
            b"bob": Record(APR1_SECRET, name=b"Bob"),
            b"carol": Record(APR1_SECRET, active=False),
            b"dave": Record("$apr1$broken"),
            b"erin": Record(APR1_SECRET, name="Érin".encode()),
        },
        groups={b"alice": [b"staff", b"Staff", b"admins", b""], "zoë".encode(): ["grüne".encode()]},
    )


def test_check_password_returns_exactly_true_false_none(backend):
    e = env()
    assert backend.check_password(e, "alice", "secret") is True
    assert backend.check_password(e, "alice", "wrong") is False
    assert backend.check_password(e, "nobody", "secret") is None


def test_utf8_name_arrives_latin1_decoded_and_matches_raw_bytes(backend):
    assert backend.check_password(env(), latin1("zoë".encode()), "secret") is True
    # the same name sent as latin-1 bytes is a different user
    assert backend.check_password(env(), "zoë", "secret") is None


def test_canonical_name_is_returned_as_utf8_text(backend):
    assert backend.check_password(env(), "bob", "secret") == "Bob"
    # mod_wsgi encodes the returned str as UTF-8: REMOTE_USER gets the stored bytes
    result = backend.check_password(env(), "erin", "secret")
    assert isinstance(result, str) and result.encode("utf-8") == "Érin".encode()


def test_never_returns_empty_or_unencodable_names():
    assert name_for_apache(b"") is None
    assert name_for_apache(b"a\x00b") is None
    assert name_for_apache(b"\xff\xfe") is None
    b = DictBackend({b"x": Record(APR1_SECRET, name=b"")})
    assert b.check_password(env(), "x", "secret") is True


def test_disabled_account_is_unknown_and_still_costs_a_verification(backend, monkeypatch):
    calls = []
    real = hashes.verify
    monkeypatch.setattr(hashes, "verify", lambda p, h, **k: calls.append(h) or real(p, h, **k))
    assert backend.check_password(env(), "carol", "secret") is None
    assert calls, "a disabled account must cost a real verification"


def test_unknown_user_costs_a_dummy_verification(backend, monkeypatch):
    seen = []
    monkeypatch.setattr(hashes, "dummy_verify", lambda p, like: seen.append(like))
    backend.check_password(env(), "alice", "secret")
    backend.check_password(env(), "ghost", "secret")
    assert seen == [APR1_SECRET], "the dummy must be modelled on the store's own hashes"


def test_malformed_stored_hash_denies_and_logs(backend):
    e = env()
    assert backend.check_password(e, "dave", "secret") is False
    assert "dave" in e["wsgi.errors"].getvalue()


def test_groups_are_a_list_of_str_never_a_bare_string(backend):
    groups = backend.groups_for_user(env(), "alice")
    assert groups == ["staff", "admins"]  # case-insensitive duplicates and empty names dropped
    assert backend.groups_for_user(env(), "nobody") == []
    utf8 = backend.groups_for_user(env(), latin1("zoë".encode()))
    assert [g.encode("latin-1") for g in utf8] == ["grüne".encode()]
    assert group_names("admins") == ["admins"]


def test_realm_hash_is_lowercase_hex(backend):
    ha1 = backend.get_realm_hash(env(), "alice", "realm")
    assert ha1 == hashes.ha1(b"alice", b"realm", b"secret")
    assert ha1 == ha1.lower() and len(ha1) == 32
    assert backend.get_realm_hash(env(), "nobody", "realm") is None


def test_backend_failure_becomes_configured_outcome_and_never_logs_password():
    e = env()
    b = Exploding(label="boom")
    assert b.check_password(e, "alice", "hunter2-secret") is None
    log = e["wsgi.errors"].getvalue()
    assert "alice" in log and "server down" in log and "hunter2-secret" not in log
    assert b.groups_for_user(env(), "alice") == []
    assert b.get_realm_hash(env(), "alice", "r") is None
    assert Exploding(on_error="deny").check_password(env(), "alice", "x") is False
    with pytest.raises(BackendError):
        Exploding(on_error="raise").check_password(env(), "alice", "x")


def test_passwords_never_reach_the_log_even_at_debug(backend):
    e = env()
    b = DictBackend(backend.records, log_level="debug")
    for pw in ("secret", "wrong-pw-123"):
        b.check_password(e, "alice", pw)
    b.check_password(e, "ghost", "ghost-pw-456")
    log = e["wsgi.errors"].getvalue()
    assert "granted" in log and "denied" in log and "unknown" in log
    for secret in ("secret", "wrong-pw-123", "ghost-pw-456", APR1_SECRET):
        assert secret not in log.replace("wsgiauth", "")


def test_control_characters_in_names_are_escaped_in_logs():
    e = env()
    b = DictBackend({}, log_level="debug")
    b.check_password(e, "evil\nwsgiauth: granted", "x")
    assert "\n" not in e["wsgi.errors"].getvalue().rstrip("\n")


def test_allow_access_without_rules_makes_no_decision(backend):
    assert backend.allow_access(env(), "127.0.0.1") is None


def test_hooks_tuple(backend):
    cp, rh, gfu, aa = backend.hooks()
    assert cp(env(), "alice", "secret") is True
    assert gfu(env(), "alice") == ["staff", "admins"]


def test_authenticate_decision_fields(backend):
    d = backend.authenticate(b"bob", b"secret", "10.0.0.1")
    assert d == Decision(Outcome.GRANTED, name=b"Bob", backend="dict", identity=b"Bob")
    wrong = backend.authenticate(b"bob", b"nope")
    assert wrong.outcome is Outcome.DENIED and wrong.identity == b"Bob"  # the account the store resolved
    assert backend.authenticate(b"nobody", b"nope").identity is None


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="on_error"):
        Backend(on_error="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="log_level"):
        Backend(log_level="loud")


def test_plaintext_only_when_the_store_enables_it():
    b = DictBackend({b"p": Record("clear-text-pw")})
    assert b.check_password(env(), "p", "clear-text-pw") is False  # Apache on Linux refuses plaintext
    b.allow_plaintext = True
    assert b.check_password(env(), "p", "clear-text-pw") is True
    assert b.check_password(env(), "p", "other") is False


def test_unknown_and_wrong_password_are_logged_at_the_same_level(backend):
    # The log line costs the same for both: at the default level ("warning") both are written.
    e1, e2 = env(), env()
    backend.check_password(e1, "alice", "wrong")
    backend.check_password(e2, "ghost", "wrong")
    assert "denied" in e1["wsgi.errors"].getvalue()
    assert "unknown" in e2["wsgi.errors"].getvalue()


def test_dummy_authenticate_does_the_lookup_and_a_like_verification_but_decides_nothing(backend, monkeypatch):
    seen = []
    monkeypatch.setattr(hashes, "dummy_verify", lambda p, like: seen.append(like))
    before = len(backend.lookups)
    assert backend.dummy_authenticate(b"alice", b"secret") is None
    assert len(backend.lookups) == before + 1 and seen == [APR1_SECRET]


def test_malformed_stored_hash_still_costs_a_verification(backend, monkeypatch):
    seen = []
    monkeypatch.setattr(hashes, "dummy_verify", lambda p, like: seen.append(like))
    assert backend.check_password(env(), "dave", "secret") is False
    assert len(seen) == 1


def test_shared_registry_allows_a_factory_to_register_what_it_builds_on():
    from wsgiauth.adapter import shared

    def outer():
        inner = shared(("test", "inner", id(outer)), lambda: object())
        return ("outer", inner)

    first = shared(("test", "outer", id(outer)), outer)
    assert shared(("test", "outer", id(outer)), outer) is first  # found again, as after a script re-import


def test_record_and_decision_are_immutable_values() -> None:
    """Plain classes (no dataclasses import in an auth script), with the value semantics of frozen dataclasses."""
    import pickle

    d = Decision(Outcome.GRANTED, name=b"Bob", backend="dict")
    assert d == Decision(Outcome.GRANTED, b"Bob", None, "dict", "")
    assert d != Decision(Outcome.DENIED, name=b"Bob", backend="dict")
    assert d != (Outcome.GRANTED, b"Bob", None, "dict", "")
    assert hash(d) == hash(Decision(Outcome.GRANTED, name=b"Bob", backend="dict"))
    assert repr(d) == "Decision(outcome=<Outcome.GRANTED: 'granted'>, name=b'Bob', groups=None, backend='dict', reason='', identity=None)"
    with pytest.raises(AttributeError):
        d.reason = "changed"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del d.name
    changed = d.replace(reason="locked out")
    assert (changed.reason, changed.name, d.reason) == ("locked out", b"Bob", "")
    assert pickle.loads(pickle.dumps(d)) == d

    r = Record("{SHA}x")
    assert (r.name, r.groups, r.active, r.attributes) == (None, None, True, {})
    assert Record("{SHA}x") == r and Record("{SHA}y") != r
    assert Record("{SHA}x").attributes is not r.attributes  # a fresh dict each time, as default_factory=dict
    with pytest.raises(AttributeError):
        r.hash = "{SHA}y"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(Record("h", b"n", (b"g",), False, {"k": "v"}))) == Record(
        "h", b"n", (b"g",), False, {"k": "v"})


@pytest.mark.parametrize("stored", ["sha1$Xy7qSALT$8f3c2b1a", "$sha1$40000$Xy7qSALT$8f3c2b1aDEADBEEF",
                                    "md5$Xy7qSALT$8f3c2b1a", "$argon2d$v=19$m=512,t=2,p=2$Xy7qSALT$8f3c2b1a"])
def test_an_unusable_stored_hash_is_logged_by_family_only(stored):
    """Issue 15, F14: the log names the scheme family, never the hash's salt or first characters."""
    b = DictBackend({b"eve": Record(stored)})
    e = env()
    assert b.check_password(e, "eve", "guess") is False
    log = e["wsgi.errors"].getvalue()
    assert "unsupported hash scheme" in log
    assert "Xy7q" not in log and "8f3c" not in log and stored not in log
