"""The pure-Python twin of ``csrc/sdbm.c``: APR's SDBM format read and written without APR, byte for byte as the C.

`wsgiauth._dbmfile` uses it when ``wsgiauth._native_dbm`` is missing or ``WSGIAUTH_NO_NATIVE=1`` is set. The format
(see csrc/sdbm.c and the design brief): ``NAME.pag`` holds 1024-byte pages, ``NAME.dir`` is the bitmap of the pages
that have split; a page is a native-endian int16 count n, n int16 offsets (two per pair), the data packed from the end.
Every operation reads the files afresh (``pread``), under the same open-file-description locks the C takes (a shared
one on ``.dir`` around each read, an exclusive one held by a writer from open to close), so a C reader, this one and
APR's htdbm see each other's changes and locks. Every page change is the C's, in the same order: a database written
here has the same bytes as one written by the C (and by APR).

A handle is not thread-safe: `wsgiauth._dbmfile.DbmFile` serialises the calls.
"""

from __future__ import annotations

import errno as _errno
import fcntl
import os
import stat
import struct
import time

from ._dbmfile import Failed, OpenFailed

__all__ = ["PAIRMAX", "SdbmFile", "sdbm_hash"]

PBLKSIZ = 1024
DBLKSIZ = 4096
PAIRMAX = 1008
SPLTMAX = 10
_M64 = (1 << 64) - 1
_SHORT = struct.Struct("h")  # native-endian int16, as the C's memcpy of a short
# struct flock, native layout (short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid), padded.
_FLOCK = struct.Struct("hhqqi")
_FLOCK_PAD = bytes(-_FLOCK.size % 8)
_F_OFD_SETLK: int = getattr(fcntl, "F_OFD_SETLK", 37)  # Linux's value where the module lacks the name


class _Corrupt(Exception):
    """A page or the bitmap does not describe a valid database (the C's EIO)."""


def sdbm_hash(key: bytes) -> int:
    """The SDBM hash of ``key``: ``n = c + 65599 * n`` over the bytes, ``c`` a signed char, modulo 2**64."""
    n = 0
    for c in key:
        n = ((c - 256 if c > 127 else c) + 65599 * n) & _M64
    return n


def _lock(fd: int, kind: int, timeout_ms: int) -> None:
    """An OFD lock (``fcntl.F_RDLCK`` / ``F_WRLCK``) on the whole file, retried every 1 ms for ``timeout_ms``."""
    request = _FLOCK.pack(kind, os.SEEK_SET, 0, 0, 0) + _FLOCK_PAD
    waited = 0
    while True:
        try:
            fcntl.fcntl(fd, _F_OFD_SETLK, request)
            return
        except OSError as exc:
            if exc.errno not in (_errno.EAGAIN, _errno.EACCES, _errno.EINTR):
                raise
        if waited >= timeout_ms:
            raise OSError(_errno.EWOULDBLOCK, os.strerror(_errno.EWOULDBLOCK))
        time.sleep(0.001)
        waited += 1


def _unlock(fd: int) -> None:
    try:
        fcntl.fcntl(fd, _F_OFD_SETLK, _FLOCK.pack(fcntl.F_UNLCK, os.SEEK_SET, 0, 0, 0) + _FLOCK_PAD)
    except OSError:
        pass


def _read_at(fd: int, size: int, offset: int) -> bytearray:
    """``size`` bytes at ``offset``; bytes past the end of the file read as zeros (as APR's read_from)."""
    try:
        data = bytearray(os.pread(fd, size, offset))
    except OverflowError:
        raise _Corrupt from None
    while len(data) < size:
        more = os.pread(fd, size - len(data), offset + len(data))
        if not more:
            data.extend(bytes(size - len(data)))
            break
        data.extend(more)
    return data


def _write_at(fd: int, data: bytes | bytearray, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n == 0:
            raise OSError(_errno.EIO, os.strerror(_errno.EIO))
        view = view[n:]
        offset += n


# ---------------------------------------------------------------------------------------------------- pages


def _ino(pag: bytearray, i: int) -> int:
    return int(_SHORT.unpack_from(pag, 2 * i)[0])


def _set_ino(pag: bytearray, i: int, v: int) -> None:
    _SHORT.pack_into(pag, 2 * i, v)


def _offsets(pag: bytearray) -> tuple[int, ...]:
    """``(n, off[1], ..., off[n])`` of a sane page; raises `_Corrupt` for any other."""
    n = _ino(pag, 0)
    if n < 0 or n >= PBLKSIZ // 2 or n & 1:
        raise _Corrupt
    ino = struct.unpack_from(f"{n + 1}h", pag, 0)
    off = PBLKSIZ
    floor = (n + 1) * 2
    for i in range(1, n, 2):
        k, v = ino[i], ino[i + 1]
        if k > off or v > k or v < floor:
            raise _Corrupt
        off = v
    return ino


def _seepair(pag: bytearray, ino: tuple[int, ...], key: bytes) -> int:
    """Index (odd, from 1) of ``key`` in the page's offset table, or 0."""
    off = PBLKSIZ
    klen = len(key)
    for i in range(1, ino[0], 2):
        k = ino[i]
        if off - k == klen and pag[k:off] == key:
            return i
        off = ino[i + 1]
    return 0


def _fitpair(pag: bytearray, need: int) -> bool:
    n = _ino(pag, 0)
    off = _ino(pag, n) if n > 0 else PBLKSIZ
    return need + 4 <= off - (n + 1) * 2


def _putpair(pag: bytearray, key: bytes | bytearray, val: bytes | bytearray) -> None:
    n = _ino(pag, 0)
    off = (_ino(pag, n) if n > 0 else PBLKSIZ) - len(key)
    pag[off:off + len(key)] = key
    _set_ino(pag, n + 1, off)
    off -= len(val)
    pag[off:off + len(val)] = val
    _set_ino(pag, n + 2, off)
    _set_ino(pag, 0, n + 2)


def _delpair(pag: bytearray, key: bytes) -> bool:
    ino = _offsets(pag)
    n = ino[0]
    i = _seepair(pag, ino, key)
    if i == 0:
        return False
    if i < n - 1:
        # move the data of the later pairs up over the deleted pair and shift their offsets down the table
        dst = PBLKSIZ if i == 1 else ino[i - 1]
        src = ino[i + 1]
        zoo = dst - src
        m = src - ino[n]
        pag[dst - m:dst] = pag[src - m:src]
        for j in range(i, n - 1):
            _set_ino(pag, j, ino[j + 2] + zoo)
    _set_ino(pag, 0, n - 2)
    return True


def _splpage(pag: bytearray, new: bytearray, sbit: int) -> None:
    """Move the pairs whose hash has bit ``sbit`` set from ``pag`` to ``new`` (both rewritten from scratch)."""
    cur = bytes(pag)
    pag[:] = bytes(PBLKSIZ)
    new[:] = bytes(PBLKSIZ)
    n = int(_SHORT.unpack_from(cur, 0)[0])
    ino = struct.unpack_from(f"{n + 1}h", cur, 0)
    off = PBLKSIZ
    for i in range(1, n, 2):
        k, v = ino[i], ino[i + 1]
        key = cur[k:off]
        _putpair(new if sdbm_hash(key) & sbit else pag, key, cur[v:k])
        off = v


# ---------------------------------------------------------------------------------------------------- handle


class SdbmFile:
    """One open SDBM database (``PATH.pag`` + ``PATH.dir``), with the operations of ``csrc/sdbm.c``.

    Raises (from `open`): `OpenFailed` (errno and message). The operations raise `Failed` (the message) for an I/O
    error, a corrupt page or a lock held past the timeout.
    """

    fresh_reads = True

    def __init__(self, path: str, writable: bool, lock_timeout_ms: int) -> None:
        self.path = path
        self.writable = writable
        self.timeout_ms = lock_timeout_ms
        self.pagpath = path + ".pag"
        self.dirpath = path + ".dir"
        self.pagf = -1
        self.dirf = -1
        self._dirbno = -1
        self._dirbuf = bytearray(DBLKSIZ)
        flags = (os.O_RDWR | os.O_CREAT) if writable else os.O_RDONLY
        try:
            try:
                self.pagf = os.open(self.pagpath, flags | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise OpenFailed(exc.errno or _errno.EIO, f"{self.pagpath}: {exc.strerror}") from None
            try:
                self.dirf = os.open(self.dirpath, flags | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise OpenFailed(exc.errno or _errno.EIO, f"{self.dirpath}: {exc.strerror}") from None
            sd, sp = os.fstat(self.dirf), os.fstat(self.pagf)
            if not stat.S_ISREG(sd.st_mode) or not stat.S_ISREG(sp.st_mode):
                raise OpenFailed(_errno.EINVAL, f"{self.pagpath}: {os.strerror(_errno.EINVAL)}")
            self._dir_id = (sd.st_dev, sd.st_ino)
            self._pag_id = (sp.st_dev, sp.st_ino)
            if writable:
                try:
                    _lock(self.dirf, fcntl.F_WRLCK, lock_timeout_ms)
                except OSError as exc:
                    raise OpenFailed(exc.errno or _errno.EIO, "cannot lock for writing (another writer?): "
                                     f"{exc.strerror}") from None
        except BaseException:
            self._close_fds()
            raise

    def _close_fds(self) -> None:
        for fd in (self.pagf, self.dirf):
            if fd >= 0:
                os.close(fd)  # closing releases an OFD lock too
        self.pagf = self.dirf = -1

    def close(self) -> bool:
        """Close (a writer's changes are synced first); ``False`` when syncing failed."""
        ok = True
        if self.writable and self.pagf >= 0:
            try:
                os.fsync(self.pagf)
                os.fsync(self.dirf)
            except OSError:
                ok = False
            _unlock(self.dirf)
        self._close_fds()
        return ok

    def replaced(self) -> bool:
        """Whether either file's name now names another file than the one open (or is gone)."""
        for name, ident in ((self.dirpath, self._dir_id), (self.pagpath, self._pag_id)):
            try:
                st = os.stat(name)
            except OSError:
                return True
            if (st.st_dev, st.st_ino) != ident:
                return True
        return False

    # ------------------------------------------------------------------ the split bitmap

    def _getdbit(self, dbit: int) -> int:
        c = dbit // 8
        dirb = c // DBLKSIZ
        if dirb != self._dirbno:
            self._dirbuf = _read_at(self.dirf, DBLKSIZ, dirb * DBLKSIZ)
            self._dirbno = dirb
        return (self._dirbuf[c % DBLKSIZ] >> (dbit % 8)) & 1

    def _setdbit(self, dbit: int) -> None:
        self._getdbit(dbit)
        c = dbit // 8
        self._dirbuf[c % DBLKSIZ] |= 1 << (dbit % 8)
        _write_at(self.dirf, self._dirbuf, self._dirbno * DBLKSIZ)

    def _page_of(self, h: int) -> tuple[int, int, int]:
        """(page number, split bit, hash mask) of a hash: the page is found by walking the bitmap with its bits."""
        dbit = 0
        hbit = 0
        while self._getdbit(dbit):
            if hbit >= 62:
                raise _Corrupt  # a bitmap deeper than any hash
            dbit = 2 * dbit + (2 if h & (1 << hbit) else 1)
            hbit += 1
        hmask = (1 << hbit) - 1
        return h & hmask, dbit, hmask

    def _read_page(self, pagb: int) -> bytearray:
        pag = _read_at(self.pagf, PBLKSIZ, pagb * PBLKSIZ)
        _offsets(pag)
        return pag

    # ------------------------------------------------------------------ locking around an operation

    def _begin(self) -> None:
        if not self.writable:
            try:
                _lock(self.dirf, fcntl.F_RDLCK, self.timeout_ms)
            except OSError as exc:
                raise Failed(f"cannot take a shared lock on the .dir file: {exc.strerror}") from None
        self._dirbno = -1  # htdbm may have split pages since the last operation

    def _end(self) -> None:
        if not self.writable:
            _unlock(self.dirf)

    def _fail(self, what: str, exc: BaseException) -> Failed:
        self._end()
        reason = "corrupt page" if isinstance(exc, (_Corrupt, struct.error, ValueError, OverflowError)) else (
            getattr(exc, "strerror", None) or str(exc))
        return Failed(f"{what}: {reason}")

    # ------------------------------------------------------------------ operations

    def fetch(self, key: bytes) -> bytes | None:
        if not key:
            return None
        self._begin()
        try:
            pagb, _, _ = self._page_of(sdbm_hash(key))
            pag = self._read_page(pagb)
        except (OSError, _Corrupt, struct.error, ValueError, OverflowError) as exc:
            raise self._fail("cannot read the database", exc) from None
        self._end()
        ino = _offsets(pag)
        i = _seepair(pag, ino, key)
        if i == 0:
            return None
        return bytes(pag[ino[i + 1]:ino[i]])

    def keys(self) -> list[bytes]:
        """Every key, page by page (the shared lock taken per page); a key is reported only on the page the bitmap
        maps it to, so a stale copy left by a split never appears."""
        out: list[bytes] = []
        try:
            npages = (os.fstat(self.pagf).st_size + PBLKSIZ - 1) // PBLKSIZ
        except OSError as exc:
            raise Failed(f"cannot stat the .pag file: {exc.strerror}") from None
        for pagb in range(npages):
            self._begin()
            try:
                pag = self._read_page(pagb)
                ino = _offsets(pag)
                off = PBLKSIZ
                for i in range(1, ino[0], 2):
                    key = bytes(pag[ino[i]:off])
                    off = ino[i + 1]
                    if self._page_of(sdbm_hash(key))[0] == pagb:
                        out.append(key)
            except (OSError, _Corrupt, struct.error, ValueError, OverflowError) as exc:
                raise self._fail("cannot read the .pag file", exc) from None
            self._end()
        return out

    def _writer(self) -> None:
        if not self.writable:
            raise Failed("database opened read-only")

    def store(self, key: bytes, value: bytes) -> None:
        self._writer()
        if not key or len(key) + len(value) > PAIRMAX:
            raise Failed(f"key + value is {len(key) + len(value)} bytes; SDBM allows 1 to {PAIRMAX}")
        h = sdbm_hash(key)
        self._begin()
        try:
            pagb, curbit, hmask = self._page_of(h)
            pag = self._read_page(pagb)
            _delpair(pag, key)
            need = len(key) + len(value)
            if not _fitpair(pag, need):
                pagb = self._makroom(pag, pagb, curbit, hmask, h, need)
            _putpair(pag, key, value)
            _write_at(self.pagf, pag, pagb * PBLKSIZ)
        except (OSError, _Corrupt, struct.error, ValueError, OverflowError) as exc:
            raise self._fail("cannot write the database", exc) from None

    def _makroom(self, pag: bytearray, pagb: int, curbit: int, hmask: int, h: int, need: int) -> int:
        """Split the page until the pair fits (APR's makroom); ``pag`` is the key's page, written out as it goes.
        Returns the page the pair goes to."""
        twin = bytearray(PBLKSIZ)
        for _ in range(SPLTMAX):
            _splpage(pag, twin, hmask + 1)
            newp = (h & hmask) | (hmask + 1)
            if h & (hmask + 1):
                _write_at(self.pagf, pag, pagb * PBLKSIZ)
                pagb = newp
                pag[:] = twin
            else:
                _write_at(self.pagf, twin, newp * PBLKSIZ)
            self._setdbit(curbit)
            if _fitpair(pag, need):
                return pagb
            curbit = 2 * curbit + (2 if h & (hmask + 1) else 1)
            hmask |= hmask + 1
            _write_at(self.pagf, pag, pagb * PBLKSIZ)
        raise OSError(_errno.ENOSPC, os.strerror(_errno.ENOSPC))

    def delete(self, key: bytes) -> bool:
        self._writer()
        if not key:
            return False
        self._begin()
        try:
            pagb, _, _ = self._page_of(sdbm_hash(key))
            pag = self._read_page(pagb)
            if not _delpair(pag, key):
                return False
            _write_at(self.pagf, pag, pagb * PBLKSIZ)
        except (OSError, _Corrupt, struct.error, ValueError, OverflowError) as exc:
            raise self._fail("cannot write the database", exc) from None
        return True
