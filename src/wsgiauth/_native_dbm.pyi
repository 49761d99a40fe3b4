"""Type stub of the private cffi module ``wsgiauth._native_dbm`` (the DBM formats; see csrc/build_native.py).

Its functions (``wa_sdbm_*``, ``wa_gdbm_*``, ``wa_bdb_*`` and the shared ``wa_dbm_*``, declared in csrc/cdef_sdbm.h,
cdef_gdbm.h, cdef_bdb.h and cdef_dbmfile.h) are typed ``Any``; `wsgiauth._dbmfile` is their only user.
"""

from typing import Any

class _Lib:
    def __getattr__(self, name: str) -> Any: ...

ffi: Any
lib: _Lib
