"""Host-based access rules for mod_wsgi's ``allow_access(environ, host)`` hook (``WSGIAccessScript``).

Rules follow mod_authz_host's ``Require ip`` forms:

* a full address: ``10.1.2.3``, ``2001:db8::a00:20ff:fea7:ccea``;
* a partial IPv4 address, matching whole octets: ``10``, ``172.20``, ``192.168.2``;
* a network in CIDR form (``10.1.0.0/16``, ``2001:db8:1:1::/64``) or with a netmask (``10.1.0.0/255.255.0.0``);
* ``local``: the loopback networks (127.0.0.0/8 and ::1), as ``Require local``;
* ``all``: every client.

An IPv4-mapped IPv6 client (``::ffff:10.1.2.3``) matches IPv4 rules, as in Apache. A rule written as an
IPv4-mapped IPv6 address or network (``::ffff:10.9.0.0/112``) is refused with a `ConfigError` naming its IPv4 form
(``10.9.0.0/16``), as Apache refuses ``Require ip ::ffff:...``: such a rule could never match, so a ``deny`` written
that way would let the clients it names through. A client that matches a ``deny`` rule is refused (403) even when it
also matches ``allow``; one that matches ``allow`` is admitted; anything else gets ``default`` (``None``: no decision,
Apache's other access rules decide; or ``False`` to refuse).

The client is the connection's address, ``REMOTE_ADDR``, as for ``Require ip``: never the ``host`` argument of the
hook, which with ``HostnameLookups On`` is the client's reverse-DNS (PTR) name, chosen by whoever controls that DNS
zone (a PTR record can say ``10.1.2.3``). Where rules exist and the environ has no ``REMOTE_ADDR`` (or an empty one,
as gunicorn on a Unix socket sets it), the client is refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from .exceptions import ConfigError

__all__ = ["HostRules", "allow_access", "client_host", "parse_rule"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_LOCAL: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def parse_rule(rule: str) -> tuple[Network, ...]:
    """The networks one ``Require ip``-style rule stands for.

    Raises:
        ConfigError: the rule is none of the accepted forms (the message quotes it).
    """
    text = rule.strip()
    if not text:
        raise ConfigError("empty host rule")
    low = text.lower()
    if low == "local":
        return _LOCAL
    if low == "all":
        return (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
    if ":" in text:
        _refuse_mapped(rule, text)
    try:
        if "/" in text:
            addr, _, mask = text.partition("/")
            if "." in mask:  # 10.1.0.0/255.255.0.0
                return (ipaddress.IPv4Network(f"{addr}/{mask}", strict=False),)
            return (ipaddress.ip_network(text, strict=False),)
        if ":" in text:
            return (ipaddress.ip_network(text),)
        parts = text.rstrip(".").split(".")
        if len(parts) < 4:  # partial IPv4: whole octets
            if not all(p.isdigit() and int(p) <= 255 for p in parts):
                raise ValueError(text)
            octets = [*parts, *["0"] * (4 - len(parts))]
            return (ipaddress.IPv4Network(f"{'.'.join(octets)}/{8 * len(parts)}"),)
        return (ipaddress.ip_network(text),)
    except ValueError:
        raise ConfigError(
            f"host rule {rule!r} is not an IP address, a partial IPv4 address, a network "
            "(CIDR or address/netmask), 'local' or 'all'"
        ) from None


def _refuse_mapped(rule: str, text: str) -> None:
    """Refuse an IPv4-mapped IPv6 rule (``::ffff:10.9.0.0/112``), as Apache does: clients with such addresses are
    matched as IPv4 clients, so the rule would never match anyone (a deny rule that silently denies nothing)."""
    addr, _, bits = text.partition("/")
    try:
        mapped = ipaddress.IPv6Address(addr).ipv4_mapped
    except ValueError:
        return  # not an IPv6 address: the caller's parse says what is wrong
    if mapped is None:
        return
    hint = str(mapped)
    if bits.isdigit() and 96 <= int(bits) <= 128:
        hint = str(ipaddress.IPv4Network(f"{mapped}/{int(bits) - 96}", strict=False))
    raise ConfigError(f"host rule {rule!r} is an IPv4-mapped IPv6 address, which never matches (IPv4-mapped "
                      f"clients are matched as IPv4 clients, and Apache refuses such rules): write it as IPv4 ({hint})")


def _client(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]  # zone index
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None  # a host name (HostnameLookups On) or garbage: matches no address rule
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def client_host(environ: Mapping[str, Any] | None, host: str = "") -> str:
    """The address to match: the environ's ``REMOTE_ADDR``, as mod_authz_host's ``Require ip`` uses; ``""`` when
    there is none (which every address rule refuses).

    ``host`` is not used. With ``HostnameLookups On`` mod_wsgi passes the client's unverified reverse-DNS name
    there, and a PTR record may well spell an IP address (``10.1.2.3``) that is not the client's.
    """
    if environ:
        addr = environ.get("REMOTE_ADDR")
        if isinstance(addr, str):
            return addr.strip()
    return ""


class HostRules:
    """A callable ``host -> True | False | None`` built from allow and deny rules.

    Args:
        allow: rules whose clients are admitted.
        deny: rules whose clients are refused (checked first).
        default: the answer for a client no rule matches: ``None`` (no decision) or ``False`` (refuse).

    Raises:
        ConfigError: a rule cannot be parsed.
    """

    def __init__(self, allow: Iterable[str] = (), deny: Iterable[str] = (), default: bool | None = None) -> None:
        self.allow: tuple[Network, ...] = tuple(n for r in _rules(allow) for n in parse_rule(r))
        self.deny: tuple[Network, ...] = tuple(n for r in _rules(deny) for n in parse_rule(r))
        self.default = default

    def __call__(self, host: str) -> bool | None:
        addr = _client(host)
        if addr is None:
            return False if self.deny or self.allow else self.default
        if any(addr in n for n in self.deny if n.version == addr.version):
            return False
        if any(addr in n for n in self.allow if n.version == addr.version):
            return True
        return self.default

    def __repr__(self) -> str:
        return f"HostRules(allow={[str(n) for n in self.allow]}, deny={[str(n) for n in self.deny]})"


def _rules(rules: Iterable[str]) -> list[str]:
    if isinstance(rules, str):  # one string of space-separated rules, as in `Require ip 10 172.20`
        return rules.split()
    return [w for r in rules for w in r.split()]


def allow_access(
    allow: Iterable[str] = (), deny: Iterable[str] = (), default: bool | None = None
) -> Any:
    """An ``allow_access(environ, host)`` function for an access script::

        from wsgiauth.hostaccess import allow_access as rules
        allow_access = rules(allow=["local", "10.0.0.0/8"], deny=["10.9.0.0/16"], default=False)
    """
    hostrules = HostRules(allow, deny, default)

    def allow_access(environ: Mapping[str, Any], host: str) -> bool | None:
        try:
            return hostrules(client_host(environ))
        except Exception:  # noqa: BLE001 - never a 500 from an access check: refuse
            return False

    allow_access.rules = hostrules  # type: ignore[attr-defined]
    return allow_access
