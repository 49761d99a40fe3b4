"""Hostile credentials through a real Apache, against every backend: a 401 (or Apache's own 400 before the hook),
never a 500, never a grant, and no password in the error log.

One Apache (mod_wsgi-express, LogLevel info so that every authentication failure is logged) serves one location per
backend, each with its own auth script at ``log_level="info"`` (so wsgiauth logs every decision with the user name):

* ``/htpasswd`` (an htpasswd file), ``/dbm`` (an SDBM database), ``/sqlite`` (SQLite), ``/pg`` (PostgreSQL),
  ``/ldap`` (slapd, search-then-bind, canonical name from ``mail``).

Every store holds ``victim`` (password ``Victim-pw-7Q``, apr1) whose canonical name is ``victim@example.org`` (SQL
``canonical`` column, LDAP ``mail``) and ``other`` (bcrypt). The same Apache listens on a second port whose virtual
host raises ``LimitRequestFieldSize`` to 256 KiB, so that 64 KiB names and passwords reach the hook there, while on
the first port Apache answers them with its own 400 (the header is over its 8190-byte limit) before any hook runs.
"""

from __future__ import annotations

import base64
import http.client
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from backends import postgres as pg_launcher
from backends._common import SQL_SCHEMA, free_port
from backends.apache import Apache
from backends.slapd import Slapd
from wsgiauth import hashes
from wsgiauth._dbmfile import DbmFile

pytestmark = [pytest.mark.apache, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

VICTIM, VICTIM_PW = "victim", "Victim-pw-7Q"
OTHER, OTHER_PW = "other", "0ther-pw-K2"
CANONICAL = "victim@example.org"
BACKENDS = ("htpasswd", "dbm", "sqlite", "pg", "ldap")
BIG = 64 * 1024

SCRIPTS = {
    "htpasswd": """
from wsgiauth.backends import htpasswd
backend = htpasswd.Backend(os.path.join(here, "htpasswd"), log_level="info")
""",
    "dbm": """
from wsgiauth.backends import dbm
backend = dbm.Backend(os.path.join(here, "users"), type="sdbm", log_level="info")
""",
    "sqlite": """
from wsgiauth.backends import sql
backend = sql.sqlite(os.path.join(here, "users.db"), log_level="info")
""",
    "pg": """
from wsgiauth.backends import sql
backend = sql.postgresql({conninfo!r}, pool_timeout=2.0, log_level="info")
""",
    "ldap": """
from wsgiauth.backends import ldap
backend = ldap.Backend({url!r}, bind_dn={bind_dn!r}, bind_password={bind_pw!r}, remote_user_attribute="mail",
                           connect_timeout=2.0, timeout=5.0, log_level="info")
""",
}
SCRIPT_HEAD = "import os\nhere = os.path.dirname(__file__)\n"
SCRIPT_TAIL = "check_password = backend.check_password\n"

LOCATION = """
<Location /{name}>
    AuthType Basic
    AuthName "hostile"
    AuthBasicProvider wsgi
    WSGIAuthUserScript "${{WSGIAUTH_SITE}}/auth_{name}.wsgi"
    Require valid-user
</Location>
"""
NATIVE = """
<Location /native>
    AuthType Basic
    AuthName "hostile"
    AuthBasicProvider file
    AuthUserFile "${WSGIAUTH_SITE}/htpasswd"
    Require valid-user
</Location>
"""
BIG_VHOST = """
Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    LimitRequestFieldSize 262144
</VirtualHost>
"""


@dataclass
class Site:
    apache: Apache
    big_port: int
    backends: tuple[str, ...]


def _sql_rows() -> list[tuple[str, str, str | None]]:
    return [(VICTIM, hashes.hash_password(VICTIM_PW.encode(), "apr1"), CANONICAL),
            (OTHER, hashes.hash_password(OTHER_PW.encode(), "bcrypt", cost=4), None)]


@pytest.fixture(scope="module")
def postgres(launch: Callable[..., Any]) -> pg_launcher.Postgres:
    """PostgreSQL with wsgiauth's schema and this module's users only (not the seed)."""
    server: pg_launcher.Postgres = launch(pg_launcher.Postgres)
    server.load_sql(SQL_SCHEMA)
    for name, stored, canonical in _sql_rows():
        server.execute("INSERT INTO wsgiauth_user (name, password_hash, canonical) VALUES (%s, %s, %s)",
                       (name, stored, canonical), database=server.database)
    return server


@pytest.fixture(scope="module")
def slapd(launch: Callable[..., Any]) -> Slapd:
    """A seeded slapd with this module's users too."""
    server: Slapd = launch(Slapd)
    server.add_ldif(f"dn: uid={VICTIM},{server.people}\nobjectClass: inetOrgPerson\nuid: {VICTIM}\ncn: V\nsn: V\n"
                    f"mail: {CANONICAL}\nuserPassword: {VICTIM_PW}\n\n"
                    f"dn: uid={OTHER},{server.people}\nobjectClass: inetOrgPerson\nuid: {OTHER}\ncn: O\nsn: O\n"
                    f"userPassword: {OTHER_PW}\n")
    return server


@pytest.fixture(scope="module")
def site(apache_factory: Any, tmp_path_factory: Any, postgres: pg_launcher.Postgres, slapd: Slapd) -> Site:
    tmp = tmp_path_factory.mktemp("hostile")
    files: dict[str, Any] = {}
    files["htpasswd"] = (f"{VICTIM}:{hashes.hash_password(VICTIM_PW.encode(), 'apr1')}\n"
                         f"{OTHER}:{hashes.hash_password(OTHER_PW.encode(), 'bcrypt', cost=4)}\n")
    with DbmFile(str(tmp / "users"), "sdbm", writable=True) as db:
        db.store(VICTIM.encode(), hashes.hash_password(VICTIM_PW.encode(), "apr1").encode() + b":staff")
        db.store(OTHER.encode(), hashes.hash_password(OTHER_PW.encode(), "bcrypt", cost=4).encode())
    files["users.pag"] = (tmp / "users.pag").read_bytes()
    files["users.dir"] = (tmp / "users.dir").read_bytes()
    with sqlite3.connect(tmp / "users.db") as conn:
        conn.executescript(SQL_SCHEMA.read_text())
        conn.executemany("INSERT INTO wsgiauth_user (name, password_hash, canonical) VALUES (?, ?, ?)", _sql_rows())
    conn.close()
    files["users.db"] = (tmp / "users.db").read_bytes()
    account = postgres.add_user("apache_hostile", "pw-" + os.urandom(6).hex())
    fmt = {"conninfo": account, "url": f"{slapd.url}/{slapd.people}?uid?sub?(objectClass=inetOrgPerson)",
           "bind_dn": slapd.service_dn, "bind_pw": slapd.service_pw}
    for name in BACKENDS:
        files[f"auth_{name}.wsgi"] = SCRIPT_HEAD + SCRIPTS[name].format(**fmt) + SCRIPT_TAIL
    big_port = free_port()
    include = "".join(LOCATION.format(name=n) for n in BACKENDS) + NATIVE + BIG_VHOST.format(port=big_port)
    apache = apache_factory(files=files, include=include, modules=["authn_file"], log_level="info", threads=8)
    return Site(apache, big_port, BACKENDS)


def request(port: int, path: str, raw_credentials: bytes, timeout: float = 20.0) -> tuple[int, bytes]:
    """One GET with ``Authorization: Basic base64(raw_credentials)`` (any bytes at all)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.putheader("Authorization", b"Basic " + base64.b64encode(raw_credentials))
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


HASH_AS_PASSWORD = hashes.hash_password(VICTIM_PW.encode(), "apr1")

# name -> (user, password): every one must be refused by every backend.
_LDAP_META = [b"*", b"vic*", b"*)(uid=*", b"victim)(|(uid=*", b"victim)(objectClass=*", b"\\2a", b"(uid=victim)",
              b"victim\\", b"*\x00", b"victim,ou=people", b"uid=victim,ou=people,dc=example,dc=org"]
_SQL_META = [b"' OR '1'='1", b"victim' --", b"victim'; DROP TABLE wsgiauth_user; --", b"%", b"vic%", b"victi_",
             b"victim' OR 'a'='a", b"\" OR \"\"=\"", b"victim\\", b"victim'/*", b"1; SELECT 1"]
HOSTILE: dict[str, tuple[bytes, bytes]] = {
    "nul-after-name": (b"victim\x00", VICTIM_PW.encode()),
    "nul-in-name": (b"victim\x00junk", VICTIM_PW.encode()),
    "nul-truncated-password": (b"victim", VICTIM_PW.encode()[:4] + b"\x00" + VICTIM_PW.encode()[4:]),
    "invalid-utf8-name": (b"victim\xff", VICTIM_PW.encode()),
    "latin1-name": (b"v\xefctim", VICTIM_PW.encode()),
    "invalid-utf8-password": (b"victim", VICTIM_PW.encode() + b"\xc3"),
    "overlong-utf8": (b"victi\xc1\xad", VICTIM_PW.encode()),
    "colon-in-name": (b"victim:" + VICTIM_PW.encode(), VICTIM_PW.encode()),
    "colon-password-shift": (b"victim", b":" + VICTIM_PW.encode()),
    "empty-password": (b"victim", b""),
    "empty-user": (b"", VICTIM_PW.encode()),
    "other-users-canonical-name": (CANONICAL.encode(), VICTIM_PW.encode()),
    "other-users-password": (b"victim", OTHER_PW.encode()),
    "crlf-in-name": (b"victim\r\nX-Injected: 1", VICTIM_PW.encode()),
    "control-chars": (b"victim\x1b[31m\x07", VICTIM_PW.encode()),
    "password-is-a-hash": (b"victim", HASH_AS_PASSWORD.encode()),
    **{f"ldap-meta-{i}": (u, VICTIM_PW.encode()) for i, u in enumerate(_LDAP_META)},
    **{f"sql-meta-{i}": (u, VICTIM_PW.encode()) for i, u in enumerate(_SQL_META)},
    "sql-meta-password": (b"victim", b"' OR '1'='1"),
    "ldap-meta-password": (b"victim", b"*"),
}
# Names that a case-insensitive directory (LDAP's uid is caseIgnoreMatch, as mod_authnz_ldap sees it) may accept.
CASE_VARIANTS: dict[str, tuple[bytes, bytes]] = {
    "upper-case": (b"VICTIM", VICTIM_PW.encode()),
    "leading-space": (b" victim", VICTIM_PW.encode()),
    "trailing-space": (b"victim ", VICTIM_PW.encode()),
    "trailing-tab": (b"victim\t", VICTIM_PW.encode()),
}
BIG_INPUTS: dict[str, tuple[bytes, bytes]] = {
    "64k-name": (b"v" * BIG, VICTIM_PW.encode()),
    "64k-name-victim-prefix": (b"victim" + b"\x00" * BIG, VICTIM_PW.encode()),
    "64k-password": (b"victim", b"P" * BIG),
    "64k-password-prefix": (b"victim", VICTIM_PW.encode() + b"x" * BIG),
    "64k-ldap-filter": (b"*)(" * (BIG // 3), VICTIM_PW.encode()),
}


def test_the_right_password_is_granted_everywhere(site: Site) -> None:
    """The control: without it a 401 everywhere below would prove nothing."""
    for name in site.backends:
        status, body = request(site.apache.port, f"/{name}/x", f"{VICTIM}:{VICTIM_PW}".encode())
        assert status == 200, (name, status, body[:200])
        expected = CANONICAL if name in ("sqlite", "pg", "ldap") else VICTIM
        assert f'"REMOTE_USER": "{expected}"'.encode() in body, (name, body)
        status, _ = request(site.big_port, f"/{name}/x", f"{OTHER}:{OTHER_PW}".encode())
        assert status == 200, (name, "big port", status)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_credentials_are_401(site: Site, case: str) -> None:
    user, password = HOSTILE[case]
    for name in site.backends:
        status, body = request(site.apache.port, f"/{name}/", user + b":" + password)
        assert status == 401, (case, name, status, body[:300])


def test_nul_after_the_right_password_is_apaches_own_truncation(site: Site) -> None:
    """mod_auth_basic decodes the credentials into a C string: ``victim:PASSWORD\\0junk`` IS ``victim:PASSWORD`` for
    every provider, Apache's own included, before any hook runs (the hook cannot see the NUL). So the answer is the
    native provider's answer: 200 for the full right password followed by a NUL, 401 when the NUL cuts it short."""
    for suffix, expected in ((b"\x00", 200), (b"\x00junk", 200), (b"", 200)):
        raw = VICTIM.encode() + b":" + VICTIM_PW.encode() + suffix
        native, _ = request(site.apache.port, "/native/", raw)
        assert native == expected
        for name in site.backends:
            status, body = request(site.apache.port, f"/{name}/", raw)
            assert status == native, (name, suffix, status)
            assert b'"REMOTE_USER_HEX": "' + VICTIM.encode().hex().encode() in body or b"example.org" in body
    cut = VICTIM.encode() + b":" + VICTIM_PW.encode()[:4] + b"\x00" + VICTIM_PW.encode()[4:]
    assert request(site.apache.port, "/native/", cut)[0] == 401


@pytest.mark.parametrize("case", sorted(CASE_VARIANTS))
def test_case_and_space_variants(site: Site, case: str) -> None:
    """Names are compared byte for byte by the file, DBM and SQL stores: a 401. LDAP matches ``uid`` with the
    directory's own (case-insensitive, space-folding) rule, exactly as mod_authnz_ldap does: the same person, whose
    canonical name Apache then records, so a grant there is to the right user, never to another."""
    user, password = CASE_VARIANTS[case]
    for name in site.backends:
        status, body = request(site.apache.port, f"/{name}/", user + b":" + password)
        if name == "ldap" and status == 200:
            assert f'"REMOTE_USER": "{CANONICAL}"'.encode() in body
            continue
        assert status == 401, (case, name, status, body[:300])


@pytest.mark.parametrize("case", sorted(BIG_INPUTS))
def test_64k_inputs_default_limit_is_apaches_400(site: Site, case: str) -> None:
    """Apache's LimitRequestFieldSize (8190) refuses the header itself: 400, before any hook runs."""
    user, password = BIG_INPUTS[case]
    for name in site.backends:
        status, _ = request(site.apache.port, f"/{name}/", user + b":" + password)
        assert status == 400, (case, name, status)


@pytest.mark.parametrize("case", sorted(BIG_INPUTS))
def test_64k_inputs_reach_the_hook_and_get_401(site: Site, case: str) -> None:
    """With the limit raised (second port), 64 KiB names and passwords reach every backend: a 401, no 500."""
    user, password = BIG_INPUTS[case]
    for name in site.backends:
        status, body = request(site.big_port, f"/{name}/", user + b":" + password)
        assert status == 401, (case, name, status, body[:300])


def test_zz_error_log_is_clean(site: Site) -> None:
    """After every case above: no 500, no Python traceback, no password (right or hostile) in the error log; the
    hostile names were logged as refused (so the log was really written)."""
    log = site.apache.error_log_text()
    assert "wsgiauth[" in log and "unknown to" in log  # wsgiauth logged decisions at info level
    assert "Traceback" not in log, log[-3000:]
    for secret in (VICTIM_PW, OTHER_PW, "P" * 64, HASH_AS_PASSWORD, VICTIM_PW[:6]):
        assert secret not in log, secret
    access = site.apache.access_log_text()
    assert '" 500 ' not in access, [line for line in access.splitlines() if '" 500 ' in line][:5]
    assert access.count('" 401 ') >= len(HOSTILE) * len(BACKENDS)
