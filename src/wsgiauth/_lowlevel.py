"""Thin typed wrappers over the C core (``wsgiauth._native``).

Each function checks the types (and NUL bytes where C needs a C string), calls C (cffi releases the GIL for the
duration of every call) and turns C return codes into Python values or exceptions. Nothing here knows about hash
formats beyond what the C routine itself validates; `wsgiauth.hashes` is the user-facing layer.
"""

from __future__ import annotations

from ._native import ffi, lib
from .exceptions import InvalidHashError

__all__ = [
    "APR1_SALT_CHARS",
    "CRYPT_MAX_PASSWORD",
    "CRYPT_SALT_INVALID",
    "CRYPT_SALT_METHOD_DISABLED",
    "CRYPT_SALT_METHOD_LEGACY",
    "CRYPT_SALT_OK",
    "CRYPT_SALT_TOO_CHEAP",
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

CRYPT_SALT_OK: int = lib.WA_CRYPT_SALT_OK
CRYPT_SALT_INVALID: int = lib.WA_CRYPT_SALT_INVALID
CRYPT_SALT_METHOD_DISABLED: int = lib.WA_CRYPT_SALT_METHOD_DISABLED
CRYPT_SALT_METHOD_LEGACY: int = lib.WA_CRYPT_SALT_METHOD_LEGACY
CRYPT_SALT_TOO_CHEAP: int = lib.WA_CRYPT_SALT_TOO_CHEAP
#: The longest password libxcrypt hashes (its CRYPT_MAX_PASSPHRASE_SIZE, less the terminating NUL).
CRYPT_MAX_PASSWORD: int = lib.WA_CRYPT_MAX_PASSPHRASE_SIZE - 1


def _need_bytes(name: str, value: object) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    return value


def _no_nul(name: str, value: bytes) -> bytes:
    if b"\x00" in value:
        raise ValueError(f"{name} must not contain NUL bytes (the C routine takes a C string)")
    return value


def ct_equal(a: bytes, b: bytes) -> bool:
    """Compare two byte strings in constant time (C). ``b`` is the expected value: time depends on its length only.

    Raises:
        TypeError: an argument is not ``bytes``.
    """
    _need_bytes("a", a)
    _need_bytes("b", b)
    return bool(lib.wa_ct_equal(a, len(a), b, len(b)))


def md5(data: bytes) -> bytes:
    """The 16-byte MD5 digest of ``data`` (the C implementation, RFC 1321)."""
    _need_bytes("data", data)
    out = ffi.new("unsigned char[16]")
    lib.wa_md5(data, len(data), out)
    return bytes(ffi.buffer(out, 16))


def ha1(user: bytes, realm: bytes, password: bytes) -> str:
    """The HTTP Digest HA1: lowercase hex MD5 of ``user:realm:password``, hashed in C without joining the parts."""
    _need_bytes("user", user)
    _need_bytes("realm", realm)
    _need_bytes("password", password)
    out = ffi.new("char[33]")
    lib.wa_ha1(user, len(user), realm, len(realm), password, len(password), out)
    return ffi.string(out, 32).decode("ascii")  # type: ignore[no-any-return]


def md5crypt_hash(password: bytes, salt: bytes, magic: bytes) -> str:
    """MD5-crypt of ``password`` with ``salt`` (0 to 8 chars from ``./0-9A-Za-z``) and ``magic`` (``$apr1$``, ``$1$``).

    Raises:
        ValueError: the salt is too long or has a character outside the alphabet.
    """
    _need_bytes("password", password)
    _need_bytes("salt", salt)
    _no_nul("magic", _need_bytes("magic", magic))
    out = ffi.new("char[]", lib.WA_APR1_SIZE)
    n = lib.wa_md5crypt(password, len(password), magic, salt, len(salt), out, lib.WA_APR1_SIZE)
    if n < 0:
        raise ValueError("an MD5-crypt salt is 0 to 8 characters from ./0-9A-Za-z")
    return ffi.string(out, n).decode("ascii")  # type: ignore[no-any-return]


def apr1_hash(password: bytes, salt: bytes) -> str:
    """Apache's ``$apr1$`` MD5-crypt of ``password`` (C).

    Raises:
        ValueError: the salt is too long or has a character outside ``./0-9A-Za-z``.
    """
    return md5crypt_hash(password, salt, b"$apr1$")


def apr1_verify(password: bytes, stored: bytes) -> bool:
    """Whether ``password`` matches the ``$apr1$`` hash ``stored`` (computed and compared in constant time in C).

    Raises:
        InvalidHashError: ``stored`` is not a well-formed ``$apr1$`` hash.
    """
    _need_bytes("password", password)
    _need_bytes("stored", stored)
    rc = lib.wa_apr1_verify(password, len(password), stored, len(stored))
    if rc < 0:
        raise InvalidHashError("malformed $apr1$ hash")
    return rc == 1


def crypt(password: bytes, setting: bytes) -> str:
    """The system libxcrypt ``crypt_rn(password, setting)``.

    Raises:
        ValueError: ``password`` or ``setting`` contains a NUL byte, or ``password`` is longer than libxcrypt takes
            (`CRYPT_MAX_PASSWORD` bytes).
        InvalidHashError: libxcrypt rejects the setting (unknown method, bad salt or cost).
    """
    _no_nul("password", _need_bytes("password", password))
    _no_nul("setting", _need_bytes("setting", setting))
    if len(password) > CRYPT_MAX_PASSWORD:
        raise ValueError(f"the system crypt takes passwords of at most {CRYPT_MAX_PASSWORD} bytes")
    out = ffi.new("char[]", lib.WA_CRYPT_OUTPUT_SIZE)
    n = lib.wa_crypt(password, setting, out, lib.WA_CRYPT_OUTPUT_SIZE)
    if n == -2:
        raise MemoryError("crypt_rn: out of memory")
    if n < 0:
        raise InvalidHashError("the system crypt rejects this hash setting")
    return ffi.string(out, n).decode("ascii")  # type: ignore[no-any-return]


def crypt_verify(password: bytes, stored: bytes) -> bool:
    """Whether ``password`` matches ``stored`` according to libxcrypt (compared in constant time in C).

    A password longer than `CRYPT_MAX_PASSWORD` bytes (which libxcrypt, and so Apache, refuses) never matches.

    Raises:
        ValueError: ``password`` contains a NUL byte.
        InvalidHashError: ``stored`` is empty, contains NUL, or libxcrypt cannot use it.
    """
    _no_nul("password", _need_bytes("password", password))
    _need_bytes("stored", stored)
    if not stored or b"\x00" in stored:
        raise InvalidHashError("malformed crypt hash")
    rc = lib.wa_crypt_verify(password, stored, len(stored))
    if rc == -2:
        raise MemoryError("crypt_rn: out of memory")
    if rc < 0:
        raise InvalidHashError("the system crypt rejects this hash")
    return rc == 1


def crypt_checksalt(setting: bytes) -> int:
    """libxcrypt's ``crypt_checksalt``: one of the ``CRYPT_SALT_*`` codes (NUL-bearing input is invalid)."""
    _need_bytes("setting", setting)
    if b"\x00" in setting:
        return CRYPT_SALT_INVALID
    return int(lib.wa_crypt_checksalt(setting))


def crypt_gensalt(prefix: bytes, count: int = 0) -> bytes:
    """A fresh libxcrypt setting for ``prefix`` (``b"$6$"``, ``b"$y$"`` ...) with cost ``count`` (0: default).

    Raises:
        ValueError: libxcrypt rejects the prefix or the count.
    """
    _no_nul("prefix", _need_bytes("prefix", prefix))
    if not isinstance(count, int) or count < 0 or count > 0xFFFFFFFF:
        raise ValueError("count must be an int from 0 to 2**32-1")
    out = ffi.new("char[]", lib.WA_CRYPT_OUTPUT_SIZE)
    n = lib.wa_crypt_gensalt(prefix, count, out, lib.WA_CRYPT_OUTPUT_SIZE)
    if n < 0:
        raise ValueError(f"the system crypt cannot make a setting for {prefix!r} with count {count}")
    return ffi.string(out, n)  # type: ignore[no-any-return]
