"""What opening libxcrypt and libgdbm at run time costs, against binding them at link time as wsgiauth 0.1.0.dev0 did.

wsgiauth now calls libxcrypt and libgdbm through cffi's ABI mode (``wsgiauth._abi``, the libraries opened by soname on
first use), with the wrapper logic in Python (``_lowlevel.crypt_verify``, ``wsgiauth._gdbm``). The reference here is
the old design, rebuilt for the benchmark: a cffi API-mode module linked with ``-lcrypt -lgdbm`` whose C does the same
work in one call (csrc/xcrypt.c's heap ``crypt_data``, ``crypt_rn``, constant-time compare; csrc/gdbm.c's shared
``flock``, ``fstat`` check, ``gdbm_fetch``, copy, ``free``, unlock). Built in a temp dir when the module is first
used (needs gcc, libcrypt-dev, libgdbm-dev: ``make deps``).

Groups (each: run-time loaded vs link-time):

* ``crypt_checksalt`` alone: the bare per-call cost of the ABI binding;
* ``$1$`` verify (MD5-crypt, the cheapest libxcrypt hash) and ``$6$`` verify (5000 rounds): the overhead next to
  real work;
* GDBM fetch through ``DbmFile`` from a 10,000-user database (the link-time row takes the same Python lock).

Berkeley DB is not here: its C (csrc/bdb.c) calls the library through the same handle methods as before; only
``db_create`` and ``db_strerror`` come from the run-time loaded library, once per open.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from backends._common import missing, require_tool
from wsgiauth import _compiled, _lowlevel, hashes
from wsgiauth._dbmfile import DbmFile

_REF_CDEF = """
int ref_crypt_verify(const char *phrase, const char *stored, size_t storedlen);
int ref_checksalt(const char *setting);
void *ref_gdbm_open(const char *path);
int ref_gdbm_fetch(void *dbf, const unsigned char *key, size_t klen, unsigned char *out, size_t cap, size_t *vlen);
"""
_REF_SOURCE = r"""
#define _GNU_SOURCE
#include <crypt.h>
#include <gdbm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

static int ct_equal(const unsigned char *a, const unsigned char *b, size_t n)
{
    unsigned char acc = 0;
    for (size_t i = 0; i < n; i++) acc |= a[i] ^ b[i];
    return acc == 0;
}

int ref_crypt_verify(const char *phrase, const char *stored, size_t storedlen)
{
    struct crypt_data *data = calloc(1, sizeof(struct crypt_data));
    int rc = -1;
    const char *res = crypt_rn(phrase, stored, data, (int)sizeof(struct crypt_data));
    if (res != NULL && res[0] != '*' && strlen(res) == storedlen)
        rc = ct_equal((const unsigned char *)res, (const unsigned char *)stored, storedlen);
    explicit_bzero(data, sizeof(struct crypt_data));
    free(data);
    return rc;
}

int ref_checksalt(const char *setting) { return crypt_checksalt(setting); }

void *ref_gdbm_open(const char *path)
{
    return gdbm_open(path, 0, GDBM_READER | GDBM_NOLOCK | GDBM_NOMMAP, 0644, NULL);
}

int ref_gdbm_fetch(void *dbf, const unsigned char *key, size_t klen, unsigned char *out, size_t cap, size_t *vlen)
{
    int fd = gdbm_fdesc(dbf);
    struct stat st;
    datum k = {(char *)key, (int)klen}, v;
    if (flock(fd, LOCK_SH | LOCK_NB) != 0) return -1;
    if (fstat(fd, &st) != 0) { flock(fd, LOCK_UN); return -1; }
    v = gdbm_fetch(dbf, k);
    flock(fd, LOCK_UN);
    if (v.dptr == NULL) return 0;
    *vlen = (size_t)v.dsize;
    if (*vlen <= cap) memcpy(out, v.dptr, *vlen);
    free(v.dptr);
    return 1;
}
"""

N = 10_000
KEYS = [b"user%05d" % i for i in range(N)]
PASSWORD = b"correct horse battery"
MD5_CRYPT = hashes.hash_password(PASSWORD, "md5_crypt")
SHA512 = hashes.hash_password(PASSWORD, "sha512_crypt")


@pytest.fixture(scope="module")
def linked(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The link-time reference module (cffi API mode, -lcrypt -lgdbm), built for this run."""
    require_tool("gcc")
    for header in ("crypt.h", "gdbm.h"):
        if not os.path.exists(f"/usr/include/{header}"):
            missing(f"/usr/include/{header} is missing (libcrypt-dev, libgdbm-dev: `make deps`)")
    from cffi import FFI

    ffi = FFI()
    ffi.cdef(_REF_CDEF)
    ffi.set_source("_wsgiauth_linktime_ref", _REF_SOURCE, libraries=["crypt", "gdbm"],
                   extra_compile_args=["-O2"])
    out = tmp_path_factory.mktemp("linktime")
    so = ffi.compile(tmpdir=str(out))
    spec = importlib.util.spec_from_file_location("_wsgiauth_linktime_ref", so)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules.setdefault("_wsgiauth_linktime_ref", module)
    return module


@pytest.fixture(scope="module")
def gdbm_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench-gdbm") / "users"
    with DbmFile(path, "gdbm", writable=True) as w:
        for i, k in enumerate(KEYS):
            w.store(k, b"$2y$05$abcdefghijklmnopqrstuu0123456789012345678901234567890:staff:User %d" % i)
    return path


def test_checksalt_runtime(benchmark: Any) -> None:
    benchmark.group = "crypt_checksalt call: run-time loaded vs link-time"
    _compiled.library("libxcrypt")
    assert benchmark(_lowlevel.crypt_checksalt, b"$6$saltsalt$") == _lowlevel.CRYPT_SALT_OK


def test_checksalt_linktime(benchmark: Any, linked: Any) -> None:
    benchmark.group = "crypt_checksalt call: run-time loaded vs link-time"
    assert benchmark(linked.lib.ref_checksalt, b"$6$saltsalt$") == _lowlevel.CRYPT_SALT_OK


@pytest.mark.parametrize("stored", [MD5_CRYPT, SHA512], ids=["md5_crypt", "sha512_crypt"])
def test_crypt_verify_runtime(benchmark: Any, stored: str) -> None:
    benchmark.group = f"{stored[:3]} verify: run-time loaded vs link-time"
    assert benchmark(_lowlevel.crypt_verify, PASSWORD, stored.encode()) is True


@pytest.mark.parametrize("stored", [MD5_CRYPT, SHA512], ids=["md5_crypt", "sha512_crypt"])
def test_crypt_verify_linktime(benchmark: Any, linked: Any, stored: str) -> None:
    benchmark.group = f"{stored[:3]} verify: run-time loaded vs link-time"
    raw = stored.encode()
    assert benchmark(linked.lib.ref_crypt_verify, PASSWORD, raw, len(raw)) == 1


def _cycle_keys() -> Any:
    return itertools.cycle(KEYS[:: N // 1000])


def test_gdbm_fetch_runtime(benchmark: Any, gdbm_file: Path) -> None:
    benchmark.group = "GDBM fetch, 10k users: run-time loaded vs link-time"
    f = DbmFile(gdbm_file, check_interval=1.0)
    keys = _cycle_keys()
    value = benchmark(lambda: f.fetch(next(keys)))
    assert value is not None and value.startswith(b"$2y$05$")
    f.close()


def test_gdbm_fetch_linktime(benchmark: Any, linked: Any, gdbm_file: Path) -> None:
    benchmark.group = "GDBM fetch, 10k users: run-time loaded vs link-time"
    ffi, lib = linked.ffi, linked.lib
    dbf = lib.ref_gdbm_open(str(gdbm_file).encode())
    assert dbf != ffi.NULL
    buf = ffi.new("unsigned char[]", 4096)
    n = ffi.new("size_t *")
    lock = threading.Lock()
    keys = _cycle_keys()

    def fetch() -> bytes | None:
        key = next(keys)
        with lock:  # as DbmFile serialised the old C call
            rc = lib.ref_gdbm_fetch(dbf, key, len(key), buf, 4096, n)
            return bytes(ffi.buffer(buf, n[0])) if rc == 1 else None

    value = benchmark(fetch)
    assert value is not None and value.startswith(b"$2y$05$")
