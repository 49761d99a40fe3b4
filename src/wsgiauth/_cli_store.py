"""User management for the ``wsgiauth user`` command: htpasswd, htdigest and htgroup files, DBM and SQL stores.

Files are rewritten atomically (a temporary file in the same directory, then ``rename``), keeping the original
file's mode and owner, under an exclusive ``flock`` on the file so that two ``wsgiauth user`` commands do not lose
each other's change. Lines other than the user's are kept byte for byte (comments, blank lines, other users).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from . import hashes
from .exceptions import StoreError

__all__ = ["FileStore", "StoreMissingUser", "StoreUserExists", "sql_store"]


class StoreUserExists(Exception):
    """``add`` of a user that is already there."""


class StoreMissingUser(Exception):
    """``passwd``/``delete`` of a user that is not there."""


@contextlib.contextmanager
def _locked(path: Path, create: bool) -> Iterator[bytes | None]:
    """Hold an exclusive lock on ``path`` (created empty if ``create``) and give its content (``None`` if absent)."""
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    existed = path.exists()
    try:
        fd = os.open(path, flags, 0o640)
        if not existed:
            _new_file_mode(str(path))
    except FileNotFoundError:
        yield None
        return
    except PermissionError:
        raise StoreError(f"cannot open {path} for writing: permission denied for uid {os.getuid()}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "rb") as f:
            yield f.read()
    finally:
        os.close(fd)


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, keeping mode and owner of the existing file."""
    try:
        st: os.stat_result | None = path.stat()
    except FileNotFoundError:
        st = None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if st is not None:
            os.chmod(tmp, st.st_mode & 0o7777)
            with contextlib.suppress(PermissionError):
                os.chown(tmp, st.st_uid, st.st_gid)
        else:
            _new_file_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


#: The group Apache's processes run as on Debian; a new store file is given to it so that Apache can read it.
APACHE_GROUP = "www-data"


def _new_file_mode(path: str) -> None:
    """A new store file: mode 0640, group www-data when we may set it (root), so that Apache and only Apache reads
    it; otherwise 0640 with our own group (``wsgiauth doctor`` then says what to change)."""
    os.chmod(path, 0o640)
    if os.geteuid() == 0:
        import grp

        try:
            gid = grp.getgrnam(APACHE_GROUP).gr_gid
        except KeyError:
            return
        os.chown(path, 0, gid)


def _check_name(user: bytes, what: str = "user name") -> None:
    if not user or any(c in user for c in b":\r\n\x00") or user != user.strip():
        raise ValueError(f"invalid {what} {user!r}: no ':', line break, NUL or surrounding space allowed")


class FileStore:
    """An htpasswd (``user:hash``), htdigest (``user:realm:HA1``) or htgroup (``group: members``) file.

    Args:
        kind: ``"htpasswd"``, ``"htdigest"`` or ``"htgroup"``.
        path: the file.
        realm: the realm (htdigest only).
    """

    def __init__(self, kind: str, path: str | os.PathLike[str], realm: bytes | None = None) -> None:
        if kind not in ("htpasswd", "htdigest", "htgroup"):
            raise ValueError(f"unknown file kind {kind!r}")
        if kind == "htdigest" and not realm:
            raise ValueError("an htdigest file needs a realm (--realm)")
        if realm is not None and (b":" in realm or b"\n" in realm):
            raise ValueError("a realm cannot contain ':' or a line break")
        self.kind = kind
        self.path = Path(path)
        self.realm = realm

    def _key(self, user: bytes) -> bytes:
        if self.kind == "htdigest" and self.realm is not None:
            return user + b":" + self.realm + b":"
        return user + b":"

    def _edit(self, user: bytes, make_line: Callable[[bytes | None], bytes | None], create: bool) -> bool:
        """Replace (or drop, or append) the user's line; returns whether the user was there."""
        _check_name(user)
        key = self._key(user)
        with _locked(self.path, create) as content:
            if content is None:
                raise StoreError(f"{self.path} does not exist")
            lines = content.splitlines(keepends=True)
            found = False
            out: list[bytes] = []
            for line in lines:
                if not found and line.lstrip().startswith(key):
                    found = True
                    new = make_line(line)
                    if new is not None:
                        out.append(new + b"\n")
                    continue
                out.append(line)
            if not found:
                new = make_line(None)
                if new is None:
                    return False
                if out and not out[-1].endswith(b"\n"):
                    out[-1] += b"\n"
                out.append(new + b"\n")
            _replace(self.path, b"".join(out))
            return found

    def set(self, user: bytes, password: bytes, *, scheme: str = "bcrypt", must_exist: bool | None = None,
            **params: Any) -> None:
        """Add a user (``must_exist=False``), change a password (``True``) or either (``None``)."""
        if self.kind == "htdigest":
            assert self.realm is not None
            line = self._key(user) + hashes.ha1(user, self.realm, password).encode("ascii")
        else:
            line = user + b":" + hashes.hash_password(password, scheme, **params).encode("ascii")

        def make(old: bytes | None) -> bytes | None:
            if old is not None and must_exist is False:
                raise StoreUserExists(user.decode("utf-8", "replace"))
            if old is None and must_exist is True:
                raise StoreMissingUser(user.decode("utf-8", "replace"))
            return line

        self._edit(user, make, create=must_exist is not True)

    def delete(self, user: bytes) -> None:
        """Remove a user (raises `StoreMissingUser` if absent)."""
        if self.kind == "htgroup":
            if not self.set_groups(user, [], only_remove=True):
                raise StoreMissingUser(user.decode("utf-8", "replace"))
            return
        if not self._edit(user, lambda old: None, create=False):
            raise StoreMissingUser(user.decode("utf-8", "replace"))

    def users(self) -> list[tuple[bytes, str]]:
        """``(user, detail)`` for every entry: the hash scheme, the realm, or the user's groups."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise StoreError(f"{self.path} does not exist") from None
        except PermissionError:
            raise StoreError(f"cannot read {self.path}: permission denied for uid {os.getuid()}") from None
        out: list[tuple[bytes, str]] = []
        if self.kind == "htgroup":
            members: dict[bytes, list[str]] = {}
            for group, names in self._groups(data):
                for n in names:
                    members.setdefault(n, []).append(group.decode("utf-8", "replace"))
            return [(u, ", ".join(g)) for u, g in members.items()]
        for raw in data.splitlines():
            line = raw.strip()
            if not line or line.startswith(b"#"):
                continue
            parts = line.split(b":")
            if self.kind == "htdigest":
                if len(parts) >= 3:
                    out.append((parts[0], "realm " + parts[1].decode("utf-8", "replace")))
                continue
            try:
                scheme = hashes.identify(parts[1].decode("utf-8")) if len(parts) > 1 else "?"
            except (ValueError, UnicodeDecodeError):
                scheme = "unrecognised hash"
            out.append((parts[0], scheme))
        return out

    @staticmethod
    def _groups(data: bytes) -> list[tuple[bytes, list[bytes]]]:
        from ._textfile import split_conf_words

        out = []
        for raw in data.splitlines():
            line = raw.strip()
            if not line or line.startswith(b"#") or b":" not in line:
                continue
            group, _, rest = line.partition(b":")
            out.append((group.strip(), split_conf_words(rest)))
        return out

    def set_groups(self, user: bytes, groups: Sequence[bytes], *, only_remove: bool = False) -> bool:
        """htgroup: make ``user`` a member of ``groups`` (added to those lines, created when missing); with
        ``only_remove``, take the user out of every group. Returns whether the user was in some group."""
        _check_name(user)
        for g in groups:
            _check_name(g, "group name")
        with _locked(self.path, create=not only_remove) as content:
            if content is None:
                raise StoreError(f"{self.path} does not exist")
            from ._textfile import split_conf_words

            found = False
            out: list[bytes] = []
            present: set[bytes] = set()
            for raw in content.splitlines(keepends=True):
                line = raw.strip()
                if not line or line.startswith(b"#") or b":" not in line:
                    out.append(raw)
                    continue
                group, _, rest = line.partition(b":")
                group = group.strip()
                members = split_conf_words(rest)
                changed = False
                if user in members:
                    found = True
                    if only_remove:
                        members = [m for m in members if m != user]
                        changed = True
                if not only_remove and group in groups and user not in members and group not in present:
                    members.append(user)
                    changed = True
                present.add(group)
                if changed:  # other lines stay byte for byte
                    out.append(group + b": " + b" ".join(_quote_member(m) for m in members) + b"\n")
                else:
                    out.append(raw if raw.endswith(b"\n") else raw + b"\n")
            if not only_remove:
                for g in groups:
                    if g not in present:
                        out.append(g + b": " + _quote_member(user) + b"\n")
            _replace(self.path, b"".join(out))
            return found


def _quote_member(name: bytes) -> bytes:
    if any(c in name for c in b" \t\"'"):
        return b'"' + name.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return name


class SqlStore:
    """Users in wsgiauth's own SQL schema (``wsgiauth/data/sql/schema.sql``): ``wsgiauth_user`` and friends."""

    def __init__(self, target: str, dialect: str | None = None) -> None:
        from .backends import sql

        connect, dialect, _key = sql._connector_from_string(target, dialect, False, 5.0)  # type: ignore[arg-type]
        self.conn = connect()
        self.mark = "?" if dialect == "sqlite" else "%s"
        self.dialect = dialect

    def _q(self, text: str) -> str:
        return text.replace("?", self.mark)

    def _exec(self, text: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        try:
            cur.execute(self._q(text), tuple(args))
            rows = cur.fetchall() if cur.description else []
        finally:
            cur.close()
        self.conn.commit()
        return [tuple(r) for r in rows]

    def _exists(self, user: str) -> bool:
        return bool(self._exec("SELECT 1 FROM wsgiauth_user WHERE name = ?", [user]))

    def set(self, user: bytes, password: bytes, *, scheme: str = "argon2", must_exist: bool | None = None,
            realm: bytes | None = None, **params: Any) -> None:
        name = user.decode("utf-8")
        hashed = hashes.hash_password(password, scheme, **params)
        exists = self._exists(name)
        if exists and must_exist is False:
            raise StoreUserExists(name)
        if not exists and must_exist is True:
            raise StoreMissingUser(name)
        if exists:
            self._exec("UPDATE wsgiauth_user SET password_hash = ? WHERE name = ?", [hashed, name])
        else:
            self._exec("INSERT INTO wsgiauth_user (name, password_hash) VALUES (?, ?)", [name, hashed])
        if realm is not None:
            r = realm.decode("utf-8")
            self._exec("DELETE FROM wsgiauth_realm_hash WHERE username = ? AND realm = ?", [name, r])
            self._exec("INSERT INTO wsgiauth_realm_hash (username, realm, ha1) VALUES (?, ?, ?)",
                       [name, r, hashes.ha1(user, realm, password)])

    def set_groups(self, user: bytes, groups: Sequence[bytes]) -> None:
        name = user.decode("utf-8")
        for g in groups:
            self._exec("DELETE FROM wsgiauth_group_member WHERE username = ? AND groupname = ?",
                       [name, g.decode("utf-8")])
            self._exec("INSERT INTO wsgiauth_group_member (username, groupname) VALUES (?, ?)",
                       [name, g.decode("utf-8")])

    def delete(self, user: bytes) -> None:
        name = user.decode("utf-8")
        if not self._exists(name):
            raise StoreMissingUser(name)
        self._exec("DELETE FROM wsgiauth_group_member WHERE username = ?", [name])
        self._exec("DELETE FROM wsgiauth_realm_hash WHERE username = ?", [name])
        self._exec("DELETE FROM wsgiauth_user WHERE name = ?", [name])

    def users(self) -> list[tuple[bytes, str]]:
        rows = self._exec("SELECT name, password_hash, active FROM wsgiauth_user ORDER BY name")
        out = []
        for name, stored, active in rows:
            try:
                scheme = hashes.identify(stored)
            except ValueError:
                scheme = "unrecognised hash"
            out.append((str(name).encode("utf-8"), scheme + ("" if active else " (disabled)")))
        return out

    def close(self) -> None:
        self.conn.close()


def sql_store(target: str, dialect: str | None = None) -> SqlStore:
    """Open wsgiauth's SQL schema at ``target`` (`sqlite:///relative.db`, `sqlite:////absolute/path.db`, a plain
    SQLite path, ``postgresql://...``, ``mysql://...``, or a libpq conninfo string with ``dialect="postgresql"``)."""
    return SqlStore(target, dialect)


def from_config(settings: dict[str, Any], name: str | None) -> tuple[str, dict[str, Any]]:
    """The store behind a backend of a checked configuration: ``(kind, details)``.

    Returns:
        ``("htpasswd", {"path":...})``, ``("htdigest", {"path", "realm"})``, ``("htgroup", {"path"})``,
        ``("dbm", {"path", "type"})`` or ``("sql", {"target", "dialect"})``.

    Raises:
        ValueError: no such backend, or one without a store this command can edit (LDAP, a chain).
    """
    backends = settings["backends"]
    if name is None:
        files = [n for n, b in backends.items() if b["type"] != "chain"]
        if len(files) != 1:
            raise ValueError(f"say which backend with --backend ({', '.join(sorted(files))})")
        name = files[0]
    if name not in backends:
        raise ValueError(f"no backend named {name!r} in the configuration ({', '.join(sorted(backends))})")
    b = backends[name]
    kind = b["type"]
    if kind in ("htpasswd", "htdigest", "htgroup"):
        return kind, {"users": b.get("users"), "digest": b.get("digest"), "groups": b.get("groups"),
                      "realm": settings["top"].get("realm")}
    if kind == "dbm":
        dbm_type = b.get("dbm_type", "auto")
        return "dbm", {"path": b["path"], "type": "db" if dbm_type == "default" else dbm_type}
    if kind == "sql":
        driver = b["driver"]
        if driver == "sqlite":
            return "sql", {"target": b["database"], "dialect": "sqlite"}  # an absolute path
        if driver == "postgresql":
            info = b.get("conninfo", "")
            parts = {"host": b.get("host"), "port": b.get("port"), "dbname": b.get("database"),
                     "user": b.get("user"), "password": b.get("password")}
            extra = " ".join(f"{k}='{str(v).replace(chr(92), chr(92) * 2).replace(chr(39), chr(92) + chr(39))}'"
                             for k, v in parts.items() if v is not None)
            if "://" in info and extra:
                raise ValueError("give either a postgresql:// URL or host/port/database/user/password")
            return "sql", {"target": f"{info} {extra}".strip(), "dialect": "postgresql"}
        from urllib.parse import quote

        auth = quote(b.get("user", ""), safe="") + (":" + quote(b["password"], safe="") if "password" in b else "")
        where = f"{b.get('host', '127.0.0.1')}:{b.get('port', 3306)}"
        query = f"?unix_socket={quote(b['unix_socket'])}" if "unix_socket" in b else ""
        return "sql", {"target": f"mysql://{auth}@{where}/{quote(b.get('database', ''), safe='')}{query}",
                       "dialect": "mysql"}
    raise ValueError(f"backend {name!r} is of type {kind!r}: its users cannot be managed here")
