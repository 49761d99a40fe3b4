"""DBM lookup cost per call against a 10,000-user database, next to a Python dict lookup.

Run for real with ``.venv/bin/python -m pytest benchmarks/bench_dbm.py --benchmark-enable --benchmark-only``;
the normal suite runs each function once (``--benchmark-disable``).

* ``DbmFile.fetch`` on SDBM (wsgiauth's C reader: shared lock on ``.dir``, fresh ``pread`` of the bitmap block and
  the page, unlock), GDBM (libgdbm, flock + fstat check) and DB (Berkeley DB hash, fstat check);
* ``dbm.Backend.lookup`` on SDBM (the above plus splitting the value into a :class:`wsgiauth.Record`);
* ``dict.get`` on the same 10,000 keys: the floor any in-memory store pays;
* the SDBM handle alone, C (``csrc/sdbm.c``) and its pure-Python fallback (``wsgiauth._puresdbm``), same files: the
  compiled SDBM's speed-up.

Each call looks up a different user (cycling through 1,000 of them) so that no single page stays hot.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wsgiauth._dbmfile import DbmFile
from wsgiauth.backends import dbm

N = 10_000
KEYS = [b"user%05d" % i for i in range(N)]


def _value(i: int) -> bytes:
    return b"$2y$05$abcdefghijklmnopqrstuu0123456789012345678901234567890:staff,users:User %d" % i


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bench-dbm")
    out = {}
    for t in ("sdbm", "gdbm", "db"):
        path = root / f"users-{t}"
        with DbmFile(path, t, writable=True) as w:
            for i, k in enumerate(KEYS):
                w.store(k, _value(i))
        out[t] = path
    return out


def _cycle(fn: Callable[[bytes], Any]) -> Callable[[], Any]:
    keys = itertools.cycle(KEYS[:: N // 1000])

    def call() -> Any:
        return fn(next(keys))

    return call


@pytest.mark.benchmark(group="dbm-lookup-10k")
@pytest.mark.parametrize("t", ["sdbm", "gdbm", "db"])
def test_fetch(benchmark: Any, databases: dict[str, Path], t: str) -> None:
    f = DbmFile(databases[t], check_interval=1.0)
    assert f.type == t
    value = benchmark(_cycle(f.fetch))
    assert value is not None and value.startswith(b"$2y$05$")
    f.close()


@pytest.mark.benchmark(group="dbm-lookup-10k")
def test_backend_lookup_sdbm(benchmark: Any, databases: dict[str, Path]) -> None:
    backend = dbm.Backend(databases["sdbm"])
    record = benchmark(_cycle(backend.lookup))
    assert record is not None and record.groups == (b"staff", b"users")
    backend.close()


@pytest.mark.benchmark(group="dbm-lookup-10k")
def test_dict_get(benchmark: Any) -> None:
    table = {k: _value(i) for i, k in enumerate(KEYS)}
    value = benchmark(_cycle(table.get))
    assert value is not None


@pytest.mark.benchmark(group="sdbm fetch, 10k users: compiled vs fallback")
@pytest.mark.parametrize("impl", ["c", "fallback"])
def test_sdbm_handle_fetch(benchmark: Any, databases: dict[str, Path], impl: str) -> None:
    import importlib

    from wsgiauth import _dbmfile
    from wsgiauth._puresdbm import SdbmFile

    if impl == "c":
        opener: Any = _dbmfile._CFormat(importlib.import_module("wsgiauth._native_dbm"), "wa_sdbm_")
    else:
        opener = SdbmFile
    h = opener(str(databases["sdbm"]), False, 2000)
    value = benchmark(_cycle(h.fetch))
    assert value is not None and value.startswith(b"$2y$05$")
    h.close()
