"""DBM backend: the databases of Apache's ``mod_authn_dbm``/``mod_authz_dbm``, as ``htdbm`` writes them.

A record is stored under the raw user name (for Digest, under ``user:realm``) with the value
``hash[:groups[:comment]]``; groups are comma-separated. Three types are read and written, all through wsgiauth's
C core: SDBM (APR's own ``.pag``/``.dir`` format), GDBM (libgdbm) and DB (Berkeley DB hash, Debian's default)::

    # auth.wsgi
    from wsgiauth.backends import dbm

    backend = dbm.Backend("/etc/apache2/users", realm="Staff area")
    check_password, get_realm_hash, groups_for_user, allow_access = backend.hooks()

This answers like::

    AuthType Basic
    AuthName "Staff area"
    AuthBasicProvider dbm
    AuthDBMUserFile /etc/apache2/users
    AuthDBMGroupFile /etc/apache2/users
    Require dbm-group admins

Management (what ``htdbm`` does): `add_user`, `set_password`, `set_groups`, `delete_user`,
`list_users`, `get_entry`. Each change is made by one writer that holds the database's exclusive lock from the
moment it reads the record to the moment its change is on disk: SDBM's lock on ``PATH.dir`` (as APR takes it) and
GDBM's own lock, both taken by the C core; Berkeley DB files, for which APR and libdb (without an environment) take
no lock, get an ``flock`` on the file, which every wsgiauth writer takes. A database these functions create is
mode 0640 and, when run as root, group ``www-data`` (every file of it: ``.pag`` and ``.dir`` for SDBM), from the
moment it appears: Apache can read it, other local users cannot.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .. import _safefile, hashes
from .._dbmfile import PAIR_MAX, DbmFile, DbmType, detect_type, files_of, normalize_type
from .._filewatch import process_identity
from ..adapter import Backend as _Backend
from ..adapter import Record, as_bytes
from ..exceptions import StoreError

__all__ = [
    "Backend",
    "Entry",
    "UserExistsError",
    "add_user",
    "delete_user",
    "get_entry",
    "list_users",
    "parse_value",
    "set_groups",
    "set_password",
]


@dataclass(frozen=True, slots=True)
class Entry:
    """One DBM value, split the way Apache splits it.

    Attributes:
        hash: the first field (the password hash, or the HA1 of a Digest record).
        groups: the groups as ``mod_authz_dbm`` reads them: the second field, or the whole value when it has no
            ``:``; comma-separated, empty names dropped.
        comment: the third field and everything after it (``htdbm -t`` puts ``groups:comment`` there), or ``None``.
        has_fields: whether the value had a ``:`` at all.
    """

    hash: bytes
    groups: tuple[bytes, ...]
    comment: bytes | None
    has_fields: bool


def parse_value(value: bytes) -> Entry:
    """Split a stored value as ``mod_authn_dbm`` (hash: up to the first ``:``) and ``mod_authz_dbm`` do.

    Apache reads the value as a C string, so anything after a NUL byte is ignored.
    """
    value = value.split(b"\x00", 1)[0]
    first, sep, rest = value.partition(b":")
    if sep:
        field, _, comment = rest.partition(b":")
        groups_field = field
        comment_out: bytes | None = comment if b":" in rest else None
    else:
        groups_field = value
        comment_out = None
    groups = tuple(g for g in groups_field.split(b",") if g)
    return Entry(hash=first, groups=groups, comment=comment_out, has_fields=bool(sep))


class Backend(_Backend):
    """Users, Digest hashes and groups from a DBM database (``AuthDBMUserFile``/``AuthDBMGroupFile``).

    Args:
        path: the user database, named as in ``AuthDBMUserFile`` (for SDBM without ``.pag``/``.dir``).
        type: ``"auto"`` (detect from the files), ``"sdbm"``, ``"gdbm"`` or ``"db"`` (``AuthDBMType``; Apache's
            ``"default"`` means ``"db"`` on Debian).
        realm: the ``AuthName`` of the protected area. ``mod_authz_dbm`` looks up groups under ``user:AuthName``
            first, then under ``user``; mod_wsgi does not pass the AuthName to the group hook, so give it here.
            (Digest lookups use the realm mod_wsgi passes.)
        group_path: the group database (``AuthDBMGroupFile``) when it is not ``path``.
        group_type: its type, when it differs from ``type``.
        check_interval: seconds between two checks that the path still names the open file (a replaced database
            is reopened); changes made in place are seen by the next lookup whatever this is.
        lock_timeout: seconds to wait while ``htdbm`` holds a lock before a lookup fails.
        **backend_kwargs: ``label``, ``on_error``, ``log_level``, ``access`` (see `wsgiauth.Backend`).

    Raises:
        StoreError: a database is missing or cannot be opened; the message names the path and this process's uid.
        ValueError: an unknown type.
    """

    label = "dbm"

    def __init__(self, path: str | os.PathLike[str], *, type: str = "auto", realm: str | bytes | None = None,
                 group_path: str | os.PathLike[str] | None = None, group_type: str | None = None,
                 check_interval: float = 1.0, lock_timeout: float = 2.0, **backend_kwargs: Any) -> None:
        super().__init__(**backend_kwargs)
        normalize_type(type)
        self.path = os.fspath(path)
        self.realm: bytes | None = None if realm is None else as_bytes(realm)
        self.users = DbmFile(self.path, type, check_interval=check_interval, lock_timeout=lock_timeout)
        self.type: DbmType = self.users.type
        if group_path is None or os.path.abspath(os.fspath(group_path)) == os.path.abspath(self.path):
            self.group_db = self.users
        else:
            self.group_db = DbmFile(group_path, group_type or type, check_interval=check_interval,
                                    lock_timeout=lock_timeout)
        self._gen_lock = threading.Lock()
        self._gen_seen: tuple[int, ...] = ()
        self._gen = 0

    # ------------------------------------------------------------------ the adapter interface

    def lookup(self, user: bytes) -> Record | None:
        """The record stored under ``user`` (hash = the value up to the first ``:``), or ``None``."""
        if not user or b"\x00" in user:
            return None
        value = self.users.fetch(user)
        if value is None:
            return None
        entry = parse_value(value)
        return Record(hash=entry.hash.decode("latin-1"), groups=entry.groups if entry.has_fields else None)

    def realm_hash(self, user: bytes, realm: bytes) -> str | None:
        """The HA1 stored under ``user:realm`` (as ``htdigest``-style records in a DBM file), or ``None``."""
        if not user or b"\x00" in user or b"\x00" in realm:
            return None
        value = self.users.fetch(user + b":" + realm)
        if value is None:
            return None
        return parse_value(value).hash.decode("latin-1")

    def groups(self, user: bytes) -> Sequence[bytes] | None:
        """The groups of ``user`` as ``mod_authz_dbm`` finds them (``user:AuthName`` first, then ``user``)."""
        if not user or b"\x00" in user:
            return None
        value = None
        if self.realm is not None:
            value = self.group_db.fetch(user + b":" + self.realm)
        if value is None:
            value = self.group_db.fetch(user)
        if value is None:
            return None
        return list(parse_value(value).groups)

    def generation(self) -> int:
        """Changes whenever a database file's mtime, size or inode changes."""
        ident = self.users.identity()
        if self.group_db is not self.users:
            ident += self.group_db.identity()
        with self._gen_lock:
            if ident != self._gen_seen:
                self._gen_seen = ident
                self._gen += 1
            return self._gen

    def close(self) -> None:
        """Close the databases."""
        self.users.close()
        if self.group_db is not self.users:
            self.group_db.close()

    def __repr__(self) -> str:
        return f"<dbm.Backend {self.type} {self.path!r}>"


# ---------------------------------------------------------------------------------------------------- management


def _user_key(user: str | bytes) -> bytes:
    key = as_bytes(user)
    if not key:
        raise ValueError("the user name cannot be empty")
    if b"\x00" in key or b"\n" in key or b"\r" in key:
        raise ValueError("the user name cannot contain NUL or line breaks")
    return key


def _group_field(groups: Iterable[str | bytes]) -> bytes:
    out = []
    for g in groups:
        raw = as_bytes(g)
        if not raw or any(c in raw for c in b",: \t\r\n\x00"):
            raise ValueError(f"group name {g!r} is empty or contains ',', ':', whitespace or NUL "
                             "(Apache could never match it)")
        out.append(raw)
    return b",".join(out)


def _value(hash_: bytes, groups: bytes | None, comment: bytes | None) -> bytes:
    if comment is not None:
        if b"\x00" in comment:
            raise ValueError("a comment cannot contain a NUL byte")
        return hash_ + b":" + (groups or b"") + b":" + comment
    if groups:
        return hash_ + b":" + groups
    return hash_


class UserExistsError(ValueError):
    """`add_user` of a user who is already in the database."""


def _exists(path: str) -> bool:
    return os.path.exists(path) or os.path.exists(path + ".pag")


def _create(path: str, type: DbmType) -> None:
    """Create the missing files of a new, empty database with the safe mode (`wsgiauth._safefile.new_file_mode`):
    made in a private directory beside it, given their mode and group there, then linked into place (a database
    another writer created meanwhile is kept)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        scratch = tempfile.mkdtemp(prefix=".wsgiauth-new-", dir=directory)
    except OSError as exc:
        raise StoreError(f"cannot create DBM database {path}: cannot write in {directory}: "
                         f"{os.strerror(exc.errno or 0).lower()} for {process_identity()}") from None
    try:
        fresh = os.path.join(scratch, os.path.basename(path))
        DbmFile(fresh, type, writable=True).close()
        for made, final in zip(files_of(fresh, type), files_of(path, type), strict=True):
            _safefile.new_file_mode(made)
            try:
                os.link(made, final)
            except FileExistsError:
                pass
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _safefile.fsync_directory(directory)


@contextlib.contextmanager
def _writer(path: str | os.PathLike[str], type: str, *, create: bool, lock_timeout: float) -> Iterator[DbmFile]:
    """The database open for writing under its exclusive lock, held until the block ends (see the module's text).

    Raises:
        StoreError: the database is missing (and not ``create``), cannot be created, opened or locked.
    """
    p = os.fspath(path)
    t = normalize_type(type)
    existed = _exists(p)
    if t == "auto":
        t = detect_type(p) if existed else "db"
    if not all(os.path.exists(f) for f in files_of(p, t)):
        if not create:
            raise StoreError(f"cannot open DBM database {p}: it does not exist")
        _create(p, t)
    lock_fd: int | None = None
    try:
        if t == "db":  # nothing else locks a Berkeley DB file: take the lock every wsgiauth writer takes
            lock_fd = _lock_db_file(p, lock_timeout)
        with DbmFile(p, t, writable=True, lock_timeout=lock_timeout) as db:
            yield db
    finally:
        if lock_fd is not None:
            os.close(lock_fd)


def _lock_db_file(path: str, timeout: float) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise StoreError(f"cannot open DBM database {path}: {os.strerror(exc.errno or 0).lower()} for "
                             f"{process_identity()}") from None
        try:
            _safefile.flock_wait(fd, path, timeout)
            held, now = os.fstat(fd), os.stat(path)
        except BaseException:
            os.close(fd)
            raise
        if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
            return fd
        os.close(fd)  # replaced while we waited: lock the new file


def _store(db: DbmFile, key: bytes, value: bytes) -> None:
    if db.type == "sdbm" and len(key) + len(value) > PAIR_MAX:
        raise ValueError(f"user name and value take {len(key) + len(value)} bytes; an SDBM record holds at most "
                         f"{PAIR_MAX} (shorten the comment or groups, or use GDBM/DB)")
    db.store(key, value)


def add_user(path: str | os.PathLike[str], user: str | bytes, password: str | bytes, *, type: str = "auto",
             scheme: str = "bcrypt", groups: Iterable[str | bytes] | None = None,
             comment: str | bytes | None = None, replace: bool = False,
             lock_timeout: float = _safefile.WRITE_LOCK_TIMEOUT, **params: Any) -> None:
    """Add a user, as ``htdbm -b`` does (the database is created when missing).

    Args:
        path: the database (for SDBM without ``.pag``/``.dir``).
        user: the user name (``str`` is stored as UTF-8 unless it is latin-1 text from mod_wsgi).
        password: the password (``str`` is encoded as UTF-8).
        type: ``"auto"`` (detect; a new database is ``"db"``, Apache's default), ``"sdbm"``, ``"gdbm"``, ``"db"``.
        scheme: the hash scheme (see `wsgiauth.hashes.hash_password`; ``bcrypt`` default, as ``htdbm -B``;
            Apache also reads ``apr1``, ``sha1``, ``des``, ``sha256_crypt``, ``sha512_crypt``).
        groups: group names for ``Require dbm-group`` (stored as the second field, comma-separated).
        comment: a free comment, stored as the third field.
        replace: replace an existing user instead of failing.
        lock_timeout: seconds to wait while another writer holds the database's lock.
        **params: the scheme's parameters (``cost`` for bcrypt ...).

    Raises:
        UserExistsError: the user exists and not ``replace`` (a `ValueError`).
        ValueError: bad user/group/comment, an SDBM record over 1008 bytes.
        StoreError: the database cannot be created, locked or written.
    """
    key = _user_key(user)
    hash_ = hashes.hash_password(_password(password), scheme, **params).encode("ascii")
    value = _value(hash_, _group_field(groups) if groups is not None else None,
                   None if comment is None else as_bytes(comment))
    with _writer(path, type, create=True, lock_timeout=lock_timeout) as db:
        if not replace and db.fetch(key) is not None:
            raise UserExistsError(f"user {user!r} already exists in {db.path}")
        _store(db, key, value)


def _password(password: str | bytes) -> bytes:
    return password.encode("utf-8") if isinstance(password, str) else password


def _existing(db: DbmFile, key: bytes, user: str | bytes) -> Entry:
    value = db.fetch(key)
    if value is None:
        raise KeyError(f"no user {user!r} in {db.path}")
    return parse_value(value)


def set_password(path: str | os.PathLike[str], user: str | bytes, password: str | bytes, *, type: str = "auto",
                 scheme: str = "bcrypt", groups: Iterable[str | bytes] | None = None,
                 lock_timeout: float = _safefile.WRITE_LOCK_TIMEOUT, **params: Any) -> None:
    """Change a user's password, keeping the comment, and the groups unless ``groups`` gives new ones (set in the
    same write).

    Raises:
        KeyError: no such user.
        ValueError: a group name Apache could never match, or an SDBM record would exceed 1008 bytes.
        StoreError: the database is missing or cannot be locked or written.
    """
    key = _user_key(user)
    field = None if groups is None else _group_field(groups)
    hash_ = hashes.hash_password(_password(password), scheme, **params).encode("ascii")
    with _writer(path, type, create=False, lock_timeout=lock_timeout) as db:
        value = db.fetch(key)
        if value is None:
            raise KeyError(f"no user {user!r} in {db.path}")
        if field is not None:
            entry = parse_value(value)
            _store(db, key, _value(hash_, field, entry.comment))
            return
        _first, sep, rest = value.split(b"\x00", 1)[0].partition(b":")
        _store(db, key, hash_ + sep + rest)


def set_groups(path: str | os.PathLike[str], user: str | bytes, groups: Iterable[str | bytes], *,
               type: str = "auto", lock_timeout: float = _safefile.WRITE_LOCK_TIMEOUT) -> None:
    """Set a user's groups (the second field), keeping the hash and comment. An empty list removes them.

    Raises:
        KeyError: no such user.
        ValueError: a group name Apache could never match, or an SDBM record over 1008 bytes.
        StoreError: the database is missing or cannot be locked or written.
    """
    key = _user_key(user)
    field = _group_field(groups)
    with _writer(path, type, create=False, lock_timeout=lock_timeout) as db:
        entry = _existing(db, key, user)
        _store(db, key, _value(entry.hash, field, entry.comment))


def delete_user(path: str | os.PathLike[str], user: str | bytes, *, type: str = "auto",
                lock_timeout: float = _safefile.WRITE_LOCK_TIMEOUT) -> bool:
    """Delete a user (as ``htdbm -x``). Returns whether the user was there.

    Raises:
        StoreError: the database is missing or cannot be locked or written.
    """
    key = _user_key(user)
    with _writer(path, type, create=False, lock_timeout=lock_timeout) as db:
        return db.delete(key)


def list_users(path: str | os.PathLike[str], *, type: str = "auto") -> list[bytes]:
    """Every key in the database (as ``htdbm -l``), sorted.

    Raises:
        StoreError: the database is missing or cannot be read.
    """
    with DbmFile(path, type, check_interval=0) as db:
        return sorted(db.keys())


def get_entry(path: str | os.PathLike[str], user: str | bytes, *, type: str = "auto") -> Entry | None:
    """The parsed value stored for ``user``, or ``None``.

    Raises:
        StoreError: the database is missing or cannot be read.
    """
    with DbmFile(path, type, check_interval=0) as db:
        value = db.fetch(_user_key(user))
    return None if value is None else parse_value(value)
