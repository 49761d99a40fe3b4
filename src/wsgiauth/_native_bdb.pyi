"""Type stub of the private cffi module ``wsgiauth._native_bdb``: Berkeley DB in C (csrc/bdb.c, dbmfile.c), built
where db.h exists and not linked with libdb (see csrc/build_native.py).

Its functions (``wa_bdb_*`` and the shared ``wa_dbm_*``, declared in csrc/cdef_bdb.h and cdef_dbmfile.h) are typed
``Any``; `wsgiauth._dbmfile` is their only user.
"""

from typing import Any

class _Lib:
    def __getattr__(self, name: str) -> Any: ...

ffi: Any
lib: _Lib
