"""Type stub of the private cffi module ``wsgiauth._native``, the compiled hash core (csrc/ct.c, md5.c, apr1.c; see
csrc/build_native.py). `wsgiauth._lowlevel` is its only user; `wsgiauth._purecore` is its pure-Python twin.
"""

from typing import Any

class _Lib:
    WA_APR1_SIZE: int
    def wa_ct_equal(self, a: bytes, alen: int, b: bytes, blen: int, /) -> int: ...
    def wa_md5(self, data: bytes, len: int, digest: Any, /) -> None: ...
    def wa_ha1(
        self, user: bytes, ulen: int, realm: bytes, rlen: int, password: bytes, plen: int, out: Any, /
    ) -> None: ...
    def wa_md5crypt(
        self, pw: bytes, pwlen: int, magic: bytes, salt: bytes, saltlen: int, out: Any, outlen: int, /
    ) -> int: ...
    def wa_apr1(self, pw: bytes, pwlen: int, salt: bytes, saltlen: int, out: Any, outlen: int, /) -> int: ...
    def wa_apr1_verify(self, pw: bytes, pwlen: int, stored: bytes, storedlen: int, /) -> int: ...

ffi: Any
lib: _Lib
