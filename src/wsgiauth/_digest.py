"""HTTP Digest authentication (RFC 7616) for the WSGI middleware: header parsing, nonces, response
computation.

The pieces are small and named after the RFC:

* `parse_params` reads an ``auth-param`` list (``name=token`` or ``name="quoted string"``);
* `parse_authorization` turns an ``Authorization: Digest ...`` header into `DigestCredentials`,
  raising `DigestError` for anything malformed;
* `NonceKeeper` issues nonces carrying an HMAC-signed timestamp, recognises expired ones
  (``stale=true``) and refuses a nonce-count that was already used with a nonce (replay protection);
* `ALGORITHMS` maps the algorithm names to hash functions, and `expected_response` computes the
  ``response`` value a client must send.

Only ``qop=auth`` is supported (``auth-int`` needs the body before the application runs, and RFC 2069's
no-qop mode has no replay protection), and ``userhash`` is not offered.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

__all__ = [
    "ALGORITHMS",
    "DigestCredentials",
    "DigestError",
    "NonceKeeper",
    "NonceState",
    "challenge",
    "expected_response",
    "parse_authorization",
    "parse_params",
]

#: Algorithm name (as written in headers, compared case-insensitively) -> hash function giving hex digests.
ALGORITHMS: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda data: hashlib.md5(data).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
}

_MAX_HEADER = 8192
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class DigestError(ValueError):
    """A Digest ``Authorization`` header is malformed or incomplete."""


def canonical_algorithm(name: str) -> str | None:
    """The canonical spelling (``MD5``, ``MD5-sess``, ``SHA-256``, ``SHA-256-sess``), else ``None``."""
    upper = name.upper()
    sess = upper.endswith("-SESS")
    base = upper[:-5] if sess else upper
    for known in ALGORITHMS:
        if known == base:
            return known + ("-sess" if sess else "")
    return None


def parse_params(text: str) -> dict[str, str]:
    """Parse a comma-separated ``auth-param`` list into a dict with lower-case names.

    Values are tokens or quoted strings (backslash escapes a character). Empty list elements are allowed, as
    in HTTP's list syntax.

    Args:
        text: the part of the header after the scheme name.

    Returns:
        The parameters by lower-case name.

    Raises:
        DigestError: on a syntax error or a repeated parameter.
    """
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t,":
            i += 1
        if i >= n:
            return params
        start = i
        while i < n and text[i] in _TOKEN_CHARS:
            i += 1
        name = text[start:i].lower()
        if not name:
            raise DigestError(f"expected a parameter name at offset {start}")
        while i < n and text[i] in " \t":
            i += 1
        if i >= n or text[i] != "=":
            raise DigestError(f"parameter {name!r} has no value")
        i += 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise DigestError(f"unterminated quoted value for {name!r}")
                c = text[i]
                if c == "\\":
                    if i + 1 >= n:
                        raise DigestError(f"unterminated quoted value for {name!r}")
                    chars.append(text[i + 1])
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                chars.append(c)
                i += 1
            value = "".join(chars)
        else:
            start = i
            while i < n and text[i] in _TOKEN_CHARS:
                i += 1
            value = text[start:i]
            if not value:
                raise DigestError(f"parameter {name!r} has an empty value")
        if name in params:
            raise DigestError(f"parameter {name!r} is repeated")
        params[name] = value
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] != ",":
            raise DigestError(f"expected ',' after parameter {name!r}")


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """The fields of an ``Authorization: Digest`` header (RFC 7616 section 3.4).

    ``username`` holds the raw bytes of the user name: latin-1 bytes of ``username="..."``, or the decoded
    ``username*`` (RFC 8187 ``UTF-8''...``) when the client used that form.
    """

    username: bytes
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str
    qop: str
    nc: int
    nc_text: str
    cnonce: str
    opaque: str | None


def _ext_value(value: str) -> bytes:
    """Decode an RFC 8187 ext-value (``UTF-8''%c3%a9``) to bytes."""
    charset, sep, rest = value.partition("'")
    if not sep or charset.lower() not in ("utf-8", "iso-8859-1"):
        raise DigestError("username* is not an RFC 8187 UTF-8 or ISO-8859-1 value")
    _lang, sep, encoded = rest.partition("'")
    if not sep:
        raise DigestError("username* is not an RFC 8187 value")
    raw = unquote_to_bytes(encoded)
    if charset.lower() == "iso-8859-1":
        raw = raw.decode("latin-1").encode("utf-8")
    return raw


def parse_authorization(header: str) -> DigestCredentials:
    """Parse the value of an ``Authorization`` header using the Digest scheme.

    Args:
        header: the whole header value, starting with ``Digest``.

    Returns:
        The credentials.

    Raises:
        DigestError: the header is not Digest, is malformed, lacks a required parameter, uses an unsupported
            qop or algorithm, or asks for ``userhash``.
    """
    if len(header) > _MAX_HEADER:
        raise DigestError("header too long")
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError("not a Digest header")
    p = parse_params(rest)
    for required in ("realm", "nonce", "uri", "response"):
        if required not in p:
            raise DigestError(f"missing parameter {required!r}")
    if "username" in p and "username*" in p:
        raise DigestError("both username and username* given")
    if "username*" in p:
        username = _ext_value(p["username*"])
    elif "username" in p:
        try:
            username = p["username"].encode("latin-1")
        except UnicodeEncodeError:
            username = p["username"].encode("utf-8")
    else:
        raise DigestError("missing parameter 'username'")
    if p.get("userhash", "false").lower() == "true":
        raise DigestError("userhash is not supported")
    algorithm = canonical_algorithm(p.get("algorithm", "MD5"))
    if algorithm is None:
        raise DigestError(f"unsupported algorithm {p.get('algorithm')!r}")
    qop = p.get("qop")
    if qop is None:
        raise DigestError("qop is required (RFC 2069 digests are not accepted)")
    if qop.lower() != "auth":
        raise DigestError(f"unsupported qop {qop!r}")
    if "cnonce" not in p or "nc" not in p:
        raise DigestError("qop=auth requires cnonce and nc")
    nc_text = p["nc"]
    if len(nc_text) != 8 or any(c not in "0123456789abcdefABCDEF" for c in nc_text):
        raise DigestError("nc must be 8 hexadecimal digits")
    response = p["response"].lower()
    if not response or any(c not in "0123456789abcdef" for c in response):
        raise DigestError("response is not hexadecimal")
    return DigestCredentials(
        username=username, realm=p["realm"], nonce=p["nonce"], uri=p["uri"], response=response,
        algorithm=algorithm, qop="auth", nc=int(nc_text, 16), nc_text=nc_text, cnonce=p["cnonce"],
        opaque=p.get("opaque"),
    )


def session_ha1(creds: DigestCredentials, ha1: str) -> str:
    """HA1 as used in the response: for ``-sess`` algorithms ``H(HA1:nonce:cnonce)``, else HA1 itself."""
    if not creds.algorithm.endswith("-sess"):
        return ha1
    h = ALGORITHMS[creds.algorithm[:-5]]
    return h(f"{ha1}:{creds.nonce}:{creds.cnonce}".encode("latin-1", "replace"))


def expected_response(creds: DigestCredentials, ha1: str, method: str) -> str:
    """The ``response`` a client knowing the password sends (RFC 7616 section 3.4.1, qop=auth).

    Args:
        creds: the parsed header.
        ha1: ``H(username:realm:password)`` in lowercase hex, with the hash of ``creds.algorithm``.
        method: the request method.

    Returns:
        The lowercase hex response.
    """
    base = creds.algorithm[:-5] if creds.algorithm.endswith("-sess") else creds.algorithm
    h = ALGORITHMS[base]
    a1 = session_ha1(creds, ha1)
    ha2 = h(f"{method}:{creds.uri}".encode("latin-1", "replace"))
    data = f"{a1}:{creds.nonce}:{creds.nc_text}:{creds.cnonce}:{creds.qop}:{ha2}"
    return h(data.encode("latin-1", "replace"))


def ha1_for(algorithm: str, user: bytes, realm: bytes, password: bytes) -> str:
    """``H(user:realm:password)`` in lowercase hex for ``algorithm`` (MD5 or SHA-256; ``-sess`` ignored)."""
    base = algorithm[:-5] if algorithm.endswith("-sess") else algorithm
    return ALGORITHMS[base](user + b":" + realm + b":" + password)


class NonceState:
    """What `NonceKeeper.check` concluded about a nonce."""

    VALID = "valid"
    STALE = "stale"  # well signed but expired (or forgotten): the client should retry with stale=true
    INVALID = "invalid"  # not one of ours


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def challenge(realm: str, nonce: str, opaque: str, algorithm: str, *, stale: bool = False) -> str:
    """A ``WWW-Authenticate`` value for the Digest scheme."""
    parts = [f"realm={_quote(realm)}", 'qop="auth"', f"algorithm={algorithm}", f"nonce={_quote(nonce)}",
             f"opaque={_quote(opaque)}"]
    if stale:
        parts.append("stale=true")
    return "Digest " + ", ".join(parts)


class NonceKeeper:
    """Issues and checks nonces; remembers the highest nonce-count used with each, to refuse replays.

    A nonce is ``base64url(timestamp || random || HMAC-SHA256(secret, realm || timestamp || random)[:16])``:
    it can be verified without server state, and expires ``lifetime`` seconds after issue. Replay protection
    needs state: the highest ``nc`` seen per nonce is kept for at most ``max_tracked`` nonces. When an old
    entry is evicted, every nonce issued at or before its time is treated as stale, so a forgotten nonce can
    never be replayed.

    The state is per process: give every worker of a multi-process server the same ``secret`` (otherwise a
    nonce issued by one worker is refused by the others).

    Args:
        realm: the realm the nonces are for (part of the signature).
        secret: the HMAC key (bytes, at least 16); a random one by default.
        lifetime: seconds a nonce stays valid.
        max_tracked: how many nonces' counters are kept.
    """

    def __init__(self, realm: str, *, secret: bytes | None = None, lifetime: float = 300.0,
                 max_tracked: int = 10000) -> None:
        if secret is not None and len(secret) < 16:
            raise ValueError("the Digest nonce secret must be at least 16 bytes")
        if lifetime <= 0:
            raise ValueError("the nonce lifetime must be positive")
        self._secret = secret if secret is not None else os.urandom(32)
        self._realm = realm.encode("utf-8")
        self.lifetime = lifetime
        self.max_tracked = max(1, max_tracked)
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._floor = 0  # nonces issued at or before this time (ns) are stale once forgotten
        self._lock = threading.Lock()
        self.opaque = base64.urlsafe_b64encode(
            hmac.new(self._secret, b"opaque:" + self._realm, hashlib.sha256).digest()[:12]).decode("ascii")

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self._secret, self._realm + b"\x00" + body, hashlib.sha256).digest()[:16]

    def issue(self, now: float | None = None) -> str:
        """A new nonce."""
        stamp = int((time.time() if now is None else now) * 1e9)
        body = struct.pack(">Q", stamp) + os.urandom(8)
        return base64.urlsafe_b64encode(body + self._sign(body)).decode("ascii").rstrip("=")

    def _stamp(self, nonce: str) -> int | None:
        if len(nonce) > 64:
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (ValueError, TypeError):
            return None
        if len(raw) != 32:
            return None
        body, mac = raw[:16], raw[16:]
        if not hmac.compare_digest(mac, self._sign(body)):
            return None
        return int(struct.unpack(">Q", body[:8])[0])

    def check(self, nonce: str, now: float | None = None) -> str:
        """Whether ``nonce`` is ours and fresh: a `NonceState` value. Does not consume a count."""
        stamp = self._stamp(nonce)
        if stamp is None:
            return NonceState.INVALID
        now_ns = int((time.time() if now is None else now) * 1e9)
        if stamp > now_ns + 5 * 10**9 or now_ns - stamp > self.lifetime * 1e9:
            return NonceState.STALE
        with self._lock:
            if nonce not in self._seen and stamp <= self._floor:
                return NonceState.STALE
        return NonceState.VALID

    def use(self, nonce: str, nc: int) -> bool:
        """Record that ``nc`` was used with ``nonce``; ``False`` (a replay) unless it exceeds every earlier one.

        Call it only after the response has been verified, so that forged requests cannot burn counts.
        """
        stamp = self._stamp(nonce)
        if stamp is None or nc < 1:
            return False
        with self._lock:
            last = self._seen.get(nonce)
            if last is None:
                if stamp <= self._floor:
                    return False
            elif nc <= last:
                return False
            self._seen[nonce] = nc
            self._seen.move_to_end(nonce)
            while len(self._seen) > self.max_tracked:
                old, _ = self._seen.popitem(last=False)
                old_stamp = self._stamp(old)
                if old_stamp is not None and old_stamp > self._floor:
                    self._floor = old_stamp
            return True
