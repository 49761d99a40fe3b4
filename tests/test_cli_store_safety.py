"""`wsgiauth user` and `wsgiauth doctor` against the store-safety findings of issue 15, through real subprocesses:

* F9: a user listed twice is deleted (and re-passworded) on every line, as Apache's `htpasswd -D` (and `htpasswd`) do;
* F10: concurrent `wsgiauth user` commands lose no update, and the file keeps its owner, group and mode;
* F11: DBM databases the CLI (or `wsgiauth.backends.dbm`) creates are 0640 group www-data; doctor warns on stores
  every local user can read;
* F15: doctor warns when a TLS connection does not check the server's certificate.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import platform
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends._common import SQL_SCHEMA, free_port, missing, require_tool
from wsgiauth import hashes
from wsgiauth._dbmfile import files_of
from wsgiauth._textfile import parse_htdigest, parse_htgroup, parse_htpasswd

WSGIAUTH = [sys.executable, "-m", "wsgiauth.cli"]
ROOT = Path(__file__).resolve().parents[1]
WWW_DATA = 33
SQL_KINDS = ["sqlite", "postgresql", "mysql"]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WSGIAUTH, *args], input=stdin, capture_output=True, text=True, timeout=120, cwd=ROOT)


def bcrypt4(password: str) -> str:
    return hashes.hash_password(password.encode(), "bcrypt", cost=4)


@pytest.fixture
def work() -> Iterator[Path]:
    # A directory www-data can traverse (doctor re-runs itself as www-data).
    d = Path(tempfile.mkdtemp(prefix="wsgiauth-safety-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------- F9


def test_user_delete_removes_every_line_like_htpasswd_D(work: Path) -> None:
    htpasswd = require_tool("htpasswd")
    text = (f"# hand-edited\nalice:{bcrypt4('first')}\nbob:{bcrypt4('bob pw')}\nalice:{bcrypt4('second')}\n"
            f"  alice:{bcrypt4('third')}\n")
    ours, theirs = work / "ours", work / "theirs"
    ours.write_text(text)
    theirs.write_text(text)
    ref = subprocess.run([htpasswd, "-D", str(theirs), "alice"], capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    r = run("user", "delete", "--htpasswd", str(ours), "alice")
    assert r.returncode == 0, r.stderr
    assert ours.read_bytes() == theirs.read_bytes()  # the same file htpasswd -D leaves: every alice line gone
    assert b"alice" not in ours.read_bytes()
    for old in ("first", "second", "third"):  # no old line is left to grant
        assert subprocess.run([htpasswd, "-vb", str(ours), "alice", old], capture_output=True).returncode != 0
    assert subprocess.run([htpasswd, "-vb", str(ours), "bob", "bob pw"], capture_output=True).returncode == 0
    assert run("user", "delete", "--htpasswd", str(ours), "alice").returncode == 1


def test_user_passwd_changes_every_line_like_htpasswd(work: Path) -> None:
    htpasswd = require_tool("htpasswd")
    text = f"alice:{bcrypt4('first')}\nbob:{bcrypt4('bob pw')}\nalice:{bcrypt4('second')}\n"
    ours, theirs = work / "ours", work / "theirs"
    ours.write_text(text)
    theirs.write_text(text)
    ref = subprocess.run([htpasswd, "-bB", "-C", "4", str(theirs), "alice", "new pw"], capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    r = run("user", "passwd", "--htpasswd", str(ours), "alice", "--cost", "4", stdin="new pw\n")
    assert r.returncode == 0, r.stderr

    def shape(p: Path) -> list[str]:
        return [line.split(":", 1)[0] for line in p.read_text().splitlines()]

    assert shape(ours) == shape(theirs) == ["alice", "bob", "alice"]  # htpasswd rewrites both alice lines in place
    for f in (ours, theirs):
        alice = [line.split(":", 1)[1] for line in f.read_text().splitlines() if line.startswith("alice:")]
        assert all(hashes.verify(b"new pw", h) for h in alice), f
        assert not any(hashes.verify(old, h) for h in alice for old in (b"first", b"second")), f
    assert parse_htpasswd(ours.read_bytes()).users[b"bob"] == parse_htpasswd(text.encode()).users[b"bob"]


def test_user_delete_htdigest_every_line_of_the_realm(work: Path) -> None:
    f = work / "digest"

    def ha1(user: str, realm: str, pw: str) -> str:
        return hashlib.md5(f"{user}:{realm}:{pw}".encode()).hexdigest()

    f.write_text(f"alice:Staff:{ha1('alice', 'Staff', 'one')}\nalice:Other:{ha1('alice', 'Other', 'o')}\n"
                 f"bob:Staff:{ha1('bob', 'Staff', 'b')}\nalice:Staff:{ha1('alice', 'Staff', 'two')}\n")
    r = run("user", "passwd", "--htdigest", str(f), "--realm", "Staff", "alice", stdin="three\n")
    assert r.returncode == 0, r.stderr
    lines = f.read_text().splitlines()
    assert lines.count(f"alice:Staff:{ha1('alice', 'Staff', 'three')}") == 2  # both Staff lines, no old HA1 left
    assert f"alice:Other:{ha1('alice', 'Other', 'o')}" in lines
    r = run("user", "delete", "--htdigest", str(f), "--realm", "Staff", "alice")
    assert r.returncode == 0, r.stderr
    table = parse_htdigest(f.read_bytes()).hashes
    assert (b"alice", b"Staff") not in table
    assert table[(b"alice", b"Other")] == ha1("alice", "Other", "o")  # another realm's line is not this user
    assert table[(b"bob", b"Staff")] == ha1("bob", "Staff", "b")


def test_user_delete_htgroup_from_every_group_and_line(work: Path) -> None:
    f = work / "groups"
    f.write_text("staff: alice bob\nops: alice\nstaff: carol alice\nadmins: dave\n")
    r = run("user", "delete", "--htgroup", str(f), "alice")
    assert r.returncode == 0, r.stderr
    table = parse_htgroup(f.read_bytes())
    assert b"alice" not in table.by_user
    assert table.members == {b"staff": (b"bob", b"carol"), b"ops": (), b"admins": (b"dave",)}


def test_user_edit_refused_where_apache_would_read_it_otherwise(work: Path) -> None:
    """A line ending in a backslash joins the next one for Apache: removing the "alice" line after it would change
    bob's hash. Nothing is written; the error says why."""
    f = work / "users"
    text = f"bob:{bcrypt4('bob pw')}\\\nalice:{bcrypt4('a')}\ncarol:{bcrypt4('c')}\n"
    f.write_text(text)
    r = run("user", "delete", "--htpasswd", str(f), "alice")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "not changed" in r.stderr and "Traceback" not in r.stderr
    assert f.read_text() == text


# ---------------------------------------------------------------------------------------------------- F10


def _opened_by(pid: int, targets: set[str]) -> bool:
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in targets:
                    return True
    except OSError:
        return True  # gone: it is not waiting
    return False


_READ = {"x86_64": "0", "amd64": "0", "aarch64": "63", "arm64": "63"}.get(platform.machine().lower())


def _reading_stdin(pid: int) -> bool:
    """Whether the process sits in read(0, ...): at its password prompt."""
    if _READ is None:  # an architecture whose system call numbers we do not know: give them time instead
        time.sleep(3)
        return True
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return True  # gone, or not inspectable: do not wait for it
    return fields[:2] == [_READ, "0x0"]


def _wait(condition: object, procs: list[subprocess.Popen[bytes]], limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if all(p.poll() is not None or condition(p.pid) for p in procs):  # type: ignore[operator]
            return
        time.sleep(0.02)


class Store:
    """One kind of store for the concurrency test: how to address it, seed it, gate it and read it back."""

    def __init__(self, kind: str, directory: Path, url: str | None = None) -> None:
        self.kind = kind
        self.dir = directory
        self.path = directory / "store"
        self.url = url or f"sqlite:///{self.path}"
        self.hashing = ["--cost", "4"] + (["--scheme", "bcrypt"] if kind in SQL_KINDS else [])
        if kind in ("htpasswd", "htdigest", "htgroup"):
            self.args = [f"--{kind}", str(self.path)] + (["--realm", "Staff"] if kind == "htdigest" else [])
            self.files = [self.path]
        elif kind in SQL_KINDS:
            self.args = ["--sql", self.url]
            self.files = [self.path] if kind == "sqlite" else []
        else:
            self.args = ["--dbm", str(self.path), "--dbm-type", kind]
            self.files = [Path(f) for f in files_of(str(self.path), kind)]  # type: ignore[arg-type]

    def add_args(self, user: str, round_: int) -> list[str]:
        if self.kind == "htgroup":
            return ["user", "add", *self.args, user, "--group", "staff"]
        return ["user", "add", *self.args, user, *self.hashing]

    def passwd_args(self, n: int) -> list[str]:
        if self.kind == "htgroup":  # no passwords there: concurrent "bob joins group gN" instead
            return ["user", "add", *self.args, "bob", "--group", f"g{n}"]
        return ["user", "passwd", *self.args, "bob", *self.hashing]

    @contextlib.contextmanager
    def gate(self) -> Iterator[set[str]]:
        """Hold the store's writer lock (the documented one, where it is an flock that waiters keep open) so that
        every command reaches it before any goes on; yields the files a waiting command has open."""
        if self.kind in ("htpasswd", "htdigest", "htgroup", "db"):
            fd = os.open(self.path, os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield {str(self.path)}
            finally:
                os.close(fd)
        else:  # SDBM and GDBM writers poll a lock of the C core's, SQLite its own: the password prompt is the gate
            yield set()

    def users(self) -> dict[str, str]:
        """user -> stored hash (htgroup: the comma-joined groups), as Apache (or the database) reads it."""
        data = self.path.read_bytes() if self.kind in ("htpasswd", "htdigest", "htgroup") else b""
        if self.kind == "htpasswd":
            return {u.decode(): h for u, h in parse_htpasswd(data).users.items()}
        if self.kind == "htdigest":
            return {u.decode(): h for (u, realm), h in parse_htdigest(data).hashes.items() if realm == b"Staff"}
        if self.kind == "htgroup":
            return {u.decode(): ",".join(sorted(g.decode() for g in gs)) for u, gs in parse_htgroup(data).by_user.items()}
        if self.kind in SQL_KINDS:
            return {str(n): str(h) for n, h in _query(self.url, "SELECT name, password_hash FROM wsgiauth_user")}
        from wsgiauth.backends import dbm

        return {u.decode(): dbm.get_entry(str(self.path), u, type=self.kind).hash.decode()  # type: ignore[union-attr]
                for u in dbm.list_users(str(self.path), type=self.kind)}

    def verifies(self, stored: str, user: str, password: str) -> bool:
        if self.kind == "htdigest":
            return stored == hashlib.md5(f"{user}:Staff:{password}".encode()).hexdigest()
        return hashes.verify(password.encode(), stored)


def _seed(store: Store, users: list[str]) -> None:
    """Add users through the library (quicker than a command each; the commands under test run concurrently)."""
    from wsgiauth._cli_store import FileStore, sql_store
    from wsgiauth.backends import dbm

    if store.kind == "sqlite" and not store.path.exists():
        conn = sqlite3.connect(store.path)
        conn.executescript(SQL_SCHEMA.read_text())
        conn.close()
    for u in users:
        name = u.encode()
        if store.kind == "htgroup":
            FileStore("htgroup", store.path).set_groups(name, [b"staff"])
        elif store.kind in ("htpasswd", "htdigest"):
            FileStore(store.kind, store.path, b"Staff" if store.kind == "htdigest" else None).set(
                name, b"seed pw", cost=4)
        elif store.kind in SQL_KINDS:
            sql = sql_store(store.url)
            try:
                sql.set(name, b"seed pw", scheme="bcrypt", cost=4)
            finally:
                sql.close()
        else:
            dbm.add_user(store.path, name, "seed pw", type=store.kind, cost=4)


def _round(store: Store, round_: int) -> None:
    """10 `delete mallory-i`, 5 `passwd bob` (htgroup: bob joins 5 groups) and 5 `add new-round-i`, all at once."""
    jobs: list[tuple[list[str], str | None]] = []
    jobs += [(["user", "delete", *store.args, f"mallory-{i}"], None) for i in range(10)]
    jobs += [(store.passwd_args(i), None if store.kind == "htgroup" else f"bob-{round_}-{i}") for i in range(5)]
    jobs += [(store.add_args(f"new-{round_}-{i}", round_), None if store.kind == "htgroup" else f"new pw {round_}-{i}")
             for i in range(5)]
    with store.gate() as waiting_on:
        procs = [subprocess.Popen([*WSGIAUTH, *args], stdin=subprocess.PIPE if pw else subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT) for args, pw in jobs]
        prompted = [p for p, (_, pw) in zip(procs, jobs) if pw]
        _wait(_reading_stdin, prompted, 30)  # every password prompt reached...
        for p, (_, pw) in zip(procs, jobs):
            if pw:
                assert p.stdin is not None
                p.stdin.write(pw.encode() + b"\n")
                p.stdin.close()  # ...then every password given at once
                p.stdin = None
        if waiting_on:
            _wait(lambda pid: _opened_by(pid, waiting_on), procs, 20)  # ...and every command at the lock
    failures = []
    for p, (args, _) in zip(procs, jobs):
        out, err = p.communicate(timeout=120)
        if p.returncode != 0:
            failures.append((args, p.returncode, err.decode(errors="replace")))
    assert not failures, failures


def _server_url(kind: str, request: pytest.FixtureRequest) -> str | None:
    """sqlite: None (a file in the test's directory); postgresql, mysql: a fresh schema on the suite's server."""
    if kind not in ("postgresql", "mysql"):
        return None
    server = request.getfixturevalue("postgres" if kind == "postgresql" else "mariadb")
    url = str(server.url)
    for table in ("wsgiauth_group_member", "wsgiauth_realm_hash", "wsgiauth_user"):
        _query(url, f"DELETE FROM {table}")
    return url


def _query(url: str, text: str) -> list[tuple[object, ...]]:
    """One statement on the store's own (autocommit) connection."""
    from wsgiauth._cli_store import sql_store

    db = sql_store(url)
    try:
        cur = db.conn.cursor()
        cur.execute(text)
        rows = [tuple(r) for r in cur.fetchall()] if cur.description else []
        cur.close()
        return rows
    finally:
        db.close()


@pytest.mark.parametrize("kind", ["htpasswd", "htdigest", "htgroup", "db", "gdbm", "sdbm", *SQL_KINDS])
def test_concurrent_user_commands_lose_no_update(kind: str, work: Path, request: pytest.FixtureRequest) -> None:
    if kind in ("htpasswd", "htdigest", "htgroup"):
        require_tool("htpasswd")
    store = Store(kind, work, _server_url(kind, request))
    rounds = 3 if kind == "htpasswd" else 1 if kind in ("postgresql", "mysql") else 2
    _seed(store, ["bob", *(f"mallory-{i}" for i in range(10))])
    if os.geteuid() == 0:
        for f in store.files:
            os.chown(f, WWW_DATA, WWW_DATA)
    for f in store.files:
        f.chmod(0o640)
    for round_ in range(rounds):
        _round(store, round_)
        users = store.users()
        assert not [u for u in users if u.startswith("mallory")], users  # every delete landed
        for i in range(5):  # every add landed, with its password
            name = f"new-{round_}-{i}"
            assert name in users, (name, sorted(users))
            if kind != "htgroup":
                assert store.verifies(users[name], name, f"new pw {round_}-{i}")
        if kind == "htgroup":  # every one of the concurrent joins landed
            assert set(users["bob"].split(",")) >= {"staff", "g0", "g1", "g2", "g3", "g4"}
        else:  # one of the concurrent passwords won, whole
            assert any(store.verifies(users["bob"], "bob", f"bob-{round_}-{i}") for i in range(5))
        if kind in ("htpasswd", "htdigest"):
            assert store.path.read_text().count("\nbob:") + store.path.read_text().startswith("bob:") == 1
        for f in store.files:  # owner, group and mode kept
            st = f.stat()
            assert stat.S_IMODE(st.st_mode) == 0o640, f
            if os.geteuid() == 0:
                assert (st.st_uid, st.st_gid) == (WWW_DATA, WWW_DATA), f
        assert sorted(p.name for p in work.iterdir() if p.name.startswith(".")) == []  # no temporary file left
        _seed(store, [f"mallory-{i}" for i in range(10)])  # the next round deletes them again


@pytest.mark.parametrize("kind", SQL_KINDS)
def test_concurrent_add_of_one_user_sql(kind: str, work: Path, request: pytest.FixtureRequest) -> None:
    """Ten `user add carol` at once: one wins, the others say the user exists (no traceback, no deadlock)."""
    url = _server_url(kind, request) or f"sqlite:///{work / 'users.sqlite'}"
    if kind == "sqlite":
        conn = sqlite3.connect(work / "users.sqlite")
        conn.executescript(SQL_SCHEMA.read_text())
        conn.close()
    procs = [subprocess.Popen([*WSGIAUTH, "user", "add", "--sql", url, "carol", "--group", "staff",
                               "--scheme", "bcrypt", "--cost", "4"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=ROOT) for _ in range(10)]
    _wait(_reading_stdin, procs, 30)
    for i, p in enumerate(procs):
        assert p.stdin is not None
        p.stdin.write(f"pw {i}\n".encode())
        p.stdin.close()
        p.stdin = None
    results = [(p.wait(timeout=120), p.stderr.read().decode() if p.stderr else "") for p in procs]
    assert sorted(code for code, _ in results) == [0] + [1] * 9, results
    assert all("already exists" in err for code, err in results if code == 1), results
    assert _query(url, "SELECT count(*) FROM wsgiauth_group_member WHERE username = 'carol'") == [(1,)]


# ---------------------------------------------------------------------------------------------------- F11


@pytest.mark.parametrize("kind", ["db", "gdbm", "sdbm"])
def test_user_add_creates_private_dbm_files(kind: str, work: Path) -> None:
    htdbm = require_tool("htdbm")
    path = work / "users"
    r = run("user", "add", "--dbm", str(path), "--dbm-type", kind, "hank", "--cost", "4", stdin="dbm pw\n")
    assert r.returncode == 0, r.stderr
    made = files_of(str(path), kind)  # type: ignore[arg-type]
    assert made and all(os.path.exists(f) for f in made)
    for f in made:
        st = os.stat(f)
        assert stat.S_IMODE(st.st_mode) == 0o640, f  # not 0644: other local users cannot read the hashes
        if os.geteuid() == 0:
            assert st.st_gid == WWW_DATA, f  # ...and Apache (www-data) can
    assert sorted(p.name for p in work.iterdir()) == sorted(os.path.basename(f) for f in made)  # nothing else
    ok = subprocess.run([htdbm, "-vb", f"-T{kind.upper()}", str(path), "hank", "dbm pw"], capture_output=True,
                        text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr  # Apache's tool reads the database made this way


@pytest.mark.parametrize("kind", ["db", "gdbm", "sdbm"])
def test_dbm_add_user_creates_private_files_whatever_the_umask(kind: str, work: Path) -> None:
    from wsgiauth.backends import dbm

    path = work / "users"
    old = os.umask(0o002)
    try:
        dbm.add_user(path, "alice", "pw", type=kind, cost=4)
    finally:
        os.umask(old)
    for f in files_of(str(path), kind):  # type: ignore[arg-type]
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o640, f
    assert dbm.Backend(path, type=kind).check_password({}, "alice", "pw") is True


def test_doctor_warns_on_world_readable_stores(work: Path) -> None:
    htdbm = require_tool("htdbm")
    users, digest, groups = work / "users", work / "digest", work / "groups"
    users.write_text(f"alice:{bcrypt4('pw')}\n")
    digest.write_text(f"alice:Staff:{hashlib.md5(b'alice:Staff:pw').hexdigest()}\n")
    groups.write_text("staff: alice\n")
    dbm_path = work / "dbm-users"
    subprocess.run([htdbm, "-cbB", "-C", "4", "-TSDBM", str(dbm_path), "bob", "pw"], check=True, capture_output=True)
    sqlite_db = work / "users.sqlite"
    conn = sqlite3.connect(sqlite_db)
    conn.executescript(SQL_SCHEMA.read_text())
    conn.close()
    stores = [users, digest, groups, Path(f"{dbm_path}.pag"), Path(f"{dbm_path}.dir"), sqlite_db]
    conf = work / "site.toml"
    conf.write_text(textwrap.dedent(f"""
        realm = "Staff"
        backend = "files"
        [backends.files]
        type = "htpasswd"
        users = "{users}"
        digest = "{digest}"
        groups = "{groups}"
        [backends.d]
        type = "dbm"
        path = "{dbm_path}"
        dbm_type = "sdbm"
        [backends.s]
        type = "sql"
        driver = "sqlite"
        database = "{sqlite_db}"
    """))
    conf.chmod(0o644)
    for f in stores:
        f.chmod(0o644)
    r = run("doctor", str(conf))
    assert r.returncode == 0, r.stdout + r.stderr  # warnings, not problems
    for f in stores:
        assert f"{f} is readable by every local user (mode 0644)" in r.stdout, (f, r.stdout)
        assert f"fix: chmod o-rwx {f}\n" in r.stdout, (f, r.stdout)
    assert r.stdout.count("is readable by every local user") == len(stores), r.stdout

    users.chmod(0o646)  # writable by everyone: anyone can add themselves
    r = run("doctor", str(conf))
    assert r.returncode == 1
    assert f"FAIL  backends.files: htpasswd file {users} is writable by every local user (mode 0646)" in r.stdout

    for f in stores:
        f.chmod(0o640)
        if os.geteuid() == 0:
            os.chown(f, 0, WWW_DATA)
    r = run("doctor", str(conf))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "every local user" not in r.stdout


def test_doctor_no_warning_behind_a_closed_directory(work: Path) -> None:
    """A 0644 file in a directory other users cannot enter (0750 root:www-data) is not readable by them."""
    if os.geteuid() != 0:
        missing("needs root to give the directory to www-data (CI runs as root)")
    closed = work / "closed"
    closed.mkdir()
    closed.chmod(0o750)
    os.chown(closed, 0, WWW_DATA)
    users = closed / "users"
    users.write_text(f"alice:{bcrypt4('pw')}\n")
    users.chmod(0o644)
    conf = work / "closed.toml"
    conf.write_text(f'[backends.files]\ntype = "htpasswd"\nusers = "{users}"\n')
    conf.chmod(0o644)
    r = run("doctor", str(conf))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"ok    backends.files: htpasswd file {users} is readable" in r.stdout  # www-data gets in...
    assert "every local user" not in r.stdout  # ...others do not


# ---------------------------------------------------------------------------------------------------- F15


def test_doctor_warns_on_ldap_tls_without_verification(work: Path) -> None:
    from backends import slapd as L

    if L.find_tool("slapd") is None:
        missing("slapd is not installed (apt-get install slapd)")
    with L.Slapd() as slapd:
        (work / "svc").write_text(L.SERVICE_PW)
        (work / "svc").chmod(0o640)
        if os.geteuid() == 0:
            os.chown(work / "svc", 0, WWW_DATA)
        conf = work / "ldap.toml"
        for name, url, extra in (("ldaps", f"{slapd.ldaps_url}/{L.PEOPLE}?uid", ""),
                                 ("starttls", f"{slapd.url}/{L.PEOPLE}?uid", "starttls = true\n")):
            conf.write_text(textwrap.dedent(f"""
                [backends.corp]
                type = "ldap"
                url = "{url}"
                bind_dn = "{L.SERVICE_DN}"
                bind_password_file = "svc"
                verify = false
            """) + extra)
            conf.chmod(0o644)
            r = run("doctor", str(conf))
            assert r.returncode == 0, (name, r.stdout + r.stderr)  # a warning, not a failure
            assert "unverified" not in r.stdout, (name, r.stdout)
            warn = [line for line in r.stdout.splitlines() if line.startswith("WARN")]
            assert len(warn) == 1, (name, r.stdout)
            assert warn[0].startswith("WARN  backends.corp") and "(verify = false)" in warn[0], (name, r.stdout)
            assert 'fix: set ca_file = "/path/to/ca.pem" in backends.corp' in r.stdout, (name, r.stdout)


def test_doctor_warns_on_rediss_without_verification(work: Path) -> None:
    from backends.redis import Redis, redis_server_path
    from backends.slapd import make_ca

    if redis_server_path() is None:
        missing("redis-server is not installed (apt-get install redis-server)")

    class TlsRedis(Redis):
        """The launcher's Redis, also listening with TLS on tls_port (certificate from a throw-away CA)."""

        def __init__(self) -> None:
            super().__init__()
            self.tls_port = free_port()
            self.ca, self.cert, self.key = make_ca(self.dir / "tls")

        def _command(self) -> list[str]:
            return [*super()._command(), "--tls-port", str(self.tls_port), "--tls-cert-file", str(self.cert),
                    "--tls-key-file", str(self.key), "--tls-ca-cert-file", str(self.ca), "--tls-auth-clients", "no"]

    users = work / "users"
    users.write_text(f"alice:{bcrypt4('pw')}\n")
    users.chmod(0o640)
    if os.geteuid() == 0:
        os.chown(users, 0, WWW_DATA)
    with TlsRedis() as srv:
        ca = work / "ca.pem"
        ca.write_bytes(srv.ca.read_bytes())
        ca.chmod(0o644)
        conf = work / "redis.toml"
        base = f'[backends.files]\ntype = "htpasswd"\nusers = "{users}"\n[redis]\n'
        conf.write_text(base + f'url = "rediss://127.0.0.1:{srv.tls_port}/0?ssl_cert_reqs=none"\n')
        conf.chmod(0o644)
        r = run("doctor", str(conf))
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"WARN  redis: 127.0.0.1:{srv.tls_port} answers over TLS, but its certificate is not checked " \
               "(ssl_cert_reqs=none)" in r.stdout, r.stdout
        assert "fix: give the CA in the URL instead: rediss://...?ssl_ca_certs=" in r.stdout
        assert "unverified" not in r.stdout
        conf.write_text(base + f'url = "rediss://127.0.0.1:{srv.tls_port}/0?ssl_ca_certs={ca}"\n')
        r = run("doctor", str(conf))
        assert r.returncode == 0, r.stdout + r.stderr
        assert "not checked" not in r.stdout, r.stdout
        # the CA given in the URL is the one the handshake trusts (the test certificate lives 2 days: expiry warning)
        assert f"redis: certificate of 127.0.0.1:{srv.tls_port} expires in" in r.stdout or \
            f"redis: 127.0.0.1:{srv.tls_port} answers over TLS, certificate valid for" in r.stdout, r.stdout
