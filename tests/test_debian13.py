"""The Debian 13 leg: the wheel in a Debian 13 (trixie) root with Python 3.13, no compiler, and Debian's own Apache.

* the root (backends/trixie.py) is a cached debootstrap minbase with runtime packages only: no compiler, no -dev;
* the wheel under test is ``$WSGIAUTH_WHEEL``, the abi3 wheel of ``make dist`` (``make test`` and ``make debian13``
  pass it); it is pip-installed into a venv made from Debian's /usr/bin/python3, and its compiled core must load
  there;
* the sdist next to it builds from source in a layer over the root with only ``gcc`` and ``python3-dev`` installed
  (the compiled hash core and SDBM; Berkeley DB needs db.h, which that layer lacks), and installs in the root itself,
  without any compiler, on the pure-Python fallback;
* the suite's unit tests that need no server (:data:`UNIT_MODULES`) run inside the root against that install, with
  CI=true so that nothing skips, and the report header proves which wsgiauth they imported;
* end to end: Debian's apache2 + libapache2-mod-wsgi-py3 configured as most Debian sites are (a site with
  ``WSGIAuthUserScript``, ``WSGIAuthGroupScript``, ``WSGIAccessScript``; backends/data/trixie/site.conf) answers
  Basic over htpasswd files (``$apr1$``, bcrypt, ``$6$``, ``{SHA}``) and SDBM/GDBM/DB files, Digest, groups and host
  access, every store made by Debian's own ``htpasswd``/``htdbm``/``htdigest``; each answer is compared with Apache's
  native provider on the same file in the same server.

The durations of each phase are written to the terminal at the end of the module (``debian13 timings: ...``).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import tomllib
from requests.auth import HTTPDigestAuth

from backends import trixie as T
from backends._common import missing

pytestmark = [pytest.mark.debian13, pytest.mark.apache, pytest.mark.slow, pytest.mark.timeout(1200)]

CHECKOUT = Path(__file__).resolve().parents[1]
# The unit-test modules that start no server and need only Debian 13's apache2-utils, openssl and whois tools.
UNIT_MODULES = (
    "test_adapter.py",
    "test_cache.py",
    "test_compose.py",
    "test_dbm.py",
    "test_filewatch.py",
    "test_hashes.py",
    "test_hostaccess.py",
    "test_htpasswd.py",
    "test_middleware.py",
    "test_native.py",
    "test_pool.py",
    "test_textfile.py",
    "test_throttle.py",
    "test_watchdog.py",
)
SITE = T.SITE
SITE_PACKAGES = f"{T.VENV}/lib/python3.13/site-packages/"

TIMINGS: dict[str, float] = {}
REPORT: list[str] = []  # facts for the closing note: written to the terminal after the timings


@pytest.fixture(scope="module", autouse=True)
def _report_timings(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if TIMINGS or REPORT:
        line = " | ".join(f"{k} {v:.1f}s" for k, v in TIMINGS.items())
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():  # teardown output is captured (and dropped on success)
                reporter.write_line(f"\ndebian13 timings: {line}")
                for text in REPORT:
                    reporter.write_line(text)


@pytest.fixture(scope="module")
def wheel() -> Path:
    """``$WSGIAUTH_WHEEL``: the wheel of ``make dist``."""
    reason = T.unavailable()
    if reason is not None:
        missing(reason)
    given = os.environ.get("WSGIAUTH_WHEEL")
    if not given:
        missing("the Debian 13 leg tests the wheel of `make dist`: run it with `make test` or `make debian13`")
    path = Path(given)
    assert path.is_file() and path.suffix == ".whl", f"WSGIAUTH_WHEEL={given} is not a wheel file"
    return path


@pytest.fixture(scope="module")
def sdist(wheel: Path) -> Path:
    """The sdist ``make dist`` wrote next to the wheel."""
    version = wheel.name.split("-")[1]
    path = wheel.parent / f"wsgiauth_backends-{version}.tar.gz"
    assert path.is_file(), f"no sdist next to {wheel}"
    return path


@pytest.fixture(scope="module")
def root(wheel: Path) -> Iterator[T.Trixie]:
    """A session on the Debian 13 root with the wheel installed in its venv."""
    started = time.monotonic()
    session = T.Trixie()
    try:
        session.start()
        TIMINGS["root (total)"] = time.monotonic() - started
        TIMINGS.update({k: v for k, v in session.timings.items()})
        session.install_wheel(wheel, extras=["ldap"])  # as a user of the LDAP backend would (the unit tests use it)
        TIMINGS["package install"] = session.timings["package install"]
        yield session
    finally:
        session.close()


@pytest.fixture(scope="module")
def apache(root: T.Trixie) -> Iterator[T.DebianApache]:
    started = time.monotonic()
    server = T.DebianApache(root)
    try:
        server.configure()  # the site dir with the app and the auth scripts
        make_stores(root)
        server.start()
        TIMINGS["apache start"] = time.monotonic() - started
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------------- the root


def test_root_is_debian13_with_python313_and_no_compiler(root: T.Trixie) -> None:
    release = root.run(["/bin/sh", "-c", ". /etc/os-release; echo $VERSION_ID $VERSION_CODENAME"]).stdout.split()
    assert release == ["13", "trixie"]
    assert root.run([root.python, "-c", "import sys; print(sys.version_info[:2])"]).stdout.strip() == "(3, 13)"
    assert root.compilers() == []
    found = root.run(["/bin/sh", "-c", "command -v gcc cc cpp clang python3-config x86_64-linux-gnu-gcc; true"])
    assert found.stdout.strip() == ""
    installed = root.run(["dpkg-query", "-W", "-f=${Package}\\n", *T.RUNTIME_PACKAGES]).stdout.split()
    assert sorted(installed) == sorted(T.RUNTIME_PACKAGES)


def test_the_wheel_loads_its_compiled_core_from_the_venv(root: T.Trixie) -> None:
    code = ("import json, wsgiauth, wsgiauth._native as n, wsgiauth._native_dbm as d, wsgiauth._native_bdb as b, "
            "wsgiauth._lowlevel as low; "
            "print(json.dumps([wsgiauth.__file__, n.__file__, d.__file__, b.__file__, low.NATIVE, "
            "low.apr1_hash(b'secret', b'Vb4lGtYX'), low.crypt(b'secret', b'$6$Vb4lGtYX$')]))")
    origin, native, native_dbm, native_bdb, compiled, apr1, sha512 = json.loads(
        root.run([root.python, "-c", code], cwd="/tmp").stdout)
    assert origin == SITE_PACKAGES + "wsgiauth/__init__.py"
    assert compiled is True
    assert native == SITE_PACKAGES + "wsgiauth/_native.abi3.so"
    assert native_dbm == SITE_PACKAGES + "wsgiauth/_native_dbm.abi3.so"
    assert native_bdb == SITE_PACKAGES + "wsgiauth/_native_bdb.abi3.so"
    # the same hash as Debian 13's own tool: `openssl passwd -apr1 -salt Vb4lGtYX secret`
    assert apr1 == root.run(["openssl", "passwd", "-apr1", "-salt", "Vb4lGtYX", "secret"]).stdout.strip()
    # libxcrypt through the core, as Debian 13's `mkpasswd -m sha-512 -S Vb4lGtYX secret` makes it
    assert sha512 == root.run(["mkpasswd", "-m", "sha-512", "-S", "Vb4lGtYX", "secret"]).stdout.strip()


def _pytest_ini() -> str:
    """The suite's own pytest settings (pyproject's [tool.pytest.ini_options]) as a pytest.ini for the copy."""
    with open(CHECKOUT / "pyproject.toml", "rb") as fh:
        options: dict[str, Any] = tomllib.load(fh)["tool"]["pytest"]["ini_options"]
    lines = ["[pytest]"]
    for key, value in options.items():
        if key == "testpaths":
            continue
        if isinstance(value, list):
            lines.append(f"{key} =")
            lines += [f"    {item}" for item in value]
        else:
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


def test_unit_tests_pass_inside_the_root_against_the_installed_wheel(root: T.Trixie) -> None:
    dest = f"{T.SHARE}/checkout"
    copied = [f"tests/{m}" for m in UNIT_MODULES]
    copied += ["tests/conftest.py"] if (CHECKOUT / "tests/conftest.py").is_file() else []  # fixtures may move to a plugin
    copied += [str(p.relative_to(CHECKOUT)) for p in sorted((CHECKOUT / "backends").rglob("*"))
               if p.is_file() and "__pycache__" not in p.parts]
    for rel in copied:
        assert (CHECKOUT / rel).is_file(), f"{rel} is gone: update UNIT_MODULES"
        root.write(f"{dest}/{rel}", (CHECKOUT / rel).read_bytes())
    root.write(f"{dest}/origin_plugin.py", (T.DATA / "origin_plugin.py").read_bytes())
    root.write(f"{dest}/pytest.ini", _pytest_ini())
    assert not root.host_path(f"{dest}/src").exists()
    started = time.monotonic()
    result = root.run([root.python, "-m", "pytest", "-rfEs", "-p", "no:cacheprovider", "-p", "origin_plugin",
                       "-c", f"{dest}/pytest.ini", *(f"tests/{m}" for m in UNIT_MODULES)],
                      cwd=dest, env={"CI": "true"}, timeout=900, check=False)
    TIMINGS["unit tests"] = time.monotonic() - started
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    header = dict(line.split(": ", 1) for line in out.splitlines() if line.startswith("wsgiauth-"))
    assert header["wsgiauth-origin"] == SITE_PACKAGES + "wsgiauth/__init__.py"
    for name in ("native", "native-dbm", "native-bdb"):
        assert header[f"wsgiauth-{name}"].startswith(SITE_PACKAGES) and header[f"wsgiauth-{name}"].endswith(".abi3.so")
    assert header["wsgiauth-core-in-use"] == "compiled"
    assert header["wsgiauth-python"].startswith("3.13.") and header["wsgiauth-python"].endswith(" " + T.VENV)
    summary = out.strip().splitlines()[-1]
    assert " passed" in summary and not any(w in summary for w in ("failed", "error", "skipped")), summary
    # tests on a host server fixture are deselected there (they run on the host in this suite): say which
    deselected = header.get("wsgiauth-deselected-server-tests", "none")
    REPORT.append(f"debian13 unit tests: {summary.strip('= ')}; deselected (need a host server): {deselected}")
    assert int(summary.split(" passed")[0].split()[-1]) >= 500, summary


def test_the_compiled_modules_need_only_libc_there(root: T.Trixie) -> None:
    out = root.run(["/bin/sh", "-c", f"for f in {SITE_PACKAGES}wsgiauth/*.so; do echo \"== $f\"; ldd \"$f\"; done"])
    REPORT.append("debian13 ldd:\n" + out.stdout.rstrip())
    blocks = out.stdout.split("== ")[1:]
    assert len(blocks) == 3, out.stdout
    for block in blocks:
        libs = [line.split()[0] for line in block.splitlines()[1:] if line.strip()]
        assert [lib for lib in libs if not lib.startswith(("linux-vdso", "/lib64/ld-linux"))] == ["libc.so.6"], block


# ---------------------------------------------------------------------------------------------------- from source

# What an install from the sdist can do: the core in use, each native part, and a user found in files made by
# Debian 13's own htpasswd / htdbm (argv: the directory holding them).
_SMOKE = """
import json, sys
from wsgiauth import StoreError, _compiled, _lowlevel, hashes
from wsgiauth.backends import dbm, htpasswd
d = sys.argv[1]
out = {"core": "compiled" if _lowlevel.NATIVE else "fallback",
       "parts": {p.name: p.available for p in _compiled.parts()}}
for scheme in ("apr1", "bcrypt", "sha512", "sha1"):
    out[scheme] = htpasswd.Backend(users=f"{d}/htpasswd-{scheme}").check_password({}, "alice", "alice-pw")
for t in ("sdbm", "gdbm", "db"):
    try:
        out[t] = dbm.Backend(f"{d}/users-{t}").check_password({}, "alice", "alice-pw")
    except StoreError as exc:
        out[t] = str(exc)
print(json.dumps(out))
"""


def _stores_for_smoke(root: T.Trixie, where: str) -> None:
    for name, flag in HTPASSWD.items():
        root.run(["htpasswd", "-bc", flag, f"{where}/htpasswd-{name}", "alice", "alice-pw"])
    for name, (dbm_type, flag) in HTDBM.items():
        root.run(["htdbm", "-bc", flag, f"-T{dbm_type}", f"{where}/users-{name}", "alice", "alice-pw"])


def _install_sdist(root: T.Trixie, sdist: Path, venv: str) -> str:
    inner = f"{T.SHARE}/wheels/{sdist.name}"
    root.write(inner, sdist.read_bytes())
    root.run(["/usr/bin/python3", "-m", "venv", venv])
    result = root.run([f"{venv}/bin/python", "-m", "pip", "install", "-v", "--no-binary", "wsgiauth-backends",
                       inner], timeout=900, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    return out


def test_the_sdist_builds_with_only_gcc_and_python3_dev(sdist: Path) -> None:
    """In a layer over the root with ``apt-get install --no-install-recommends gcc python3-dev`` and nothing else:
    the sdist builds the compiled hash core and SDBM (no db.h there: no Berkeley DB module, and it says so)."""
    started = time.monotonic()
    with T.Layer("build-gcc", T.BUILD_PACKAGES) as layer, T.Trixie(layers=[layer.path]) as build:
        TIMINGS.update(layer.timings)
        dev = build.run(["/bin/sh", "-c", "dpkg-query -W -f='${Package}\\n' | grep -E -- '-dev$|^gcc|^cpp' | sort"])
        listed = dev.stdout.split()
        assert "python3-dev" in listed and any(p.startswith("gcc") for p in listed), listed
        assert not any(p.startswith(("libdb", "libgdbm", "libffi")) and p.endswith("-dev") for p in listed), listed
        log = _install_sdist(build, sdist, "/opt/src-venv")
        TIMINGS["sdist build (gcc + python3-dev)"] = time.monotonic() - started
        where = f"{T.SHARE}/smoke"
        build.run(["mkdir", "-p", where])
        _stores_for_smoke(build, where)
        result = json.loads(build.run(["/opt/src-venv/bin/python", "-c", _SMOKE, where], cwd="/tmp").stdout)
    wanted = ("wsgiauth build:", "building '", "gcc ", "Successfully installed", "Building wheel")
    lines = [line.strip() for line in log.splitlines() if any(w in line for w in wanted)]
    REPORT.append("debian13 from-source build (layer: " + " ".join(listed) + "):\n  " + "\n  ".join(lines[:40]))
    REPORT.append(f"debian13 from-source install: {json.dumps(result)}")
    assert "wsgiauth build: db.h not found: wsgiauth._native_bdb is not built" in log
    assert "building 'wsgiauth._native' extension" in log and "building 'wsgiauth._native_dbm' extension" in log
    assert result["core"] == "compiled"
    assert result["parts"] == {"compiled hash core (compare, MD5/HA1, $apr1$)": True, "compiled SDBM reader/writer": True,
                               "compiled Berkeley DB binding": False, "libxcrypt (libcrypt.so.1)": True,
                               "libgdbm (libgdbm.so.6)": True, "Berkeley DB (libdb-5.3.so)": True}
    assert all(result[k] is True for k in ("apr1", "bcrypt", "sha512", "sha1", "sdbm", "gdbm")), result
    assert "Berkeley DB files need wsgiauth's compiled module wsgiauth._native_bdb" in result["db"]


def test_the_sdist_installs_without_a_compiler_on_the_fallback(root: T.Trixie, sdist: Path) -> None:
    """The root itself has no compiler: the sdist still installs, on the pure-Python fallback, and serves every store
    but Berkeley DB."""
    started = time.monotonic()
    log = _install_sdist(root, sdist, "/opt/nocc-venv")
    TIMINGS["sdist install (no compiler)"] = time.monotonic() - started
    assert "could not be compiled" in log and "the pure-Python fallback will be used" in log
    where = f"{T.SHARE}/smoke-nocc"
    root.run(["mkdir", "-p", where])
    _stores_for_smoke(root, where)
    result = json.loads(root.run(["/opt/nocc-venv/bin/python", "-c", _SMOKE, where], cwd="/tmp").stdout)
    REPORT.append(f"debian13 no-compiler install: {json.dumps(result)}")
    assert result["core"] == "fallback"
    assert [name for name, ok in result["parts"].items() if not ok] == [
        "compiled hash core (compare, MD5/HA1, $apr1$)", "compiled SDBM reader/writer", "compiled Berkeley DB binding"]
    assert all(result[k] is True for k in ("apr1", "bcrypt", "sha512", "sha1", "sdbm", "gdbm")), result
    assert "Berkeley DB files need wsgiauth's compiled module wsgiauth._native_bdb" in result["db"]


# ---------------------------------------------------------------------------------------------------- end to end

USERS = {"alice": "alice-pw", "carol": "carol-pw", "jürgen": "grüße-pw"}
GROUPS = {"alice": "staff", "carol": "other", "jürgen": "staff"}
HTPASSWD = {"apr1": "-m", "bcrypt": "-B", "sha512": "-5", "sha1": "-s"}
HTDBM = {"sdbm": ("SDBM", "-m"), "gdbm": ("GDBM", "-B"), "db": ("DB", "-s")}
DIGEST_REALM = "trixie digest"
PREFIXES = {"apr1": "$apr1$", "bcrypt": "$2y$", "sha512": "$6$", "sha1": "{SHA}"}


def make_stores(root: T.Trixie) -> None:
    """Every store the site names, made inside the root by Debian 13's htpasswd, htdbm and htdigest."""
    for name, flag in HTPASSWD.items():
        for i, (user, password) in enumerate(USERS.items()):
            create = "c" if i == 0 else ""
            root.run(["htpasswd", f"-b{create}", flag, f"{SITE}/htpasswd-{name}", user, password])
        text = root.host_path(f"{SITE}/htpasswd-{name}").read_text(encoding="utf-8")
        assert all(line.split(":", 1)[1].startswith(PREFIXES[name]) for line in text.splitlines()), text
    for name, (dbm_type, flag) in HTDBM.items():
        for i, (user, password) in enumerate(USERS.items()):
            create = "c" if i == 0 else ""
            root.run(["htdbm", f"-b{create}t", flag, f"-T{dbm_type}", f"{SITE}/users-{name}", user, password,
                      GROUPS[user]])
        dump = root.run(["htdbm", "-l", f"-T{dbm_type}", f"{SITE}/users-{name}"])
        listed = dump.stdout + dump.stderr  # htdbm -l writes its table to stderr
        assert all(user in listed for user in USERS), listed
    for i, user in enumerate(("alice", "carol")):
        password = USERS[user]
        root.run(["htdigest", *(["-c"] if i == 0 else []), f"{SITE}/htdigest", DIGEST_REALM, user],
                 input=f"{password}\n{password}\n")
    groups: dict[str, list[str]] = {}
    for user, group in GROUPS.items():
        groups.setdefault(group, []).append(user)
    root.write(f"{SITE}/htgroup", "".join(f"{g}: {' '.join(m)}\n" for g, m in groups.items()))
    root.run(["/bin/sh", "-c", f"chmod 0644 {SITE}/htpasswd-* {SITE}/users-* {SITE}/htdigest {SITE}/htgroup"])


def basic(server: T.DebianApache, path: str, user: str | None, password: str = "",
          source: str = "127.0.0.1") -> tuple[int, str | None]:
    """(status, REMOTE_USER) for one request; credentials sent as UTF-8 bytes, from ``source``."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=20, source_address=(source, 0))
    try:
        headers = {}
        if user is not None:
            headers["Authorization"] = b"Basic " + base64.b64encode(f"{user}:{password}".encode())
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, json.loads(body)["REMOTE_USER"] if resp.status == 200 else None
    finally:
        conn.close()


def digest(server: T.DebianApache, path: str, user: str, password: str) -> tuple[int, str | None]:
    resp = requests.get(server.url.rstrip("/") + path, auth=HTTPDigestAuth(user, password), timeout=20)
    return resp.status_code, resp.json()["REMOTE_USER"] if resp.status_code == 200 else None


def cases() -> list[tuple[str, str, Any, tuple[int, str | None]]]:
    """(name, location, request, expected answer): every store, every kind of credential."""
    out: list[tuple[str, str, Any, tuple[int, str | None]]] = []
    for store in (*HTPASSWD, *HTDBM):
        out += [
            (f"{store} right", store, ("basic", "alice", USERS["alice"]), (200, "alice")),
            (f"{store} utf-8 name", store, ("basic", "jürgen", USERS["jürgen"]), (200, "jürgen")),
            (f"{store} wrong", store, ("basic", "alice", "wrong-pw"), (401, None)),
            (f"{store} unknown", store, ("basic", "mallory", USERS["alice"]), (401, None)),
            (f"{store} no credentials", store, ("basic", None, ""), (401, None)),
        ]
    out += [
        ("digest right", "digest", ("digest", "alice", USERS["alice"]), (200, "alice")),
        ("digest other user", "digest", ("digest", "carol", USERS["carol"]), (200, "carol")),
        ("digest wrong", "digest", ("digest", "alice", "wrong-pw"), (401, None)),
        ("digest unknown", "digest", ("digest", "mallory", USERS["alice"]), (401, None)),
        ("group member", "group", ("basic", "alice", USERS["alice"]), (200, "alice")),
        ("group utf-8 member", "group", ("basic", "jürgen", USERS["jürgen"]), (200, "jürgen")),
        ("group non-member", "group", ("basic", "carol", USERS["carol"]), (401, None)),
        ("group wrong password", "group", ("basic", "alice", "wrong-pw"), (401, None)),
        ("dbm group member", "dbm-group", ("basic", "alice", USERS["alice"]), (200, "alice")),
        ("dbm group non-member", "dbm-group", ("basic", "carol", USERS["carol"]), (401, None)),
        ("host allowed", "host", ("host", "127.0.0.1"), (200, None)),
        ("host denied", "host", ("host", "127.0.0.2"), (403, None)),
    ]
    return out


def ask(server: T.DebianApache, side: str, location: str, how: Any) -> tuple[int, str | None]:
    path = f"/{side}/{location}/"
    if how[0] == "basic":
        return basic(server, path, how[1], how[2])
    if how[0] == "digest":
        return digest(server, path, how[1], how[2])
    return basic(server, path, None, source=how[1])


def test_debian_apache_answers_like_its_native_providers(apache: T.DebianApache) -> None:
    started = time.monotonic()
    table = [(name, expected, ask(apache, "wsgi", loc, how), ask(apache, "native", loc, how))
             for name, loc, how, expected in cases()]
    TIMINGS["e2e requests"] = time.monotonic() - started
    report = "\n".join(f"{name:24} expected {exp} wsgi {w} native {n}" for name, exp, w, n in table)
    assert all(w == n for _name, _exp, w, n in table), "wsgiauth and the native provider differ:\n" + report
    assert all(w == exp for _name, exp, w, _n in table), "unexpected answers:\n" + report
    log = apache.error_log_text()
    # Debian's mod_wsgi for Python 3.13 served the hooks, and no hook raised.
    assert "mod_wsgi/" in log and "Python/3.13" in log, log[-3000:]
    # the hooks ran on the wheel's compiled modules (each script says so at import, in the error log)
    for module in ("_native", "_native_dbm", "_native_bdb"):
        assert f"wsgiauth {module} in this child: {SITE_PACKAGES}wsgiauth/{module}.abi3.so" in log, log[-3000:]
    assert "Traceback" not in log and "Exception occurred" not in log, log[-3000:]


def test_hooks_run_in_apaches_children_as_www_data(apache: T.DebianApache) -> None:
    assert basic(apache, "/wsgi/apr1/", "alice", USERS["alice"]) == (200, "alice")
    # the root shares the host's pid namespace: Debian's envvars made the parent root and its children www-data
    assert apache.pid is not None and _uid(apache.pid) == 0
    children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _ppid(int(p.name)) == apache.pid]
    assert children and {_uid(c) for c in children} == {33}, children


def _status_field(pid: int, field: str) -> str | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return line.split()[1]
    except OSError:
        return None
    return None


def _ppid(pid: int) -> int | None:
    value = _status_field(pid, "PPid")
    return int(value) if value else None


def _uid(pid: int) -> int | None:
    value = _status_field(pid, "Uid")
    return int(value) if value else None
