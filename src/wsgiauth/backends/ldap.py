"""LDAP backend (ldap3): search-then-bind like mod_authnz_ldap, with pooled connections.

Usage in an ``auth.wsgi``::

    from wsgiauth.backends import ldap

    backend = ldap.Backend(
        "ldap://ldap1.example.org ldap2.example.org/ou=people,dc=example,dc=org?uid?sub?(objectClass=person)",
        bind_dn="cn=wsgiauth,ou=services,dc=example,dc=org", bind_password="...",
        starttls=True, ca_file="/etc/ssl/certs/example-ca.pem",
    )
    check_password, get_realm_hash, groups_for_user, allow_access = backend.hooks()

How a password is checked (as mod_authnz_ldap does):

1. an empty password is refused at once (an LDAP simple bind with an empty password is an *unauthenticated* bind,
   which servers accept);
2. on a connection of the **search pool** (bound as the service account, or anonymous), search ``base_dn`` with
   ``(&(filter)(attribute=NAME))``, the name sent as a literal value, asking for two entries at most; exactly one
   entry must match, in a search the server completed: none, two, or a search stopped by a size limit (resultCode
   4, whatever the server's own limit) is "unknown" (after a dummy bind, so that the time taken does not tell who
   exists);
3. on a connection of the separate **bind pool**, a simple bind as that entry's DN with the password. Connections of
   the bind pool are only ever used for credential binds, never for a search, so no user's identity ever serves
   another request; re-binding them spares a TCP connection (and TLS handshake) per request, as mod_ldap does.
   Only a well-formed bindResponse(success) to that bind grants (see `wsgiauth._ldapwire`: anything malformed is a
   protocol error, the connection is dropped and the check fails).

A grant names the user by the entry's own value of the search attribute (``alice`` for ``ALICE`` or ``ａｌｉｃｅ``),
or of ``remote_user_attribute``; every decision about an entry carries its DN as `Decision.identity`, and
`Backend.user_key` prepares a name as the directory compares it (RFC 4518), so that a throttle counts every spelling
of one account together.

Both pools come from `wsgiauth.pool` (lazy, fork-safe, thread-safe, bounded, circuit breaker) and are shared
process-wide by configuration, so a re-imported auth script finds its connections again.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import ssl
import threading
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import Unpack

from .. import adapter
from .._ldapurl import (
    DEFAULT_ATTRIBUTE,
    DEFAULT_FILTER,
    DEFAULT_PORTS,
    LDAPURL,
    SCOPES,
    Host,
    check_attribute,
    normalize_filter,
    parse_ldap_url,
)
from .._ldapwire import PRESENT_OBJECTCLASS, ConnectionLost, Entry, Wire, and_, eq, or_
from .._options import LDAP_CONNECT_TIMEOUT, LDAP_MAX_DEPTH, LDAP_TIMEOUT, PoolOptions
from ..adapter import Decision, OnError, Outcome, utf8_text
from ..exceptions import BackendError, BackendUnavailableError, ConfigError
from ..pool import Pool, get_pool, pool_arguments

try:
    import ldap3
    from ldap3.core import exceptions as ldap_exc
    from ldap3.utils.dn import escape_rdn
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("wsgiauth.backends.ldap needs ldap3: pip install 'wsgiauth-backends[ldap]'") from exc

__all__ = ["DEFAULT_GROUP_FILTER", "LDAPURL", "Backend", "parse_ldap_url", "prepare"]

#: Which entries count as groups when listing a user's groups (groupOfNames, groupOfUniqueNames, posixGroup and
#: Active Directory's ``group``).
DEFAULT_GROUP_FILTER = ("(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup)"
                        "(objectClass=group))")

_SCOPE_CODE = {"base": 0, "one": 1, "sub": 2}
_SUCCESS = 0
_SIZE_LIMIT_EXCEEDED = 4
_NO_SUCH_OBJECT = 32
_INVALID_CREDENTIALS = 49
_HEX32 = re.compile(rb"^[0-9a-fA-F]{32}$")
_NO_ATTRIBUTES = "1.1"


# RFC 4518 section 2.2 (Map): characters mapped to nothing (soft hyphens, joiners, variation selectors, the object
# replacement character, controls and format characters), and those mapped to SPACE (tabs, line ends, every Zs/Zl/Zp
# space). U+0130 (LATIN CAPITAL LETTER I WITH DOT ABOVE) is folded to "i" as OpenLDAP folds it (its simple lower
# case), not to "i" + COMBINING DOT ABOVE as RFC 3454's table B.2 would: slapd matches "ALİCE" to alice.
_PREP_MAP: dict[int, str | None] = {c: None for lo, hi in (
    (0x0000, 0x0008), (0x000E, 0x001F), (0x007F, 0x0084), (0x0086, 0x009F), (0x00AD, 0x00AD), (0x034F, 0x034F),
    (0x06DD, 0x06DD), (0x070F, 0x070F), (0x1806, 0x1806), (0x180B, 0x180E), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x2063), (0x206A, 0x206F), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFC), (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001), (0xE0020, 0xE007F),
) for c in range(lo, hi + 1)}
_PREP_MAP.update({c: " " for c in (0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                                   0x2028, 0x2029, 0x202F, 0x205F, 0x3000)})
_PREP_MAP[0x0130] = "I"
_SPACES = re.compile(" +")
_PLAIN_ASCII = re.compile(rb"[!-~]+(?: [!-~]+)*")


def prepare(value: bytes) -> bytes:
    """``value`` (UTF-8) prepared for caseIgnoreMatch as in RFC 4518: mapped (section 2.2: ignorable characters
    removed, every kind of space made SPACE), case folded and normalized (NFKC, section 2.3; folded and normalized
    twice, Unicode's compatibility caseless match), insignificant spaces removed (section 2.6.1: none at either
    end, runs made one).

    Two names that an LDAP server matches to the same value of ``uid``, ``cn``, ``mail`` or ``sAMAccountName``
    (``Alice``, ``ALICE``, fullwidth ``ａｌｉｃｅ``, ``ALİCE``, ``\xa0alice``) prepare to the same bytes. A few
    that OpenLDAP keeps apart prepare alike too (a soft hyphen inside a name): that errs towards one throttle
    counter for more spellings, never towards a spelling with a counter of its own. Bytes that are not UTF-8 are
    returned as they are (no entry can hold them).
    """
    if _PLAIN_ASCII.fullmatch(value):
        return value.lower()
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return value
    text = text.translate(_PREP_MAP).casefold()
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return _SPACES.sub(" ", text).strip(" ").encode("utf-8")


def _is_dead(exc: BaseException) -> bool:
    """An ldap3 error that means the connection cannot be used any more (socket closed, reset, timed out)."""
    if isinstance(exc, BackendError):
        return False
    return isinstance(exc, (OSError, EOFError, ldap_exc.LDAPCommunicationError, ldap_exc.LDAPResponseTimeoutError,
                            ldap_exc.LDAPSocketOpenError))


def _compile_filter(text: str) -> bytes:
    """The BER of a configured filter (compiled once, by ldap3)."""
    from ldap3.operation.search import compile_filter, parse_filter
    from pyasn1.codec.ber import encoder  # type: ignore[import-untyped]

    try:
        node = parse_filter(text, None, False, False, None, False)
        return bytes(encoder.encode(compile_filter(node.elements[0])))
    except Exception as exc:
        raise ConfigError(f"ldap: cannot parse the filter {text!r}: {exc}") from exc


def _dn_rdn_value(dn: str, attribute: str) -> str | None:
    """The value of the first RDN of ``dn`` when its type is ``attribute`` (``cn=devs,ou=groups`` -> ``devs``)."""
    try:
        parts = ldap3.utils.dn.parse_dn(dn, escape=False, strip=True)
    except Exception:  # noqa: BLE001 - a malformed DN just has no usable RDN
        return None
    if not parts or parts[0][0].lower() != attribute.lower() or parts[0][2] == "+":
        return None
    return _unescape_dn_value(parts[0][1])


def _unescape_dn_value(value: str) -> str:
    """Undo RFC 4514 escapes in an attribute value of a DN (``\\,`` and ``\\2C`` both become ``,``)."""
    if "\\" not in value:
        return value
    out = bytearray()
    raw = value.encode("utf-8")
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == 0x5C and i + 1 < len(raw):
            pair = raw[i + 1:i + 3]
            if len(pair) == 2 and all(ch in b"0123456789abcdefABCDEF" for ch in pair):
                out.append(int(pair, 16))
                i += 3
                continue
            out.append(raw[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return out.decode("utf-8", "replace")


class Backend(adapter.Backend):
    """Check passwords and list groups against an LDAP directory (OpenLDAP, 389-ds, Active Directory...).

    Args:
        url: an ``AuthLDAPURL``-style URL ``ldap[s]://host1 host2:port/basedn?attr?scope?filter``; keyword
            arguments below override its parts. Either ``url`` or ``hosts`` is required.
        hosts: servers (``"host"``, ``"host:port"``) tried in order, instead of the URL's.
        use_ssl: LDAPS (TLS from the first byte); default from the URL scheme.
        starttls: upgrade plain connections with STARTTLS before any bind (refused together with LDAPS).
        base_dn, attribute, scope, filter: where and how users are searched (defaults: the URL's, else ``""``,
            ``uid``, ``sub``, ``(objectClass=*)``).
        bind_dn, bind_password: the service account that searches (``None``: anonymous searches).
        bind_template: direct bind without a search: a DN with ``{user}`` where the escaped name goes, e.g.
            ``"uid={user},ou=people,dc=example,dc=org"``. Unknown user and wrong password then both mean "denied"
            (the server does not tell them apart). After a successful bind the entry is read (base search): its
            DN and canonical name, and the filter still applies: a bound user whose entry does not match it is
            unknown.
        ca_file: PEM file of the CAs trusted for LDAPS/STARTTLS (default: the system's).
        verify: check the server certificate and host name (``False`` only for tests).
        connect_timeout: seconds allowed to open a connection to one server (then the next is tried).
        timeout: seconds to wait for any answer of the server (never unbounded).
        remote_user_attribute: an attribute of the user's entry whose value becomes the canonical user name
            (``AuthLDAPRemoteUserAttribute``), e.g. ``"mail"``. Default: the entry's own value of ``attribute``
            (the stored ``uid``, not the spelling typed).
        group_base: where groups are searched (default: ``base_dn``; set it when groups live elsewhere).
        group_filter: which entries are groups (default `DEFAULT_GROUP_FILTER`).
        group_attributes: group attributes holding member DNs (``AuthLDAPGroupAttribute``, default
            ``("member", "uniqueMember")``).
        group_name_attributes: group attributes holding member *names* (default ``("memberUid",)``), compared
            with the value of ``attribute`` in the user's entry.
        member_of_attribute: an attribute of the user holding group DNs (``"memberOf"``; default: not used).
        group_name_attribute: the attribute of a group whose value is returned as its name (default ``cn``).
        max_depth: how many levels of nested groups are followed (``AuthLDAPMaxSubGroupDepth``, default 10;
            0: direct membership only). Cycles are safe.
        digest_attribute: an attribute of the user holding Digest HA1 values as ``realm:HA1`` (or a bare HA1,
            used for any realm). LDAP cannot produce an HA1 from a password, so Digest needs such an attribute.
        **pool: the pool options of `wsgiauth.pool.PoolOptions` (`pool_size`, `pool_timeout`, `max_idle`,
            `max_lifetime`, `check_after`, `breaker_threshold`, `breaker_reset`), for each of the two pools.
        label, on_error, log_level, access: see `wsgiauth.adapter.Backend`.

    Raises:
        ConfigError: a setting is wrong (the message names it); for a number out of range or of the wrong type an
            `OptionError` whose `option` is the keyword.
        TypeError: a keyword that is neither a setting above nor a pool option.
    """

    label = "ldap"

    def __init__(
        self,
        url: str | None = None,
        *,
        hosts: Sequence[str] | None = None,
        use_ssl: bool | None = None,
        starttls: bool = False,
        base_dn: str | None = None,
        attribute: str | None = None,
        scope: str | None = None,
        filter: str | None = None,
        bind_dn: str | None = None,
        bind_password: str | bytes | None = None,
        bind_template: str | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        verify: bool = True,
        connect_timeout: float = LDAP_CONNECT_TIMEOUT.default,
        timeout: float = LDAP_TIMEOUT.default,
        remote_user_attribute: str | None = None,
        group_base: str | None = None,
        group_filter: str = DEFAULT_GROUP_FILTER,
        group_attributes: Sequence[str] = ("member", "uniqueMember"),
        group_name_attributes: Sequence[str] = ("memberUid",),
        member_of_attribute: str | None = None,
        group_name_attribute: str = "cn",
        max_depth: int = LDAP_MAX_DEPTH.default,
        digest_attribute: str | None = None,
        label: str | None = None,
        on_error: OnError = "unknown",
        log_level: str = "warning",
        access: Callable[[str], bool | None] | None = None,
        **pool: Unpack[PoolOptions],
    ) -> None:
        super().__init__(label=label, on_error=on_error, log_level=log_level, access=access)
        parsed = parse_ldap_url(url) if url is not None else None
        if parsed is None and not hosts:
            raise ConfigError("ldap: give a URL (ldap://host/basedn?attr?scope?filter) or hosts=[...]")
        self.use_ssl = bool(use_ssl) if use_ssl is not None else bool(parsed and parsed.use_ssl)
        scheme = "ldaps" if self.use_ssl else "ldap"
        if hosts:
            if isinstance(hosts, str):
                hosts = hosts.split()
            self.hosts = parse_ldap_url(f"{scheme}://{' '.join(hosts)}/").hosts
        else:
            assert parsed is not None
            self.hosts = parsed.hosts if parsed.use_ssl == self.use_ssl else tuple(
                Host(h.host, DEFAULT_PORTS[scheme] if h.port == DEFAULT_PORTS[parsed.scheme] else h.port)
                for h in parsed.hosts)
        if starttls and self.use_ssl:
            raise ConfigError("ldap: starttls=True and LDAPS (ldaps:// or use_ssl=True) exclude each other")
        self.starttls = starttls
        self.base_dn = base_dn if base_dn is not None else (parsed.base_dn if parsed else "")
        self.attribute = check_attribute(attribute or (parsed.attribute if parsed else DEFAULT_ATTRIBUTE))
        self.scope = (scope or (parsed.scope if parsed else "sub")).lower()
        if self.scope not in SCOPES:
            raise ConfigError(f"ldap: scope must be one of {SCOPES}, not {self.scope!r}")
        self.filter = normalize_filter(filter if filter is not None else (parsed.filter if parsed else DEFAULT_FILTER))
        if bind_dn is not None and not bind_password:
            raise ConfigError("ldap: bind_dn needs a bind_password (an empty password would be an anonymous bind)")
        self.bind_dn = bind_dn
        self._bind_password = bind_password
        if bind_template is not None and "{user}" not in bind_template:
            raise ConfigError("ldap: bind_template must contain {user}, e.g. 'uid={user},ou=people,dc=example,dc=org'")
        self.bind_template = bind_template
        self.ca_file = os.fspath(ca_file) if ca_file is not None else None
        if self.ca_file is not None and not os.path.isfile(self.ca_file):
            raise ConfigError(f"ldap: ca_file {self.ca_file!r} does not exist or is not a file")
        self.verify = verify
        self.connect_timeout = LDAP_CONNECT_TIMEOUT.check("connect_timeout", connect_timeout)
        self.timeout = LDAP_TIMEOUT.check("timeout", timeout)
        # ldap3 sets SO_RCVTIMEO from an integer number of seconds
        self._receive_timeout = max(1, math.ceil(self.timeout))
        self.remote_user_attribute = (check_attribute(remote_user_attribute, "remote_user_attribute")
                                      if remote_user_attribute else None)
        self._attribute_key = self.attribute.lower()
        # what the user search returns: the attribute that names the user to Apache
        self._name_attributes = [self.remote_user_attribute or self.attribute]
        self.group_base = group_base if group_base is not None else self.base_dn
        self.group_filter = normalize_filter(group_filter, "group_filter")
        self._filter_ber = _compile_filter(self.filter)
        self._group_filter_ber = _compile_filter(self.group_filter)
        self.group_attributes = tuple(check_attribute(a, "group attribute") for a in group_attributes)
        self.group_name_attributes = tuple(check_attribute(a, "group name attribute") for a in group_name_attributes)
        self.member_of_attribute = (check_attribute(member_of_attribute, "member_of_attribute")
                                    if member_of_attribute else None)
        self.group_name_attribute = check_attribute(group_name_attribute, "group_name_attribute")
        self.max_depth = LDAP_MAX_DEPTH.check("max_depth", max_depth)
        self.digest_attribute = check_attribute(digest_attribute, "digest_attribute") if digest_attribute else None
        self._pool_args = pool_arguments(pool, what="ldap.Backend")
        self._tls = self._make_tls() if (self.use_ssl or self.starttls) else None
        secret = self._bind_password.encode() if isinstance(self._bind_password, str) else self._bind_password
        identity = (
            tuple(str(h) for h in self.hosts), self.use_ssl, self.starttls, self.ca_file, self.verify,
            self.connect_timeout, self.timeout, tuple(sorted(self._pool_args.items())),
        )
        self._search_key = ("ldap-search", identity, self.bind_dn,
                            hashlib.sha256(secret).hexdigest() if secret else None)
        self._bind_key = ("ldap-bind", identity)
        self._search_pool: Pool[Any] | None = None
        self._bind_pool: Pool[Any] | None = None
        self._pool_lock = threading.Lock()
        self._dummy_dn = f"cn=wsgiauth-no-such-user-{os.urandom(8).hex()}" + (f",{self.base_dn}" if self.base_dn
                                                                               else "")

    # ------------------------------------------------------------------ connections

    def _make_tls(self) -> Any:
        try:
            return ldap3.Tls(validate=ssl.CERT_REQUIRED if self.verify else ssl.CERT_NONE,
                             ca_certs_file=self.ca_file)
        except ldap_exc.LDAPSSLConfigurationError as exc:
            raise ConfigError(f"ldap: TLS settings: {exc}") from exc

    def _open(self, *, service: bool) -> Wire:
        """Open a connection to the first server that answers (each tried with ``connect_timeout``).

        ``service=True``: bound as the service account (or anonymous) for searches; otherwise left unbound for
        credential binds.
        """
        errors: list[str] = []
        for host in self.hosts:
            # A fresh Server each time: ldap3 marks an address that failed once as unusable for minutes, which
            # would keep a restarted server "unreachable" long after it is back.
            server = ldap3.Server(host.host, port=host.port, use_ssl=self.use_ssl, tls=self._tls,
                                  get_info=ldap3.NONE, connect_timeout=self.connect_timeout)
            conn = ldap3.Connection(
                server, client_strategy=ldap3.SYNC, auto_bind=ldap3.AUTO_BIND_NONE, read_only=True,
                receive_timeout=self._receive_timeout, check_names=False, auto_referrals=False, raise_exceptions=False,
                auto_range=False, return_empty_attributes=False,
            )
            try:
                conn.open(read_server_info=False)
                if self.starttls:
                    conn.start_tls(read_server_info=False)
            except (ldap_exc.LDAPStartTLSError, ldap_exc.LDAPSocketOpenError, ldap_exc.LDAPCertificateError,
                    ldap_exc.LDAPCommunicationError, OSError) as exc:
                errors.append(f"{self._where(server)}: {self._explain(exc)}")
                self._quiet_close(conn)
                continue
            if service and self.bind_dn is not None:
                conn.user, conn.password, conn.authentication = self.bind_dn, self._bind_password, ldap3.SIMPLE
                try:
                    ok = conn.bind(read_server_info=False)
                except (ldap_exc.LDAPCommunicationError, OSError) as exc:
                    errors.append(f"{self._where(server)}: {self._explain(exc)}")
                    self._quiet_close(conn)
                    continue
                if not ok:
                    desc = conn.result.get("description", "?") if conn.result else "?"
                    self._quiet_close(conn)
                    raise BackendError(f"ldap: the service account {self.bind_dn!r} cannot bind on "
                                       f"{self._where(server)}: {desc} (check bind_dn and bind_password)")
            return Wire(conn, self.timeout)
        raise BackendUnavailableError("ldap: no server reachable: " + "; ".join(errors))

    def _where(self, server: Any) -> str:
        return f"{'ldaps' if self.use_ssl else 'ldap'}://{server.host}:{server.port}"

    def _explain(self, exc: BaseException) -> str:
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            m = re.search(r"certificate verify failed: ([^(')\"]+)", text)
            why = m.group(1).strip() if m else "untrusted certificate"
            return (f"TLS certificate verification failed ({why}); check ca_file"
                    f"{' (' + self.ca_file + ')' if self.ca_file else ''} and that the certificate names this host")
        if isinstance(exc, ldap_exc.LDAPCertificateError) or "doesn't match" in text:
            return f"TLS certificate does not name this host ({type(exc).__name__})"
        return f"{type(exc).__name__}: {text}"

    @staticmethod
    def _quiet_close(conn: Any) -> None:
        try:
            conn.unbind()
        except Exception:  # noqa: BLE001, S110 - closing a broken connection may fail, which is fine
            pass

    @staticmethod
    def _check(wire: Wire) -> None:
        """Validate an idle pooled connection with a Who-am-I (neither a search nor a bind)."""
        if wire.who_am_i() != _SUCCESS:
            raise ConnectionLost("who-am-i failed")

    def _pool(self, which: str) -> Pool[Any]:
        pool = self._search_pool if which == "search" else self._bind_pool
        if pool is not None and not pool.closed:
            return pool
        with self._pool_lock:
            service = which == "search"
            key = self._search_key if service else self._bind_key

            def factory() -> Pool[Any]:
                return Pool(lambda: self._open(service=service), name=f"{self.label}-{which}",
                            check=self._check, close=Wire.close, is_dead=_is_dead, **self._pool_args)

            pool = get_pool(key, factory)
            if service:
                self._search_pool = pool
            else:
                self._bind_pool = pool
            return pool

    def stats(self) -> dict[str, dict[str, int | float]]:
        """The counters of this process's two pools (``search`` and ``bind``)."""
        return {"search": self._pool("search").stats(), "bind": self._pool("bind").stats()}

    def close(self) -> None:
        """Close both pools (shared by every backend with the same settings in this process)."""
        for pool in (self._search_pool, self._bind_pool):
            if pool is not None:
                pool.close()

    # ------------------------------------------------------------------ LDAP operations

    def _search(self, base: str, filt: bytes, scope: str, attributes: Iterable[str], limit: int, *,
                partial: bool = False) -> tuple[list[Entry], bool]:
        """Search on a search-pool connection, asking for at most ``limit`` entries (0: the server's limit).

        Returns:
            ``(entries, complete)``. ``complete`` is False when the search stopped at a size limit (the client's or
            the server's: resultCode 4), which only a caller that passes ``partial=True`` gets to see. noSuchObject
            (the base does not exist) is an empty, complete answer.

        Raises:
            BackendError: any other result code, or a size limit when ``partial`` is False.
        """
        attrs = list(attributes) or [_NO_ATTRIBUTES]

        def op(wire: Wire) -> tuple[list[Entry], bool]:
            entries, code, diag = wire.search(base, _SCOPE_CODE[scope], limit, self._receive_timeout, filt, attrs)
            if code == _SUCCESS:
                return entries, True
            if code == _NO_SUCH_OBJECT:
                return [], True
            if code == _SIZE_LIMIT_EXCEEDED and partial:
                return entries, False
            if code == _SIZE_LIMIT_EXCEEDED:
                raise BackendError(f"ldap: search in {base!r} stopped at a size limit (result code 4): the answer "
                                   "would be incomplete (raise the server's size limit for the service account)")
            raise BackendError(f"ldap: search in {base!r} failed: result code {code} ({diag or 'no message'})")

        result: tuple[list[Entry], bool] = self._pool("search").run(op)
        return result

    def _bind(self, dn: str, password: bytes) -> bool:
        """A simple bind as ``dn`` on a bind-pool connection: ``True`` (valid), ``False`` (invalid credentials)."""
        raw_dn = dn.encode("utf-8")

        def op(wire: Wire) -> bool:
            code, diag = wire.bind(raw_dn, password)
            if code == _SUCCESS:
                return True
            if code == _INVALID_CREDENTIALS:
                return False
            raise BackendError(f"ldap: bind failed: result code {code} ({diag or 'no message'})")

        ok: bool = self._pool("bind").run(op)
        return ok

    def _dummy_bind(self, password: bytes) -> None:
        """A bind that always fails, so an unknown user costs what a wrong password costs."""
        self._bind(self._dummy_dn, password or b"x")

    # ------------------------------------------------------------------ users

    def _user_filter(self, name: str) -> bytes:
        """``(&(filter)(attribute=name))`` in BER, the name as a literal value."""
        return and_(self._filter_ber, eq(self.attribute, name.encode("utf-8")))

    def _find(self, name: str | None, attributes: Sequence[str]) -> tuple[Entry | None, str]:
        """The user's entry when exactly one matches, else ``(None, why)``.

        At most two entries are asked for (client size limit 2): two mean ambiguous, and so does a search that the
        client's or the server's size limit stopped (resultCode 4), whatever it returned before stopping.
        """
        attrs = attributes if attributes is self._name_attributes else [a for a in dict.fromkeys(attributes) if a]
        if self.bind_template is not None:
            if name is None:
                return None, "no such user"
            dn = self.bind_template.replace("{user}", escape_rdn(name))
            entries, complete = self._search(dn, self._filter_ber, "base", attrs, 2, partial=True)
        else:
            # An unusable name still costs one search (with a value no entry can hold) so timing stays the same.
            value = name if name is not None else "\x00"
            entries, complete = self._search(self.base_dn, self._user_filter(value), self.scope, attrs, 2,
                                             partial=True)
        if not complete:
            return None, "user is not unique (the search stopped at a size limit)"
        if len(entries) != 1:
            return None, "no such user" if not entries else "user is not unique (search found two or more entries)"
        return entries[0], ""

    def _name_of(self, entry: Entry, user: bytes) -> bytes | None:
        """The canonical name: the entry's ``remote_user_attribute``, else its own value of the search attribute
        (of several values, the one the typed name matches)."""
        if self.remote_user_attribute is not None:
            return entry.first(self.remote_user_attribute)
        values = entry.attributes.get(self._attribute_key)
        if not values:
            return None
        if len(values) > 1:
            key = self.user_key(user)
            for value in values:
                if self.user_key(value) == key:
                    return value
        return values[0]

    def user_key(self, user: bytes) -> bytes:
        """``user`` prepared as LDAP's caseIgnoreMatch compares it (RFC 4518, see `prepare`): every spelling the
        directory matches to one value of the search attribute gives the same key. No I/O."""
        return prepare(user)

    def authenticate(self, user: bytes, password: bytes, client: str | None = None) -> Decision:
        """Check ``password`` by binding as the user's entry (see the module docstring)."""
        if not password:
            return Decision(Outcome.DENIED, backend=self.label, reason="empty password refused (no anonymous bind)")
        name = utf8_text(user)
        if self.bind_template is not None:
            return self._authenticate_direct(name, user, password)
        entry, why = self._find(name, self._name_attributes)
        if entry is None:
            self._dummy_bind(password)
            return Decision(Outcome.UNKNOWN, backend=self.label, reason=why)
        identity = entry.dn.encode("utf-8")
        if not self._bind(entry.dn, password):
            return Decision(Outcome.DENIED, backend=self.label, reason="wrong password (invalid credentials)",
                            identity=identity)
        return Decision(Outcome.GRANTED, name=self._name_of(entry, user), backend=self.label, identity=identity)

    def dummy_authenticate(self, user: bytes, password: bytes) -> None:
        """The round trips of a check (the user search and a bind), with a bind that can never succeed."""
        if not password:
            return
        if self.bind_template is None:
            self._find(utf8_text(user), self._name_attributes)
        self._dummy_bind(password)

    def _authenticate_direct(self, name: str | None, user: bytes, password: bytes) -> Decision:
        assert self.bind_template is not None
        if name is None:
            self._dummy_bind(password)
            return Decision(Outcome.DENIED, backend=self.label, reason="invalid credentials")
        dn = self.bind_template.replace("{user}", escape_rdn(name))
        if not self._bind(dn, password):
            return Decision(Outcome.DENIED, backend=self.label, reason="invalid credentials")
        # Read the entry the bind proved: its DN as stored and its canonical name, and the filter must match it.
        entry, why = self._find(name, self._name_attributes)
        if entry is None:
            if self.filter == DEFAULT_FILTER and self.remote_user_attribute is None:
                # Nothing to enforce and the entry is not readable (anonymous reads refused): the bind decides.
                return Decision(Outcome.GRANTED, backend=self.label)
            return Decision(Outcome.UNKNOWN, backend=self.label, reason=f"entry does not match the filter ({why})")
        return Decision(Outcome.GRANTED, name=self._name_of(entry, user), backend=self.label,
                        identity=entry.dn.encode("utf-8"))

    # ------------------------------------------------------------------ Digest

    def realm_hash(self, user: bytes, realm: bytes) -> str | None:
        """The HA1 for ``realm`` from ``digest_attribute`` (``realm:HA1`` values, or a bare HA1), else ``None``."""
        if self.digest_attribute is None:
            return None
        entry, _ = self._find(utf8_text(user), [self.digest_attribute])
        if entry is None:
            return None
        bare: bytes | None = None
        found: bytes | None = None
        for value in entry.all(self.digest_attribute):
            value = value.strip()
            stored_realm, sep, ha1 = value.rpartition(b":")
            if not sep:
                if _HEX32.match(value):
                    bare = value
                continue
            if _HEX32.match(ha1) and hmac.compare_digest(stored_realm, realm) and found is None:
                found = ha1
        chosen = found if found is not None else bare
        return chosen.decode("ascii").lower() if chosen is not None else None

    # ------------------------------------------------------------------ groups

    def groups(self, user: bytes) -> list[bytes] | None:
        """The names of the user's groups (``group_name_attribute`` of each), nested up to ``max_depth``.

        Returns ``None`` when the user is unknown here.
        """
        name = utf8_text(user)
        wanted = [self.attribute] + ([self.member_of_attribute] if self.member_of_attribute else [])
        entry, _ = self._find(name, wanted)
        if entry is None:
            return None
        names: dict[str, bytes] = {}  # group DN (normalized) -> name
        found: dict[str, str] = {}  # normalized DN -> DN
        # 1. direct membership: member/uniqueMember = user DN, memberUid = user name
        terms = [eq(a, entry.dn.encode("utf-8")) for a in self.group_attributes]
        uid = entry.first(self.attribute)
        if uid is not None:
            terms += [eq(a, uid) for a in self.group_name_attributes]
        frontier: list[str] = []
        if terms:
            for g in self._group_search(terms):
                frontier += self._remember(g, names, found)
        # 2. groups named on the user's entry (memberOf)
        for raw_dn in entry.all(self.member_of_attribute):
            dn = raw_dn.decode("utf-8", "replace")
            key = self._norm(dn)
            if key in found:
                continue
            found[key] = dn
            frontier.append(dn)
            value = _dn_rdn_value(dn, self.group_name_attribute)
            if value is not None:
                names[key] = value.encode("utf-8")
            else:
                for g in self._search(dn, PRESENT_OBJECTCLASS, "base", [self.group_name_attribute], 1)[0]:
                    first = g.first(self.group_name_attribute)
                    if first is not None:
                        names[key] = first
        # 3. nested groups: groups whose member/uniqueMember is one of the groups found, level by level
        depth = 0
        while frontier and depth < self.max_depth and self.group_attributes:
            depth += 1
            terms = [eq(a, dn.encode("utf-8")) for dn in frontier for a in self.group_attributes]
            frontier = []
            for g in self._group_search(terms):
                frontier += self._remember(g, names, found)
        return list(names.values())

    @staticmethod
    def _norm(dn: str) -> str:
        return ",".join(part.strip() for part in dn.lower().split(","))

    def _remember(self, g: Entry, names: dict[str, bytes], found: dict[str, str]) -> list[str]:
        key = self._norm(g.dn)
        if key in found:
            return []
        found[key] = g.dn
        first = g.first(self.group_name_attribute)
        if first is not None:
            names[key] = first
        return [g.dn]

    def _group_search(self, terms: list[bytes]) -> list[Entry]:
        out: list[Entry] = []
        for i in range(0, len(terms), 200):  # keep the requests of huge frontiers bounded
            out += self._search(self.group_base, and_(self._group_filter_ber, or_(terms[i:i + 200])), "sub",
                                [self.group_name_attribute], 0)[0]
        return out

    def __repr__(self) -> str:
        return (f"<ldap.Backend {self.label!r} {'ldaps' if self.use_ssl else 'ldap'}://"
                f"{' '.join(str(h) for h in self.hosts)}/{self.base_dn}?{self.attribute}?{self.scope}?{self.filter}>")

