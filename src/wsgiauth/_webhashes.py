"""Django's and Werkzeug's password hash formats: the rows of ``wsgiauth.hashes``' scheme table for them.

``wsgiauth.hashes`` recognises these formats by their prefixes and imports this module the first time one of them
is verified, created or priced (an htpasswd store never loads it). ``ROWS`` gives, per scheme name, what the row
needs beyond recognition (the keyword arguments of ``hashes._Scheme``: ``verify``, ``make``, ``defaults``,
``params``, ``at_least``, ``wanted``, ``dummy``).

Formats, as Django 5.2 and Werkzeug 3.1 write them:

* Django ``pbkdf2_sha256$<iterations>$<salt>$<base64 digest>`` and ``pbkdf2_sha1$...``;
* Django ``argon2$<argon2 hash>``, ``bcrypt_sha256$<bcrypt of the hex SHA-256>``, ``bcrypt$<bcrypt>`` (checked,
  not created: Django no longer writes it), ``scrypt$<n>$<salt>$<r>$<p>$<base64 digest>``;
* Werkzeug ``pbkdf2:<hash>:<iterations>$<salt>$<hex digest>`` (``pbkdf2$`` and ``pbkdf2:<hash>$`` imply the rest)
  and ``scrypt:<n>:<r>:<p>$<salt>$<hex digest>`` (``scrypt$`` implies Werkzeug's parameters).
"""

from __future__ import annotations

import base64
import re

from .exceptions import InvalidHashError, UnsupportedHashError
from .hashes import (
    _DUMMY_PASSWORD,
    DJANGO_BCRYPT_DEFAULT_COST,
    MAX_PBKDF2_ITERATIONS,
    MAX_SCRYPT_MEMORY,
    PBKDF2_DEFAULT_ITERATIONS,
    WERKZEUG_DEFAULT_ITERATIONS,
    _argon2_params,
    _argon2_wanted,
    _b64decode,
    _bcrypt_parts,
    _dummy_argon2,
    _hash_argon2,
    _hash_bcrypt,
    _salt_chars,
    _verify_argon2,
    constant_time_equal,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Final

__all__ = ["ROWS"]

_DIGITS_RE: Final = re.compile(r"[1-9][0-9]{0,9}")
_HEX_RE: Final = re.compile(r"(?:[0-9a-f]{2})+")
_ALNUM: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_WERKZEUG_HASHES: Final = frozenset({"sha1", "sha224", "sha256", "sha384", "sha512"})
#: Werkzeug's PBKDF2 digest: what ``pbkdf2$`` implies, and that of new hashes.
_WERKZEUG_PBKDF2_HASH: Final = "sha256"
#: Werkzeug 3.1's scrypt parameters: what ``scrypt$`` implies, and those of new hashes.
_WERKZEUG_SCRYPT: Final = {"n": 2**15, "r": 8, "p": 1}
#: Django 5.2's scrypt parameters (``ScryptPasswordHasher``: work factor, block size, parallelism).
_DJANGO_SCRYPT: Final = {"n": 2**14, "r": 8, "p": 5}


# ---------------------------------------------------------------------------------------------------- shared


def _iterations(text: str) -> int:
    if not _DIGITS_RE.fullmatch(text):
        raise InvalidHashError("malformed hash: bad iteration count")
    n = int(text)
    if n > MAX_PBKDF2_ITERATIONS:
        raise InvalidHashError(f"hash iteration count above the limit of {MAX_PBKDF2_ITERATIONS}")
    return n


def _checked_iterations(iterations: object) -> int:
    if not isinstance(iterations, int) or not 1 <= iterations <= MAX_PBKDF2_ITERATIONS:
        raise ValueError(f"iterations must be an int from 1 to {MAX_PBKDF2_ITERATIONS}")
    return iterations


def _scrypt_params(n: int, r: int, p: int) -> dict[str, Any]:
    if n < 2 or n & (n - 1) or r < 1 or 128 * n * r > MAX_SCRYPT_MEMORY or not 1 <= p <= 64:
        raise InvalidHashError("malformed scrypt hash: parameters out of range")
    return {"n": n, "r": r, "p": p}


def _checked_scrypt_params(n: object, r: object, p: object) -> dict[str, Any]:
    if not isinstance(n, int) or not isinstance(r, int) or not isinstance(p, int):
        raise ValueError("scrypt n, r and p are ints")
    try:
        return _scrypt_params(n, r, p)
    except InvalidHashError:
        raise ValueError(f"scrypt n must be a power of 2, 128*n*r at most {MAX_SCRYPT_MEMORY}, p from 1 to 64"
                         ) from None


def _scrypt(password: bytes, salt: bytes, *, n: int, r: int, p: int) -> bytes:
    """scrypt with a 64-byte result; ``maxmem`` just above what OpenSSL allocates (128 r (n + p + 2) bytes)."""
    maxmem = min(128 * r * (n + p + 2) + (1 << 20), 2**31 - 1)
    import hashlib

    try:
        return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=64)
    except ValueError as exc:  # parameters OpenSSL refuses
        raise InvalidHashError(f"unusable scrypt hash: {exc}") from None


# ---------------------------------------------------------------------------------------------------- Django PBKDF2


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


def _verify_django_pbkdf2(password: bytes, stored: str) -> bool:
    import hashlib

    algo, iterations, salt, digest = _django_parts(stored)
    return constant_time_equal(hashlib.pbkdf2_hmac(algo, password, salt.encode("utf-8"), iterations), digest)


def _django_pbkdf2_params(stored: str) -> dict[str, Any]:
    return {"iterations": _django_parts(stored)[1]}


def _make_django_pbkdf2(algo: str) -> Callable[..., str]:
    def make(password: bytes, *, iterations: int, salt: str | None = None) -> str:
        _checked_iterations(iterations)
        salt = _salt_chars(22, _ALNUM) if salt is None else salt
        if not salt or "$" in salt:
            raise ValueError("a Django salt is a non-empty string without '$'")
        import hashlib

        digest = hashlib.pbkdf2_hmac(algo, password, salt.encode("utf-8"), iterations)
        return f"pbkdf2_{algo}${iterations}${salt}${base64.b64encode(digest).decode('ascii')}"

    return make


# ---------------------------------------------------------------------------------------------------- Werkzeug


def _werkzeug_parts(stored: str) -> tuple[list[str], str, bytes]:
    """The method fields (``["pbkdf2", "sha256", "600000"]``), the salt and the digest of a Werkzeug hash."""
    parts = stored.split("$")
    if len(parts) != 3 or not parts[1] or not _HEX_RE.fullmatch(parts[2]):
        raise InvalidHashError("malformed Werkzeug hash")
    return parts[0].split(":"), parts[1], bytes.fromhex(parts[2])


def _werkzeug_pbkdf2_method(method: list[str]) -> dict[str, Any]:
    if method[0] != "pbkdf2" or len(method) > 3:
        raise InvalidHashError("malformed Werkzeug pbkdf2 hash")
    name = method[1] if len(method) > 1 else _WERKZEUG_PBKDF2_HASH
    if name not in _WERKZEUG_HASHES:
        raise UnsupportedHashError(f"unsupported Werkzeug pbkdf2 digest {name[:16]!r}")
    iterations = _iterations(method[2]) if len(method) > 2 else WERKZEUG_DEFAULT_ITERATIONS
    return {"hash_name": name, "iterations": iterations}


def _werkzeug_pbkdf2_params(stored: str) -> dict[str, Any]:
    return _werkzeug_pbkdf2_method(_werkzeug_parts(stored)[0])


def _verify_werkzeug_pbkdf2(password: bytes, stored: str) -> bool:
    import hashlib

    method, salt, digest = _werkzeug_parts(stored)
    params = _werkzeug_pbkdf2_method(method)
    if len(digest) != hashlib.new(params["hash_name"]).digest_size:
        raise InvalidHashError("malformed Werkzeug pbkdf2 hash: wrong digest length")
    computed = hashlib.pbkdf2_hmac(params["hash_name"], password, salt.encode("utf-8"), params["iterations"])
    return constant_time_equal(computed, digest)


def _make_werkzeug_pbkdf2(password: bytes, *, iterations: int, hash_name: str) -> str:
    if hash_name not in _WERKZEUG_HASHES:
        raise ValueError(f"hash_name must be one of {sorted(_WERKZEUG_HASHES)}")
    _checked_iterations(iterations)
    salt = _salt_chars(16, _ALNUM)
    import hashlib

    digest = hashlib.pbkdf2_hmac(hash_name, password, salt.encode("ascii"), iterations)
    return f"pbkdf2:{hash_name}:{iterations}${salt}${digest.hex()}"


def _werkzeug_scrypt_method(method: list[str]) -> dict[str, Any]:
    if method[0] != "scrypt" or len(method) not in (1, 4):
        raise InvalidHashError("malformed Werkzeug scrypt hash")
    if len(method) == 1:
        return dict(_WERKZEUG_SCRYPT)
    if not all(_DIGITS_RE.fullmatch(v) for v in method[1:]):
        raise InvalidHashError("malformed Werkzeug scrypt hash: bad parameters")
    n, r, p = (int(v) for v in method[1:])
    return _scrypt_params(n, r, p)


def _werkzeug_scrypt_params(stored: str) -> dict[str, Any]:
    return _werkzeug_scrypt_method(_werkzeug_parts(stored)[0])


def _verify_werkzeug_scrypt(password: bytes, stored: str) -> bool:
    method, salt, digest = _werkzeug_parts(stored)
    params = _werkzeug_scrypt_method(method)
    if len(digest) != 64:
        raise InvalidHashError("malformed Werkzeug scrypt hash: wrong digest length")
    return constant_time_equal(_scrypt(password, salt.encode("utf-8"), **params), digest)


def _make_werkzeug_scrypt(password: bytes, *, n: int, r: int, p: int) -> str:
    params = _checked_scrypt_params(n, r, p)
    salt = _salt_chars(16, _ALNUM)
    return f"scrypt:{n}:{r}:{p}${salt}${_scrypt(password, salt.encode('ascii'), **params).hex()}"


# ---------------------------------------------------------------------------------------------------- Django others


def _django_scrypt_parts(stored: str) -> tuple[dict[str, Any], str, bytes]:
    parts = stored.split("$")
    if len(parts) != 6 or not parts[2] or not all(_DIGITS_RE.fullmatch(v) for v in (parts[1], parts[3], parts[4])):
        raise InvalidHashError("malformed Django scrypt hash")
    params = _scrypt_params(int(parts[1]), int(parts[3]), int(parts[4]))
    digest = _b64decode(parts[5], padded=True)
    if len(digest) != 64:
        raise InvalidHashError("malformed Django scrypt hash: wrong digest length")
    return params, parts[2], digest


def _verify_django_scrypt(password: bytes, stored: str) -> bool:
    params, salt, digest = _django_scrypt_parts(stored)
    return constant_time_equal(_scrypt(password, salt.encode("utf-8"), **params), digest)


def _make_django_scrypt(password: bytes, *, n: int, r: int, p: int) -> str:
    params = _checked_scrypt_params(n, r, p)
    salt = _salt_chars(22, _ALNUM)
    digest = base64.b64encode(_scrypt(password, salt.encode("ascii"), **params)).decode("ascii")
    return f"scrypt${n}${salt}${r}${p}${digest}"


def _sha256_hex(password: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(password).hexdigest().encode("ascii")


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
    return constant_time_equal(computed, raw)


def _django_bcrypt_params(stored: str) -> dict[str, Any]:
    return {"cost": _bcrypt_parts(stored.split("$", 1)[1])[1]}


def _verify_django_bcrypt_sha256(password: bytes, stored: str) -> bool:
    # Django hashes the password with SHA-256 first (hex, 64 bytes) so that bcrypt sees all of it.
    return _verify_bcrypt_pyca(_sha256_hex(password), stored.removeprefix("bcrypt_sha256$"))


def _make_django_bcrypt_sha256(password: bytes, *, cost: int) -> str:
    return "bcrypt_sha256$" + _hash_bcrypt(_sha256_hex(password), cost=cost, prefix="$2b$")


def _verify_django_bcrypt(password: bytes, stored: str) -> bool:
    return _verify_bcrypt_pyca(password, stored.removeprefix("bcrypt$"))


def _dummy_django_bcrypt(like: str) -> str:
    return "bcrypt$" + _hash_bcrypt(_DUMMY_PASSWORD, **_django_bcrypt_params(like), prefix="$2b$")


def _verify_django_argon2(password: bytes, stored: str) -> bool:
    return _verify_argon2(password, stored.removeprefix("argon2"))


def _make_django_argon2(password: bytes, **params: Any) -> str:
    return "argon2" + _hash_argon2(password, **params)


def _django_argon2_params(stored: str) -> dict[str, Any]:
    return _argon2_params(stored.removeprefix("argon2"))


def _dummy_django_argon2(like: str) -> str:
    return "argon2" + _dummy_argon2(like.removeprefix("argon2"))


#: The rest of each row of ``hashes._TABLE`` for these schemes (``hashes._LazyScheme`` fills itself in from it).
ROWS: Final[dict[str, dict[str, Any]]] = {
    "django_pbkdf2_sha256": {"verify": _verify_django_pbkdf2, "make": _make_django_pbkdf2("sha256"),
                             "defaults": {"iterations": PBKDF2_DEFAULT_ITERATIONS}, "params": _django_pbkdf2_params,
                             "at_least": ("iterations",)},
    "django_pbkdf2_sha1": {"verify": _verify_django_pbkdf2, "make": _make_django_pbkdf2("sha1"),
                           "defaults": {"iterations": PBKDF2_DEFAULT_ITERATIONS}, "params": _django_pbkdf2_params,
                           "at_least": ("iterations",)},
    "werkzeug_pbkdf2": {"verify": _verify_werkzeug_pbkdf2, "make": _make_werkzeug_pbkdf2,
                        "defaults": {"iterations": PBKDF2_DEFAULT_ITERATIONS, "hash_name": _WERKZEUG_PBKDF2_HASH},
                        "params": _werkzeug_pbkdf2_params, "at_least": ("iterations",)},
    "werkzeug_scrypt": {"verify": _verify_werkzeug_scrypt, "make": _make_werkzeug_scrypt,
                        "defaults": _WERKZEUG_SCRYPT, "params": _werkzeug_scrypt_params, "at_least": ("n", "r", "p")},
    # Django's must_update for scrypt and argon2: any difference.
    "django_scrypt": {"verify": _verify_django_scrypt, "make": _make_django_scrypt, "defaults": _DJANGO_SCRYPT,
                      "params": lambda stored: _django_scrypt_parts(stored)[0]},
    "django_argon2": {"verify": _verify_django_argon2, "make": _make_django_argon2, "params": _django_argon2_params,
                      "wanted": _argon2_wanted, "dummy": _dummy_django_argon2},
    "django_bcrypt_sha256": {"verify": _verify_django_bcrypt_sha256, "make": _make_django_bcrypt_sha256,
                             "defaults": {"cost": DJANGO_BCRYPT_DEFAULT_COST}, "params": _django_bcrypt_params,
                             "at_least": ("cost",)},
    "django_bcrypt": {"verify": _verify_django_bcrypt, "defaults": {"cost": DJANGO_BCRYPT_DEFAULT_COST},
                      "params": _django_bcrypt_params, "at_least": ("cost",), "dummy": _dummy_django_bcrypt},
}
