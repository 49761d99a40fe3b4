"""cffi build script for the private module ``wsgiauth._native`` (API / out-of-line mode).

Every ``csrc/*.c`` file is compiled in; every ``csrc/cdef_*.h`` file holds the declarations cffi exposes (plain C
prototypes, no preprocessor), so a new C routine needs no change here. The shared header ``wsgiauth.h`` is the one
header of prototypes that the C files include. This script is build glue and is not shipped inside the package.
"""

from __future__ import annotations

import glob
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

ffi = FFI()
for cdef in sorted(glob.glob(os.path.join(HERE, "cdef_*.h"))):
    with open(cdef, encoding="utf-8") as f:
        ffi.cdef(f.read())

# Link only the libraries the C files need; each is a Debian -dev package installed by the Makefile.
LIBRARIES = ["crypt"]
for lib, marker in (("gdbm", "gdbm.c"), ("db-5.3", "bdb.c")):
    if os.path.exists(os.path.join(HERE, marker)):
        LIBRARIES.append(lib)

ffi.set_source(
    "wsgiauth._native",
    '#include "wsgiauth.h"\n',
    sources=[os.path.relpath(p) for p in sorted(glob.glob(os.path.join(HERE, "*.c")))],
    include_dirs=[HERE],
    libraries=LIBRARIES,
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-fno-strict-aliasing"],
)

if __name__ == "__main__":
    ffi.compile(verbose=True)
