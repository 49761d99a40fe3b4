"""wsgiauth's hooks per backend and hash type, next to the Python peers, on the same users (micro, in process).

Run for real with ``.venv/bin/python -m pytest benchmarks/bench_peers.py --benchmark-enable --benchmark-only``
(``make bench`` does); the normal suite runs each function once (``--benchmark-disable``).

The data: the users of :mod:`benchmarks.e2e` (``$apr1$``, bcrypt cost 5, ``$6$``, ``{SHA}``, made by Apache's own
``htpasswd``) plus 1,000 other users, in an htpasswd file, an htdigest file, an htgroup file, a Berkeley DB file and
an SQLite database (wsgiauth's schema); and the same user names and passwords in a Django SQLite database (Django's
default hasher, PBKDF2-SHA256 with Django's iteration count).

What is measured (each through the mod_wsgi hook a script exports, with a cut-down environ):

* ``check_password`` per backend (htpasswd, DBM, SQLite) and hash type, uncached and with :func:`wsgiauth.cache.
  cached` (warm: the right password was checked once);
* ``get_realm_hash`` (htdigest, SQLite) and ``groups_for_user`` (htgroup, SQLite);
* the peers: libpass's ``HtpasswdFile.check_password`` (file loaded once), a typical hand-written ``auth.wsgi``
  (reads the file on every request and verifies with libpass: :data:`benchmarks.e2e.SCRIPTS`), and Django's
  ``django.contrib.auth.handlers.modwsgi.check_password`` next to wsgiauth's SQL backend (``preset="django"``) on
  the very same Django database, for a known and an unknown user.

LDAP and PostgreSQL are measured end to end only (:mod:`benchmarks.e2e`), where their servers are.

Django can be configured once per process. When another test of the same pytest session configured it first
(``make test`` runs tests/ before benchmarks/), the Django benchmarks run in a fresh pytest subprocess instead.

Run as a program (``python -m benchmarks.bench_peers OUT.json``), this module records facts about the peers that
are not timings: whether passlib 1.7.4 (the last passlib release) works beside bcrypt 5 (fetched with ``pip
download`` into a temp dir and imported in a subprocess).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backends._common import SQL_SCHEMA, require_tool
from benchmarks import e2e
from wsgiauth.backends import dbm, htpasswd, sql
from wsgiauth.cache import cached

ENV = {"REMOTE_ADDR": "127.0.0.1", "REQUEST_URI": "/"}
USERS = {u: pw for u, (pw, _flags, _label) in e2e.FILE_USERS.items()}
LABELS = {u: label for u, (_pw, _flags, label) in e2e.FILE_USERS.items()}
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

DJANGO_SETTINGS = """\
SECRET_KEY = "wsgiauth benchmark, not a secret"
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r}}}}}
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
USE_TZ = True
"""

DJANGO_MAKE = """\
import json, os, sys
sys.path.insert(0, sys.argv[1])
os.environ["DJANGO_SETTINGS_MODULE"] = "bench_django_settings"
import django
django.setup()
from django.contrib.auth.models import Group, User
from django.core.management import call_command
call_command("migrate", verbosity=0, interactive=False)
staff = Group.objects.create(name="staff")
for name, password in json.loads(sys.argv[2]).items():
    staff.user_set.add(User.objects.create_user(name, password=password))
"""


def make_django_site(directory: Path, users: dict[str, str]) -> Path:
    """A Django settings module (``bench_django_settings``) and its migrated SQLite database holding ``users``.

    Args:
        directory: where to write ``bench_django_settings.py`` and ``django.sqlite3``.
        users: user name -> password (Django's default hasher; every user in group ``staff``).

    Returns:
        The database path.
    """
    db = directory / "django.sqlite3"
    (directory / "bench_django_settings.py").write_text(DJANGO_SETTINGS.format(db=str(db)))
    subprocess.run([sys.executable, "-c", DJANGO_MAKE, str(directory), json.dumps(users)], check=True,
                   timeout=120, cwd=directory)
    for p in (db, directory / "bench_django_settings.py"):
        os.chmod(p, 0o644)
    return db


def make_sqlite(path: Path, users: dict[str, str], hashes: dict[str, str]) -> None:
    """wsgiauth's schema (wsgiauth/data/sql/schema.sql) with ``users`` (stored ``hashes``), groups and Digest rows."""
    con = sqlite3.connect(path)
    try:
        con.executescript(SQL_SCHEMA.read_text())
        con.executemany("INSERT INTO wsgiauth_user (name, password_hash) VALUES (?, ?)", hashes.items())
        con.executemany("INSERT INTO wsgiauth_group_member (username, groupname) VALUES (?, 'staff')",
                        [(u,) for u in users])
        con.execute("INSERT INTO wsgiauth_user (name, password_hash) VALUES (?, ?)", (e2e.DIGEST_USER, "{SHA}x"))
        import hashlib

        ha1 = hashlib.md5(f"{e2e.DIGEST_USER}:{e2e.REALM}:{e2e.DIGEST_PASSWORD}".encode()).hexdigest()
        con.execute("INSERT INTO wsgiauth_realm_hash VALUES (?, ?, ?)", (e2e.DIGEST_USER, e2e.REALM, ha1))
        con.commit()
    finally:
        con.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every store, holding the same users (see the module docstring)."""
    require_tool("htpasswd")
    require_tool("htdigest")
    root = tmp_path_factory.mktemp("bench-peers")
    text = e2e._htpasswd_text()
    (root / "htpasswd").write_text(text)
    (root / "htdigest").write_text(e2e._htdigest_text())
    members = " ".join([*USERS, *(e2e._filler(i) for i in range(0, e2e.FILLER_USERS, 3))])
    (root / "htgroup").write_text(f"staff: {members}\nadmins: u_apr1\n")
    hashes = {}
    for line in text.splitlines():
        name, _, stored = line.partition(":")
        if name in USERS:
            hashes[name] = stored
    make_sqlite(root / "users.sqlite", USERS, hashes)
    from wsgiauth._dbmfile import DbmFile

    with DbmFile(root / "users.db", "DB", writable=True) as w:
        for i in range(e2e.FILLER_USERS):
            w.store(e2e._filler(i).encode(), e2e._sha1_hash(f"filler pw {i}").encode())
        for name, stored in hashes.items():
            w.store(name.encode(), f"{stored}:staff".encode())
    return {"dir": root, "htpasswd": root / "htpasswd", "htdigest": root / "htdigest", "htgroup": root / "htgroup",
            "sqlite": root / "users.sqlite", "db": root / "users.db"}


def _backend(kind: str, s: dict[str, Path]) -> Any:
    if kind == "htpasswd":
        return htpasswd.Backend(users=s["htpasswd"], digest=s["htdigest"], groups=s["htgroup"])
    if kind == "dbm":
        return dbm.Backend(s["db"], type="DB")
    if kind == "sqlite":
        return sql.sqlite(s["sqlite"], pool_key=("bench-peers", str(s["sqlite"])))
    raise ValueError(kind)


# ------------------------------------------------------------------------------------------------ wsgiauth


@pytest.mark.parametrize("cache", ["uncached", "cached"])
@pytest.mark.parametrize("user", list(USERS))
@pytest.mark.parametrize("kind", ["htpasswd", "dbm", "sqlite"])
def test_check_password(benchmark: Any, store: dict[str, Path], kind: str, user: str, cache: str) -> None:
    backend = _backend(kind, store)
    if cache == "cached":
        backend = cached(backend)
    benchmark.group = f"check_password {LABELS[user]}"
    benchmark.name = f"wsgiauth {kind} {cache}"
    password = USERS[user]
    assert backend.check_password(ENV, user, password) is True
    assert backend.check_password(ENV, user, password + "x") is False
    assert benchmark(backend.check_password, ENV, user, password) is True


@pytest.mark.parametrize("kind", ["htpasswd", "sqlite"])
def test_get_realm_hash(benchmark: Any, store: dict[str, Path], kind: str) -> None:
    import hashlib

    backend = _backend(kind, store)
    want = hashlib.md5(f"{e2e.DIGEST_USER}:{e2e.REALM}:{e2e.DIGEST_PASSWORD}".encode()).hexdigest()
    benchmark.group = "get_realm_hash"
    benchmark.name = f"wsgiauth {kind}"
    assert benchmark(backend.get_realm_hash, ENV, e2e.DIGEST_USER, e2e.REALM) == want
    assert backend.get_realm_hash(ENV, e2e.DIGEST_USER, "other realm") is None


@pytest.mark.parametrize("kind", ["htpasswd", "sqlite"])
def test_groups_for_user(benchmark: Any, store: dict[str, Path], kind: str) -> None:
    backend = _backend(kind, store)
    benchmark.group = "groups_for_user"
    benchmark.name = f"wsgiauth {kind}"
    got = benchmark(backend.groups_for_user, ENV, "u_apr1")
    assert "staff" in got and all(isinstance(g, str) for g in got)
    assert backend.groups_for_user(ENV, "nobody") == []


# ----------------------------------------------------------------------------------------------- the peers


@pytest.mark.parametrize("user", list(USERS))
def test_libpass_htpasswdfile(benchmark: Any, store: dict[str, Path], user: str) -> None:
    from passlib.apache import HtpasswdFile

    ht = HtpasswdFile(str(store["htpasswd"]))
    benchmark.group = f"check_password {LABELS[user]}"
    benchmark.name = "libpass HtpasswdFile (loaded once)"
    assert ht.check_password(user, USERS[user] + "x") is False
    assert benchmark(ht.check_password, user, USERS[user]) is True


def handwritten_module(directory: Path) -> types.ModuleType:
    """The hand-written ``auth.wsgi`` of :data:`benchmarks.e2e.SCRIPTS`, loaded as mod_wsgi would, from ``directory``."""
    path = directory / "handwritten.wsgi"
    path.write_text(e2e.SCRIPTS["handwritten.wsgi"])
    module = types.ModuleType("_bench_handwritten")
    module.__file__ = str(path)
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)
    return module


@pytest.mark.parametrize("user", list(USERS))
def test_handwritten_script(benchmark: Any, store: dict[str, Path], user: str) -> None:
    script = handwritten_module(store["dir"])
    benchmark.group = f"check_password {LABELS[user]}"
    benchmark.name = "hand-written script (libpass, file read per call)"
    assert script.check_password(ENV, user, USERS[user] + "x") is False
    assert script.check_password(ENV, "nobody", "x") is None
    assert benchmark(script.check_password, ENV, user, USERS[user]) is True


# ------------------------------------------------------------------------------------------------- Django

_django_ours = False


@pytest.fixture(scope="module")
def django_site(store: dict[str, Path]) -> Iterator[Path | None]:
    """Django configured in this process on the benchmark users, or ``None`` when someone else configured it."""
    global _django_ours
    from django.conf import settings

    site = store["dir"] / "django"
    site.mkdir(exist_ok=True)
    db = make_django_site(site, {"u_sha1": USERS["u_sha1"]})
    if settings.configured and not _django_ours:
        yield None
        return
    if not settings.configured:
        import django

        settings.configure(DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(db)}},
                           INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"], USE_TZ=True,
                           SECRET_KEY="wsgiauth benchmark")
        django.setup()
        _django_ours = True
    yield db


_subprocess_outcome: dict[str, tuple[int, str]] = {}


def _rerun_in_subprocess(request: pytest.FixtureRequest, benchmark: Any) -> None:
    """Run every Django benchmark of this module once in a fresh pytest (one subprocess for all of them)."""
    if request.config.getoption("benchmark_disable", default=True) is False:
        pytest.fail("Django is already configured in this process by another test: run the Django benchmarks alone "
                    "(pytest benchmarks/bench_peers.py)")
    if "django" not in _subprocess_outcome:
        proc = subprocess.run([sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider",
                               "--benchmark-disable", "-k", "test_django_modwsgi or test_wsgiauth_on_django_db"],
                              cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
        _subprocess_outcome["django"] = (proc.returncode, proc.stdout[-3000:] + proc.stderr[-3000:])
    code, output = _subprocess_outcome["django"]
    assert code == 0, output
    benchmark(lambda: None)  # benchmarks are disabled here (checked above): this only marks the fixture used


@pytest.mark.parametrize("who", ["known user", "unknown user"])
def test_django_modwsgi(benchmark: Any, django_site: Path | None, request: pytest.FixtureRequest, who: str) -> None:
    if django_site is None:
        _rerun_in_subprocess(request, benchmark)
        return
    from django.contrib.auth.handlers import modwsgi

    user = "u_sha1" if who == "known user" else "nobody"
    want = True if who == "known user" else None
    benchmark.group = f"Django database, {who}"
    benchmark.name = "Django handlers.modwsgi.check_password"
    assert modwsgi.check_password(ENV, "u_sha1", "wrong") is False
    assert benchmark.pedantic(modwsgi.check_password, (ENV, user, USERS["u_sha1"]), rounds=5,
                              warmup_rounds=1) is want


@pytest.mark.parametrize("cache", ["uncached", "cached"])
@pytest.mark.parametrize("who", ["known user", "unknown user"])
def test_wsgiauth_on_django_db(benchmark: Any, django_site: Path | None, request: pytest.FixtureRequest, who: str,
                               cache: str) -> None:
    if django_site is None:
        _rerun_in_subprocess(request, benchmark)
        return
    backend = sql.sqlite(django_site, preset="django", pool_key=("bench-peers-django", str(django_site)))
    if cache == "cached":
        backend = cached(backend)
    user = "u_sha1" if who == "known user" else "nobody"
    want = True if who == "known user" else None
    benchmark.group = f"Django database, {who}"
    benchmark.name = f"wsgiauth sql preset=django {cache}"
    assert backend.check_password(ENV, "u_sha1", "wrong") is False
    assert backend.check_password(ENV, user, USERS["u_sha1"]) is want
    if cache == "cached" and want:
        assert benchmark(backend.check_password, ENV, user, USERS["u_sha1"]) is want
    else:
        assert benchmark.pedantic(backend.check_password, (ENV, user, USERS["u_sha1"]), rounds=5,
                                  warmup_rounds=1) is want


# ---------------------------------------------------------------------------------- facts about the peers

PASSLIB_PROBE = """\
import sys
sys.path.insert(0, sys.argv[1])
import bcrypt, passlib
out = {"passlib": passlib.__version__, "bcrypt": bcrypt.__version__}
try:
    from passlib.hash import bcrypt as h
    stored = h.hash("secret")
    out["bcrypt verify"] = h.verify("secret", stored)
except Exception as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
import json
print(json.dumps(out))
"""


def passlib_174_status() -> str:
    """What happens when passlib 1.7.4 (PyPI's last passlib) is used beside bcrypt 5, in a sentence."""
    with tempfile.TemporaryDirectory(prefix="wsgiauth-passlib-") as tmp:
        dl = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                             "-d", tmp, "passlib==1.7.4"], capture_output=True, text=True, timeout=180, check=False)
        wheels = list(Path(tmp).glob("passlib-1.7.4-*.whl"))
        if dl.returncode != 0 or not wheels:
            return f"not checked: `pip download passlib==1.7.4` failed: {(dl.stderr or dl.stdout).strip()[-300:]}"
        probe = subprocess.run([sys.executable, "-c", PASSLIB_PROBE, str(wheels[0])], capture_output=True, text=True,
                               timeout=120, check=False)
        try:
            out = json.loads(probe.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return f"passlib 1.7.4 crashed the interpreter beside bcrypt: {probe.stderr.strip()[-400:]}"
        if "error" in out:
            return (f"passlib {out['passlib']} with bcrypt {out['bcrypt']}: imports, but its bcrypt handler fails on "
                    f"first use: `{out['error']}` (passlib's backend self-test, detect_wrap_bug, hashes a password longer "
                    "than 72 bytes, which bcrypt >= 5 refuses); libpass (the maintained fork) works")
        return f"passlib {out['passlib']} with bcrypt {out['bcrypt']}: works (bcrypt verify: {out['bcrypt verify']})"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else HERE / "results" / "peers.json"
    import passlib

    facts = {
        "passlib 1.7.4 beside bcrypt 5": passlib_174_status(),
        "libpass": f"passlib {passlib.__version__} (libpass) is what the peer benchmarks use",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(facts, indent=1) + "\n")
    print(json.dumps(facts, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
