"""Low-level typed access to the DBM databases Apache's ``htdbm`` writes: SDBM, GDBM and Berkeley DB.

This module checks types, turns failures into `StoreError` and keeps one handle usable across threads, forks and
changes on disk; a format's handle does the reading and writing:

* keys and values are raw bytes with no trailing NUL, exactly as APR's ``apr_dbm`` stores them;
* a path is given as in ``AuthDBMUserFile``: for SDBM the files are ``PATH.pag`` and ``PATH.dir``, for GDBM and DB
  the file is ``PATH`` itself;
* `detect_type` tells the type from the files on disk (SDBM by its ``.pag`` file, GDBM and DB by their magic
  numbers), and the type picks one `_Format`, whose opener `_load` finds once, when a database of the format is
  first opened: SDBM in C (``csrc/sdbm.c``, module ``wsgiauth._native_dbm``) or its pure-Python twin
  (`wsgiauth._puresdbm`); GDBM in Python over libgdbm opened at run time (`wsgiauth._gdbm`); Berkeley DB in C
  (``csrc/bdb.c``, module ``wsgiauth._native_bdb``, built where db.h exists) over libdb opened at run time;
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
from typing import Any, Literal, Protocol

from . import _compiled
from ._filewatch import describe_failure, process_identity
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


class Failed(Exception):
    """An operation on an open handle failed; the message is the reason (`DbmFile` adds the path and the uid)."""


class OpenFailed(Exception):
    """A database could not be opened: ``errno`` and the reason."""

    def __init__(self, errno: int, reason: str) -> None:
        super().__init__(reason)
        self.errno = errno
        self.reason = reason


class Stale(Exception):
    """The open file changed in place (the library's cache no longer describes it): reopen."""


class _Handle(Protocol):
    """One open database of one format: what `DbmFile` calls, under its lock."""

    def fetch(self, key: bytes) -> bytes | None: ...
    def keys(self) -> list[bytes]: ...
    def store(self, key: bytes, value: bytes) -> None: ...
    def delete(self, key: bytes) -> bool: ...
    def replaced(self) -> bool: ...
    def close(self) -> bool: ...


#: Opens a database: ``(path, writable, lock_timeout_ms)``; raises `OpenFailed` (or
#: `wsgiauth._compiled.LibraryMissing`).
_Opener = Callable[[str, bool, int], _Handle]


class _CFormat:
    """The C functions of one format (``<prefix><name>``, or the shared ``wa_dbm_<name>`` of csrc/dbmfile.c where
    the format has none of its own; the same signatures for every format, listed in csrc/wsgiauth.h). Calling it
    opens a `_CHandle`."""

    __slots__ = ("close", "delete", "error", "fetch", "ffi", "next", "open", "replaced", "store")
    close: Any
    delete: Any
    error: Any
    fetch: Any
    next: Any
    open: Any
    replaced: Any
    store: Any

    def __init__(self, module: Any, prefix: str) -> None:
        self.ffi: Any = module.ffi
        for name in ("close", "delete", "error", "fetch", "next", "open", "replaced", "store"):
            setattr(self, name, getattr(module.lib, prefix + name, None) or getattr(module.lib, "wa_dbm_" + name))

    def __call__(self, path: str, writable: bool, lock_timeout_ms: int) -> _CHandle:
        return _CHandle(self, path, writable, lock_timeout_ms)


class _CHandle:
    """A handle of a format read in C: buffers, return codes (1 found, 0 not, -1 error, ``_STALE``, ``_SMALL``)."""

    __slots__ = ("_buf", "_f", "_h", "_len")

    def __init__(self, f: _CFormat, path: str, writable: bool, lock_timeout_ms: int) -> None:
        ffi = f.ffi
        err = ffi.new("char[]", _ERRBUF)
        h = f.open(os.fsencode(path), 1 if writable else 0, lock_timeout_ms, err, _ERRBUF)
        if h == ffi.NULL:
            raise OpenFailed(ffi.errno, ffi.string(err).decode("utf-8", "replace"))
        self._f = f
        self._h = h
        self._buf = ffi.new("unsigned char[]", 4096)
        self._len = ffi.new("size_t *")

    def _failed(self) -> Failed:
        return Failed(self._f.ffi.string(self._f.error(self._h)).decode("utf-8", "replace"))

    def fetch(self, key: bytes) -> bytes | None:
        while True:
            rc = int(self._f.fetch(self._h, key, len(key), self._buf, len(self._buf), self._len))
            if rc == 1:
                return bytes(self._f.ffi.buffer(self._buf, self._len[0]))
            if rc == 0:
                return None
            if rc == _SMALL:
                self._buf = self._f.ffi.new("unsigned char[]", int(self._len[0]) + 1)
                continue
            if rc == _STALE:
                raise Stale
            raise self._failed()

    def keys(self) -> list[bytes]:
        out: list[bytes] = []
        cap = 65536
        ffi = self._f.ffi
        buf = ffi.new("unsigned char[]", cap)
        n = ffi.new("size_t *")
        h, next_key = self._h, self._f.next
        first = 1
        while (rc := next_key(h, first, buf, cap, n)) == 1:
            first = 0
            out.append(bytes(ffi.buffer(buf, n[0])))
        if rc == _STALE:
            raise Stale
        if rc != 0:
            raise Failed(ffi.string(self._f.error(h)).decode("utf-8", "replace") or "a key is too large")
        return out

    def store(self, key: bytes, value: bytes) -> None:
        if self._f.store(self._h, key, len(key), value, len(value)) != 0:
            raise self._failed()

    def delete(self, key: bytes) -> bool:
        rc = int(self._f.delete(self._h, key, len(key)))
        if rc < 0:
            raise self._failed()
        return bool(rc)

    def replaced(self) -> bool:
        return bool(self._f.replaced(self._h))

    def close(self) -> bool:
        h, self._h = self._h, None
        return h is None or int(self._f.close(h)) == 0


class _Unavailable(Exception):
    """This installation cannot open the format at all (the message says why and what to do)."""


def _load(c_name: str) -> _Opener:
    """The opener of the format ``c_name`` (``csrc/<c_name>.c``): the one place that knows where a format's code comes
    from.

    * ``sdbm``: the C of ``wsgiauth._native_dbm``, else the pure-Python `wsgiauth._puresdbm`;
    * ``gdbm``: `wsgiauth._gdbm` (Python over libgdbm.so.6, opened when a database is);
    * ``bdb``: the C of ``wsgiauth._native_bdb``, handed libdb's ``db_create``/``db_strerror`` here.

    Raises:
        _Unavailable: no code for the format in this installation.
        wsgiauth._compiled.LibraryMissing: the format's library is not installed.
    """
    if c_name == "sdbm":
        module = _compiled.load("_native_dbm")
        if module is not None:
            return _CFormat(module, "wa_sdbm_")
        from ._puresdbm import SdbmFile

        return SdbmFile
    if c_name == "gdbm":
        from ._gdbm import GdbmFile

        return GdbmFile
    if c_name == "bdb":
        module = _compiled.load("_native_bdb")
        if module is None:
            why = "it is disabled by WSGIAUTH_NO_NATIVE" if _compiled.DISABLED else (
                "this installation was built without it (no C compiler, or no db.h: install libdb-dev and "
                "reinstall, or use the wheel)")
            raise _Unavailable(f"Berkeley DB files need wsgiauth's compiled module wsgiauth._native_bdb, and {why}")
        _bind_libdb(module)
        return _CFormat(module, "wa_bdb_")
    raise ValueError(f"no DBM format {c_name!r}")


def _bind_libdb(module: Any) -> None:
    """Open the libdb of the db.h ``module`` was compiled with and hand it its two plain functions."""
    v = module.ffi.new("int[2]")
    module.lib.wa_bdb_header_version(v, v + 1)
    major, minor = int(v[0]), int(v[1])
    lib = _compiled.library("libdb", f"libdb-{major}.{minor}.so")
    from ._abi import ffi

    got = ffi.new("int[3]")
    lib.db_version(got, got + 1, got + 2)
    if (got[0], got[1]) != (major, minor):
        raise _Unavailable(f"libdb-{major}.{minor}.so is version {got[0]}.{got[1]}, not the {major}.{minor} "
                           "wsgiauth._native_bdb was built for")
    addr = [int(ffi.cast("uintptr_t", fn)) for fn in (lib.db_create, lib.db_strerror)]
    if module.lib.wa_bdb_bind(*addr) != 0:
        raise _Unavailable("libdb's db_create/db_strerror could not be resolved")


class _Format:
    """One DBM format: its files and its opener (found by `_load` when a database of the format is first opened).

    Args:
        c_name: the C file, ``csrc/<c_name>.c``, whose functions are ``wa_<c_name>_*`` (or its Python twin).
        suffixes: the database ``PATH`` is the files ``PATH + suffix``.
        fresh_reads: every read goes to the files (SDBM): a file written within one mtime tick needs no reopen, and
            the files already open stay readable while a replaced database is briefly missing. Otherwise (GDBM, DB)
            the library reads through its own cache, which a change in place makes stale.
        pair_max: the largest key + value, if the format has a limit.
    """

    __slots__ = ("_opener", "c_name", "fresh_reads", "pair_max", "suffixes")

    def __init__(self, c_name: str, suffixes: tuple[str, ...], *, fresh_reads: bool,
                 pair_max: int | None = None) -> None:
        self.c_name = c_name
        self.suffixes = suffixes
        self.fresh_reads = fresh_reads
        self.pair_max = pair_max
        self._opener: _Opener | None = None

    @property
    def opener(self) -> _Opener:
        opener = self._opener
        if opener is None:
            opener = self._opener = _load(self.c_name)
        return opener

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
        self.writable = writable
        check_interval = float(check_interval)
        if not check_interval >= 0.0:
            raise ValueError(f"check_interval must be a number of seconds >= 0, not {check_interval!r}")
        self.check_interval = check_interval
        self._timeout_ms = max(0, int(lock_timeout * 1000))
        self._lock = threading.Lock()
        _instances.add(self)
        self._handle: _Handle | None = None
        self._pid = os.getpid()
        self._epoch = _fork_epoch
        self._next_check = 0.0
        self._racy = False
        self.reopens = 0
        try:
            self._opener = self._format.opener
        except _Unavailable as exc:
            raise StoreError(f"cannot open DBM database {self.path}: {exc}") from None
        except _compiled.LibraryMissing as exc:
            raise StoreError(f"cannot open DBM database {self.path}: {exc}") from None
        if not writable:
            for f in self._format.files(self.path):
                if not os.path.exists(f):
                    raise _fail("open", self.path, f"{f} does not exist")
        self._handle = self._open()

    # ------------------------------------------------------------------ handles

    def _open(self) -> _Handle:
        try:
            h = self._opener(self.path, self.writable, self._timeout_ms)
        except OpenFailed as exc:
            reason = exc.reason
            if exc.errno in (1, 13):  # EPERM, EACCES
                reason = "permission denied"
            raise _fail("open", self.path, reason or os.strerror(exc.errno).lower()) from None
        except _compiled.LibraryMissing as exc:
            raise StoreError(f"cannot open DBM database {self.path}: {exc}") from None
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

    def _reopen(self) -> None:
        new = self._open()  # raises StoreError, keeping the old handle in place
        old, self._handle = self._handle, new
        if old is not None:
            old.close()
        self.reopens += 1

    def _ready(self) -> _Handle:
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
            return self._handle
        if self.writable:
            return self._handle
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self.check_interval
            if self._racy or self._handle.replaced():
                try:
                    self._reopen()
                except StoreError:
                    if not self._format.fresh_reads:
                        raise
                    # a replaced file briefly missing: keep reading the files we have open
        return self._handle

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
            h = self._handle
            if h is None or self._epoch != _fork_epoch or (not self.writable and
                                                            time.monotonic() >= self._next_check):
                h = self._ready()
            for _ in range(4):
                try:
                    return h.fetch(key)
                except Stale:
                    self._reopen()
                    h = self._ready()
                except Failed as exc:
                    raise _fail("read", self.path, str(exc)) from None
            raise _fail("read", self.path, "it keeps changing while being read")

    def keys(self) -> Iterator[bytes]:
        """Every key in the database (a snapshot taken under the lock; order is the storage order).

        Raises:
            StoreError: the database cannot be read.
        """
        with self._lock:
            h = self._ready()
            for _ in range(3):
                try:
                    return iter(h.keys())
                except Stale:
                    self._reopen()
                    h = self._ready()
                except Failed as exc:
                    raise _fail("read", self.path, str(exc) or "a key is too large") from None
            raise _fail("read", self.path, "it keeps changing while being read")

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
            try:
                self._writer().store(key, value)
            except Failed as exc:
                raise _fail("write", self.path, str(exc)) from None

    def delete(self, key: bytes) -> bool:
        """Delete ``key`` (writable handles only). Returns whether it was there.

        Raises:
            StoreError: the write failed.
        """
        _check_key(key)
        if not key:
            return False
        with self._lock:
            try:
                return self._writer().delete(key)
            except Failed as exc:
                raise _fail("write", self.path, str(exc)) from None

    def _writer(self) -> _Handle:
        if not self.writable:
            raise StoreError(f"DBM database {self.path} is open read-only")
        return self._ready()

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
                if not h.close() and self.writable:
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
                h.close()
            except Exception:  # noqa: BLE001, S110 - nothing sensible to do in a finaliser
                pass

    def __repr__(self) -> str:
        mode = "rw" if self.writable else "ro"
        return f"<DbmFile {self.type} {self.path!r} {mode}>"

