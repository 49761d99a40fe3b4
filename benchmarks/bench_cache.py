"""What the verification cache buys: ``check_password`` latency with and without it, bcrypt and apr1 users.

Micro benchmarks (pytest-benchmark; ``make bench`` runs them for real, ``make test`` once each)::

    .venv/bin/python -m pytest benchmarks/bench_cache.py --benchmark-enable --benchmark-only

Every variant checks the right password of one user of a real htpasswd file (``htpasswd.Backend``) through the
mod_wsgi hook ``check_password``: uncached (a full hash verification each time), cached (one HMAC), and the
recommended stack ``throttled(cached(...))`` per process and with the shared Redis tier (one Redis round trip for the
lockout check).

The end-to-end comparison through a real Apache (requests per second with the cache on and off, measured with
``wrk -t1 -c4 -d5s`` and a Basic ``Authorization`` header against 127.0.0.1)::

    .venv/bin/python -m benchmarks.bench_cache
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from backends._common import ServerError, require_tool
from backends.redis import Redis
from wsgiauth import hashes
from wsgiauth.adapter import Backend
from wsgiauth.backends import htpasswd
from wsgiauth.cache import cached
from wsgiauth.throttle import throttled

PASSWORD = "correct horse battery"
ENV = {"REMOTE_ADDR": "127.0.0.1"}
KEY = b"benchmark shared key (32 bytes)"
SCHEMES = {
    "apr1": lambda pw: hashes.hash_password(pw, "apr1"),
    "bcrypt5": lambda pw: hashes.hash_password(pw, "bcrypt", cost=5),  # htpasswd -B
    "bcrypt10": lambda pw: hashes.hash_password(pw, "bcrypt", cost=10),
}


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench-cache") / "htpasswd"
    path.write_text("".join(f"{name}:{make(PASSWORD.encode())}\n" for name, make in SCHEMES.items()))
    return path


@pytest.fixture(scope="module")
def redis_url(redis_server: Redis) -> str:
    """The URL of the plugin's throw-away redis-server (backends/pytest_plugin.py)."""
    return redis_server.url


def _stacks(path: Path, redis_url: str | None) -> dict[str, Callable[[], Backend]]:
    def store() -> Backend:
        return htpasswd.Backend(users=str(path), log_level="off")

    stacks: dict[str, Callable[[], Backend]] = {
        "uncached": store,
        "cached": lambda: cached(store(), log_level="off"),
        "throttled+cached": lambda: throttled(cached(store(), log_level="off"), log_level="off"),
    }
    if redis_url is not None:
        stacks["throttled+cached redis"] = lambda: throttled(
            cached(store(), redis=redis_url, key=KEY, log_level="off"), redis=redis_url, log_level="off")
    return stacks


@pytest.mark.parametrize("stack", ["uncached", "cached", "throttled+cached"])
@pytest.mark.parametrize("user", list(SCHEMES))
def test_check_password(benchmark: Any, users_file: Path, user: str, stack: str) -> None:
    backend = _stacks(users_file, None)[stack]()
    benchmark.group = f"check_password {user}"
    benchmark.name = stack
    assert backend.check_password(ENV, user, PASSWORD) is True  # warm: the cached variants hold the grant now
    assert benchmark(backend.check_password, ENV, user, PASSWORD) is True


@pytest.mark.parametrize("user", ["apr1", "bcrypt10"])
def test_check_password_shared_tier(benchmark: Any, users_file: Path, redis_url: str, user: str) -> None:
    backend = _stacks(users_file, redis_url)["throttled+cached redis"]()
    benchmark.group = f"check_password {user}"
    assert backend.check_password(ENV, user, PASSWORD) is True
    assert benchmark(backend.check_password, ENV, user, PASSWORD) is True


# ---------------------------------------------------------------------------------------------- Apache + wrk

AUTH_SCRIPT = """\
import json
import os

from wsgiauth.backends import htpasswd
from wsgiauth.cache import cached
from wsgiauth.throttle import throttled

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "conf.json")) as f:
    CONF = json.load(f)
backend = htpasswd.Backend(users=os.path.join(HERE, "htpasswd"), log_level="off")
if CONF["cache"]:
    backend = throttled(cached(backend, log_level="off"), log_level="off")
check_password = backend.check_password
"""


def _wrk(url: str, user: str, password: str, seconds: int = 5) -> float:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    out = subprocess.run([require_tool("wrk"), "-t1", "-c4", f"-d{seconds}s", "-H", f"Authorization: Basic {token}",
                          url], capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise ServerError(f"wrk saw {non2xx.group(1)} failed responses:\n{out}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise ServerError(f"cannot read wrk's output:\n{out}")
    return float(found.group(1))


def apache_requests_per_second(seconds: int = 5) -> dict[str, dict[str, float]]:
    """Requests/second through a real Apache for each user (hash scheme), with the cache off and on."""
    from backends.apache import Apache

    lines = "".join(f"{name}:{make(PASSWORD.encode())}\n" for name, make in SCHEMES.items())
    results: dict[str, dict[str, float]] = {}
    for on in (False, True):
        files = {"htpasswd": lines, "auth.wsgi": AUTH_SCRIPT, "conf.json": json.dumps({"cache": on})}
        with Apache(files=files, auth_user_script="auth.wsgi", access_log=False) as server:
            for user in SCHEMES:
                assert server.get("/", user=user, password=PASSWORD).status == 200
                results.setdefault(user, {})["cache on" if on else "cache off"] = _wrk(server.url, user,
                                                                                        PASSWORD, seconds)
    return results


if __name__ == "__main__":
    table = apache_requests_per_second(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
    print(json.dumps(table, indent=2))
    for user, row in table.items():
        print(f"{user:10s} cache off {row['cache off']:9.1f} req/s   cache on {row['cache on']:9.1f} req/s")
