"""cffi build script of wsgiauth's private modules (build glue: not shipped inside the package).

Compiled (API mode, against the limited API: one ``abi3`` build serves every CPython >= 3.10), none of them linked
with a library beyond libc:

* ``wsgiauth._native``: the hash core (``ct.c``, ``md5.c``, ``apr1.c``);
* ``wsgiauth._native_dbm``: the SDBM format (``sdbm.c``) and what the DBM formats read in C share (``dbmfile.c``);
* ``wsgiauth._native_bdb``: Berkeley DB (``bdb.c`` + ``dbmfile.c``), built only where ``db.h`` is found: its C API is
  a struct of function pointers whose layout only that header gives. The library itself is opened at run time.

Generated, not compiled (cffi's out-of-line ABI mode: a pure-Python module, so it exists even where nothing could be
compiled):

* ``wsgiauth._abi``: the declarations of the system libraries wsgiauth opens at run time by their versioned sonames
  (``abi_xcrypt.h``: libcrypt.so.1; ``abi_gdbm.h``: libgdbm.so.6; ``abi_libdb.h``: libdb-5.3.so).

Every ``csrc/cdef_<name>.h`` holds the declarations cffi exposes for ``<name>.c`` (plain C prototypes, no
preprocessor); the shared header ``wsgiauth.h`` is the one header of prototypes that the C files include.
:data:`MODULES` maps each compiled module to its C files; setup.py builds :data:`CFFI_MODULES`.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sysconfig

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

#: The compiled modules and their C files (csrc/NAME.c, with csrc/cdef_NAME.h when it exists).
MODULES = {
    "wsgiauth._native": ("ct", "md5", "apr1"),
    "wsgiauth._native_dbm": ("dbmfile", "sdbm"),
    "wsgiauth._native_bdb": ("dbmfile", "bdb"),
}
#: A module built only where its library's header is found (the build goes on without it, and says so).
NEEDS_HEADER = {"wsgiauth._native_bdb": "db.h"}
#: The system libraries' declarations (csrc/abi_NAME.h) in the generated ABI-mode module.
ABI_MODULE = "wsgiauth._abi"
ABI_HEADERS = ("xcrypt", "gdbm", "libdb")


def _read(name: str) -> str:
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return f.read()


def have_header(header: str) -> bool:
    """Whether the C compiler finds ``header`` (the preprocessor alone is run)."""
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    try:
        proc = subprocess.run([*cc, "-E", "-x", "c", "-"], input=f"#include <{header}>\n", capture_output=True,
                              text=True, timeout=60, check=False)
    except OSError:
        return False
    return proc.returncode == 0


def compiled(module: str) -> FFI:
    """The FFI of one compiled module (API mode, out of line, limited API)."""
    ffi = FFI()
    names = MODULES[module]
    for name in names:
        if os.path.exists(os.path.join(HERE, f"cdef_{name}.h")):
            ffi.cdef(_read(f"cdef_{name}.h"))
    ffi.set_source(
        module,
        '#include "wsgiauth.h"\n',
        sources=[os.path.relpath(os.path.join(HERE, f"{name}.c")) for name in names],
        include_dirs=[HERE],
        extra_compile_args=["-O2", "-Wall", "-Wextra", "-fno-strict-aliasing", "-fvisibility=hidden"],
        py_limited_api=True,
    )
    return ffi


def abi() -> FFI:
    """The FFI of the generated ABI-mode module: declarations only, the libraries are opened at run time."""
    ffi = FFI()
    for name in ABI_HEADERS:
        ffi.cdef(_read(f"abi_{name}.h"))
    ffi.set_source(ABI_MODULE, None)
    return ffi


def buildable() -> list[str]:
    """The compiled modules this machine can build: all but those whose header is missing (reported on stderr)."""
    out = []
    for module in MODULES:
        header = NEEDS_HEADER.get(module)
        if header is not None and not have_header(header):
            print(f"wsgiauth build: {header} not found: {module} is not built (Berkeley DB files will not open; "
                  "install libdb-dev to build it)", flush=True)
            continue
        out.append(module)
    return out


# The names setup.py's cffi_modules refer to ("csrc/build_native.py:NAME"): functions returning an FFI.
def ffi() -> FFI:
    return compiled("wsgiauth._native")


def ffi_dbm() -> FFI:
    return compiled("wsgiauth._native_dbm")


def ffi_bdb() -> FFI:
    return compiled("wsgiauth._native_bdb")


ffi_abi = abi
_ENTRY = {"wsgiauth._native": "ffi", "wsgiauth._native_dbm": "ffi_dbm", "wsgiauth._native_bdb": "ffi_bdb"}


def cffi_modules() -> list[str]:
    """setup.py's ``cffi_modules``: the ABI module, then every compiled module this machine can build."""
    return ["csrc/build_native.py:ffi_abi", *(f"csrc/build_native.py:{_ENTRY[m]}" for m in buildable())]


if __name__ == "__main__":  # build in place into the current directory, for experiments
    for m in buildable():
        compiled(m).compile(verbose=True)
    abi().compile(verbose=True)
