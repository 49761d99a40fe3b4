"""The SQL backend end to end: a real Apache (mod_wsgi-express) against a real PostgreSQL.

One Apache serves, side by side on the same table (wsgiauth/data/sql/schema.sql + backends/data/sql/seed.sql):

* ``/native`` and ``/native-group``: Apache's own ``AuthBasicProvider dbd`` (``mod_authn_dbd`` + ``mod_dbd`` with
  Debian's ``libaprutil1-dbd-pgsql``, ``AuthDBDUserPWQuery``) and ``Require dbd-group`` (``mod_authz_dbd``);
* ``/wsgi``, ``/wsgi-group`` and ``/digest``: ``AuthBasicProvider wsgi`` / ``AuthDigestProvider wsgi`` with an
  auth script using ``wsgiauth.backends.sql`` (``Require wsgi-group``).

The differential table sends the same credentials to both and expects the same status. wsgiauth differs on purpose in
one place: it returns the canonical name (``alice`` is recorded as ``alice@example.org``). Each side logs in with its
own read-only database account, so their connections can be counted separately on the server.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import pytest
import requests
from requests.auth import HTTPDigestAuth

from backends import postgres as pg_launcher
from backends._common import missing
from backends.apache import Apache

pytestmark = pytest.mark.apache

AUTH_SCRIPT = """\
from wsgiauth.backends import sql

backend = sql.postgresql({conninfo!r}, pool_size=4, pool_timeout=1.0, breaker_threshold=3, breaker_reset=0.5,
                         log_level="info")
check_password = backend.check_password
get_realm_hash = backend.get_realm_hash
groups_for_user = backend.groups_for_user
"""

INCLUDE = """\
DBDriver pgsql
DBDParams "{dbd_params}"
DBDMin 1
DBDKeep 2
DBDMax 4
DBDExptime 300

<Location /native>
    AuthType Basic
    AuthName "sql"
    AuthBasicProvider dbd
    AuthDBDUserPWQuery "SELECT password_hash FROM wsgiauth_user WHERE name = %s AND active"
    Require valid-user
</Location>
<Location /native-group>
    AuthType Basic
    AuthName "sql"
    AuthBasicProvider dbd
    AuthDBDUserPWQuery "SELECT password_hash FROM wsgiauth_user WHERE name = %s AND active"
    AuthzDBDQuery "SELECT m.groupname FROM wsgiauth_group_member m JOIN wsgiauth_user u ON u.name = m.username WHERE m.username = %s AND u.active"
    Require dbd-group staff
</Location>
<Location /wsgi>
    AuthType Basic
    AuthName "sql"
    AuthBasicProvider wsgi
    WSGIAuthUserScript "${{WSGIAUTH_SITE}}/auth.wsgi"
    Require valid-user
</Location>
<Location /wsgi-group>
    AuthType Basic
    AuthName "sql"
    AuthBasicProvider wsgi
    WSGIAuthUserScript "${{WSGIAUTH_SITE}}/auth.wsgi"
    WSGIAuthGroupScript "${{WSGIAUTH_SITE}}/auth.wsgi"
    Require wsgi-group staff
</Location>
<Location /digest>
    AuthType Digest
    AuthName "wsgiauth"
    AuthDigestProvider wsgi
    WSGIAuthUserScript "${{WSGIAUTH_SITE}}/auth.wsgi"
    Require valid-user
</Location>
"""


@pytest.fixture(scope="module")
def pg(postgres: pg_launcher.Postgres) -> pg_launcher.Postgres:
    """The plugin's seeded PostgreSQL, once Apache's PostgreSQL driver for mod_dbd is known to be there."""
    if not os.path.exists("/usr/lib/x86_64-linux-gnu/apr-util-1/apr_dbd_pgsql.so") and not any(
            os.path.exists(p) for p in ("/usr/lib/aarch64-linux-gnu/apr-util-1/apr_dbd_pgsql.so",)):
        missing("libaprutil1-dbd-pgsql is not installed (run `make test`, which installs it)")
    return postgres


@dataclass
class Site:
    apache: Apache
    pg: pg_launcher.Postgres
    wsgi_account: str
    dbd_account: str


@pytest.fixture(scope="module")
def site(apache_factory, pg: pg_launcher.Postgres) -> Site:
    wsgi_info = pg.add_user("apache_wsgiauth", "wsgi-" + os.urandom(6).hex())
    dbd_info = pg.add_user("apache_dbd", "dbd-" + os.urandom(6).hex())
    apache = apache_factory(
        files={"auth.wsgi": AUTH_SCRIPT.format(conninfo=wsgi_info)},
        modules=["dbd", "authn_dbd", "authz_dbd"],
        include=INCLUDE.format(dbd_params=dbd_info),
        processes=1,
        threads=5,
        log_level="info",
    )
    return Site(apache, pg, "apache_wsgiauth", "apache_dbd")


def U(text: str) -> bytes:
    return text.encode("utf-8")


# (user, password, native status); wsgiauth must answer the same.
BASIC = [
    (b"alice", b"secret", 200),
    (b"alice", b"wrong", 401),
    (b"alice", b"", 401),
    (b"bob", b"hunter2", 200),  # bcrypt $2y$
    (b"bob", b"Hunter2", 401),
    (b"dave", b"letmein", 200),  # {SHA}
    (U("josé"), U("pässword"), 200),  # UTF-8 name and password
    (U("josé"), "pässword".encode("latin-1"), 401),
    (b"o'brien", b"shamrock", 200),
    (b"carol", b"secret", 401),  # disabled
    (b"nobody", b"secret", 401),
    (b"ALICE", b"secret", 401),
    (b"alice ", b"secret", 401),
    (b"' OR '1'='1", b"secret", 401),
    (b"alice'--", b"secret", 401),
    (b"%", b"secret", 401),
    (b"_lice", b"secret", 401),
    (b"\xff\xfe", b"secret", 401),  # not UTF-8: PostgreSQL would refuse it as text
]


def _get(site: Site, path: str, user: bytes, password: bytes) -> tuple[int, str | None]:
    r = site.apache.get(path, user=user, password=password)
    return r.status, (r.json()["REMOTE_USER"] if r.status == 200 else None)


@pytest.mark.parametrize(("user", "password", "status"), BASIC, ids=lambda v: repr(v))
def test_basic_same_answer_as_native_mod_authn_dbd(site: Site, user: bytes, password: bytes, status: int) -> None:
    native = _get(site, "/native/page", user, password)
    ours = _get(site, "/wsgi/page", user, password)
    assert native[0] == status, f"native mod_authn_dbd answered {native}"
    assert ours[0] == native[0]
    if status == 200:
        assert native[1] == user.decode("utf-8")
        expected = "alice@example.org" if user == b"alice" else user.decode("utf-8")
        assert ours[1] == expected  # the canonical name from the `canonical` column


@pytest.mark.parametrize(("user", "password", "status"), [
    (b"alice", b"secret", 200),
    (b"bob", b"hunter2", 200),
    (b"dave", b"letmein", 401),  # valid user, not in staff
    (b"carol", b"secret", 401),
    (b"alice", b"wrong", 401),
], ids=lambda v: repr(v))
def test_groups_same_answer_as_native_mod_authz_dbd(site: Site, user: bytes, password: bytes, status: int) -> None:
    native = _get(site, "/native-group/page", user, password)
    ours = _get(site, "/wsgi-group/page", user, password)
    assert native[0] == status
    assert ours[0] == native[0]


def test_digest_from_the_realm_table(site: Site) -> None:
    url = site.apache.url + "digest/page"
    r = requests.get(url, auth=HTTPDigestAuth("alice", "secret"), timeout=10)
    assert r.status_code == 200 and r.json()["REMOTE_USER"] == "alice"
    assert requests.get(url, auth=HTTPDigestAuth("alice", "wrong"), timeout=10).status_code == 401
    assert requests.get(url, auth=HTTPDigestAuth("bob", "hunter2"), timeout=10).status_code == 200
    assert requests.get(url, auth=HTTPDigestAuth("carol", "secret"), timeout=10).status_code == 401
    assert requests.get(url, auth=HTTPDigestAuth("dave", "letmein"), timeout=10).status_code == 401


def test_connections_are_pooled_per_child(site: Site) -> None:
    for _ in range(30):
        assert _get(site, "/wsgi/page", b"bob", b"hunter2")[0] == 200
    opened = site.pg.count_connections(site.wsgi_account)
    # one pool per Apache child process, at most pool_size=4 each; 30 sequential requests need one connection
    # per child that served them, never one per request
    assert 1 <= opened <= 4 * _children(site), opened


def _children(site: Site) -> int:
    """How many child processes the Apache parent has (from /proc)."""
    parent = site.apache.pid
    count = 0
    for stat in os.listdir("/proc"):
        if not stat.isdigit():
            continue
        try:
            with open(f"/proc/{stat}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if parent is not None and int(fields[1]) == parent:
            count += 1
    return max(1, count)


def test_outage_gives_fast_401_and_recovers(site: Site) -> None:
    assert _get(site, "/wsgi/page", b"alice", b"secret")[0] == 200
    site.pg.stop()
    try:
        for _ in range(6):
            t0 = time.monotonic()
            status, _ = _get(site, "/wsgi/page", b"alice", b"secret")
            elapsed = time.monotonic() - t0
            assert status == 401  # on_error="unknown": no provider knows the user
            assert elapsed < 2.5, f"a request took {elapsed:.2f}s while the database was down"
    finally:
        site.pg.start()
    deadline = time.monotonic() + 10
    status = 0
    while time.monotonic() < deadline:
        status = _get(site, "/wsgi/page", b"alice", b"secret")[0]
        if status == 200:
            break
        time.sleep(0.1)
    assert status == 200, "wsgiauth did not recover after the database came back"
    errors = site.apache.error_log_text()
    for password in ("secret", "hunter2", "letmein", "shamrock"):
        assert password not in errors  # never a password in the log
    assert "BackendUnavailableError" in errors or "unavailable" in errors
