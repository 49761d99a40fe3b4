"""Writing credential stores safely: the mode a new store gets, the writer's lock, and the atomic replacement.

Used by ``wsgiauth user`` (``_cli_store``) and by the DBM management functions (``backends.dbm``):

* a new store file is mode 0640 and, when we run as root, group ``www-data``: Apache reads it, other local users
  do not (`new_file_mode`; `create_private` makes a new file that is never visible with a wider mode);
* a text store is edited under an exclusive ``flock`` on the file itself (`locked_file`). Since a write replaces the
  file by a rename, a writer that was waiting on the old file notices, after it gets the lock, that the path now
  names another file, and locks that one instead: every writer sees the content its predecessor wrote;
* the new content goes to a temporary file in the same directory, which gets the old file's owner, group and mode,
  is fsync'ed and renamed over the old one; the directory is fsync'ed last (`replace_file`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
import time
from collections.abc import Iterator

from ._filewatch import process_identity
from .exceptions import StoreError

__all__ = ["APACHE_GROUP", "WRITE_LOCK_TIMEOUT", "create_private", "flock_wait", "fsync_directory", "locked_file",
           "new_file_mode", "replace_file", "world_access"]

#: The group Apache's processes run as on Debian; a new store file is given to it so that Apache can read it.
APACHE_GROUP = "www-data"

#: Seconds a writer waits for another writer's lock before giving up.
WRITE_LOCK_TIMEOUT = 30.0

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _apache_gid() -> int | None:
    import grp

    try:
        return grp.getgrnam(APACHE_GROUP).gr_gid
    except KeyError:
        return None


def new_file_mode(target: str | int) -> None:
    """Give a new store file (a path, or an open descriptor) mode 0640 and, when we may set it (root), group
    www-data, so that Apache and only Apache reads it; otherwise 0640 with our own group (``wsgiauth doctor`` then
    says what to change)."""
    if isinstance(target, int):
        os.fchmod(target, 0o640)
    else:
        os.chmod(target, 0o640)
    if os.geteuid() != 0:
        return
    gid = _apache_gid()
    if gid is None:
        return
    if isinstance(target, int):
        os.fchown(target, 0, gid)
    else:
        os.chown(target, 0, gid)


def create_private(path: str) -> int:
    """Create ``path`` (which must not exist) with the mode of `new_file_mode`, never readable by others meanwhile;
    returns a read-write descriptor.

    Raises:
        FileExistsError: ``path`` exists.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o600)
    try:
        new_file_mode(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return fd


def flock_wait(fd: int, path: str, timeout: float = WRITE_LOCK_TIMEOUT) -> None:
    """Take an exclusive ``flock`` on ``fd``, waiting at most ``timeout`` seconds for another holder.

    Raises:
        StoreError: still locked after ``timeout``, or the lock cannot be taken.
    """
    deadline = time.monotonic() + timeout
    pause = 0.002
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EINTR):
                raise StoreError(f"cannot lock {path}: {os.strerror(exc.errno or 0).lower()}") from None
        if time.monotonic() >= deadline:
            raise StoreError(f"{path} is locked by another writer for more than {timeout:g} s; try again")
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _same_file(fd: int, path: str) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def _read_all(fd: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


@contextlib.contextmanager
def locked_file(path: str, *, create: bool, timeout: float = WRITE_LOCK_TIMEOUT) -> Iterator[bytes | None]:
    """Hold the writer's lock of the text store ``path`` and give its content, read under the lock (``None`` when
    the file does not exist and ``create`` is false; with ``create``, a missing file is created empty, see
    `create_private`). Write with `replace_file` before leaving the block.

    Raises:
        StoreError: the file cannot be opened or locked (the message names the path and this process's uid).
    """
    while True:
        try:
            fd = os.open(path, os.O_RDWR | _O_CLOEXEC)
        except FileNotFoundError:
            if not create:
                yield None
                return
            try:
                fd = create_private(path)
            except FileExistsError:
                continue  # another writer created it first: lock that one
            except PermissionError:
                raise StoreError(f"cannot create {path}: permission denied for {process_identity()}") from None
        except PermissionError:
            raise StoreError(f"cannot open {path} for writing: permission denied for {process_identity()}") from None
        except IsADirectoryError:
            raise StoreError(f"{path} is a directory") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StoreError(f"{path} is not a regular file")
            flock_wait(fd, path, timeout)
            if not _same_file(fd, path):
                continue  # replaced (or removed) while we waited: the lock that counts is the new file's
            yield _read_all(fd)
            return
        finally:
            os.close(fd)


def fsync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a directory; the rename itself is still atomic
        pass
    finally:
        os.close(fd)


def replace_file(path: str, data: bytes) -> None:
    """Replace ``path`` by a file holding ``data``, atomically, with the old file's owner, group and mode.

    Call it while holding `locked_file`'s lock on ``path``.

    Raises:
        StoreError: the directory cannot be written, or the old file's owner or group cannot be kept (only root,
            or the owner for a group it belongs to, can give a file away).
    """
    st = os.stat(path)
    directory = os.path.dirname(path) or "."
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    except PermissionError:
        raise StoreError(f"cannot write in {directory}: permission denied for {process_identity()}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            mine = os.fstat(f.fileno())
            if (mine.st_uid, mine.st_gid) != (st.st_uid, st.st_gid):
                try:
                    os.fchown(f.fileno(), st.st_uid if mine.st_uid != st.st_uid else -1, st.st_gid)
                except PermissionError:
                    raise StoreError(f"cannot keep the owner and group of {path} (uid {st.st_uid}, gid "
                                     f"{st.st_gid}) for {process_identity()}: run as root or as its owner") from None
            os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode))
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_directory(directory)


def world_access(path: str) -> tuple[bool, bool]:
    """``(readable, writable)``: whether every local user can read / write ``path``: its mode gives others that
    access and every directory above it lets them through (``o+x``).

    Raises:
        OSError: ``path`` cannot be examined.
    """
    mode = os.stat(path).st_mode
    readable, writable = bool(mode & stat.S_IROTH), bool(mode & stat.S_IWOTH)
    if not (readable or writable):
        return False, False
    d = os.path.dirname(os.path.abspath(path))
    while True:
        try:
            if not os.stat(d).st_mode & stat.S_IXOTH:
                return False, False
        except OSError:
            break
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    return readable, writable
