"""Fuzzing every place where a user or an operator controls bytes: only documented exceptions, never a crash, never a
grant.

* htpasswd / htdigest / htgroup parsers (random and structured files) and the backend over them;
* DBM values (``dbm.parse_value`` and the backend over a stored random value);
* SDBM pages: random and corrupted ``.pag``/``.dir`` files opened by the C reader (in process), and the same C code
  built with AddressSanitizer + UndefinedBehaviorSanitizer in a standalone driver (``tests/asan_driver.c``) fed a
  corpus of real files made by ``htdbm`` and wsgiauth, real hashes, and random mutations of them;
* LDAP URLs and filters (``parse_ldap_url``: only ``ConfigError``);
* the TOML configuration loader (random bytes and random documents: only ``ConfigError``);
* the middleware's Digest header parser and the whole middleware: only ``DigestError`` from the parser; a 401 and
  never the application for a header that is not exactly right.

``python tests/test_fuzz.py asan SECONDS`` (``make asan``) runs the ASan driver for longer than the normal suite does.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backends._common import missing  # noqa: E402
from wsgiauth import _digest, config, hashes  # noqa: E402
from wsgiauth._dbmfile import DbmFile  # noqa: E402
from wsgiauth._ldapurl import normalize_filter, parse_ldap_url  # noqa: E402
from wsgiauth._textfile import parse_htdigest, parse_htgroup, parse_htpasswd  # noqa: E402
from wsgiauth.backends import dbm as dbm_backend  # noqa: E402
from wsgiauth.backends import htpasswd as htpasswd_backend  # noqa: E402
from wsgiauth.exceptions import ConfigError, InvalidHashError, StoreError  # noqa: E402
from wsgiauth.middleware import AuthMiddleware  # noqa: E402

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.function_scoped_fixture])

# Bytes that matter to Apache's line reader and word splitter, mixed into random data.
_TRICKY = [b":", b"::", b"\n", b"\r\n", b"\\\n", b"\\", b"#", b" ", b"\t", b"\x00", b'"', b"'", b"\xff", b"\xc3\xa9",
           b"$apr1$", b"$2y$04$", b"{SHA}", b"alice", b"x" * 9000]
tricky_bytes = st.lists(st.one_of(st.sampled_from(_TRICKY), st.binary(max_size=20)), max_size=30).map(b"".join)
any_file = st.one_of(st.binary(max_size=2000), tricky_bytes)


# ---------------------------------------------------------------------------------------------- text files


@FUZZ
@given(any_file)
def test_htpasswd_parser_never_raises_and_names_are_clean(data: bytes) -> None:
    table = parse_htpasswd(data)
    for user, stored in table.users.items():
        assert isinstance(user, bytes) and isinstance(stored, str)
        # a name is the text before the first ':' of one logical line, cut at NUL
        assert b":" not in user and b"\n" not in user and b"\x00" not in user
    assert table.timing_hash is None or table.timing_hash in table.users.values()


@FUZZ
@given(any_file)
def test_htdigest_parser_never_raises(data: bytes) -> None:
    table = parse_htdigest(data)
    for (user, realm), ha1 in table.hashes.items():
        assert b":" not in user and b":" not in realm and b"\x00" not in user + realm
        assert isinstance(ha1, str)


@FUZZ
@given(any_file)
def test_htgroup_parser_never_raises_and_indexes_agree(data: bytes) -> None:
    table = parse_htgroup(data)
    for group, members in table.members.items():
        assert b":" not in group and b"\x00" not in group
        for m in members:
            assert group in table.by_user[m]
    for user, groups in table.by_user.items():
        for g in groups:
            assert user in table.members[g]


@FUZZ
@given(data=any_file, password=st.binary(max_size=100))
def test_htpasswd_backend_on_random_file_never_grants(tmp_path_factory: Any, data: bytes, password: bytes) -> None:
    """Whatever bytes the file holds, a random password is never granted and nothing escapes the hook."""
    d = tmp_path_factory.mktemp("ht")
    (d / "users").write_bytes(data)
    (d / "groups").write_bytes(data)
    (d / "digest").write_bytes(data)
    backend = htpasswd_backend.Backend(d / "users", groups=d / "groups", digest=d / "digest", check_interval=0)
    environ: dict[str, Any] = {"REMOTE_ADDR": "127.0.0.1"}
    users = [*list(parse_htpasswd(data).users)[:5], b"alice", b"nobody"]
    for user in users:
        name = user.decode("latin-1")
        answer = backend.check_password(environ, name, password.decode("latin-1"))
        assert answer in (None, False), (user, answer)
        assert isinstance(backend.groups_for_user(environ, name), list)
        ha1 = backend.get_realm_hash(environ, name, "realm")
        assert ha1 is None or (len(ha1) == 32 and set(ha1) <= set("0123456789abcdef"))


@FUZZ
@given(stored=st.one_of(st.text(max_size=80), st.sampled_from([
    "$apr1$", "$apr1$$", "$apr1$abc$", "$apr1$abcdefghi$" + "a" * 22, "$2y$04$" + "." * 53, "$2y$99$" + "a" * 53,
    "{SHA}", "{SHA}!!!!", "$5$rounds=1000$", "$6$$", "$y$", "$1$", "ab", "*", "!", "$argon2id$v=19$m=1,t=1,p=1$$",
    "pbkdf2_sha256$0$salt$", "pbkdf2:sha256:0$salt$"])), password=st.binary(max_size=80))
def test_hash_verify_only_documented_errors(stored: str, password: bytes) -> None:
    """Malformed stored hashes raise InvalidHashError (the adapter denies); nothing else escapes, nothing grants."""
    assume("rounds=" not in stored or stored.startswith("$5$rounds=1000$"))
    try:
        ok = hashes.verify(password, stored)
    except InvalidHashError:
        return
    assert ok is False


# ---------------------------------------------------------------------------------------------- DBM


@FUZZ
@given(st.one_of(st.binary(max_size=300), tricky_bytes))
def test_dbm_value_split_never_raises(value: bytes) -> None:
    entry = dbm_backend.parse_value(value)
    assert b":" not in entry.hash and b"\x00" not in entry.hash
    for g in entry.groups:
        assert g and b"," not in g and b"\x00" not in g


@FUZZ
@given(value=st.one_of(st.binary(min_size=0, max_size=900), tricky_bytes.map(lambda b: b[:900])),
       password=st.binary(max_size=60))
def test_dbm_backend_on_random_value_never_grants(tmp_path_factory: Any, value: bytes, password: bytes) -> None:
    path = str(tmp_path_factory.mktemp("dbm") / "users")
    with DbmFile(path, "sdbm", writable=True) as db:
        db.store(b"alice", value)
        db.store(b"alice:realm", value)
    backend = dbm_backend.Backend(path, type="sdbm", realm="realm", check_interval=0)
    try:
        environ: dict[str, Any] = {}
        assert backend.check_password(environ, "alice", password.decode("latin-1")) in (None, False)
        groups = backend.groups_for_user(environ, "alice")
        assert isinstance(groups, list) and all(isinstance(g, str) and g for g in groups)
        ha1 = backend.get_realm_hash(environ, "alice", "realm")
        assert ha1 is None or len(ha1) == 32
    finally:
        backend.close()


def _sdbm_files(directory: Path, users: int) -> Path:
    """A real SDBM database written by wsgiauth's writer (pages split once ``users`` is large)."""
    path = directory / "db"
    with DbmFile(str(path), "sdbm", writable=True) as db:
        for i in range(users):
            db.store(f"user{i}".encode(), b"$apr1$abcdefgh$0123456789012345678901:staff,ops:comment" + b"x" * (i % 50))
    return path


def _exercise_sdbm(path: Path, keys: list[bytes]) -> None:
    """Open, list and fetch: only StoreError may come out; values are bytes."""
    try:
        db = DbmFile(str(path), "sdbm", check_interval=0, lock_timeout=0.05)
    except StoreError:
        return
    try:
        try:
            listed = list(db.keys())
        except StoreError:
            listed = []
        for key in [*listed[:20], *keys]:
            try:
                value = db.fetch(key)
            except StoreError:
                continue
            assert value is None or isinstance(value, bytes)
    finally:
        db.close()


@FUZZ
@given(dir_bytes=st.binary(max_size=64), pag_bytes=st.binary(max_size=3 * 1024),
       keys=st.lists(st.binary(min_size=1, max_size=12), max_size=5))
def test_sdbm_random_files_only_store_error(tmp_path_factory: Any, dir_bytes: bytes, pag_bytes: bytes,
                                           keys: list[bytes]) -> None:
    d = tmp_path_factory.mktemp("sdbm")
    (d / "db.dir").write_bytes(dir_bytes)
    (d / "db.pag").write_bytes(pag_bytes)
    _exercise_sdbm(d / "db", [*keys, b"alice"])


@pytest.fixture(scope="module")
def sdbm_image(tmp_path_factory: Any) -> tuple[bytes, bytes]:
    path = _sdbm_files(tmp_path_factory.mktemp("sdbm-image"), 150)
    return Path(str(path) + ".dir").read_bytes(), Path(str(path) + ".pag").read_bytes()


@FUZZ
@given(edits=st.lists(st.tuples(st.booleans(), st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
                      min_size=1, max_size=12))
def test_sdbm_corrupted_pages_only_store_error(tmp_path_factory: Any, sdbm_image: tuple[bytes, bytes],
                                              edits: list[tuple[bool, int, int]]) -> None:
    """A real multi-page database (split bitmap in .dir) with random bytes overwritten in either file."""
    dir_img, pag_img = bytearray(sdbm_image[0]), bytearray(sdbm_image[1])
    for in_dir, pos, byte in edits:
        target = dir_img if in_dir and dir_img else pag_img
        target[pos % len(target)] = byte
    d = tmp_path_factory.mktemp("sdbm-bad")
    (d / "db.dir").write_bytes(bytes(dir_img))
    (d / "db.pag").write_bytes(bytes(pag_img))
    _exercise_sdbm(d / "db", [b"user1", b"user77", b"user149", b"nobody"])


def test_sdbm_corruption_is_a_store_error_not_a_wrong_answer(tmp_path: Path) -> None:
    """A page whose offsets point outside the page is reported as corrupt (StoreError), not read past its end."""
    path = _sdbm_files(tmp_path, 1)
    pag = Path(str(path) + ".pag")
    page = bytearray(pag.read_bytes())
    page[2:4] = (4000).to_bytes(2, sys.byteorder)  # first key offset beyond the 1024-byte page
    pag.write_bytes(bytes(page))
    db = DbmFile(str(path), "sdbm", check_interval=0)
    try:
        with pytest.raises(StoreError, match="corrupt"):
            db.fetch(b"user0")
    finally:
        db.close()
    backend = dbm_backend.Backend(str(path), type="sdbm")
    try:  # through the adapter: the failure is "unknown" (401), never a grant, never an exception
        assert backend.check_password({}, "user0", "whatever") is None
    finally:
        backend.close()


# ---------------------------------------------------------------------------------------------- LDAP URLs


_URL_PARTS = st.sampled_from(["ldap://", "ldaps://", "LDAP://", "ldapi://", "http://", "", "h", "h1 h2", "[::1]",
                              "[::1", ":389", ":0", ":65536", ":x", "/", "?", "??", "%", "%2", "%zz", "%3f",
                              "ou=people,dc=example,dc=org", "uid", "cn,mail", "sub", "one", "base", "bogus",
                              "(objectClass=*)", "(uid=*", "(&(a=b)(c=d))", ")(", "(|", "\\", "\x00", " ", "é"])


@FUZZ
@given(st.one_of(st.text(max_size=120), st.lists(_URL_PARTS, max_size=12).map("".join)))
def test_ldap_url_parser_only_config_error(url: str) -> None:
    try:
        parsed = parse_ldap_url(url)
    except ConfigError:
        return
    assert parsed.hosts and parsed.scheme in ("ldap", "ldaps")
    assert parsed.scope in ("base", "one", "sub")
    assert parsed.filter.startswith("(") and parsed.filter.endswith(")")


@FUZZ
@given(st.one_of(st.text(max_size=80), st.lists(_URL_PARTS, max_size=8).map("".join)))
def test_ldap_filter_check_only_config_error(text: str) -> None:
    try:
        out = normalize_filter(text)
    except ConfigError:
        return
    assert out.count("(") == out.count(")")


# ---------------------------------------------------------------------------------------------- TOML config


_toml_scalar = st.one_of(st.text(max_size=20), st.integers(), st.floats(allow_nan=True), st.booleans(),
                         st.sampled_from(["htpasswd", "dbm", "sql", "ldap", "/nonexistent", "ldap://h/x", "apr1",
                                          "unknown", "deny", "raise", "sqlite:///x.db", "", "../../etc/passwd"]))
_keys = st.one_of(st.text(max_size=12), st.sampled_from([
    "type", "users", "groups", "digest", "backends", "chain", "cache", "throttle", "redis", "access", "url",
    "bind_dn", "bind_password", "bind_password_env", "path", "connect", "on_error", "log_level", "ttl", "order",
    "max_failures", "window", "allow", "deny", "canonicalize", "realm", "password_query"]))
_toml_doc = st.recursive(_toml_scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                               st.dictionaries(_keys, inner, max_size=5)),
                         max_leaves=25)


@FUZZ
@given(st.dictionaries(_keys, _toml_doc, max_size=6))
def test_config_parse_only_config_error(doc: dict[str, Any]) -> None:
    try:
        checked = config.parse(doc, base="/nonexistent-dir", environ={})
    except ConfigError as exc:
        assert str(exc)
        return
    assert checked["backends"]


@FUZZ
@given(st.one_of(st.binary(max_size=400), st.text(max_size=400).map(lambda s: s.encode("utf-8")),
                 st.sampled_from([b"[backends.a]\ntype = 'htpasswd'\nusers = '/nonexistent'\n", b"[backends]\n",
                                  b"backends = 3\n", b"[backends.a]\ntype = 'ldap'\nurl = 'ldap://h/?uid?bogus'\n",
                                  b"\xff\xfe", b"[[backends]]\n", b"a = '''\n"])))
def test_config_load_only_config_error(tmp_path_factory: Any, data: bytes) -> None:
    path = tmp_path_factory.mktemp("cfg") / "site.toml"
    path.write_bytes(data)
    try:
        cfg = config.load(path, environ={})
    except ConfigError as exc:
        assert str(path) in str(exc) or "backends" in str(exc)
        return
    cfg.close()


# ---------------------------------------------------------------------------------------------- Digest


_PARAMS = ["username", "username*", "realm", "nonce", "uri", "response", "algorithm", "qop", "nc", "cnonce",
           "opaque", "userhash", "charset", "", "=", "x"]
_VALUES = st.one_of(st.text(max_size=20), st.sampled_from(['"', '""', '"a\\"b"', "MD5", "SHA-256", "md5-sess",
                                                           "auth", "auth-int", "00000001", "0000000g", "ffffffff",
                                                           "UTF-8''%C3%A9", "utf-8''%", "true", "a" * 300]))
digest_header = st.one_of(
    st.text(max_size=200),
    st.builds(lambda pairs, sep, scheme: scheme + " " + sep.join(f"{k}={v}" for k, v in pairs),
              st.lists(st.tuples(st.sampled_from(_PARAMS), _VALUES), max_size=12), st.sampled_from([", ", ",", " "]),
              st.sampled_from(["Digest", "digest", "DIGEST", "Basic", ""])),
)


@FUZZ
@given(digest_header)
def test_digest_header_parser_only_digest_error(header: str) -> None:
    try:
        creds = _digest.parse_authorization(header)
    except _digest.DigestError:
        return
    assert creds.qop == "auth" and len(creds.nc_text) == 8


REALM = "fuzz realm"
HTDIGEST = hashlib.md5(f"alice:{REALM}:secret".encode()).hexdigest()


@pytest.fixture(scope="module")
def protected(tmp_path_factory: Any) -> AuthMiddleware:
    d = tmp_path_factory.mktemp("mw")
    (d / "users").write_text("alice:" + hashes.hash_password(b"secret", "apr1") + "\n")
    (d / "digest").write_text(f"alice:{REALM}:{HTDIGEST}\n")
    backend = htpasswd_backend.Backend(d / "users", digest=d / "digest", check_interval=0)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"app reached by " + environ["REMOTE_USER"].encode("latin-1")]

    return AuthMiddleware(app, backend, realm=REALM, schemes=("Digest", "Basic"), secret=b"k" * 32)


def _call(mw: AuthMiddleware, header: str | None, method: str = "GET", uri: str = "/x") -> tuple[str, bytes]:
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": uri, "REQUEST_URI": uri, "SCRIPT_NAME": "",
                               "QUERY_STRING": "", "REMOTE_ADDR": "127.0.0.1", "wsgi.errors": sys.stderr}
    if header is not None:
        environ["HTTP_AUTHORIZATION"] = header
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append(status)
        return lambda b: None

    body = b"".join(mw(environ, start_response))
    return seen[0], body


def _digest_for(mw: AuthMiddleware, *, user: str = "alice", password: str = "secret", uri: str = "/x",
                nc: str = "00000001", cnonce: str = "c0ffee", method: str = "GET") -> dict[str, str]:
    nonce = mw.nonces.issue()
    ha1 = hashlib.md5(f"{user}:{REALM}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    response = hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    return {"username": user, "realm": REALM, "nonce": nonce, "uri": uri, "response": response, "qop": "auth",
            "nc": nc, "cnonce": cnonce, "algorithm": "MD5", "opaque": mw.nonces.opaque}


def _header(params: dict[str, str]) -> str:
    unquoted = {"qop", "nc", "algorithm"}
    return "Digest " + ", ".join(f"{k}={v}" if k in unquoted else f'{k}="{v}"' for k, v in params.items())


def test_middleware_digest_accepts_the_real_thing(protected: AuthMiddleware) -> None:
    """The baseline of the mutation tests below: an exact header does reach the app."""
    status, body = _call(protected, _header(_digest_for(protected)))
    assert status.startswith("200") and body == b"app reached by alice"


@FUZZ
@given(digest_header)
def test_middleware_random_authorization_is_401(protected: AuthMiddleware, header: str) -> None:
    status, body = _call(protected, header)
    assert status.startswith("401"), (header, status)
    assert b"app reached" not in body


@FUZZ
@given(field=st.sampled_from(["username", "realm", "uri", "response", "cnonce", "nc", "nonce"]),
       pos=st.integers(min_value=0, max_value=200), char=st.characters(codec="ascii", exclude_characters='"\\'))
def test_middleware_one_changed_digest_field_is_never_granted(protected: AuthMiddleware, field: str, pos: int,
                                                               char: str) -> None:
    """Change one character of one field of a correct response: never the app (a nonce replay is refused too)."""
    params = _digest_for(protected)
    value = params[field]
    i = pos % len(value)
    changed = value[:i] + char + value[i + 1:]
    hex_field = field in ("response", "nc")  # compared as hex numbers: case does not matter there
    assume(changed.lower() != value.lower() if hex_field else changed != value)
    params[field] = changed
    status, body = _call(protected, _header(params))
    assert not status.startswith("200"), (field, changed)
    assert b"app reached" not in body


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.builds(lambda u, p: u + b":" + p, st.binary(max_size=40),
                                                   st.binary(max_size=40))))
def test_middleware_random_basic_is_401(protected: AuthMiddleware, raw: bytes) -> None:
    assume(raw != b"alice:secret")
    status, body = _call(protected, "Basic " + base64.b64encode(raw).decode())
    assert status.startswith("401") and b"app reached" not in body


# ---------------------------------------------------------------------------------------------- C core under ASan


ASAN_SOURCES = ["sdbm.c", "dbmfile.c", "apr1.c", "md5.c", "ct.c"]


def asan_build(workdir: Path) -> Path:
    """Compile csrc/ + tests/asan_driver.c with -fsanitize=address,undefined into ``workdir/asan_driver``."""
    gcc = shutil.which("gcc")
    if gcc is None:
        missing("gcc is not installed (run `make deps`)")
    out = workdir / "asan_driver"
    cmd = [str(gcc), "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g",
           "-O1", "-Wall", "-Wextra", "-I", str(ROOT / "csrc"),
           *[str(ROOT / "csrc" / s) for s in ASAN_SOURCES], str(ROOT / "tests" / "asan_driver.c"),
           "-o", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        if "asan" in result.stderr.lower() and "cannot find" in result.stderr.lower():
            missing(f"the AddressSanitizer runtime is missing (apt-get install gcc): {result.stderr[-500:]}")
        raise AssertionError(f"ASan build failed:\n{result.stderr}")
    return out


def make_corpus(directory: Path) -> list[Path]:
    """Seed inputs for the driver: real SDBM files (htdbm's and wsgiauth's, one page and split), real hashes."""
    directory.mkdir(parents=True, exist_ok=True)
    seeds: list[bytes] = []

    def sdbm_seed(path: Path) -> None:
        dir_img = Path(str(path) + ".dir").read_bytes()
        pag_img = Path(str(path) + ".pag").read_bytes()
        seeds.append(b"\x00" + len(dir_img).to_bytes(2, "little") + dir_img + pag_img)

    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        for n, sub in ((1, "one"), (40, "some"), (300, "split")):
            (t / sub).mkdir()
            sdbm_seed(_sdbm_files(t / sub, n))
        htdbm = shutil.which("htdbm")
        if htdbm is not None:
            made = subprocess.run([htdbm, "-cbTSDBM", str(t / "htdbm"), "alice", "secret"], capture_output=True,
                                  check=False)
            if made.returncode == 0:
                sdbm_seed(t / "htdbm")
    rng = random.Random(1)
    for pw in (b"", b"secret", b"p\xc3\xa4ss", b"x" * 200):
        stored = hashes.hash_password(pw, "apr1").encode()
        seeds.append(b"\x01" + bytes([len(pw) % 256]) + pw[:255] + stored)
    for size in (0, 1, 55, 56, 63, 64, 65, 1000):
        seeds.append(b"\x02" + bytes(rng.randrange(256) for _ in range(size)))
        seeds.append(b"\x03" + bytes([size % 256]) + bytes(rng.randrange(256) for _ in range(size)))
    paths = []
    for i, seed in enumerate(seeds):
        p = directory / f"seed-{i:03d}"
        p.write_bytes(seed)
        paths.append(p)
    return paths


def run_asan(seconds: float, workdir: Path, seed: int = 0) -> tuple[int, str]:
    driver = asan_build(workdir)
    corpus = make_corpus(workdir / "corpus")
    scratch = workdir / "scratch"
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=86",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=87"}
    env.pop("LD_PRELOAD", None)
    proc = subprocess.run([str(driver), str(seconds), str(seed or int.from_bytes(os.urandom(4), "little")),
                           str(scratch), *map(str, corpus)],
                          capture_output=True, text=True, env=env, timeout=seconds + 120, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_c_core_under_asan(tmp_path: Path) -> None:
    """The SDBM reader/writer, apr1, MD5 and ct_equal, built with ASan+UBSan, fed real files and
    random mutations of them for a few seconds: no memory error, no undefined behaviour, no leak."""
    rc, output = run_asan(4.0, tmp_path)
    assert rc == 0, output[-6000:]
    assert "0 errors" in output and "runtime error" not in output and "AddressSanitizer" not in output
    runs = int(output.split("asan_driver: ", 1)[1].split(" ", 1)[0])
    assert runs > 200, output  # it really ran (about 1500 inputs/s on this machine)


if __name__ == "__main__":  # `make asan`: python tests/test_fuzz.py asan SECONDS
    if len(sys.argv) != 3 or sys.argv[1] != "asan":
        sys.exit("usage: python tests/test_fuzz.py asan SECONDS")
    with tempfile.TemporaryDirectory(prefix="wsgiauth-asan-") as tmp:
        code, text = run_asan(float(sys.argv[2]), Path(tmp))
    print(text[-6000:])
    sys.exit(code)
