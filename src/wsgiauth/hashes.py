"""Password hashes: identify a stored hash, verify a password against it, create and upgrade hashes.

Every format Apache's ``mod_authn_file``/``mod_authn_dbm``/``mod_authn_dbd`` accepts on Linux is supported, bit for
bit: ``$apr1$`` (C), bcrypt ``$2y$``/``$2b$``/``$2a$``/``$2x$``, ``{SHA}``, and whatever the system libxcrypt does:
DES, ``$1$``, ``$5$``, ``$6$``, ``$y$`` (yescrypt) ... bcrypt hashes are checked by libxcrypt's bcrypt, which is
Solar Designer's crypt_blowfish, the very code Apache (apr-util) uses: it reads the first 72 bytes of the password and
keeps crypt_blowfish's ``$2a$`` safety measure for 8-bit passwords (the ``bcrypt`` package treats ``$2a$`` as
``$2b$`` and would refuse, e.g., a correct 8-bit password Apache accepts). The ``bcrypt`` package creates new
``$2y$`` hashes (the same algorithm as ``$2b$``) and checks Django's bcrypt formats, as Django does. Also: argon2
(``$argon2id$``/``$argon2i$``), Django's ``pbkdf2_sha256$``/``pbkdf2_sha1$``/``argon2$``/``bcrypt_sha256$``/
``bcrypt$``/``scrypt$`` and Werkzeug's ``pbkdf2:`` and ``scrypt:`` hashes (so a Django or Flask user table can be
used without importing the framework), and plaintext when explicitly allowed.

Passwords are ``bytes`` (the raw request bytes). Stored hashes are ``str``. A malformed hash raises
:class:`~wsgiauth.exceptions.InvalidHashError`; a well-formed hash of a scheme not supported (or not enabled, like
plaintext by default) raises :class:`~wsgiauth.exceptions.UnsupportedHashError`, its subclass. A malformed hash
never verifies. Every comparison of a computed digest with a stored one is constant-time.

NUL bytes: Apache hands passwords to its hash routines as C strings (mod_wsgi too), and HMAC-based formats cannot
tell ``b"pw"`` from ``b"pw\\x00"``; so a password containing a NUL byte never verifies, whatever the format (the
hash is still computed, so such a request costs what any other costs), and :func:`hash_password` refuses one.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading

from .exceptions import InvalidHashError, UnsupportedHashError

# What an auth script imports must stay small (every Apache child pays it): hashlib and hmac (OpenSSL's libcrypto,
# about 4 MiB of RSS), secrets, bcrypt and argon2 are imported by the functions that need them, on first use, and
# so is the C core (wsgiauth._native: cffi and libcrypt), which a store of Django or Werkzeug hashes never uses.
# {SHA} and the Digest HA1 use CPython's built-in SHA-1 and MD5 (no OpenSSL), and the constant-time comparison is
# hmac.compare_digest's own C function, taken from where hmac takes it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Final

    import argon2
    import argon2.low_level

    from . import _lowlevel

if TYPE_CHECKING:
    from hashlib import md5 as _md5
    from hashlib import sha1 as _sha1
    from hmac import compare_digest as _ct_equal
else:
    try:
        from _operator import _compare_digest as _ct_equal  # what hmac.compare_digest is
    except ImportError:  # pragma: no cover - other Python implementations
        from hmac import compare_digest as _ct_equal

    class _LoadedOnFirstUse:
        """Stands for the module ``wsgiauth._lowlevel`` until first used, then puts the module in its place."""

        def __getattr__(self, name: str) -> object:
            global _lowlevel
            from . import _lowlevel as module

            _lowlevel = module
            return getattr(module, name)

    _lowlevel = _LoadedOnFirstUse()
    try:
        from _md5 import md5 as _md5
        from _sha1 import sha1 as _sha1
    except ImportError:  # pragma: no cover - a Python built without them
        from hashlib import md5 as _md5
        from hashlib import sha1 as _sha1

__all__ = [
    "BCRYPT_DEFAULT_COST",
    "CREATABLE_SCHEMES",
    "DJANGO_BCRYPT_DEFAULT_COST",
    "MAX_ARGON2_MEMORY_KIB",
    "MAX_PBKDF2_ITERATIONS",
    "MAX_SCRYPT_MEMORY",
    "PBKDF2_DEFAULT_ITERATIONS",
    "SCHEMES",
    "WERKZEUG_DEFAULT_ITERATIONS",
    "constant_time_equal",
    "dummy_verify",
    "ha1",
    "hash_password",
    "identify",
    "needs_update",
    "verify",
]

#: bcrypt cost of new hashes. ``htpasswd -B`` uses 5 (about 2 ms); 10 (about 60 ms) is the common library default
#: and what we choose: every request pays it (mod_wsgi never caches an answer), so raise it only with care.
BCRYPT_DEFAULT_COST: Final = 10
#: PBKDF2 iterations of new Django/Werkzeug hashes (Django 5.2 and Werkzeug 3.1 use 1,000,000).
PBKDF2_DEFAULT_ITERATIONS: Final = 1_000_000
#: bcrypt cost of new Django ``bcrypt_sha256$`` hashes (Django's own default).
DJANGO_BCRYPT_DEFAULT_COST: Final = 12
#: Werkzeug's default iteration count, for ``pbkdf2`` / ``pbkdf2:<hash>`` hashes that omit it (Werkzeug 3.1).
WERKZEUG_DEFAULT_ITERATIONS: Final = 1_000_000
#: Upper bounds that keep one verification from hanging a server thread on an absurd stored hash.
MAX_PBKDF2_ITERATIONS: Final = 50_000_000
MAX_SCRYPT_MEMORY: Final = 1 << 30  # bytes (128 * n * r): Werkzeug/Django scrypt, $7$, $y$, $gy$
MAX_ARGON2_MEMORY_KIB: Final = 1 << 20  # 1 GiB

#: Every scheme :func:`identify` can return.
SCHEMES: Final = (
    "apr1",
    "argon2",
    "bcrypt",
    "bsdi_crypt",
    "des",
    "django_argon2",
    "django_bcrypt",
    "django_bcrypt_sha256",
    "django_pbkdf2_sha1",
    "django_pbkdf2_sha256",
    "django_scrypt",
    "gost_yescrypt",
    "md5_crypt",
    "plaintext",
    "scrypt_crypt",
    "sha1",
    "sha256_crypt",
    "sha512_crypt",
    "werkzeug_pbkdf2",
    "werkzeug_scrypt",
    "yescrypt",
)

_CRYPT_PREFIXES: Final = (
    ("$1$", "md5_crypt"),
    ("$5$", "sha256_crypt"),
    ("$6$", "sha512_crypt"),
    ("$y$", "yescrypt"),
    ("$gy$", "gost_yescrypt"),
    ("$7$", "scrypt_crypt"),
)
_CRYPT_SCHEMES: Final = frozenset({name for _, name in _CRYPT_PREFIXES} | {"des", "bsdi_crypt"})
# Known formats we do not verify: they must never fall through to "plaintext".
_UNSUPPORTED_PREFIXES: Final = (
    "$argon2d$", "$sha1$", "$md5", "$3$", "$nt$",
    "argon2$", "bcrypt_sha256$", "bcrypt$", "scrypt$", "sha1$", "md5$", "unsalted_md5$", "unsalted_sha1$",
    "crypt$", "sha256$", "sha512$", "plain$",
)
_B64 = "./0-9A-Za-z"
_DES_RE: Final = re.compile(rf"[{_B64}]{{13}}")
_BSDI_RE: Final = re.compile(rf"_[{_B64}]{{19}}")
_BCRYPT_RE: Final = re.compile(rf"\$2([abxy])\$([0-9][0-9])\$[{_B64}]{{53}}")
_SHA1_RE: Final = re.compile(r"\{SHA\}[A-Za-z0-9+/]{27}=")
_ARGON2_RE: Final = re.compile(
    r"\$(argon2id|argon2i)\$v=([0-9]{1,3})\$m=([0-9]{1,10}),t=([0-9]{1,10}),p=([0-9]{1,3})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)"
)
_DIGITS_RE: Final = re.compile(r"[1-9][0-9]{0,9}")
_HEX_RE: Final = re.compile(r"(?:[0-9a-f]{2})+")
_WERKZEUG_HASHES: Final = frozenset({"sha1", "sha224", "sha256", "sha384", "sha512"})
_DUMMY_PASSWORD: Final = b"wsgiauth dummy password"


# ---------------------------------------------------------------------------------------------------- helpers


# _ct_equal (imported above) is the faster of the two equivalent constant-time routines (benchmarks/bench_hashes.py
# measures both): for the short digests compared here, hmac.compare_digest's direct C call (about 60 ns) beats the
# cffi call into wa_ct_equal (about 330 ns: argument conversion and the GIL release dominate).


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare two byte strings in constant time (no early exit; ``b`` is the expected value).

    Of the two equivalent routines, wsgiauth's C ``wa_ct_equal`` (``_lowlevel.ct_equal``) and
    :func:`hmac.compare_digest`, the benchmarks find the latter about five times faster for digest-sized input
    (a cffi call costs more than the comparison), so it is the one used, here and inside :func:`verify`.

    Args:
        a: the computed (candidate) value.
        b: the expected value.

    Returns:
        ``True`` when the two are equal.

    Raises:
        TypeError: an argument is not ``bytes``.
    """
    if not isinstance(a, bytes) or not isinstance(b, bytes):
        raise TypeError("constant_time_equal compares bytes")
    return _ct_equal(a, b)


def ha1(user: bytes, realm: bytes, password: bytes) -> str:
    """The HTTP Digest HA1 that ``htdigest`` stores: lowercase hex MD5 of ``user:realm:password``.

    The three parts are fed to MD5 one after the other, never joined. Of the equivalent implementations,
    wsgiauth's C routine (``_lowlevel.ha1``), :mod:`hashlib` (OpenSSL) and CPython's built-in ``_md5``, the
    benchmarks (benchmarks/bench_hashes.py) find the Python objects faster for inputs of usual size: the C routine's
    work is one MD5 block, and the cffi call (argument conversion, GIL release, output buffer) costs more. The
    built-in ``_md5`` is used (as fast as OpenSSL's for one block, and it does not load libcrypto).

    Args:
        user: the raw user name bytes.
        realm: the raw realm bytes (Apache's ``AuthName``).
        password: the raw password bytes.

    Returns:
        32 lowercase hex digits.

    Raises:
        TypeError: an argument is not ``bytes``.
    """
    h = _md5(user)  # raises TypeError for str
    h.update(b":")
    h.update(realm)
    h.update(b":")
    h.update(password)
    return h.hexdigest()


def _ascii(stored: str) -> bytes:
    try:
        return stored.encode("ascii")
    except UnicodeEncodeError:
        raise InvalidHashError("malformed hash: non-ASCII characters") from None


def _b64decode(text: str, *, padded: bool) -> bytes:
    if not padded:
        text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidHashError("malformed hash: bad base64") from None


#: The crypt alphabet (``_lowlevel.APR1_SALT_CHARS``), here so that using it does not load the C core.
_ITOA64: Final = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _salt_chars(n: int, alphabet: str = _ITOA64) -> str:
    import secrets

    return "".join(secrets.choice(alphabet) for _ in range(n))


# ---------------------------------------------------------------------------------------------------- identify


def identify(stored: str) -> str:
    """Name the scheme of a stored hash (by its form; :func:`verify` checks the rest of the syntax).

    Args:
        stored: the stored hash, as in the credential store.

    Returns:
        One of :data:`SCHEMES`: ``"apr1"``, ``"bcrypt"``, ``"sha1"``, ``"des"``, ``"md5_crypt"``, ``"sha256_crypt"``,
        ``"sha512_crypt"``, ``"yescrypt"``, ``"argon2"``, ``"django_pbkdf2_sha256"``, ``"django_pbkdf2_sha1"``,
        ``"django_argon2"``, ``"django_bcrypt_sha256"``, ``"django_bcrypt"``, ``"django_scrypt"``,
        ``"werkzeug_pbkdf2"``, ``"werkzeug_scrypt"`` ..., or ``"plaintext"`` for a string that has no hash form.

    Raises:
        TypeError: ``stored`` is not a ``str``.
        InvalidHashError: ``stored`` is empty or holds a NUL or line break.
        UnsupportedHashError: ``stored`` has the form of a known scheme that is not supported (``$2x$``, Django's
            ``bcrypt_sha256$`` ...), starts with ``$`` or ``{`` followed by an unknown scheme, or is a locked or
            unusable marker (``!``, ``*``).
    """
    if not isinstance(stored, str):
        raise TypeError(f"a stored hash is a str, not {type(stored).__name__}")
    if not stored:
        raise InvalidHashError("empty hash")
    if "\x00" in stored or "\n" in stored or "\r" in stored:
        raise InvalidHashError("malformed hash: control characters")
    s = stored
    if s.startswith("$apr1$"):
        return "apr1"
    if s.startswith(("$2a$", "$2b$", "$2y$", "$2x$")):
        return "bcrypt"
    if s.startswith("{SHA}"):
        return "sha1"
    for prefix, name in _CRYPT_PREFIXES:
        if s.startswith(prefix):
            return name
    if s.startswith(("$argon2id$", "$argon2i$")):
        return "argon2"
    if s.startswith("pbkdf2_sha256$"):
        return "django_pbkdf2_sha256"
    if s.startswith("pbkdf2_sha1$"):
        return "django_pbkdf2_sha1"
    if s.startswith(("pbkdf2:", "pbkdf2$")):
        return "werkzeug_pbkdf2"
    if s.startswith(("scrypt:", "scrypt$")) and s.count("$") == 2:
        return "werkzeug_scrypt"
    if s.startswith(("argon2$argon2id$", "argon2$argon2i$")):
        return "django_argon2"
    if s.startswith("bcrypt_sha256$$2"):
        return "django_bcrypt_sha256"
    if s.startswith("bcrypt$$2"):
        return "django_bcrypt"
    if s.startswith("scrypt$") and s.count("$") == 5:
        return "django_scrypt"
    if _DES_RE.fullmatch(s):
        return "des"
    if _BSDI_RE.fullmatch(s):
        return "bsdi_crypt"
    if s.startswith(_UNSUPPORTED_PREFIXES):
        raise UnsupportedHashError(f"unsupported hash scheme {s.split('$')[1] if s.startswith('$') else s[:12]!r}")
    if s[0] in "!*":
        raise UnsupportedHashError("locked or unusable password marker")
    if s[0] in "${":
        raise UnsupportedHashError("unknown hash scheme")
    return "plaintext"


# ---------------------------------------------------------------------------------------------------- verifiers


def _verify_apr1(password: bytes, stored: str) -> bool:
    return _lowlevel.apr1_verify(password, _ascii(stored))


def _bcrypt_parts(stored: str) -> tuple[str, int]:
    m = _BCRYPT_RE.fullmatch(stored)
    if m is None:
        raise InvalidHashError("malformed bcrypt hash")
    cost = int(m.group(2))
    if not 4 <= cost <= 31:
        raise InvalidHashError("malformed bcrypt hash: cost outside 4..31")
    return m.group(1), cost


def _verify_bcrypt(password: bytes, stored: str) -> bool:
    """bcrypt as Apache checks it: crypt_blowfish (through libxcrypt), compared in constant time in C."""
    _bcrypt_parts(stored)
    return _lowlevel.crypt_verify(password[:72], stored.encode("ascii"))  # crypt_blowfish reads 72 bytes


def _verify_bcrypt_pyca(password: bytes, stored: str) -> bool:
    """bcrypt as Django checks it: the ``bcrypt`` package (which reads ``$2a$`` as ``$2b$``)."""
    if _bcrypt_parts(stored)[0] == "x":
        raise UnsupportedHashError("Django never wrote $2x$ bcrypt hashes")
    raw = stored.encode("ascii")
    import bcrypt as _bcrypt

    try:
        computed = _bcrypt.hashpw(password[:72], raw)  # bcrypt 5 refuses more than 72 bytes
    except ValueError:
        raise InvalidHashError("malformed bcrypt hash") from None
    return _ct_equal(computed, raw)


def _verify_sha1(password: bytes, stored: str) -> bool:
    if not _SHA1_RE.fullmatch(stored):
        raise InvalidHashError("malformed {SHA} hash")
    expected = _b64decode(stored[5:], padded=True)
    return _ct_equal(_sha1(password).digest(), expected)


def _itoa64(c: str) -> int:
    i = _ITOA64.find(c)
    if i < 0 or not c:
        raise InvalidHashError("malformed crypt hash: bad parameter character")
    return i


def _check_crypt_memory(stored: str) -> None:
    """Refuse yescrypt/scrypt parameters needing more than MAX_SCRYPT_MEMORY (128 * r * N bytes).

    libxcrypt would try to allocate whatever a stored hash asks for (``$y$jJT$`` is 8 GiB); its own
    ``crypt_gensalt`` never goes beyond ``$y$jFT$`` (1 GiB, cost 11).
    """
    if stored.startswith(("$y$", "$gy$")):
        params = stored.split("$")[2]
        if len(params) != 3:  # flavor, log2(N) - 1, r - 1: all libxcrypt's crypt_gensalt writes
            raise UnsupportedHashError("yescrypt parameters other than N and r are not supported")
        n_log2, r = _itoa64(params[1]) + 1, _itoa64(params[2]) + 1
    elif stored.startswith("$7$"):
        if len(stored) < 14:
            raise InvalidHashError("malformed scrypt crypt hash")
        n_log2 = _itoa64(stored[3])
        r = sum(_itoa64(c) << (6 * i) for i, c in enumerate(stored[4:9]))
        p = sum(_itoa64(c) << (6 * i) for i, c in enumerate(stored[9:14]))
        if p > 64:
            raise InvalidHashError("scrypt crypt hash: parallelism above 64")
    else:
        return
    if 128 * r << n_log2 > MAX_SCRYPT_MEMORY:
        raise InvalidHashError(f"hash asks for more than {MAX_SCRYPT_MEMORY >> 20} MiB of memory")


def _check_crypt_setting(stored: str) -> bytes:
    raw = _ascii(stored)
    rc = _lowlevel.crypt_checksalt(raw)
    if rc == _lowlevel.CRYPT_SALT_INVALID:
        raise InvalidHashError("malformed crypt hash")
    if rc == _lowlevel.CRYPT_SALT_METHOD_DISABLED:
        raise UnsupportedHashError("this crypt method is disabled in the system's libxcrypt")
    _check_crypt_memory(stored)
    return raw


def _verify_crypt(password: bytes, stored: str) -> bool:
    return _lowlevel.crypt_verify(password, _check_crypt_setting(stored))


def _argon2_parts(stored: str) -> tuple[argon2.low_level.Type, int, int, int, int, bytes, bytes]:
    m = _ARGON2_RE.fullmatch(stored)
    if m is None:
        raise InvalidHashError("malformed argon2 hash")
    import argon2.low_level
    variant = argon2.low_level.Type.ID if m.group(1) == "argon2id" else argon2.low_level.Type.I
    version, memory, time_cost, parallelism = (int(m.group(i)) for i in range(2, 6))
    salt = _b64decode(m.group(6), padded=False)
    digest = _b64decode(m.group(7), padded=False)
    if (version not in (16, 19) or not 1 <= parallelism <= 255 or not 8 * parallelism <= memory
            <= MAX_ARGON2_MEMORY_KIB or not 1 <= time_cost <= 1000 or len(salt) < 8 or len(digest) < 4):
        raise InvalidHashError("malformed argon2 hash: parameters out of range")
    return variant, version, memory, time_cost, parallelism, salt, digest


def _verify_argon2(password: bytes, stored: str) -> bool:
    variant, version, memory, time_cost, parallelism, salt, digest = _argon2_parts(stored)
    import argon2.exceptions
    import argon2.low_level

    try:
        computed = argon2.low_level.hash_secret_raw(
            password, salt, time_cost=time_cost, memory_cost=memory, parallelism=parallelism,
            hash_len=len(digest), type=variant, version=version,
        )
    except argon2.exceptions.HashingError as exc:
        raise InvalidHashError(f"unusable argon2 hash: {exc}") from None
    return _ct_equal(computed, digest)


def _iterations(text: str) -> int:
    if not _DIGITS_RE.fullmatch(text):
        raise InvalidHashError("malformed hash: bad iteration count")
    n = int(text)
    if n > MAX_PBKDF2_ITERATIONS:
        raise InvalidHashError(f"hash iteration count above the limit of {MAX_PBKDF2_ITERATIONS}")
    return n


def _django_parts(stored: str) -> tuple[str, int, str, bytes]:
    import hashlib

    parts = stored.split("$")
    if len(parts) != 4 or not parts[2]:
        raise InvalidHashError("malformed Django pbkdf2 hash")
    algo = parts[0].removeprefix("pbkdf2_")
    digest = _b64decode(parts[3], padded=True)
    if len(digest) != hashlib.new(algo).digest_size:
        raise InvalidHashError("malformed Django pbkdf2 hash: wrong digest length")
    return algo, _iterations(parts[1]), parts[2], digest


def _verify_django(password: bytes, stored: str) -> bool:
    import hashlib

    algo, iterations, salt, digest = _django_parts(stored)
    computed = hashlib.pbkdf2_hmac(algo, password, salt.encode("utf-8"), iterations)
    return _ct_equal(computed, digest)


def _werkzeug_parts(stored: str) -> tuple[list[str], str, bytes]:
    parts = stored.split("$")
    if len(parts) != 3 or not parts[1] or not _HEX_RE.fullmatch(parts[2]):
        raise InvalidHashError("malformed Werkzeug hash")
    return parts[0].split(":"), parts[1], bytes.fromhex(parts[2])


def _werkzeug_pbkdf2_params(method: list[str]) -> tuple[str, int]:
    if method[0] != "pbkdf2" or len(method) > 3:
        raise InvalidHashError("malformed Werkzeug pbkdf2 hash")
    name = method[1] if len(method) > 1 else "sha256"
    if name not in _WERKZEUG_HASHES:
        raise UnsupportedHashError(f"unsupported Werkzeug pbkdf2 digest {name[:16]!r}")
    iterations = _iterations(method[2]) if len(method) > 2 else WERKZEUG_DEFAULT_ITERATIONS
    return name, iterations


def _verify_werkzeug_pbkdf2(password: bytes, stored: str) -> bool:
    import hashlib

    method, salt, digest = _werkzeug_parts(stored)
    name, iterations = _werkzeug_pbkdf2_params(method)
    if len(digest) != hashlib.new(name).digest_size:
        raise InvalidHashError("malformed Werkzeug pbkdf2 hash: wrong digest length")
    computed = hashlib.pbkdf2_hmac(name, password, salt.encode("utf-8"), iterations)
    return _ct_equal(computed, digest)


def _werkzeug_scrypt_params(method: list[str]) -> tuple[int, int, int]:
    if method[0] != "scrypt" or len(method) not in (1, 4):
        raise InvalidHashError("malformed Werkzeug scrypt hash")
    if len(method) == 1:
        return 2**15, 8, 1
    if not all(_DIGITS_RE.fullmatch(v) for v in method[1:]):
        raise InvalidHashError("malformed Werkzeug scrypt hash: bad parameters")
    n, r, p = (int(v) for v in method[1:])
    return _scrypt_params(n, r, p)


def _scrypt_params(n: int, r: int, p: int) -> tuple[int, int, int]:
    if n < 2 or n & (n - 1) or r < 1 or 128 * n * r > MAX_SCRYPT_MEMORY or not 1 <= p <= 64:
        raise InvalidHashError("malformed scrypt hash: parameters out of range")
    return n, r, p


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    """scrypt with a 64-byte result; ``maxmem`` just above what OpenSSL allocates (128 r (n + p + 2) bytes)."""
    maxmem = min(128 * r * (n + p + 2) + (1 << 20), 2**31 - 1)
    import hashlib

    try:
        return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=64)
    except ValueError as exc:  # parameters OpenSSL refuses
        raise InvalidHashError(f"unusable scrypt hash: {exc}") from None


def _verify_werkzeug_scrypt(password: bytes, stored: str) -> bool:
    method, salt, digest = _werkzeug_parts(stored)
    n, r, p = _werkzeug_scrypt_params(method)
    if len(digest) != 64:
        raise InvalidHashError("malformed Werkzeug scrypt hash: wrong digest length")
    return _ct_equal(_scrypt(password, salt.encode("utf-8"), n, r, p), digest)


def _django_scrypt_parts(stored: str) -> tuple[int, str, int, int, bytes]:
    parts = stored.split("$")
    if len(parts) != 6 or not parts[2] or not all(_DIGITS_RE.fullmatch(v) for v in (parts[1], parts[3], parts[4])):
        raise InvalidHashError("malformed Django scrypt hash")
    n, r, p = _scrypt_params(int(parts[1]), int(parts[3]), int(parts[4]))
    digest = _b64decode(parts[5], padded=True)
    if len(digest) != 64:
        raise InvalidHashError("malformed Django scrypt hash: wrong digest length")
    return n, parts[2], r, p, digest


def _verify_django_scrypt(password: bytes, stored: str) -> bool:
    n, salt, r, p, digest = _django_scrypt_parts(stored)
    return _ct_equal(_scrypt(password, salt.encode("utf-8"), n, r, p), digest)


def _verify_django_argon2(password: bytes, stored: str) -> bool:
    return _verify_argon2(password, stored.removeprefix("argon2"))


def _sha256_hex(password: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(password).hexdigest().encode("ascii")


def _verify_django_bcrypt_sha256(password: bytes, stored: str) -> bool:
    # Django hashes the password with SHA-256 first (hex, 64 bytes) so that bcrypt sees all of it.
    return _verify_bcrypt_pyca(_sha256_hex(password), stored.removeprefix("bcrypt_sha256$"))


def _verify_django_bcrypt(password: bytes, stored: str) -> bool:
    return _verify_bcrypt_pyca(password, stored.removeprefix("bcrypt$"))


def _verify_plaintext(password: bytes, stored: str) -> bool:
    return _ct_equal(password, stored.encode("utf-8"))


_VERIFIERS: Final[dict[str, Callable[[bytes, str], bool]]] = {
    "apr1": _verify_apr1,
    "bcrypt": _verify_bcrypt,
    "sha1": _verify_sha1,
    "argon2": _verify_argon2,
    "django_pbkdf2_sha256": _verify_django,
    "django_pbkdf2_sha1": _verify_django,
    "werkzeug_pbkdf2": _verify_werkzeug_pbkdf2,
    "werkzeug_scrypt": _verify_werkzeug_scrypt,
    "django_argon2": _verify_django_argon2,
    "django_bcrypt_sha256": _verify_django_bcrypt_sha256,
    "django_bcrypt": _verify_django_bcrypt,
    "django_scrypt": _verify_django_scrypt,
    "plaintext": _verify_plaintext,
    **{name: _verify_crypt for name in _CRYPT_SCHEMES},
}


def verify(password: bytes, stored: str, *, allow_plaintext: bool = False) -> bool:
    """Check a password against a stored hash, as Apache does.

    Args:
        password: the raw password bytes (mod_wsgi's ``str`` encoded back as latin-1).
        stored: the stored hash.
        allow_plaintext: accept a ``stored`` value that has no hash form as a plaintext password (compared in
            constant time with its UTF-8 encoding). Off by default: Apache on Linux does not accept plaintext.
            A value that has a hash form is never taken as plaintext: 13 characters from ``./0-9A-Za-z`` are a DES
            hash, and ``$...``, ``{...}``, ``!``/``*`` markers and known framework prefixes raise instead.

    Returns:
        ``True`` when the password matches, ``False`` otherwise (always for a password with a NUL byte, see the
        module documentation).

    Raises:
        TypeError: ``password`` is not ``bytes`` or ``stored`` is not ``str``.
        InvalidHashError: ``stored`` is malformed.
        UnsupportedHashError: ``stored`` is of a scheme not supported, or plaintext while ``allow_plaintext`` is off.
    """
    if not isinstance(password, bytes):
        raise TypeError(f"password must be bytes, not {type(password).__name__}")
    scheme = identify(stored)
    if scheme == "plaintext" and not allow_plaintext:
        raise UnsupportedHashError("plaintext passwords are not enabled (allow_plaintext=False)")
    verifier = _VERIFIERS[scheme]
    if b"\x00" in password:
        # Apache would see the password cut at the NUL: do that work, but never grant such a request.
        verifier(password.split(b"\x00", 1)[0], stored)
        return False
    return verifier(password, stored)


# ---------------------------------------------------------------------------------------------------- creating


def _hash_bcrypt(password: bytes, *, cost: int = BCRYPT_DEFAULT_COST, prefix: str = "$2y$") -> str:
    if not isinstance(cost, int) or not 4 <= cost <= 31:
        raise ValueError("bcrypt cost must be an int from 4 to 31 (htpasswd -C offers 4 to 17)")
    import bcrypt as _bcrypt

    raw = _bcrypt.hashpw(password[:72], _bcrypt.gensalt(rounds=cost, prefix=b"2b"))
    return prefix + raw.decode("ascii")[4:]  # the same algorithm; $2y$ is what htpasswd -B writes


def _hash_apr1(password: bytes, *, salt: str | None = None) -> str:
    salt = _salt_chars(8) if salt is None else salt
    return _lowlevel.apr1_hash(password, salt.encode("ascii", "replace"))


def _hash_sha1(password: bytes) -> str:
    return "{SHA}" + base64.b64encode(_sha1(password).digest()).decode("ascii")


def _crypt_with(password: bytes, setting: bytes) -> str:
    try:
        return _lowlevel.crypt(password, setting)
    except InvalidHashError as exc:
        raise ValueError(str(exc)) from None


def _hash_des(password: bytes) -> str:
    return _crypt_with(password, _salt_chars(2).encode("ascii"))


def _hash_md5_crypt(password: bytes) -> str:
    return _crypt_with(password, _lowlevel.crypt_gensalt(b"$1$"))


def _hash_sha256_crypt(password: bytes, *, rounds: int | None = None) -> str:
    return _crypt_with(password, _lowlevel.crypt_gensalt(b"$5$", rounds or 0))


def _hash_sha512_crypt(password: bytes, *, rounds: int | None = None) -> str:
    return _crypt_with(password, _lowlevel.crypt_gensalt(b"$6$", rounds or 0))


def _hash_yescrypt(password: bytes, *, cost: int | None = None) -> str:
    return _crypt_with(password, _lowlevel.crypt_gensalt(b"$y$", cost or 0))


def _argon2_hasher(params: dict[str, Any]) -> argon2.PasswordHasher:
    allowed = {"time_cost", "memory_cost", "parallelism", "hash_len", "salt_len"}
    unknown = set(params) - allowed
    if unknown:
        raise TypeError(f"unknown argon2 parameters: {sorted(unknown)}")
    import argon2.low_level

    return argon2.PasswordHasher(type=argon2.low_level.Type.ID, **params)


def _hash_argon2(password: bytes, **params: Any) -> str:
    return _argon2_hasher(params).hash(password)


def _hash_django(algo: str) -> Callable[..., str]:
    def make(password: bytes, *, iterations: int = PBKDF2_DEFAULT_ITERATIONS, salt: str | None = None) -> str:
        if not isinstance(iterations, int) or not 1 <= iterations <= MAX_PBKDF2_ITERATIONS:
            raise ValueError(f"iterations must be an int from 1 to {MAX_PBKDF2_ITERATIONS}")
        salt = _salt_chars(22, _ALNUM) if salt is None else salt
        if not salt or "$" in salt:
            raise ValueError("a Django salt is a non-empty string without '$'")
        import hashlib

        digest = hashlib.pbkdf2_hmac(algo, password, salt.encode("utf-8"), iterations)
        return f"pbkdf2_{algo}${iterations}${salt}${base64.b64encode(digest).decode('ascii')}"

    return make


_ALNUM: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _hash_werkzeug_pbkdf2(password: bytes, *, iterations: int = PBKDF2_DEFAULT_ITERATIONS,
                          hash_name: str = "sha256") -> str:
    if hash_name not in _WERKZEUG_HASHES:
        raise ValueError(f"hash_name must be one of {sorted(_WERKZEUG_HASHES)}")
    if not isinstance(iterations, int) or not 1 <= iterations <= MAX_PBKDF2_ITERATIONS:
        raise ValueError(f"iterations must be an int from 1 to {MAX_PBKDF2_ITERATIONS}")
    salt = _salt_chars(16, _ALNUM)
    import hashlib

    digest = hashlib.pbkdf2_hmac(hash_name, password, salt.encode("ascii"), iterations)
    return f"pbkdf2:{hash_name}:{iterations}${salt}${digest.hex()}"


def _checked_scrypt_params(n: object, r: object, p: object) -> tuple[int, int, int]:
    if not all(isinstance(v, int) for v in (n, r, p)):
        raise ValueError("scrypt n, r and p are ints")
    try:
        return _scrypt_params(n, r, p)  # type: ignore[arg-type]
    except InvalidHashError:
        raise ValueError(f"scrypt n must be a power of 2, 128*n*r at most {MAX_SCRYPT_MEMORY}, p from 1 to 64"
                         ) from None


def _hash_werkzeug_scrypt(password: bytes, *, n: int = 2**15, r: int = 8, p: int = 1) -> str:
    n, r, p = _checked_scrypt_params(n, r, p)
    salt = _salt_chars(16, _ALNUM)
    return f"scrypt:{n}:{r}:{p}${salt}${_scrypt(password, salt.encode('ascii'), n, r, p).hex()}"


def _hash_django_scrypt(password: bytes, *, n: int = 2**14, r: int = 8, p: int = 5) -> str:
    n, r, p = _checked_scrypt_params(n, r, p)
    salt = _salt_chars(22, _ALNUM)
    digest = base64.b64encode(_scrypt(password, salt.encode("ascii"), n, r, p)).decode("ascii")
    return f"scrypt${n}${salt}${r}${p}${digest}"


def _hash_django_argon2(password: bytes, **params: Any) -> str:
    return "argon2" + _hash_argon2(password, **params)


def _hash_django_bcrypt_sha256(password: bytes, *, cost: int = DJANGO_BCRYPT_DEFAULT_COST) -> str:
    return "bcrypt_sha256$" + _hash_bcrypt(_sha256_hex(password), cost=cost, prefix="$2b$")


_MAKERS: Final[dict[str, Callable[..., str]]] = {
    "bcrypt": _hash_bcrypt,
    "apr1": _hash_apr1,
    "sha1": _hash_sha1,
    "des": _hash_des,
    "md5_crypt": _hash_md5_crypt,
    "sha256_crypt": _hash_sha256_crypt,
    "sha512_crypt": _hash_sha512_crypt,
    "yescrypt": _hash_yescrypt,
    "argon2": _hash_argon2,
    "django_pbkdf2_sha256": _hash_django("sha256"),
    "django_pbkdf2_sha1": _hash_django("sha1"),
    "werkzeug_pbkdf2": _hash_werkzeug_pbkdf2,
    "werkzeug_scrypt": _hash_werkzeug_scrypt,
    "django_argon2": _hash_django_argon2,
    "django_bcrypt_sha256": _hash_django_bcrypt_sha256,
    "django_scrypt": _hash_django_scrypt,
}

#: The schemes :func:`hash_password` can create (a subset of :data:`SCHEMES`).
CREATABLE_SCHEMES: Final = tuple(sorted(_MAKERS))


def hash_password(password: bytes, scheme: str = "bcrypt", **params: Any) -> str:
    """Create a hash of ``password``.

    Args:
        password: the raw password bytes.
        scheme: ``"bcrypt"`` (default: ``$2y$`` as ``htpasswd -B`` writes, param ``cost``, default
            :data:`BCRYPT_DEFAULT_COST`; only the first 72 bytes count, as in Apache), ``"apr1"`` (``salt``),
            ``"sha1"``, ``"des"``, ``"md5_crypt"``, ``"sha256_crypt"``/``"sha512_crypt"`` (``rounds``),
            ``"yescrypt"`` (``cost``), ``"argon2"`` (argon2id: ``time_cost``, ``memory_cost``, ``parallelism``),
            ``"django_pbkdf2_sha256"``/``"django_pbkdf2_sha1"`` (``iterations``, ``salt``), ``"werkzeug_pbkdf2"``
            (``iterations``, ``hash_name``), ``"werkzeug_scrypt"`` (``n``, ``r``, ``p``), ``"django_argon2"`` (as
            argon2), ``"django_bcrypt_sha256"`` (``cost``, default 12), ``"django_scrypt"`` (``n``, ``r``, ``p``).
            For files Apache reads use bcrypt (or apr1, sha*_crypt); argon2 and the framework formats are for
            stores only wsgiauth (or that framework) reads.
        **params: the scheme's parameters, listed above.

    Returns:
        The hash, ready to store.

    Raises:
        TypeError: ``password`` is not ``bytes`` or a parameter is unknown.
        ValueError: a parameter is out of range, or ``password`` has a NUL byte.
        UnsupportedHashError: the scheme cannot be created here (plaintext or unknown).
    """
    if not isinstance(password, bytes):
        raise TypeError(f"password must be bytes, not {type(password).__name__}")
    maker = _MAKERS.get(scheme)
    if maker is None:
        raise UnsupportedHashError(f"cannot create {scheme!r} hashes; choose one of {', '.join(CREATABLE_SCHEMES)}")
    if b"\x00" in password:
        raise ValueError("a password cannot contain a NUL byte (Apache reads passwords as C strings)")
    return maker(password, **params)


# ---------------------------------------------------------------------------------------------------- upgrading


def _crypt_rounds(stored: str) -> int:
    m = re.match(r"\$[56]\$rounds=([0-9]{1,10})\$", stored)
    return int(m.group(1)) if m else 5000


def needs_update(stored: str, scheme: str = "bcrypt", **params: Any) -> bool:
    """Whether ``stored`` should be replaced by a fresh hash of ``scheme`` with ``params`` (at the next login).

    Args:
        stored: the stored hash.
        scheme: the scheme wanted (as in :func:`hash_password`).
        **params: the wanted parameters (as in :func:`hash_password`); defaults as there.

    Returns:
        ``True`` when ``stored`` is of another scheme, has weaker parameters (bcrypt cost, ``rounds``,
        ``iterations``, scrypt ``n``/``r``/``p``) or other parameters (argon2, yescrypt: any difference, as
        argon2-cffi's ``check_needs_rehash``), is of a method libxcrypt calls legacy (``$1$``, DES is exempt when
        asked for), or is malformed/unsupported (it can never verify, so it must be replaced); ``False`` otherwise.
    """
    try:
        have = identify(stored)
        if have != scheme:
            return True
        if scheme == "bcrypt":
            variant, cost = _bcrypt_parts(stored)
            return variant == "x" or cost < int(params.get("cost", BCRYPT_DEFAULT_COST))
        if scheme in ("sha256_crypt", "sha512_crypt"):
            _check_crypt_setting(stored)
            return _crypt_rounds(stored) < int(params.get("rounds") or 5000)
        if scheme in _CRYPT_SCHEMES:
            raw = _check_crypt_setting(stored)
            if scheme == "yescrypt":  # parameters other than the ones asked for (as argon2's check)
                wanted = _lowlevel.crypt_gensalt(b"$y$", int(params.get("cost") or 0)).split(b"$")[2]
                return raw.split(b"$")[2] != wanted
            return _lowlevel.crypt_checksalt(raw) != _lowlevel.CRYPT_SALT_OK and scheme != "des"
        if scheme in ("argon2", "django_argon2"):
            bare = stored.removeprefix("argon2") if scheme == "django_argon2" else stored
            _argon2_parts(bare)
            return _argon2_hasher(params).check_needs_rehash(bare)
        if scheme in ("django_bcrypt_sha256", "django_bcrypt"):
            cost = _bcrypt_parts(stored.split("$", 1)[1])[1]
            return cost < int(params.get("cost", DJANGO_BCRYPT_DEFAULT_COST))
        if scheme == "django_scrypt":  # any difference, as Django's own must_update
            n, _, r, p, _ = _django_scrypt_parts(stored)
            return (n, r, p) != (int(params.get("n", 2**14)), int(params.get("r", 8)), int(params.get("p", 5)))
        if scheme.startswith("django_pbkdf2"):
            return _django_parts(stored)[1] < int(params.get("iterations", PBKDF2_DEFAULT_ITERATIONS))
        if scheme == "werkzeug_pbkdf2":
            name, iterations = _werkzeug_pbkdf2_params(_werkzeug_parts(stored)[0])
            return (name != params.get("hash_name", "sha256")
                    or iterations < int(params.get("iterations", PBKDF2_DEFAULT_ITERATIONS)))
        if scheme == "werkzeug_scrypt":
            n, r, p = _werkzeug_scrypt_params(_werkzeug_parts(stored)[0])
            return (n, r, p) < (int(params.get("n", 2**15)), int(params.get("r", 8)), int(params.get("p", 1)))
        if scheme in ("apr1", "sha1"):
            _VERIFIERS[scheme](b"", stored)  # syntax check only
        return False
    except InvalidHashError:
        return True


# ---------------------------------------------------------------------------------------------------- timing


_DEFAULT_DUMMY_KEY: Final = ("apr1",)
_dummies: dict[tuple[Any, ...], str] = {}
_dummies_lock = threading.Lock()
_MAX_DUMMIES: Final = 64


def _dummy_key(like: str) -> tuple[Any, ...]:
    """The scheme and cost parameters of ``like`` (not its salt): hashes with the same key cost the same."""
    scheme = identify(like)
    if scheme == "bcrypt":
        return (scheme, _bcrypt_parts(like)[1])
    if scheme in ("sha256_crypt", "sha512_crypt"):
        return (scheme, _crypt_rounds(like))
    if scheme in ("yescrypt", "gost_yescrypt", "scrypt_crypt"):
        fields = like.split("$")
        return (scheme, fields[2] if len(fields) > 2 else "")
    if scheme in ("argon2", "django_argon2"):
        parts = _argon2_parts(like.removeprefix("argon2") if scheme == "django_argon2" else like)
        variant, version, memory, time_cost, parallelism, salt, digest = parts
        return (scheme, variant, version, memory, time_cost, parallelism, len(salt), len(digest))
    if scheme in ("django_bcrypt_sha256", "django_bcrypt"):
        return (scheme, _bcrypt_parts(like.split("$", 1)[1])[1])
    if scheme == "django_scrypt":
        n, _, r, p, _ = _django_scrypt_parts(like)
        return (scheme, n, r, p)
    if scheme.startswith("django_pbkdf2"):
        return (scheme, _django_parts(like)[1])
    if scheme == "werkzeug_pbkdf2":
        return (scheme, *_werkzeug_pbkdf2_params(_werkzeug_parts(like)[0]))
    if scheme == "werkzeug_scrypt":
        return (scheme, *_werkzeug_scrypt_params(_werkzeug_parts(like)[0]))
    return (scheme,)


def _make_dummy(key: tuple[Any, ...], like: str | None) -> str:
    scheme: str = key[0]
    if scheme == "plaintext":
        return _DUMMY_PASSWORD.decode("ascii")
    if scheme in _CRYPT_SCHEMES and like is not None:
        # libxcrypt takes a whole hash as the setting: same method, cost and salt length, a known password.
        return _lowlevel.crypt(_DUMMY_PASSWORD, _check_crypt_setting(like))
    if scheme == "bcrypt" and like is not None:  # same method and cost, checked the same way
        return _lowlevel.crypt(_DUMMY_PASSWORD, like.encode("ascii"))
    if scheme in ("argon2", "django_argon2"):
        variant, _version, memory, time_cost, parallelism, salt_len, hash_len = key[1:]
        import argon2

        made: str = argon2.PasswordHasher(time_cost=time_cost, memory_cost=memory, parallelism=parallelism,
                                          hash_len=hash_len, salt_len=salt_len, type=variant).hash(_DUMMY_PASSWORD)
        return "argon2" + made if scheme == "django_argon2" else made
    if scheme in ("django_bcrypt_sha256", "django_bcrypt"):
        made = _hash_bcrypt(_DUMMY_PASSWORD, cost=key[1], prefix="$2b$")
        return scheme.removeprefix("django_") + "$" + made
    if scheme == "django_scrypt":
        return _hash_django_scrypt(_DUMMY_PASSWORD, n=key[1], r=key[2], p=key[3])
    if scheme.startswith("django_pbkdf2"):
        return _MAKERS[scheme](_DUMMY_PASSWORD, iterations=key[1])
    if scheme == "werkzeug_pbkdf2":
        return _hash_werkzeug_pbkdf2(_DUMMY_PASSWORD, hash_name=key[1], iterations=key[2])
    if scheme == "werkzeug_scrypt":
        return _hash_werkzeug_scrypt(_DUMMY_PASSWORD, n=key[1], r=key[2], p=key[3])
    return _MAKERS[scheme](_DUMMY_PASSWORD)


def _dummy_for(like: str | None) -> str:
    key = _DEFAULT_DUMMY_KEY
    if like is not None:
        try:
            key = _dummy_key(like)
        except (InvalidHashError, TypeError):
            key = _DEFAULT_DUMMY_KEY
    with _dummies_lock:
        dummy = _dummies.get(key)
    if dummy is not None:
        return dummy
    try:
        dummy = _make_dummy(key, like if key is not _DEFAULT_DUMMY_KEY else None)
    except (InvalidHashError, ValueError, TypeError):
        key = _DEFAULT_DUMMY_KEY
        dummy = _make_dummy(key, None)
    with _dummies_lock:
        if len(_dummies) < _MAX_DUMMIES or key == _DEFAULT_DUMMY_KEY:
            dummy = _dummies.setdefault(key, dummy)
    return dummy


def dummy_verify(password: bytes, like: str | None) -> None:
    """Spend what verifying ``password`` against a hash like ``like`` costs, and discard the result.

    Called for an unknown (or disabled) user so that response time does not reveal whether the user exists. One
    dummy hash per scheme and cost parameters (bcrypt cost, rounds, iterations, argon2 memory ...) is generated on
    first use and cached; the salt of ``like`` does not matter.

    Args:
        password: the password the client sent (bytes; anything else is replaced by a fixed value).
        like: a stored hash of the kind the store holds, or ``None`` for the default (an ``$apr1$`` hash, Apache's
            default). A malformed or unsupported ``like`` also falls back to the default.

    Never raises.
    """
    try:
        if not isinstance(password, bytes):
            password = _DUMMY_PASSWORD
        verify(password, _dummy_for(like), allow_plaintext=True)
    except Exception:  # noqa: BLE001, S110 - timing padding must never break an authentication
        pass
