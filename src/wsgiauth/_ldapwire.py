"""The LDAP messages of the per-request operations, written and read directly in BER (RFC 4511).

ldap3 opens each pooled connection (TCP, LDAPS or STARTTLS with certificate and host name checks, the service
account's bind). The operations every request makes, the user search and the credential bind (and the Who-am-I that
validates an idle connection), are then written and read here on the connection's socket: ldap3 builds each request
through pyasn1 and decodes it again for its own bookkeeping, which cost more CPU per request than everything else
together (see docs/benchmarks.md). A user name travels as the raw value of an equality assertion (an OCTET STRING),
never as filter text, so it cannot change the filter whatever it contains.

Anything the server sends that is not the expected LDAP message (a broken length, a truncated element, an unknown
operation, a message over `MAX_MESSAGE`) raises `ConnectionLost`: the pool discards the connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_MESSAGE", "PRESENT_OBJECTCLASS", "ConnectionLost", "Entry", "Wire", "and_", "ber_int", "eq",
           "ldap_result", "or_", "tlv", "tlv_at"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One search result: the DN and the raw values of the attributes asked for (lower-cased names)."""

    dn: str
    attributes: dict[str, list[bytes]]

    def first(self, name: str | None) -> bytes | None:
        if not name:
            return None
        values = self.attributes.get(name.lower())
        return values[0] if values else None

    def all(self, name: str | None) -> list[bytes]:
        return list(self.attributes.get(name.lower(), ())) if name else []


# ---------------------------------------------------------------------- encoding

# No single answer to a user search, bind or group search comes near this; a larger length is a broken or hostile
# peer, refused before any buffering.
MAX_MESSAGE = 16 << 20


class ConnectionLost(ConnectionError):
    """The connection broke, timed out or spoke something that is not LDAP: discard it."""


def ber_len(n: int) -> bytes:
    """The BER length octets of `n` (short form below 128, else long form)."""
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def tlv(tag: int, content: bytes) -> bytes:
    """One BER element: `tag`, the length of `content`, `content`."""
    return bytes((tag,)) + ber_len(len(content)) + content


def ber_int(tag: int, value: int) -> bytes:
    """An INTEGER or ENUMERATED element (two's complement, shortest form) under `tag`."""
    return tlv(tag, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def eq(attribute: str, value: bytes) -> bytes:
    """The BER of the filter ``(attribute=value)`` with ``value`` taken literally."""
    return tlv(0xA3, tlv(0x04, attribute.encode("ascii")) + tlv(0x04, value))


def and_(*parts: bytes) -> bytes:
    """The filter `(&part...)`."""
    return tlv(0xA0, b"".join(parts))


def or_(parts: Sequence[bytes]) -> bytes:
    """The filter `(|part...)`, or the one part itself."""
    return parts[0] if len(parts) == 1 else tlv(0xA1, b"".join(parts))


#: The filter `(objectClass=*)`.
PRESENT_OBJECTCLASS = tlv(0x87, b"objectClass")


def tlv_at(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """``(tag, content start, content end)`` of the BER element at ``pos``."""
    if pos + 2 > end:
        raise ConnectionLost("truncated LDAP message")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first >= 0x80:
        k = first & 0x7F
        if not 0 < k <= 4 or pos + k > end:
            raise ConnectionLost("bad BER length in LDAP message")
        length = int.from_bytes(data[pos:pos + k], "big")
        pos += k
    else:
        length = first
    if pos + length > end:
        raise ConnectionLost("truncated LDAP message")
    return tag, pos, pos + length


def ldap_result(data: bytes, pos: int, end: int) -> tuple[int, str]:
    """``(resultCode, diagnosticMessage)`` of an LDAPResult."""
    _, a, b = tlv_at(data, pos, end)
    code = int.from_bytes(data[a:b], "big")
    _, a, b = tlv_at(data, b, end)  # matchedDN
    _, a, b = tlv_at(data, b, end)
    return code, data[a:b].decode("utf-8", "replace")


class Wire:
    """A pooled LDAP connection: the ldap3 connection that opened it, and its socket for the hot operations."""

    __slots__ = ("buf", "conn", "mid", "sock")

    def __init__(self, conn: Any, timeout: float) -> None:
        self.conn = conn
        self.sock = conn.socket
        self.sock.settimeout(timeout)
        self.mid = 1000
        self.buf = bytearray()

    def send(self, op: bytes) -> int:
        """Send one protocol operation in an LDAPMessage with the next message id; returns that id."""
        self.mid = self.mid + 1 if self.mid < 0x7FFFFFFF else 1000
        self.sock.sendall(tlv(0x30, ber_int(0x02, self.mid) + op))
        return self.mid

    def receive(self, mid: int) -> tuple[int, bytes, int, int]:
        """The next message for ``mid``: ``(protocolOp tag, message, op content start, op content end)``."""
        while True:
            msg = self._message()
            _, a, b = tlv_at(msg, 0, len(msg))
            _, ia, ib = tlv_at(msg, a, b)
            got = int.from_bytes(msg[ia:ib], "big")
            tag, oa, ob = tlv_at(msg, ib, b)
            if got == mid:
                return tag, msg, oa, ob
            if got == 0:  # unsolicited notification (notice of disconnection)
                raise ConnectionLost("the server ended the session")
            raise ConnectionLost(f"unexpected LDAP message id {got} (waiting for {mid})")

    def _message(self) -> bytes:
        buf = self.buf
        while True:
            if len(buf) >= 2:
                first = buf[1]
                head, length = 2, first
                if first >= 0x80:
                    k = first & 0x7F
                    if not 0 < k <= 4:
                        raise ConnectionLost("bad BER length from the server")
                    head = 2 + k
                    length = int.from_bytes(buf[2:head], "big") if len(buf) >= head else -1
                    if length > MAX_MESSAGE:
                        raise ConnectionLost("LDAP message larger than 16 MiB: not buffering it")
                if length >= 0 and len(buf) >= head + length:
                    msg = bytes(buf[:head + length])
                    del buf[:head + length]
                    return msg
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionLost("the server closed the connection")
            buf += chunk

    def search(self, base: str, scope: int, size_limit: int, time_limit: int, filt: bytes,
               attributes: Sequence[str]) -> tuple[list[Entry], int, str]:
        """A SearchRequest (derefAliases always, typesOnly false) and its answers.

        Args:
            base: the base DN.
            scope: 0 base, 1 one level, 2 subtree.
            size_limit: the most entries the server may return (0: its own limit).
            time_limit: seconds the server may spend (0: its own limit).
            filt: the filter, in BER.
            attributes: the attributes to return (`1.1` for none).

        Returns:
            `(entries, resultCode, diagnosticMessage)`; referrals are skipped.

        Raises:
            ConnectionLost: the connection broke or the answer is not LDAP.
        """
        attrs = tlv(0x30, b"".join(tlv(0x04, a.encode("ascii")) for a in attributes))
        op = tlv(0x63, tlv(0x04, base.encode("utf-8")) + ber_int(0x0A, scope) + ber_int(0x0A, 3)
                 + ber_int(0x02, size_limit) + ber_int(0x02, time_limit) + b"\x01\x01\x00" + filt + attrs)
        mid = self.send(op)
        entries: list[Entry] = []
        while True:
            tag, msg, a, b = self.receive(mid)
            if tag == 0x64:  # SearchResultEntry
                _, na, nb = tlv_at(msg, a, b)
                dn = msg[na:nb].decode("utf-8", "replace")
                _, la, lb = tlv_at(msg, nb, b)
                values: dict[str, list[bytes]] = {}
                pos = la
                while pos < lb:
                    _, pa, pb = tlv_at(msg, pos, lb)
                    _, ta, tb = tlv_at(msg, pa, pb)
                    _, sa, sb = tlv_at(msg, tb, pb)
                    vals = values.setdefault(msg[ta:tb].decode("ascii", "replace").lower(), [])
                    vpos = sa
                    while vpos < sb:
                        _, va, vb = tlv_at(msg, vpos, sb)
                        vals.append(msg[va:vb])
                        vpos = vb
                    pos = pb
                entries.append(Entry(dn, values))
            elif tag == 0x65:  # SearchResultDone
                code, diag = ldap_result(msg, a, b)
                return entries, code, diag
            elif tag != 0x73:  # anything but a (skipped) referral
                raise ConnectionLost(f"unexpected LDAP operation 0x{tag:02x} in a search")

    def bind(self, dn: bytes, password: bytes) -> tuple[int, str]:
        """A simple bind as `dn`; returns `(resultCode, diagnosticMessage)` (49: invalid credentials)."""
        mid = self.send(tlv(0x60, b"\x02\x01\x03" + tlv(0x04, dn) + tlv(0x80, password)))
        tag, msg, a, b = self.receive(mid)
        if tag != 0x61:
            raise ConnectionLost(f"unexpected LDAP operation 0x{tag:02x} after a bind")
        return ldap_result(msg, a, b)

    def who_am_i(self) -> int:
        """The Who-am-I extended operation (RFC 4532); returns its resultCode."""
        mid = self.send(tlv(0x77, tlv(0x80, b"1.3.6.1.4.1.4203.1.11.3")))
        tag, msg, a, b = self.receive(mid)
        if tag != 0x78:
            raise ConnectionLost(f"unexpected LDAP operation 0x{tag:02x} after an extended request")
        return ldap_result(msg, a, b)[0]

    def close(self) -> None:
        """Unbind and close (errors of a broken connection are ignored)."""
        try:
            self.conn.unbind()
        except Exception:  # noqa: BLE001, S110 - closing a broken connection may fail, which is fine
            pass
