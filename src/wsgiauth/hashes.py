"""Password hashes: identify a stored hash, verify a password against it, create and upgrade hashes.

Every format Apache's ``mod_authn_file``/``mod_authn_dbm``/``mod_authn_dbd`` accepts on Linux is supported, bit for
bit: ``$apr1$`` (C, or the pure-Python fallback), bcrypt ``$2y$``/``$2b$``/``$2a$``/``$2x$``, ``{SHA}``, and whatever
the system libxcrypt does: DES, ``$1$``, ``$5$``, ``$6$``, ``$y$`` (yescrypt) ... bcrypt hashes are checked by
libxcrypt's bcrypt, which is Solar Designer's crypt_blowfish, the very code Apache (apr-util) uses: it reads the first
72 bytes of the password and keeps crypt_blowfish's ``$2a$`` safety measure for 8-bit passwords (the ``bcrypt``
package treats ``$2a$`` as ``$2b$`` and would refuse, e.g., a correct 8-bit password Apache accepts). The ``bcrypt``
package creates new ``$2y$`` hashes (the same algorithm as ``$2b$``) and checks Django's bcrypt formats, as Django
does. Also: argon2 (``$argon2id$``/``$argon2i$``), Django's
``pbkdf2_sha256$``/``pbkdf2_sha1$``/``argon2$``/``bcrypt_sha256$``/``bcrypt$``/``scrypt$`` and Werkzeug's ``pbkdf2:``
and ``scrypt:`` hashes (so a Django or Flask user table can be used without importing the framework; their code is in
``wsgiauth._webhashes``, imported on first use), and plaintext when explicitly allowed.

Everything wsgiauth knows about one format is one row of a table (``_Scheme``): how to recognise it, verify it,
create it, read its cost parameters, its default parameters, and how to build a dummy hash of the same cost.
``identify``, ``verify``, ``hash_password``, ``needs_update`` and ``dummy_verify`` are lookups in that table.

Passwords are ``bytes`` (the raw request bytes). Stored hashes are ``str``. A malformed hash raises
``wsgiauth.exceptions.InvalidHashError``; a well-formed hash of a scheme not supported (or not enabled, like
plaintext by default) raises ``wsgiauth.exceptions.UnsupportedHashError``, its subclass. A malformed hash never
verifies. Every comparison of a computed digest with a stored one is constant-time.

NUL bytes: Apache hands passwords to its hash routines as C strings (mod_wsgi too), and HMAC-based formats cannot
tell ``b"pw"`` from ``b"pw\\x00"``; so a password containing a NUL byte never verifies, whatever the format (the
hash is still computed, so such a request costs what any other costs), and ``hash_password`` refuses one.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading

from .exceptions import InvalidHashError, UnsupportedHashError

# What an auth script imports must stay small (every Apache child pays it; docs/benchmarks.md, "Memory"): hashlib
# and hmac (OpenSSL's libcrypto), secrets, bcrypt, argon2 and the Django/Werkzeug schemes (wsgiauth._webhashes) are
# imported by the functions that need them, on first use, and so is the core (wsgiauth._lowlevel: the compiled
# wsgiauth._native or its fallback, and libxcrypt opened on first use), which a store of Django or Werkzeug hashes
# never uses. {SHA} and the Digest HA1 use CPython's built-in SHA-1 and MD5 (no OpenSSL), and the constant-time
# comparison is hmac.compare_digest's own C function, taken from where hmac takes it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Final

    import argon2

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

#: The rounds of a ``$5$``/``$6$`` hash that names none (the SHA-crypt specification's, libxcrypt's default).
_SHA_CRYPT_ROUNDS: Final = 5000
_DUMMY_PASSWORD: Final = b"wsgiauth dummy password"
#: The crypt alphabet (``_lowlevel.APR1_SALT_CHARS``), here so that using it does not load the C core.
_ITOA64: Final = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_B64 = "./0-9A-Za-z"
_DES_RE: Final = re.compile(rf"[{_B64}]{{13}}")
_BSDI_RE: Final = re.compile(rf"_[{_B64}]{{19}}")
_BCRYPT_RE: Final = re.compile(rf"\$2([abxy])\$([0-9][0-9])\$[{_B64}]{{53}}")
_SHA1_RE: Final = re.compile(r"\{SHA\}[A-Za-z0-9+/]{27}=")
_ARGON2_RE: Final = re.compile(
    r"\$(argon2id|argon2i)\$v=([0-9]{1,3})\$m=([0-9]{1,10}),t=([0-9]{1,10}),p=([0-9]{1,3})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)"
)
_ROUNDS_RE: Final = re.compile(r"\$[56]\$rounds=([0-9]{1,10})\$")


# ---------------------------------------------------------------------------------------------------- helpers


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare two byte strings in constant time (no early exit; ``b`` is the expected value).

    This is ``hmac.compare_digest``, the routine ``verify`` uses too (docs/benchmarks.md says why not wsgiauth's C
    ``wa_ct_equal``).

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


def _ha1_with(md5: Callable[[bytes], Any]) -> Callable[[bytes, bytes, bytes], str]:
    """``ha1`` computed with the MD5 constructor ``md5`` (benchmarks/bench_hashes.py times it with hashlib's)."""

    def ha1(user: bytes, realm: bytes, password: bytes) -> str:
        """The HTTP Digest HA1 that ``htdigest`` stores: lowercase hex MD5 of ``user:realm:password``.

        The three parts are fed to MD5 one after the other, never joined. MD5 is CPython's built-in ``_md5`` (it
        does not load OpenSSL; docs/benchmarks.md compares it with hashlib's and wsgiauth's C routine).

        Args:
            user: the raw user name bytes.
            realm: the raw realm bytes (Apache's ``AuthName``).
            password: the raw password bytes.

        Returns:
            32 lowercase hex digits.

        Raises:
            TypeError: an argument is not ``bytes``.
        """
        h = md5(user)  # raises TypeError for str
        h.update(b":")
        h.update(realm)
        h.update(b":")
        h.update(password)
        return str(h.hexdigest())

    return ha1


ha1: Final = _ha1_with(_md5)


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


def _salt_chars(n: int, alphabet: str = _ITOA64) -> str:
    import secrets

    return "".join(secrets.choice(alphabet) for _ in range(n))


# ---------------------------------------------------------------------------------------------------- apr1, {SHA}


def _verify_apr1(password: bytes, stored: str) -> bool:
    return _lowlevel.apr1_verify(password, _ascii(stored))


def _hash_apr1(password: bytes, *, salt: str | None = None) -> str:
    salt = _salt_chars(8) if salt is None else salt
    return _lowlevel.apr1_hash(password, salt.encode("ascii", "replace"))


def _verify_sha1(password: bytes, stored: str) -> bool:
    if not _SHA1_RE.fullmatch(stored):
        raise InvalidHashError("malformed {SHA} hash")
    return _ct_equal(_sha1(password).digest(), binascii.a2b_base64(stored[5:]))  # the pattern checked the base64


def _hash_sha1(password: bytes) -> str:
    return "{SHA}" + base64.b64encode(_sha1(password).digest()).decode("ascii")


# ---------------------------------------------------------------------------------------------------- bcrypt


def _bcrypt_parts(stored: str) -> tuple[str, int]:
    """The variant letter (``a``, ``b``, ``x``, ``y``) and cost of a bcrypt hash.

    Raises:
        InvalidHashError: not a bcrypt hash, or a cost outside 4..31.
    """
    m = _BCRYPT_RE.fullmatch(stored)
    if m is None:
        raise InvalidHashError("malformed bcrypt hash")
    cost = int(m.group(2))
    if not 4 <= cost <= 31:
        raise InvalidHashError("malformed bcrypt hash: cost outside 4..31")
    return m.group(1), cost


def _bcrypt_params(stored: str) -> dict[str, Any]:
    return {"cost": _bcrypt_parts(stored)[1]}


def _verify_bcrypt(password: bytes, stored: str) -> bool:
    """bcrypt as Apache checks it: crypt_blowfish (through libxcrypt), compared in constant time."""
    _bcrypt_parts(stored)
    return _lowlevel.crypt_verify(password[:72], stored.encode("ascii"))  # crypt_blowfish reads 72 bytes


def _hash_bcrypt(password: bytes, *, cost: int, prefix: str = "$2y$") -> str:
    if not isinstance(cost, int) or not 4 <= cost <= 31:
        raise ValueError("bcrypt cost must be an int from 4 to 31 (htpasswd -C offers 4 to 17)")
    import bcrypt as _bcrypt

    raw = _bcrypt.hashpw(password[:72], _bcrypt.gensalt(rounds=cost, prefix=b"2b"))
    return prefix + raw.decode("ascii")[4:]  # the same algorithm; $2y$ is what htpasswd -B writes


def _dummy_bcrypt(like: str) -> str:
    return _lowlevel.crypt(_DUMMY_PASSWORD, like.encode("ascii"))  # same variant and cost, checked the same way


# ---------------------------------------------------------------------------------------------------- libxcrypt


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


def _sha_crypt_params(stored: str) -> dict[str, Any]:
    m = _ROUNDS_RE.match(stored)
    return {"rounds": int(m.group(1)) if m else _SHA_CRYPT_ROUNDS}


def _yescrypt_params(stored: str) -> dict[str, Any]:
    """The parameter field of ``$y$``/``$gy$`` (``j9T``: flavor, N, r), as libxcrypt's ``crypt_gensalt`` writes it."""
    fields = stored.split("$")
    return {"setting": fields[2] if len(fields) > 2 else ""}


def _scrypt_crypt_params(stored: str) -> dict[str, Any]:
    return {"setting": stored[3:14]}  # N, r, p


def _crypt_is_legacy(stored: str) -> bool:
    """libxcrypt calls the method legacy (``$1$``, BSDi ...): replace such a hash whatever its parameters."""
    return _lowlevel.crypt_checksalt(stored.encode("ascii")) != _lowlevel.CRYPT_SALT_OK


def _sha_crypt_wanted(params: dict[str, Any]) -> dict[str, Any]:
    return {"rounds": int(params.get("rounds") or _SHA_CRYPT_ROUNDS)}


def _yescrypt_wanted(params: dict[str, Any]) -> dict[str, Any]:
    setting = _lowlevel.crypt_gensalt(b"$y$", int(params.get("cost") or 0))
    return {"setting": setting.split(b"$")[2].decode("ascii")}


def _dummy_crypt(like: str) -> str:
    # libxcrypt takes a whole hash as the setting: same method, cost and salt length, a known password.
    return _lowlevel.crypt(_DUMMY_PASSWORD, _check_crypt_setting(like))


def _crypt_with(password: bytes, setting: bytes) -> str:
    try:
        return _lowlevel.crypt(password, setting)
    except InvalidHashError as exc:
        raise ValueError(str(exc)) from None


def _hash_des(password: bytes) -> str:
    return _crypt_with(password, _salt_chars(2).encode("ascii"))


def _hash_md5_crypt(password: bytes) -> str:
    return _crypt_with(password, _lowlevel.crypt_gensalt(b"$1$"))


def _hash_sha256_crypt(password: bytes, *, rounds: int | None) -> str:
    return _crypt_with(password, _lowlevel.crypt_gensalt(b"$5$", rounds or 0))


def _hash_sha512_crypt(password: bytes, *, rounds: int | None) -> str:
    return _crypt_with(password, _lowlevel.crypt_gensalt(b"$6$", rounds or 0))


def _hash_yescrypt(password: bytes, *, cost: int | None = None) -> str:
    return _crypt_with(password, _lowlevel.crypt_gensalt(b"$y$", cost or 0))


# ---------------------------------------------------------------------------------------------------- argon2


def _argon2_parts(stored: str) -> tuple[dict[str, Any], bytes, bytes]:
    """The parameters of an argon2 hash (under argon2-cffi's names: what its ``check_needs_rehash`` compares), its
    salt and its digest.

    Raises:
        InvalidHashError: malformed, or parameters out of range (memory above MAX_ARGON2_MEMORY_KIB ...).
    """
    m = _ARGON2_RE.fullmatch(stored)
    if m is None:
        raise InvalidHashError("malformed argon2 hash")
    import argon2.low_level

    version, memory, time_cost, parallelism = (int(m.group(i)) for i in range(2, 6))
    salt = _b64decode(m.group(6), padded=False)
    digest = _b64decode(m.group(7), padded=False)
    if (version not in (16, 19) or not 1 <= parallelism <= 255 or not 8 * parallelism <= memory
            <= MAX_ARGON2_MEMORY_KIB or not 1 <= time_cost <= 1000 or len(salt) < 8 or len(digest) < 4):
        raise InvalidHashError("malformed argon2 hash: parameters out of range")
    variant = argon2.low_level.Type.ID if m.group(1) == "argon2id" else argon2.low_level.Type.I
    params = {"type": variant, "version": version, "memory_cost": memory, "time_cost": time_cost,
              "parallelism": parallelism, "salt_len": len(salt), "hash_len": len(digest)}
    return params, salt, digest


def _argon2_params(stored: str) -> dict[str, Any]:
    return _argon2_parts(stored)[0]


def _verify_argon2(password: bytes, stored: str) -> bool:
    p, salt, digest = _argon2_parts(stored)
    import argon2.exceptions
    import argon2.low_level

    try:
        computed = argon2.low_level.hash_secret_raw(
            password, salt, time_cost=p["time_cost"], memory_cost=p["memory_cost"], parallelism=p["parallelism"],
            hash_len=len(digest), type=p["type"], version=p["version"],
        )
    except argon2.exceptions.HashingError as exc:
        raise InvalidHashError(f"unusable argon2 hash: {exc}") from None
    return _ct_equal(computed, digest)


def _argon2_hasher(params: dict[str, Any]) -> argon2.PasswordHasher:
    allowed = {"time_cost", "memory_cost", "parallelism", "hash_len", "salt_len"}
    unknown = set(params) - allowed
    if unknown:
        raise TypeError(f"unknown argon2 parameters: {sorted(unknown)}")
    import argon2.low_level

    return argon2.PasswordHasher(type=argon2.low_level.Type.ID, **params)


def _hash_argon2(password: bytes, **params: Any) -> str:
    return _argon2_hasher(params).hash(password)


def _argon2_wanted(params: dict[str, Any]) -> dict[str, Any]:
    h = _argon2_hasher(params)
    import argon2.low_level

    return {"type": h.type, "version": argon2.low_level.ARGON2_VERSION, "memory_cost": h.memory_cost,
            "time_cost": h.time_cost, "parallelism": h.parallelism, "salt_len": h.salt_len, "hash_len": h.hash_len}


def _dummy_argon2(like: str) -> str:
    p = _argon2_params(like)
    import argon2

    hasher = argon2.PasswordHasher(time_cost=p["time_cost"], memory_cost=p["memory_cost"],
                                   parallelism=p["parallelism"], hash_len=p["hash_len"], salt_len=p["salt_len"],
                                   type=p["type"])
    return hasher.hash(_DUMMY_PASSWORD)


# ---------------------------------------------------------------------------------------------------- plaintext


def _verify_plaintext(password: bytes, stored: str) -> bool:
    return _ct_equal(password, stored.encode("utf-8"))


def _dummy_plaintext(like: str) -> str:
    return _DUMMY_PASSWORD.decode("ascii")


# ---------------------------------------------------------------------------------------------------- the table


class _Scheme:
    """One row of the scheme table: what wsgiauth knows about one hash format.

    Attributes:
        name: what ``identify`` returns (one of ``SCHEMES``).
        prefixes: a hash of this scheme starts with one of these (``("",)``: the scheme has no prefix).
        form: a further test of a hash that has the prefix (``None``: the prefix suffices).
        creatable: ``make`` is not ``None`` (known without loading a lazy row).
        verify: ``verify(password, stored)`` -> whether the password (without NUL bytes) matches. Raises
            ``InvalidHashError`` (or ``UnsupportedHashError``) for a stored hash it cannot check.
        check: ``check(stored)`` raises as ``verify`` would for a malformed hash, without computing one (``None``:
            ``params`` checks the hash, or, for a scheme without parameters, verifying an empty password does).
        make: ``make(password, **params)`` -> a new hash; called with ``defaults`` under the given parameters.
            Raises ``TypeError`` for an unknown parameter, ``ValueError`` for a value out of range. ``None``: this
            scheme is not created here.
        defaults: the parameters of a new hash when not given, and what ``needs_update`` compares with.
        params: ``params(stored)`` -> the cost parameters of a stored hash under ``make``'s names (never its salt).
            Raises ``InvalidHashError`` for a malformed hash, or one above the caps (``MAX_PBKDF2_ITERATIONS`` ...),
            as far as it reads (``check`` does the rest). ``None``: the scheme has no parameters.
        at_least: the parameters for which more is stronger, compared as one tuple in this order: a stored hash
            below the wanted tuple needs an update. Every other parameter must be equal to the wanted one.
        wanted: ``wanted(defaults | params)`` -> the wanted parameters in the form ``params`` returns (``None``: as
            given). May raise ``TypeError`` for an unknown parameter.
        legacy: ``legacy(stored)`` -> whether the hash is of a variant to replace whatever its parameters.
        dummy: ``dummy(like)`` -> a hash of a known password that costs what ``like`` costs to verify (``None``:
            ``make`` with the parameters of ``like``).
    """

    __slots__ = ("at_least", "check", "creatable", "defaults", "dummy", "form", "legacy", "make", "name", "params",
                 "prefixes", "verify", "wanted")
    name: str
    prefixes: tuple[str, ...]
    form: Callable[[str], object] | None
    creatable: bool
    verify: Callable[[bytes, str], bool]
    check: Callable[[str], object] | None
    make: Callable[..., str] | None
    defaults: dict[str, Any]
    params: Callable[[str], dict[str, Any]] | None
    at_least: tuple[str, ...]
    wanted: Callable[[dict[str, Any]], dict[str, Any]] | None
    legacy: Callable[[str], bool] | None
    dummy: Callable[[str], str] | None

    def __init__(self, name: str, prefixes: tuple[str, ...], *, form: Callable[[str], object] | None = None,
                 **row: Any) -> None:
        self.name, self.prefixes, self.form = name, prefixes, form
        self._fill(**row)
        self.creatable = self.make is not None

    def _fill(self, *, verify: Callable[[bytes, str], bool], check: Callable[[str], object] | None = None,
              make: Callable[..., str] | None = None,
              defaults: dict[str, Any] | None = None, params: Callable[[str], dict[str, Any]] | None = None,
              at_least: tuple[str, ...] = (), wanted: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
              legacy: Callable[[str], bool] | None = None, dummy: Callable[[str], str] | None = None) -> None:
        self.verify, self.check, self.make, self.defaults, self.params = verify, check, make, defaults or {}, params
        self.at_least, self.wanted, self.legacy, self.dummy = at_least, wanted, legacy, dummy

    def __repr__(self) -> str:
        return f"<hash scheme {self.name}>"


class _LazyScheme(_Scheme):
    """A row whose code is in ``wsgiauth._webhashes`` (Django's and Werkzeug's formats).

    Only what ``identify`` needs is here; the first use of anything else imports the module and fills the row in
    from ``_webhashes.ROWS[name]`` (the same keyword arguments as ``_Scheme``; filling twice is harmless).
    """

    __slots__ = ()

    def __init__(self, name: str, prefixes: tuple[str, ...], *, form: Callable[[str], object] | None = None,
                 creatable: bool = True) -> None:
        self.name, self.prefixes, self.form, self.creatable = name, prefixes, form, creatable

    def __getattr__(self, attr: str) -> Any:  # called only for a slot not filled in yet
        if attr not in _Scheme.__slots__:
            raise AttributeError(attr)
        from . import _webhashes

        self._fill(**_webhashes.ROWS[self.name])
        return getattr(self, attr)


_CRYPT: Final[dict[str, Any]] = {"verify": _verify_crypt, "check": _check_crypt_setting, "dummy": _dummy_crypt}
_SHA_CRYPT: Final[dict[str, Any]] = {
    **_CRYPT, "defaults": {"rounds": _SHA_CRYPT_ROUNDS}, "params": _sha_crypt_params, "at_least": ("rounds",),
    "wanted": _sha_crypt_wanted,
}

#: Every scheme ``identify`` recognises, tried in this order (``_scheme_of`` looks the ``$...$``/``{...}`` ones up by
#: that field at once). Plaintext, the fallback, is not in it.
_TABLE: Final[tuple[_Scheme, ...]] = (
    _Scheme("apr1", ("$apr1$",), verify=_verify_apr1, make=_hash_apr1),
    _Scheme("sha1", ("{SHA}",), verify=_verify_sha1, make=_hash_sha1),
    _Scheme("bcrypt", ("$2a$", "$2b$", "$2y$", "$2x$"), verify=_verify_bcrypt, make=_hash_bcrypt,
            defaults={"cost": BCRYPT_DEFAULT_COST}, params=_bcrypt_params, at_least=("cost",),
            legacy=lambda stored: stored.startswith("$2x$"), dummy=_dummy_bcrypt),
    _Scheme("md5_crypt", ("$1$",), **_CRYPT, make=_hash_md5_crypt, legacy=_crypt_is_legacy),
    _Scheme("sha256_crypt", ("$5$",), **_SHA_CRYPT, make=_hash_sha256_crypt),
    _Scheme("sha512_crypt", ("$6$",), **_SHA_CRYPT, make=_hash_sha512_crypt),
    _Scheme("yescrypt", ("$y$",), **_CRYPT, make=_hash_yescrypt, params=_yescrypt_params, wanted=_yescrypt_wanted),
    _Scheme("gost_yescrypt", ("$gy$",), **_CRYPT, params=_yescrypt_params, legacy=_crypt_is_legacy),
    _Scheme("scrypt_crypt", ("$7$",), **_CRYPT, params=_scrypt_crypt_params, legacy=_crypt_is_legacy),
    _Scheme("argon2", ("$argon2id$", "$argon2i$"), verify=_verify_argon2, make=_hash_argon2, params=_argon2_params,
            wanted=_argon2_wanted, dummy=_dummy_argon2),
    _LazyScheme("django_pbkdf2_sha256", ("pbkdf2_sha256$",)),
    _LazyScheme("django_pbkdf2_sha1", ("pbkdf2_sha1$",)),
    _LazyScheme("werkzeug_pbkdf2", ("pbkdf2:", "pbkdf2$")),
    _LazyScheme("werkzeug_scrypt", ("scrypt:", "scrypt$"), form=lambda stored: stored.count("$") == 2),
    _LazyScheme("django_argon2", ("argon2$argon2id$", "argon2$argon2i$")),
    _LazyScheme("django_bcrypt_sha256", ("bcrypt_sha256$$2",)),
    _LazyScheme("django_bcrypt", ("bcrypt$$2",), creatable=False),
    _LazyScheme("django_scrypt", ("scrypt$",), form=lambda stored: stored.count("$") == 5),
    _Scheme("des", ("",), form=_DES_RE.fullmatch, **_CRYPT, make=_hash_des),
    _Scheme("bsdi_crypt", ("",), form=_BSDI_RE.fullmatch, **_CRYPT, legacy=_crypt_is_legacy),
)


def _is_field(prefix: str) -> bool:
    """Whether ``prefix`` is a whole scheme field: ``$name$`` or ``{NAME}``."""
    return (prefix[:1] == prefix[-1:] == "$" and prefix.count("$") == 2) or (prefix[:1] == "{" and prefix[-1:] == "}")


#: The rows whose prefixes are whole scheme fields (and that need no other test), by field.
_BY_FIELD: Final = {prefix: row for row in _TABLE if row.form is None and all(map(_is_field, row.prefixes))
                    for prefix in row.prefixes}
#: The others, tried in table order.
_UNFIELDED: Final = tuple(row for row in _TABLE if row not in _BY_FIELD.values())
_PLAINTEXT: Final = _Scheme("plaintext", (), verify=_verify_plaintext, dummy=_dummy_plaintext)
_BY_NAME: Final = {row.name: row for row in (*_TABLE, _PLAINTEXT)}
#: The hash of an unknown user when the store shows no hash of its own (Apache's default format).
_DEFAULT_DUMMY: Final = _BY_NAME["apr1"]

#: Known formats not verified here: they must never fall through to plaintext. Each with the family it belongs to.
_UNSUPPORTED: Final = (
    ("$argon2d$", "argon2d"), ("$sha1$", "sha1_crypt"), ("$md5", "sun_md5_crypt"), ("$3$", "bsd_nthash"),
    ("$nt$", "bsd_nthash"), ("argon2$", "django_argon2"), ("bcrypt_sha256$", "django_bcrypt_sha256"),
    ("bcrypt$", "django_bcrypt"), ("scrypt$", "django_scrypt"), ("sha1$", "django_salted_sha1"),
    ("md5$", "django_salted_md5"), ("unsalted_md5$", "django_unsalted_md5"), ("unsalted_sha1$", "django_unsalted_sha1"),
    ("crypt$", "django_crypt"), ("sha256$", "werkzeug_sha256"), ("sha512$", "werkzeug_sha512"),
    ("plain$", "werkzeug_plain"),
)

#: Every scheme ``identify`` can return.
SCHEMES: Final = tuple(sorted(_BY_NAME))
#: The schemes ``hash_password`` can create (a subset of ``SCHEMES``).
CREATABLE_SCHEMES: Final = tuple(sorted(row.name for row in _BY_NAME.values() if row.creatable))


def _unsupported(family: str) -> UnsupportedHashError:
    """The error for a hash of a known format that wsgiauth does not verify.

    Args:
        family: the format's name (``_UNSUPPORTED``).

    Returns:
        The error; its message names the family only, never a character of the stored hash (the adapter logs the
        message, and a hash's salt and first characters are secrets too).
    """
    return UnsupportedHashError(f"unsupported hash scheme {family!r}")


def _scheme_of(stored: str) -> _Scheme:
    """The table row of ``stored`` (see ``identify``, which returns its name, for what is raised)."""
    if not isinstance(stored, str):
        raise TypeError(f"a stored hash is a str, not {type(stored).__name__}")
    if not stored:
        raise InvalidHashError("empty hash")
    if "\x00" in stored or "\n" in stored or "\r" in stored:
        raise InvalidHashError("malformed hash: control characters")
    first = stored[0]
    if first == "$":  # $apr1$, $2y$, $6$ ...: one lookup of the scheme field
        row = _BY_FIELD.get(stored[:stored.find("$", 1) + 1])
    elif first == "{":
        row = _BY_FIELD.get(stored[:stored.find("}") + 1])
    else:
        row = None
    if row is not None:
        return row
    for row in _UNFIELDED:
        if stored.startswith(row.prefixes) and (row.form is None or row.form(stored)):
            return row
    for prefix, family in _UNSUPPORTED:
        if stored.startswith(prefix):
            raise _unsupported(family)
    if stored[0] in "!*":
        raise UnsupportedHashError("locked or unusable password marker")
    if stored[0] in "${":
        raise UnsupportedHashError("unknown hash scheme")
    return _PLAINTEXT


# ---------------------------------------------------------------------------------------------------- the API


def identify(stored: str) -> str:
    """Name the scheme of a stored hash (by its form; ``verify`` checks the rest of the syntax).

    Args:
        stored: the stored hash, as in the credential store.

    Returns:
        One of ``SCHEMES``: ``"apr1"``, ``"bcrypt"``, ``"sha1"``, ``"des"``, ``"md5_crypt"``, ``"sha256_crypt"``,
        ``"sha512_crypt"``, ``"yescrypt"``, ``"argon2"``, ``"django_pbkdf2_sha256"``, ``"django_pbkdf2_sha1"``,
        ``"django_argon2"``, ``"django_bcrypt_sha256"``, ``"django_bcrypt"``, ``"django_scrypt"``,
        ``"werkzeug_pbkdf2"``, ``"werkzeug_scrypt"`` ..., or ``"plaintext"`` for a string that has no hash form.

    Raises:
        TypeError: ``stored`` is not a ``str``.
        InvalidHashError: ``stored`` is empty or holds a NUL or line break.
        UnsupportedHashError: ``stored`` has the form of a known scheme that is not supported (``$argon2d$``,
            Django's ``sha1$`` ...), starts with ``$`` or ``{`` followed by an unknown scheme, or is a locked or
            unusable marker (``!``, ``*``).
    """
    return _scheme_of(stored).name


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
    row = _scheme_of(stored)
    if row is _PLAINTEXT and not allow_plaintext:
        raise UnsupportedHashError("plaintext passwords are not enabled (allow_plaintext=False)")
    if b"\x00" in password:
        # Apache would see the password cut at the NUL: do that work, but never grant such a request.
        row.verify(password.split(b"\x00", 1)[0], stored)
        return False
    return row.verify(password, stored)


def hash_password(password: bytes, scheme: str = "bcrypt", **params: Any) -> str:
    """Create a hash of ``password``.

    Args:
        password: the raw password bytes.
        scheme: ``"bcrypt"`` (default: ``$2y$`` as ``htpasswd -B`` writes, param ``cost``, default
            ``BCRYPT_DEFAULT_COST``; only the first 72 bytes count, as in Apache), ``"apr1"`` (``salt``),
            ``"sha1"``, ``"des"``, ``"md5_crypt"``, ``"sha256_crypt"``/``"sha512_crypt"`` (``rounds``, default
            5000), ``"yescrypt"`` (``cost``), ``"argon2"`` (argon2id: ``time_cost``, ``memory_cost``,
            ``parallelism``, argon2-cffi's defaults), ``"django_pbkdf2_sha256"``/``"django_pbkdf2_sha1"``
            (``iterations``, default ``PBKDF2_DEFAULT_ITERATIONS``, ``salt``), ``"werkzeug_pbkdf2"``
            (``iterations``, ``hash_name``), ``"werkzeug_scrypt"`` (``n``, ``r``, ``p``), ``"django_argon2"`` (as
            argon2), ``"django_bcrypt_sha256"`` (``cost``, default ``DJANGO_BCRYPT_DEFAULT_COST``),
            ``"django_scrypt"`` (``n``, ``r``, ``p``). For files Apache reads use bcrypt (or apr1, sha*_crypt);
            argon2 and the framework formats are for stores only wsgiauth (or that framework) reads.
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
    row = _BY_NAME.get(scheme)
    if row is None or not row.creatable or row.make is None:
        raise UnsupportedHashError(f"cannot create {scheme!r} hashes; choose one of {', '.join(CREATABLE_SCHEMES)}")
    if b"\x00" in password:
        raise ValueError("a password cannot contain a NUL byte (Apache reads passwords as C strings)")
    return row.make(password, **{**row.defaults, **params})


def needs_update(stored: str, scheme: str = "bcrypt", **params: Any) -> bool:
    """Whether ``stored`` should be replaced by a fresh hash of ``scheme`` with ``params`` (at the next login).

    Args:
        stored: the stored hash.
        scheme: the scheme wanted (as in ``hash_password``).
        **params: the wanted parameters (as in ``hash_password``); defaults as there.

    Returns:
        ``True`` when ``stored`` is of another scheme, has weaker parameters (bcrypt cost, ``rounds``,
        ``iterations``, Werkzeug scrypt ``n``/``r``/``p``) or other parameters (argon2, yescrypt, Django scrypt: any
        difference, as argon2-cffi's ``check_needs_rehash`` and Django's ``must_update``), is of a variant
        libxcrypt calls legacy (``$1$``; DES is exempt when asked for) or bcrypt ``$2x$``, or is
        malformed/unsupported (it can never verify, so it must be replaced); ``False`` otherwise.

    Raises:
        TypeError: ``stored`` is not a ``str``, or an argon2 parameter is unknown.
    """
    try:
        row = _scheme_of(stored)
        if row.name != scheme:
            return True
        if row.check is not None:
            row.check(stored)
        elif row.params is None:
            row.verify(b"", stored)  # a syntax check: a malformed hash raises
        have = row.params(stored) if row.params is not None else {}
        if row.legacy is not None and row.legacy(stored):
            return True
        want = {**row.defaults, **params}
        if row.wanted is not None:
            want = row.wanted(want)
        if any(name in want and type(value)(want[name]) != value
               for name, value in have.items() if name not in row.at_least):
            return True
        return tuple(have[name] for name in row.at_least) < tuple(int(want[name]) for name in row.at_least)
    except InvalidHashError:
        return True


# ---------------------------------------------------------------------------------------------------- timing


_dummies: dict[tuple[Any, ...], str] = {}
_dummies_lock = threading.Lock()
_MAX_DUMMIES: Final = 64


def _cost_of(stored: str) -> tuple[_Scheme, dict[str, Any]]:
    """The row and cost parameters of ``stored``: hashes with the same two cost the same to verify.

    Raises:
        InvalidHashError: ``stored`` is malformed or unsupported.
        TypeError: ``stored`` is not a ``str``.
    """
    row = _scheme_of(stored)
    return row, (row.params(stored) if row.params is not None else {})


def _cost_key(stored: str) -> tuple[Any, ...] | None:
    """What makes hashes cost the same to verify: the scheme and its cost parameters, not the salt.

    Args:
        stored: a stored hash.

    Returns:
        A hashable key (``("bcrypt", ("cost", 10))``), or ``None`` for a hash that can never verify. Never raises.
    """
    try:
        row = _scheme_of(stored)
        return (row.name,) if row.params is None else (row.name, *row.params(stored).items())
    except (InvalidHashError, TypeError):
        return None


def _make_dummy(row: _Scheme, params: dict[str, Any], like: str) -> str:
    """A hash of a known password with the cost of ``like`` (of scheme ``row``, with cost ``params``)."""
    if row.dummy is not None:
        return row.dummy(like)
    if row.make is None:  # pragma: no cover - every row has the one or the other
        raise ValueError(f"no dummy hash for {row.name}")
    return row.make(_DUMMY_PASSWORD, **{**row.defaults, **params})


def _dummy_for(like: str | None) -> str:
    """``_make_dummy`` for ``like`` (for ``_DEFAULT_DUMMY`` when ``like`` is ``None`` or unusable), cached per key."""
    row: _Scheme = _DEFAULT_DUMMY
    params: dict[str, Any] = {}
    if like is not None:
        try:
            row, params = _cost_of(like)
        except (InvalidHashError, TypeError):
            row, params = _DEFAULT_DUMMY, {}
    key = (row.name, *params.items())
    with _dummies_lock:
        dummy = _dummies.get(key)
    if dummy is not None:
        return dummy
    try:
        dummy = _make_dummy(row, params, like or "")
    except (InvalidHashError, ValueError, TypeError):
        row, key = _DEFAULT_DUMMY, (_DEFAULT_DUMMY.name,)
        dummy = _make_dummy(row, {}, "")
    with _dummies_lock:
        if len(_dummies) < _MAX_DUMMIES or row is _DEFAULT_DUMMY:
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
