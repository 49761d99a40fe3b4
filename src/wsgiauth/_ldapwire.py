"""The LDAP messages of the per-request operations, written and read directly in BER (RFC 4511).

ldap3 opens each pooled connection (TCP, LDAPS or STARTTLS with certificate and host name checks, the service
account's bind). The operations every request makes, the user search and the credential bind (and the Who-am-I that
validates an idle connection), are then written and read here on the connection's socket: ldap3 builds each request
through pyasn1 and decodes it again for its own bookkeeping, which cost more CPU per request than everything else
together (see docs/benchmarks.md). A user name travels as the raw value of an equality assertion (an OCTET STRING),
never as filter text, so it cannot change the filter whatever it contains.

Answers are decoded strictly: every element must carry the tag RFC 4511 gives it at that place and end exactly where
its container ends; lengths are definite (RFC 4511 section 5.1; the long form with up to four length octets is
accepted, as OpenLDAP's liblber and Active Directory write it); an INTEGER or ENUMERATED (message id, result code)
has one to four content octets in the shortest two's complement form (X.690 8.3.2) and is not negative; a response
carries the message id of its request; nothing may follow an operation's final response. A message that breaks any
of these rules raises `ProtocolError`, a message id 0 (an unsolicited notification, RFC 4511 section 4.4: a Notice
of Disconnection or any other) raises `ConnectionLost`, and so do a closed socket, a timeout and a message over
`MAX_MESSAGE`: the pool discards the connection, and the operation never succeeds on such an answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_MESSAGE", "NOTICE_OF_DISCONNECTION", "PRESENT_OBJECTCLASS", "ConnectionLost", "Entry",
           "ProtocolError", "Wire", "and_", "ber_int", "eq", "ldap_result", "or_", "read_int", "tlv", "tlv_at"]


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

#: The responseName of the Notice of Disconnection (RFC 4511 section 4.4.1).
NOTICE_OF_DISCONNECTION = b"1.3.6.1.4.1.1466.20036"


class ConnectionLost(ConnectionError):
    """The connection broke, timed out, or the server ended the session: discard it."""


class ProtocolError(ConnectionLost):
    """The server sent something that is not a well-formed LDAP message (RFC 4511): discard the connection."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"LDAP protocol error: {detail}")


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


# ---------------------------------------------------------------------- strict decoding

_TAG_NAMES = {0x02: "INTEGER", 0x04: "OCTET STRING", 0x0A: "ENUMERATED", 0x30: "SEQUENCE", 0x31: "SET",
              0x61: "bindResponse", 0x64: "searchResEntry", 0x65: "searchResDone", 0x73: "searchResRef",
              0x78: "extendedResp"}


def _tag_name(tag: int) -> str:
    return _TAG_NAMES.get(tag, f"0x{tag:02x}")


def _length(data: bytes | bytearray, pos: int, end: int) -> tuple[int, int]:
    """``(length, position after the length octets)`` of the length at ``pos`` (definite form only).

    Returns ``(-1, pos)`` when the length octets do not all lie before ``end`` (more data may be on its way).
    """
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    k = first & 0x7F
    if k == 0:
        raise ProtocolError("bad BER length: indefinite (RFC 4511 allows definite lengths only)")
    if k > 4:
        raise ProtocolError(f"bad BER length: {k} length octets")
    if pos + 1 + k > end:
        return -1, pos
    return int.from_bytes(data[pos + 1:pos + 1 + k], "big"), pos + 1 + k


def tlv_at(data: bytes, pos: int, end: int, tag: int | None = None) -> tuple[int, int, int]:
    """``(tag, content start, content end)`` of the BER element at ``pos``, which must end by ``end``.

    Raises:
        ProtocolError: the element runs past ``end``, its length is indefinite or over four octets, its tag is a
            multi-octet one (LDAP uses none), or it is not ``tag`` (when given).
    """
    if pos + 2 > end:
        raise ProtocolError("truncated LDAP message (an element is cut short)")
    got = data[pos]
    if got != tag:
        if got & 0x1F == 0x1F:
            raise ProtocolError(f"multi-octet BER tag 0x{got:02x}")
        if tag is not None:
            raise ProtocolError(f"{_tag_name(got)} where {_tag_name(tag)} belongs")
    start = pos + 2
    length = data[pos + 1]
    if length >= 0x80:  # the long form
        length, start = _length(data, pos + 1, end)
        if length < 0:
            raise ProtocolError("truncated LDAP message (an element is cut short)")
    stop = start + length
    if stop > end:
        raise ProtocolError("truncated LDAP message (an element runs past its container)")
    return got, start, stop


def read_int(data: bytes, pos: int, end: int, tag: int, what: str) -> tuple[int, int]:
    """``(value, position after it)`` of a non-negative INTEGER/ENUMERATED under ``tag`` at ``pos``.

    Raises:
        ProtocolError: another tag, no content octets, more than four, a non-minimal encoding
            (``0a 02 00 00``) or a negative value.
    """
    if pos + 3 <= end and data[pos] == tag:  # the usual case: short form, well-formed
        a = pos + 2
        n = data[pos + 1]
        if 0 < n <= 4 and a + n <= end:
            first = data[a]
            if first < 0x80 and (n == 1 or first or data[a + 1] >= 0x80):
                return int.from_bytes(data[a:a + n], "big"), a + n
    _, a, b = tlv_at(data, pos, end, tag)
    n = b - a
    if n == 0:
        raise ProtocolError(f"empty {what} (an INTEGER has at least one content octet)")
    if n > 4:
        raise ProtocolError(f"{what} of {n} octets")
    first = data[a]
    if n > 1 and ((first == 0 and data[a + 1] < 0x80) or (first == 0xFF and data[a + 1] >= 0x80)):
        raise ProtocolError(f"non-minimal {what} encoding")
    if first >= 0x80:
        raise ProtocolError(f"negative {what}")
    return int.from_bytes(data[a:b], "big"), b


def ldap_result(data: bytes, pos: int, end: int, optional: tuple[int, ...] = ()) -> tuple[int, str]:
    """``(resultCode, diagnosticMessage)`` of the LDAPResult that fills ``data[pos:end]``.

    After the three fields may come a referral (``[3]``) and then, in that order, elements with the tags in
    ``optional`` (a bindResponse's serverSaslCreds, an extendedResp's responseName and responseValue); nothing else.
    """
    code, pos = read_int(data, pos, end, 0x0A, "resultCode")
    _, _, pos = tlv_at(data, pos, end, 0x04)  # matchedDN
    _, a, b = tlv_at(data, pos, end, 0x04)
    pos = b
    if pos < end and data[pos] == 0xA3:  # referral: SEQUENCE OF URI
        _, ra, pos = tlv_at(data, pos, end, 0xA3)
        _uris(data, ra, pos)
    for tag in optional:
        if pos < end and data[pos] == tag:
            _, _, pos = tlv_at(data, pos, end, tag)
    if pos != end:
        raise ProtocolError(f"unexpected {_tag_name(data[pos])} after an LDAPResult")
    return code, data[a:b].decode("utf-8", "replace")


def _uris(data: bytes, pos: int, end: int) -> None:
    """Check a referral or a searchResRef: one or more URIs (OCTET STRINGs) filling ``data[pos:end]``."""
    if pos == end:
        raise ProtocolError("a referral without a URI")
    _octet_strings(data, pos, end)


def _controls(data: bytes, pos: int, end: int) -> None:
    """Check the controls of an LDAPMessage (``[0]`` content): each ``SEQUENCE { controlType OCTET STRING,
    criticality BOOLEAN (TRUE, FF, or absent: RFC 4511 section 5.1) OPTIONAL, controlValue OCTET STRING OPTIONAL }``.
    Response controls carry nothing this client uses; they are checked, then ignored."""
    while pos < end:
        _, a, pos = tlv_at(data, pos, end, 0x30)
        _, _, a = tlv_at(data, a, pos, 0x04)
        if a < pos and data[a] == 0x01:
            _, ba, a = tlv_at(data, a, pos, 0x01)
            if a - ba != 1 or data[ba] != 0xFF:
                raise ProtocolError("a control's criticality is not TRUE (FF)")
        if a < pos:
            _, _, a = tlv_at(data, a, pos, 0x04)
        if a != pos:
            raise ProtocolError("unexpected data in a control")


def _octet_strings(data: bytes, pos: int, end: int) -> list[bytes]:
    """The OCTET STRINGs that fill ``data[pos:end]`` (a SET OF / SEQUENCE OF them)."""
    out = []
    while pos < end:
        _, a, pos = tlv_at(data, pos, end, 0x04)
        out.append(data[a:pos])
    return out


def _entry(msg: bytes, pos: int, end: int) -> Entry:
    """The SearchResultEntry that fills ``msg[pos:end]``."""
    _, na, nb = tlv_at(msg, pos, end, 0x04)
    _, la, lb = tlv_at(msg, nb, end, 0x30)
    if lb != end:
        raise ProtocolError("unexpected data after a searchResEntry's attributes")
    values: dict[str, list[bytes]] = {}
    pos = la
    while pos < lb:
        _, pa, pos = tlv_at(msg, pos, lb, 0x30)
        _, ta, tb = tlv_at(msg, pa, pos, 0x04)
        _, sa, sb = tlv_at(msg, tb, pos, 0x31)
        if sb != pos:
            raise ProtocolError("unexpected data after an attribute's values")
        values.setdefault(msg[ta:tb].decode("ascii", "replace").lower(), []).extend(_octet_strings(msg, sa, sb))
    return Entry(msg[na:nb].decode("utf-8", "replace"), values)


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
        """The next message, which must answer ``mid``: ``(protocolOp tag, message, op content start, end)``.

        Raises:
            ProtocolError: the message is malformed or answers another message id.
            ConnectionLost: an unsolicited notification (message id 0), or the connection broke.
        """
        msg, pos = self._message()  # one whole SEQUENCE; pos: where its content starts
        end = len(msg)
        got, pos = read_int(msg, pos, end, 0x02, "messageID")
        tag, oa, ob = tlv_at(msg, pos, end)
        if ob != end:
            if msg[ob] != 0xA0:  # only controls may follow the protocolOp
                raise ProtocolError(f"unexpected {_tag_name(msg[ob])} after the protocolOp")
            _, ca, cb = tlv_at(msg, ob, end, 0xA0)
            if cb != end:
                raise ProtocolError("unexpected data after the controls")
            _controls(msg, ca, cb)
        if got == mid:
            return tag, msg, oa, ob
        if got == 0:
            raise self._notification(tag, msg, oa, ob)
        raise ProtocolError(f"unexpected LDAP message id {got} (waiting for {mid})")

    @staticmethod
    def _notification(tag: int, msg: bytes, a: int, b: int) -> ConnectionLost:
        """What an unsolicited notification (RFC 4511 section 4.4) means here: the connection is unusable."""
        if tag != 0x78:
            return ProtocolError(f"{_tag_name(tag)} with message id 0 (only an extendedResp may be unsolicited)")
        code, diag = ldap_result(msg, a, b, (0x8A, 0x8B))
        name = b""
        pos = a
        while pos < b:  # find the responseName [10] among the fields ldap_result already checked
            t, ca, pos = tlv_at(msg, pos, b)
            if t == 0x8A:
                name = msg[ca:pos]
        if name == NOTICE_OF_DISCONNECTION:
            return ConnectionLost(f"the server ended the session (notice of disconnection, result code {code}"
                                  f"{': ' + diag if diag else ''})")
        return ConnectionLost(f"unsolicited notification {name.decode('ascii', 'replace') or '(unnamed)'} "
                              f"(result code {code}): not trusting the connection any more")

    def _trailing(self) -> ProtocolError:
        """The error for bytes that arrived after an operation's final response (nothing may: the operations are
        never pipelined, and a notification after the response is no better)."""
        return ProtocolError(f"{len(self.buf)} unexpected byte(s) after the final response")

    def _message(self) -> tuple[bytes, int]:
        """The next LDAPMessage (a whole SEQUENCE, read from the socket as needed) and where its content starts."""
        buf = self.buf
        while True:
            if len(buf) >= 2:
                if buf[0] != 0x30:
                    raise ProtocolError(f"{_tag_name(buf[0])} where an LDAPMessage (SEQUENCE) belongs")
                length, head = buf[1], 2
                if length >= 0x80:
                    length, head = _length(buf, 1, len(buf))
                    if length > MAX_MESSAGE:
                        raise ProtocolError("LDAP message larger than 16 MiB: not buffering it")
                if 0 <= length <= len(buf) - head:
                    msg = bytes(buf[:head + length])
                    del buf[:head + length]
                    return msg, head
            elif buf and buf[0] != 0x30:
                raise ProtocolError(f"{_tag_name(buf[0])} where an LDAPMessage (SEQUENCE) belongs")
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
            `(entries, resultCode, diagnosticMessage)` of the SearchResultDone; referrals are skipped.

        Raises:
            ConnectionLost: the connection broke or the answer is not well-formed LDAP (`ProtocolError`).
        """
        attrs = tlv(0x30, b"".join(tlv(0x04, a.encode("ascii")) for a in attributes))
        op = tlv(0x63, tlv(0x04, base.encode("utf-8")) + ber_int(0x0A, scope) + ber_int(0x0A, 3)
                 + ber_int(0x02, size_limit) + ber_int(0x02, time_limit) + b"\x01\x01\x00" + filt + attrs)
        mid = self.send(op)
        entries: list[Entry] = []
        while True:
            tag, msg, a, b = self.receive(mid)
            if tag == 0x64:
                entries.append(_entry(msg, a, b))
            elif tag == 0x65:
                code, diag = ldap_result(msg, a, b)
                if self.buf:
                    raise self._trailing()
                return entries, code, diag
            elif tag == 0x73:  # a referral: skipped, but it must be one (a SEQUENCE OF URI)
                _uris(msg, a, b)
            else:
                raise ProtocolError(f"unexpected LDAP operation {_tag_name(tag)} in a search")

    def bind(self, dn: bytes, password: bytes) -> tuple[int, str]:
        """A simple bind as `dn`; returns `(resultCode, diagnosticMessage)` (49: invalid credentials).

        Raises:
            ConnectionLost: the connection broke or the answer is not a well-formed bindResponse to this request
                (`ProtocolError`).
        """
        mid = self.send(tlv(0x60, b"\x02\x01\x03" + tlv(0x04, dn) + tlv(0x80, password)))
        tag, msg, a, b = self.receive(mid)
        if tag != 0x61:
            raise ProtocolError(f"unexpected LDAP operation {_tag_name(tag)} after a bind")
        result = ldap_result(msg, a, b, (0x87,))
        if self.buf:
            raise self._trailing()
        return result

    def who_am_i(self) -> int:
        """The Who-am-I extended operation (RFC 4532); returns its resultCode."""
        mid = self.send(tlv(0x77, tlv(0x80, b"1.3.6.1.4.1.4203.1.11.3")))
        tag, msg, a, b = self.receive(mid)
        if tag != 0x78:
            raise ProtocolError(f"unexpected LDAP operation {_tag_name(tag)} after an extended request")
        code = ldap_result(msg, a, b, (0x8A, 0x8B))[0]
        if self.buf:
            raise self._trailing()
        return code

    def close(self) -> None:
        """Unbind and close (errors of a broken connection are ignored)."""
        try:
            self.conn.unbind()
        except Exception:  # noqa: BLE001, S110 - closing a broken connection may fail, which is fine
            pass
