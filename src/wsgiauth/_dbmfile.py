"""Low-level typed access to the DBM databases Apache's ``htdbm`` writes: SDBM, GDBM and Berkeley DB.

The C core does the work (``csrc/sdbm.c``, ``csrc/gdbm.c``, ``csrc/bdb.c``); this module checks types, turns return
codes into exceptions and keeps one handle usable across threads, forks and changes on disk:

* keys and values are raw bytes with no trailing NUL, exactly as APR's ``apr_dbm`` stores them;
* a path is given as in ``AuthDBMUserFile``: for SDBM the files are ``PATH.pag`` and ``PATH.dir``, for GDBM and DB
  the file is ``PATH`` itself;
* :func:`detect_type` tells the type from the files on disk (SDBM by its ``.pag`` file, GDBM and DB by their magic
  numbers);
* a read-only :class:`DbmFile` reads changes made in place (``htdbm`` rewrites its files) on the next call and
  reopens when the path is replaced; each call is serialised by a lock (libgdbm and Berkeley DB handles are not
  thread-safe, and a call costs microseconds).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Literal

from ._filewatch import describe_failure, process_identity
from ._native_dbm import ffi, lib
from .exceptions import StoreError

__all__ = ["PAIR_MAX", "TYPES", "DbmFile", "DbmType", "detect_type", "files_of", "normalize_type"]

DbmType = Literal["sdbm", "gdbm", "db"]
TYPES: tuple[DbmType, ...] = ("sdbm", "gdbm", "db")

#: The largest key + value SDBM can hold (APR's PAIRMAX).
PAIR_MAX = 1008

_STALE = -2
_SMALL = -3
_ERRBUF = 256
_RACY_NS = 2_000_000_000  # a file written this recently may change again within one mtime tick

# GDBM magic numbers (libgdbm 1.x: old, 32-bit, 64-bit, and the numsync variants), stored in native order.
_GDBM_MAGICS = {0x13579ACE, 0x13579ACD, 0x13579ACF, 0x13579AD0, 0x13579AD1}
_BDB_HASH_MAGIC = 0x061561
_BDB_BTREE_MAGIC = 0x053162
_BDB_QUEUE_MAGIC = 0x042253


# Bumped in every forked child: a handle opened before the fork belongs to the parent (cheaper than os.getpid()
# on every call, which is a system call).
_fork_epoch = 0
_instances: weakref.WeakSet[DbmFile] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    global _fork_epoch
    _fork_epoch += 1
    # A lock another thread of the parent held at the fork would stay locked forever in the child.
    for f in list(_instances):
        f._lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def normalize_type(type: str) -> DbmType | Literal["auto"]:
    """Turn a type name as Apache spells it (``SDBM``, ``GDBM``, ``DB``, ``default``) into ours.

    Raises:
        ValueError: an unknown or unsupported type (NDBM is not available on Debian).
    """
    t = type.strip().lower()
    if t == "auto":
        return "auto"
    if t == "default":
        return "db"  # Debian's APR is built with Berkeley DB as the default type
    if t in ("sdbm", "gdbm", "db"):
        return t  # type: ignore[return-value]
    raise ValueError(f"DBM type must be 'auto', 'sdbm', 'gdbm' or 'db' (Apache's 'default' is 'db'), not {type!r}")


def files_of(path: str, type: DbmType) -> tuple[str, ...]:
    """The files a database is made of: ``(PATH.dir, PATH.pag)`` for SDBM, ``(PATH,)`` otherwise."""
    if type == "sdbm":
        return (path + ".dir", path + ".pag")
    return (path,)


def _fail(what: str, path: str, reason: str) -> StoreError:
    return StoreError(f"cannot {what} DBM database {path}: {reason} for {process_identity()}")


def detect_type(path: str) -> DbmType:
    """The type of the database at ``path``, from the files on disk.

    Raises:
        StoreError: no database there, it cannot be read, or its format is not one of SDBM, GDBM, DB (hash).
    """
    if os.path.exists(path + ".pag"):
        return "sdbm"
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise _fail("read", path, describe_failure(exc)) from exc
    if len(head) >= 4:
        if int.from_bytes(head[:4], "little") in _GDBM_MAGICS or int.from_bytes(head[:4], "big") in _GDBM_MAGICS:
            return "gdbm"
    if len(head) >= 16:
        for magic in (int.from_bytes(head[12:16], "little"), int.from_bytes(head[12:16], "big")):
            if magic == _BDB_HASH_MAGIC:
                return "db"
            if magic in (_BDB_BTREE_MAGIC, _BDB_QUEUE_MAGIC):
                raise _fail("read", path, "it is a Berkeley DB btree/queue file; Apache (APR) reads hash files only")
    raise _fail("read", path, "not an SDBM (.pag/.dir), GDBM or Berkeley DB hash file")


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes):
        raise TypeError(f"DBM keys and values are bytes, not {type(key).__name__}")


class DbmFile:
    """One open DBM database.

    Args:
        path: the database as named in ``AuthDBMUserFile`` (for SDBM, without ``.pag``/``.dir``).
        type: ``"sdbm"``, ``"gdbm"``, ``"db"``, or ``"auto"`` to detect it from the files (a new database
            created with ``"auto"`` is ``"db"``, Apache's default on Debian).
        writable: open for writing (the database is created when missing). A writer holds the database's
            exclusive lock until :meth:`close`; use it briefly, as ``htdbm`` does.
        check_interval: seconds between two checks that ``path`` still names the file that is open (a replaced
            file is reopened); ``0`` checks on every call.
        lock_timeout: seconds to wait for a lock held by another process (``htdbm`` writing) before failing.

    Raises:
        StoreError: the database is missing or cannot be opened; the message names the path and this process's uid.
        ValueError: an unknown type.
    """

    def __init__(self, path: str | os.PathLike[str], type: str = "auto", *, writable: bool = False,
                 check_interval: float = 1.0, lock_timeout: float = 2.0) -> None:
        self.path: str = os.fspath(path)
        t = normalize_type(type)
        if t == "auto":
            if writable and not os.path.exists(self.path) and not os.path.exists(self.path + ".pag"):
                t = "db"
            else:
                t = detect_type(self.path)
        self.type: DbmType = t
        self.writable = writable
        check_interval = float(check_interval)
        if not check_interval >= 0.0:
            raise ValueError(f"check_interval must be a number of seconds >= 0, not {check_interval!r}")
        self.check_interval = check_interval
        self._timeout_ms = max(0, int(lock_timeout * 1000))
        self._lock = threading.Lock()
        _instances.add(self)
        self._buf = ffi.new("unsigned char[]", 4096)
        self._len = ffi.new("size_t *")
        self._handle: Any = None
        self._pid = os.getpid()
        self._epoch = _fork_epoch
        self._cfetch: Any = {"sdbm": lib.wa_sdbm_fetch, "gdbm": lib.wa_gdbm_fetch, "db": lib.wa_bdb_fetch}[self.type]
        self._next_check = 0.0
        self._racy = False
        self.reopens = 0
        if not writable:
            for f in files_of(self.path, self.type):
                if not os.path.exists(f):
                    raise _fail("open", self.path, f"{f} does not exist")
        self._handle = self._open()

    # ------------------------------------------------------------------ handles

    def _open(self) -> Any:
        err = ffi.new("char[]", _ERRBUF)
        w = 1 if self.writable else 0
        if self.type == "sdbm":
            d, p = (os.fsencode(f) for f in files_of(self.path, "sdbm"))
            h = lib.wa_sdbm_open(d, p, w, self._timeout_ms, err, _ERRBUF)
        elif self.type == "gdbm":
            h = lib.wa_gdbm_open(os.fsencode(self.path), w, self._timeout_ms, err, _ERRBUF)
        else:
            h = lib.wa_bdb_open(os.fsencode(self.path), w, err, _ERRBUF)
        if h == ffi.NULL:
            errno = ffi.errno
            reason = ffi.string(err).decode("utf-8", "replace")
            if errno in (1, 13):  # EPERM, EACCES
                reason = "permission denied"
            raise _fail("open", self.path, reason or os.strerror(errno).lower())
        self._pid = os.getpid()
        self._epoch = _fork_epoch
        self._next_check = time.monotonic() + self.check_interval
        self._racy = self.type != "sdbm" and self._recently_written()
        return h

    def _recently_written(self) -> bool:
        try:
            mtime = max(os.stat(f).st_mtime_ns for f in files_of(self.path, self.type))
        except OSError:
            return False
        return abs(time.time_ns() - mtime) < _RACY_NS

    def _close_handle(self, h: Any) -> int:
        if h is None:
            return 0
        if self.type == "sdbm":
            return int(lib.wa_sdbm_close(h))
        if self.type == "gdbm":
            return int(lib.wa_gdbm_close(h))
        return int(lib.wa_bdb_close(h))

    def _error(self) -> str:
        h = self._handle
        if self.type == "sdbm":
            msg = lib.wa_sdbm_error(h)
        elif self.type == "gdbm":
            msg = lib.wa_gdbm_error(h)
        else:
            msg = lib.wa_bdb_error(h)
        return str(ffi.string(msg).decode("utf-8", "replace"))

    def _replaced(self) -> bool:
        h = self._handle
        if self.type == "sdbm":
            d, p = (os.fsencode(f) for f in files_of(self.path, "sdbm"))
            return bool(lib.wa_sdbm_replaced(h, d, p))
        if self.type == "gdbm":
            return bool(lib.wa_gdbm_replaced(h, os.fsencode(self.path)))
        return bool(lib.wa_bdb_replaced(h, os.fsencode(self.path)))

    def _reopen(self) -> None:
        new = self._open()  # raises StoreError, keeping the old handle in place
        old, self._handle = self._handle, new
        self._close_handle(old)
        self.reopens += 1

    def _ready(self) -> None:
        """Called with the lock held before each operation: a handle for this process, not a replaced file."""
        if self._handle is None:
            raise StoreError(f"DBM database {self.path} is closed")
        if self._epoch != _fork_epoch:
            # A forked child must not share the parent's file description (its locks are the parent's too).
            if self.writable:
                # closing would flush the child's copy of the writer's state and drop the parent's lock
                self._handle = None
                raise StoreError(f"DBM database {self.path}: a writer cannot be used in a forked child")
            self._reopen()
            return
        if self.writable:
            return
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self.check_interval
            if self._racy or self._replaced():
                try:
                    self._reopen()
                except StoreError:
                    if self.type == "sdbm":
                        return  # a replaced file briefly missing: keep reading the files we have open
                    raise

    # ------------------------------------------------------------------ operations

    def fetch(self, key: bytes) -> bytes | None:
        """The value stored under ``key``, or ``None``.

        Raises:
            StoreError: the database cannot be read (corrupt, locked by a writer past ``lock_timeout``, gone).
        """
        _check_key(key)
        if not key:
            return None
        with self._lock:
            if self._epoch != _fork_epoch or (not self.writable and time.monotonic() >= self._next_check):
                self._ready()
            elif self._handle is None:
                raise StoreError(f"DBM database {self.path} is closed")
            for _ in range(4):
                rc = int(self._cfetch(self._handle, key, len(key), self._buf, len(self._buf), self._len))
                if rc == 1:
                    return bytes(ffi.buffer(self._buf, self._len[0]))
                if rc == 0:
                    return None
                if rc == _SMALL:
                    self._buf = ffi.new("unsigned char[]", int(self._len[0]) + 1)
                    continue
                if rc == _STALE:
                    self._reopen()
                    continue
                raise _fail("read", self.path, self._error())
            raise _fail("read", self.path, "it keeps changing while being read")

    def keys(self) -> Iterator[bytes]:
        """Every key in the database (a snapshot taken under the lock; order is the storage order).

        Raises:
            StoreError: the database cannot be read.
        """
        with self._lock:
            self._ready()
            for _ in range(3):
                try:
                    return iter(self._keys_locked())
                except _Stale:
                    self._reopen()
            raise _fail("read", self.path, "it keeps changing while being read")

    def _keys_locked(self) -> list[bytes]:
        out: list[bytes] = []
        cap = 65536
        buf = ffi.new("unsigned char[]", cap)
        n = ffi.new("size_t *")
        h = self._handle
        if self.type == "sdbm":
            pos = ffi.new("unsigned long long *", 0)
            while True:
                rc = lib.wa_sdbm_next(h, pos, buf, cap, n)
                if rc != 1:
                    break
                out.append(bytes(ffi.buffer(buf, n[0])))
        elif self.type == "gdbm":
            prev: bytes | None = None
            while True:
                if prev is None:
                    rc = lib.wa_gdbm_next(h, ffi.NULL, 0, buf, cap, n)
                else:
                    rc = lib.wa_gdbm_next(h, prev, len(prev), buf, cap, n)
                if rc != 1:
                    break
                prev = bytes(ffi.buffer(buf, n[0]))
                out.append(prev)
        else:
            first = 1
            while True:
                rc = lib.wa_bdb_next(h, first, buf, cap, n)
                first = 0
                if rc != 1:
                    break
                out.append(bytes(ffi.buffer(buf, n[0])))
        if rc == _STALE:
            raise _Stale
        if rc != 0:
            raise _fail("read", self.path, self._error() or "a key is too large")
        return out

    def store(self, key: bytes, value: bytes) -> None:
        """Insert or replace ``key`` (writable handles only).

        Raises:
            ValueError: an empty key, or (SDBM) a key + value over :data:`PAIR_MAX` bytes.
            StoreError: the write failed.
        """
        _check_key(key)
        _check_key(value)
        if not key:
            raise ValueError("a DBM key cannot be empty")
        if self.type == "sdbm" and len(key) + len(value) > PAIR_MAX:
            raise ValueError(f"SDBM holds at most {PAIR_MAX} bytes of key + value; this record has "
                             f"{len(key) + len(value)} (use GDBM or DB for longer records)")
        with self._lock:
            self._writer()
            if self.type == "sdbm":
                rc = lib.wa_sdbm_store(self._handle, key, len(key), value, len(value))
            elif self.type == "gdbm":
                rc = lib.wa_gdbm_store(self._handle, key, len(key), value, len(value))
            else:
                rc = lib.wa_bdb_store(self._handle, key, len(key), value, len(value))
            if rc != 0:
                raise _fail("write", self.path, self._error())

    def delete(self, key: bytes) -> bool:
        """Delete ``key`` (writable handles only). Returns whether it was there.

        Raises:
            StoreError: the write failed.
        """
        _check_key(key)
        if not key:
            return False
        with self._lock:
            self._writer()
            if self.type == "sdbm":
                rc = lib.wa_sdbm_delete(self._handle, key, len(key))
            elif self.type == "gdbm":
                rc = lib.wa_gdbm_delete(self._handle, key, len(key))
            else:
                rc = lib.wa_bdb_delete(self._handle, key, len(key))
            if rc < 0:
                raise _fail("write", self.path, self._error())
            return bool(rc)

    def _writer(self) -> None:
        if not self.writable:
            raise StoreError(f"DBM database {self.path} is open read-only")
        self._ready()

    def identity(self) -> tuple[int, ...]:
        """``(mtime_ns, size, inode)`` of each of the database's files, ``()`` when one is missing."""
        out: list[int] = []
        for f in files_of(self.path, self.type):
            try:
                st = os.stat(f)
            except OSError:
                return ()
            out += [st.st_mtime_ns, st.st_size, st.st_ino]
        return tuple(out)

    def close(self) -> None:
        """Close the database (a writer's changes are flushed to disk).

        Raises:
            StoreError: flushing a writer's changes failed.
        """
        with self._lock:
            h, self._handle = self._handle, None
            if h is not None and self._pid == os.getpid():
                if self._close_handle(h) != 0 and self.writable:
                    raise _fail("write", self.path, "flushing changes failed")

    def __enter__(self) -> DbmFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self, _getpid: Callable[[], int] = os.getpid) -> None:
        # _getpid is bound at definition: at interpreter shutdown the module's globals (os) may already be None.
        h = getattr(self, "_handle", None)
        if h is not None and getattr(self, "_pid", None) == _getpid():
            self._handle = None
            try:
                self._close_handle(h)
            except Exception:  # noqa: BLE001, S110 - nothing sensible to do in a finaliser
                pass

    def __repr__(self) -> str:
        mode = "rw" if self.writable else "ro"
        return f"<DbmFile {self.type} {self.path!r} {mode}>"


class _Stale(Exception):
    pass
