"""A hostile LDAP server on loopback, for the tests of wsgiauth's BER decoder (``tests/test_ldap_hostile.py``).

:class:`HostileLDAP` listens on a free port of 127.0.0.1 and answers like a tiny directory holding one user
(:data:`USER_DN`, ``uid`` :data:`USER_UID`, password :data:`USER_PW`) and one service account: a well-formed
bindResponse to the service account's bind (so that ldap3 opens the connection), a well-formed search answer (one
entry) and Who-am-I. A *plan* replaces any of those answers with chosen bytes: ``server.bind_reply = lambda req:
...`` for the user's bind (any bind that is not the service account's), ``server.search_reply`` for searches.
A plan returns the raw bytes to send (anything at all, including nothing), or ``None`` for the normal answer.
``close_after`` makes the server close the connection after a planned answer (the decoder then sees the end of the
stream at once instead of waiting for its timeout).

The requests are read by a decoder of this module's own (not wsgiauth's), and :func:`bind_success` and
:func:`search_outcome` are reference checks, written independently of ``wsgiauth._ldapwire``, of what a client may
accept: the fuzz tests compare the backend's decisions with them.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from backends._common import LOOPBACK

SUFFIX = "dc=example,dc=org"
SERVICE_DN = f"cn=svc,{SUFFIX}"
SERVICE_PW = "svc.pw"
USER_DN = f"uid=alice,ou=people,{SUFFIX}"
USER_UID = "alice"
USER_PW = "secret"
GROUP_BASE = f"ou=groups,{SUFFIX}"
NOTICE_OF_DISCONNECTION = b"1.3.6.1.4.1.1466.20036"


# ---------------------------------------------------------------------- encoding (what the server writes)


def length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def el(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + length(len(content)) + content


def integer(tag: int, value: int) -> bytes:
    return el(tag, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def message(mid: int, op: bytes, *, mid_bytes: bytes | None = None) -> bytes:
    """An LDAPMessage; ``mid_bytes`` replaces the whole messageID element (to send a broken one)."""
    return el(0x30, (mid_bytes if mid_bytes is not None else integer(0x02, mid)) + op)


def result(code: int = 0, diag: bytes = b"", *, code_bytes: bytes | None = None, extra: bytes = b"") -> bytes:
    """The fields of an LDAPResult; ``code_bytes`` replaces the whole resultCode element."""
    code_el = code_bytes if code_bytes is not None else integer(0x0A, code)
    return code_el + el(0x04, b"") + el(0x04, diag) + extra


def bind_response(mid: int, code: int = 0, **kw: bytes) -> bytes:
    return message(mid, el(0x61, result(code, **kw)))


def search_entry(mid: int, dn: str = USER_DN, attributes: dict[str, list[bytes]] | None = None) -> bytes:
    attrs = attributes if attributes is not None else {"uid": [USER_UID.encode()]}
    body = b"".join(el(0x30, el(0x04, k.encode()) + el(0x31, b"".join(el(0x04, v) for v in vs)))
                    for k, vs in attrs.items())
    return message(mid, el(0x64, el(0x04, dn.encode()) + el(0x30, body)))


def search_done(mid: int, code: int = 0) -> bytes:
    return message(mid, el(0x65, result(code)))


def notice_of_disconnection(code: int = 52) -> bytes:
    return message(0, el(0x78, result(code, b"going away") + el(0x8A, NOTICE_OF_DISCONNECTION)))


# ---------------------------------------------------------------------- a strict reference decoder


class Malformed(ValueError):
    """Not well-formed LDAP."""


@dataclass
class Node:
    tag: int
    content: bytes
    children: list[Node] = field(default_factory=list)


def _parse(data: bytes, constructed_ok: bool = True) -> list[Node]:
    """Every element of ``data`` (which they must fill exactly), constructed ones parsed recursively."""
    nodes = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 2:
            raise Malformed("truncated header")
        tag = data[pos]
        if tag & 0x1F == 0x1F:
            raise Malformed("high tag number")
        first = data[pos + 1]
        pos += 2
        if first == 0x80 or first > 0x84:
            raise Malformed("indefinite or oversized length")
        if first > 0x80:
            k = first - 0x80
            if len(data) - pos < k:
                raise Malformed("truncated length")
            n = int.from_bytes(data[pos:pos + k], "big")
            pos += k
        else:
            n = first
        if len(data) - pos < n:
            raise Malformed("element past its container")
        content = data[pos:pos + n]
        pos += n
        node = Node(tag, content)
        if tag & 0x20:
            node.children = _parse(content)
        nodes.append(node)
    return nodes


def _int(node: Node, tag: int) -> int:
    c = node.content
    if node.tag != tag or not 1 <= len(c) <= 4:
        raise Malformed("bad integer")
    if len(c) > 1 and ((c[0] == 0 and c[1] < 0x80) or (c[0] == 0xFF and c[1] >= 0x80)):
        raise Malformed("non-minimal integer")
    if c[0] >= 0x80:
        raise Malformed("negative integer")
    return int.from_bytes(c, "big")


def _result(nodes: list[Node], optional: tuple[int, ...]) -> int:
    if len(nodes) < 3 or nodes[1].tag != 0x04 or nodes[2].tag != 0x04:
        raise Malformed("bad LDAPResult")
    code = _int(nodes[0], 0x0A)
    allowed = [0xA3, *optional]
    for n in nodes[3:]:  # each optional tag at most once, in order
        if n.tag not in allowed:
            raise Malformed("unexpected element in LDAPResult")
        if n.tag == 0xA3 and (not n.children or any(c.tag != 0x04 for c in n.children)):
            raise Malformed("bad referral")
        allowed = allowed[allowed.index(n.tag) + 1:]
    return code


def _check_controls(node: Node) -> None:
    for c in node.children:
        tags = [x.tag for x in c.children]
        if c.tag != 0x30 or tags not in ([0x04], [0x04, 0x01], [0x04, 0x04], [0x04, 0x01, 0x04]):
            raise Malformed("bad control")
        if 0x01 in tags and c.children[1].content != b"\xff":
            raise Malformed("criticality not TRUE")


def _messages(data: bytes) -> list[tuple[int, Node]]:
    out = []
    for msg in _parse(data):
        if msg.tag != 0x30 or len(msg.children) not in (2, 3):
            raise Malformed("bad LDAPMessage")
        if len(msg.children) == 3:
            if msg.children[2].tag != 0xA0:
                raise Malformed("bad controls")
            _check_controls(msg.children[2])
        out.append((_int(msg.children[0], 0x02), msg.children[1]))
    return out


def bind_success(data: bytes, mid: int) -> bool:
    """Whether ``data`` is exactly one well-formed bindResponse(success) to ``mid`` (the only answer that may grant)."""
    try:
        msgs = _messages(data)
        if len(msgs) != 1:
            return False
        got, op = msgs[0]
        return got == mid and op.tag == 0x61 and _result(op.children, (0x87,)) == 0
    except Malformed:
        return False


def search_outcome(data: bytes, mid: int) -> list[bytes] | None:
    """The DNs of the entries if ``data`` is exactly a well-formed, complete (success) search answer to ``mid``."""
    try:
        msgs = _messages(data)
        dns = []
        for i, (got, op) in enumerate(msgs):
            if got != mid:
                return None
            last = i == len(msgs) - 1
            if op.tag == 0x65:
                return dns if last and _result(op.children, ()) == 0 else None
            if op.tag == 0x64:
                name, attrs = op.children if len(op.children) == 2 else (None, None)
                if name is None or attrs is None or name.tag != 0x04 or attrs.tag != 0x30:
                    return None
                for a in attrs.children:
                    if (a.tag != 0x30 or len(a.children) != 2 or a.children[0].tag != 0x04
                            or a.children[1].tag != 0x31 or any(v.tag != 0x04 for v in a.children[1].children)):
                        return None
                dns.append(name.content)
            elif op.tag == 0x73:
                if not op.children or any(c.tag != 0x04 for c in op.children):
                    return None
            else:
                return None
        return None  # no searchResDone
    except Malformed:
        return None


# ---------------------------------------------------------------------- the server


@dataclass
class Request:
    """One request the server read: its message id, protocolOp tag, and what the plans may want to look at."""

    mid: int
    op: int
    name: bytes = b""  # a bind's DN, a search's base
    password: bytes = b""
    size_limit: int = -1


Plan = Callable[[Request], "bytes | None"]


def _read_request(buf: bytearray) -> tuple[Request, int] | None:
    """The first request in ``buf`` and its size, or ``None`` while it is incomplete (requests come from clients
    under test, which only ever write well-formed ones)."""
    if len(buf) < 2:
        return None
    first = buf[1]
    head, n = 2, first
    if first & 0x80:
        k = first & 0x7F
        if len(buf) < 2 + k:
            return None
        head, n = 2 + k, int.from_bytes(buf[2:2 + k], "big")
    if len(buf) < head + n:
        return None
    msg = _parse(bytes(buf[:head + n]))[0]
    mid_node, op = msg.children[0], msg.children[1]
    req = Request(int.from_bytes(mid_node.content, "big"), op.tag)
    if op.tag == 0x60:  # bindRequest: version, name, simple [0]
        req.name, req.password = op.children[1].content, op.children[2].content
    elif op.tag == 0x63:  # searchRequest: base, scope, deref, sizeLimit, ...
        req.name = op.children[0].content
        req.size_limit = int.from_bytes(op.children[3].content, "big", signed=True)
    return req, head + n


class HostileLDAP:
    """The server (see the module docstring). Use it as a context manager, or call :meth:`start`/:meth:`stop`.

    Attributes:
        port, url: where it listens (``ldap://127.0.0.1:PORT``).
        bind_reply, search_reply: the plans (``None``: normal answers).
        close_after: close the connection after a planned answer.
        accepted: connections accepted so far; requests: every request read, in order.
    """

    def __init__(self) -> None:
        self.bind_reply: Plan | None = None
        self.search_reply: Plan | None = None
        self.close_after = True
        self.accepted = 0
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOOPBACK, 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"ldap://{LOOPBACK}:{self.port}"
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []

    def __enter__(self) -> HostileLDAP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> HostileLDAP:
        t = threading.Thread(target=self._accept, name="hostile-ldap", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=5)
        self._listener.close()

    def plan(self, *, bind: Plan | None = None, search: Plan | None = None, close_after: bool = True) -> None:
        """Set both plans at once (``None``: the normal answer)."""
        with self._lock:
            self.bind_reply, self.search_reply, self.close_after = bind, search, close_after

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            with self._lock:
                self.accepted += 1
                self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        buf = bytearray()
        try:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                buf += chunk
                while (got := _read_request(buf)) is not None:
                    req, size = got
                    del buf[:size]
                    with self._lock:
                        self.requests.append(req)
                    reply, planned = self._answer(req)
                    if reply is None:  # unbind, or an operation this server does not know
                        return
                    if reply:
                        conn.sendall(reply)
                    if planned and self.close_after:
                        return
        except OSError:
            return
        finally:
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            conn.close()

    def _answer(self, req: Request) -> tuple[bytes | None, bool]:
        """``(bytes to send, whether a plan chose them)``; ``None`` bytes: close the connection."""
        if req.op == 0x60:
            if req.name == SERVICE_DN.encode():
                return bind_response(req.mid, 0 if req.password == SERVICE_PW.encode() else 49), False
            plan = self.bind_reply
            planned = plan(req) if plan is not None else None
            if planned is not None:
                return planned, True
            ok = req.name == USER_DN.encode() and req.password == USER_PW.encode()
            return bind_response(req.mid, 0 if ok else 49), False
        if req.op == 0x63:
            plan = self.search_reply
            planned = plan(req) if plan is not None else None
            if planned is not None:
                return planned, True
            if req.name == GROUP_BASE.encode():
                return search_entry(req.mid, f"cn=devs,{GROUP_BASE}", {"cn": [b"devs"]}) + search_done(req.mid), False
            return search_entry(req.mid) + search_done(req.mid), False
        if req.op == 0x77:  # Who-am-I
            return message(req.mid, el(0x78, result(0) + el(0x8B, b"dn:" + SERVICE_DN.encode()))), False
        return None, False
