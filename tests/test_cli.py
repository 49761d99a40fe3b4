"""The `wsgiauth` command end to end: real subprocesses, a pseudo-terminal for the password prompts, and Apache's
own tools (htpasswd -v, htdbm -v) judging the files it writes."""

from __future__ import annotations

import hashlib
import os
import pty
import re
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backends._common import SQL_SCHEMA, missing, require_tool
from wsgiauth import cli, hashes

WSGIAUTH = [sys.executable, "-m", "wsgiauth.cli"]
ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WSGIAUTH, *args], input=stdin, capture_output=True, text=True, timeout=120,
                          cwd=cwd or ROOT)


def run_pty(args: list[str], answers: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run the command on a pseudo-terminal, typing ``answers`` at each prompt; returns (exit code, output)."""
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.execv(sys.executable, [*WSGIAUTH, *args])
    out = b""
    pending = list(answers)
    answered = 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if pending and out[answered:].rstrip().endswith(b":"):  # a new prompt since the last answer
                os.write(fd, pending.pop(0).encode() + b"\n")
                out += b"\n"
                answered = len(out)
        else:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"no answer from the command within {timeout}s: {out!r}")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    # A directory www-data can read (doctor re-runs itself as www-data).
    d = Path(tempfile.mkdtemp(prefix="wsgiauth-cli-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def site(work: Path) -> Path:
    htpasswd = require_tool("htpasswd")
    subprocess.run([htpasswd, "-cbB", "-C", "4", str(work / "users"), "alice", "wonder"], check=True,
                   capture_output=True)
    (work / "groups").write_text("staff: alice\n")
    for f in ("users", "groups"):
        (work / f).chmod(0o644)
    conf = work / "site.toml"
    conf.write_text(textwrap.dedent("""
        realm = "Staff"
        [backends.files]
        type = "htpasswd"
        users = "users"
        groups = "groups"
    """))
    conf.chmod(0o644)
    return conf


# ---------------------------------------------------------------------------------------------------- help


@pytest.mark.parametrize("argv", [[], ["check"], ["user"], ["user", "add"], ["user", "passwd"], ["user", "delete"],
                                  ["user", "list"], ["hash"], ["apache-config"], ["doctor"], ["bench"]])
def test_help_everywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.run([*argv, "--help"])
    assert info.value.code == 0
    assert "usage: wsgiauth" in capsys.readouterr().out


def test_usage_error_exit_code() -> None:
    r = run("frobnicate")
    assert r.returncode == 2
    assert "invalid choice" in r.stderr


# ---------------------------------------------------------------------------------------------------- check


def test_check_granted(site: Path) -> None:
    r = run("check", str(site), "alice", stdin="wonder\n")
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(":", 1) for line in r.stdout.splitlines())
    assert lines["decision"].strip() == "granted"
    assert lines["user"].strip() == "alice"
    assert lines["groups"].strip() == "staff"
    assert lines["backend"].strip() == "files"
    assert lines["time"].strip().endswith(" ms")


def test_check_denied_and_unknown(site: Path) -> None:
    denied = run("check", str(site), "alice", stdin="nope\n")
    assert denied.returncode == 1
    assert "decision:  denied (wrong password)" in denied.stdout
    unknown = run("check", str(site), "mallory", stdin="x\n")
    assert unknown.returncode == 1
    assert "decision:  unknown" in unknown.stdout


def test_check_prompts_on_a_terminal(site: Path) -> None:
    code, out = run_pty(["check", str(site), "alice"], ["wonder"])
    assert "Password for alice:" in out
    assert "wonder" not in out.split("Password for alice:")[1].split("decision")[0].strip()  # no echo
    assert code == 0
    assert "decision:  granted" in out


def test_check_config_error_exit_2(work: Path) -> None:
    bad = work / "bad.toml"
    bad.write_text('[backends.corp]\ntype = "ldap"\nurl = "http://x/"\n')
    r = run("check", str(bad), "alice", stdin="x\n")
    assert r.returncode == 2
    assert "backends.corp.url: not an ldap:// or ldaps:// URL: 'http://x/'" in r.stderr


def test_empty_password_refused(site: Path) -> None:
    r = run("check", str(site), "alice", stdin="\n")
    assert r.returncode == 2
    assert "empty password" in r.stderr


# ---------------------------------------------------------------------------------------------------- hash


@pytest.mark.parametrize("scheme", ["bcrypt", "apr1", "sha1", "sha256_crypt", "sha512_crypt"])
def test_hash_accepted_by_htpasswd(scheme: str, tmp_path: Path) -> None:
    htpasswd = require_tool("htpasswd")
    r = run("hash", "--scheme", scheme, stdin="s3cret pass\n")
    assert r.returncode == 0, r.stderr
    f = tmp_path / "pw"
    f.write_text(f"carol:{r.stdout.strip()}\n")
    ok = subprocess.run([htpasswd, "-vb", str(f), "carol", "s3cret pass"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([htpasswd, "-vb", str(f), "carol", "wrong"], capture_output=True, text=True)
    assert bad.returncode != 0


def test_hash_argon2_and_ha1() -> None:
    r = run("hash", "--scheme", "argon2", stdin="pw\n")
    assert r.stdout.startswith("$argon2id$")
    assert hashes.verify(b"pw", r.stdout.strip())
    h = run("hash", "--scheme", "ha1", "--user", "alice", "--realm", "Staff", stdin="pw\n")
    assert h.stdout.strip() == hashlib.md5(b"alice:Staff:pw").hexdigest()
    bad = run("hash", "--scheme", "bcrypt", "--cost", "99", stdin="pw\n")
    assert bad.returncode == 2
    assert "cannot hash with bcrypt" in bad.stderr


# ---------------------------------------------------------------------------------------------------- user


def test_user_add_on_terminal_accepted_by_htpasswd(tmp_path: Path) -> None:
    htpasswd = require_tool("htpasswd")
    f = tmp_path / "users"
    code, out = run_pty(["user", "add", "--htpasswd", str(f), "dave"], ["tty pass", "tty pass"])
    assert code == 0, out
    assert "added dave (bcrypt)" in out
    st = f.stat()
    assert st.st_mode & 0o777 == 0o640  # readable by its group only...
    if os.geteuid() == 0:
        assert st.st_gid == 33  # ...which is Apache's (www-data)
    assert subprocess.run([htpasswd, "-vb", str(f), "dave", "tty pass"], capture_output=True).returncode == 0
    code, out = run_pty(["user", "passwd", "--htpasswd", str(f), "dave"], ["one", "two"])
    assert code == 2
    assert "the two passwords differ" in out


def test_user_lifecycle_htpasswd(tmp_path: Path) -> None:
    htpasswd = require_tool("htpasswd")
    f = tmp_path / "users"
    f.write_text("# managed by hand\nzed:$apr1$abcdefgh$0123456789012345678901\n")
    assert run("user", "add", "--htpasswd", str(f), "erin", stdin="first\n").returncode == 0
    assert run("user", "add", "--htpasswd", str(f), "erin", stdin="again\n").returncode == 1
    r = run("user", "passwd", "--htpasswd", str(f), "erin", "--scheme", "apr1", stdin="second\n")
    assert r.returncode == 0 and "updated erin (apr1)" in r.stdout
    assert subprocess.run([htpasswd, "-vb", str(f), "erin", "second"], capture_output=True).returncode == 0
    listing = run("user", "list", "--htpasswd", str(f)).stdout.splitlines()
    assert listing == ["zed\tapr1", "erin\tapr1"]
    assert f.read_text().startswith("# managed by hand\nzed:")  # other lines kept
    assert run("user", "delete", "--htpasswd", str(f), "erin").returncode == 0
    assert run("user", "delete", "--htpasswd", str(f), "erin").returncode == 1
    assert run("user", "passwd", "--htpasswd", str(f), "nobody", stdin="x\n").returncode == 1


def test_user_htdigest_and_htgroup(tmp_path: Path) -> None:
    d, g = tmp_path / "digest", tmp_path / "groups"
    assert run("user", "add", "--htdigest", str(d), "--realm", "Staff", "frank", stdin="pw\n").returncode == 0
    assert d.read_text() == f"frank:Staff:{hashlib.md5(b'frank:Staff:pw').hexdigest()}\n"
    assert run("user", "add", "--htdigest", str(d), "frank", stdin="pw\n").returncode == 2  # no realm
    assert run("user", "add", "--htgroup", str(g), "frank", "--group", "staff", "--group", "ops").returncode == 0
    assert run("user", "add", "--htgroup", str(g), "gina", "--group", "staff").returncode == 0
    assert g.read_text() == "staff: frank gina\nops: frank\n"
    assert run("user", "list", "--htgroup", str(g)).stdout.splitlines() == ["frank\tstaff, ops", "gina\tstaff"]
    assert run("user", "delete", "--htgroup", str(g), "frank").returncode == 0
    assert g.read_text() == "staff: gina\nops: \n"
    g.write_text('# hand-written\nadmins:   root  "Jo Smith"\nstaff: gina\n')
    assert run("user", "add", "--htgroup", str(g), "kim", "--group", "staff").returncode == 0
    assert g.read_text() == '# hand-written\nadmins:   root  "Jo Smith"\nstaff: gina kim\n'  # other lines untouched


def test_user_dbm_accepted_by_htdbm(tmp_path: Path) -> None:
    htdbm = require_tool("htdbm")
    db = tmp_path / "users.db"
    r = run("user", "add", "--dbm", str(db), "--dbm-type", "db", "hank", "--group", "staff", stdin="dbm pw\n")
    assert r.returncode == 0, r.stderr
    ok = subprocess.run([htdbm, "-vb", "-TDB", str(db), "hank", "dbm pw"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert run("user", "list", "--dbm", str(db)).stdout.splitlines() == ["hank\tstaff"]
    assert run("user", "delete", "--dbm", str(db), "hank").returncode == 0
    assert run("user", "list", "--dbm", str(db)).stdout == ""


def test_user_sql_relative_url(work: Path) -> None:
    """`--sql sqlite:///users.sqlite` (three slashes) is relative to the current directory, as with SQLAlchemy."""
    (work / "rel").mkdir()
    db = work / "rel" / "users.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript(SQL_SCHEMA.read_text())
    conn.close()
    r = run("user", "add", "--sql", "sqlite:///users.sqlite", "ivy", stdin="sql pw\n", cwd=work / "rel")
    assert r.returncode == 0, r.stderr
    assert run("user", "list", "--sql", f"sqlite:///{db}").stdout.splitlines() == ["ivy\targon2"]
    r = run("user", "list", "--sql", "sqlite:///users.sqlite", cwd=work)  # no such file there
    assert r.returncode != 0 and "no such file" in r.stderr, r.stderr


def test_user_sql_then_check(work: Path) -> None:
    db = work / "users.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript(SQL_SCHEMA.read_text())
    conn.close()
    db.chmod(0o644)
    url = f"sqlite:///{db}"  # sqlite:////abs/path (SQLAlchemy's form: four slashes for an absolute path)
    r = run("user", "add", "--sql", url, "ivy", "--group", "staff", stdin="sql pw\n")
    assert r.returncode == 0, r.stderr
    assert "added ivy (argon2)" in r.stdout
    assert run("user", "list", "--sql", url).stdout.splitlines() == ["ivy\targon2"]
    conf = work / "sql.toml"
    conf.write_text(f'[backends.db]\ntype = "sql"\ndriver = "sqlite"\ndatabase = "{db}"\n')
    c = run("check", str(conf), "ivy", stdin="sql pw\n")
    assert c.returncode == 0, c.stdout + c.stderr
    assert "groups:    staff" in c.stdout
    assert run("user", "delete", "--sql", url, "ivy").returncode == 0
    assert run("check", str(conf), "ivy", stdin="sql pw\n").returncode == 1


# ---------------------------------------------------------------------------------------------------- apache-config


def test_apache_config_gives_working_auth_script(site: Path, tmp_path: Path) -> None:
    r = run("apache-config", str(site), "--group", "staff", "--script", "/srv/auth.wsgi")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "AuthBasicProvider wsgi" in out
    assert "WSGIAuthUserScript /srv/auth.wsgi" in out
    assert "Require wsgi-group staff" in out
    assert 'AuthName "Staff"' in out
    assert "--auth-group staff" in out
    script = out.split("----\n", 1)[1].split("# ----", 1)[0]
    namespace: dict[str, object] = {}
    exec(compile(script, "auth.wsgi", "exec"), namespace)
    assert namespace["check_password"]({}, "alice", "wonder") is True  # type: ignore[operator]
    digest = run("apache-config", str(site), "--digest").stdout
    assert "AuthType Digest" in digest and "AuthDigestProvider wsgi" in digest


# ---------------------------------------------------------------------------------------------------- doctor


def test_doctor_all_good(site: Path) -> None:
    r = run("doctor", str(site))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 problems" in r.stdout
    if os.geteuid() == 0:
        assert "as www-data (uid 33)" in r.stdout


def test_doctor_finds_problems(work: Path) -> None:
    if os.geteuid() != 0:
        missing("doctor's www-data check needs root (CI runs as root)")
    secret = work / "root-only-users"
    secret.write_text("alice:$2y$04$abcdefghijklmnopqrstuu5Kb3XlJqkS4uFCyYCHjlpJRvTvTzZMi\n")
    secret.chmod(0o600)
    odd = work / "odd-users"
    odd.write_text("bob:$9$nonsense\ncarl:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    odd.chmod(0o644)
    conf = work / "doctor.toml"
    conf.write_text(textwrap.dedent(f"""
        backend = "both"
        [backends.hidden]
        type = "htpasswd"
        users = "{secret}"
        [backends.odd]
        type = "htpasswd"
        users = "{odd}"
        [backends.corp]
        type = "ldap"
        url = "ldap://127.0.0.1:1/dc=example,dc=org"
        bind_dn = "cn=svc,dc=example,dc=org"
        bind_password = "inline secret"
        connect_timeout = 1
        [backends.both]
        type = "chain"
        members = ["hidden", "odd", "corp"]
    """))
    conf.chmod(0o644)
    r = run("doctor", str(conf))
    out = r.stdout
    assert r.returncode == 1, out + r.stderr
    assert f"FAIL  backends.hidden: htpasswd file {secret}: not readable by uid 33 (www-data)" in out
    assert "fix: chgrp" in out
    assert "bob" in out and "FAIL  backends.odd" in out
    assert "WARN  backends.odd: 1 weak unsalted SHA-1 hash (carl)" in out
    assert "FAIL  backends.corp (ldap): cannot connect to 127.0.0.1:1" in out
    assert "WARN  secret written in the file (backends.corp.bind_password) and the file is readable by everyone" in out
    assert "inline secret" not in out


# ---------------------------------------------------------------------------------------------------- bench


def test_bench_table(site: Path) -> None:
    r = run("bench", str(site), "--user", "alice", "--threads", "1,2", "--duration", "0.3", stdin="wonder\n")
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines() if line.startswith(("off", "on"))]
    assert [(row[0], row[1]) for row in rows] == [("off", "1"), ("off", "2"), ("on", "1"), ("on", "2")]
    per_second = {(row[0], row[1]): float(row[2]) for row in rows}
    assert all(v > 0 for v in per_second.values())
    assert per_second[("on", "1")] > per_second[("off", "1")]  # a cache hit costs no bcrypt
    assert "100%" in r.stderr  # the progress bar
    assert run("bench", str(site), "--user", "alice", stdin="wrong\n").returncode == 1


# ---------------------------------------------------------------------------------------------------- Apache itself


@pytest.mark.apache
def test_files_written_by_user_add_work_in_native_apache(apache_factory: Any, tmp_path: Path) -> None:
    """mod_authn_file and mod_authz_groupfile (no wsgiauth in the request path) accept what `user add` wrote."""
    users, groups, digest = tmp_path / "users", tmp_path / "groups", tmp_path / "digest"
    for scheme in ("bcrypt", "apr1", "sha512_crypt"):
        r = run("user", "add", "--htpasswd", str(users), f"u-{scheme}", "--scheme", scheme, stdin="native pw\n")
        assert r.returncode == 0, r.stderr
    assert run("user", "add", "--htgroup", str(groups), "u-bcrypt", "--group", "staff").returncode == 0
    assert run("user", "add", "--htdigest", str(digest), "--realm", "native", "dora", stdin="dig pw\n").returncode == 0
    server = apache_factory(files={"users": users, "groups": groups, "digest": digest},
                            modules=["authn_file", "authz_groupfile"], include="""
<Location /basic>
    AuthType Basic
    AuthName "native"
    AuthBasicProvider file
    AuthUserFile "${WSGIAUTH_SITE}/users"
    AuthGroupFile "${WSGIAUTH_SITE}/groups"
    Require group staff
</Location>
<Location /any>
    AuthType Basic
    AuthName "native"
    AuthBasicProvider file
    AuthUserFile "${WSGIAUTH_SITE}/users"
    Require valid-user
</Location>
<Location /digest>
    AuthType Digest
    AuthName "native"
    AuthDigestProvider file
    AuthUserFile "${WSGIAUTH_SITE}/digest"
    Require valid-user
</Location>
""")
    import requests
    from requests.auth import HTTPDigestAuth

    assert server.get("/basic/", user="u-bcrypt", password="native pw").status == 200
    assert server.get("/basic/", user="u-apr1", password="native pw").status == 401  # not in group staff
    for scheme in ("bcrypt", "apr1", "sha512_crypt"):
        assert server.get("/any/", user=f"u-{scheme}", password="native pw").status == 200, scheme
        assert server.get("/any/", user=f"u-{scheme}", password="wrong").status == 401
    r = requests.get(server.url + "digest/", auth=HTTPDigestAuth("dora", "dig pw"), timeout=10)
    assert r.status_code == 200


def test_doctor_checks_ldaps_certificate(work: Path) -> None:
    from backends import slapd as L

    if L.find_tool("slapd") is None:
        missing("slapd is not installed (apt-get install slapd)")
    with L.Slapd() as slapd:
        conf = work / "ldaps-doctor.toml"
        ca_copy = work / "ca.pem"
        ca_copy.write_bytes(Path(slapd.ca_file).read_bytes())
        ca_copy.chmod(0o644)
        (work / "svc").write_text(L.SERVICE_PW)
        (work / "svc").chmod(0o640)
        if os.geteuid() == 0:
            os.chown(work / "svc", 0, 33)  # readable by www-data's group only, as a real secret would be
        base = f"""
            [backends.corp]
            type = "ldap"
            url = "{slapd.ldaps_url}/{L.PEOPLE}?uid"
            bind_dn = "{L.SERVICE_DN}"
            bind_password_file = "svc"
        """
        conf.write_text(textwrap.dedent(base + f'ca_file = "{ca_copy}"\n'))
        conf.chmod(0o644)
        good = run("doctor", str(conf))
        assert good.returncode == 0, good.stdout + good.stderr
        assert "0 problems" in good.stdout
        # the test CA's certificates are short-lived: doctor either reports the validity or warns of expiry
        assert re.search(r"(answers over TLS, certificate valid for \d+ more days|certificate of 127\.0\.0\.1:\d+ "
                         r"expires in \d+ days)", good.stdout), good.stdout
        conf.write_text(textwrap.dedent(base))  # no CA: the test CA is not trusted by the system
        bad = run("doctor", str(conf))
        assert bad.returncode == 1
        assert "TLS certificate of 127.0.0.1" in bad.stdout and "is not valid" in bad.stdout


@pytest.mark.apache
def test_apache_config_output_runs_in_apache(apache_factory: Any, site: Path, tmp_path: Path) -> None:
    """The recipe end to end: the auth.wsgi and <Location> printed by `apache-config` protect a real Apache."""
    r = run("apache-config", str(site), "--group", "staff", "--location", "/protected",
            "--script", "${WSGIAUTH_SITE}/auth.wsgi")
    assert r.returncode == 0, r.stderr
    auth_wsgi = r.stdout.split("----\n", 1)[1].split("# ----", 1)[0]
    location = "<Location" + r.stdout.split("<Location", 1)[1].split("</Location>", 1)[0] + "</Location>\n"
    server = apache_factory(files={"auth.wsgi": auth_wsgi}, include=location)
    assert server.get("/protected/x", user="alice", password="wonder").status == 200
    assert server.get("/protected/x", user="alice", password="wrong").status == 401
    assert server.get("/protected/x").status == 401
    assert server.get("/open").status == 200  # outside the Location


def test_doctor_scans_dbm_hashes(work: Path) -> None:
    htdbm = require_tool("htdbm")
    db = work / "doctor.dbm"
    subprocess.run([htdbm, "-cbB", "-C", "4", "-TDB", str(db), "pat", "pw"], check=True, capture_output=True)
    subprocess.run([htdbm, "-bs", "-TDB", str(db), "quinn", "pw"], check=True, capture_output=True)
    for f in work.glob("doctor.dbm*"):
        f.chmod(0o644)
    conf = work / "dbm-doctor.toml"
    conf.write_text(f'[backends.d]\ntype = "dbm"\npath = "{db}"\ndbm_type = "db"\n')
    conf.chmod(0o644)
    r = run("doctor", str(conf))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"ok    backends.d: 2 hashes recognised in {db} (1 bcrypt, 1 sha1)" in r.stdout
    assert "WARN  backends.d: 1 weak unsalted SHA-1 hash (quinn)" in r.stdout


def test_bench_png_without_matplotlib(site: Path, tmp_path: Path) -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        r = run("bench", str(site), "--user", "alice", "--threads", "1", "--duration", "0.1", "--cache", "on",
                "--png", str(tmp_path / "c.png"), stdin="wonder\n")
        assert r.returncode == 0
        assert "--png needs matplotlib" in r.stderr
        assert not (tmp_path / "c.png").exists()
    else:
        r = run("bench", str(site), "--user", "alice", "--threads", "1", "--duration", "0.1", "--cache", "on",
                "--png", str(tmp_path / "c.png"), stdin="wonder\n")
        assert r.returncode == 0
        assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_middleware_accepts_a_loaded_config(site: Path) -> None:
    from wsgiauth import load
    from wsgiauth.middleware import AuthMiddleware

    mw = AuthMiddleware(lambda e, s: [], load(site))
    assert mw.backend is load(site).backend


def test_user_sql_postgresql(work: Path) -> None:
    from backends import postgres

    if postgres.postgres_bindir() is None:
        missing("PostgreSQL is not installed (apt-get install postgresql)")
    with postgres.Postgres() as pg:
        pg.load_sql(pg.schema)
        r = run("user", "add", "--sql", pg.url, "ruth", "--group", "ops", "--realm", "Staff", stdin="pg pw\n")
        assert r.returncode == 0, r.stderr
        assert run("user", "passwd", "--sql", pg.url, "ruth", "--scheme", "bcrypt", "--cost", "4",
                   stdin="new pw\n").returncode == 0
        assert run("user", "list", "--sql", pg.url).stdout.splitlines() == ["ruth\tbcrypt"]
        conf = work / "pg-cli.toml"
        (work / "pg-pw").write_text(pg.password)
        conf.write_text(f'[backends.db]\ntype = "sql"\ndriver = "postgresql"\nhost = "127.0.0.1"\nport = {pg.port}\n'
                        f'database = "{pg.database}"\nuser = "{pg.user}"\npassword_file = "pg-pw"\n')
        # the same store through the configuration: no database password on the command line
        assert run("user", "add", "--config", str(conf), "sam", stdin="sam pw\n").returncode == 0
        assert run("user", "list", "--config", str(conf)).stdout.splitlines() == ["ruth\tbcrypt", "sam\targon2"]
        assert run("check", str(conf), "sam", stdin="sam pw\n").returncode == 0
        c = run("check", str(conf), "ruth", stdin="new pw\n")
        assert c.returncode == 0, c.stdout + c.stderr
        assert "groups:    ops" in c.stdout
        assert run("user", "delete", "--sql", pg.url, "ruth").returncode == 0
        assert run("check", str(conf), "ruth", stdin="new pw\n").returncode == 1


def test_user_through_config_file_backends(work: Path) -> None:
    conf = work / "files-cli.toml"
    conf.write_text(textwrap.dedent(f"""
        realm = "Staff"
        [backends.local]
        type = "htpasswd"
        users = "{work}/cfg-users"
        digest = "{work}/cfg-digest"
        groups = "{work}/cfg-groups"
    """))
    for name in ("cfg-users", "cfg-digest", "cfg-groups"):
        (work / name).write_text("")
    assert run("user", "add", "--config", str(conf), "tess", stdin="t pw\n").returncode == 0
    assert run("user", "add", "--config", str(conf), "--file", "digest", "tess", stdin="t pw\n").returncode == 0
    assert run("user", "add", "--config", str(conf), "--file", "groups", "tess", "--group", "staff").returncode == 0
    assert (work / "cfg-digest").read_text() == f"tess:Staff:{hashlib.md5(b'tess:Staff:t pw').hexdigest()}\n"
    c = run("check", str(conf), "tess", stdin="t pw\n")
    assert c.returncode == 0 and "groups:    staff" in c.stdout
    bad = run("user", "list", "--config", str(conf), "--backend", "nope")
    assert bad.returncode == 2 and "no backend named 'nope'" in bad.stderr


def test_check_names_the_member_of_a_chain_that_answered(work: Path, site: Path) -> None:
    htpasswd = require_tool("htpasswd")
    subprocess.run([htpasswd, "-cbB", "-C", "4", str(work / "second"), "uma", "uma pw"], check=True,
                   capture_output=True)
    conf = work / "chain-cli.toml"
    conf.write_text(textwrap.dedent(f"""
        [backends.first]
        type = "htpasswd"
        users = "{work}/users"
        [backends.second]
        type = "htpasswd"
        users = "{work}/second"
        label = "contractors file"
        [backends.all]
        type = "chain"
        members = ["first", "second"]
    """))
    r = run("check", str(conf), "uma", stdin="uma pw\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "backend:   contractors file" in r.stdout
    r = run("check", str(conf), "alice", stdin="wonder\n")
    assert "backend:   first" in r.stdout


@pytest.mark.apache
def test_reimported_auth_script_finds_the_same_config(apache_factory: Any, site: Path, work: Path) -> None:
    """mod_wsgi re-imports a changed auth.wsgi without cleaning up: load() must hand back the same objects."""
    trace = work / "imports"
    trace.write_text("")
    trace.chmod(0o666)
    script = textwrap.dedent(f"""
        import os
        from wsgiauth import load
        config = load({str(site)!r})
        check_password, get_realm_hash, groups_for_user, allow_access = config.hooks()
        with open({str(trace)!r}, "a") as f:
            f.write("%d %d %d\\n" % (os.getpid(), id(config), id(config.backend)))
    """)
    server = apache_factory(files={"auth.wsgi": script}, auth_user_script="auth.wsgi")
    assert server.get("/", user="alice", password="wonder").status == 200
    for generation in range(2):
        time.sleep(1.1)  # a new mtime (second resolution)
        server.write("auth.wsgi", script + f"# change {generation}\n")
        for _ in range(6):
            assert server.get("/", user="alice", password="wonder").status == 200
    imports: dict[str, set[tuple[str, str]]] = {}
    for line in trace.read_text().splitlines():
        pid, config_id, backend_id = line.split()
        imports.setdefault(pid, set()).add((config_id, backend_id))
    counts = [sum(1 for line in trace.read_text().splitlines() if line.startswith(pid + " ")) for pid in imports]
    assert max(counts) >= 2, trace.read_text()  # some process did re-import the script
    assert all(len(ids) == 1 for ids in imports.values()), trace.read_text()  # ...and found the same objects


def test_combined_dbm_user_without_groups_never_prints_the_hash(tmp_path: Path) -> None:
    """mod_authz_dbm reads a value with no ':' as the group list, so the hash is that user's "group" for Apache
    parity; `wsgiauth check` and `user list` must never print it."""
    htdbm = require_tool("htdbm")
    db = tmp_path / "combined.db"
    subprocess.run([htdbm, "-cbm", "-TDB", str(db), "alice", "pw of alice"], check=True, capture_output=True)
    from wsgiauth.backends import dbm

    stored = dbm.get_entry(db, "alice", type="db").hash.decode()
    assert stored.startswith("$apr1$")
    backend = dbm.Backend(db, type="db")
    assert backend.groups_for_user({}, "alice") == [stored]  # Apache's literal rule, kept
    conf = tmp_path / "dbm.toml"
    conf.write_text(f'[backends.d]\ntype = "dbm"\npath = "{db}"\ndbm_type = "db"\n')
    check = run("check", str(conf), "alice", stdin="pw of alice\n")
    assert check.returncode == 0, check.stdout + check.stderr
    listed = run("user", "list", "--dbm", str(db), "--dbm-type", "db")
    for out in (check.stdout + check.stderr, listed.stdout + listed.stderr):
        assert stored not in out and "$apr1$" not in out
    assert "groups:    (the stored hash, not shown)" in check.stdout
    assert listed.stdout.splitlines() == ["alice\t"]
