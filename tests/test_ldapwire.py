"""The BER codec of the LDAP backend's per-request operations (wsgiauth._ldapwire), without a server: the encodings
against hand-written BER and ldap3's own filter compiler, and the decoder against well-formed, broken and hostile
answers written into a socket pair."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from wsgiauth._ldapwire import MAX_MESSAGE, ConnectionLost, Entry, Wire, and_, ber_int, eq, ldap_result, tlv, tlv_at
from wsgiauth.backends.ldap import _compile_filter


@pytest.mark.parametrize(("value", "encoded"), [
    (0, "020100"), (127, "02017f"), (128, "02020080"), (256, "02020100"), (-1, "0201ff"), (-129, "0202ff7f"),
    (0x7FFFFFFF, "02047fffffff"),
])
def test_integers_are_shortest_twos_complement(value: int, encoded: str) -> None:
    assert ber_int(0x02, value).hex() == encoded


@pytest.mark.parametrize("size", [0, 1, 127, 128, 255, 256, 65535, 65536, 1 << 20])
def test_lengths_short_and_long_form_read_back(size: int) -> None:
    element = tlv(0x04, b"x" * size)
    head = len(element) - size
    assert head == (2 if size < 128 else 2 + (size.bit_length() + 7) // 8)
    assert tlv_at(element, 0, len(element)) == (0x04, head, head + size)


@pytest.mark.parametrize("value", [b"alice", b"*", b"*)(uid=*", b"a\\2a", b"\x00", "zoë".encode(), b"(|(a=b))"])
def test_equality_filter_carries_the_value_literally(value: bytes) -> None:
    """What ldap3 compiles from the RFC 4515-escaped text: the value can never become filter syntax."""
    escaped = "".join(f"\\{b:02x}" for b in value)
    assert eq("uid", value) == _compile_filter(f"(uid={escaped})")
    assert and_(eq("objectClass", b"person"), eq("uid", value)) == _compile_filter(
        f"(&(objectClass=person)(uid={escaped}))")


@pytest.mark.parametrize("data", [
    b"", b"\x04", b"\x04\x05abc", b"\x04\x85\x00\x00\x00\x00\x01", b"\x04\x80", b"\x04\x82\x01",
])
def test_truncated_or_bad_elements_are_a_lost_connection(data: bytes) -> None:
    with pytest.raises(ConnectionLost):
        tlv_at(data, 0, len(data))


def test_result_code_and_message() -> None:
    result = ber_int(0x0A, 49) + tlv(0x04, b"") + tlv(0x04, "mot de passe invalide é".encode())
    assert ldap_result(result, 0, len(result)) == (49, "mot de passe invalide é")


class _Conn:
    """What Wire takes from an ldap3 connection: its socket, and unbind()."""

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock
        self.unbound = False

    def unbind(self) -> None:
        self.unbound = True
        self.socket.close()


@pytest.fixture
def pair() -> Iterator[tuple[Wire, socket.socket]]:
    ours, theirs = socket.socketpair()
    wire = Wire(_Conn(ours), timeout=2.0)
    yield wire, theirs
    wire.close()
    theirs.close()


def _message(mid: int, op: bytes) -> bytes:
    return tlv(0x30, ber_int(0x02, mid) + op)


def _answer(theirs: socket.socket, *messages: bytes, split: int = 0) -> threading.Thread:
    """Read the request, then write ``messages`` (in pieces of ``split`` bytes when given)."""
    def serve() -> None:
        theirs.recv(65536)
        data = b"".join(messages)
        step = split or len(data) or 1
        for i in range(0, len(data), step):
            theirs.sendall(data[i:i + step])
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def test_bind_reads_a_hand_written_response(pair: tuple[Wire, socket.socket]) -> None:
    wire, theirs = pair
    # LDAPMessage { messageID 1001, bindResponse { resultCode success, matchedDN "", diagnosticMessage "" } }
    _answer(theirs, bytes.fromhex("300d020203e961070a010004000400"))
    assert wire.bind(b"uid=alice,dc=example,dc=org", b"secret") == (0, "")


@pytest.mark.parametrize("split", [0, 1, 7])
def test_search_entries_attributes_and_done(pair: tuple[Wire, socket.socket], split: int) -> None:
    wire, theirs = pair
    attrs = tlv(0x30, tlv(0x30, tlv(0x04, b"CN") + tlv(0x31, tlv(0x04, b"Alice") + tlv(0x04, b"Al")))
                + tlv(0x30, tlv(0x04, b"mail") + tlv(0x31, b"")))
    entry = tlv(0x64, tlv(0x04, b"uid=alice,dc=example,dc=org") + attrs)
    referral = tlv(0x73, tlv(0x04, b"ldap://elsewhere/"))
    done = tlv(0x65, ber_int(0x0A, 0) + tlv(0x04, b"") + tlv(0x04, b""))
    _answer(theirs, _message(1001, entry), _message(1001, referral), _message(1001, done), split=split)
    entries, code, diag = wire.search("dc=example,dc=org", 2, 2, 5, eq("uid", b"alice"), ["cn", "mail"])
    assert (code, diag) == (0, "")
    assert entries == [Entry("uid=alice,dc=example,dc=org", {"cn": [b"Alice", b"Al"], "mail": []})]
    assert entries[0].first("Cn") == b"Alice" and entries[0].first("mail") is None


@pytest.mark.parametrize(("reply", "message"), [
    (b"", "closed the connection"),
    (b"\x30\x84" + (MAX_MESSAGE + 1).to_bytes(4, "big"), "larger than 16 MiB"),
    (b"\x30\x89", "bad BER length"),
    (_message(0, tlv(0x78, ber_int(0x0A, 52) + tlv(0x04, b"") + tlv(0x04, b""))), "ended the session"),
    (_message(7, tlv(0x61, ber_int(0x0A, 0) + tlv(0x04, b"") + tlv(0x04, b""))), "unexpected LDAP message id 7"),
    (_message(1001, tlv(0x65, ber_int(0x0A, 0) + tlv(0x04, b"") + tlv(0x04, b""))), "unexpected LDAP operation"),
])
def test_a_broken_or_hostile_answer_is_a_lost_connection(pair: tuple[Wire, socket.socket], reply: bytes,
                                                         message: str) -> None:
    wire, theirs = pair

    def serve() -> None:
        theirs.recv(65536)
        theirs.sendall(reply)
        if not reply:
            theirs.shutdown(socket.SHUT_WR)
    threading.Thread(target=serve, daemon=True).start()
    with pytest.raises(ConnectionLost, match=message):
        wire.bind(b"uid=alice", b"secret")


def test_close_unbinds_and_ignores_errors() -> None:
    ours, theirs = socket.socketpair()
    conn: Any = _Conn(ours)
    wire = Wire(conn, timeout=1.0)
    wire.close()
    assert conn.unbound
    conn.unbind = None  # a broken connection: unbind itself fails
    wire.close()
    theirs.close()
