"""cffi build script for the private modules ``wsgiauth._native`` and ``wsgiauth._native_dbm`` (API / out-of-line).

Two modules, so that an auth script maps only the libraries it uses (every Apache child pays for them):

* ``wsgiauth._native``: the hash core (every ``csrc/*.c`` file but the DBM ones), linked with libcrypt;
* ``wsgiauth._native_dbm``: the DBM formats (``sdbm.c``, ``gdbm.c``, ``bdb.c`` and what they share, ``dbmfile.c``),
  linked with libgdbm and Berkeley DB; imported only by :mod:`wsgiauth._dbmfile`. An htpasswd, SQL or LDAP script
  does not load them.

Every ``csrc/cdef_<name>.h`` file holds the declarations cffi exposes for ``<name>.c`` (plain C prototypes, no
preprocessor), so a new C routine needs no change here: a new file goes to the hash core unless it is listed in
``DBM_FILES``. The shared header ``wsgiauth.h`` is the one header of prototypes that the C files include. This
script is build glue and is not shipped inside the package.
"""

from __future__ import annotations

import glob
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

# The C files of the DBM module and the Debian -dev library each needs (installed by the Makefile).
DBM_FILES = {"dbmfile": None, "sdbm": None, "gdbm": "gdbm", "bdb": "db-5.3"}


def _build(module: str, names: list[str], libraries: list[str]) -> FFI:
    ffi = FFI()
    for name in names:
        cdef = os.path.join(HERE, f"cdef_{name}.h")
        if os.path.exists(cdef):
            with open(cdef, encoding="utf-8") as f:
                ffi.cdef(f.read())
    ffi.set_source(
        module,
        '#include "wsgiauth.h"\n',
        sources=[os.path.relpath(os.path.join(HERE, f"{name}.c")) for name in names],
        include_dirs=[HERE],
        libraries=libraries,
        extra_compile_args=["-O2", "-Wall", "-Wextra", "-fno-strict-aliasing"],
    )
    return ffi


_all = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(HERE, "*.c")))
_dbm = [name for name in _all if name in DBM_FILES]

ffi = _build("wsgiauth._native", [name for name in _all if name not in DBM_FILES], ["crypt"])
ffi_dbm = _build("wsgiauth._native_dbm", _dbm, [lib for name in _dbm if (lib := DBM_FILES[name]) is not None])

if __name__ == "__main__":
    ffi.compile(verbose=True)
    ffi_dbm.compile(verbose=True)
