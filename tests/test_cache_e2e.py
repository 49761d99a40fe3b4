"""End to end through real Apache (mod_wsgi-express): the cache and the throttle as a visitor sees them.

Two Apache servers share one throw-away Redis, as two web servers of one site would. Both run the same auth
script: ``throttled(cached(htpasswd.Backend(...)))`` over an htpasswd file of bcrypt hashes made by ``htpasswd -B``.
The script also writes the cache's counters to the error log after each check (test instrumentation), so the test
can see hits without timing anything.
"""

from __future__ import annotations

import json
import re

import pytest

from backends._common import require_tool
from backends.apache import Apache, htpasswd_line
from backends.redis import Redis

pytestmark = pytest.mark.apache

PW = {"alice": "alice-Bcrypt.1", "bob": "bob-Bcrypt.2", "carol": "carol-Bcrypt.3",
      **{f"user{i}": f"user{i}-Bcrypt.{i}" for i in range(5)}}
WRONG = "wrong-Guess.9"
ALL_PASSWORDS = [*PW.values(), WRONG]
KEY = "e2e shared key, 32 bytes or so.."

AUTH_SCRIPT = """\
import json
import os

from wsgiauth.backends import htpasswd
from wsgiauth.cache import cached
from wsgiauth.throttle import throttled

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "conf.json")) as f:
    CONF = json.load(f)

store = htpasswd.Backend(users=os.path.join(HERE, "htpasswd"), log_level="debug")
cache = cached(store, ttl=300, redis=CONF["redis"], key=CONF["key"], namespace="e2e", log_level="debug")
backend = throttled(cache, max_failures=3, lockout=120, per="user", redis=CONF["redis"], namespace="e2e",
                    log_level="debug")


def check_password(environ, user, password):
    answer = backend.check_password(environ, user, password)
    environ["wsgi.errors"].write("cache-stats %s\\n" % json.dumps(dict(cache.stats(), pid=os.getpid())))
    return answer
"""


@pytest.fixture(scope="module")
def sites(apache_factory, redis_server: Redis) -> tuple[Apache, Apache]:
    require_tool("htpasswd")
    htpasswd = b"".join(htpasswd_line(u, p, "-B", "-C", "8") for u, p in PW.items())
    files = {"htpasswd": htpasswd, "auth.wsgi": AUTH_SCRIPT,
             "conf.json": json.dumps({"redis": redis_server.url, "key": KEY})}
    one = apache_factory(files=files, auth_user_script="auth.wsgi", log_level="info")
    two = apache_factory(files=files, auth_user_script="auth.wsgi", log_level="info")
    return one, two


def stats(server: Apache) -> list[dict[str, int]]:
    return [json.loads(m) for m in re.findall(r"cache-stats (\{.*?\})", server.error_log_text())]


def test_repeated_requests_succeed_from_the_cache(sites: tuple[Apache, Apache]) -> None:
    one, _ = sites
    for _ in range(10):
        r = one.get("/page", user="alice", password=PW["alice"])
        assert r.status == 200, r
        assert r.json()["REMOTE_USER"] == "alice"
    seen = stats(one)
    assert len(seen) >= 10
    # one bcrypt verification at most per Apache child: everything else came from a cache tier
    last = seen[-1]
    assert last["hits"] + last["shared_hits"] >= 1
    assert sum(1 for s in seen if s["misses"] > 0 and s["hits"] + s["shared_hits"] == 0) <= 1 + len(seen) // 10


def test_a_wrong_password_is_refused_and_does_not_disturb_the_cache(sites: tuple[Apache, Apache]) -> None:
    one, _ = sites
    assert one.get("/page", user="carol", password=PW["carol"]).status == 200
    assert one.get("/page", user="carol", password=WRONG).status == 401
    assert one.get("/page", user="carol", password=PW["carol"]).status == 200
    assert one.get("/page", user="nobody", password=WRONG).status == 401


def test_the_other_server_finds_the_grant_in_redis(sites: tuple[Apache, Apache]) -> None:
    one, two = sites
    # A process that starts serving retires the shared entries (it may hold a newer copy of the file than the
    # processes that wrote them), so the first attempts may land in a child of server two that is just starting.
    for user in [f"user{i}" for i in range(5)]:
        assert two.get("/page", user="carol", password=PW["carol"]).status == 200  # the child has started
        assert one.get("/page", user=user, password=PW[user]).status == 200
        seen = len(stats(two))
        assert two.get("/page", user=user, password=PW[user]).status == 200
        lines = stats(two)
        line = lines[seen]
        previous = [s for s in lines[:seen] if s["pid"] == line["pid"]]
        before = previous[-1] if previous else {"shared_hits": 0, "misses": 0, "hits": 0}
        if line["shared_hits"] == before["shared_hits"] + 1 and line["misses"] == before["misses"]:
            break  # server two answered from Redis: no bcrypt there
    else:
        pytest.fail(f"server two never found a grant in Redis: {stats(two)}")


def test_a_lockout_on_one_server_is_seen_by_the_other(sites: tuple[Apache, Apache]) -> None:
    one, two = sites
    assert two.get("/page", user="alice", password=PW["alice"]).status == 200
    for _ in range(3):
        assert one.get("/page", user="alice", password=WRONG).status == 401
    r = two.get("/page", user="alice", password=PW["alice"])
    assert r.status == 401  # locked out everywhere, even with the right password
    assert r.headers["www-authenticate"].startswith("Basic ")
    assert "locked out" in one.error_log_text() and "locked out" in two.error_log_text()
    assert two.get("/page", user="bob", password=PW["bob"]).status == 200  # others are not affected


def test_the_error_logs_hold_no_password(sites: tuple[Apache, Apache]) -> None:
    logs = "".join(s.error_log_text() for s in sites)
    assert "granted" in logs and "denied" in logs  # debug logging was on: there is something to search
    for password in ALL_PASSWORDS:
        assert password not in logs
    assert "$2y$" not in logs
