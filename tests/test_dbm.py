"""DBM backend: files made by Apache's own htdbm (and APR itself) read by wsgiauth, files written by wsgiauth read
by htdbm and APR, for the three types Debian's APR offers (SDBM, GDBM, DB).

`make test` runs this module twice: with the compiled modules, and with ``WSGIAUTH_NO_NATIVE=1`` (the pure-Python
SDBM; GDBM is the same Python over libgdbm in both modes; Berkeley DB needs the compiled wsgiauth._native_bdb, so its
cases are not collected in that run, and test_db_without_the_compiled_module_is_a_clear_store_error checks the
message a user then gets)."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from backends._common import missing, require_tool
from wsgiauth import StoreError, _compiled
from wsgiauth._dbmfile import PAIR_MAX, DbmFile, detect_type
from wsgiauth.backends import dbm

#: Berkeley DB is there unless the compiled modules are disabled (an installed wheel always has wsgiauth._native_bdb:
#: tests/test_packaging.py).
HAVE_DB = _compiled.load("_native_bdb") is not None
TYPES = {"SDBM": "sdbm", "GDBM": "gdbm", **({"DB": "db"} if HAVE_DB else {})}
# htdbm's hash flags (apache2-utils 2.4): -m apr1 (default), -B bcrypt, -s {SHA}, -d DES crypt, -p plaintext.
HASH_FLAGS = ["-m", "-B", "-s", "-d", "-p"]


def htdbm(*args: str | bytes, ok: bool = True) -> subprocess.CompletedProcess[bytes]:
    tool = require_tool("htdbm")
    proc = subprocess.run([tool, *args], capture_output=True, timeout=30)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def htdbm_list(path: Path, apache_type: str) -> bytes:
    proc = htdbm("-l", f"-T{apache_type}", str(path))
    return proc.stdout + proc.stderr  # htdbm -l writes its listing to stderr


def htdbm_verifies(path: Path, apache_type: str, user: bytes, password: bytes) -> bool:
    proc = htdbm("-vb", f"-T{apache_type}", str(path), user, password, ok=False)
    return proc.returncode == 0 and b"validated" in proc.stdout + proc.stderr


# ------------------------------------------------------------------------------------------------ APR itself


class Apr:
    """APR's own apr_dbm_* through ctypes: the reference reader/writer of every type (libaprutil 1.6)."""

    class Datum(ctypes.Structure):
        _fields_ = [("dptr", ctypes.c_char_p), ("dsize", ctypes.c_size_t)]

    def __init__(self) -> None:
        try:
            self.apr = ctypes.CDLL("libapr-1.so.0")
            self.util = ctypes.CDLL("libaprutil-1.so.0")
        except OSError:
            missing("libapr-1/libaprutil-1 are not installed (apache2 brings them)")
        self.apr.apr_initialize()
        self.pool = ctypes.c_void_p()
        self.apr.apr_pool_create_ex(ctypes.byref(self.pool), None, None, None)
        u = self.util
        u.apr_dbm_open_ex.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_char_p,
                                      ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
        u.apr_dbm_store.argtypes = [ctypes.c_void_p, self.Datum, self.Datum]
        u.apr_dbm_fetch.argtypes = [ctypes.c_void_p, self.Datum, ctypes.POINTER(self.Datum)]
        u.apr_dbm_close.argtypes = [ctypes.c_void_p]
        u.apr_dbm_delete.argtypes = [ctypes.c_void_p, self.Datum]

    def open(self, apache_type: str, path: Path, mode: int) -> ctypes.c_void_p:
        db = ctypes.c_void_p()
        # APR's permission bits (apr_fileperms_t): 0x0644 is rw-r--r--
        rv = self.util.apr_dbm_open_ex(ctypes.byref(db), apache_type.encode(), str(path).encode(), mode, 0x0644,
                                       self.pool)
        assert rv == 0, f"apr_dbm_open_ex: {rv}"
        return db

    def store(self, db: ctypes.c_void_p, key: bytes, value: bytes) -> int:
        return int(self.util.apr_dbm_store(db, self.Datum(key, len(key)), self.Datum(value, len(value))))

    def fetch(self, db: ctypes.c_void_p, key: bytes) -> bytes | None:
        out = self.Datum()
        assert self.util.apr_dbm_fetch(db, self.Datum(key, len(key)), ctypes.byref(out)) == 0
        return None if not out.dptr else ctypes.string_at(out.dptr, out.dsize)

    def delete(self, db: ctypes.c_void_p, key: bytes) -> int:
        return int(self.util.apr_dbm_delete(db, self.Datum(key, len(key))))

    def close(self, db: ctypes.c_void_p) -> None:
        self.util.apr_dbm_close(db)


READONLY, RWCREATE = 1, 3


@pytest.fixture(scope="module")
def apr() -> Apr:
    return Apr()


# ------------------------------------------------------------------------------------------------ values


def test_parse_value_follows_mod_authn_dbm_and_mod_authz_dbm() -> None:
    # hash up to the first ':'; groups = second field, or the whole value when there is no ':'
    e = dbm.parse_value(b"$apr1$x$y:g1,g2:a comment: with colons")
    assert (e.hash, e.groups, e.comment) == (b"$apr1$x$y", (b"g1", b"g2"), b"a comment: with colons")
    e = dbm.parse_value(b"staff,admins")
    assert (e.hash, e.groups, e.comment) == (b"staff,admins", (b"staff", b"admins"), None)
    assert dbm.parse_value(b"h::c").groups == ()
    assert dbm.parse_value(b"h:g1,,g2").groups == (b"g1", b"g2")
    assert dbm.parse_value(b"h:g1\x00:g2").groups == (b"g1",)  # Apache reads a C string


# ------------------------------------------------------------------------------------------------ htdbm -> us


@pytest.fixture(scope="module", params=list(TYPES))
def htdbm_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A database made by htdbm: one user per hash flag, each with and without groups."""
    apache_type = request.param
    path = tmp_path_factory.mktemp(f"htdbm-{apache_type}") / "users"
    first = True
    for flag in HASH_FLAGS:
        name = flag[1:]
        htdbm(f"-b{'c' if first else ''}{flag[1:]}", *(["-C", "4"] if flag == "-B" else []), f"-T{apache_type}",
              str(path), f"plain-{name}", f"pw-{name}")
        first = False
        htdbm(f"-b{flag[1:]}", "-t", *(["-C", "4"] if flag == "-B" else []), f"-T{apache_type}", str(path),
              f"grouped-{name}", f"pw-{name}", "staff,admins:Jane Doe, room 4")
    return apache_type, path


@pytest.mark.parametrize("flag", [f for f in HASH_FLAGS if f != "-p"])
def test_htdbm_files_right_wrong_unknown(htdbm_db: tuple[str, Path], flag: str) -> None:
    apache_type, path = htdbm_db
    backend = dbm.Backend(path)
    assert backend.type == TYPES[apache_type]
    name = flag[1:]
    for user in (f"plain-{name}", f"grouped-{name}"):
        assert backend.check_password({}, user, f"pw-{name}") is True
        assert backend.check_password({}, user, f"pw-{name}x") is False
        assert backend.check_password({}, user, "") is False
    assert backend.check_password({}, f"nobody-{name}", f"pw-{name}") is None
    assert backend.groups_for_user({}, f"grouped-{name}") == ["staff", "admins"]
    # a bare hash (no ':') is what mod_authz_dbm would take as the group list: it matches no real group
    assert "staff" not in backend.groups_for_user({}, f"plain-{name}")
    backend.close()


def test_htdbm_plaintext_is_refused_like_apache_on_linux(htdbm_db: tuple[str, Path]) -> None:
    _, path = htdbm_db
    backend = dbm.Backend(path)
    assert backend.check_password({}, "plain-p", "pw-p") is False


def test_list_users_matches_htdbm(htdbm_db: tuple[str, Path]) -> None:
    apache_type, path = htdbm_db
    listed = htdbm_list(path, apache_type)
    users = dbm.list_users(path)
    assert len(users) == 2 * len(HASH_FLAGS)
    for u in users:
        assert u in listed
    assert dbm.get_entry(path, "grouped-m").comment == b"Jane Doe, room 4"  # type: ignore[union-attr]


def test_detect_type_from_files(htdbm_db: tuple[str, Path]) -> None:
    apache_type, path = htdbm_db
    assert detect_type(str(path)) == TYPES[apache_type]
    with pytest.raises(StoreError):
        dbm.Backend(path, type={"SDBM": "gdbm", "GDBM": "db" if HAVE_DB else "sdbm", "DB": "gdbm"}[apache_type])


# ------------------------------------------------------------------------------------------------ us -> htdbm


@pytest.mark.parametrize("apache_type", list(TYPES))
def test_files_written_by_wsgiauth_pass_htdbm_verify(tmp_path: Path, apache_type: str) -> None:
    path = tmp_path / "users"
    t = TYPES[apache_type]
    dbm.add_user(path, "alice", "s3cret", type=t, cost=4)
    dbm.add_user(path, "bob", "hunter2", type=t, scheme="apr1", groups=["staff", "admins"], comment="Bob B")
    dbm.add_user(path, "carol", "pw", type=t, scheme="sha1")
    assert detect_type(str(path)) == t
    assert htdbm_verifies(path, apache_type, b"alice", b"s3cret")
    assert not htdbm_verifies(path, apache_type, b"alice", b"s3creT")
    assert htdbm_verifies(path, apache_type, b"bob", b"hunter2")
    assert htdbm_verifies(path, apache_type, b"carol", b"pw")
    listing = htdbm_list(path, apache_type)
    assert b"staff,admins:Bob B" in listing and b"Total #records : 3" in listing

    dbm.set_password(path, "bob", "new-pw", type=t, scheme="apr1")
    assert htdbm_verifies(path, apache_type, b"bob", b"new-pw")
    assert dbm.get_entry(path, "bob").groups == (b"staff", b"admins")  # type: ignore[union-attr]
    dbm.set_groups(path, "bob", ["ops"], type=t)
    assert dbm.get_entry(path, "bob").comment == b"Bob B"  # type: ignore[union-attr]
    assert dbm.Backend(path).groups_for_user({}, "bob") == ["ops"]
    assert htdbm_verifies(path, apache_type, b"bob", b"new-pw")

    assert dbm.delete_user(path, "carol", type=t) is True
    assert dbm.delete_user(path, "carol", type=t) is False
    assert not htdbm_verifies(path, apache_type, b"carol", b"pw")
    assert dbm.list_users(path) == [b"alice", b"bob"]


def test_management_refuses_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "users"
    dbm.add_user(path, "alice", "pw", type="sdbm", cost=4)
    with pytest.raises(ValueError, match="exists"):
        dbm.add_user(path, "alice", "pw", cost=4)
    with pytest.raises(ValueError, match="group"):
        dbm.add_user(path, "bob", "pw", groups=["a b"], cost=4)
    with pytest.raises(ValueError, match="group"):
        dbm.set_groups(path, "alice", ["a,b"])
    with pytest.raises(KeyError):
        dbm.set_password(path, "nobody", "pw", cost=4)
    with pytest.raises(ValueError, match="1008"):
        dbm.add_user(path, "carol", "pw", comment="x" * 1000, cost=4)
    assert dbm.list_users(path) == [b"alice"]


# ------------------------------------------------------------------------------------------------ SDBM at scale


def _key(i: int) -> bytes:
    # half of the names carry a byte >= 0x80 (latin-1 e-acute): the sdbm hash adds it as a signed char, as APR
    # does on x86, which changes bit 8 and up of the hash (pages 256+), so this needs the 10,000 users
    return b"user%05d" % i if i % 2 else b"\xe9user-%05d" % i


def _value(i: int) -> bytes:
    return b"$apr1$abcdefgh$0123456789012345678901:g%d,all" % i


def test_sdbm_10000_users_written_by_apr_are_all_found(tmp_path: Path, apr: Apr) -> None:
    path = tmp_path / "big"
    db = apr.open("SDBM", path, RWCREATE)
    for i in range(10_000):
        assert apr.store(db, _key(i), _value(i)) == 0
    apr.close(db)
    assert (tmp_path / "big.dir").stat().st_size > 0  # pages did split
    f = DbmFile(path)
    keys = list(f.keys())
    assert len(keys) == len(set(keys)) == 10_000
    assert all(f.fetch(_key(i)) == _value(i) for i in range(10_000))
    assert f.fetch(_key(10_000)) is None


def test_sdbm_10000_users_written_by_us_are_read_by_apr(tmp_path: Path, apr: Apr) -> None:
    path = tmp_path / "big"
    with DbmFile(path, "sdbm", writable=True) as w:
        for i in range(10_000):
            w.store(_key(i), _value(i))
        for i in range(0, 10_000, 3):
            assert w.delete(_key(i))
    db = apr.open("SDBM", path, READONLY)
    try:
        assert all(apr.fetch(db, _key(i)) == (None if i % 3 == 0 else _value(i)) for i in range(10_000))
    finally:
        apr.close(db)
    listing = htdbm_list(path, "SDBM")
    assert b"Total #records : 6666" in listing


def test_sdbm_writer_makes_the_same_bytes_as_apr(tmp_path: Path, apr: Apr) -> None:
    # inserts (with page splits), deletes and replacements, in the same order through APR and through wsgiauth
    ops: list[tuple[bytes, bytes | None]] = [(_key(i), b"v" * (i % 90) + b":g") for i in range(3000)]
    ops += [(_key(i), None) for i in range(0, 3000, 4)]
    ops += [(_key(i), b"replaced-%d" % i) for i in range(0, 3000, 7)]
    db = apr.open("SDBM", tmp_path / "apr", RWCREATE)
    for key, value in ops:
        assert (apr.store(db, key, value) if value is not None else apr.delete(db, key)) == 0
    apr.close(db)
    with DbmFile(tmp_path / "ours", "sdbm", writable=True) as w:
        for key, value in ops:
            if value is None:
                assert w.delete(key)
            else:
                w.store(key, value)
    for ext in (".pag", ".dir"):
        assert (tmp_path / f"ours{ext}").read_bytes() == (tmp_path / f"apr{ext}").read_bytes()
    assert (tmp_path / "ours.dir").stat().st_size > 0


def test_sdbm_pairs_near_the_1008_byte_limit(tmp_path: Path, apr: Apr) -> None:
    path = tmp_path / "wide"
    with DbmFile(path, "sdbm", writable=True) as w:
        for i in range(40):  # 40 pairs of 500..1008 bytes: most pages hold one or two, many splits
            key = b"k%02d-" % i + b"x" * (400 + 10 * i if i < 39 else 900)
            w.store(key, b"v" * (PAIR_MAX - len(key) if i >= 38 else 100))
        with pytest.raises(ValueError, match="1008"):
            w.store(b"k" * 1000, b"v" * 9)
    db = apr.open("SDBM", path, READONLY)
    try:
        for i in range(40):
            key = b"k%02d-" % i + b"x" * (400 + 10 * i if i < 39 else 900)
            assert apr.fetch(db, key) == b"v" * (PAIR_MAX - len(key) if i >= 38 else 100)
    finally:
        apr.close(db)
    # APR itself refuses the same oversized pair
    db = apr.open("SDBM", path, RWCREATE)
    try:
        assert apr.store(db, b"k" * 1000, b"v" * 9) != 0
    finally:
        apr.close(db)


@pytest.mark.parametrize("apache_type", list(TYPES))
def test_non_ascii_user_names(tmp_path: Path, apache_type: str) -> None:
    path = tmp_path / "users"
    utf8 = "jürgen".encode()
    latin1 = "jürgen".encode("latin-1")
    htdbm("-cbm", f"-T{apache_type}", str(path), utf8, b"pw-utf8")
    htdbm("-bm", f"-T{apache_type}", str(path), latin1, b"pw-latin1")
    backend = dbm.Backend(path)
    # mod_wsgi hands the raw request bytes decoded as latin-1
    assert backend.check_password({}, utf8.decode("latin-1"), "pw-utf8") is True
    assert backend.check_password({}, latin1.decode("latin-1"), "pw-latin1") is True
    assert backend.check_password({}, utf8.decode("latin-1"), "pw-latin1") is False
    assert sorted(dbm.list_users(path)) == sorted([utf8, latin1])


# ------------------------------------------------------------------------------------------------ Digest, groups


@pytest.mark.parametrize("t", list(TYPES.values()))
def test_digest_and_authname_group_keys(tmp_path: Path, t: str) -> None:
    from wsgiauth.hashes import ha1

    path = tmp_path / "users"
    with DbmFile(path, t, writable=True) as w:
        w.store(b"alice:Staff area", ha1(b"alice", b"Staff area", b"pw").encode() + b":ops")
        w.store(b"alice", b"$apr1$x$y:users")
    backend = dbm.Backend(path, realm="Staff area")
    assert backend.get_realm_hash({}, "alice", "Staff area") == ha1(b"alice", b"Staff area", b"pw")
    assert backend.get_realm_hash({}, "alice", "Other") is None
    assert backend.groups_for_user({}, "alice") == ["ops"]  # user:AuthName first, as mod_authz_dbm
    assert dbm.Backend(path).groups_for_user({}, "alice") == ["users"]
    assert dbm.Backend(path, realm="Other").groups_for_user({}, "alice") == ["users"]


# ------------------------------------------------------------------------------------------------ changes on disk


@pytest.mark.parametrize("apache_type", list(TYPES))
def test_rewritten_in_place_and_replaced_files_are_seen(tmp_path: Path, apache_type: str) -> None:
    path = tmp_path / "users"
    htdbm("-cbm", f"-T{apache_type}", str(path), "alice", "old")
    backend = dbm.Backend(path, check_interval=0)
    assert backend.check_password({}, "alice", "old") is True
    gen = backend.generation()
    # htdbm rewrites in place while we hold the database open (it must not be locked out by us)
    htdbm("-bm", f"-T{apache_type}", str(path), "alice", "new")
    htdbm("-bm", f"-T{apache_type}", str(path), "bob", "pw")
    assert backend.check_password({}, "alice", "new") is True
    assert backend.check_password({}, "alice", "old") is False
    assert backend.check_password({}, "bob", "pw") is True
    assert backend.generation() != gen
    htdbm("-x", f"-T{apache_type}", str(path), "bob")
    assert backend.check_password({}, "bob", "pw") is None
    # replaced by a new file (built elsewhere, renamed into place)
    other = tmp_path / "next"
    htdbm("-cbm", f"-T{apache_type}", str(other), "carol", "pw")
    for src, dst in zip(dbm_files(other, apache_type), dbm_files(path, apache_type), strict=True):
        os.replace(src, dst)
    assert backend.check_password({}, "carol", "pw") is True
    assert backend.check_password({}, "alice", "new") is None


@pytest.mark.parametrize("apache_type", list(TYPES))
def test_in_place_changes_are_seen_at_once_whatever_the_check_interval(tmp_path: Path, apache_type: str) -> None:
    path = tmp_path / "users"
    htdbm("-cbs", f"-T{apache_type}", str(path), "alice", "old")
    backend = dbm.Backend(path, check_interval=3600)
    assert backend.check_password({}, "alice", "old") is True
    htdbm("-bs", f"-T{apache_type}", str(path), "alice", "new")  # {SHA}: same length, same file size
    assert backend.check_password({}, "alice", "new") is True
    for i in range(60):  # enough for SDBM pages to split under the open reader
        htdbm("-bs", "-t", f"-T{apache_type}", str(path), f"user{i:02d}", "pw", "g" * 40)
    assert all(backend.check_password({}, f"user{i:02d}", "pw") is True for i in range(60))
    if apache_type == "SDBM":
        assert Path(str(path) + ".dir").stat().st_size > 0  # the pages did split


def dbm_files(path: Path, apache_type: str) -> list[Path]:
    if apache_type == "SDBM":
        return [Path(str(path) + ".dir"), Path(str(path) + ".pag")]
    return [path]


def test_missing_file_is_a_store_error_naming_path_and_uid(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=rf"{tmp_path}/nothing.*uid {os.geteuid()}"):
        dbm.Backend(tmp_path / "nothing")
    with pytest.raises(StoreError, match="does not exist"):
        dbm.Backend(tmp_path / "nothing", type="gdbm")


def test_unreadable_file_is_a_store_error_for_www_data(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        missing("needs root to run a check as www-data")
    path = tmp_path / "users"
    dbm.add_user(path, "alice", "pw", type="db" if HAVE_DB else "gdbm", cost=4)
    os.chmod(path, 0o600)
    os.chmod(tmp_path, 0o755)
    code = ("from wsgiauth.backends import dbm\n"
            f"try:\n    dbm.Backend({str(path)!r})\nexcept Exception as e:\n    print(type(e).__name__, e)\n")
    proc = subprocess.run(["setpriv", "--reuid=33", "--regid=33", "--clear-groups", sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=30)
    assert proc.stdout.startswith("StoreError"), proc.stdout + proc.stderr
    assert str(path) in proc.stdout and "uid 33 (www-data)" in proc.stdout and "permission denied" in proc.stdout


def test_corrupt_sdbm_page_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "users"
    dbm.add_user(path, "alice", "pw", type="sdbm", cost=4)
    Path(str(path) + ".pag").write_bytes(b"\xff\x7f" + b"\x01" * 1022)
    backend = dbm.Backend(path)
    with pytest.raises(StoreError, match="corrupt"):
        backend.lookup(b"alice")
    assert backend.check_password({}, "alice", "pw") is None  # on_error="unknown": a 401, no crash


def test_sdbm_reader_waits_for_a_writer_then_fails_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "users"
    dbm.add_user(path, "alice", "pw", type="sdbm", cost=4)
    reader = DbmFile(path, lock_timeout=0.05)
    with DbmFile(path, writable=True):
        with pytest.raises(StoreError, match="lock"):
            reader.fetch(b"alice")
    assert reader.fetch(b"alice") is not None


# ------------------------------------------------------------------------------------------------ threads, forks


@pytest.mark.parametrize("t", list(TYPES.values()))
def test_concurrent_readers_while_a_writer_updates(tmp_path: Path, t: str) -> None:
    path = tmp_path / "users"
    with DbmFile(path, t, writable=True) as w:
        for i in range(300):
            w.store(b"u%03d" % i, b"old-%d" % i)
    reader = DbmFile(path, check_interval=0)
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                for i in range(0, 300, 7):
                    v = reader.fetch(b"u%03d" % i)
                    assert v in (b"old-%d" % i, b"new-%d" % i), v
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for th in threads:
        th.start()
    try:
        for _ in range(3):
            with DbmFile(path, t, writable=True, lock_timeout=5) as w:
                for i in range(300):
                    w.store(b"u%03d" % i, b"new-%d" % i)
    finally:
        stop.set()
        for th in threads:
            th.join(10)
    assert not errors, errors[:3]
    assert reader.fetch(b"u150") == b"new-150"


@pytest.mark.parametrize("t", list(TYPES.values()))
def test_forked_child_reads_with_its_own_handle(tmp_path: Path, t: str) -> None:
    path = tmp_path / "users"
    dbm.add_user(path, "alice", "pw", type=t, scheme="sha1")
    backend = dbm.Backend(path)
    assert backend.check_password({}, "alice", "pw") is True
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        ok = backend.check_password({}, "alice", "pw") is True and backend.check_password({}, "x", "pw") is None
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert backend.check_password({}, "alice", "pw") is True


# ------------------------------------------------------------------------------------------------ without C


def test_db_without_the_compiled_module_is_a_clear_store_error(tmp_path: Path) -> None:
    """With WSGIAUTH_NO_NATIVE=1 (as on an install built without a compiler), a DB file made by htdbm is a StoreError
    that says what is missing, while SDBM and GDBM files still work (pure Python, and libgdbm at run time)."""
    for apache_type in ("DB", "SDBM", "GDBM"):
        htdbm("-cbm", f"-T{apache_type}", str(tmp_path / apache_type), "alice", "pw")
    code = (
        "import sys\n"
        "from wsgiauth import StoreError, _lowlevel\n"
        "from wsgiauth.backends import dbm\n"
        "assert not _lowlevel.NATIVE\n"
        f"print(dbm.Backend({str(tmp_path / 'SDBM')!r}).check_password({{}}, 'alice', 'pw'))\n"
        f"print(dbm.Backend({str(tmp_path / 'GDBM')!r}).check_password({{}}, 'alice', 'pw'))\n"
        "try:\n"
        f"    dbm.Backend({str(tmp_path / 'DB')!r})\n"
        "except StoreError as exc:\n"
        "    print(exc)\n"
        "print(sorted(m for m in sys.modules if m.startswith('wsgiauth._native')))\n"
    )
    env = {**os.environ, "WSGIAUTH_NO_NATIVE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                         check=True).stdout.splitlines()
    assert out[:2] == ["True", "True"]
    assert out[2] == (f"cannot open DBM database {tmp_path / 'DB'}: Berkeley DB files need wsgiauth's compiled "
                      "module wsgiauth._native_bdb, and it is disabled by WSGIAUTH_NO_NATIVE")
    assert out[3] == "[]"  # no compiled module was loaded


def test_the_pure_python_sdbm_writes_the_bytes_of_the_c_one(tmp_path: Path) -> None:
    """Inserts with page splits, replacements, deletes and pairs at the 1008-byte limit, in the same order through
    csrc/sdbm.c and through wsgiauth._puresdbm (whatever the mode: both are called directly): the same files, and
    each reads the other's."""
    import importlib
    import random

    from wsgiauth import _dbmfile
    from wsgiauth._puresdbm import SdbmFile, sdbm_hash

    try:
        native = _dbmfile._CFormat(importlib.import_module("wsgiauth._native_dbm"), "wa_sdbm_")
    except ImportError:
        pytest.skip("this installation has no compiled SDBM to compare the fallback with")
    rng = random.Random(16)
    ops: list[tuple[bytes, bytes | None]] = []
    for i in range(2500):
        key = _key(i) if i % 5 else bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 40)))
        size = PAIR_MAX - len(key) if i % 97 == 0 else rng.choice([0, 10, 90, 200])
        ops.append((key, bytes(rng.randrange(256) for _ in range(size))))
        if i % 7 == 0:
            ops.append((ops[rng.randrange(len(ops))][0], None))
    for key, _ in ops:
        assert sdbm_hash(key) == _sdbm_hash_c(key)
    c, py = native(str(tmp_path / "c"), True, 1000), SdbmFile(str(tmp_path / "py"), True, 1000)
    expected: dict[bytes, bytes] = {}
    for key, value in ops:  # the same outcome, op by op (a failed split is a failure on both sides)
        outcomes = []
        for h in (c, py):
            try:
                outcomes.append(h.delete(key) if value is None else h.store(key, value))
            except _dbmfile.Failed as exc:
                outcomes.append(f"failed: {exc}".split(":")[0])
        assert outcomes[0] == outcomes[1], (key, outcomes)
        if value is None:
            expected.pop(key, None)
        elif outcomes[0] is None:
            expected[key] = value
    assert c.close() and py.close()
    written = {name: [Path(str(tmp_path / name) + ext).read_bytes() for ext in (".pag", ".dir")] for name in ("c", "py")}
    assert written["c"] == written["py"]
    assert len(written["c"][1]) > 0  # pages did split
    for reader, files in ((SdbmFile, "c"), (native, "py")):
        h = reader(str(tmp_path / files), False, 1000)
        assert sorted(h.keys()) == sorted(expected)
        assert all(h.fetch(k) == v for k, v in expected.items())
        assert h.fetch(b"no such key") is None
        h.close()


def _sdbm_hash_c(key: bytes) -> int:
    import importlib

    lib = importlib.import_module("wsgiauth._native_dbm").lib
    return int(lib.wa_sdbm_hash(key, len(key))) & (2**64 - 1)
