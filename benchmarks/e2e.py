"""End to end: wsgiauth against Apache's own providers, through one real Apache, measured alternately in one run.

The question users ask: "if I move authentication from Apache's modules (or from my hand-written script) to
wsgiauth, what does it cost?" This harness answers it on the machine it runs on::

    .venv/bin/python -m benchmarks.e2e --seconds 2 --rounds 5 --out benchmarks/results/e2e.json

Set-up (identical for both sides, see :data:`APACHE`):

* one Apache build (Debian's apache2 + mod_wsgi from the venv, through ``backends.apache``), event MPM, the same
  processes and threads for every location; the wsgiauth hooks run embedded in the Apache children, as they always
  do (``WSGIAuthUserScript``); no access log;
* every location serves the same small static file (``ok.txt`` in the document root), so a request measures the
  authentication and nothing else: no WSGI application is involved on either side;
* native providers and wsgiauth locations live side by side in the same server (``<Location /n/...>`` and
  ``<Location /w/...>``), reading the same data: one htpasswd file (1,000 users plus the benchmark users in the
  middle), one htdigest file, one Berkeley DB file (made with ``htdbm``), one PostgreSQL table, one slapd;
* mod_authnz_ldap's caches are server-wide settings, so "LDAP cache off" is a second Apache instance (same build,
  same settings, ``LDAPCacheEntries 0`` / ``LDAPOpCacheEntries 0``), idle while the first one is measured;
* load: ``wrk`` from Debian on loopback, fixed connections, threads and duration, keep-alive, one fixed
  ``Authorization`` header per case (Basic; for Digest a response computed once per measurement from a fresh
  server nonce with ``qop=auth``, which mod_auth_digest accepts again and again since it does not check nonce
  counts by default: each request still goes through the provider's ``get_realm_hash``);
* interleaving: every round measures every case once, group by group (the native provider, then each wsgiauth
  variant, in reverse order on odd rounds), so a slow-down of the machine hits both sides alike. Requests per
  second are averaged over the rounds, p99 latency is the median of the rounds; ratios to the native provider of
  the group are taken round by round and their median is reported.

Next to wrk's numbers the harness records the CPU time the Apache processes used per request (``/proc/PID/stat`` of
the parent and children, before and after each run; the directory and database servers are not counted). The
"CPU ratio" (native CPU per request over the variant's) is an efficiency ratio that depends much less on what else
the machine is doing than requests per second do; on a shared machine it is the steadier of the two.

Every case is checked before it is measured (right password: 200, no credentials: 401, wrong password: 401) and a
measurement with any non-2xx answer (or socket errors on more than 1% of its requests) is an error, not a number.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from backends._common import ServerError, find_tool
from backends.apache import Apache, htdigest_line, htpasswd_line

# ---------------------------------------------------------------------------------------------------- settings

APACHE = {"mpm": "event", "processes": 2, "threads": 8}
WRK = {"threads": 1, "connections": 8, "timeout_s": 10}
REALM = "wsgiauth bench"
FILLER_USERS = 1000  # users in the htpasswd/htdigest/DBM/SQL stores besides the benchmark users
LDAP_USER, LDAP_PASSWORD = "alice", "secret"  # from backends/data/slapd/seed.ldif

# user -> (password, htpasswd flags, label). Made with Apache's own htpasswd.
FILE_USERS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "u_apr1": ("pw-apr1 horse", ("-m",), "$apr1$"),
    "u_bcrypt": ("pw-bcrypt horse", ("-B", "-C", "5"), "bcrypt cost 5"),
    "u_sha512": ("pw-sha512 horse", ("-5",), "$6$"),
    "u_sha1": ("pw-sha1 horse", ("-s",), "{SHA}"),
}
DIGEST_USER, DIGEST_PASSWORD = "u_digest", "pw-digest horse"
DB_USER, DB_PASSWORD = "u_db", "pw-db horse"  # DBM and SQL: $apr1$ (htdbm's and htpasswd's default)

NATIVE = "native"
CACHE_ON = "wsgiauth cache on"
CACHE_OFF = "wsgiauth cache off"
HAND = "hand-written (libpass)"
TRIVIAL = "Python returns True"
NOAUTH = "no authentication"

# (group, variant) -> the least ratio of requests/second to the group's native provider that the project targets.
TARGETS: dict[tuple[str, str], float] = {
    ("file {SHA}", CACHE_ON): 1.0,
    ("file $apr1$", CACHE_ON): 1.0,
    ("file bcrypt cost 5", CACHE_ON): 4.0,
    ("file $6$", CACHE_ON): 4.0,
    ("ldap (mod_ldap cache on)", CACHE_ON): 1.0,
    ("sql vs mod_authn_dbd", CACHE_ON): 1.0,
    ("file {SHA}", CACHE_OFF): 0.9,
    ("file $apr1$", CACHE_OFF): 0.9,
    ("file bcrypt cost 5", CACHE_OFF): 0.9,
    ("file $6$", CACHE_OFF): 0.9,
    ("digest (htdigest file)", CACHE_OFF): 0.9,
    ("ldap (mod_ldap cache off)", CACHE_OFF): 0.8,
}

# ------------------------------------------------------------------------------------------- auth.wsgi scripts

HEADER = "import os\nHERE = os.path.dirname(os.path.abspath(__file__))\n"

SCRIPTS: dict[str, str] = {
    "file_on.wsgi": HEADER + """\
from wsgiauth.backends import htpasswd
from wsgiauth.cache import cached
backend = cached(htpasswd.Backend(users=os.path.join(HERE, "htpasswd"), digest=os.path.join(HERE, "htdigest")))
check_password, get_realm_hash, groups_for_user, allow_access = backend.hooks()
""",
    "file_off.wsgi": HEADER + """\
from wsgiauth.backends import htpasswd
backend = htpasswd.Backend(users=os.path.join(HERE, "htpasswd"), digest=os.path.join(HERE, "htdigest"))
check_password, get_realm_hash, groups_for_user, allow_access = backend.hooks()
""",
    "dbm_on.wsgi": HEADER + """\
from wsgiauth.backends import dbm
from wsgiauth.cache import cached
backend = cached(dbm.Backend(os.path.join(HERE, "users.db"), type="DB"))
check_password, get_realm_hash, groups_for_user, allow_access = backend.hooks()
""",
    "dbm_off.wsgi": HEADER + """\
from wsgiauth.backends import dbm
backend = dbm.Backend(os.path.join(HERE, "users.db"), type="DB")
check_password, get_realm_hash, groups_for_user, allow_access = backend.hooks()
""",
    "sql_on.wsgi": HEADER + """\
from wsgiauth.backends import sql
from wsgiauth.cache import cached
backend = cached(sql.postgresql(open(os.path.join(HERE, "pg.conninfo")).read().strip(), pool_size={threads}))
check_password, get_realm_hash, groups_for_user, allow_access = backend.hooks()
""",
    "sql_off.wsgi": HEADER + """\
from wsgiauth.backends import sql
backend = sql.postgresql(open(os.path.join(HERE, "pg.conninfo")).read().strip(), pool_size={threads})
check_password, get_realm_hash, groups_for_user, allow_access = backend.hooks()
""",
    "ldap_on.wsgi": HEADER + """\
import json
from wsgiauth.backends import ldap
from wsgiauth.cache import cached
conf = json.load(open(os.path.join(HERE, "ldap.json")))
backend = cached(ldap.Backend(conf["url"], bind_dn=conf["bind_dn"], bind_password=conf["bind_pw"],
                                  pool_size={threads}))
check_password, get_realm_hash, groups_for_user, allow_access = backend.hooks()
""",
    "ldap_off.wsgi": HEADER + """\
import json
from wsgiauth.backends import ldap
conf = json.load(open(os.path.join(HERE, "ldap.json")))
backend = ldap.Backend(conf["url"], bind_dn=conf["bind_dn"], bind_password=conf["bind_pw"], pool_size={threads})
check_password, get_realm_hash, groups_for_user, allow_access = backend.hooks()
""",
    "trivial.wsgi": '''\
def check_password(environ, user, password):
    """The ceiling: what calling Python from Apache costs at all."""
    return True
''',
    # What people write by hand (the pattern of countless blog posts and answers): read the file on every
    # request, split lines, verify with passlib (here libpass, its maintained fork).
    "handwritten.wsgi": HEADER + '''\
from passlib.context import CryptContext

HTPASSWD = os.path.join(HERE, "htpasswd")
pwd_context = CryptContext(schemes=["bcrypt", "apr_md5_crypt", "sha512_crypt", "sha256_crypt", "ldap_sha1",
                                    "des_crypt"])


def check_password(environ, user, password):
    with open(HTPASSWD) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, hashed = line.split(":", 1)
            if name == user:
                return pwd_context.verify(password, hashed)
    return None
''',
}


def _basic_location(path: str, provider_lines: str, auth_type: str = "Basic") -> str:
    return (f'<Location {path}>\n    AuthType {auth_type}\n    AuthName "{REALM}"\n{provider_lines}'
            f"    Require valid-user\n</Location>\n")


def _wsgi(path: str, script: str, auth_type: str = "Basic") -> str:
    return _basic_location(path, f"    Auth{auth_type}Provider wsgi\n"
                                 f'    WSGIAuthUserScript "${{WSGIAUTH_SITE}}/{script}"\n', auth_type)


NATIVE_FILE = '    AuthBasicProvider file\n    AuthUserFile "${WSGIAUTH_SITE}/htpasswd"\n'
NATIVE_DIGEST = '    AuthDigestProvider file\n    AuthUserFile "${WSGIAUTH_SITE}/htdigest"\n'
NATIVE_DBM = '    AuthBasicProvider dbm\n    AuthDBMType DB\n    AuthDBMUserFile "${WSGIAUTH_SITE}/users.db"\n'
NATIVE_DBD = ('    AuthBasicProvider dbd\n'
              '    AuthDBDUserPWQuery "SELECT password_hash FROM wsgiauth_user WHERE name = %s AND active"\n')
NATIVE_LDAP = ('    AuthBasicProvider ldap\n    AuthLDAPURL "{url}"\n    AuthLDAPBindDN "{bind_dn}"\n'
               '    AuthLDAPBindPassword "{bind_pw}"\n')

# ------------------------------------------------------------------------------------------------------ cases


@dataclass(frozen=True)
class Case:
    """One measured target: a variant of a group, served at ``path`` of server ``server``."""

    group: str
    variant: str
    path: str
    user: str
    password: str
    server: str = "main"  # "main" or "ldap-nocache"
    digest: bool = False
    needs: tuple[str, ...] = ()  # "postgres", "ldap"

    @property
    def key(self) -> str:
        return f"{self.group} / {self.variant}"


def all_cases() -> list[Case]:
    """Every case of the full run, in group order (each group's native provider first)."""
    cases: list[Case] = []
    for user, (password, _flags, label) in FILE_USERS.items():
        group = f"file {label}"
        cases += [Case(group, NATIVE, "/n/file", user, password),
                  Case(group, CACHE_ON, "/w/file-on", user, password),
                  Case(group, CACHE_OFF, "/w/file-off", user, password),
                  Case(group, HAND, "/w/handwritten", user, password)]
    cases += [Case("digest (htdigest file)", NATIVE, "/n/digest", DIGEST_USER, DIGEST_PASSWORD, digest=True),
              Case("digest (htdigest file)", CACHE_OFF, "/w/digest", DIGEST_USER, DIGEST_PASSWORD, digest=True)]
    cases += [Case("dbm (Berkeley DB)", NATIVE, "/n/dbm", DB_USER, DB_PASSWORD),
              Case("dbm (Berkeley DB)", CACHE_ON, "/w/dbm-on", DB_USER, DB_PASSWORD),
              Case("dbm (Berkeley DB)", CACHE_OFF, "/w/dbm-off", DB_USER, DB_PASSWORD)]
    pg = ("postgres",)
    cases += [Case("sql vs mod_authn_dbd", NATIVE, "/n/dbd", DB_USER, DB_PASSWORD, needs=pg),
              Case("sql vs mod_authn_dbd", CACHE_ON, "/w/sql-on", DB_USER, DB_PASSWORD, needs=pg),
              Case("sql vs mod_authn_dbd", CACHE_OFF, "/w/sql-off", DB_USER, DB_PASSWORD, needs=pg)]
    ld = ("ldap",)
    cases += [Case("ldap (mod_ldap cache on)", NATIVE, "/n/ldap", LDAP_USER, LDAP_PASSWORD, needs=ld),
              Case("ldap (mod_ldap cache on)", CACHE_ON, "/w/ldap-on", LDAP_USER, LDAP_PASSWORD, needs=ld),
              Case("ldap (mod_ldap cache off)", NATIVE, "/n/ldap", LDAP_USER, LDAP_PASSWORD, "ldap-nocache", needs=ld),
              Case("ldap (mod_ldap cache off)", CACHE_OFF, "/w/ldap-off", LDAP_USER, LDAP_PASSWORD, "ldap-nocache",
                   needs=ld)]
    sha_user, (sha_pw, _f, _l) = "u_sha1", FILE_USERS["u_sha1"]
    cases += [Case("ceiling (vs file {SHA})", NATIVE, "/n/file", sha_user, sha_pw),
              Case("ceiling (vs file {SHA})", TRIVIAL, "/w/trivial", sha_user, sha_pw),
              Case("ceiling (vs file {SHA})", NOAUTH, "/open", sha_user, sha_pw)]
    return cases


# -------------------------------------------------------------------------------------------- the servers


def _filler(i: int) -> str:
    return f"filler{i:05d}"


def _sha1_hash(password: str) -> str:
    return "{SHA}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()


def _htpasswd_text() -> str:
    lines = [f"{_filler(i)}:{_sha1_hash(f'filler pw {i}')}\n" for i in range(FILLER_USERS)]
    middle = [htpasswd_line(u, pw, *flags).decode() for u, (pw, flags, _l) in FILE_USERS.items()]
    half = len(lines) // 2
    return "".join(lines[:half] + middle + lines[half:])


def _htdigest_text() -> str:
    lines = [f"{_filler(i)}:{REALM}:{hashlib.md5(f'{_filler(i)}:{REALM}:x{i}'.encode()).hexdigest()}\n"
             for i in range(FILLER_USERS)]
    half = len(lines) // 2
    return "".join([*lines[:half], htdigest_line(DIGEST_USER, REALM, DIGEST_PASSWORD).decode(), *lines[half:]])


def _db_hash() -> str:
    return htpasswd_line(DB_USER, DB_PASSWORD, "-m").decode().strip().split(":", 1)[1]


def _make_dbm(path: Path, db_hash: str) -> None:
    from wsgiauth._dbmfile import DbmFile

    with DbmFile(path, "DB", writable=True) as w:
        for i in range(FILLER_USERS):
            w.store(_filler(i).encode(), _sha1_hash(f"filler pw {i}").encode())
        w.store(DB_USER.encode(), db_hash.encode())
    htdbm = find_tool("htdbm")
    if htdbm is not None:  # the record Apache's own tool verifies: proves native and wsgiauth read one file
        proc = subprocess.run([htdbm, "-vb", "-TDB", str(path), DB_USER, DB_PASSWORD], capture_output=True,
                              timeout=30, check=False)
        if proc.returncode != 0:
            raise ServerError(f"htdbm -v does not accept the benchmark DBM file: {proc.stderr!r}")


def _sql_seed(db_hash: str) -> str:
    rows = [f"('{_filler(i)}', '{_sha1_hash(f'filler pw {i}')}')" for i in range(FILLER_USERS)]
    rows.append(f"('{DB_USER}', '{db_hash}')")
    return "INSERT INTO wsgiauth_user (name, password_hash) VALUES\n" + ",\n".join(rows) + ";\n"


@dataclass
class Servers:
    """The running servers of a run, by name, and what they serve."""

    apache: dict[str, Apache] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def _static_tree(server: Apache, paths: Sequence[str]) -> None:
    """The same small static file under every location path (the document root express created)."""
    htdocs = server.server_root / "htdocs"
    for p in paths:
        d = htdocs / p.strip("/")
        d.mkdir(parents=True, exist_ok=True)
        (d / "ok.txt").write_text("ok\n")
    for dirpath, _dirs, files in os.walk(htdocs):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)


@contextlib.contextmanager
def servers(cases: Sequence[Case]) -> Iterator[Servers]:
    """Start what ``cases`` need: the Apache instance(s), and PostgreSQL / slapd when asked for."""
    needs = {n for c in cases for n in c.needs}
    threads = APACHE["threads"]
    out = Servers()
    with contextlib.ExitStack() as stack:
        files: dict[str, str | bytes] = {name: text.replace("{threads}", str(threads))
                                         for name, text in SCRIPTS.items()}
        files["htpasswd"] = _htpasswd_text()
        files["htdigest"] = _htdigest_text()
        db_hash = _db_hash()
        include = [_basic_location("/n/file", NATIVE_FILE),
                   _wsgi("/w/file-on", "file_on.wsgi"), _wsgi("/w/file-off", "file_off.wsgi"),
                   _wsgi("/w/handwritten", "handwritten.wsgi"), _wsgi("/w/trivial", "trivial.wsgi"),
                   _basic_location("/n/digest", NATIVE_DIGEST, "Digest"),
                   _wsgi("/w/digest", "file_off.wsgi", "Digest"),
                   _basic_location("/n/dbm", NATIVE_DBM),
                   _wsgi("/w/dbm-on", "dbm_on.wsgi"), _wsgi("/w/dbm-off", "dbm_off.wsgi")]
        modules = ["authn_file", "authn_dbm"]
        ldap_conf: dict[str, str] = {}
        if "postgres" in needs:
            from backends.postgres import Postgres

            pg = stack.enter_context(Postgres(max_connections=100))
            seed = Path(stack.enter_context(_tempdir())) / "bench-seed.sql"
            seed.write_text(_sql_seed(db_hash))
            pg.load_sql(pg.schema, seed)
            files["pg.conninfo"] = pg.conninfo
            params = pg.conninfo.replace('"', "")
            include.insert(0, f'DBDriver pgsql\nDBDParams "{params}"\n'
                              f"DBDMin 1\nDBDKeep {threads}\nDBDMax {threads}\nDBDExptime 300\n")
            include += [_basic_location("/n/dbd", NATIVE_DBD),
                        _wsgi("/w/sql-on", "sql_on.wsgi"), _wsgi("/w/sql-off", "sql_off.wsgi")]
            modules += ["dbd", "authn_dbd"]
            out.info["postgres"] = {"port": pg.port}
        if "ldap" in needs:
            from backends.slapd import Slapd

            slapd = stack.enter_context(Slapd())
            url = f"ldap://127.0.0.1:{slapd.port}/{slapd.people}?uid?sub?(objectClass=inetOrgPerson)"
            ldap_conf = {"url": url, "bind_dn": slapd.service_dn, "bind_pw": slapd.service_pw}
            files["ldap.json"] = json.dumps(ldap_conf)
            include += [_basic_location("/n/ldap", NATIVE_LDAP.format(**ldap_conf)),
                        _wsgi("/w/ldap-on", "ldap_on.wsgi")]
            modules += ["ldap", "authnz_ldap"]
        include.append("<Location /open>\n    Require all granted\n</Location>\n")

        common = {"mpm": APACHE["mpm"], "processes": APACHE["processes"], "threads": threads, "embedded": True,
                  "access_log": False, "log_level": "error"}
        main = Apache(files=files, include="\n".join(include), modules=modules, **common)  # type: ignore[arg-type]
        stack.callback(main.close)
        _make_dbm(main.path("users.db"), db_hash)
        os.chmod(main.path("users.db"), 0o644)
        main.setup()
        _static_tree(main, sorted({c.path for c in cases if c.server == "main"}))
        main.start()
        out.apache["main"] = main
        if any(c.server == "ldap-nocache" for c in cases):
            nocache = ("LDAPCacheEntries 0\nLDAPOpCacheEntries 0\n"
                       + _basic_location("/n/ldap", NATIVE_LDAP.format(**ldap_conf))
                       + _wsgi("/w/ldap-off", "ldap_off.wsgi"))
            second = Apache(files={"ldap_off.wsgi": files["ldap_off.wsgi"], "ldap.json": files["ldap.json"]},
                            include=nocache, modules=["ldap", "authnz_ldap"], **common)  # type: ignore[arg-type]
            stack.callback(second.close)
            second.setup()
            _static_tree(second, sorted({c.path for c in cases if c.server == "ldap-nocache"}))
            second.start()
            out.apache["ldap-nocache"] = second
        yield out


@contextlib.contextmanager
def _tempdir() -> Iterator[str]:
    import tempfile

    d = tempfile.mkdtemp(prefix="wsgiauth-bench-")
    try:
        os.chmod(d, 0o755)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- requests


def _url(server: Apache, case: Case) -> str:
    return f"http://{server.host}:{server.port}{case.path}/ok.txt"


def authorization(server: Apache, case: Case, password: str | None = None) -> str:
    """The ``Authorization`` header value for ``case`` (Digest: answers a fresh challenge of ``server``)."""
    pw = case.password if password is None else password
    if not case.digest:
        return "Basic " + base64.b64encode(f"{case.user}:{pw}".encode()).decode()
    uri = f"{case.path}/ok.txt"
    challenge = server.get(uri).headers.get("www-authenticate", "")
    found = re.search(r'nonce="([^"]+)"', challenge)
    if found is None:
        raise ServerError(f"no Digest challenge at {uri}: {challenge!r}")
    nonce = found.group(1)
    ha1 = hashlib.md5(f"{case.user}:{REALM}:{pw}".encode()).hexdigest()
    ha2 = hashlib.md5(f"GET:{uri}".encode()).hexdigest()
    cnonce, nc = "0a4f113b2c8d", "00000001"
    response = hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    return (f'Digest username="{case.user}", realm="{REALM}", nonce="{nonce}", uri="{uri}", algorithm=MD5, '
            f'qop=auth, nc={nc}, cnonce="{cnonce}", response="{response}"')


def check(server: Apache, case: Case) -> None:
    """Right password 200, no credentials 401, wrong password 401 (the open location: 200 without)."""
    uri = f"{case.path}/ok.txt"
    if case.variant == NOAUTH:
        status = server.get(uri).status
        if status != 200:
            raise ServerError(f"{case.key}: {uri} answered {status} without credentials")
        return
    for what, header, want in (("right password", authorization(server, case), 200),
                               ("no credentials", None, 401),
                               ("wrong password", authorization(server, case, case.password + "x"), 401)):
        if case.variant == TRIVIAL and what == "wrong password":
            want = 200  # the ceiling grants everyone: that is the point
        status = server.get(uri, headers={"Authorization": header} if header else None).status
        if status != want:
            raise ServerError(f"{case.key}: {what} answered {status}, expected {want}\n"
                              f"{server.error_log_text()[-2000:]}")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if found is None:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def parse_wrk(out: str) -> dict[str, float]:
    """Requests/second, p50/p99 latency (ms), requests, non-2xx and socket errors from ``wrk --latency`` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    if rps is None or p99 is None or p50 is None or total is None:
        raise ValueError(f"cannot read wrk's output:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": float(rps.group(1)), "p99_ms": _ms(p99.group(1)), "p50_ms": _ms(p50.group(1)),
            "requests": int(total.group(1)), "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(int(x) for x in sock.groups()) if sock else 0}


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def apache_cpu_seconds(server: Apache) -> float:
    """CPU time (user + system) used so far by the Apache parent and its children (``/proc/PID/stat``)."""
    parent = server.pid
    if parent is None:
        return 0.0
    out = subprocess.run(["ps", "--ppid", str(parent), "-o", "pid="], capture_output=True, text=True, check=False)
    total = 0
    for pid in [parent, *(int(x) for x in out.stdout.split())]:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / _TICK


def wrk(url: str, header: str, seconds: float) -> dict[str, float]:
    """One ``wrk`` run (bounded: killed after ``seconds`` + 30 s)."""
    tool = find_tool("wrk")
    if tool is None:
        raise ServerError("wrk is not installed (apt-get install wrk)")
    duration = max(1, round(seconds))  # wrk takes whole seconds
    cmd = [tool, f"-t{WRK['threads']}", f"-c{WRK['connections']}", f"-d{duration}s", f"--timeout={WRK['timeout_s']}s",
           "--latency", "-H", f"Authorization: {header}", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30, check=False)
    if proc.returncode != 0:
        raise ServerError(f"wrk failed ({proc.returncode}): {proc.stderr}{proc.stdout}")
    return parse_wrk(proc.stdout)


# --------------------------------------------------------------------------------------------------- the run


def _loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def _versions() -> dict[str, str]:
    out: dict[str, str] = {"python": platform.python_version(), "machine": platform.machine(),
                           "cpus": str(os.cpu_count())}
    apache2 = find_tool("apache2", "/usr/sbin")
    if apache2:
        v = subprocess.run([apache2, "-v"], capture_output=True, text=True, check=False).stdout
        m = re.search(r"Apache/\S+", v)
        out["apache"] = m.group(0) if m else v.strip()
    tool = find_tool("wrk")
    if tool:
        v = subprocess.run([tool, "-v"], capture_output=True, text=True, check=False)
        first = (v.stdout + v.stderr).split("\n", 1)[0].strip()
        m = re.search(r"wrk\s+(\S+)", first)
        out["wrk"] = f"wrk {m.group(1)}" if m else first
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("mod_wsgi", "wsgiauth", "bcrypt", "libpass"):
        with contextlib.suppress(PackageNotFoundError):
            out[dist] = version(dist)
    return out


def _order(cases: Sequence[Case], round_no: int) -> list[Case]:
    """Group by group; inside a group the native provider first on even rounds and last on odd ones."""
    groups: dict[str, list[Case]] = {}
    for c in cases:
        groups.setdefault(c.group, []).append(c)
    out: list[Case] = []
    for members in groups.values():
        out += members if round_no % 2 == 0 else list(reversed(members))
    return out


def summarize(cases: Sequence[Case], rounds: dict[str, list[dict[str, float]]]) -> list[dict[str, Any]]:
    """Per case: mean req/s and median p99 over the rounds, and the ratios to the group's native provider.

    A ratio is taken round by round (the variant against the native provider measured seconds before or after it)
    and the median of those per-round ratios is reported: a machine whose load changes between rounds moves both
    sides of a round together, so this is steadier than a ratio of averages.
    """
    native_runs = {c.group: rounds.get(c.key, []) for c in cases if c.variant == NATIVE}
    rows: list[dict[str, Any]] = []
    for c in cases:
        runs = rounds.get(c.key, [])
        if not runs:
            continue
        row: dict[str, Any] = {**asdict(c), "key": c.key, "rounds": runs,
                               "rps": statistics.fmean(r["rps"] for r in runs),
                               "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                               "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                               "cpu_us": statistics.median(r.get("cpu_us", 0.0) for r in runs)}
        base = {r["round"]: r for r in native_runs.get(c.group, [])}
        pairs = [(r, base[r["round"]]) for r in runs if r["round"] in base]
        rps_ratios = [r["rps"] / n["rps"] for r, n in pairs if n["rps"]]
        p99_ratios = [r["p99_ms"] / n["p99_ms"] for r, n in pairs if n["p99_ms"]]
        cpu_ratios = [n["cpu_us"] / r["cpu_us"] for r, n in pairs if r.get("cpu_us") and n.get("cpu_us")]
        row["cpu_ratio"] = statistics.median(cpu_ratios) if cpu_ratios else None
        row["rps_ratios"] = rps_ratios
        row["rps_ratio"] = statistics.median(rps_ratios) if rps_ratios else None
        row["p99_ratio"] = statistics.median(p99_ratios) if p99_ratios else None
        target = TARGETS.get((c.group, c.variant))
        row["target"] = target
        row["met"] = None if target is None or row["rps_ratio"] is None else row["rps_ratio"] >= target
        rows.append(row)
    return rows


def run(cases: Sequence[Case] | None = None, *, seconds: float = 2.0, rounds: int = 5, warmup: float = 1.0,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure ``cases`` (default: :func:`all_cases`) and return the results (see :func:`summarize`).

    Args:
        cases: what to measure.
        seconds: wrk's duration per case and round.
        rounds: how many times every case is measured (interleaved).
        warmup: seconds of untimed load per case before the first round (imports, pools, caches of every child).
        log: where progress lines go.

    Returns:
        ``{"config": ..., "cases": [...], "errors": {...}}``: JSON-ready.

    Raises:
        ServerError: a server did not start, or a case answered wrongly before it was measured.
    """
    chosen = list(cases) if cases is not None else all_cases()
    started = time.time()
    config = {"apache": dict(APACHE), "wrk": dict(WRK), "seconds": seconds, "rounds": rounds, "warmup": warmup,
              "filler_users": FILLER_USERS, "versions": _versions(), "loadavg_before": _loadavg(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started))}
    results: dict[str, list[dict[str, float]]] = {}
    errors: dict[str, str] = {}
    with servers(chosen) as srv:
        for c in chosen:
            check(srv.apache[c.server], c)
        if warmup > 0:
            for c in chosen:
                server = srv.apache[c.server]
                with contextlib.suppress(ServerError, ValueError):
                    wrk(_url(server, c), authorization(server, c), warmup)
        for r in range(rounds):
            for c in _order(chosen, r):
                server = srv.apache[c.server]
                try:
                    header = authorization(server, c)
                    cpu0 = apache_cpu_seconds(server)
                    res = wrk(_url(server, c), header, seconds)
                    res["cpu_us"] = (apache_cpu_seconds(server) - cpu0) * 1e6 / max(res["requests"], 1)
                except (ServerError, ValueError, subprocess.TimeoutExpired) as exc:
                    errors[c.key] = str(exc)[:500]
                    log(f"round {r + 1}: {c.key}: ERROR {exc}")
                    continue
                # Every answer must be a 2xx. A few socket errors happen when Apache's event MPM closes idle
                # keep-alive connections while all its workers are busy; wrk reconnects. More than 1% is an error.
                if res["non2xx"] or res["socket_errors"] > 0.01 * max(res["requests"], 1):
                    errors[c.key] = (f"round {r + 1}: {res['non2xx']} non-2xx answers, {res['socket_errors']} "
                                     f"socket errors in {res['requests']} requests")
                    log(f"round {r + 1}: {c.key}: {errors[c.key]}")
                    continue
                res["round"] = r + 1
                results.setdefault(c.key, []).append(res)
                log(f"round {r + 1}/{rounds}  {c.key:58s} {res['rps']:9.0f} req/s  p99 {res['p99_ms']:8.2f} ms  "
                    f"Apache CPU {res['cpu_us']:8.1f} us/req")
        for name, server in srv.apache.items():
            text = server.error_log_text()
            if "Traceback" in text:
                errors[f"apache {name} error log"] = text[-1500:]
    config["loadavg_after"] = _loadavg()
    config["elapsed_s"] = round(time.time() - started, 1)
    return {"config": config, "cases": summarize(chosen, results), "errors": errors}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=2.0, help="wrk duration per case and round (default 2)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="untimed seconds per case first (default 1)")
    parser.add_argument("--group", action="append", default=[], help="only groups whose name contains this")
    parser.add_argument("--out", default="benchmarks/results/e2e.json", help="JSON output file")
    args = parser.parse_args(argv)
    cases = [c for c in all_cases() if not args.group or any(g in c.group for g in args.group)]
    result = run(cases, seconds=args.seconds, rounds=args.rounds, warmup=args.warmup)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out} ({len(result['cases'])} cases, {len(result['errors'])} errors, "
          f"{result['config']['elapsed_s']} s)")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
