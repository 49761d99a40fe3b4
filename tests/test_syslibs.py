"""The system libraries opened at run time (libxcrypt, libgdbm, Berkeley DB): declarations, and their absence.

* The ABI-mode declarations (csrc/abi_*.h) and the constants wsgiauth passes agree with the real headers (compiled
  against them where the -dev packages are installed, as `make deps` does);
* a machine without a library (simulated by mounting /dev/null over it in a private mount namespace, which is what
  ``dlopen`` then meets) gets a clear error naming the library and the Debian package, from the hash layer, from the
  DBM layer and from ``wsgiauth doctor``, while everything else keeps working.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from backends._common import missing, require_tool
from wsgiauth import _compiled, _gdbm, _lowlevel

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"


def _compile(tmp_path: Path, source: str, *, run: bool = False) -> str:
    gcc = require_tool("gcc")
    c = tmp_path / "check.c"
    c.write_text(source)
    out = tmp_path / "check"
    proc = subprocess.run([gcc, "-Wall", "-Werror", "-o", str(out), str(c)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return subprocess.run([str(out)], capture_output=True, text=True, check=True).stdout if run else ""


def _header(name: str) -> str:
    path = Path("/usr/include") / name
    if not path.is_file():
        missing(f"/usr/include/{name} is not installed (the -dev package; `make deps` installs it)")
    return path.read_text()


def _prototypes(abi: str) -> str:
    """The function declarations of a csrc/abi_*.h file (typedefs dropped: the real header has its own)."""
    text = re.sub(r"/\*.*?\*/", "", (CSRC / abi).read_text(), flags=re.S)
    text = re.sub(r"typedef[^;]*?\{.*?\}\s*\w+\s*;", "", text, flags=re.S)
    return re.sub(r"typedef[^;]*;", "", text)


def test_xcrypt_declarations_and_sizes_match_crypt_h(tmp_path: Path) -> None:
    _header("crypt.h")
    source = "#include <crypt.h>\n#include <stdio.h>\n" + _prototypes("abi_xcrypt.h") + """
int main(void) {
    printf("%zu %d %d %d %d %d %d %d %d\\n", sizeof(struct crypt_data), CRYPT_OUTPUT_SIZE, CRYPT_GENSALT_OUTPUT_SIZE,
           CRYPT_MAX_PASSPHRASE_SIZE, CRYPT_SALT_OK, CRYPT_SALT_INVALID, CRYPT_SALT_METHOD_DISABLED,
           CRYPT_SALT_METHOD_LEGACY, CRYPT_SALT_TOO_CHEAP);
    return 0;
}
"""
    values = [int(v) for v in _compile(tmp_path, source, run=True).split()]
    low = _lowlevel
    assert values == [low._CRYPT_DATA_SIZE, low._CRYPT_OUTPUT_SIZE, low._CRYPT_GENSALT_OUTPUT_SIZE,
                      low._CRYPT_MAX_PASSPHRASE_SIZE, low.CRYPT_SALT_OK, low.CRYPT_SALT_INVALID,
                      low.CRYPT_SALT_METHOD_DISABLED, low.CRYPT_SALT_METHOD_LEGACY, low.CRYPT_SALT_TOO_CHEAP]


def test_gdbm_declarations_and_constants_match_gdbm_h(tmp_path: Path) -> None:
    _header("gdbm.h")
    names = ["GDBM_READER", "GDBM_WRCREAT", "GDBM_NOLOCK", "GDBM_NOMMAP", "GDBM_CLOEXEC", "GDBM_REPLACE",
             "GDBM_NO_ERROR", "GDBM_FILE_OPEN_ERROR", "GDBM_FILE_WRITE_ERROR", "GDBM_FILE_READ_ERROR",
             "GDBM_CANT_BE_WRITER", "GDBM_ITEM_NOT_FOUND", "GDBM_FILE_STAT_ERROR"]
    source = "#include <gdbm.h>\n#include <stdio.h>\n#include <stdlib.h>\n" + _prototypes("abi_gdbm.h") + """
int main(void) {
    datum d = {0, 0};
    (void)d.dptr; (void)d.dsize;
""" + "".join(f'    printf("%d\\n", (int){n});\n' for n in names) + "    return 0;\n}\n"
    values = [int(v) for v in _compile(tmp_path, source, run=True).split()]
    assert values == [getattr(_gdbm, n) for n in names]
    assert "libgdbm.so.6" == _compiled.LIBRARIES["libgdbm"].soname
    assert re.search(r"GDBM_VERSION_MAJOR\s+1\b", _header("gdbm.h"))  # soname 6 is libgdbm 1.14 and later


def test_libdb_is_the_version_of_the_header() -> None:
    header = _header("db.h")
    major = re.search(r"#define\s+DB_VERSION_MAJOR\s+(\d+)", header)
    minor = re.search(r"#define\s+DB_VERSION_MINOR\s+(\d+)", header)
    assert major and minor
    assert _compiled.LIBRARIES["libdb"].soname == f"libdb-{major[1]}.{minor[1]}.so"


# ---------------------------------------------------------------------------------------------------- absence

_HIDE = """set -eu
for name in {names}; do
    for f in $(ldconfig -p | awk -v n="$name" '$1 == n {{print $NF}}'); do
        mount --bind /dev/null "$(readlink -f "$f")"
    done
done
exec "$@"
"""


def _without(names: list[str], argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a private mount namespace where the libraries ``names`` (sonames) are /dev/null."""
    if os.geteuid() != 0:
        missing("hiding a system library needs root (a private mount namespace; CI runs as root)")
    unshare = shutil.which("unshare") or missing("unshare is not installed (util-linux)")
    script = _HIDE.format(names=" ".join(shlex.quote(n) for n in names))
    return subprocess.run([unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh", *argv],
                          capture_output=True, text=True, timeout=120, **kw)  # type: ignore[call-overload]


def _htdbm(*args: str) -> None:
    subprocess.run([require_tool("htdbm"), *args], check=True, capture_output=True)


def test_missing_libraries_are_clear_errors_and_the_rest_works(tmp_path: Path) -> None:
    for t in ("GDBM", "DB", "SDBM"):
        _htdbm("-cbm", f"-T{t}", str(tmp_path / t), "alice", "pw")
    code = f"""
from wsgiauth import StoreError, hashes
from wsgiauth.backends import dbm
from wsgiauth.exceptions import UnsupportedHashError
for path in ({str(tmp_path / 'GDBM')!r}, {str(tmp_path / 'DB')!r}):
    try:
        dbm.Backend(path)
        print("opened", path)
    except StoreError as exc:
        print("StoreError:", exc)
try:
    hashes.verify(b"pw", "$6$Vb4lGtYX$jKpZDUpT15gPx2HrKSRARlYc2HIP.7LmWeT2oFmxncqQ4AVhSQVeeXElekCZ1HbNi.UTouQFCEPU9vdgESP78/")
    print("verified")
except UnsupportedHashError as exc:
    print("UnsupportedHashError:", exc)
print("apr1", hashes.verify(b"secret", "$apr1$XyeQis99$Muqr01OMP3fesNSPx.Z021"))
print("sdbm", dbm.Backend({str(tmp_path / 'SDBM')!r}).lookup(b"alice") is not None)
"""
    soname = {"libgdbm": "libgdbm.so.6", "libdb": "libdb-5.3.so", "libxcrypt": "libcrypt.so.1"}
    proc = _without(list(soname.values()), [sys.executable, "-c", code])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    # dlopen's own reason comes in the parentheses (here: "/lib/x86_64-linux-gnu/libgdbm.so.6: file too short")
    assert re.fullmatch(rf"StoreError: cannot open DBM database {re.escape(str(tmp_path / 'GDBM'))}: GDBM files need "
                        r"libgdbm \(libgdbm\.so\.6\), which cannot be loaded here \(\S*libgdbm\.so\.6: file too short\): "
                        r"apt-get install libgdbm6 \(libgdbm6t64 on Debian 13 and Ubuntu 24\.04\)", lines[0]), lines[0]
    if _compiled.load("_native_bdb") is not None:
        assert re.fullmatch(rf"StoreError: cannot open DBM database {re.escape(str(tmp_path / 'DB'))}: Berkeley DB "
                            r"\(DB\) files need Berkeley DB \(libdb-5\.3\.so\), which cannot be loaded here \(.*file too "
                            r"short\): apt-get install libdb5\.3 \(libdb5\.3t64 on Debian 13 and Ubuntu 24\.04\)",
                            lines[1]), lines[1]
    else:  # the fallback run: no Berkeley DB at all, whatever the library
        assert lines[1] == (f"StoreError: cannot open DBM database {tmp_path / 'DB'}: Berkeley DB files need "
                            "wsgiauth's compiled module wsgiauth._native_bdb, and it is disabled by WSGIAUTH_NO_NATIVE")
    assert re.fullmatch(r"UnsupportedHashError: DES, \$1\$, \$5\$, \$6\$, bcrypt and yescrypt hashes need libxcrypt "
                        r"\(libcrypt\.so\.1\), which cannot be loaded here \(.*file too short\): apt-get install "
                        r"libcrypt1", lines[2]), lines[2]
    assert lines[3:] == ["apr1 True", "sdbm True"]  # the compiled core (or the fallback) and SDBM need no library
    # the same machine, seen from the host's own namespace: every library is there
    for key in soname:
        assert _compiled.library(key) is not None


def test_doctor_reports_the_native_parts(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("alice:$apr1$XyeQis99$Muqr01OMP3fesNSPx.Z021\n")  # htpasswd -nbm alice secret
    conf = tmp_path / "site.toml"
    conf.write_text(f'realm = "x"\n[backends.files]\ntype = "htpasswd"\nusers = "{users}"\n')
    wsgiauth = str(Path(sys.executable).parent / "wsgiauth")
    good = subprocess.run([wsgiauth, "doctor", str(conf), "--no-switch"], capture_output=True, text=True, timeout=120)
    native = [line for line in good.stdout.splitlines() if "native: " in line]
    kind = "ok   " if not _compiled.DISABLED else None
    assert len(native) == 6, good.stdout
    if kind:
        assert all(line.startswith("ok    native: ") for line in native), native
    assert any("libgdbm (libgdbm.so.6): loaded, for GDBM files" in line for line in native), native
    hidden = _without(["libgdbm.so.6"], [wsgiauth, "doctor", str(conf), "--no-switch"])
    lines = hidden.stdout.splitlines()
    note = [line for line in lines if line.startswith("note  native: libgdbm (libgdbm.so.6): GDBM files need libgdbm")]
    assert len(note) == 1 and note[0].endswith(": apt-get install libgdbm6 (libgdbm6t64 on Debian 13 and Ubuntu "
                                               "24.04)"), hidden.stdout
    assert hidden.returncode == 0 and "0 problems" in hidden.stdout  # an htpasswd site does not need libgdbm
