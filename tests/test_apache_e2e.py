"""End to end through a real Apache (mod_wsgi-express): every mod_wsgi hook as a visitor of the site sees it.

Two throw-away servers for the whole module:

* ``site``: ``--auth-user-script`` + ``--auth-group-script`` (``Require wsgi-group staff``) + ``--host-access-script``
  on ``/``, plus, through ``--include-file``, ``/canonical`` (a ``compose.canonicalize`` backend), ``/denied``
  (an access script that refuses 127.0.0.1) and ``/lookups`` (host rules under ``HostnameLookups On``);
* ``digest_site``: ``--auth-user-script --auth-type Digest`` over an htdigest file.

The password files are made by Debian's ``htpasswd``/``htdigest``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from requests.auth import HTTPDigestAuth

from backends._common import missing, require_tool, wait_until
from backends.apache import Apache, htdigest_line, htpasswd_line

pytestmark = pytest.mark.apache

ROOT = Path(__file__).resolve().parents[1]

# Every password sent in this module: the error logs must never show any of them.
PW = {
    "alice": "alice-Pw.1",  # staff
    "bob": "bob-Pw.2",  # not in staff
    "carol": "carol-Pw.3",  # staff; her password is changed while the server runs
    "jürgen": "jürgen-Pw.4",  # staff; a UTF-8 user name
}
WRONG = "wrong-Pw.9"
CAROL_NEW = "carol-New.5"
ALL_PASSWORDS = [*PW.values(), WRONG, CAROL_NEW]

AUTH_SCRIPT = """\
import os

from wsgiauth.backends import htpasswd
from wsgiauth.hostaccess import HostRules

HERE = os.path.dirname(os.path.abspath(__file__))
backend = htpasswd.Backend(users=os.path.join(HERE, "htpasswd"), groups=os.path.join(HERE, "htgroup"),
                           log_level="debug", access=HostRules(allow=["127.0.0.0/8"]))
check_password = backend.check_password
groups_for_user = backend.groups_for_user
allow_access = backend.allow_access
"""

CANONICAL_SCRIPT = """\
import os

from wsgiauth.backends import htpasswd
from wsgiauth.compose import canonicalize

HERE = os.path.dirname(os.path.abspath(__file__))
backend = canonicalize(htpasswd.Backend(users=os.path.join(HERE, "htpasswd")), lower=True, strip_domain=True)
check_password = backend.check_password
"""

DENY_SCRIPT = """\
from wsgiauth.hostaccess import allow_access as rules

allow_access = rules(deny=["127.0.0.1"])
"""

LOOKUPS_SCRIPT = """\
from wsgiauth.adapter import Backend
from wsgiauth.hostaccess import HostRules

allow_access = Backend(access=HostRules(allow=["127.0.0.0/8"], default=False), log_level="debug",
                       label="lookups").allow_access
"""

DIGEST_SCRIPT = """\
import os

from wsgiauth.backends import htpasswd

HERE = os.path.dirname(os.path.abspath(__file__))
backend = htpasswd.Backend(digest=os.path.join(HERE, "htdigest"), log_level="debug")
get_realm_hash = backend.get_realm_hash
"""

INCLUDE = """\
<Location /canonical>
    AuthType Basic
    AuthName "canonical"
    AuthBasicProvider wsgi
    WSGIAuthUserScript "${WSGIAUTH_SITE}/canonical.wsgi"
    Require valid-user
</Location>
<Location /denied>
    WSGIAccessScript "${WSGIAUTH_SITE}/deny.wsgi"
</Location>
<Location /lookups>
    HostnameLookups On
    WSGIAccessScript "${WSGIAUTH_SITE}/lookups.wsgi"
</Location>
"""


def htpasswd_file(passwords: dict[str, str]) -> bytes:
    # apr1 (htpasswd's default) for most, bcrypt for jürgen: two hash families through the same hook.
    lines = [b"# made by htpasswd -nb\n"]
    for user, pw in passwords.items():
        flags = ("-B", "-C", "4") if user == "jürgen" else ("-m",)
        lines.append(htpasswd_line(user, pw, *flags))
    return b"".join(lines)


HTGROUP = 'staff: alice carol\nstaff: "jürgen"\nother: bob\n'.encode()


@pytest.fixture(scope="module")
def site(apache_factory) -> Apache:
    require_tool("htpasswd")
    return apache_factory(
        files={
            "htpasswd": htpasswd_file(PW),
            "htgroup": HTGROUP,
            "auth.wsgi": AUTH_SCRIPT,
            "canonical.wsgi": CANONICAL_SCRIPT,
            "deny.wsgi": DENY_SCRIPT,
            "lookups.wsgi": LOOKUPS_SCRIPT,
        },
        auth_user_script="auth.wsgi",
        auth_group_script="auth.wsgi",
        auth_group="staff",
        host_access_script="auth.wsgi",
        include=INCLUDE,
    )


@pytest.fixture(scope="module")
def digest_site(apache_factory) -> Apache:
    require_tool("htdigest")
    # mod_wsgi-express names its realm "127.0.0.1:PORT", which no htdigest file can hold (fields are split at
    # colons, by Apache and wsgiauth alike): the launcher overrides AuthName through the include file.
    realm = "wsgiauth digest"
    htdigest = (htdigest_line("alice", realm, PW["alice"]) + htdigest_line("bob", "another realm", PW["bob"])
                + htdigest_line("jürgen", realm, PW["jürgen"]))
    server = apache_factory(files={"htdigest": htdigest, "auth.wsgi": DIGEST_SCRIPT}, realm=realm,
                            auth_user_script="auth.wsgi", auth_type="Digest")
    assert server.realm == realm
    return server


# ---------------------------------------------------------------------------------------------- Basic + group


@pytest.mark.parametrize(
    ("user", "password", "status"),
    [
        ("alice", PW["alice"], 200),  # right password, member of staff
        ("alice", WRONG, 401),  # wrong password
        ("alice", "", 401),  # empty password
        ("nobody", PW["alice"], 401),  # unknown user
        ("Alice", PW["alice"], 401),  # names are case-sensitive (no canonicalisation on /)
        ("bob", PW["bob"], 401),  # right password but not in staff: Require wsgi-group staff fails
        ("bob", WRONG, 401),
    ],
)
def test_basic_and_group(site, user, password, status):
    r = site.get("/page", user=user, password=password)
    assert r.status == status, r
    if status == 401:
        assert r.headers["www-authenticate"] == f'Basic realm="{site.realm}"'
    else:
        assert r.json()["REMOTE_USER"] == user
        assert r.json()["AUTH_TYPE"] == "Basic"


def test_no_credentials_asks_for_them(site):
    r = site.get("/page")
    assert r.status == 401
    assert r.headers["www-authenticate"].startswith("Basic ")


def test_group_member_through_requests(site):
    # The same through an ordinary client library, not only our raw helper.
    r = requests.get(site.url + "page", auth=("alice", PW["alice"]), timeout=10)
    assert r.status_code == 200
    assert r.json()["REMOTE_USER"] == "alice"
    assert requests.get(site.url + "page", auth=("bob", PW["bob"]), timeout=10).status_code == 401


# ---------------------------------------------------------------------------------------------- user names


def test_utf8_user_name_sent_as_raw_bytes(site):
    r = site.get("/page", user="jürgen".encode(), password=PW["jürgen"].encode())
    assert r.status == 200, r
    assert r.json()["REMOTE_USER"] == "jürgen"
    assert bytes.fromhex(r.json()["REMOTE_USER_HEX"]) == "jürgen".encode()


def test_utf8_user_name_in_latin1_is_another_user(site):
    # The same letters in latin-1 are other bytes: no such user.
    r = site.get("/page", user="jürgen".encode("latin-1"), password=PW["jürgen"].encode())
    assert r.status == 401


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("Alice@EXAMPLE.ORG", "alice"),
        ("EXAMPLE\\ALICE", "alice"),
        ("alice", "alice"),
        ("JÜRGEN@example.org", "jürgen"),
    ],
)
def test_canonical_name_becomes_remote_user(site, typed, canonical):
    password = PW[canonical]
    r = site.get("/canonical/page", user=typed.encode(), password=password.encode())
    assert r.status == 200, r
    assert r.json()["REMOTE_USER"] == canonical
    assert site.get("/canonical/page", user=typed.encode(), password=WRONG).status == 401


def test_access_log_records_the_canonical_name(site):
    assert site.get("/canonical/logged", user="Alice@EXAMPLE.ORG", password=PW["alice"]).status == 200

    def logged() -> list[str]:
        return [line for line in site.access_log_text().splitlines() if '"GET /canonical/logged ' in line]

    wait_until(lambda: bool(logged()), timeout=5, what="the access log line")  # written after the response
    lines = logged()
    assert re.match(r"^127\.0\.0\.1 - alice \[", lines[-1]), lines[-1]


# ---------------------------------------------------------------------------------------------- host access


def test_host_access_allows_loopback(site):
    # --host-access-script on /: HostRules(allow=["127.0.0.0/8"]) through Backend(access=...).
    assert site.get("/page", user="alice", password=PW["alice"]).status == 200


def test_host_access_denies_loopback_with_403(site):
    # /denied: hostaccess.allow_access(deny=["127.0.0.1"]); refused before any credentials are asked.
    assert site.get("/denied/page").status == 403
    assert site.get("/denied/page", user="alice", password=PW["alice"]).status == 403


def test_host_access_under_hostname_lookups_decides_on_remote_addr(site):
    """HostnameLookups On: mod_wsgi passes the client's reverse-DNS name as `host` ("localhost" for 127.0.0.1 here);
    the rule `allow 127.0.0.0/8` still sees the connection's address."""
    assert site.get("/lookups/page", user="alice", password=PW["alice"]).status == 200
    lines = [line for line in site.error_log_text().splitlines() if "wsgiauth[lookups]: debug: allow_access" in line]
    assert lines, site.error_log_text()[-2000:]
    found = re.search(r"client 127\.0\.0\.1 \(host '([^']*)'\): allowed", lines[-1])
    assert found is not None, lines[-1]
    assert found.group(1) != "127.0.0.1"  # a name (from /etc/hosts), not the address


# Run inside a private mount namespace where 127.0.0.1's name is "10.1.2.3" (the machine's /etc/hosts is left
# alone): the PTR record anyone controlling a reverse zone can publish. Apache runs in it with HostnameLookups On.
PTR_DRIVER = r'''
import json, subprocess, sys
subprocess.run(["mount", "--bind", sys.argv[1], "/etc/hosts"], check=True)
from backends.apache import Apache

TEN = """
from wsgiauth.adapter import Backend
from wsgiauth.hostaccess import HostRules

allow_access = Backend(access=HostRules(allow=["10.0.0.0/8"], default=False), log_level="debug",
                       label="ten").allow_access
"""
DENY = """
from wsgiauth.hostaccess import allow_access as rules

allow_access = rules(deny=["127.0.0.0/8"])
"""
INCLUDE = """
HostnameLookups On
<Location /ten>
    WSGIAccessScript "${WSGIAUTH_SITE}/ten.wsgi"
</Location>
<Location /local-denied>
    WSGIAccessScript "${WSGIAUTH_SITE}/deny.wsgi"
</Location>
"""
with Apache(files={"ten.wsgi": TEN, "deny.wsgi": DENY}, include=INCLUDE) as server:
    out = {"ten": server.get("/ten/page").status, "local-denied": server.get("/local-denied/page").status,
           "log": [line for line in server.error_log_text().splitlines() if "allow_access" in line]}
print(json.dumps(out))
'''


def test_a_ptr_name_spelling_an_address_does_not_pass_host_rules(apache_available, tmp_path):
    """Issue 15, F4, through a real Apache: with the PTR of 127.0.0.1 saying "10.1.2.3", `allow 10.0.0.0/8` refuses
    (403) and `deny 127.0.0.0/8` still refuses. Needs a private mount namespace (root, `unshare`)."""
    unshare = require_tool("unshare")
    private = [unshare, "--mount", "--propagation", "private", "--"]
    probe = subprocess.run([*private, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        missing(f"no private mount namespace here (needs CAP_SYS_ADMIN): {probe.stderr.strip()}")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 10.1.2.3 localhost\n::1 localhost\n")
    os.chmod(hosts, 0o644)
    result = subprocess.run([*private, sys.executable, "-c", PTR_DRIVER, str(hosts)], cwd=ROOT, capture_output=True,
                            text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["ten"] == 403, out  # the PTR name is no address of the client's
    assert out["local-denied"] == 403, out  # and a deny rule is not dodged by it
    # the hook did get the PTR name as `host` (so the test is not vacuous), and decided on REMOTE_ADDR
    assert any("client 127.0.0.1 (host '10.1.2.3'): refused" in line for line in out["log"]), out["log"]


# ---------------------------------------------------------------------------------------------- Digest


def test_digest_with_requests(digest_site):
    url = digest_site.url + "page"
    r = requests.get(url, auth=HTTPDigestAuth("alice", PW["alice"]), timeout=10)
    assert r.status_code == 200
    assert r.json()["REMOTE_USER"] == "alice"
    assert r.json()["AUTH_TYPE"] == "Digest"
    assert requests.get(url, auth=HTTPDigestAuth("alice", WRONG), timeout=10).status_code == 401
    assert requests.get(url, auth=HTTPDigestAuth("nobody", PW["alice"]), timeout=10).status_code == 401
    # bob exists only in another realm
    assert requests.get(url, auth=HTTPDigestAuth("bob", PW["bob"]), timeout=10).status_code == 401


def test_digest_asks_for_digest(digest_site):
    r = requests.get(digest_site.url + "page", timeout=10)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith(f'Digest realm="{digest_site.realm}"')


@pytest.mark.parametrize(
    ("user", "password", "status"),
    [("alice", PW["alice"], 200), ("alice", WRONG, 401), ("jürgen", PW["jürgen"], 200), ("jürgen", WRONG, 401)],
)
def test_digest_with_curl(digest_site, user, password, status):
    # curl sends the user name as the raw UTF-8 bytes of its argument.
    curl = require_tool("curl")
    out = subprocess.run(
        [curl, "-s", "-w", "\\n%{http_code}", "--digest", "-u", f"{user}:{password}", digest_site.url + "page"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    body, _, code = out.stdout.rpartition("\n")
    assert code == str(status), out
    if status == 200:
        assert json.loads(body)["REMOTE_USER"] == user


# ---------------------------------------------------------------------------------------------- live reload


def test_concurrent_requests_get_their_own_answers(site):
    # Apache's children run the hooks on many threads at once: every answer must be the one for its request.
    from concurrent.futures import ThreadPoolExecutor

    table = [("alice", PW["alice"], 200), ("alice", WRONG, 401), ("bob", PW["bob"], 401), ("nobody", WRONG, 401),
             ("jürgen", PW["jürgen"], 200)] * 12

    def one(row):
        user, password, _ = row
        r = site.get("/page", user=user.encode(), password=password.encode())
        return r.status, (r.json()["REMOTE_USER"] if r.status == 200 else None)

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(one, table))
    assert answers == [(status, user if status == 200 else None) for user, _, status in table]


def test_password_file_replaced_while_running(site):
    assert site.get("/page", user="carol", password=PW["carol"]).status == 200
    # htpasswd-style replacement: a new file renamed over the old one (new inode), no restart.
    site.write("htpasswd", htpasswd_file({**PW, "carol": CAROL_NEW}))
    deadline = time.monotonic() + 3.0
    new = old = None
    while time.monotonic() < deadline:
        new = site.get("/page", user="carol", password=CAROL_NEW).status
        old = site.get("/page", user="carol", password=PW["carol"]).status
        if (new, old) == (200, 401):
            break
        time.sleep(0.1)
    assert (new, old) == (200, 401), "the replaced htpasswd file was not picked up within 3 s"
    assert site.get("/page", user="alice", password=PW["alice"]).status == 200  # others unaffected


# ---------------------------------------------------------------------------------------------- logs


def test_error_logs_never_contain_passwords(site, digest_site):
    # Runs last (file order): every request above has been logged by now.
    assert site.get("/page", user="alice", password=WRONG).status == 401  # at least one failure logged
    for server in (site, digest_site):
        text = server.error_log_text()
        assert "Traceback" not in text, text[-3000:]
        for pw in ALL_PASSWORDS:
            assert pw not in text
            for user in PW:
                token = base64.b64encode(f"{user}:{pw}".encode()).decode()
                assert token not in text
    # and the failures were logged at all (the check above is not vacuous)
    assert "alice" in site.error_log_text()


# ---------------------------------------------------------------------------------------------- make demo


def test_demo_start_serves_the_page_to_the_demo_credentials(apache_available):
    import io
    import shlex
    import socket

    from backends import demo

    require_tool("curl")
    with socket.socket() as busy:  # a port in use: the demo must say so and pick another
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        out = io.StringIO()
        server = demo.start(taken, out=out)
    try:
        assert f"Port {taken} is busy" in out.getvalue()
        assert server.port != taken
        (user, password, _), (other, other_pw, _) = demo.CREDENTIALS
        r = server.get("/", user=user, password=password)
        assert r.status == 200
        assert f"Hello, {user}!" in r.body.decode()
        assert server.get("/", user=other, password=other_pw).status == 401  # not in staff
        assert server.get("/", user=user, password=other_pw).status == 401
        text = demo.banner(server)
        assert server.url in text and f"{user} / {password}" in text
        curl_line = next(line.strip() for line in text.splitlines() if line.strip().startswith("curl "))
        done = subprocess.run(shlex.split(curl_line), capture_output=True, text=True, timeout=30, check=False)
        assert f"Hello, {user}!" in done.stdout
    finally:
        server.close()
    assert not server.root.exists()


def test_demo_main_runs_until_ctrl_c(apache_available):
    import os
    import signal

    from backends import demo
    from backends.pytest_plugin import run_entry

    proc, text = run_entry("backends.demo", "--port", "0", timeout=30)
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+/", text)
        assert url, text
        user, password, _ = demo.CREDENTIALS[0]
        assert requests.get(url.group(0), auth=(user, password), timeout=10).status_code == 200
        site = re.search(r"files: (\S+)", text).group(1)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, text + rest
        assert "stopped." in rest
        assert not os.path.exists(site)  # temp dir removed
        with pytest.raises(requests.ConnectionError):
            requests.get(url.group(0), timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------------- the launcher itself


def test_launcher_loads_every_native_auth_module_and_restarts(apache_available):
    from backends.apache import NATIVE_AUTH_MODULES

    with Apache(modules=NATIVE_AUTH_MODULES) as server:
        pid = server.pid
        assert server.get("/x").json()["PATH_INFO"] == "/x"  # the default app, no auth configured
        loaded = server.include_file.read_text()
        for name in NATIVE_AUTH_MODULES:
            assert f"LoadModule {name}_module" in loaded
        server.restart()
        assert server.get("/after-restart").status == 200
        server.graceful()
        assert server.get("/after-graceful").status == 200
        assert server.pid == pid  # the parent survives both
        assert server.error_log_text().count("resuming normal operations") == 3  # three generations started
    assert not server.running
    assert not server.root.exists()
    with pytest.raises(OSError):
        import socket

        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def test_launcher_fails_fast_on_a_configuration_error(apache_available):
    from backends._common import ServerError

    server = Apache(include="ThisIsNotADirective on\n")
    started = time.monotonic()
    try:
        with pytest.raises(ServerError) as info:
            server.start()
        assert time.monotonic() - started < 10
        assert "ThisIsNotADirective" in str(info.value)  # Apache's own complaint is in the message
        assert not server.running
    finally:
        server.close()


@pytest.mark.parametrize(
    "options",
    [{"mpm": "prefork", "processes": 2}, {"mpm": "worker"}, {"embedded": True, "processes": 2, "threads": 4}],
    ids=["prefork", "worker", "embedded"],
)
def test_hooks_under_every_mpm(apache_available, options):
    # The auth hooks run in Apache's children whatever the MPM: forked processes (prefork) or threads.
    require_tool("htpasswd")
    files = {"htpasswd": htpasswd_file({"alice": PW["alice"]}), "htgroup": b"staff: alice\n", "auth.wsgi": AUTH_SCRIPT}
    with Apache(files=files, auth_user_script="auth.wsgi", auth_group_script="auth.wsgi", auth_group="staff",
                **options) as server:
        for _ in range(3):
            r = server.get("/page", user="alice", password=PW["alice"])
            assert r.status == 200, server.error_log_text()[-2000:]
            assert r.json()["REMOTE_USER"] == "alice"
            assert server.get("/page", user="alice", password=WRONG).status == 401
