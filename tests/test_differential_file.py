"""Differential: Apache's own mod_authn_file / mod_authz_groupfile / mod_auth_digest against wsgiauth.

One Apache serves the same htpasswd, htdigest and htgroup files twice: under ``/native/...`` with Apache's native
providers (``AuthUserFile``, ``AuthGroupFile``, ``Require group``) and under ``/wsgi/...`` through wsgiauth's hooks
(``WSGIAuthUserScript``, ``WSGIAuthGroupScript``, ``Require wsgi-group``). Every row of the table must get the same
status (and, when granted, the same REMOTE_USER) from both, and the status Apache's documentation predicts.

The password files are made by Debian's ``htpasswd`` (every hash type it offers) and ``htdigest``; the quirk rows
(comments, indentation, CRLF, continuation lines, duplicate users, over-long lines, DES and bcrypt truncation,
plain text) come from Apache's file rules (ap_cfg_getline, first match wins).
"""

from __future__ import annotations

import dataclasses

import pytest
import requests
from requests.auth import HTTPDigestAuth

from backends._common import require_tool
from backends.apache import Apache, htdigest_line, htpasswd_line

pytestmark = pytest.mark.apache

REALM = "diff realm"
COLON_REALM = "127.0.0.1:8000"
LONG72 = "x" * 72  # bcrypt (Apache's and everyone's) only uses the first 72 bytes


def _line(user: str, password: str, *flags: str) -> bytes:
    return htpasswd_line(user, password, *flags)


def _split_for_continuation(line: bytes) -> bytes:
    # "user:$apr1$salt$hash" written as "user:$apr1$sa\" + newline + "lt$hash": ap_cfg_getline joins them.
    cut = len(line.rstrip(b"\n")) // 2
    return line[:cut] + b"\\\n" + line[cut:]


def make_htpasswd() -> bytes:
    parts = [
        b"# wsgiauth differential test: made by htpasswd -nb <flags> user password\n",
        b"\n",
        _line("u_md5", "pw-md5", "-m"),
        _line("u_bcrypt", "pw-bcrypt", "-B", "-C", "4"),
        _line("u_sha1", "pw-sha1", "-s"),
        _line("u_crypt", "pw-crypt", "-d"),
        _line("u_sha256", "pw-sha256", "-2"),
        _line("u_sha512", "pw-sha512", "-5"),
        _line("u_sha256r", "pw-sha256r", "-2", "-r", "1000"),
        _line("u_sha512r", "pw-sha512r", "-5", "-r", "1000"),
        _line("u_plain", "pw-plain", "-p"),
        _line("u_bcrypt_long", LONG72 + "A", "-B", "-C", "4"),
        _line("u_crypt_long", "longpass1", "-d"),
        _line("u_empty", "", "-m"),
        _line("zoë", "pw-zoe", "-m"),
        _line("Mixed", "pw-mixed", "-m"),
        b"   " + _line("u_indented", "pw-indented", "-m").rstrip(b"\n") + b"   \n",
        _line("u_crlf", "pw-crlf", "-m").rstrip(b"\n") + b"\r\n",
        _line("u_comment_field", "pw-field", "-m").rstrip(b"\n") + b":a comment after the hash\n",
        b"# u_commented:" + _line("x", "pw-commented", "-m").split(b":", 1)[1],
        _split_for_continuation(_line("u_continued", "pw-continued", "-m")),
        _line("u_dup", "pw-first", "-m"),
        _line("u_dup", "pw-second", "-m"),
        b"u_badhash:$apr1$notvalid\n",
        b"# a line longer than Apache's 8191-byte limit ends the scan:\n",
        b"# " + b"y" * 9000 + b"\n",
        _line("u_after_long", "pw-after", "-m"),
    ]
    return b"".join(parts)


HTGROUP = (
    b"# groups\n"
    b"staff: u_md5 u_bcrypt\n"
    b"admins: u_sha1\n"
    b'staff: "zo\xc3\xab" u_sha512\n'  # a group on two lines is merged; a quoted UTF-8 member
)


def make_htdigest() -> bytes:
    return b"".join([
        htdigest_line("d_alice", REALM, "pw-digest"),
        htdigest_line("d_other", "another realm", "pw-other"),
        htdigest_line("d_bob", REALM, "pw-bob"),
        htdigest_line("d_colon", COLON_REALM, "pw-colon"),
    ])


WSGI_SCRIPT = """\
import os

from wsgiauth.backends import htpasswd

HERE = os.path.dirname(os.path.abspath(__file__))
backend = htpasswd.Backend(users=os.path.join(HERE, "htpasswd"), digest=os.path.join(HERE, "htdigest"),
                           groups=os.path.join(HERE, "htgroup"))
check_password = backend.check_password
get_realm_hash = backend.get_realm_hash
groups_for_user = backend.groups_for_user
"""


def _location(path: str, auth_type: str, provider: str, require: str, extra: str = "", realm: str = REALM) -> str:
    return f"""
<Location {path}>
    AuthType {auth_type}
    AuthName "{realm}"
    Auth{auth_type}Provider {provider}
{extra}    Require {require}
</Location>"""


USERS = '    AuthUserFile "${WSGIAUTH_SITE}/htpasswd"\n'
SCRIPT = '    WSGIAuthUserScript "${WSGIAUTH_SITE}/auth.wsgi"\n'
INCLUDE = "".join([
    _location("/native/basic", "Basic", "file", "valid-user", USERS),
    _location("/wsgi/basic", "Basic", "wsgi", "valid-user", SCRIPT),
    _location("/native/group", "Basic", "file", "group staff", USERS + '    AuthGroupFile "${WSGIAUTH_SITE}/htgroup"\n'),
    _location("/wsgi/group", "Basic", "wsgi", "wsgi-group staff",
              SCRIPT + '    WSGIAuthGroupScript "${WSGIAUTH_SITE}/auth.wsgi"\n'),
    # Apache's own file provider authenticates, wsgiauth answers the group question
    _location("/native/fgroup", "Basic", "file", "group staff", USERS + '    AuthGroupFile "${WSGIAUTH_SITE}/htgroup"\n'),
    _location("/wsgi/fgroup", "Basic", "file", "wsgi-group staff",
              USERS + '    WSGIAuthGroupScript "${WSGIAUTH_SITE}/auth.wsgi"\n'),
    _location("/native/GROUP", "Basic", "file", "group STAFF", USERS + '    AuthGroupFile "${WSGIAUTH_SITE}/htgroup"\n'),
    _location("/wsgi/GROUP", "Basic", "wsgi", "wsgi-group STAFF",
              SCRIPT + '    WSGIAuthGroupScript "${WSGIAUTH_SITE}/auth.wsgi"\n'),
    _location("/native/digest", "Digest", "file", "valid-user", '    AuthUserFile "${WSGIAUTH_SITE}/htdigest"\n'),
    _location("/wsgi/digest", "Digest", "wsgi", "valid-user", SCRIPT),
    # a realm with a colon (mod_wsgi-express's default "HOST:PORT") cannot be matched in an htdigest file
    _location("/native/colonrealm", "Digest", "file", "valid-user", '    AuthUserFile "${WSGIAUTH_SITE}/htdigest"\n',
              realm=COLON_REALM),
    _location("/wsgi/colonrealm", "Digest", "wsgi", "valid-user", SCRIPT, realm=COLON_REALM),
])


@dataclasses.dataclass(frozen=True)
class Case:
    why: str
    kind: str  # basic | group | fgroup | GROUP | digest | colonrealm
    user: str
    password: str
    status: int  # what Apache's rules predict

    def __str__(self) -> str:
        return f"{self.kind}-{self.why}"


CASES = [
    # every hash type htpasswd makes, right and wrong
    Case("apr1", "basic", "u_md5", "pw-md5", 200),
    Case("apr1-wrong", "basic", "u_md5", "pw-MD5", 401),
    Case("bcrypt", "basic", "u_bcrypt", "pw-bcrypt", 200),
    Case("bcrypt-wrong", "basic", "u_bcrypt", "pw-bcryp", 401),
    Case("sha1", "basic", "u_sha1", "pw-sha1", 200),
    Case("sha1-wrong", "basic", "u_sha1", "pw-sha2", 401),
    Case("crypt", "basic", "u_crypt", "pw-crypt", 200),
    Case("crypt-wrong", "basic", "u_crypt", "pw-cryp", 401),
    Case("sha256crypt", "basic", "u_sha256", "pw-sha256", 200),
    Case("sha256crypt-wrong", "basic", "u_sha256", "pw-sha512", 401),
    Case("sha512crypt", "basic", "u_sha512", "pw-sha512", 200),
    Case("sha512crypt-wrong", "basic", "u_sha512", "pw-sha256", 401),
    Case("sha256crypt-rounds", "basic", "u_sha256r", "pw-sha256r", 200),
    Case("sha512crypt-rounds", "basic", "u_sha512r", "pw-sha512r", 200),
    Case("sha512crypt-rounds-wrong", "basic", "u_sha512r", "pw-sha512", 401),
    # Apache on Linux does not accept plain-text entries (it hands them to crypt())
    Case("plaintext-refused", "basic", "u_plain", "pw-plain", 401),
    # truncations every implementation of these schemes shares
    Case("bcrypt-72-bytes", "basic", "u_bcrypt_long", LONG72 + "B", 200),
    Case("bcrypt-71-bytes-wrong", "basic", "u_bcrypt_long", LONG72[:-1], 401),
    Case("des-8-chars", "basic", "u_crypt_long", "longpass-anything", 200),
    Case("des-7-chars-wrong", "basic", "u_crypt_long", "longpas", 401),
    Case("empty-password-accepted", "basic", "u_empty", "", 200),  # mod_auth_basic passes "" on
    Case("empty-password-user-wrong", "basic", "u_empty", "x", 401),
    # names
    Case("unknown-user", "basic", "nobody", "pw-md5", 401),
    Case("case-sensitive", "basic", "mixed", "pw-mixed", 401),
    Case("case-exact", "basic", "Mixed", "pw-mixed", 200),
    Case("utf8-user", "basic", "zoë", "pw-zoe", 200),
    Case("utf8-user-wrong", "basic", "zoë", "pw-zoë", 401),
    # file syntax
    Case("indented-line", "basic", "u_indented", "pw-indented", 200),
    Case("crlf-line", "basic", "u_crlf", "pw-crlf", 200),
    Case("extra-field-ignored", "basic", "u_comment_field", "pw-field", 200),
    Case("commented-out", "basic", "u_commented", "pw-commented", 401),
    Case("continuation-line", "basic", "u_continued", "pw-continued", 200),
    Case("duplicate-first-wins", "basic", "u_dup", "pw-first", 200),
    Case("duplicate-second-ignored", "basic", "u_dup", "pw-second", 401),
    Case("malformed-hash", "basic", "u_badhash", "notvalid", 401),
    Case("after-overlong-line", "basic", "u_after_long", "pw-after", 401),
    # groups (Require group staff / Require wsgi-group staff)
    Case("member", "group", "u_md5", "pw-md5", 200),
    Case("member-bcrypt", "group", "u_bcrypt", "pw-bcrypt", 200),
    Case("member-second-line", "group", "u_sha512", "pw-sha512", 200),
    Case("member-quoted-utf8", "group", "zoë", "pw-zoe", 200),
    Case("other-group", "group", "u_sha1", "pw-sha1", 401),
    Case("no-group", "group", "u_crypt", "pw-crypt", 401),
    Case("member-wrong-password", "group", "u_md5", "pw-xxx", 401),
    Case("unknown-user", "group", "nobody", "pw-md5", 401),
    # AuthBasicProvider file + WSGIAuthGroupScript
    Case("member", "fgroup", "u_sha512", "pw-sha512", 200),
    Case("non-member", "fgroup", "u_sha1", "pw-sha1", 401),
    # group names compare case-insensitively on both sides (Require group STAFF)
    Case("member-upper-group", "GROUP", "u_md5", "pw-md5", 200),
    Case("non-member-upper-group", "GROUP", "u_sha1", "pw-sha1", 401),
    # Digest (htdigest)
    Case("right", "digest", "d_alice", "pw-digest", 200),
    Case("second-user", "digest", "d_bob", "pw-bob", 200),
    Case("wrong", "digest", "d_alice", "pw-Digest", 401),
    Case("unknown", "digest", "nobody", "pw-digest", 401),
    Case("other-realm", "digest", "d_other", "pw-other", 401),
    Case("htpasswd-user-is-not-digest", "digest", "u_md5", "pw-md5", 401),
    Case("realm-with-colon-unmatchable", "colonrealm", "d_colon", "pw-colon", 401),
]


@pytest.fixture(scope="module")
def server(apache_factory) -> Apache:
    require_tool("htpasswd")
    require_tool("htdigest")
    return apache_factory(
        files={"htpasswd": make_htpasswd(), "htdigest": make_htdigest(), "htgroup": HTGROUP, "auth.wsgi": WSGI_SCRIPT},
        modules=["authn_file", "authz_groupfile"],
        include=INCLUDE,
    )


def _request(server: Apache, side: str, case: Case) -> tuple[int, str | None]:
    path = f"/{side}/{case.kind}/page"
    if case.kind in ("digest", "colonrealm"):
        r = requests.get(server.url + path.lstrip("/"), auth=HTTPDigestAuth(case.user, case.password), timeout=10)
        status, body = r.status_code, (r.json() if r.status_code == 200 else None)
    else:
        resp = server.get(path, user=case.user.encode(), password=case.password.encode())
        status, body = resp.status, (resp.json() if resp.status == 200 else None)
    return status, (body["REMOTE_USER"] if body else None)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_same_answer_as_apache(server, case):
    native = _request(server, "native", case)
    wsgi = _request(server, "wsgi", case)
    assert native[0] == case.status, f"native Apache answered {native[0]}, expected {case.status}: check the test table"
    assert wsgi == native, f"wsgiauth answered {wsgi}, native Apache {native}"
    if case.status == 200:
        assert wsgi[1] == case.user


def test_every_hash_type_htpasswd_makes_is_in_the_table():
    # A guard for the table itself: each htpasswd hash option has a granted row.
    file = make_htpasswd().decode("utf-8", "replace")
    prefixes = {"$apr1$": "u_md5", "$2y$": "u_bcrypt", "{SHA}": "u_sha1", "$5$": "u_sha256", "$6$": "u_sha512"}
    for prefix, user in prefixes.items():
        assert f"{user}:{prefix}" in file
        assert any(c.user == user and c.status == 200 for c in CASES)


def test_no_hook_crashed(server):
    text = server.error_log_text()
    assert "Traceback" not in text, text[-3000:]
    assert "Exception occurred" not in text, text[-3000:]  # mod_wsgi's words for a hook that raised
