"""Type stub of the private cffi module ``wsgiauth._native_dbm``: the SDBM format in C (csrc/sdbm.c, dbmfile.c; see
csrc/build_native.py).

Its functions (``wa_sdbm_*`` and the shared ``wa_dbm_*``, declared in csrc/cdef_sdbm.h and cdef_dbmfile.h) are typed
``Any``; `wsgiauth._dbmfile` is their only user and `wsgiauth._puresdbm` their pure-Python twin.
"""

from typing import Any

class _Lib:
    def __getattr__(self, name: str) -> Any: ...

ffi: Any
lib: _Lib
