"""The pure-Python twin of the compiled hash core (``csrc/ct.c``, ``md5.c``, ``apr1.c``), for installations without it.

`wsgiauth._lowlevel` uses it when ``wsgiauth._native`` is missing or ``WSGIAUTH_NO_NATIVE=1`` is set. Same functions,
same results, same errors (return codes as the C functions give them):

* `ct_equal`: ``hmac.compare_digest``'s C function (constant time; it takes the expected value's length too);
* `md5`, `ha1`: CPython's built-in MD5 (``_md5``, no OpenSSL), the three parts of HA1 fed one after the other;
* `md5crypt`, `apr1_verify`: Poul-Henning Kamp's MD5-crypt (``$apr1$``, ``$1$``), about 100 times slower than the C
  (docs/benchmarks.md has the figures; ``make bench`` measures them).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hashlib import md5 as _md5
    from hmac import compare_digest as _compare
else:
    try:
        from _operator import _compare_digest as _compare  # what hmac.compare_digest is
    except ImportError:  # pragma: no cover - other Python implementations
        from hmac import compare_digest as _compare
    try:
        from _md5 import md5 as _md5
    except ImportError:  # pragma: no cover - a Python built without it
        from hashlib import md5 as _md5

__all__ = ["APR1_SIZE", "apr1_verify", "ct_equal", "ha1", "md5", "md5crypt"]

_ITOA64 = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_B64 = frozenset(_ITOA64)
#: The output buffer of the C routine: a hash and its NUL must fit (csrc/cdef_apr1.h's WA_APR1_SIZE).
APR1_SIZE = 40
# The order in which the 16 digest bytes are encoded, three at a time (the last group is one byte).
_GROUPS = ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5))


def ct_equal(a: bytes, b: bytes) -> bool:
    return bool(_compare(a, b))


def md5(data: bytes) -> bytes:
    return bytes(_md5(data).digest())


def ha1(user: bytes, realm: bytes, password: bytes) -> str:
    h = _md5(user)
    h.update(b":")
    h.update(realm)
    h.update(b":")
    h.update(password)
    return str(h.hexdigest())


def _to64(v: int, n: int) -> bytes:
    out = bytearray()
    for _ in range(n):
        out.append(_ITOA64[v & 0x3F])
        v >>= 6
    return bytes(out)


def md5crypt(password: bytes, magic: bytes, salt: bytes) -> str | None:
    """MD5-crypt of ``password`` with ``salt`` and ``magic``, or ``None`` for a salt the C routine refuses (over 8
    characters, a character outside ``./0-9A-Za-z``, or a result longer than its 40-byte buffer)."""
    if len(salt) > 8 or len(magic) + len(salt) + 1 + 22 + 1 > APR1_SIZE or any(c not in _B64 for c in salt):
        return None
    ctx = _md5(password)
    ctx.update(magic)
    ctx.update(salt)
    alt = _md5(password)
    alt.update(salt)
    alt.update(password)
    final = alt.digest()
    n = len(password)
    while n > 0:
        ctx.update(final[: min(16, n)])
        n -= 16
    i = len(password)
    while i:
        ctx.update(b"\x00" if i & 1 else password[:1])
        i >>= 1
    final = ctx.digest()
    # The 1000 rounds: [pw | final] [salt if r % 3] [pw if r % 7] [final | pw], pw first when r is odd.
    for r in range(1000):
        odd = r & 1
        c = _md5(password if odd else final)
        if r % 3:
            c.update(salt)
        if r % 7:
            c.update(password)
        c.update(final if odd else password)
        final = c.digest()
    text = b"".join(_to64((final[a] << 16) | (final[b] << 8) | final[c], 4) for a, b, c in _GROUPS)
    return (magic + salt + b"$" + text + _to64(final[11], 2)).decode("ascii")


def apr1_verify(password: bytes, stored: bytes) -> int:
    """1 match, 0 no match, -1 not a well-formed ``$apr1$`` hash (the C routine's codes)."""
    if len(stored) < 6 + 1 + 22 or stored[:6] != b"$apr1$":
        return -1
    end = stored.find(b"$", 6)
    if end < 0:
        end = len(stored)
    salt = stored[6:end]
    if len(salt) > 8 or any(c not in _B64 for c in salt) or len(stored) != 6 + len(salt) + 1 + 22:
        return -1
    if any(c not in _B64 for c in stored[end + 1:]):
        return -1
    computed = md5crypt(password, b"$apr1$", salt)
    if computed is None:
        return -1
    return 1 if _compare(computed.encode("ascii"), stored) else 0
