"""Reflection of application-level authentication into Apache's log phase, through a real Apache with mod_lua.

The application (under mod_wsgi, with WSGIPassAuthorization) is wrapped in wsgiauth's middleware with
``emit_headers=True``; the shipped ``reflect_user.lua`` runs as a ``LuaHookLog`` hook. What a user notices: the access
log's ``%u`` shows the authenticated user, and the client never receives ``X-Remote-User``/``X-Auth-Type``. Where
the hook is not configured (``/leak``), the headers do reach the client: the warning in the docs is real.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import requests
from requests.auth import HTTPBasicAuth, HTTPDigestAuth

from backends._common import missing
from backends.apache import MODULES_DIR, Apache, htpasswd_line
from wsgiauth.middleware import lua_script_path

pytestmark = pytest.mark.apache

APP = '''
import os
from wsgiauth.backends import htpasswd
from wsgiauth.middleware import AuthMiddleware

HERE = os.path.dirname(__file__)


def inner(environ, start_response):
    body = ("user=%s type=%s" % (environ.get("REMOTE_USER"), environ.get("AUTH_TYPE"))).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


application = AuthMiddleware(inner, htpasswd.Backend(users=os.path.join(HERE, "users"),
                                                      digest=os.path.join(HERE, "digest")),
                             realm="Reflect", schemes=("Digest", "Basic"), emit_headers=True)
'''


@pytest.fixture(scope="module")
def server(apache_factory: Callable[..., Apache]) -> Iterator[Apache]:
    if not (MODULES_DIR / "mod_lua.so").is_file():
        missing("mod_lua.so is not installed (apache2 package; CI installs it)")
    import hashlib

    ha1 = hashlib.md5(b"carol:Reflect:digest pw").hexdigest()
    include = f"""
WSGIPassAuthorization On
LogFormat "%u %{{X-Remote-User}}o %>s \\"%r\\"" reflect
CustomLog "${{WSGIAUTH_ROOT}}/reflect_log" reflect
<Location /app>
    Header note X-Remote-User wsgiauth-user
    Header note X-Auth-Type wsgiauth-auth-type
    Header unset X-Remote-User
    Header unset X-Auth-Type
    LuaHookLog "{lua_script_path()}" reflect_user
</Location>
"""
    yield apache_factory(
        app="app.wsgi",
        files={"app.wsgi": APP, "users": htpasswd_line("alice", "wonder land", "-B"),
               "digest": f"carol:Reflect:{ha1}\n"},
        include=include, modules=["lua", "headers"],
    )


def logged(server: Apache, prefix: str) -> bool:
    """Whether the access log gets a line starting with ``prefix`` (it is written after the response is sent)."""
    log = server.root / "reflect_log"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if log.exists() and any(line.startswith(prefix) for line in log.read_text().splitlines()):
            return True
        time.sleep(0.05)
    return False


def log_text(server: Apache) -> str:
    log = server.root / "reflect_log"
    return log.read_text() if log.exists() else ""


def test_user_is_logged_and_headers_stripped(server: Apache) -> None:
    r = requests.get(server.url + "app/basic", auth=HTTPBasicAuth("alice", "wonder land"), timeout=10)
    assert r.status_code == 200
    assert r.text == "user=alice type=Basic"
    assert "X-Remote-User" not in r.headers
    assert "X-Auth-Type" not in r.headers
    # %u is the user; %{X-Remote-User}o is "-": mod_headers removed it before the response was sent
    assert logged(server, 'alice - 200 "GET /app/basic '), log_text(server)


def test_digest_user_is_logged(server: Apache) -> None:
    r = requests.get(server.url + "app/digest", auth=HTTPDigestAuth("carol", "digest pw"), timeout=10)
    assert r.status_code == 200
    assert r.text == "user=carol type=Digest"
    assert not any(h.lower().startswith("x-") for h in r.headers)
    assert logged(server, 'carol - 200 "GET /app/digest '), log_text(server)


def test_refused_request_logs_no_user(server: Apache) -> None:
    r = requests.get(server.url + "app/denied", auth=HTTPBasicAuth("alice", "wrong"), timeout=10)
    assert r.status_code == 401
    assert logged(server, '- - 401 "GET /app/denied '), log_text(server)
    assert "alice" not in "".join(line for line in log_text(server).splitlines() if "/app/denied" in line)


def test_without_the_hook_the_header_leaks(server: Apache) -> None:
    r = requests.get(server.url + "leak", auth=HTTPBasicAuth("alice", "wonder land"), timeout=10)
    assert r.status_code == 200
    assert r.headers.get("X-Remote-User") == "alice"  # the documented danger of emit_headers without mod_lua
    assert logged(server, '- alice 200 "GET /leak '), log_text(server)


def test_forged_request_header_is_not_reflected(server: Apache) -> None:
    # A client sending X-Remote-User itself must not become that user: only response headers are read.
    r = requests.get(server.url + "app/forged", headers={"X-Remote-User": "root"}, timeout=10)
    assert r.status_code == 401
    assert logged(server, '- - 401 "GET /app/forged '), log_text(server)
    assert "root" not in log_text(server)


