"""Micro benchmarks of the C core against its pure-Python or stdlib twins, measured in the same run.

Run for real with ``make bench`` or
``.venv/bin/python -m pytest benchmarks/bench_hashes.py --benchmark-enable --benchmark-only``; the normal suite runs
each function once (``--benchmark-disable``) so they stay correct. Each pair shares a ``group`` so the report puts
them side by side.

* apr1 verify: wsgiauth (C) vs libpass's pure-Python ``apr_md5_crypt`` (target: at least 4x faster), for an
  11-byte password (every MD5-crypt round is one MD5 block) and a 21-byte one (most rounds take two blocks);
* HA1: wsgiauth's C MD5 of ``user:realm:password`` vs ``hashlib.md5`` (the faster is ``hashes.ha1``);
* constant-time compare: the C routine vs ``hmac.compare_digest`` (the faster is ``hashes.constant_time_equal``);
* ``$6$`` (5000 rounds): libxcrypt vs libpass's pure-Python ``sha512_crypt``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from passlib.hash import apr_md5_crypt, sha512_crypt

from wsgiauth import _lowlevel, hashes

PASSWORD = b"correct horse battery"
SHORT = b"Tr0ub4dor&3"
APR1 = hashes.hash_password(PASSWORD, "apr1")
APR1_SHORT = hashes.hash_password(SHORT, "apr1")
SHA512 = hashes.hash_password(PASSWORD, "sha512_crypt")  # default 5000 rounds, as htpasswd -5
USER, REALM = b"alice", b"wsgiauth test realm"
DIGEST_A = hashlib.sha256(b"a").digest()
DIGEST_B = bytearray(DIGEST_A)
DIGEST_B[-1] ^= 1
DIGEST_B_BYTES = bytes(DIGEST_B)


def test_apr1_verify_c(benchmark: Any) -> None:
    benchmark.group = "apr1 verify, 11-byte password"
    assert benchmark(hashes.verify, SHORT, APR1_SHORT) is True


def test_apr1_verify_libpass(benchmark: Any) -> None:
    benchmark.group = "apr1 verify, 11-byte password"
    assert benchmark(apr_md5_crypt.verify, SHORT, APR1_SHORT) is True


def test_apr1_verify_long_c(benchmark: Any) -> None:
    benchmark.group = "apr1 verify, 21-byte password"
    assert benchmark(hashes.verify, PASSWORD, APR1) is True


def test_apr1_verify_long_libpass(benchmark: Any) -> None:
    benchmark.group = "apr1 verify, 21-byte password"
    assert benchmark(apr_md5_crypt.verify, PASSWORD, APR1) is True


def test_ha1_c(benchmark: Any) -> None:
    benchmark.group = "HA1"
    assert benchmark(_lowlevel.ha1, USER, REALM, PASSWORD) == _ha1_hashlib(USER, REALM, PASSWORD)


def test_ha1_default(benchmark: Any) -> None:
    benchmark.group = "HA1"
    assert benchmark(hashes.ha1, USER, REALM, PASSWORD) == _ha1_hashlib(USER, REALM, PASSWORD)


_ha1_hashlib = hashes._ha1_with(hashlib.md5)  # the same code as hashes.ha1, on OpenSSL's MD5


def test_ha1_hashlib(benchmark: Any) -> None:
    benchmark.group = "HA1"
    joined = hashlib.md5(b"%s:%s:%s" % (USER, REALM, PASSWORD)).hexdigest()
    assert benchmark(_ha1_hashlib, USER, REALM, PASSWORD) == joined


@pytest.mark.parametrize("equal", [True, False], ids=["equal", "differ"])
def test_compare_c(benchmark: Any, equal: bool) -> None:
    benchmark.group = f"constant-time compare ({'equal' if equal else 'differ'})"
    other = DIGEST_A if equal else DIGEST_B_BYTES
    assert benchmark(_lowlevel.ct_equal, other, DIGEST_A) is equal


@pytest.mark.parametrize("equal", [True, False], ids=["equal", "differ"])
def test_compare_hmac(benchmark: Any, equal: bool) -> None:
    benchmark.group = f"constant-time compare ({'equal' if equal else 'differ'})"
    other = DIGEST_A if equal else DIGEST_B_BYTES
    assert benchmark(hmac.compare_digest, other, DIGEST_A) is equal


@pytest.mark.parametrize("equal", [True, False], ids=["equal", "differ"])
def test_compare_default(benchmark: Any, equal: bool) -> None:
    benchmark.group = f"constant-time compare ({'equal' if equal else 'differ'})"
    other = DIGEST_A if equal else DIGEST_B_BYTES
    assert benchmark(hashes.constant_time_equal, other, DIGEST_A) is equal


def test_sha512_crypt_libxcrypt(benchmark: Any) -> None:
    benchmark.group = "$6$ verify (5000 rounds)"
    assert benchmark(hashes.verify, PASSWORD, SHA512) is True


def test_sha512_crypt_libpass(benchmark: Any) -> None:
    benchmark.group = "$6$ verify (5000 rounds)"
    assert benchmark(sha512_crypt.verify, PASSWORD, SHA512) is True
