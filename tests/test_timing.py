"""Timing: an unknown user, a wrong password and a locked-out user must take the same time, for every backend.

An attacker who can tell these apart learns which user names exist (and which are locked, i.e. which ones someone is
attacking). Each backend (htpasswd, DBM/SDBM, SQL/SQLite, LDAP/slapd) is wrapped in :func:`wsgiauth.throttle.throttled`
(5 failures lock a user name out) and called through its mod_wsgi hook ``check_password`` in process, exactly as
Apache would call it:

* ``unknown``: a user name the store does not hold (a fresh one each time, so it is never locked out itself);
* ``wrong``: an existing user with a wrong password (users rotate, each used fewer than 5 times);
* ``locked``: a user locked out by 5 earlier failures.

All three send the same guessed password (MD5-crypt's cost grows with the password's length, and an attacker picks
the password, so only the user name differs).

The measurement is interleaved (each round calls the three cases in a shuffled order) and robust to a noisy machine:
the samples are cut into batches, each batch gives a median per case, and the case's time is the median of its batch
medians. The three must be within 10% of each other (max / min <= 1.10); a failing measurement is repeated up to 3
times before the test fails. Hashes: apr1 (Apache's default) and bcrypt cost 4 (cheap, so the test stays fast).
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import logging
import os
import random
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backends._common import SQL_SCHEMA
from wsgiauth import hashes
from wsgiauth._dbmfile import DbmFile
from wsgiauth.adapter import Backend
from wsgiauth.backends import dbm as dbm_backend
from wsgiauth.backends import htpasswd as htpasswd_backend
from wsgiauth.backends import sql as sql_backend
from wsgiauth.throttle import throttled

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

USERS = 150  # each used for at most 4 wrong passwords
SAMPLES = 240  # per case and attempt
BATCH = 20
TOLERANCE = 1.10
ATTEMPTS = 5  # a noisy (shared) machine gets more chances; a real leak fails all of them
SCHEMES = {"apr1": {"scheme": "apr1"}, "bcrypt4": {"scheme": "bcrypt", "cost": 4}}

GUESS = "guess-pw-1234"


@pytest.fixture(autouse=True)
def _no_log_capture() -> Iterator[None]:
    """Keep pytest's log capture out of the measured calls (wsgi.errors still gets every line, as in Apache)."""
    log = logging.getLogger("wsgiauth")
    saved = log.propagate
    log.propagate = False
    handler = logging.NullHandler()
    log.addHandler(handler)
    yield
    log.removeHandler(handler)
    log.propagate = saved


class Sink(io.TextIOBase):
    """Apache's error log stand-in (wsgi.errors): accepts and forgets, as cheaply as a real write would be."""

    def write(self, s: str) -> int:
        return len(s)


ENVIRON: dict[str, Any] = {"REMOTE_ADDR": "127.0.0.1", "wsgi.errors": Sink()}


def password_of(i: int) -> str:
    return f"right-{i}"


class Subject:
    """A throttled backend with its three timing cases, ready to call."""

    def __init__(self, backend: Backend, locked_user: str, locked_password: str) -> None:
        self.backend = throttled(backend, max_failures=5, window=3600, lockout=3600, per="user")
        self.hook = self.backend.check_password
        self._ghost = itertools.count()
        self._users = itertools.cycle([f"user{i}" for i in range(USERS)])
        self.locked_user, self.locked_password = locked_user, locked_password
        for _ in range(5):
            assert self.hook(ENVIRON, locked_user, "wrong") is False
        assert self.hook(ENVIRON, locked_user, locked_password) is False  # locked, even with the right password
        assert self.backend.refused >= 1

    def fresh_round(self) -> None:
        """Forget the failures of the rotating users (not the lockout), so a new attempt starts clean."""
        for i in range(USERS):
            self.backend.release(f"user{i}")

    def cases(self) -> dict[str, Callable[[], object]]:
        return {
            "unknown": lambda: self.hook(ENVIRON, f"ghost{next(self._ghost)}", GUESS),
            "wrong": lambda: self.hook(ENVIRON, next(self._users), GUESS),
            "locked": lambda: self.hook(ENVIRON, self.locked_user, GUESS),
        }


def measure(cases: dict[str, Callable[[], object]], samples: int = SAMPLES, batch: int = BATCH) -> dict[str, float]:
    """Median of batch medians per case, in microseconds, from interleaved calls in shuffled order."""
    names = list(cases)
    for name in names:  # warm up (pools, caches of dummy hashes, branch predictors)
        for _ in range(5):
            cases[name]()
    per_batch: dict[str, list[float]] = {n: [] for n in names}
    rng = random.Random(42)
    for _ in range(samples // batch):
        times: dict[str, list[int]] = {n: [] for n in names}
        for _ in range(batch):
            rng.shuffle(names)
            for name in names:
                t0 = time.perf_counter_ns()
                cases[name]()
                times[name].append(time.perf_counter_ns() - t0)
        for name in names:
            per_batch[name].append(statistics.median(times[name]))
    return {n: statistics.median(v) / 1000 for n, v in per_batch.items()}


def assert_same_time(subject: Subject, label: str) -> dict[str, float]:
    attempts = []
    for _ in range(ATTEMPTS):
        subject.fresh_round()
        medians = measure(subject.cases())
        ratio = max(medians.values()) / min(medians.values())
        attempts.append((ratio, medians))
        if ratio <= TOLERANCE:
            print(f"timing {label}: " + ", ".join(f"{k} {v:.1f} us" for k, v in medians.items())
                  + f" (max/min {ratio:.3f})")
            RESULTS[label] = medians
            return medians
    print(f"timing {label}: FAILED: " + "; ".join(
        ", ".join(f"{k} {v:.1f} us" for k, v in m.items()) + f" (x{r:.3f})" for r, m in attempts))
    shown = "; ".join(", ".join(f"{k} {v:.1f} us" for k, v in m.items()) + f" (x{r:.3f})" for r, m in attempts)
    raise AssertionError(f"{label}: unknown / wrong password / locked out differ by more than "
                         f"{(TOLERANCE - 1) * 100:.0f}% in all {ATTEMPTS} attempts: {shown}")


RESULTS: dict[str, dict[str, float]] = {}


# ---------------------------------------------------------------------------------------------- stores


def make_hashes(params: dict[str, Any]) -> list[str]:
    return [hashes.hash_password(password_of(i).encode(), **params) for i in range(USERS)]


@pytest.fixture(scope="module")
def stores() -> dict[str, tuple[list[str], str]]:
    return {name: (make_hashes(params), hashes.hash_password(b"locked-pw", **params))
            for name, params in SCHEMES.items()}


@pytest.fixture(params=list(SCHEMES))
def scheme(request: pytest.FixtureRequest, stores: dict[str, tuple[list[str], str]]) -> tuple[str, list[str], str]:
    name: str = request.param
    return name, *stores[name]


def test_htpasswd_timing(tmp_path: Path, scheme: tuple[str, list[str], str]) -> None:
    name, stored, locked = scheme
    lines = [f"user{i}:{h}" for i, h in enumerate(stored)] + [f"locked:{locked}"]
    (tmp_path / "htpasswd").write_text("\n".join(lines) + "\n")
    backend = htpasswd_backend.Backend(tmp_path / "htpasswd")
    assert_same_time(Subject(backend, "locked", "locked-pw"), f"htpasswd/{name}")


def test_dbm_timing(tmp_path: Path, scheme: tuple[str, list[str], str]) -> None:
    name, stored, locked = scheme
    path = str(tmp_path / "users")
    with DbmFile(path, "sdbm", writable=True) as db:
        for i, h in enumerate(stored):
            db.store(f"user{i}".encode(), h.encode() + b":staff")
        db.store(b"locked", locked.encode())
    backend = dbm_backend.Backend(path, type="sdbm")
    try:
        assert_same_time(Subject(backend, "locked", "locked-pw"), f"dbm-sdbm/{name}")
    finally:
        backend.close()


def test_sql_timing(tmp_path: Path, scheme: tuple[str, list[str], str]) -> None:
    name, stored, locked = scheme
    path = tmp_path / "users.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(SQL_SCHEMA.read_text())
        conn.executemany("INSERT INTO wsgiauth_user (name, password_hash) VALUES (?, ?)",
                         [(f"user{i}", h) for i, h in enumerate(stored)] + [("locked", locked)])
    conn.close()
    backend = sql_backend.sqlite(path, pool_key=("timing", str(path)))
    try:
        assert_same_time(Subject(backend, "locked", "locked-pw"), f"sql-sqlite/{name}")
    finally:
        backend.close()


# ---------------------------------------------------------------------------------------------- LDAP


def _ssha(password: str) -> str:
    salt = os.urandom(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()


@pytest.fixture(scope="module")
def slapd(launch: Callable[..., Any]) -> Any:
    """A seeded slapd (started by ``launch``, backends/pytest_plugin.py) with this module's users too."""
    from backends.slapd import Slapd

    server = launch(Slapd)
    ldif = []
    for i in range(USERS):
        ldif.append(f"dn: uid=user{i},{server.people}\nobjectClass: inetOrgPerson\nuid: user{i}\ncn: User {i}\n"
                     f"sn: {i}\nuserPassword: {_ssha(password_of(i))}\n")
    ldif.append(f"dn: uid=locked,{server.people}\nobjectClass: inetOrgPerson\nuid: locked\ncn: Locked\nsn: L\n"
                f"userPassword: {_ssha('locked-pw')}\n")
    server.add_ldif("\n".join(ldif))
    return server


def test_ldap_timing(slapd: Any) -> None:
    from wsgiauth.backends import ldap

    url = f"{slapd.url}/{slapd.people}?uid?sub?(objectClass=inetOrgPerson)"
    backend = ldap.Backend(url, bind_dn=slapd.service_dn, bind_password=slapd.service_pw, pool_size=2,
                               connect_timeout=2.0, timeout=5.0)
    try:
        assert backend.check_password(ENVIRON, "user1", password_of(1)) is True  # the store really works
        assert_same_time(Subject(backend, "locked", "locked-pw"), "ldap")
    finally:
        backend.close()


def test_zz_print_results() -> None:
    """Print the table docs/security.md quotes (run with -s to see it)."""
    for label, medians in RESULTS.items():
        print(f"| {label} | " + " | ".join(f"{medians[c]:.1f}" for c in ("unknown", "wrong", "locked")) + " |")
