"""Thin typed wrappers over the hash core and the system's libxcrypt.

Each function checks the types (and NUL bytes where C needs a C string), calls C and turns C return codes into Python
values or exceptions. Nothing here knows about hash formats beyond what the C routine itself validates;
`wsgiauth.hashes` is the user-facing layer.

* The hash core (compare, MD5, HA1, MD5-crypt) is the compiled ``wsgiauth._native`` (cffi releases the GIL for the
  duration of every call) or, where it is missing or ``WSGIAUTH_NO_NATIVE=1`` is set, its pure-Python twin
  (`wsgiauth._purecore`): `NATIVE` says which, chosen once at import.
* libxcrypt (``libcrypt.so.1``) is opened on the first ``crypt*`` call, in either mode, through cffi's ABI mode (no
  header or link at build time; the GIL is released during its calls too). Where it is missing, those calls raise
  `wsgiauth.exceptions.UnsupportedHashError` naming the library and the Debian package.
"""

from __future__ import annotations

from typing import Any

from . import _compiled
from .exceptions import InvalidHashError, UnsupportedHashError

__all__ = [
    "APR1_SALT_CHARS",
    "CRYPT_MAX_PASSWORD",
    "CRYPT_SALT_INVALID",
    "CRYPT_SALT_METHOD_DISABLED",
    "CRYPT_SALT_METHOD_LEGACY",
    "CRYPT_SALT_OK",
    "CRYPT_SALT_TOO_CHEAP",
    "NATIVE",
    "apr1_hash",
    "apr1_verify",
    "crypt",
    "crypt_checksalt",
    "crypt_gensalt",
    "crypt_verify",
    "ct_equal",
    "ha1",
    "md5",
    "md5crypt_hash",
]

APR1_SALT_CHARS = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# <crypt.h>'s values (libxcrypt 4.x; tests/test_syslibs.py compares them with the header where it is installed).
CRYPT_SALT_OK = 0
CRYPT_SALT_INVALID = 1
CRYPT_SALT_METHOD_DISABLED = 2
CRYPT_SALT_METHOD_LEGACY = 3
CRYPT_SALT_TOO_CHEAP = 4
_CRYPT_OUTPUT_SIZE = 384  # CRYPT_OUTPUT_SIZE
_CRYPT_GENSALT_OUTPUT_SIZE = 192  # CRYPT_GENSALT_OUTPUT_SIZE
_CRYPT_MAX_PASSPHRASE_SIZE = 512  # CRYPT_MAX_PASSPHRASE_SIZE: longer phrases are refused
_CRYPT_DATA_SIZE = 32768  # sizeof(struct crypt_data)
#: The longest password libxcrypt hashes (its CRYPT_MAX_PASSPHRASE_SIZE, less the terminating NUL).
CRYPT_MAX_PASSWORD: int = _CRYPT_MAX_PASSPHRASE_SIZE - 1

_native = _compiled.load("_native")
#: Whether the compiled hash core is in use (``False``: the pure-Python fallback).
NATIVE: bool = _native is not None
if _native is not None:
    _ffi: Any = _native.ffi
    _lib: Any = _native.lib
    _APR1_SIZE: int = _lib.WA_APR1_SIZE
else:
    from . import _purecore


def _need_bytes(name: str, value: object) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    return value


def _no_nul(name: str, value: bytes) -> bytes:
    if b"\x00" in value:
        raise ValueError(f"{name} must not contain NUL bytes (the C routine takes a C string)")
    return value


def ct_equal(a: bytes, b: bytes) -> bool:
    """Compare two byte strings in constant time. ``b`` is the expected value: time depends on its length only.

    Raises:
        TypeError: an argument is not ``bytes``.
    """
    _need_bytes("a", a)
    _need_bytes("b", b)
    if _native is None:
        return _purecore.ct_equal(a, b)
    return bool(_lib.wa_ct_equal(a, len(a), b, len(b)))


def md5(data: bytes) -> bytes:
    """The 16-byte MD5 digest of ``data`` (RFC 1321)."""
    _need_bytes("data", data)
    if _native is None:
        return _purecore.md5(data)
    out = _ffi.new("unsigned char[16]")
    _lib.wa_md5(data, len(data), out)
    return bytes(_ffi.buffer(out, 16))


def ha1(user: bytes, realm: bytes, password: bytes) -> str:
    """The HTTP Digest HA1: lowercase hex MD5 of ``user:realm:password``, hashed without joining the parts."""
    _need_bytes("user", user)
    _need_bytes("realm", realm)
    _need_bytes("password", password)
    if _native is None:
        return _purecore.ha1(user, realm, password)
    out = _ffi.new("char[33]")
    _lib.wa_ha1(user, len(user), realm, len(realm), password, len(password), out)
    return str(_ffi.string(out, 32).decode("ascii"))


def md5crypt_hash(password: bytes, salt: bytes, magic: bytes) -> str:
    """MD5-crypt of ``password`` with ``salt`` (0 to 8 chars from ``./0-9A-Za-z``) and ``magic`` (``$apr1$``, ``$1$``).

    Raises:
        ValueError: the salt is too long or has a character outside the alphabet.
    """
    _need_bytes("password", password)
    _need_bytes("salt", salt)
    _no_nul("magic", _need_bytes("magic", magic))
    if _native is None:
        result = _purecore.md5crypt(password, magic, salt)
    else:
        out = _ffi.new("char[]", _APR1_SIZE)
        n = _lib.wa_md5crypt(password, len(password), magic, salt, len(salt), out, _APR1_SIZE)
        result = None if n < 0 else str(_ffi.string(out, n).decode("ascii"))
    if result is None:
        raise ValueError("an MD5-crypt salt is 0 to 8 characters from ./0-9A-Za-z")
    return result


def apr1_hash(password: bytes, salt: bytes) -> str:
    """Apache's ``$apr1$`` MD5-crypt of ``password``.

    Raises:
        ValueError: the salt is too long or has a character outside ``./0-9A-Za-z``.
    """
    return md5crypt_hash(password, salt, b"$apr1$")


def apr1_verify(password: bytes, stored: bytes) -> bool:
    """Whether ``password`` matches the ``$apr1$`` hash ``stored`` (computed, then compared in constant time).

    Raises:
        InvalidHashError: ``stored`` is not a well-formed ``$apr1$`` hash.
    """
    _need_bytes("password", password)
    _need_bytes("stored", stored)
    if _native is None:
        rc = _purecore.apr1_verify(password, stored)
    else:
        rc = _lib.wa_apr1_verify(password, len(password), stored, len(stored))
    if rc < 0:
        raise InvalidHashError("malformed $apr1$ hash")
    return rc == 1


def _xcrypt() -> Any:
    try:
        return _compiled.library("libxcrypt")
    except _compiled.LibraryMissing as exc:
        raise UnsupportedHashError(str(exc)) from None


def _crypt_rn(phrase: bytes, setting: bytes) -> bytes | None:
    """libxcrypt's ``crypt_rn`` into a zeroed ``struct crypt_data`` on the heap (about 32 KiB: Apache threads may run
    with small stacks), wiped afterwards; ``None`` for a failure (NULL or a result starting with ``*``)."""
    lib = _xcrypt()
    from ._abi import ffi

    data = ffi.new("char[]", _CRYPT_DATA_SIZE)
    try:
        res = lib.crypt_rn(phrase, setting, data, _CRYPT_DATA_SIZE)
        if res == ffi.NULL:
            return None
        out: bytes = ffi.string(res)
        return None if out[:1] == b"*" else out
    finally:
        ffi.memmove(data, _ZEROS, _CRYPT_DATA_SIZE)


_ZEROS = bytes(_CRYPT_DATA_SIZE)


def crypt(password: bytes, setting: bytes) -> str:
    """The system libxcrypt ``crypt_rn(password, setting)``.

    Raises:
        ValueError: ``password`` or ``setting`` contains a NUL byte, or ``password`` is longer than libxcrypt takes
            (`CRYPT_MAX_PASSWORD` bytes).
        InvalidHashError: libxcrypt rejects the setting (unknown method, bad salt or cost).
        UnsupportedHashError: libxcrypt is not installed (its subclass of InvalidHashError).
    """
    _no_nul("password", _need_bytes("password", password))
    _no_nul("setting", _need_bytes("setting", setting))
    if len(password) > CRYPT_MAX_PASSWORD:
        raise ValueError(f"the system crypt takes passwords of at most {CRYPT_MAX_PASSWORD} bytes")
    out = _crypt_rn(password, setting)
    if out is None or len(out) >= _CRYPT_OUTPUT_SIZE:
        raise InvalidHashError("the system crypt rejects this hash setting")
    return out.decode("ascii")


def crypt_verify(password: bytes, stored: bytes) -> bool:
    """Whether ``password`` matches ``stored`` according to libxcrypt (compared in constant time).

    A password longer than `CRYPT_MAX_PASSWORD` bytes (which libxcrypt, and so Apache, refuses) never matches: an empty
    password is hashed in its place, so that the stored hash is still validated and the call costs what any other
    does.

    Raises:
        ValueError: ``password`` contains a NUL byte.
        InvalidHashError: ``stored`` is empty, contains NUL, or libxcrypt cannot use it (a hash must give back a
            result of its own length: a bare setting or trailing garbage is malformed, not merely a mismatch).
        UnsupportedHashError: libxcrypt is not installed.
    """
    _no_nul("password", _need_bytes("password", password))
    _need_bytes("stored", stored)
    if not stored or b"\x00" in stored:
        raise InvalidHashError("malformed crypt hash")
    too_long = len(password) >= _CRYPT_MAX_PASSPHRASE_SIZE
    res = _crypt_rn(b"" if too_long else password, stored)
    if res is None or len(res) != len(stored):
        raise InvalidHashError("the system crypt rejects this hash")
    from ._purecore import ct_equal as _equal  # hmac.compare_digest: constant time

    return _equal(res, stored) and not too_long


def crypt_checksalt(setting: bytes) -> int:
    """libxcrypt's ``crypt_checksalt``: one of the ``CRYPT_SALT_*`` codes (NUL-bearing input is invalid).

    Raises:
        UnsupportedHashError: libxcrypt is not installed.
    """
    _need_bytes("setting", setting)
    if b"\x00" in setting:
        return CRYPT_SALT_INVALID
    return int(_xcrypt().crypt_checksalt(setting))


def crypt_gensalt(prefix: bytes, count: int = 0) -> bytes:
    """A fresh libxcrypt setting for ``prefix`` (``b"$6$"``, ``b"$y$"`` ...) with cost ``count`` (0: default), with
    random salt from the system.

    Raises:
        ValueError: libxcrypt rejects the prefix or the count.
        UnsupportedHashError: libxcrypt is not installed.
    """
    _no_nul("prefix", _need_bytes("prefix", prefix))
    if not isinstance(count, int) or count < 0 or count > 0xFFFFFFFF:
        raise ValueError("count must be an int from 0 to 2**32-1")
    lib = _xcrypt()
    from ._abi import ffi

    buf = ffi.new("char[]", _CRYPT_GENSALT_OUTPUT_SIZE)
    res = lib.crypt_gensalt_rn(prefix, count, ffi.NULL, 0, buf, _CRYPT_GENSALT_OUTPUT_SIZE)
    out = b"" if res == ffi.NULL else ffi.string(buf)
    if not out or out[:1] == b"*" or len(out) >= _CRYPT_OUTPUT_SIZE:
        raise ValueError(f"the system crypt cannot make a setting for {prefix!r} with count {count}")
    return bytes(out)
