"""User management for the ``wsgiauth user`` command: htpasswd, htdigest and htgroup files, DBM and SQL stores.

Files are edited under the writer's lock and rewritten atomically (see `wsgiauth._safefile`): an exclusive
``flock`` on the file, the content re-read under it, a temporary file in the same directory with the old file's
owner, group and mode, fsync, rename, fsync of the directory. So concurrent ``wsgiauth user`` commands never lose
each other's change. Lines other than the user's are kept byte for byte (comments, blank lines, other users).
Every line naming the user is changed (``htpasswd -D`` and ``htpasswd`` do the same), and the result is read back
the way Apache reads it before it is written: the change must be exactly the one asked for.

SQL changes run in one transaction each.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from . import _safefile, hashes
from .exceptions import StoreError

__all__ = ["FileStore", "StoreMissingUser", "StoreUserExists", "sql_store"]


class StoreUserExists(Exception):
    """``add`` of a user that is already there."""


class StoreMissingUser(Exception):
    """``passwd``/``delete`` of a user that is not there."""


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

    def _target(self) -> str:
        """The file to lock and replace: through a symbolic link, the file it names (the link stays)."""
        return os.path.realpath(self.path)

    def _edit(self, user: bytes, new_line: bytes | None, *, must_exist: bool | None, expect: str | None) -> None:
        """Replace every line of the user with ``new_line`` (appended when there is none), or drop them all
        (``new_line=None``), as ``htpasswd`` and ``htpasswd -D`` do. ``expect`` is what Apache must then read
        for the user: the new hash, or ``None`` (gone)."""
        _check_name(user)
        key = self._key(user)
        path = self._target()
        with _safefile.locked_file(path, create=must_exist is not True and new_line is not None) as content:
            if content is None:
                raise StoreError(f"{self.path} does not exist")
            found = False
            out: list[bytes] = []
            for line in content.splitlines(keepends=True):
                if line.lstrip().startswith(key):
                    found = True
                    if new_line is not None:
                        out.append(new_line + b"\n")
                    continue
                out.append(line)
            if found and must_exist is False:
                raise StoreUserExists(user.decode("utf-8", "replace"))
            if not found and (must_exist is True or new_line is None):
                raise StoreMissingUser(user.decode("utf-8", "replace"))
            if not found:
                assert new_line is not None
                if out and not out[-1].endswith(b"\n"):
                    out[-1] += b"\n"
                out.append(new_line + b"\n")
            data = b"".join(out)
            self._check_result(content, data, user, expect)
            _safefile.replace_file(path, data)

    def _check_result(self, before: bytes, after: bytes, user: bytes, expect: str | None) -> None:
        """Refuse to write unless Apache, reading ``after``, sees exactly the change asked for: ``user`` with the
        hash ``expect`` (or gone), every other entry as before."""
        from ._textfile import parse_htdigest, parse_htpasswd

        if self.kind == "htdigest":
            assert self.realm is not None
            me = (user, self.realm)
            old_d, new_d = parse_htdigest(before), parse_htdigest(after)
            kept = _without(old_d.hashes, me) == _without(new_d.hashes, me)
            if not kept or new_d.hashes.get(me) != expect:
                self._refuse(user, new_d.too_long_at)
            return
        old_p, new_p = parse_htpasswd(before), parse_htpasswd(after)
        if _without(old_p.users, user) != _without(new_p.users, user) or new_p.users.get(user) != expect:
            self._refuse(user, new_p.too_long_at)

    def _check_groups(self, before: bytes, after: bytes, user: bytes, groups: Sequence[bytes],
                      only_remove: bool) -> None:
        """As `_check_result` for an htgroup file: the user in no group (``only_remove``) or in ``groups`` too,
        every other user in the same groups as before."""
        from ._textfile import parse_htgroup

        old, new = parse_htgroup(before), parse_htgroup(after)
        want = set() if only_remove else set(old.by_user.get(user, ())) | set(groups)
        if _without(old.by_user, user) != _without(new.by_user, user) or set(new.by_user.get(user, ())) != want:
            self._refuse(user, new.too_long_at)

    def _refuse(self, user: bytes, too_long_at: int | None) -> None:
        name = user.decode("utf-8", "replace")
        if too_long_at is not None:
            why = f"line {too_long_at} is too long for Apache, which stops reading the file there"
        else:
            why = "a line ending in '\\' joins the next one, or a NUL byte cuts a line, near the lines of " + name
        raise StoreError(f"{self.path} not changed: Apache would not read the change to {name} as asked ({why}); "
                         "fix the file by hand")

    def set(self, user: bytes, password: bytes, *, scheme: str = "bcrypt", must_exist: bool | None = None,
            **params: Any) -> None:
        """Add a user (``must_exist=False``), change a password (``True``) or either (``None``).

        Every line of the user gets the new hash, as ``htpasswd`` does with a user listed twice (``htdigest``
        changes the first line only; here the rule is the same for both, so that no old hash stays behind).
        """
        if self.kind == "htgroup":
            raise ValueError("an htgroup file holds no passwords")
        if self.kind == "htdigest":
            assert self.realm is not None
            stored = hashes.ha1(user, self.realm, password)
        else:
            stored = hashes.hash_password(password, scheme, **params)
        self._edit(user, self._key(user) + stored.encode("ascii"), must_exist=must_exist, expect=stored)

    def delete(self, user: bytes) -> None:
        """Remove every line of a user, as ``htpasswd -D`` does (htdigest: in this realm; htgroup: the user from
        every group). Raises `StoreMissingUser` if absent."""
        if self.kind == "htgroup":
            if not self.set_groups(user, [], only_remove=True):
                raise StoreMissingUser(user.decode("utf-8", "replace"))
            return
        self._edit(user, None, must_exist=True, expect=None)

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
        path = self._target()
        with _safefile.locked_file(path, create=not only_remove) as content:
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
            data = b"".join(out)
            self._check_groups(content, data, user, groups, only_remove)
            _safefile.replace_file(path, data)
            return found


def _without(table: dict[Any, Any], key: Any) -> dict[Any, Any]:
    return {k: v for k, v in table.items() if k != key}


def _quote_member(name: bytes) -> bytes:
    if any(c in name for c in b" \t\"'"):
        return b'"' + name.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return name


class SqlStore:
    """Users in wsgiauth's own SQL schema (``wsgiauth/data/sql/schema.sql``): ``wsgiauth_user`` and friends.

    Each change is one transaction: it happens entirely or not at all, and two commands changing the same user are
    serialised (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL, MySQL: the user's row is locked ``FOR UPDATE``).
    """

    def __init__(self, target: str, dialect: str | None = None) -> None:
        from .backends import sql

        remote = target.split("://", 1)[0].lower() in ("postgresql", "postgres", "mysql", "mariadb", "mysql+pymysql")
        # SQLite: the time to wait for another writer's lock; servers: the connect and statement timeout
        timeout = 5.0 if remote or dialect in ("postgresql", "mysql") else _safefile.WRITE_LOCK_TIMEOUT
        connect, dialect, _key = sql._connector_from_string(target, dialect, False, timeout)  # type: ignore[arg-type]
        self.conn = connect()
        self.mark = "?" if dialect == "sqlite" else "%s"
        self.dialect = dialect

    def _q(self, text: str) -> str:
        return text.replace("?", self.mark)

    def _run(self, text: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        try:
            cur.execute(self._q(text), tuple(args))
            rows = cur.fetchall() if cur.description else []
        finally:
            cur.close()
        return [tuple(r) for r in rows]

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction (the connection is in autocommit mode otherwise)."""
        self._run({"sqlite": "BEGIN IMMEDIATE", "mysql": "START TRANSACTION"}.get(self.dialect, "BEGIN"))
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                self._run("ROLLBACK")
            raise
        self._run("COMMIT")

    def _atomic(self, work: Callable[[], None]) -> None:
        """Run ``work`` in a transaction, again (up to 5 times) when the server aborted it as a deadlock: two
        InnoDB transactions locking the gap where a new user would go (``FOR UPDATE``) abort one of them."""
        for attempt in range(5):
            try:
                with self._transaction():
                    work()
                return
            except Exception as exc:
                if attempt == 4 or not _is_deadlock(exc):
                    raise
            time.sleep(0.01 * (attempt + 1))

    def _exists(self, user: str) -> bool:
        lock = "" if self.dialect == "sqlite" else " FOR UPDATE"
        return bool(self._run("SELECT 1 FROM wsgiauth_user WHERE name = ?" + lock, [user]))

    def set(self, user: bytes, password: bytes, *, scheme: str = "argon2", must_exist: bool | None = None,
            realm: bytes | None = None, groups: Sequence[bytes] = (), **params: Any) -> None:
        """Add a user (``must_exist=False``), change a password (``True``) or either (``None``); also store the HA1
        for ``realm`` and add the user to ``groups``, in the same transaction."""
        name = user.decode("utf-8")
        hashed = hashes.hash_password(password, scheme, **params)
        ha1 = None if realm is None else hashes.ha1(user, realm, password)

        def work() -> None:
            exists = self._exists(name)
            if exists and must_exist is False:
                raise StoreUserExists(name)
            if not exists and must_exist is True:
                raise StoreMissingUser(name)
            if exists:
                self._run("UPDATE wsgiauth_user SET password_hash = ? WHERE name = ?", [hashed, name])
            else:
                self._run("INSERT INTO wsgiauth_user (name, password_hash) VALUES (?, ?)", [name, hashed])
            if realm is not None:
                r = realm.decode("utf-8")
                self._run("DELETE FROM wsgiauth_realm_hash WHERE username = ? AND realm = ?", [name, r])
                self._run("INSERT INTO wsgiauth_realm_hash (username, realm, ha1) VALUES (?, ?, ?)", [name, r, ha1])
            self._add_groups(name, groups)

        try:
            self._atomic(work)
        except Exception as exc:
            if _is_integrity_error(exc) and must_exist is not True:
                raise StoreUserExists(name) from None  # added by another command since we looked
            raise

    def _add_groups(self, name: str, groups: Sequence[bytes]) -> None:
        for g in groups:
            self._run("DELETE FROM wsgiauth_group_member WHERE username = ? AND groupname = ?",
                      [name, g.decode("utf-8")])
            self._run("INSERT INTO wsgiauth_group_member (username, groupname) VALUES (?, ?)",
                      [name, g.decode("utf-8")])

    def set_groups(self, user: bytes, groups: Sequence[bytes]) -> None:
        """Add an existing user to ``groups``."""
        name = user.decode("utf-8")

        def work() -> None:
            if not self._exists(name):
                raise StoreMissingUser(name)
            self._add_groups(name, groups)

        self._atomic(work)

    def delete(self, user: bytes) -> None:
        name = user.decode("utf-8")

        def work() -> None:
            if not self._exists(name):
                raise StoreMissingUser(name)
            self._run("DELETE FROM wsgiauth_group_member WHERE username = ?", [name])
            self._run("DELETE FROM wsgiauth_realm_hash WHERE username = ?", [name])
            self._run("DELETE FROM wsgiauth_user WHERE name = ?", [name])

        self._atomic(work)

    def users(self) -> list[tuple[bytes, str]]:
        rows = self._run("SELECT name, password_hash, active FROM wsgiauth_user ORDER BY name")
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


def _is_deadlock(exc: BaseException) -> bool:
    """A transaction the server aborted to break a deadlock (MySQL 1213, PostgreSQL 40P01) or a serialisation
    failure (40001): running it again is the cure."""
    if getattr(exc, "sqlstate", None) in ("40001", "40P01"):  # psycopg
        return True
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    return bool(args) and args[0] == 1213 and type(exc).__name__ == "OperationalError"  # PyMySQL


def _is_integrity_error(exc: BaseException) -> bool:
    """A DB-API ``IntegrityError`` of any driver (a unique key taken by a concurrent insert)."""
    return any(c.__name__ == "IntegrityError" for c in type(exc).__mro__)


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
