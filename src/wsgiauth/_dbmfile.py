"""Low-level typed access to the DBM databases Apache's ``htdbm`` writes: SDBM, GDBM and Berkeley DB.

The C core does the work (``csrc/sdbm.c``, ``csrc/gdbm.c``, ``csrc/bdb.c``, each with the same set of functions);
this module checks types, turns return codes into exceptions and keeps one handle usable across threads, forks and
changes on disk:

* keys and values are raw bytes with no trailing NUL, exactly as APR's ``apr_dbm`` stores them;
* a path is given as in ``AuthDBMUserFile``: for SDBM the files are ``PATH.pag`` and ``PATH.dir``, for GDBM and DB
  the file is ``PATH`` itself;
* `detect_type` tells the type from the files on disk (SDBM by its ``.pag`` file, GDBM and DB by their magic
  numbers), and the type picks one `_Format`, the format's table of operations (as apr-util's
  ``apr_dbm_type_t``), once, when the database is opened;
* a read-only `DbmFile` reads changes made in place (``htdbm`` rewrites its files) on the next call and
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


class _Ops:
    """The C functions of one format, the same signatures for every format (listed in csrc/wsgiauth.h): ``open``,
    ``close``, ``error``, ``replaced``, ``fetch``, ``next``, ``store``, ``delete``; each is ``<prefix><name>``, or
    the one all formats share (``wa_dbm_<name>``, csrc/dbmfile.c) where the format has none of its own."""

    __slots__ = ("close", "delete", "error", "fetch", "next", "open", "replaced", "store")
    close: Any
    delete: Any
    error: Any
    fetch: Any
    next: Any
    open: Any
    replaced: Any
    store: Any

    def __init__(self, lib: Any, prefix: str) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(lib, prefix + name, None) or getattr(lib, "wa_dbm_" + name))


def _load(c_name: str) -> _Ops:
    """The C functions of ``csrc/<c_name>.c``; the one place that knows where they come from. All three formats are
    in the cffi module ``wsgiauth._native_dbm``, which links libgdbm and Berkeley DB."""
    return _Ops(lib, f"wa_{c_name}_")


class _Format:
    """One DBM format: its files and its operations (looked up by `_load` when a database of the format is
    first opened).

    Args:
        c_name: the C file, ``csrc/<c_name>.c``, whose functions are ``wa_<c_name>_*``.
        suffixes: the database ``PATH`` is the files ``PATH + suffix``.
        fresh_reads: every read goes to the files (SDBM): a file written within one mtime tick needs no reopen, and
            the files already open stay readable while a replaced database is briefly missing. Otherwise (GDBM, DB)
            the library reads through its own cache, which a change in place makes stale.
        pair_max: the largest key + value, if the format has a limit.
    """

    __slots__ = ("_ops", "c_name", "fresh_reads", "pair_max", "suffixes")

    def __init__(self, c_name: str, suffixes: tuple[str, ...], *, fresh_reads: bool,
                 pair_max: int | None = None) -> None:
        self.c_name = c_name
        self.suffixes = suffixes
        self.fresh_reads = fresh_reads
        self.pair_max = pair_max
        self._ops: _Ops | None = None

    @property
    def ops(self) -> _Ops:
        ops = self._ops
        if ops is None:
            ops = self._ops = _load(self.c_name)
        return ops

    def files(self, path: str) -> tuple[str, ...]:
        return tuple(path + suffix for suffix in self.suffixes)


_FORMATS: dict[DbmType, _Format] = {
    "sdbm": _Format("sdbm", (".dir", ".pag"), fresh_reads=True, pair_max=PAIR_MAX),
    "gdbm": _Format("gdbm", ("",), fresh_reads=False),
    "db": _Format("bdb", ("",), fresh_reads=False),
}


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
    if t in _FORMATS:
        return t
    raise ValueError(f"DBM type must be 'auto', 'sdbm', 'gdbm' or 'db' (Apache's 'default' is 'db'), not {type!r}")


def files_of(path: str, type: DbmType) -> tuple[str, ...]:
    """The files a database is made of: ``(PATH.dir, PATH.pag)`` for SDBM, ``(PATH,)`` otherwise."""
    return _FORMATS[type].files(path)


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
            exclusive lock until `close`; use it briefly, as ``htdbm`` does.
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
        self._format = _FORMATS[t]
        self._ops = self._format.ops
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
        self._cfetch: Any = self._ops.fetch
        self._next_check = 0.0
        self._racy = False
        self.reopens = 0
        if not writable:
            for f in self._format.files(self.path):
                if not os.path.exists(f):
                    raise _fail("open", self.path, f"{f} does not exist")
        self._handle = self._open()

    # ------------------------------------------------------------------ handles

    def _open(self) -> Any:
        err = ffi.new("char[]", _ERRBUF)
        h = self._ops.open(os.fsencode(self.path), 1 if self.writable else 0, self._timeout_ms, err, _ERRBUF)
        if h == ffi.NULL:
            errno = ffi.errno
            reason = ffi.string(err).decode("utf-8", "replace")
            if errno in (1, 13):  # EPERM, EACCES
                reason = "permission denied"
            raise _fail("open", self.path, reason or os.strerror(errno).lower())
        self._pid = os.getpid()
        self._epoch = _fork_epoch
        self._next_check = time.monotonic() + self.check_interval
        self._racy = not self._format.fresh_reads and self._recently_written()
        return h

    def _recently_written(self) -> bool:
        try:
            mtime = max(os.stat(f).st_mtime_ns for f in self._format.files(self.path))
        except OSError:
            return False
        return abs(time.time_ns() - mtime) < _RACY_NS

    def _close_handle(self, h: Any) -> int:
        if h is None:
            return 0
        return int(self._ops.close(h))

    def _error(self) -> str:
        return str(ffi.string(self._ops.error(self._handle)).decode("utf-8", "replace"))

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
            if self._racy or self._ops.replaced(self._handle):
                try:
                    self._reopen()
                except StoreError:
                    if self._format.fresh_reads:
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
        h, next_key = self._handle, self._ops.next
        first = 1
        while (rc := next_key(h, first, buf, cap, n)) == 1:
            first = 0
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
        limit = self._format.pair_max
        if limit is not None and len(key) + len(value) > limit:
            raise ValueError(f"{self.type.upper()} holds at most {limit} bytes of key + value; this record has "
                             f"{len(key) + len(value)} (use GDBM or DB for longer records)")
        with self._lock:
            self._writer()
            if self._ops.store(self._handle, key, len(key), value, len(value)) != 0:
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
            rc = self._ops.delete(self._handle, key, len(key))
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
        for f in self._format.files(self.path):
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
