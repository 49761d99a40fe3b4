"""A file loaded once and reloaded when it changes on disk, safely under many threads.

`WatchedFile` is what the file backends (htpasswd, htdigest, htgroup, DBM) build on: the parsed
content lives in memory, a request costs at most one ``os.stat`` per check interval, and a change on disk
(written in place, or replaced by an editor's atomic rename) is picked up within that interval. A reload that
fails keeps the last good copy in force, so a half-written or briefly unreadable file never locks anyone out.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from .exceptions import StoreError, WsgiAuthError

__all__ = ["WatchedFile", "describe_failure", "process_identity"]

logger = logging.getLogger("wsgiauth")

T = TypeVar("T")

# (st_mtime_ns, st_size, st_ino, st_dev): any change means "reload".
_Signature = tuple[int, int, int, int]

# A file whose mtime is this close to the moment it was examined may still change without its mtime changing
# (timestamps have a granularity: a jiffy on Linux, a second or two on some file systems): "racy" in git's sense.
# While a file is racy, a check also compares a digest of its bytes (cheap next to parsing), so that a same-size
# rewrite within one timestamp tick is not missed.
_RACY_NS = 2_000_000_000
# While a file is racy (just written) it is checked at least this often, whatever check_interval says: a writer
# that rewrites the file in place (Apache's own htpasswd tool truncates and rewrites) may have been caught half-way,
# and the complete file should replace that copy quickly.
_HOT_INTERVAL = 0.05


def process_identity() -> str:
    """``"uid 33 (www-data)"``: the effective uid of this process and its user name when known."""
    uid = os.geteuid()
    try:
        import pwd

        name = pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        name = "no user name"
    return f"uid {uid} ({name})"


def describe_failure(exc: BaseException) -> str:
    """A short reason for a failed load, fit for a log line (never the file's content)."""
    if isinstance(exc, OSError):
        if exc.errno is not None:
            return os.strerror(exc.errno).lower()
        return type(exc).__name__
    if isinstance(exc, WsgiAuthError):
        return str(exc)
    # Other exceptions come from a loader and might quote what they were parsing: name only the type.
    return type(exc).__name__


def _signature(st: os.stat_result) -> _Signature:
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)


def _is_racy(st: os.stat_result) -> bool:
    return abs(time.time_ns() - st.st_mtime_ns) < _RACY_NS


def _file_digest(path: str) -> bytes:
    """A digest of the file's bytes (opened non-blocking: a FIFO must not hang us)."""
    # Change detection only (the file's stat signature is compared first): CPython's built-in BLAKE2b, which
    # hashlib re-exports, without importing hashlib (and OpenSSL's libcrypto) into every Apache child.
    try:
        from _blake2 import blake2b
    except ImportError:  # pragma: no cover - a Python built without its own hash modules
        from hashlib import blake2b

    digest = blake2b(digest_size=16)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
    finally:
        os.close(fd)
    return digest.digest()


class WatchedFile(Generic[T]):
    """The content of a file, loaded at construction and reloaded when the file changes.

    Args:
        path: the file to watch.
        load: turns the path into the in-memory value (it opens and reads the file itself). It is called
            again on every reload; an exception it raises is a failed reload.
        check_interval: seconds between two ``os.stat`` checks (monotonic clock); ``0`` checks on every call.
            For two seconds after the file was modified, it is checked at least every 50 ms (and its bytes are
            compared too), so that a copy caught in the middle of an in-place rewrite is soon replaced.
        what: what the file is, for messages ("htpasswd file").

    Raises:
        StoreError: the file is missing or unreadable at start-up, or ``load`` fails on it. The message names
            the path and the uid and user name of this process, e.g. ``cannot read htpasswd file
            /srv/.htpasswd: permission denied for uid 33 (www-data)``.
        ValueError: ``check_interval`` is negative.

    Attributes:
        path: the watched path, as a ``str``.
    """

    def __init__(self, path: str | os.PathLike[str], load: Callable[[str], T], *,
                 check_interval: float = 1.0, what: str = "file") -> None:
        check_interval = float(check_interval)
        if not check_interval >= 0.0:  # also refuses NaN
            raise ValueError(f"check_interval must be a number of seconds >= 0, not {check_interval!r}")
        self.path: str = os.fspath(path)
        self.what = what
        self.check_interval = check_interval
        self._load = load
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._generation = 0
        self._failed_sig: _Signature | None = None  # the changed file a reload last failed on (logged once)
        self._gone_logged = False
        try:
            st = os.stat(self.path)
            # The digest is taken before the load: if the file changes in between, the next check reloads.
            digest = _file_digest(self.path) if _is_racy(st) else None
            value = load(self.path)
        except StoreError:
            raise
        except Exception as exc:
            verb = "read" if isinstance(exc, OSError) else "load"
            reason = describe_failure(exc)
            raise StoreError(f"cannot {verb} {what} {self.path}: {reason} for {process_identity()}") from exc
        self._value: T = value
        self._sig: _Signature = _signature(st)
        self._digest: bytes | None = digest  # set while the file is racy
        self._next_check = time.monotonic() + self._interval()

    # ------------------------------------------------------------------ reading

    def get(self) -> T:
        """The current content, after at most one ``os.stat`` per check interval (and a reload if it changed).

        Never raises because of the file: a failed reload keeps the last good copy.
        """
        if time.monotonic() >= self._next_check:
            self._check(blocking=False)
        return self._value

    @property
    def generation(self) -> int:
        """How many times the file was reloaded since construction (checked like `get`)."""
        if time.monotonic() >= self._next_check:
            self._check(blocking=False)
        return self._generation

    def refresh(self) -> bool:
        """Check the file now, whatever the interval.

        Returns:
            ``True`` when the file had changed and was reloaded successfully.
        """
        return self._check(blocking=True)

    # ------------------------------------------------------------------ checking

    def _lock_for_this_process(self) -> threading.Lock:
        # A fork (Apache's prefork children, multiprocessing) can copy the lock while another thread of the
        # parent holds it; the child would then never reload. A new process gets a new lock.
        pid = os.getpid()
        if pid != self._pid:
            self._lock = threading.Lock()
            self._pid = pid
        return self._lock

    def _check(self, *, blocking: bool) -> bool:
        lock = self._lock_for_this_process()
        if not lock.acquire(blocking):
            return False  # another thread is checking; keep using the current copy
        try:
            now = time.monotonic()
            if not blocking and now < self._next_check:
                return False  # another thread just checked
            self._next_check = now + self.check_interval
            changed = self._check_locked()
            self._next_check = time.monotonic() + self._interval()
            return changed
        finally:
            lock.release()

    def _interval(self) -> float:
        if self._digest is not None:  # racy: just written
            return min(self.check_interval, _HOT_INTERVAL)
        return self.check_interval

    def _check_locked(self) -> bool:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            if not self._gone_logged:
                self._gone_logged = True
                logger.warning("%s %s: %s for %s; keeping the copy loaded before", self.what, self.path,
                               describe_failure(exc), process_identity())
            return False
        if self._gone_logged:
            self._gone_logged = False
            logger.info("%s %s is back", self.what, self.path)
        sig = _signature(st)
        racy = _is_racy(st)
        if sig == self._sig:
            if self._digest is None:
                return False
            try:
                same = _file_digest(self.path) == self._digest
            except OSError:
                return False  # unreadable for now: keep the copy, look again at the next check
            if same:
                if not racy:
                    self._digest = None  # the mtime is old enough now: the signature alone tells changes
                return False
        try:
            digest = _file_digest(self.path) if racy else None
            value = self._load(self.path)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the last good copy
            if sig != self._failed_sig:
                self._failed_sig = sig
                logger.warning("reloading %s %s failed (%s); keeping the last good copy and retrying",
                               self.what, self.path, describe_failure(exc))
            return False
        self._failed_sig = None
        self._digest = digest
        # Publish the value before the signature and generation: a reader that sees the new generation also
        # sees the new value (one reference assignment each, atomic under the GIL).
        self._value = value
        self._sig = sig
        self._generation += 1
        logger.info("reloaded %s %s", self.what, self.path)
        return True

    def __repr__(self) -> str:
        return f"<WatchedFile {self.what} {self.path!r} generation={self._generation}>"
