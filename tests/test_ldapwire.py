"""The BER codec of the LDAP backend's per-request operations (wsgiauth._ldapwire), without a server: the encodings
against hand-written BER and ldap3's own filter compiler, and the decoder against well-formed, broken and hostile
answers written into a socket pair."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backends.hostile_ldap import bind_success, search_outcome
from wsgiauth._ldapwire import (
    MAX_MESSAGE,
    NOTICE_OF_DISCONNECTION,
    ConnectionLost,
    Entry,
    ProtocolError,
    Wire,
    and_,
    ber_int,
    eq,
    ldap_result,
    tlv,
    tlv_at,
)
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
    (_message(0, tlv(0x78, ber_int(0x0A, 52) + tlv(0x04, b"") + tlv(0x04, b"") + tlv(0x8A, NOTICE_OF_DISCONNECTION))),
     "ended the session"),
    (_message(0, tlv(0x78, ber_int(0x0A, 52) + tlv(0x04, b"") + tlv(0x04, b""))), "unsolicited notification"),
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


# ---------------------------------------------------------------------- strict decoding (RFC 4511 section 5.1)


def _bind_reply(wire: Wire, theirs: socket.socket, reply: bytes) -> tuple[int, str]:
    """``wire.bind`` answered with ``reply`` (written before the request, then the stream ends)."""
    theirs.sendall(reply)
    theirs.shutdown(socket.SHUT_WR)
    return wire.bind(b"uid=alice,dc=example,dc=org", b"secret")


def _op(tag: int, content: bytes, mid: int = 1001) -> bytes:
    return _message(mid, tlv(tag, content))


_RESULT_OK = b"\x0a\x01\x00\x04\x00\x04\x00"
# bind responses that a lenient decoder reads as success, each one malformed in one way
MALFORMED_BINDS: dict[str, bytes] = {
    "zero-length-enumerated": _op(0x61, b"\x0a\x00\x04\x00\x04\x00"),
    "non-minimal-enumerated": _op(0x61, b"\x0a\x02\x00\x00\x04\x00\x04\x00"),
    "non-minimal-negative-enumerated": _op(0x61, b"\x0a\x02\xff\xff\x04\x00\x04\x00"),
    "negative-result-code": _op(0x61, b"\x0a\x01\xff\x04\x00\x04\x00"),
    "five-octet-enumerated": _op(0x61, b"\x0a\x05\x00\x00\x00\x00\x00\x04\x00\x04\x00"),
    "integer-for-enumerated": _op(0x61, b"\x02\x01\x00\x04\x00\x04\x00"),
    "empty-message-id": tlv(0x30, b"\x02\x00" + tlv(0x61, _RESULT_OK)),
    "non-minimal-message-id": tlv(0x30, b"\x02\x03\x00\x03\xe9" + tlv(0x61, _RESULT_OK)),
    "enumerated-message-id": tlv(0x30, b"\x0a\x02\x03\xe9" + tlv(0x61, _RESULT_OK)),
    "wrong-message-id": _op(0x61, _RESULT_OK, mid=1002),
    "bind-response-with-message-id-0": _op(0x61, _RESULT_OK, mid=0),
    "notice-of-disconnection-first": _message(0, tlv(0x78, _RESULT_OK + tlv(0x8A, NOTICE_OF_DISCONNECTION)))
    + _op(0x61, _RESULT_OK),
    "unknown-unsolicited-notification-first": _message(0, tlv(0x78, _RESULT_OK + tlv(0x8A, b"1.2.3.4")))
    + _op(0x61, _RESULT_OK),
    "indefinite-message-length": b"\x30\x80\x02\x02\x03\xe9" + tlv(0x61, _RESULT_OK) + b"\x00\x00",
    "indefinite-op-length": tlv(0x30, b"\x02\x02\x03\xe9\x61\x80" + _RESULT_OK + b"\x00\x00"),
    "op-longer-than-the-message": tlv(0x30, b"\x02\x02\x03\xe9\x61\x09" + _RESULT_OK),
    "result-code-longer-than-the-op": tlv(0x30, b"\x02\x02\x03\xe9" + tlv(0x61, b"\x0a\x08\x00\x04\x00\x04\x00")),
    "five-octet-length": tlv(0x30, b"\x02\x02\x03\xe9\x61\x85\x00\x00\x00\x00\x07" + _RESULT_OK),
    "diagnostic-missing": _op(0x61, b"\x0a\x01\x00\x04\x00"),
    "garbage-after-the-result": _op(0x61, _RESULT_OK + b"\x04\x00"),
    "garbage-after-the-op": tlv(0x30, b"\x02\x02\x03\xe9" + tlv(0x61, _RESULT_OK) + b"\x05\x00"),
    "bytes-after-the-message": _op(0x61, _RESULT_OK) + b"\x00",
    "two-bind-responses": _op(0x61, _RESULT_OK) + _op(0x61, _RESULT_OK),
    "constructed-matched-dn": _op(0x61, b"\x0a\x01\x00\x24\x00\x04\x00"),
    "search-done-for-a-bind": _op(0x65, _RESULT_OK),
    "high-tag-number-op": tlv(0x30, b"\x02\x02\x03\xe9\x7f\x21\x07" + _RESULT_OK),
    "not-a-sequence": b"\x31" + _op(0x61, _RESULT_OK)[1:],
    "empty-referral": _op(0x61, _RESULT_OK + b"\xa3\x00"),
    "control-criticality-false": tlv(0x30, b"\x02\x02\x03\xe9" + tlv(0x61, _RESULT_OK)
                                     + tlv(0xA0, tlv(0x30, tlv(0x04, b"1.2.3") + b"\x01\x01\x00"))),
    "truncated": _op(0x61, _RESULT_OK)[:-1],
    "nothing": b"",
}
# well-formed variants a strict decoder must still accept
WELL_FORMED_BINDS: dict[str, bytes] = {
    "minimal": _op(0x61, _RESULT_OK),
    # Active Directory and others write every length in the 4-octet long form
    "long-form-lengths": b"\x30\x84\x00\x00\x00\x15\x02\x02\x03\xe9\x61\x84\x00\x00\x00\x0b"
                         b"\x0a\x01\x00\x04\x84\x00\x00\x00\x00\x04\x00",
    "with-a-response-control": tlv(0x30, b"\x02\x02\x03\xe9" + tlv(0x61, _RESULT_OK)
                                   + tlv(0xA0, tlv(0x30, tlv(0x04, b"1.3.6.1.4.1.42.2.27.8.5.1") + b"\x01\x01\xff"
                                                   + tlv(0x04, b"\x30\x00")))),
    "with-server-sasl-creds": _op(0x61, _RESULT_OK + tlv(0x87, b"")),
    "with-a-diagnostic": _op(0x61, b"\x0a\x01\x00\x04\x00" + tlv(0x04, b"fine")),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_BINDS))
def test_a_malformed_bind_response_is_a_protocol_error(pair: tuple[Wire, socket.socket], name: str) -> None:
    wire, theirs = pair
    with pytest.raises(ConnectionLost):
        _bind_reply(wire, theirs, MALFORMED_BINDS[name])


@pytest.mark.parametrize("name", ["zero-length-enumerated", "non-minimal-enumerated", "indefinite-op-length",
                                  "bytes-after-the-message", "wrong-message-id"])
def test_the_error_says_what_is_wrong(pair: tuple[Wire, socket.socket], name: str) -> None:
    wire, theirs = pair
    expected = {"zero-length-enumerated": "empty resultCode", "non-minimal-enumerated": "non-minimal resultCode",
                "indefinite-op-length": "indefinite", "bytes-after-the-message": "after the final response",
                "wrong-message-id": "message id 1002"}[name]
    with pytest.raises(ProtocolError, match=expected):
        _bind_reply(wire, theirs, MALFORMED_BINDS[name])


@pytest.mark.parametrize("name", sorted(WELL_FORMED_BINDS))
def test_well_formed_bind_responses_are_read(pair: tuple[Wire, socket.socket], name: str) -> None:
    wire, theirs = pair
    assert _bind_reply(wire, theirs, WELL_FORMED_BINDS[name])[0] == 0


def test_the_reference_check_agrees_on_the_named_cases() -> None:
    """The fuzz tests' oracle (backends/hostile_ldap.py, written apart from the codec) on the cases above."""
    assert not any(bind_success(reply, 1001) for reply in MALFORMED_BINDS.values())
    assert all(bind_success(reply, 1001) for reply in WELL_FORMED_BINDS.values())


def test_a_notice_of_disconnection_between_search_entries(pair: tuple[Wire, socket.socket]) -> None:
    wire, theirs = pair
    entry = tlv(0x64, tlv(0x04, b"uid=alice,dc=example,dc=org") + tlv(0x30, b""))
    done = tlv(0x65, _RESULT_OK)
    nod = _message(0, tlv(0x78, ber_int(0x0A, 52) + tlv(0x04, b"") + tlv(0x04, b"")
                          + tlv(0x8A, NOTICE_OF_DISCONNECTION)))
    theirs.sendall(_message(1001, entry) + nod + _message(1001, done))
    with pytest.raises(ConnectionLost, match="notice of disconnection"):
        wire.search("dc=example,dc=org", 2, 2, 5, eq("uid", b"alice"), ["uid"])


@pytest.mark.parametrize("entry", [
    tlv(0x64, tlv(0x04, b"uid=alice") + tlv(0x30, b"") + b"\x04\x00"),  # garbage after the attributes
    tlv(0x64, tlv(0x04, b"uid=alice")),  # no attribute list
    tlv(0x64, tlv(0x04, b"uid=alice") + tlv(0x30, tlv(0x30, tlv(0x04, b"uid") + tlv(0x31, b"\x02\x01\x00")))),
    tlv(0x64, tlv(0x04, b"uid=alice") + tlv(0x30, tlv(0x30, tlv(0x04, b"uid")))),  # no value set
    tlv(0x64, tlv(0x04, b"uid=alice") + tlv(0x30, tlv(0x31, tlv(0x04, b"uid") + tlv(0x31, b"")))),
    tlv(0x73, b""),  # an empty referral
    tlv(0x73, b"\x02\x01\x00"),
    tlv(0x61, _RESULT_OK),  # a bindResponse in a search
])
def test_a_malformed_search_answer_is_a_protocol_error(pair: tuple[Wire, socket.socket], entry: bytes) -> None:
    wire, theirs = pair
    theirs.sendall(_message(1001, entry) + _message(1001, tlv(0x65, _RESULT_OK)))
    with pytest.raises(ProtocolError):
        wire.search("dc=example,dc=org", 2, 2, 5, eq("uid", b"alice"), ["uid"])


@pytest.mark.parametrize("done", [b"\x0a\x00\x04\x00\x04\x00", b"\x0a\x02\x00\x00\x04\x00\x04\x00",
                                  _RESULT_OK + b"\x87\x00", _RESULT_OK + b"\xa3\x00"])
def test_a_malformed_search_done_is_a_protocol_error(pair: tuple[Wire, socket.socket], done: bytes) -> None:
    wire, theirs = pair
    theirs.sendall(_message(1001, tlv(0x65, done)))
    with pytest.raises(ProtocolError):
        wire.search("dc=example,dc=org", 2, 2, 5, eq("uid", b"alice"), ["uid"])


# ---------------------------------------------------------------------- fuzz: the codec against the reference check


def _mutate(data: bytes, draw: Any) -> bytes:
    """One to three random edits: flip, insert, delete, truncate, append, or write a chosen tricky byte."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "append", "set"]))
        i = draw(st.integers(0, max(0, len(out) - 1)))
        byte = draw(st.one_of(st.integers(0, 255), st.sampled_from([0x00, 0x01, 0x02, 0x04, 0x0A, 0x30, 0x61, 0x7F,
                                                                    0x80, 0x81, 0x84, 0x85, 0xA0, 0xA3, 0xFF])))
        if kind == "flip" and out:
            out[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            out.insert(i, byte)
        elif kind == "delete" and out:
            del out[i]
        elif kind == "truncate":
            del out[i:]
        elif kind == "append":
            out += bytes([byte])
        elif kind == "set" and out:
            out[i] = byte
    return bytes(out)


_FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(st.sampled_from(sorted({**WELL_FORMED_BINDS, **MALFORMED_BINDS}.values())), st.data())
def test_fuzzed_bind_responses_succeed_exactly_when_well_formed(seed: bytes, data: Any) -> None:
    """A mutated bind response: the codec reports success exactly when the reference check calls it a
    well-formed bindResponse(success) to this message id; anything else is ConnectionLost, never another error."""
    reply = _mutate(seed, data.draw)
    ours, theirs = socket.socketpair()
    wire = Wire(_Conn(ours), timeout=2.0)
    try:
        try:
            code: int | None = _bind_reply(wire, theirs, reply)[0]
        except ConnectionLost:
            code = None
        assert (code == 0) == bind_success(reply, 1001), reply.hex()
    finally:
        wire.close()
        theirs.close()


def _search_seed(entries: int, extra: bytes = b"") -> bytes:
    attrs = tlv(0x30, tlv(0x30, tlv(0x04, b"uid") + tlv(0x31, tlv(0x04, b"alice"))))
    out = b"".join(_message(1001, tlv(0x64, tlv(0x04, f"uid=u{i},dc=x".encode()) + attrs)) for i in range(entries))
    return out + extra + _message(1001, tlv(0x65, _RESULT_OK))


@_FUZZ
@given(st.sampled_from([_search_seed(0), _search_seed(1), _search_seed(2),
                        _search_seed(1, _message(1001, tlv(0x73, tlv(0x04, b"ldap://x/"))))]), st.data())
def test_fuzzed_search_answers_complete_exactly_when_well_formed(seed: bytes, data: Any) -> None:
    reply = _mutate(seed, data.draw)
    ours, theirs = socket.socketpair()
    wire = Wire(_Conn(ours), timeout=2.0)
    try:
        theirs.sendall(reply)
        theirs.shutdown(socket.SHUT_WR)
        try:
            entries, code, _ = wire.search("dc=x", 2, 2, 5, eq("uid", b"alice"), ["uid"])
            got: list[str] | None = [e.dn for e in entries] if code == 0 else None
        except ConnectionLost:
            got = None
        expected = search_outcome(reply, 1001)
        assert got == (None if expected is None else [d.decode("utf-8", "replace") for d in expected]), reply.hex()
    finally:
        wire.close()
        theirs.close()
