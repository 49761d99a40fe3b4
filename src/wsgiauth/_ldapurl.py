"""The Apache-style LDAP URL: ``ldap[s]://host1 host2:port/basedn?attr?scope?filter`` (``AuthLDAPURL``).

The rules follow mod_authnz_ldap's ``AuthLDAPURL`` (an RFC 4516 URL with several hosts):

* scheme ``ldap`` (port 389) or ``ldaps`` (port 636); several hosts separated by spaces, each with an optional
  ``:port`` (IPv6 literals in brackets), tried in order;
* the base DN, percent-decoded (empty: the root);
* the attribute to search for (default ``uid``); RFC 4516 allows a comma-separated list, of which only the first
  is searched (as in Apache);
* the scope ``one`` or ``sub`` (default ``sub``); ``base`` is accepted too;
* the filter (default ``(objectClass=*)``), percent-decoded, with or without surrounding parentheses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from .exceptions import ConfigError

__all__ = ["LDAPURL", "Host", "check_attribute", "normalize_filter", "parse_ldap_url"]

DEFAULT_PORTS = {"ldap": 389, "ldaps": 636}
SCOPES = ("base", "one", "sub")
DEFAULT_ATTRIBUTE = "uid"
DEFAULT_SCOPE = "sub"
DEFAULT_FILTER = "(objectClass=*)"

_ATTRIBUTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)(?:;[A-Za-z0-9-]+)*$")
_HOST = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9._-]+))(?::(?P<port>[0-9]{1,5}))?$")


@dataclass(frozen=True, slots=True)
class Host:
    """One server of an LDAP URL."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class LDAPURL:
    """A parsed ``AuthLDAPURL``.

    Attributes:
        scheme: ``"ldap"`` or ``"ldaps"``.
        hosts: the servers, in the order they are tried.
        base_dn: where searches start.
        attribute: the attribute that holds the user name.
        scope: ``"base"``, ``"one"`` or ``"sub"``.
        filter: the search filter, always in parentheses.
    """

    scheme: str
    hosts: tuple[Host, ...]
    base_dn: str
    attribute: str = DEFAULT_ATTRIBUTE
    scope: str = DEFAULT_SCOPE
    filter: str = DEFAULT_FILTER

    @property
    def use_ssl(self) -> bool:
        """Whether the scheme is ``ldaps`` (TLS from the first byte)."""
        return self.scheme == "ldaps"


def check_attribute(name: str, what: str = "attribute") -> str:
    """Check an attribute description (``uid``, ``sAMAccountName``, ``2.5.4.3``); return it.

    Raises:
        ConfigError: it is not a valid attribute name.
    """
    if not isinstance(name, str) or not _ATTRIBUTE.match(name):
        raise ConfigError(f"ldap: {what} {name!r} is not a valid LDAP attribute name (letters, digits, '-')")
    return name


def normalize_filter(text: str, what: str = "filter") -> str:
    """Return an LDAP filter in parentheses (``objectClass=*`` becomes ``(objectClass=*)``), checked for balance.

    Raises:
        ConfigError: the filter is empty or its parentheses do not balance.
    """
    text = text.strip()
    if not text:
        raise ConfigError(f"ldap: the {what} is empty")
    if not text.startswith("("):
        text = f"({text})"
    depth = 0
    escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0 or (depth == 0 and i != len(text) - 1):
                raise ConfigError(f"ldap: the {what} {text!r} is not one parenthesized filter")
    if depth != 0:
        raise ConfigError(f"ldap: the {what} {text!r} has unbalanced parentheses")
    return text


def _hosts(text: str, scheme: str, url: str) -> tuple[Host, ...]:
    hosts: list[Host] = []
    for word in text.split():
        m = _HOST.match(word)
        if m is None:
            raise ConfigError(f"ldap: bad host {word!r} in URL {url!r} (expected host, host:port or [v6]:port)")
        port = int(m.group("port")) if m.group("port") else DEFAULT_PORTS[scheme]
        if not 0 < port < 65536:
            raise ConfigError(f"ldap: bad port {port} in URL {url!r}")
        hosts.append(Host(m.group("v6") or m.group("name"), port))
    if not hosts:
        raise ConfigError(f"ldap: the URL {url!r} names no host")
    return tuple(hosts)


def parse_ldap_url(url: str) -> LDAPURL:
    """Parse an ``AuthLDAPURL``-style URL.

    Args:
        url: e.g. ``"ldap://ldap1.example.com ldap2.example.com:3389/ou=people,dc=example,dc=com?uid?sub?(o=x)"``.

    Returns:
        the parsed URL, with the defaults of mod_authnz_ldap filled in.

    Raises:
        ConfigError: the URL is malformed (the message says which part).
    """
    if not isinstance(url, str):
        raise ConfigError(f"ldap: the URL must be a str, not {type(url).__name__}")
    m = re.match(r"^\s*(?P<scheme>[A-Za-z]+)://(?P<rest>.*?)\s*$", url, re.S)
    if m is None:
        raise ConfigError(f"ldap: {url!r} is not an LDAP URL (expected ldap://host/basedn?attr?scope?filter)")
    scheme = m.group("scheme").lower()
    if scheme not in DEFAULT_PORTS:
        raise ConfigError(f"ldap: unsupported scheme {scheme!r} in {url!r} (use ldap:// or ldaps://; "
                          "STARTTLS is the starttls=True option)")
    rest = m.group("rest")
    hostpart, _, path = rest.partition("/")
    hosts = _hosts(hostpart, scheme, url)
    parts = path.split("?")
    if len(parts) > 5:
        raise ConfigError(f"ldap: too many '?' parts in {url!r} (basedn?attr?scope?filter[?extensions])")
    parts += [""] * (5 - len(parts))
    base_dn, attrs, scope, filt, extensions = parts
    if extensions:
        raise ConfigError(f"ldap: URL extensions are not supported ({extensions!r} in {url!r})")
    attribute = unquote(attrs).split(",")[0].strip() or DEFAULT_ATTRIBUTE
    check_attribute(attribute)
    scope = unquote(scope).strip().lower() or DEFAULT_SCOPE
    if scope not in SCOPES:
        raise ConfigError(f"ldap: bad scope {scope!r} in {url!r} (one, sub or base)")
    filt = unquote(filt).strip() or DEFAULT_FILTER
    return LDAPURL(scheme=scheme, hosts=hosts, base_dn=unquote(base_dn).strip(), attribute=attribute, scope=scope,
                   filter=normalize_filter(filt))
