"""WSGI middleware: HTTP Basic and Digest (RFC 7616) authentication against any wsgiauth backend.

For applications served outside Apache (gunicorn, waitress, ``wsgiref``), or behind an Apache that does not
authenticate itself::

    from wsgiauth.middleware import AuthMiddleware
    from wsgiauth.backends import htpasswd

    application = AuthMiddleware(app, htpasswd.Backend(users="/etc/wsgiauth/users"), realm="Staff")

A granted request reaches the application with ``REMOTE_USER`` (the canonical name) and ``AUTH_TYPE`` set and
``HTTP_AUTHORIZATION`` removed. Anything else gets a ``401`` with fresh challenges, including a right password for a
user outside ``require_groups`` (as Apache answers ``Require group`` for Basic: a ``403`` there would tell a guesser
that the password was right); only a client refused by the backend's host rules gets a ``403``, and so does every
client when the host rules exist but the environ has no client address (``REMOTE_ADDR`` missing or empty, as gunicorn
on a Unix socket sets it). A malformed header is a ``401``, never a ``500``.

Every scheme is throttled alike. Basic goes through the backend's ``authenticate`` (where a throttle counts and
refuses). Digest checks the response here, so it asks the backend ``refusal(user, client)`` (a throttle in the stack
answers while the user or the address is locked out: the request is refused after the same lookup and hashing as
any other) and reports a wrong response, or an unknown user, with ``record_failure(user, client)``. A right password
for a user outside ``require_groups`` is reported with ``record_failure`` too, whatever the scheme.

``emit_headers=True`` adds ``X-Remote-User`` and ``X-Auth-Type`` to the response so that Apache, running the app
under mod_wsgi or proxying to it, can record the user in its access log (``%u``) through the mod_lua hook shipped as
``wsgiauth/data/reflect_user.lua`` (see `lua_script_path`). Apache's log phase runs after the response has been
sent, so the headers must also be removed on the way out with mod_headers (``Header note`` then ``Header unset``;
``wsgiauth apache-config`` prints the lines). **Without that configuration the headers reach the client and disclose
the user name**: emission is off by default.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from . import _digest
from .adapter import Backend, Outcome, client_address, group_names

__all__ = ["AuthMiddleware", "BasicAuth", "DigestAuth", "lua_script_path"]

logger = logging.getLogger("wsgiauth.middleware")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
HashLookup = Callable[[bytes, bytes], "str | None"]
# (user name for REMOTE_USER, AUTH_TYPE, groups when already known, the user name as the client sent it)
Granted = tuple[bytes, str, "Sequence[bytes] | None", bytes]

_SCHEMES = ("Basic", "Digest")


def lua_script_path() -> Path:
    """Path of the shipped mod_lua script (``LuaHookLog PATH reflect_user``) that copies ``X-Remote-User`` and
    ``X-Auth-Type`` (saved by ``Header note``) into Apache's ``r.user``/``r.ap_auth_type`` in the log phase."""
    return Path(str(resources.files("wsgiauth") / "data" / "reflect_user.lua"))


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class AuthMiddleware:
    """Authenticate every request with HTTP Basic and/or Digest before it reaches ``app``.

    Args:
        app: the WSGI application to protect.
        backend: any `wsgiauth.Backend` (file, DBM, SQL or LDAP backend, chain, cached wrapper...), or a
            configuration returned by `wsgiauth.load` (its ``.backend`` is used).
        realm: the protection space shown to users; Digest hashes are bound to it.
        schemes: ``"Basic"`` and/or ``"Digest"``, in the order the challenges are offered.
        algorithms: Digest algorithms offered, in order of preference: ``"SHA-256"`` and/or ``"MD5"``
            (``-sess`` variants are accepted from clients too). SHA-256 needs ``sha256_hash`` (or a backend
            method ``realm_hash_sha256``): Apache's stores only hold MD5 realm hashes. By default SHA-256 is offered
            only when such a lookup exists.
        sha256_hash: ``(user: bytes, realm: bytes) -> hex str | None``: ``SHA-256(user:realm:password)``.
        require_groups: when non-empty, the user must belong to at least one of these groups (compared
            case-insensitively, as Apache does), else ``401`` (counted as a failed attempt, as a wrong password).
        nonce_lifetime: seconds a Digest nonce stays valid; an older one gets ``stale=true``.
        secret: the key signing Digest nonces (at least 16 bytes). Give every worker process the same one; by
            default each process picks a random key.
        emit_headers: add ``X-Remote-User``/``X-Auth-Type`` to responses for Apache's log phase (see the
            module docstring: never without the mod_lua hook).
        exempt: a predicate on the environ; requests for which it returns true pass through unauthenticated.

    Raises:
        ValueError: on an unknown scheme or algorithm, or a short secret.
    """

    def __init__(
        self,
        app: WSGIApp,
        backend: Backend | Any,
        *,
        realm: str = "Restricted",
        schemes: Sequence[str] = ("Basic",),
        algorithms: Sequence[str] | None = None,
        sha256_hash: HashLookup | None = None,
        require_groups: Sequence[str] = (),
        nonce_lifetime: float = 300.0,
        secret: bytes | str | None = None,
        emit_headers: bool = False,
        exempt: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        if not isinstance(backend, Backend) and isinstance(getattr(backend, "backend", None), Backend):
            backend = backend.backend  # a loaded configuration (wsgiauth.load(...))
        if not isinstance(backend, Backend):
            raise TypeError(f"AuthMiddleware needs a wsgiauth backend or configuration, not {type(backend).__name__}")
        if isinstance(schemes, str):
            schemes = (schemes,)
        canon: list[str] = []
        for s in schemes:
            match = [k for k in _SCHEMES if k.lower() == s.lower()]
            if not match:
                raise ValueError(f"unknown authentication scheme {s!r}: use 'Basic' and/or 'Digest'")
            canon.append(match[0])
        if not canon:
            raise ValueError("at least one authentication scheme is needed")
        if any(c in realm for c in '\r\n"\\') or not realm:
            raise ValueError("the realm must be non-empty and contain no quote, backslash or line break")
        self.app = app
        self.backend = backend
        self.realm = realm
        self.schemes = tuple(canon)
        if sha256_hash is None:
            method = getattr(backend, "realm_hash_sha256", None)
            sha256_hash = method if callable(method) else None
        self.sha256_hash = sha256_hash
        if algorithms is None:
            algorithms = ("SHA-256", "MD5") if sha256_hash is not None else ("MD5",)
        algs: list[str] = []
        for a in algorithms:
            c = _digest.canonical_algorithm(a)
            if c is None or c.endswith("-sess"):
                raise ValueError(f"unsupported Digest algorithm {a!r}: use 'SHA-256' and/or 'MD5'")
            if c == "SHA-256" and sha256_hash is None:
                raise ValueError("SHA-256 Digest needs sha256_hash= (Apache's stores only hold MD5 realm hashes)")
            algs.append(c)
        if "Digest" in self.schemes and not algs:
            raise ValueError("Digest needs at least one algorithm")
        self.algorithms = tuple(algs)
        self.require_groups = tuple(require_groups)
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        self.nonces = _digest.NonceKeeper(realm, secret=secret, lifetime=nonce_lifetime)
        self.emit_headers = emit_headers
        self.exempt = exempt
        self._realm_bytes = realm.encode("utf-8")
        self._dummy_ha1 = hashlib.md5(os.urandom(16)).hexdigest()

    # ------------------------------------------------------------------ WSGI

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self.exempt is not None and self.exempt(environ):
            if self.emit_headers:  # nobody authenticated here: the application must not name a user either
                return self.app(environ, self._start_with(start_response, None, None))
            return self.app(environ, start_response)
        if self.backend.access is not None:
            # Decided on REMOTE_ADDR; with none (or an empty one) the backend refuses: host rules fail closed.
            if self.backend.allow_access(environ, client_address(environ) or "") is False:
                return self._respond(start_response, "403 Forbidden", [], b"Forbidden\n")
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not isinstance(header, str):
            header = ""
        scheme = header.strip().split(" ", 1)[0].lower()
        stale = False
        if scheme == "basic" and "Basic" in self.schemes:
            result = self._basic(environ, header)
        elif scheme == "digest" and "Digest" in self.schemes:
            result, stale = self._digest(environ, header)
        else:
            result = None
        if result is None:
            return self._challenge(start_response, stale=stale)
        user, auth_type, groups, typed = result
        if self.require_groups:
            if groups is None:
                groups = self._groups(environ, user)
            have = {g.lower() for g in group_names(groups)}
            if not any(g.lower() in have for g in self.require_groups):
                # 401 as Apache answers `Require group` after Basic, and counted: a 403 here would tell a guesser
                # that the password was right.
                self.backend.log(environ, logging.WARNING,
                                 f"user '{user.decode('latin-1')}' is in none of the required groups: 401")
                self._count_failure(environ, typed)
                return self._challenge(start_response)
        return self._pass(environ, start_response, user, auth_type)

    def _pass(self, environ: dict[str, Any], start_response: StartResponse, user: bytes,
              auth_type: str) -> Iterable[bytes]:
        name = user.decode("latin-1")  # PEP 3333: native strings carry the raw bytes as latin-1
        environ["REMOTE_USER"] = name
        environ["AUTH_TYPE"] = auth_type
        environ.pop("HTTP_AUTHORIZATION", None)
        if not self.emit_headers:
            return self.app(environ, start_response)
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
            self.backend.log(environ, logging.WARNING, "user name has control characters: not emitted in headers")
            return self.app(environ, self._start_with(start_response, None, None))
        return self.app(environ, self._start_with(start_response, name, auth_type))

    @staticmethod
    def _start_with(start_response: StartResponse, name: str | None, auth_type: str | None) -> StartResponse:
        """A ``start_response`` that drops any ``X-Remote-User``/``X-Auth-Type`` the application set and adds ours."""

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            kept = [(k, v) for k, v in headers if k.lower() not in ("x-remote-user", "x-auth-type")]
            if name is not None and auth_type is not None:
                kept += [("X-Remote-User", name), ("X-Auth-Type", auth_type)]
            if exc_info is not None:
                return start_response(status, kept, exc_info)
            return start_response(status, kept)

        return start

    def _respond(self, start_response: StartResponse, status: str, headers: list[tuple[str, str]],
                 body: bytes) -> Iterable[bytes]:
        start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                                ("Content-Length", str(len(body))), *headers])
        return [body]

    def _challenge(self, start_response: StartResponse, *, stale: bool = False) -> Iterable[bytes]:
        headers: list[tuple[str, str]] = []
        for scheme in self.schemes:
            if scheme == "Digest":
                nonce = self.nonces.issue()
                for alg in self.algorithms:
                    headers.append(("WWW-Authenticate", _digest.challenge(
                        self.realm, nonce, self.nonces.opaque, alg, stale=stale)))
            else:
                headers.append(("WWW-Authenticate", f'Basic realm={_quote(self.realm)}, charset="UTF-8"'))
        return self._respond(start_response, "401 Unauthorized", headers, b"Authentication required\n")

    # ------------------------------------------------------------------ Basic

    def _basic(self, environ: dict[str, Any], header: str) -> Granted | None:
        token = header.strip()[5:].strip()
        if not token or len(token) > 8192:
            return None
        try:
            raw = base64.b64decode(token.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return None
        user, sep, password = raw.partition(b":")
        if not sep or not user:
            return None
        try:
            decision = self.backend.authenticate(user, password, client_address(environ))
        except Exception as exc:  # noqa: BLE001 - a backend failure gets its configured outcome
            self.backend._failed(environ, "middleware Basic", user, exc)
            return None
        answer = self.backend._answer(environ, user, decision)
        if decision.outcome is not Outcome.GRANTED or answer is None or answer is False:
            return None
        name = decision.name if decision.name else user
        return name, "Basic", decision.groups, user

    def _count_failure(self, environ: dict[str, Any], user: bytes) -> None:
        """Report a failed attempt that did not go through ``authenticate`` (a throttle in the stack counts it)."""
        try:
            self.backend.record_failure(user, client_address(environ))
        except Exception as exc:  # noqa: BLE001 - a backend failure gets its configured outcome
            self.backend._failed(environ, "middleware record_failure", user, exc)

    # ------------------------------------------------------------------ Digest

    def _digest(self, environ: dict[str, Any],
                header: str) -> tuple[Granted | None, bool]:
        try:
            creds = _digest.parse_authorization(header)
        except _digest.DigestError as exc:
            self.backend.log(environ, logging.INFO, f"malformed Digest header: {exc}")
            return None, False
        if creds.realm != self.realm:
            return None, False
        base = creds.algorithm[:-5] if creds.algorithm.endswith("-sess") else creds.algorithm
        if base not in self.algorithms:
            return None, False
        if creds.opaque is not None and not hmac.compare_digest(creds.opaque, self.nonces.opaque):
            return None, False
        if not self._uri_matches(environ, creds.uri):
            self.backend.log(environ, logging.WARNING, "Digest uri does not match the request")
            return None, False
        state = self.nonces.check(creds.nonce)
        if state == _digest.NonceState.INVALID:
            return None, False
        if state == _digest.NonceState.STALE:
            return None, True
        user = creds.username
        who = user.decode("latin-1")
        try:
            # A throttle in the stack answers while the user or the address is locked out. Asked for every request,
            # and the response is computed either way, so a refusal costs what a check costs.
            refused = self.backend.refusal(user, client_address(environ))
        except Exception as exc:  # noqa: BLE001 - a backend failure gets its configured outcome (never a grant)
            self.backend._failed(environ, "middleware Digest", user, exc)
            return None, False
        try:
            ha1 = self._ha1(base, user)
        except Exception as exc:  # noqa: BLE001 - a backend failure gets its configured outcome
            self.backend._failed(environ, "middleware Digest", user, exc)
            return None, False
        method = str(environ.get("REQUEST_METHOD", "GET"))
        expected = _digest.expected_response(creds, ha1 or self._dummy(base), method)
        right = hmac.compare_digest(expected.encode("ascii"), creds.response.encode("ascii")) and ha1 is not None
        if refused is not None:
            self.backend.log(environ, logging.WARNING, f"Digest authentication refused for user '{who}': {refused}")
            return None, False
        if not right:
            self.backend.log(environ, logging.WARNING, f"Digest authentication failed for user '{who}'")
            self._count_failure(environ, user)
            return None, False
        if not self.nonces.use(creds.nonce, creds.nc):
            self.backend.log(environ, logging.WARNING, "Digest nonce count replayed")
            return None, True
        self.backend.log(environ, logging.INFO, f"user '{who}' granted (Digest {creds.algorithm})")
        return (user, "Digest", None, user), False

    def _dummy(self, base: str) -> str:
        return self._dummy_ha1 if base == "MD5" else hashlib.sha256(self._dummy_ha1.encode()).hexdigest()

    def _ha1(self, base: str, user: bytes) -> str | None:
        if base == "SHA-256":
            assert self.sha256_hash is not None
            found = self.sha256_hash(user, self._realm_bytes)
            size = 64
        else:
            found = self.backend.realm_hash(user, self._realm_bytes)
            size = 32
        if found is None:
            return None
        found = found.strip().lower()
        if len(found) != size or any(c not in "0123456789abcdef" for c in found):
            return None
        return found

    @staticmethod
    def _uri_matches(environ: dict[str, Any], uri: str) -> bool:
        request_uri = environ.get("REQUEST_URI")
        if isinstance(request_uri, str) and request_uri:
            return request_uri == uri
        path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""), safe="/;=,~!$&'()*+:@")
        query = environ.get("QUERY_STRING", "")
        built = path + ("?" + query if query else "")
        if built == uri:
            return True
        # Clients differ in escaping; compare the unescaped forms.
        return unquote(built) == unquote(uri)

    def _groups(self, environ: dict[str, Any], user: bytes) -> Sequence[bytes] | None:
        try:
            return self.backend.groups(user)
        except Exception as exc:  # noqa: BLE001 - a backend failure gets its configured outcome
            self.backend._failed(environ, "middleware groups", user, exc)
            return None


def BasicAuth(app: WSGIApp, backend: Backend, **options: Any) -> AuthMiddleware:
    """`AuthMiddleware` with HTTP Basic only (the same keyword options)."""
    return AuthMiddleware(app, backend, schemes=("Basic",), **options)


def DigestAuth(app: WSGIApp, backend: Backend, **options: Any) -> AuthMiddleware:
    """`AuthMiddleware` with HTTP Digest only (the same keyword options)."""
    return AuthMiddleware(app, backend, schemes=("Digest",), **options)

