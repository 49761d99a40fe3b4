"""wsgiauth.backends.sql against real databases: SQLite (stdlib), PostgreSQL and MariaDB (throw-away servers).

One conformance suite runs on all three (the ``db`` fixture is parametrized): right/wrong/unknown password, disabled
account, groups, Digest realm hash, canonical name, exported columns, SQL injection in the user name and realm,
query errors. Then the pool against the real servers, connections counted on the server: fork, 20 threads on a
pool of 4, a restart in the middle of a run, a re-imported auth script. Then Django's own tables and hashes.

Each server starts once for this module (about a second each).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import io
import itertools
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from backends import postgres as pg_launcher
from backends._common import SQL_SCHEMA as SCHEMA
from backends._common import SQL_SEED as SEED
from backends.mariadb import MariaDB
from wsgiauth.backends import sql
from wsgiauth.exceptions import BackendError, ConfigError


def L(text: str) -> str:
    """What mod_wsgi hands the hooks for UTF-8 request bytes: the bytes decoded as latin-1."""
    return text.encode("utf-8").decode("latin-1")


def environ() -> dict[str, Any]:
    return {"REMOTE_ADDR": "127.0.0.1", "wsgi.errors": io.StringIO()}


# ---------------------------------------------------------------------- servers and the parametrized store

_users = itertools.count(1)


@dataclass
class DB:
    """One seeded database and how to point a backend at it."""

    kind: str
    server: Any = None
    path: Path | None = None
    made: list[sql.Backend] = field(default_factory=list)

    def backend(self, account: tuple[str, str] | None = None, **kwargs: Any) -> sql.Backend:
        """A backend on this database, as the application user or as ``account`` (name, password)."""
        if self.kind == "sqlite":
            assert self.path is not None
            b = sql.sqlite(self.path, **kwargs)
        elif self.kind == "postgresql":
            info = self.server.conninfo
            if account:
                info = (f"host={self.server.host} port={self.server.port} dbname={self.server.database} "
                        f"user={account[0]} password={account[1]}")
            b = sql.postgresql(info, **kwargs)
        else:
            params = dict(self.server.connect_kwargs)
            if account:
                params.update(user=account[0], password=account[1])
            b = sql.mysql(**params, **kwargs)
        self.made.append(b)
        return b

    def new_account(self) -> tuple[str, str]:
        """A fresh read-only account, so that connection counts on the server are this test's alone."""
        name, password = f"apache{next(_users)}", "pw-" + os.urandom(6).hex()
        self.server.add_user(name, password)
        return name, password

    def count(self, account: tuple[str, str]) -> int:
        return int(self.server.count_connections(account[0]))


@pytest.fixture(scope="module")
def sqlite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sql") / "users.db"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA.read_text(encoding="utf-8") + SEED.read_text(encoding="utf-8"))
    conn.commit()
    conn.close()
    return path


def _db(kind: str, request: pytest.FixtureRequest) -> DB:
    if kind == "sqlite":
        return DB("sqlite", path=request.getfixturevalue("sqlite_path"))
    if kind == "postgresql":
        return DB("postgresql", server=request.getfixturevalue("postgres"))
    return DB("mysql", server=request.getfixturevalue("mariadb"))


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def db(request: pytest.FixtureRequest) -> Iterator[DB]:
    d = _db(request.param, request)
    yield d
    for b in d.made:
        b.close()


@pytest.fixture(params=["postgresql", "mysql"])
def server_db(request: pytest.FixtureRequest) -> Iterator[DB]:
    d = _db(request.param, request)
    yield d
    for b in d.made:
        b.close()


# ---------------------------------------------------------------------- placeholders (no server)

def test_placeholders_translated_per_dialect() -> None:
    q = "SELECT h FROM t WHERE u = :user AND r = :realm AND note LIKE 'x%' AND c::text <> ':user'"
    assert sql.compile_query(q, "sqlite") == sql.Query(
        "SELECT h FROM t WHERE u = ? AND r = ? AND note LIKE 'x%' AND c::text <> ':user'", ("user", "realm"))
    assert sql.compile_query(q, "postgresql") == sql.Query(
        "SELECT h FROM t WHERE u = %s AND r = %s AND note LIKE 'x%%' AND c::text <> ':user'", ("user", "realm"))
    assert sql.compile_query(q, "mysql").sql == sql.compile_query(q, "postgresql").sql


def test_positional_placeholders_like_mod_authn_dbd() -> None:
    q = sql.compile_query("SELECT ha1 FROM t WHERE u = %s AND r = %s", "sqlite", ("user", "realm"))
    assert q == sql.Query("SELECT ha1 FROM t WHERE u = ? AND r = ?", ("user", "realm"))


def test_named_parameters_may_repeat_and_comments_are_left_alone() -> None:
    q = sql.compile_query("SELECT h FROM t -- :realm 100%\nWHERE a = :user /* :x */ OR b = :user", "postgresql")
    assert q.params == ("user", "user")
    assert q.sql == "SELECT h FROM t -- :realm 100%%\nWHERE a = %s /* :x */ OR b = %s"


@pytest.mark.parametrize(("query", "message"), [
    ("SELECT h FROM t WHERE u = :usr", "unknown parameter :usr"),
    ("SELECT h FROM t WHERE u = :user AND r = %s", "mixes"),
    ("SELECT h FROM t WHERE u = %s OR v = %s", "too many %s"),
    ("SELECT h FROM t", "never uses the user name"),
    ("SELECT h FROM t WHERE u = ':user", "unterminated"),
    ("SELECT h FROM t WHERE u = :user /* open", "unterminated"),
])
def test_bad_queries_are_config_errors(query: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        sql.compile_query(query, "postgresql", ("user",))


def test_backend_configuration_errors(sqlite_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown SQL preset"):
        sql.sqlite(sqlite_path, preset="wordpress")
    with pytest.raises(ConfigError, match="dialect"):
        sql.Backend(str(sqlite_path), dialect="oracle")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="never uses the user name"):
        sql.sqlite(sqlite_path, password_query="SELECT password_hash FROM wsgiauth_user")
    with pytest.raises(ConfigError, match="cannot tell how to connect"):
        sql.Backend("oracle://scott:tiger@localhost/orcl")


# ---------------------------------------------------------------------- the conformance suite

CASES = [
    ("alice", "secret", "alice@example.org"),  # granted, canonical name from the `name` column
    ("alice", "wrong", False),
    ("alice", "", False),
    ("alice", "secret ", False),
    ("bob", "hunter2", True),  # bcrypt $2y$, no canonical name
    ("bob", "hunter3", False),
    ("dave", "letmein", True),  # {SHA}
    (L("josé"), L("pässword"), True),  # UTF-8 name and password, as raw bytes through latin-1
    (L("josé"), "pässword", False),  # the latin-1 bytes of the same text are another password
    ("o'brien", "shamrock", True),  # a quote in a real name works
    ("carol", "secret", None),  # disabled account: unknown, even with the right password
    ("carol", "wrong", None),
    ("nobody", "secret", None),
    ("ALICE", "secret", None),  # names are case-sensitive, on MariaDB too
    ("alice ", "secret", None),  # and trailing spaces count (MariaDB: NO PAD collation)
    (" alice", "secret", None),
]


@pytest.mark.parametrize(("user", "password", "expected"), CASES)
def test_check_password(db: DB, user: str, password: str, expected: object) -> None:
    b = db.backend()
    assert b.check_password(environ(), user, password) == expected


def test_groups(db: DB) -> None:
    b = db.backend()
    env = environ()
    assert b.groups_for_user(env, "alice") == ["admins", "staff"]
    assert b.groups_for_user(env, "bob") == ["staff"]
    assert b.groups_for_user(env, L("josé")) == [L("équipe")]
    assert b.groups_for_user(env, "carol") == []  # disabled
    assert b.groups_for_user(env, "nobody") == []
    assert b.groups_for_user(env, "Alice") == []
    # Apache asks for the groups of the name check_password returned (the canonical one)
    assert b.groups_for_user(env, "alice@example.org") == ["admins", "staff"]


def test_digest_realm_hash(db: DB) -> None:
    b = db.backend()
    env = environ()
    assert b.get_realm_hash(env, "alice", "wsgiauth") == hashlib.md5(b"alice:wsgiauth:secret").hexdigest()
    assert b.get_realm_hash(env, L("josé"), "wsgiauth") == hashlib.md5("josé:wsgiauth:pässword".encode()).hexdigest()
    assert b.get_realm_hash(env, "alice", "other realm") is None
    assert b.get_realm_hash(env, "carol", "wsgiauth") is None  # disabled
    assert b.get_realm_hash(env, "dave", "wsgiauth") is None  # no Digest hash stored
    assert b.get_realm_hash(env, "nobody", "wsgiauth") is None


def test_exported_columns_and_canonical_name(db: DB) -> None:
    b = db.backend(password_query=(
        "SELECT password_hash, canonical AS name, active, name AS login, 'ops' AS department "
        "FROM wsgiauth_user WHERE name = :user"))
    record = b.lookup(b"alice")
    assert record is not None
    assert record.name == b"alice@example.org" and record.active is True
    assert dict(record.attributes) == {"login": "alice", "department": "ops"}
    assert "$apr1$" not in json.dumps(dict(record.attributes))
    carol = b.lookup(b"carol")
    assert carol is not None and carol.active is False
    assert b.lookup(b"nobody") is None


def test_mod_authn_dbd_style_query(db: DB) -> None:
    b = db.backend(password_query="SELECT password_hash FROM wsgiauth_user WHERE name = %s AND active",
                   realm_query="SELECT ha1 FROM wsgiauth_realm_hash WHERE username = %s AND realm = %s",
                   groups_query="SELECT groupname FROM wsgiauth_group_member WHERE username = %s")
    env = environ()
    assert b.check_password(env, "alice", "secret") is True  # no `name` column: the name typed
    assert b.check_password(env, "carol", "secret") is None
    assert b.get_realm_hash(env, "bob", "wsgiauth") == hashlib.md5(b"bob:wsgiauth:hunter2").hexdigest()
    assert sorted(b.groups_for_user(env, "alice")) == ["admins", "staff"]


# A hash of "pwned" that an injected UNION would hand back if the name were formatted into the SQL.
# htpasswd -nbm x pwned
PWNED = "$apr1$twWaVDoo$D54cvkMhmwhaYJXsJtRdi/"

INJECTIONS = [
    "' OR '1'='1",
    "' OR 1=1 --",
    "alice'--",
    "alice' -- ",
    "alice'#",
    "alice'/*",
    "alice' OR 'x'='x",
    '" OR ""="',
    "%",
    "_",
    "a%",
    "alic_",
    "alice\x00",
    "\x00' OR '1'='1",
    "alice\\",
    "\\' OR 1=1 -- ",
    "'; DROP TABLE wsgiauth_user; --",
    f"nobody' UNION SELECT '{PWNED}', NULL, TRUE --",
    f"nobody' UNION SELECT '{PWNED}', NULL, 1 #",
    "\xff\xfe",  # not UTF-8 at all
]


@pytest.mark.parametrize("attack", INJECTIONS, ids=lambda s: repr(s))
def test_sql_injection_in_the_user_name_never_matches(db: DB, attack: str) -> None:
    b = db.backend()
    env = environ()
    for password in ("secret", "pwned", "hunter2", ""):
        assert b.check_password(env, attack, password) is None
    assert b.groups_for_user(env, attack) == []
    assert b.get_realm_hash(env, attack, "wsgiauth") is None
    assert b.get_realm_hash(env, "alice", attack) is None
    # nothing was executed: the table is intact and alice still logs in
    assert b.check_password(env, "alice", "secret") == "alice@example.org"
    assert "query failed" not in env["wsgi.errors"].getvalue()


def test_like_wildcards_in_a_name_are_plain_characters(db: DB) -> None:
    b = db.backend()
    assert b.lookup(b"%") is None and b.lookup(b"_lice") is None


def test_query_error_becomes_the_configured_outcome(db: DB) -> None:
    q = "SELECT password_hash FROM no_such_table WHERE name = :user"
    env = environ()
    unknown = db.backend(password_query=q)
    assert unknown.check_password(env, "alice", "secret-password-123") is None
    log = env["wsgi.errors"].getvalue()
    assert "password query failed" in log and "alice" in log
    assert "secret-password-123" not in log
    deny = db.backend(password_query=q, on_error="deny")
    assert deny.check_password(environ(), "alice", "secret") is False
    raising = db.backend(password_query=q, on_error="raise")
    with pytest.raises(BackendError, match="password query failed"):
        raising.check_password(environ(), "alice", "secret")
    # a query error is not an outage: the breaker stays closed and the connection is kept
    s = unknown.stats()
    assert s["breaker_open"] == 0 and s["retries"] == 0


def test_two_rows_for_one_user_fail_closed(db: DB) -> None:
    b = db.backend(password_query="SELECT password_hash FROM wsgiauth_user WHERE name = :user OR name = 'bob'")
    env = environ()
    assert b.check_password(env, "alice", "secret") is None
    assert "more than one row" in env["wsgi.errors"].getvalue()


def test_unknown_user_costs_the_same_hash_work(db: DB, monkeypatch: pytest.MonkeyPatch) -> None:
    from wsgiauth import hashes

    calls: list[str] = []
    real = hashes.dummy_verify
    monkeypatch.setattr(hashes, "dummy_verify", lambda pw, like: (calls.append("dummy"), real(pw, like))[1])
    b = db.backend()
    env = environ()
    b.check_password(env, "nobody", "x")
    b.check_password(env, "\xff", "x")  # not UTF-8: never sent to the database, still hashed
    b.check_password(env, "a\x00b", "x")
    assert calls == ["dummy"] * 3


def test_missing_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    b = sql.sqlite(tmp_path / "absent.db")
    env = environ()
    assert b.check_password(env, "alice", "secret") is None
    assert f"cannot open SQLite database {tmp_path / 'absent.db'}: no such file" in env["wsgi.errors"].getvalue()
    b.close()


def test_sqlite_is_opened_read_only(sqlite_path: Path) -> None:
    b = sql.sqlite(sqlite_path)
    with b.pool.connection() as conn, pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM wsgiauth_user")
    assert b.check_password(environ(), "bob", "hunter2") is True
    b.close()


def test_url_forms(sqlite_path: Path, postgres: pg_launcher.Postgres, mariadb: MariaDB) -> None:
    for target in (f"sqlite:///{sqlite_path}", str(sqlite_path), postgres.url, mariadb.url):
        b = sql.Backend(target, pool_timeout=3)
        try:
            assert b.check_password(environ(), "bob", "hunter2") is True, target
        finally:
            b.close()


@pytest.mark.parametrize(("url", "path"), [
    ("sqlite:////srv/site/users.db", "/srv/site/users.db"),  # SQLAlchemy / dj-database-url: four slashes, absolute
    ("sqlite:///users.db", "users.db"),  # three slashes: relative
    ("sqlite:///data/users.db", "data/users.db"),
    ("SQLite:////x.db", "/x.db"),
])
def test_sqlite_urls_read_as_sqlalchemy_does(url: str, path: str) -> None:
    assert sql.sqlite_path(url) == path


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite://localhost/users.db", "sqlite:users.db",
                                 "postgresql:///x"])
def test_sqlite_urls_without_a_usable_path_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="SQLite URL"):
        sql.sqlite_path(url)
    if url.startswith("sqlite://"):
        with pytest.raises(ConfigError, match="SQLite URL"):
            sql.Backend(url)


def test_sqlite_url_with_four_slashes_is_absolute_and_three_relative(sqlite_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = sql.Backend(f"sqlite:///{sqlite_path}", pool_key=("url-test", "absolute"))
    monkeypatch.chdir(sqlite_path.parent)
    relative = sql.Backend(f"sqlite:///{sqlite_path.name}", pool_key=("url-test", "relative"))
    monkeypatch.chdir("/")
    try:
        for b in (absolute, relative):  # the relative URL was resolved where it was given, not at first use
            assert b.check_password(environ(), "bob", "hunter2") is True
            assert b.check_password(environ(), "bob", "wrong") is False
    finally:
        absolute.close()
        relative.close()


# ---------------------------------------------------------------------- the pool against real servers

def test_fork_child_opens_its_own_connection(server_db: DB) -> None:
    account = server_db.new_account()
    b = server_db.backend(account)
    assert b.check_password(environ(), "alice", "secret") == "alice@example.org"
    assert server_db.count(account) == 1
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            result = b.check_password(environ(), "bob", "hunter2")
            report = {"result": result, "server_count": server_db.count(account), "opened": b.stats()["opened"]}
            os.write(w, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        report = json.loads(f.read() or b"{}")
    os.waitpid(pid, 0)
    assert report == {"result": True, "server_count": 2, "opened": 1}
    # the parent's connection was neither closed nor used by the child: it still answers, without a retry
    assert b.check_password(environ(), "alice", "secret") == "alice@example.org"
    s = b.stats()
    assert (s["opened"], s["retries"], s["closed"]) == (1, 0, 0)
    deadline = time.monotonic() + 5
    while server_db.count(account) != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server_db.count(account) == 1  # the child's connection went away with the child


def test_twenty_threads_on_a_pool_of_four(server_db: DB) -> None:
    account = server_db.new_account()
    b = server_db.backend(account, pool_size=4, pool_timeout=10)
    expected = {("alice", "secret"): "alice@example.org", ("alice", "nope"): False, ("bob", "hunter2"): True,
                ("nobody", "x"): None, ("carol", "secret"): None}
    pairs = list(expected)
    errors: list[str] = []
    done = threading.Event()
    peak = [0]

    def monitor() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], server_db.count(account))
            time.sleep(0.01)

    def hammer(n: int) -> None:
        for i in range(25):
            user, password = pairs[(n + i) % len(pairs)]
            got = b.check_password(environ(), user, password)
            if got != expected[(user, password)]:
                errors.append(f"{user}/{password}: {got!r}")

    mon = threading.Thread(target=monitor)
    mon.start()
    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(20)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    done.set()
    mon.join()
    s = b.stats()
    assert errors == []
    assert 1 <= peak[0] <= 4
    assert s["opened"] <= 4 and s["timeouts"] == 0 and s["checkouts"] >= 500
    print(f"{server_db.kind}: 500 checks by 20 threads on 4 connections in {elapsed:.2f}s; peak {peak[0]} open")


def test_restart_mid_run_fails_fast_then_recovers(server_db: DB) -> None:
    account = server_db.new_account()
    timeout = 1.0
    b = server_db.backend(account, pool_size=4, pool_timeout=timeout, breaker_threshold=3, breaker_reset=0.3)
    assert b.check_password(environ(), "bob", "hunter2") is True
    stop = threading.Event()
    log: list[tuple[float, float, object]] = []
    lock = threading.Lock()

    def client() -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                got: object = b.check_password(environ(), "bob", "hunter2")
            except Exception as exc:
                got = exc
            with lock:
                log.append((t0, time.monotonic() - t0, got))
            time.sleep(0.005)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    server_db.server.stop()
    outage_start = time.monotonic()  # after stop() returns: a server shutting down may still answer meanwhile
    time.sleep(1.0)
    server_db.server.start()
    outage_end = time.monotonic()
    recovered_at = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with lock:
            late = [entry for entry in log if entry[0] > outage_end]
        if any(entry[2] is True for entry in late):
            recovered_at = min(entry[0] + entry[1] for entry in late if entry[2] is True)
            break
        time.sleep(0.02)
    time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join()
    assert recovered_at is not None, "the pool never recovered after the restart"
    results = {repr(entry[2]) for entry in log}
    assert results <= {"True", "None"}, results  # never a wrong "denied", never an exception
    during = [entry for entry in log if outage_start + 0.05 < entry[0] < outage_end - 0.3]
    assert during and all(entry[2] is None for entry in during)
    slowest = max(entry[1] for entry in log)
    assert slowest < timeout + 1.0, f"a request took {slowest:.2f}s during the outage"
    assert recovered_at - outage_end < 3.0
    s = b.stats()
    assert s["breaker_trips"] >= 1 and s["breaker_open"] == 0 and s["fast_failures"] > 0
    assert b.check_password(environ(), "alice", "secret") == "alice@example.org"
    print(f"{server_db.kind}: {len(during)} requests during the outage, slowest {slowest * 1000:.0f} ms; "
          f"recovered {recovered_at - outage_end:.2f}s after the restart")


AUTH_SCRIPT_CONSTRUCTOR = """\
from wsgiauth.backends import sql
backend = sql.{factory}
check_password = backend.check_password
"""

AUTH_SCRIPT_CALLABLE = """\
from wsgiauth.backends import sql

def connect():
    import {module}
    return {module}.connect({args})

backend = sql.Backend(connect, dialect="{dialect}")
check_password = backend.check_password
"""


@pytest.mark.parametrize("style", ["constructor", "callable"])
def test_reimported_auth_script_reuses_its_pool(server_db: DB, tmp_path: Path, style: str) -> None:
    name, password = account = server_db.new_account()
    srv = server_db.server
    if server_db.kind == "postgresql":
        info = f"host={srv.host} port={srv.port} dbname={srv.database} user={name} password={password}"
        factory = f"postgresql({info!r})"
        module, args, dialect = "psycopg", f"{info!r}, autocommit=True, connect_timeout=3", "postgresql"
    else:
        kwargs = {**srv.connect_kwargs, "user": name, "password": password}
        factory = f"mysql(**{kwargs!r})"
        module, args, dialect = "pymysql", f"**{kwargs!r}, autocommit=True, connect_timeout=3", "mysql"
    script = tmp_path / "auth.wsgi"
    text = (AUTH_SCRIPT_CONSTRUCTOR.format(factory=factory) if style == "constructor"
            else AUTH_SCRIPT_CALLABLE.format(module=module, args=args, dialect=dialect))
    script.write_text(text)

    def load(modname: str) -> Any:  # what mod_wsgi does on a changed mtime: a fresh module, no clean-up
        loader = importlib.machinery.SourceFileLoader(modname, str(script))
        spec = importlib.util.spec_from_loader(modname, loader)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    first = load(f"_wsgiauth_reimport_{style}_{server_db.kind}_1")
    assert server_db.count(account) == 0  # importing opened nothing
    assert first.check_password(environ(), "bob", "hunter2") is True
    assert server_db.count(account) == 1
    for i in range(2, 5):
        again = load(f"_wsgiauth_reimport_{style}_{server_db.kind}_{i}")
        assert again.backend.pool is first.backend.pool
        assert again.check_password(environ(), "alice", "secret") in ("alice@example.org", True)
        assert server_db.count(account) == 1
    first.backend.close()


# ---------------------------------------------------------------------- Django's tables and hashes

DJANGO_SCRIPT = r"""
import json, sys
import django
from django.conf import settings

settings.configure(
    DATABASES={"default": json.loads(sys.argv[1])},
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
    PASSWORD_HASHERS=["__main__.FastPBKDF2", "django.contrib.auth.hashers.PBKDF2PasswordHasher"],
    USE_TZ=True,
)
from django.contrib.auth.hashers import PBKDF2PasswordHasher


class FastPBKDF2(PBKDF2PasswordHasher):
    iterations = 2000  # keep the test quick; the stored hash carries its iteration count


django.setup()
from django.contrib.auth import authenticate
from django.contrib.auth.models import Group, User
from django.core.management import call_command

call_command("migrate", verbosity=0, interactive=False)
staff = Group.objects.create(name="staff")
editors = Group.objects.create(name="Éditeurs")
alice = User.objects.create_user("alice", password="correct horse")
alice.groups.add(staff, editors)
bob = User.objects.create_user("bob", password="b0b")
bob.groups.add(staff)
ghost = User.objects.create_user("ghost", password="boo", is_active=False)
ghost.groups.add(staff)
User.objects.create_user("nopass")  # unusable password: "!..."
zoe = User.objects.create_user("zoé", password="mötdepasse")
real = User.objects.create_user("real")  # Django's own default hasher and iteration count
real.password = PBKDF2PasswordHasher().encode("s3cret", PBKDF2PasswordHasher().salt())
real.save()
cases = json.loads(sys.argv[2])
print(json.dumps([authenticate(username=u, password=p) is not None for u, p in cases]))
"""

DJANGO_CASES = [
    ("alice", "correct horse"), ("alice", "wrong"), ("bob", "b0b"), ("ghost", "boo"), ("nopass", ""),
    ("nopass", "x"), ("zoé", "mötdepasse"), ("zoé", "motdepasse"), ("real", "s3cret"), ("real", "s3cret!"),
    ("nobody", "x"), ("ALICE", "correct horse"),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def django_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Callable[..., sql.Backend], list[bool]]]:
    if request.param == "sqlite":
        path = tmp_path / "db.sqlite3"
        settings: dict[str, Any] = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}
    else:
        srv: pg_launcher.Postgres = request.getfixturevalue("postgres")
        dbname = f"django{next(_users)}"
        srv.execute(f"CREATE DATABASE {dbname} OWNER {srv.user}", database="postgres")
        settings = {"ENGINE": "django.db.backends.postgresql", "NAME": dbname, "USER": srv.user,
                    "PASSWORD": srv.password, "HOST": srv.host, "PORT": str(srv.port)}
    out = subprocess.run([sys.executable, "-c", DJANGO_SCRIPT, json.dumps(settings), json.dumps(DJANGO_CASES)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    django_says = json.loads(out.stdout.strip().splitlines()[-1])
    made: list[sql.Backend] = []

    def make(**kwargs: Any) -> sql.Backend:
        if request.param == "sqlite":
            b = sql.sqlite(path, preset="django", **kwargs)
        else:
            b = sql.postgresql(f"host={srv.host} port={srv.port} dbname={dbname} user={srv.user} "
                               f"password={srv.password}", preset="django", **kwargs)
        made.append(b)
        return b

    yield make, django_says
    for b in made:
        b.close()


def test_django_users_without_django(django_db: tuple[Callable[..., sql.Backend], list[bool]]) -> None:
    make, django_says = django_db
    b = make()
    ours = [b.check_password(environ(), L(u), L(p)) for u, p in DJANGO_CASES]
    # the same answers as Django's own authenticate(): granted exactly when Django grants
    assert [r is True for r in ours] == django_says
    assert django_says == [True, False, True, False, False, False, True, False, True, False, False, False]
    by_case = dict(zip(DJANGO_CASES, ours, strict=True))
    assert by_case[("ghost", "boo")] is None  # inactive: unknown, like Django's ModelBackend
    assert by_case[("nobody", "x")] is None
    assert by_case[("alice", "wrong")] is False
    env = environ()
    assert sorted(b.groups_for_user(env, "alice")) == sorted(["staff", L("Éditeurs")])
    assert b.groups_for_user(env, "ghost") == []
    assert b.get_realm_hash(env, "alice", "x") is None  # Django stores no Digest hashes
    record = b.lookup(b"alice")
    assert record is not None and record.hash.startswith("pbkdf2_sha256$2000$")
    assert dict(record.attributes) in ({"is_staff": "False", "is_superuser": "False"},
                                       {"is_staff": "0", "is_superuser": "0"})


def test_sql_backend_does_not_import_django() -> None:
    code = ("import sys; from wsgiauth.backends import sql; b = sql.sqlite('/nonexistent', preset='django'); "
            "b.check_password({}, 'a', 'b'); print('django' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
