"""GDBM files through libgdbm (``libgdbm.so.6``, opened at run time by cffi's ABI mode), the way APR's apr_dbm_gdbm
uses it: key and value without a trailing NUL, the file name used as given.

A reader keeps one handle open (``GDBM_NOLOCK | GDBM_NOMMAP``) and, around each fetch, takes the shared ``flock``
that gdbm's own readers take, then compares the file with the identity taken at open: a change made in place
(``htdbm`` rewrites the file) is `wsgiauth._dbmfile.Stale`, so the caller reopens. Holding the lock only for a
fetch means a writer (htdbm, which takes an exclusive non-blocking lock) is never shut out for longer than one lookup.
No mmap: a file truncated by a writer can never fault the reader. A writer opens with gdbm's own exclusive lock,
retried while a reader's short shared lock is held.

The same code serves installations with and without wsgiauth's compiled modules. A handle is not thread-safe:
`wsgiauth._dbmfile.DbmFile` serialises the calls.
"""

from __future__ import annotations

import errno as _errno
import fcntl
import os
import time
from typing import Any

from . import _compiled
from ._dbmfile import Failed, OpenFailed, Stale

__all__ = ["GdbmFile"]

# <gdbm.h>'s values (libgdbm 1.x, soname 6; tests/test_syslibs.py compares them with the header where installed).
GDBM_READER = 0
GDBM_WRCREAT = 2
GDBM_NOLOCK = 0x40
GDBM_NOMMAP = 0x80
GDBM_CLOEXEC = 0x100
GDBM_REPLACE = 1
GDBM_NO_ERROR = 0
GDBM_FILE_OPEN_ERROR = 3
GDBM_FILE_WRITE_ERROR = 4
GDBM_FILE_READ_ERROR = 6
GDBM_CANT_BE_WRITER = 10
GDBM_ITEM_NOT_FOUND = 15
GDBM_FILE_STAT_ERROR = 24
_FILE_ERRORS = (GDBM_FILE_OPEN_ERROR, GDBM_FILE_READ_ERROR, GDBM_FILE_WRITE_ERROR, GDBM_FILE_STAT_ERROR)
_INT_MAX = 0x7FFFFFFF


def _flock_shared(fd: int, timeout_ms: int) -> None:
    """gdbm's reader lock (``flock`` shared), retried every 1 ms for ``timeout_ms``."""
    waited = 0
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (_errno.EWOULDBLOCK, _errno.EINTR):
                raise
        if waited >= timeout_ms:
            raise OSError(_errno.EWOULDBLOCK, os.strerror(_errno.EWOULDBLOCK))
        time.sleep(0.001)
        waited += 1


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class GdbmFile:
    """One open GDBM database.

    Raises (from the constructor): `OpenFailed`, or `wsgiauth._compiled.LibraryMissing` where libgdbm is missing.
    The operations raise `Failed` (the message) or `Stale`.
    """

    fresh_reads = False

    def __init__(self, path: str, writable: bool, lock_timeout_ms: int) -> None:
        self._lib: Any = _compiled.library("libgdbm")
        from ._abi import ffi

        self._ffi: Any = ffi
        self.path = path
        self.writable = writable
        self.timeout_ms = lock_timeout_ms
        self._cursor: Any = None  # the last key keys() returned (a datum libgdbm allocated)
        self._dbf: Any = ffi.NULL
        self._name = os.fsencode(path)
        self._fd = -1
        self._id: tuple[int, int, int, int] = (0, 0, 0, 0)
        if writable:
            self._open_writer()
            self._take_identity()
        else:
            self._open_reader()

    def _take_identity(self) -> None:
        """The open file's identity (compared by content); closes the handle when it cannot be taken."""
        self._fd = int(self._lib.gdbm_fdesc(self._dbf))
        try:
            self._id = _identity(os.fstat(self._fd))
        except OSError as exc:
            self._lib.gdbm_close(self._dbf)
            self._dbf = self._ffi.NULL
            raise OpenFailed(exc.errno or _errno.EIO, f"{self.path}: {exc.strerror}") from None

    def _errno(self) -> int:
        return int(self._lib.gdbm_errno_location()[0])

    def _message(self, what: str, ge: int, e: int = 0) -> str:
        text = self._ffi.string(self._lib.gdbm_strerror(ge)).decode("utf-8", "replace")
        if ge in _FILE_ERRORS and e:
            return f"{what}: {text} ({os.strerror(e)})"
        return f"{what}: {text}"

    def _open_failed(self) -> OpenFailed:
        e = self._ffi.errno
        return OpenFailed(e or _errno.EIO, self._message(self.path, self._errno(), e))

    def _open_reader(self) -> None:
        # Open under a shared flock taken on a descriptor of its own (flock locks belong to the open file
        # description, so it conflicts with a writer's lock): the header gdbm reads and the identity taken next
        # describe the same state of the file.
        try:
            lfd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            lfd = -1  # gdbm_open reports why
        try:
            if lfd >= 0:
                try:
                    _flock_shared(lfd, self.timeout_ms)
                except OSError:
                    raise OpenFailed(_errno.EWOULDBLOCK, f"{self.path}: locked by a writer for longer than the "
                                     "lock timeout") from None
            self._ffi.errno = 0
            self._dbf = self._lib.gdbm_open(self._name, 0, GDBM_READER | GDBM_NOLOCK | GDBM_NOMMAP | GDBM_CLOEXEC,
                                            0o644, self._ffi.NULL)
            if self._dbf == self._ffi.NULL:
                raise self._open_failed()
            self._take_identity()  # still under the lock
        finally:
            if lfd >= 0:
                os.close(lfd)  # releases the flock

    def _open_writer(self) -> None:
        # gdbm's own exclusive lock: retried (2 ms steps) while a reader's short shared lock is held.
        waited = 0
        while True:
            self._ffi.errno = 0
            self._dbf = self._lib.gdbm_open(self._name, 0, GDBM_WRCREAT | GDBM_NOMMAP | GDBM_CLOEXEC, 0o644,
                                            self._ffi.NULL)
            if self._dbf != self._ffi.NULL:
                return
            if self._errno() != GDBM_CANT_BE_WRITER or waited >= self.timeout_ms:
                raise self._open_failed()
            time.sleep(0.002)
            waited += 2

    def close(self) -> bool:
        ok = True
        if self._dbf != self._ffi.NULL:
            if self.writable and self._lib.gdbm_sync(self._dbf) != 0:
                ok = False
            if self._lib.gdbm_close(self._dbf) != 0:
                ok = False
            self._dbf = self._ffi.NULL
        self._drop_cursor()
        return ok

    def replaced(self) -> bool:
        """Whether the path is gone or no longer names the open file in the state it had at open."""
        try:
            return _identity(os.stat(self.path)) != self._id
        except OSError:
            return True

    # ------------------------------------------------------------------ reading

    def _begin_read(self) -> None:
        if self.writable:
            return
        try:
            _flock_shared(self._fd, self.timeout_ms)
        except OSError as exc:
            raise Failed(f"cannot take a shared lock: {exc.strerror}") from None
        try:
            same = _identity(os.fstat(self._fd)) == self._id
        except OSError as exc:
            self._end_read()
            raise Failed(f"cannot stat: {exc.strerror}") from None
        if not same:
            self._end_read()
            raise Stale

    def _end_read(self) -> None:
        if not self.writable:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _take(self, d: Any, ge: int, what: str) -> bytes | None:
        """The bytes of a datum libgdbm returned (and freed here); ``None`` for "not found"."""
        if d.dptr == self._ffi.NULL:
            if ge in (GDBM_ITEM_NOT_FOUND, GDBM_NO_ERROR):
                return None
            raise Failed(self._message(f"{what} failed", ge))
        try:
            return bytes(self._ffi.buffer(d.dptr, d.dsize))
        finally:
            self._lib.free(d.dptr)

    def fetch(self, key: bytes) -> bytes | None:
        if len(key) > _INT_MAX:
            return None
        self._begin_read()
        try:
            d = self._lib.gdbm_fetch(self._dbf, (self._ffi.from_buffer(key), len(key)))
            ge = self._errno()
        finally:
            self._end_read()
        return self._take(d, ge, "fetch")

    def _drop_cursor(self) -> None:
        if self._cursor is not None:
            self._lib.free(self._cursor.dptr)
            self._cursor = None

    def keys(self) -> list[bytes]:
        out: list[bytes] = []
        self._drop_cursor()
        first = True
        while True:
            self._begin_read()
            try:
                if first:
                    d = self._lib.gdbm_firstkey(self._dbf)
                else:
                    d = self._lib.gdbm_nextkey(self._dbf, self._cursor)
                ge = self._errno()
            finally:
                self._end_read()
            first = False
            self._drop_cursor()
            if d.dptr == self._ffi.NULL:
                if ge in (GDBM_ITEM_NOT_FOUND, GDBM_NO_ERROR):
                    return out
                raise Failed(self._message("iteration failed", ge))
            self._cursor = d  # libgdbm's nextkey starts from it; freed on the next step
            out.append(bytes(self._ffi.buffer(d.dptr, d.dsize)))

    # ------------------------------------------------------------------ writing

    def _writer(self) -> None:
        if not self.writable:
            raise Failed("database opened read-only")

    def store(self, key: bytes, value: bytes) -> None:
        self._writer()
        if not key or len(key) > _INT_MAX or len(value) > _INT_MAX:
            raise Failed("empty or oversized key")
        ffi = self._ffi
        if self._lib.gdbm_store(self._dbf, (ffi.from_buffer(key), len(key)), (ffi.from_buffer(value), len(value)),
                                GDBM_REPLACE) != 0:
            raise Failed(self._message("store failed", self._errno()))

    def delete(self, key: bytes) -> bool:
        self._writer()
        if self._lib.gdbm_delete(self._dbf, (self._ffi.from_buffer(key), len(key))) != 0:
            ge = self._errno()
            if ge == GDBM_ITEM_NOT_FOUND:
                return False
            raise Failed(self._message("delete failed", ge))
        return True
