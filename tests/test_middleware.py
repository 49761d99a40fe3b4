"""The WSGI middleware under a real HTTP server (wsgiref on 127.0.0.1), with real clients: requests' HTTPBasicAuth /
HTTPDigestAuth, raw http.client for malformed and replayed headers, and curl --digest."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import io
import json
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests
from requests.auth import HTTPBasicAuth, HTTPDigestAuth

from backends._common import require_tool
from wsgiauth import _digest
from wsgiauth.adapter import Backend, Decision, Outcome
from wsgiauth.exceptions import BackendUnavailableError
from wsgiauth.hostaccess import HostRules
from wsgiauth.middleware import AuthMiddleware, BasicAuth, DigestAuth, lua_script_path

REALM = "Staff area"


class DictBackend(Backend):
    """A store in memory: plaintext passwords (so that it can give SHA-256 realm hashes too)."""

    label = "dict"

    def __init__(self, users: dict[bytes, bytes], groups: dict[bytes, list[bytes]] | None = None,
                 canonical: dict[bytes, bytes] | None = None, fail: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.users, self.group_map, self.canonical, self.fail = users, groups or {}, canonical or {}, fail

    def authenticate(self, user: bytes, password: bytes, client: str | None = None) -> Decision:
        if self.fail:
            raise BackendUnavailableError("server down")
        stored = self.users.get(user)
        if stored is None:
            return Decision(Outcome.UNKNOWN, backend=self.label)
        if not hmac.compare_digest(stored, password):
            return Decision(Outcome.DENIED, backend=self.label)
        return Decision(Outcome.GRANTED, name=self.canonical.get(user), backend=self.label)

    def groups(self, user: bytes) -> Sequence[bytes] | None:
        return self.group_map.get(user)

    def realm_hash(self, user: bytes, realm: bytes) -> str | None:
        if self.fail:
            raise BackendUnavailableError("server down")
        pw = self.users.get(user)
        return None if pw is None else hashlib.md5(user + b":" + realm + b":" + pw).hexdigest()

    def realm_hash_sha256(self, user: bytes, realm: bytes) -> str | None:
        pw = self.users.get(user)
        return None if pw is None else hashlib.sha256(user + b":" + realm + b":" + pw).hexdigest()


USERS = {b"alice": b"wonder land", b"bob": b"builder", "zoë".encode(): "pässword".encode()}
GROUPS = {b"alice": [b"Staff", b"admins"], b"bob": [b"guests"]}


def echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = json.dumps({
        "user": environ.get("REMOTE_USER"),
        "type": environ.get("AUTH_TYPE"),
        "authorization_seen": "HTTP_AUTHORIZATION" in environ,
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def serve(app: Any) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, server_class=_Server, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def backend(**kw: Any) -> DictBackend:
    return DictBackend(dict(USERS), dict(GROUPS), **kw)


@pytest.fixture(scope="module")
def basic_url() -> Iterator[str]:
    with serve(BasicAuth(echo, backend(), realm=REALM)) as url:
        yield url


@pytest.fixture(scope="module")
def digest_mw() -> AuthMiddleware:
    return DigestAuth(echo, backend(), realm=REALM, algorithms=("MD5",))


@pytest.fixture(scope="module")
def digest_url(digest_mw: AuthMiddleware) -> Iterator[str]:
    with serve(digest_mw) as url:
        yield url


def raw_get(url: str, path: str = "/", headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


# ---------------------------------------------------------------------------------------------------- Basic


def test_basic_grants_and_sets_remote_user(basic_url: str) -> None:
    r = requests.get(basic_url + "/x", auth=HTTPBasicAuth("alice", "wonder land"), timeout=10)
    assert r.status_code == 200
    assert r.json() == {"user": "alice", "type": "Basic", "authorization_seen": False}
    assert "X-Remote-User" not in r.headers  # emission is off by default


def test_basic_utf8_user(basic_url: str) -> None:
    token = base64.b64encode("zoë:pässword".encode()).decode()
    r = requests.get(basic_url, headers={"Authorization": "Basic " + token}, timeout=10)
    assert r.status_code == 200
    # PEP 3333: the raw bytes as latin-1 text in the environ
    assert r.json()["user"].encode("latin-1").decode("utf-8") == "zoë"


@pytest.mark.parametrize(("user", "password"), [("alice", "wrong"), ("nobody", "x"), ("alice", "")])
def test_basic_refuses(basic_url: str, user: str, password: str) -> None:
    r = requests.get(basic_url, auth=HTTPBasicAuth(user, password), timeout=10)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == f'Basic realm="{REALM}", charset="UTF-8"'


def test_no_credentials_gets_challenge(basic_url: str) -> None:
    r = requests.get(basic_url, timeout=10)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Basic ")


MALFORMED = [
    "Basic",
    "Basic !!!!",
    "Basic " + base64.b64encode(b"no-colon").decode(),
    "Basic " + base64.b64encode(b":emptyuser").decode(),
    "Basic " + "A" * 20000,
    "Basic YWxpY2U6d29uZGVyIGxhbmQ",  # missing padding
    "Bearer abc",
    "Digest",
    'Digest username="alice", realm=',
    'Digest username="alice", realm="x", nonce="n", uri="/", response="zz", qop=auth, nc=00000001, cnonce="c"',
    'Digest username="alice" realm="x"',
    'Digest username="alice, realm="x"',
    "Digest " + "a=b," * 5000,
    'Digest username="alice", username="bob"',
    "\x00\x01garbage",
]


@pytest.mark.parametrize("header", MALFORMED)
def test_malformed_headers_are_401_never_500(basic_url: str, digest_url: str, header: str) -> None:
    for url in (basic_url, digest_url):
        resp = raw_get(url, headers={"Authorization": header})
        assert resp.status == 401


def test_backend_failure_is_401(basic_url: str) -> None:
    with serve(BasicAuth(echo, backend(fail=True), realm=REALM)) as url:
        r = requests.get(url, auth=HTTPBasicAuth("alice", "wonder land"), timeout=10)
    assert r.status_code == 401


def test_canonical_name_becomes_remote_user() -> None:
    with serve(BasicAuth(echo, backend(canonical={b"alice": b"Alice.Liddell"}), realm=REALM)) as url:
        r = requests.get(url, auth=HTTPBasicAuth("alice", "wonder land"), timeout=10)
    assert r.json()["user"] == "Alice.Liddell"


def test_require_groups() -> None:
    with serve(BasicAuth(echo, backend(), realm=REALM, require_groups=["staff"])) as url:
        ok = requests.get(url, auth=HTTPBasicAuth("alice", "wonder land"), timeout=10)
        other = requests.get(url, auth=HTTPBasicAuth("bob", "builder"), timeout=10)
    assert ok.status_code == 200  # "Staff" matches "staff": Apache compares groups case-insensitively
    assert other.status_code == 401  # as Apache answers `Require group` for Basic (issue 15, F8)


def test_host_rules_of_the_backend() -> None:
    refused = backend(access=HostRules(deny=["127.0.0.0/8"]))
    with serve(BasicAuth(echo, refused, realm=REALM)) as url:
        r = requests.get(url, auth=HTTPBasicAuth("alice", "wonder land"), timeout=10)
    assert r.status_code == 403


def test_emit_headers_for_apache_log_phase() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        # an application trying to set them itself is overridden
        start_response("200 OK", [("X-Remote-User", "mallory"), ("Content-Length", "2")])
        return [b"ok"]

    with serve(BasicAuth(app, backend(), realm=REALM, emit_headers=True)) as url:
        r = requests.get(url, auth=HTTPBasicAuth("alice", "wonder land"), timeout=10)
        denied = requests.get(url, auth=HTTPBasicAuth("alice", "nope"), timeout=10)
    assert r.headers["X-Remote-User"] == "alice"
    assert r.headers["X-Auth-Type"] == "Basic"
    assert "mallory" not in r.headers["X-Remote-User"]
    assert "X-Remote-User" not in denied.headers


def test_exempt_path_cannot_name_a_user_in_emitted_headers() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("X-Remote-User", "root"), ("X-Auth-Type", "Basic"), ("Content-Length", "0")])
        return [b""]

    mw = BasicAuth(app, backend(), realm=REALM, emit_headers=True, exempt=lambda env: True)
    with serve(mw) as url:
        r = requests.get(url + "/health", timeout=10)
    assert r.status_code == 200
    assert "X-Remote-User" not in r.headers and "X-Auth-Type" not in r.headers


def test_control_characters_are_never_emitted() -> None:
    mw = BasicAuth(echo, backend(canonical={b"alice": b"alice\r\nSet-Cookie: x=1"}), realm=REALM, emit_headers=True)
    with serve(mw) as url:
        r = requests.get(url, auth=HTTPBasicAuth("alice", "wonder land"), timeout=10)
    assert r.status_code == 200
    assert "X-Remote-User" not in r.headers and "Set-Cookie" not in r.headers


def test_exempt_paths() -> None:
    mw = BasicAuth(echo, backend(), realm=REALM, exempt=lambda env: env.get("PATH_INFO") == "/health")
    with serve(mw) as url:
        assert requests.get(url + "/health", timeout=10).status_code == 200
        assert requests.get(url + "/other", timeout=10).status_code == 401


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="unknown authentication scheme"):
        AuthMiddleware(echo, backend(), schemes=("NTLM",))
    with pytest.raises(ValueError, match="realm"):
        AuthMiddleware(echo, backend(), realm='a"b')
    with pytest.raises(ValueError, match="SHA-256 Digest needs"):
        AuthMiddleware(echo, Backend(), schemes=("Digest",), algorithms=("SHA-256",))
    with pytest.raises(ValueError, match="16 bytes"):
        AuthMiddleware(echo, backend(), schemes=("Digest",), secret="short")


# ---------------------------------------------------------------------------------------------------- Digest


def test_digest_md5_with_requests(digest_url: str) -> None:
    s = requests.Session()
    s.auth = HTTPDigestAuth("alice", "wonder land")
    for path in ("/a", "/b?x=1&y=%20z", "/c"):  # the later requests reuse the nonce with nc=2, 3
        r = s.get(digest_url + path, timeout=10)
        assert r.status_code == 200, path
        assert r.json() == {"user": "alice", "type": "Digest", "authorization_seen": False}


def test_digest_utf8_user(digest_url: str) -> None:
    # The user name as raw UTF-8 bytes in the quoted string (what browsers send), and as RFC 8187 username*.
    challenge = raw_get(digest_url).getheader("WWW-Authenticate") or ""
    header = authorization(challenge, "zoë", "pässword", "/u")
    assert raw_get(digest_url, "/u", {"Authorization": header}).status == 200
    wire = 'username="' + "zoë".encode().decode("latin-1") + '"'
    star = authorization(challenge, "zoë", "pässword", "/u", nc=2).replace(wire, "username*=UTF-8''zo%C3%AB")
    assert "username*=" in star
    assert raw_get(digest_url, "/u", {"Authorization": star}).status == 200


@pytest.mark.parametrize(("user", "password"), [("alice", "wrong"), ("nobody", "x")])
def test_digest_refuses(digest_url: str, user: str, password: str) -> None:
    r = requests.get(digest_url, auth=HTTPDigestAuth(user, password), timeout=10)
    assert r.status_code == 401
    assert 'qop="auth"' in r.headers["WWW-Authenticate"]


def test_digest_sha256_with_requests() -> None:
    mw = DigestAuth(echo, backend(), realm=REALM, algorithms=("SHA-256",))
    with serve(mw) as url:
        r = requests.get(url, auth=HTTPDigestAuth("alice", "wonder land"), timeout=10)
        challenge = requests.get(url, timeout=10).headers["WWW-Authenticate"]
    assert "algorithm=SHA-256" in challenge
    assert r.status_code == 200
    assert r.json()["type"] == "Digest"


def authorization(challenge: str, user: str, password: str, path: str, nc: int = 1,
                  algorithm: str | None = None, realm: str | None = None, uri: str | None = None) -> str:
    p = _digest.parse_params(challenge.split(" ", 1)[1])
    alg = algorithm or p["algorithm"]
    realm = realm or p["realm"]
    cnonce = "0a4f113b"
    creds = _digest.DigestCredentials(
        username=user.encode(), realm=realm, nonce=p["nonce"], uri=uri or path, response="",
        algorithm=alg, qop="auth", nc=nc, nc_text=f"{nc:08x}", cnonce=cnonce, opaque=p["opaque"])
    ha1 = _digest.ha1_for(alg, user.encode(), realm.encode(), password.encode())
    resp = _digest.expected_response(creds, ha1, "GET")
    wire = user.encode().decode("latin-1")  # http.client sends header text as latin-1: the raw UTF-8 bytes
    return (f'Digest username="{wire}", realm="{realm}", nonce="{p["nonce"]}", uri="{uri or path}", '
            f'algorithm={alg}, response="{resp}", qop=auth, nc={nc:08x}, cnonce="{cnonce}", opaque="{p["opaque"]}"')


def test_digest_replay_is_refused(digest_url: str) -> None:
    challenge = raw_get(digest_url).getheader("WWW-Authenticate")
    assert challenge is not None
    header = authorization(challenge, "alice", "wonder land", "/r")
    assert raw_get(digest_url, "/r", {"Authorization": header}).status == 200
    replay = raw_get(digest_url, "/r", {"Authorization": header})
    assert replay.status == 401
    # the next count with the same nonce is still fine
    assert raw_get(digest_url, "/r", {"Authorization": authorization(challenge, "alice", "wonder land", "/r", nc=2)}
                   ).status == 200


def test_digest_sess_variant(digest_url: str) -> None:
    challenge = raw_get(digest_url).getheader("WWW-Authenticate") or ""
    header = authorization(challenge, "alice", "wonder land", "/s", algorithm="MD5-sess")
    assert raw_get(digest_url, "/s", {"Authorization": header}).status == 200


def test_digest_wrong_uri_or_realm(digest_url: str) -> None:
    challenge = raw_get(digest_url).getheader("WWW-Authenticate") or ""
    other_uri = authorization(challenge, "alice", "wonder land", "/p", uri="/elsewhere")
    assert raw_get(digest_url, "/p", {"Authorization": other_uri}).status == 401
    other_realm = authorization(challenge, "alice", "wonder land", "/p", realm="Other")
    assert raw_get(digest_url, "/p", {"Authorization": other_realm}).status == 401


def test_digest_forged_nonce_is_not_stale(digest_url: str) -> None:
    forged = _digest.NonceKeeper(REALM).issue()  # signed with another secret
    challenge = f'Digest realm="{REALM}", nonce="{forged}", opaque="x", algorithm=MD5'
    header = authorization(challenge, "alice", "wonder land", "/f")
    resp = raw_get(digest_url, "/f", {"Authorization": header})
    assert resp.status == 401
    assert "stale=true" not in (resp.getheader("WWW-Authenticate") or "")


def test_digest_expired_nonce_is_stale(digest_mw: AuthMiddleware, digest_url: str) -> None:
    old = digest_mw.nonces.issue(now=time.time() - digest_mw.nonces.lifetime - 5)
    challenge = f'Digest realm="{REALM}", nonce="{old}", opaque="{digest_mw.nonces.opaque}", algorithm=MD5'
    resp = raw_get(digest_url, "/e", {"Authorization": authorization(challenge, "alice", "wonder land", "/e")})
    assert resp.status == 401
    assert "stale=true" in (resp.getheader("WWW-Authenticate") or "")


def test_digest_stale_retry_by_requests() -> None:
    mw = DigestAuth(echo, backend(), realm=REALM, nonce_lifetime=0.3)
    with serve(mw) as url:
        s = requests.Session()
        s.auth = HTTPDigestAuth("alice", "wonder land")
        assert s.get(url, timeout=10).status_code == 200
        time.sleep(0.5)  # the nonce expires; requests retries on stale=true with the new nonce
        assert s.get(url, timeout=10).status_code == 200


def test_digest_backend_failure_is_401() -> None:
    with serve(DigestAuth(echo, backend(fail=True), realm=REALM)) as url:
        r = requests.get(url, auth=HTTPDigestAuth("alice", "wonder land"), timeout=10)
    assert r.status_code == 401


def test_both_schemes_offered() -> None:
    mw = AuthMiddleware(echo, backend(), realm=REALM, schemes=("Digest", "Basic"), algorithms=("SHA-256", "MD5"))
    with serve(mw) as url:
        resp = raw_get(url)
        offered = [v for k, v in resp.getheaders() if k.lower() == "www-authenticate"]
        basic = requests.get(url, auth=HTTPBasicAuth("bob", "builder"), timeout=10)
    assert [v.split()[0] for v in offered] == ["Digest", "Digest", "Basic"]
    assert "algorithm=SHA-256" in offered[0] and "algorithm=MD5" in offered[1]
    assert basic.status_code == 200


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_curl_digest(algorithm: str) -> None:
    curl = require_tool("curl")
    mw = DigestAuth(echo, backend(), realm=REALM, algorithms=(algorithm,))
    with serve(mw) as url:
        ok = subprocess.run([curl, "-s", "--digest", "-u", "alice:wonder land", "-w", "\n%{http_code}",
                             url + "/path?q=1"], capture_output=True, text=True, timeout=30)
        bad = subprocess.run([curl, "-s", "-o", "/dev/null", "--digest", "-u", "alice:nope", "-w", "%{http_code}",
                              url + "/path"], capture_output=True, text=True, timeout=30)
    body, _, code = ok.stdout.rpartition("\n")
    assert code == "200", ok.stdout + ok.stderr
    assert json.loads(body)["user"] == "alice"
    assert bad.stdout == "401"


# ---------------------------------------------------------------------------------------------------- units


def test_parse_params_quoting() -> None:
    p = _digest.parse_params(r'a=b, , c="x, \"y\" \\ z",D=token  ')
    assert p == {"a": "b", "c": 'x, "y" \\ z', "d": "token"}
    for bad in ['a', 'a=', 'a="x', 'a=b c=d', '=b', 'a=b, a=c']:
        with pytest.raises(_digest.DigestError):
            _digest.parse_params(bad)


def test_username_star() -> None:
    header = ('Digest username*=UTF-8\'\'J%C3%A4s%C3%B8n, realm="r", nonce="n", uri="/", response="ab", '
              'qop=auth, nc=00000001, cnonce="c"')
    assert _digest.parse_authorization(header).username == "Jäsøn".encode()


def test_nonce_eviction_never_allows_replay() -> None:
    keeper = _digest.NonceKeeper("r", max_tracked=2)
    first = keeper.issue()
    assert keeper.use(first, 1)
    for _ in range(3):  # push `first` out of the table
        assert keeper.use(keeper.issue(), 1)
    assert keeper.check(first) == _digest.NonceState.STALE
    assert not keeper.use(first, 1)
    assert not keeper.use(first, 2)


def test_lua_script_is_shipped() -> None:
    text = lua_script_path().read_text()
    assert "function reflect_user(r)" in text
    assert "headers_out" in text


# ---------------------------------------------------------------------------------------------------- issue 15


class Guarded(DictBackend):
    """A store with a small throttle of its own: Basic failures are counted in ``authenticate``; for callers that
    check credentials themselves it has a throttle's two hooks (``record_failure`` counts, ``refusal`` refuses a
    user after ``limit`` failures). It also counts its HA1 look-ups, to show that a refused Digest
    request costs the same work."""

    def __init__(self, limit: int = 10**9, **kw: Any) -> None:
        super().__init__(dict(USERS), dict(GROUPS), **kw)
        self.limit = limit
        self.failures: list[tuple[bytes, str | None]] = []
        self.ha1_lookups = 0

    def refusal(self, user: bytes, client: str | None = None) -> str | None:
        count = sum(1 for u, _ in self.failures if u == user)
        return f"user locked out ({count} failures)" if count >= self.limit else None

    def record_failure(self, user: bytes, client: str | None = None) -> None:
        self.failures.append((user, client))

    def authenticate(self, user: bytes, password: bytes, client: str | None = None) -> Decision:
        refused = self.refusal(user, client)
        if refused is not None:
            return Decision(Outcome.DENIED, backend=self.label, reason=refused)
        decision = super().authenticate(user, password, client)
        if not decision.granted:
            self.record_failure(user, client)
        return decision

    def realm_hash(self, user: bytes, realm: bytes) -> str | None:
        self.ha1_lookups += 1
        return super().realm_hash(user, realm)


def call(app: Any, path: str = "/", headers: dict[str, str] | None = None,
         addr: str | None = "127.0.0.1") -> tuple[str, list[tuple[str, str]], bytes]:
    """One request through the WSGI callable itself (no server: fast for a thousand guesses)."""
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
                               "REQUEST_URI": path, "wsgi.errors": io.StringIO()}
    if addr is not None:
        environ["REMOTE_ADDR"] = addr
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    seen: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen["status"], seen["headers"] = status, response_headers

    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


def challenge_of(app: Any) -> str:
    status, headers, _ = call(app)
    assert status.startswith("401")
    return next(v for k, v in headers if k == "WWW-Authenticate" and v.startswith("Digest"))


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_wrong_digest_responses_are_counted() -> None:
    """F7: 1,000 wrong Digest guesses are each reported to the backend (a throttle counts them); nothing else is."""
    store = Guarded()
    mw = DigestAuth(echo, store, realm=REALM, algorithms=("MD5",))
    challenge = challenge_of(mw)
    for i in range(1000):
        status, _, _ = call(mw, "/g", {"Authorization": authorization(challenge, "alice", f"guess{i}", "/g", nc=i + 1)})
        assert status.startswith("401")
    assert len(store.failures) == 1000
    assert set(store.failures) == {(b"alice", "127.0.0.1")}
    # an unknown user's guess counts too, as over Basic; a malformed header or a forged nonce is no password guess
    call(mw, "/g", {"Authorization": authorization(challenge, "nobody", "x", "/g")})
    call(mw, "/g", {"Authorization": "Digest garbage"})
    call(mw, "/g", {"Authorization": authorization(challenge.replace('nonce="', 'nonce="x'), "alice", "x", "/g")})
    assert len(store.failures) == 1001 and store.failures[-1] == (b"nobody", "127.0.0.1")
    # the right password is not a failure
    assert call(mw, "/g", {"Authorization": authorization(challenge, "alice", "wonder land", "/g", nc=5000)}
                )[0].startswith("200")
    assert len(store.failures) == 1001


def test_locked_user_is_refused_over_digest_even_with_the_right_password() -> None:
    """F7: a user locked out (here by Basic failures) gets 401 over Digest too, after the same HA1 look-up."""
    store = Guarded(limit=3)
    mw = AuthMiddleware(echo, store, realm=REALM, schemes=("Digest", "Basic"), algorithms=("MD5",))
    challenge = challenge_of(mw)
    ok = authorization(challenge, "bob", "builder", "/d")
    assert call(mw, "/d", {"Authorization": ok})[0].startswith("200")
    for _ in range(3):  # wrong Basic passwords lock bob out
        assert call(mw, "/d", basic("bob", "nope"))[0].startswith("401")
    assert call(mw, "/d", basic("bob", "builder"))[0].startswith("401")
    before = store.ha1_lookups
    e_status, e_headers, _ = call(mw, "/d", {"Authorization": authorization(challenge, "bob", "builder", "/d", nc=2)})
    assert e_status.startswith("401")
    assert any(k == "WWW-Authenticate" for k, _ in e_headers)
    assert store.ha1_lookups == before + 1  # the same work as an unlocked check
    assert len(store.failures) == 3  # a refused attempt is not counted again
    assert call(mw, "/d", {"Authorization": authorization(challenge, "alice", "wonder land", "/d", nc=3)}
                )[0].startswith("200")  # other users are not affected


def test_a_real_throttle_locks_digest_and_basic_alike() -> None:
    """F7 with wsgiauth.throttle: wrong Digest guesses lock the user out of Digest and Basic, right password or not.

    Passes once `throttle.Throttled` implements `refusal` and `record_failure` (the adapter's interface)."""
    from wsgiauth.throttle import throttled

    guarded = throttled(backend(), max_failures=5, lockout=600, per="user")
    mw = AuthMiddleware(echo, guarded, realm=REALM, schemes=("Digest", "Basic"), algorithms=("MD5",))
    challenge = challenge_of(mw)
    assert call(mw, "/t", {"Authorization": authorization(challenge, "alice", "wonder land", "/t")}
                )[0].startswith("200")
    for i in range(5):
        assert call(mw, "/t", {"Authorization": authorization(challenge, "alice", "bad", "/t", nc=2 + i)}
                    )[0].startswith("401")
    assert call(mw, "/t", {"Authorization": authorization(challenge, "alice", "wonder land", "/t", nc=10)}
                )[0].startswith("401")
    assert call(mw, "/t", basic("alice", "wonder land"))[0].startswith("401")
    # and Basic failures lock Digest out
    for _ in range(5):
        assert call(mw, "/t", basic("bob", "bad"))[0].startswith("401")
    assert call(mw, "/t", {"Authorization": authorization(challenge, "bob", "builder", "/t")})[0].startswith("401")


@pytest.mark.parametrize("scheme", ["Basic", "Digest"])
def test_group_check_is_no_password_oracle(scheme: str) -> None:
    """F8: the right password of a user outside require_groups gets what a wrong one gets (401 and a fresh
    challenge), and counts as a failure."""
    store = Guarded()
    mw = AuthMiddleware(echo, store, realm=REALM, schemes=(scheme,), algorithms=("MD5",), require_groups=["staff"])

    def attempt(user: str, password: str, nc: int) -> tuple[str, list[str]]:
        if scheme == "Basic":
            headers = basic(user, password)
        else:
            headers = {"Authorization": authorization(challenge_of(mw), user, password, "/p", nc=nc)}
        status, response_headers, _ = call(mw, "/p", headers)
        return status, [v.split()[0] for k, v in response_headers if k == "WWW-Authenticate"]

    right, wrong = attempt("bob", "builder", 1), attempt("bob", "nope", 1)
    assert right == wrong == ("401 Unauthorized", [scheme])
    assert store.failures == [(b"bob", "127.0.0.1"), (b"bob", "127.0.0.1")]  # both counted
    assert attempt("alice", "wonder land", 1)[0] == "200 OK"
    assert len(store.failures) == 2


@pytest.mark.parametrize("addr", ["", None])
def test_host_rules_fail_closed_without_a_client_address(addr: str | None) -> None:
    """F4: gunicorn on a Unix socket sets REMOTE_ADDR to ''; with host rules the middleware refuses (403)."""
    for rules in (HostRules(deny=["10.9.0.0/16"]), HostRules(allow=["all"])):
        mw = BasicAuth(echo, backend(access=rules), realm=REALM)
        assert call(mw, "/", basic("alice", "wonder land"), addr=addr)[0] == "403 Forbidden"
        assert call(mw, "/", basic("alice", "wonder land"))[0] == "200 OK"  # 127.0.0.1: no deny rule matches
    # no host rules: nothing to fail
    assert call(BasicAuth(echo, backend(), realm=REALM), "/", basic("alice", "wonder land"), addr=addr)[0] == "200 OK"
