"""Users, Digest hashes and groups from an SQL database, like Apache's ``mod_authn_dbd`` / ``mod_authz_dbd``.

Any DB-API 2.0 driver works; three are built in:

* **SQLite** (the standard library): `sqlite()`, the embedded default, opened read-only;
* **PostgreSQL** through psycopg 3: `postgresql()`;
* **MariaDB / MySQL** through PyMySQL: `mysql()`.

An ``auth.wsgi``::

    from wsgiauth.backends import sql
    backend = sql.postgresql("host=127.0.0.1 dbname=site user=apache_auth password=... ", preset="django")
    check_password = backend.check_password
    groups_for_user = backend.groups_for_user

**Queries** are configured as with ``mod_authn_dbd``:

* ``password_query`` (``AuthDBDUserPWQuery``) takes the user name and returns at most one row whose *first column*
  is the stored hash (any format `wsgiauth.hashes` verifies). Further columns are exported by name: a column
  named ``name`` is the canonical user name (what Apache records as REMOTE_USER; NULL: the name typed), a column
  named ``active`` (or ``is_active``) disables the account when false or NULL (it is then answered like an unknown
  user, after the same hashing work); other columns are kept as `Record.attributes`.
  Two rows for one user are an error (fail closed).
* ``realm_query`` (``AuthDBDUserRealmQuery``) takes the user and the realm and returns the Digest HA1.
* ``groups_query`` (``AuthzDBDQuery``) takes the user and returns one group name per row.

**Placeholders**: write ``:user`` and ``:realm`` (named, any order, any number of times), or ``%s`` as in
``mod_authn_dbd`` (positional: the user, then the realm). They are translated for the driver (``?`` for SQLite,
``%s`` for psycopg and PyMySQL, with literal ``%`` doubled); text inside quotes, identifiers and comments is left
alone and ``::`` casts are not parameters. Values are always *bound* by the driver, never formatted into the SQL.

**Names**: mod_wsgi passes the raw bytes of the user name; they are decoded as UTF-8 for the driver. A name that is
not valid UTF-8 or contains a NUL byte cannot be in the database: it is an unknown user (the adapter still spends
the dummy hash work, so the answer takes as long as any other).

**Presets**: ``preset="wsgiauth"`` (the default) is our minimal schema (``wsgiauth/data/sql/schema.sql``);
``preset="django"`` reads Django's ``auth_user``, ``auth_group`` and ``auth_user_groups`` (``is_active`` honoured,
``pbkdf2_sha256$`` hashes verified without importing Django). Explicit ``*_query`` arguments override a preset's.

**Errors**: a failing query is logged and raised as `BackendError`; the adapter turns it
into the configured outcome (``on_error``: unknown by default). Connections come from a `wsgiauth.pool.Pool`
(lazy, fork-aware, bounded, with a circuit breaker), found again by a re-imported auth script.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sqlite3
import urllib.parse
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from typing import Unpack

from .. import adapter
from .._options import SQL_CONNECT_TIMEOUT, SQL_TIMEOUT, PoolOptions
from .._watchdog import guard
from ..exceptions import BackendError, ConfigError, StoreError
from ..pool import Pool, default_is_dead, get_pool, pool_arguments

__all__ = [
    "PRESETS",
    "Backend",
    "Preset",
    "Query",
    "compile_query",
    "mysql",
    "postgresql",
    "sqlite",
    "sqlite_path",
]

logger = logging.getLogger("wsgiauth.sql")

Dialect = Literal["sqlite", "postgresql", "mysql"]
DIALECTS: Final = ("sqlite", "postgresql", "mysql")


@dataclass(frozen=True, slots=True)
class Preset:
    """The three queries for a known schema (``None``: that hook is not served)."""

    password_query: str
    realm_query: str | None
    groups_query: str | None


PRESETS: Final[Mapping[str, Preset]] = {
    # wsgiauth/data/sql/schema.sql
    "wsgiauth": Preset(
        password_query="SELECT password_hash, canonical AS name, active FROM wsgiauth_user WHERE name = :user",
        realm_query=(
            "SELECT r.ha1 FROM wsgiauth_realm_hash r JOIN wsgiauth_user u ON u.name = r.username "
            "WHERE r.username = :user AND r.realm = :realm AND u.active"),
        # Apache asks for the groups of the name it recorded: the canonical name when check_password returned one.
        groups_query=(
            "SELECT m.groupname FROM wsgiauth_group_member m JOIN wsgiauth_user u ON u.name = m.username "
            "WHERE u.active AND (u.name = :user OR (u.canonical = :user AND NOT EXISTS "
            "(SELECT 1 FROM wsgiauth_user x WHERE x.name = :user))) ORDER BY m.groupname"),
    ),
    # django.contrib.auth (default user model): usernames are matched as Django's ModelBackend does (exactly).
    "django": Preset(
        password_query=(
            "SELECT password, is_active AS active, is_staff, is_superuser FROM auth_user WHERE username = :user"),
        realm_query=None,  # Django stores no Digest hashes
        groups_query=(
            "SELECT g.name FROM auth_group g JOIN auth_user_groups ug ON ug.group_id = g.id "
            "JOIN auth_user u ON u.id = ug.user_id WHERE u.username = :user AND u.is_active ORDER BY g.name"),
    ),
}


# ---------------------------------------------------------------------- placeholders

@dataclass(frozen=True, slots=True)
class Query:
    """A query translated for one driver.

    Attributes:
        sql: the text handed to ``cursor.execute``.
        params: the names of the values to bind, in order (``"user"``, ``"realm"``).
    """

    sql: str
    params: tuple[str, ...]


def _is_ident(c: str) -> bool:
    return c.isalnum() or c == "_"


_MIXED: Final = "SQL query mixes :name and %s placeholders: use one style"


def compile_query(query: str, dialect: Dialect, allowed: Sequence[str] = ("user", "realm")) -> Query:
    """Translate a query written with ``:user``/``:realm`` (or positional ``%s``) for a driver.

    Args:
        query: the SQL text.
        dialect: ``"sqlite"`` (placeholders ``?``) or ``"postgresql"``/``"mysql"`` (``%s``, literal ``%`` doubled).
        allowed: the parameters this query may use, in the order positional ``%s`` take them.

    Returns:
        the translated `Query`.

    Raises:
        ConfigError: an unknown ``:name``, too many ``%s``, both styles mixed, an unterminated quote or comment, or
            no reference to the user at all.
    """
    if dialect not in DIALECTS:
        raise ConfigError(f"dialect must be one of {', '.join(DIALECTS)}, not {dialect!r}")
    mark = "?" if dialect == "sqlite" else "%s"
    pct = "%" if dialect == "sqlite" else "%%"
    out: list[str] = []
    names: list[str] = []
    styles: set[str] = set()
    i, n = 0, len(query)

    def literal(text: str) -> None:
        out.append(text.replace("%", pct))

    while i < n:
        c = query[i]
        if c in "'\"`":
            end = i + 1
            while True:
                end = query.find(c, end)
                if end < 0:
                    raise ConfigError(f"unterminated {c} quote in SQL query: {query!r}")
                if end + 1 < n and query[end + 1] == c:  # doubled quote inside the literal
                    end += 2
                    continue
                break
            literal(query[i:end + 1])
            i = end + 1
        elif query.startswith("--", i):
            end = query.find("\n", i)
            end = n if end < 0 else end
            literal(query[i:end])
            i = end
        elif query.startswith("/*", i):
            end = query.find("*/", i + 2)
            if end < 0:
                raise ConfigError(f"unterminated /* comment in SQL query: {query!r}")
            literal(query[i:end + 2])
            i = end + 2
        elif query.startswith("::", i):  # PostgreSQL cast
            out.append("::")
            i += 2
        elif c == ":" and i + 1 < n and (query[i + 1].isalpha() or query[i + 1] == "_") and (
                i == 0 or not _is_ident(query[i - 1])):
            end = i + 1
            while end < n and _is_ident(query[end]):
                end += 1
            name = query[i + 1:end]
            if name not in allowed:
                raise ConfigError(f"unknown parameter :{name} in SQL query (use {', '.join(':' + a for a in allowed)})")
            if "positional" in styles:
                raise ConfigError(_MIXED)
            names.append(name)
            styles.add("named")
            out.append(mark)
            i = end
        elif query.startswith("%s", i):
            if "named" in styles:
                raise ConfigError(_MIXED)
            if len(names) >= len(allowed):
                raise ConfigError(f"too many %s in SQL query (it takes {', '.join(allowed)}, in this order)")
            names.append(allowed[len(names)])
            styles.add("positional")
            out.append(mark)
            i += 2
        elif c == "%":
            out.append(pct)
            i += 1
        else:
            out.append(c)
            i += 1
    if "user" not in names:
        raise ConfigError(f"SQL query never uses the user name (:user or %s): {query!r}")
    return Query("".join(out), tuple(names))


# ---------------------------------------------------------------------- values from drivers

_TRUE_TEXT: Final = frozenset({"1", "t", "true", "y", "yes", "on"})


def _as_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return str(value).encode("utf-8")


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _truthy(value: Any) -> bool:
    """An ``active`` flag from any driver: booleans, integers, ``'t'``/``'true'``/``'1'``, BIT(1) bytes."""
    if value is None:
        return False  # fail closed
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        return any(raw) if raw[:1] not in (b"0", b"f", b"F", b"n", b"N") else False
    if isinstance(value, str):
        return value.strip().lower() in _TRUE_TEXT
    return bool(value)


def _param_text(raw: bytes) -> str | None:
    """A name or realm as the driver takes it: UTF-8 text, or ``None`` when no stored value can equal it."""
    if b"\x00" in raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


# ---------------------------------------------------------------------- driver specifics

_MYSQL_DEAD_CODES: Final = frozenset({1053, 1927, 2003, 2006, 2013, 2014, 2055, 4031})


def is_dead(exc: BaseException) -> bool:
    """Whether an error from one of the built-in drivers means the connection is lost.

    SQLite has no connection to lose. For psycopg, ``OperationalError`` except a cancelled statement (a timeout is not
    a dead connection); for PyMySQL, ``InterfaceError`` and the "server gone / lost connection / killed" codes.
    Anything else: `wsgiauth.pool.default_is_dead`.
    """
    module = type(exc).__module__ or ""
    if module.startswith("sqlite3"):
        return False
    if module.startswith("psycopg"):
        names = {cls.__name__ for cls in type(exc).__mro__}
        if "QueryCanceled" in names:
            return False
        return bool(names & {"OperationalError", "InterfaceError"})
    if module.startswith("pymysql"):
        names = {cls.__name__ for cls in type(exc).__mro__}
        if "InterfaceError" in names:
            return True
        if "OperationalError" in names:
            code = exc.args[0] if exc.args else None
            return code in _MYSQL_DEAD_CODES
        return False
    return default_is_dead(exc)


def _dialect_of(conn: Any) -> Dialect:
    module = type(conn).__module__ or ""
    if module.startswith("sqlite3"):
        return "sqlite"
    if module.startswith(("psycopg", "psycopg2", "pg8000")):
        return "postgresql"
    if module.startswith(("pymysql", "MySQLdb", "mysql", "mariadb")):
        return "mysql"
    raise ConfigError(f"cannot tell the SQL dialect of a {module}.{type(conn).__name__} connection: pass dialect=")


def _check(conn: Any) -> None:
    """Validation of a connection idle for a while: a round trip to the server."""
    if type(conn).__module__.startswith("pymysql"):
        conn.ping(reconnect=False)
        return
    cur = conn.cursor()
    try:
        cur.execute("SELECT 1")
        cur.fetchall()
    finally:
        cur.close()


def _reset(conn: Any) -> None:
    """On return to the pool: end a transaction a non-autocommit connection may have opened (stale snapshots)."""
    if isinstance(conn, sqlite3.Connection):
        if conn.in_transaction:
            conn.rollback()
        return
    auto = getattr(conn, "autocommit", None)
    if callable(auto):  # PyMySQL: autocommit(value) is a method; get_autocommit() reads it
        getter = getattr(conn, "get_autocommit", None)
        auto = getter() if callable(getter) else True
    if auto is False:
        conn.rollback()


def _uid_text() -> str:
    try:
        import pwd

        return f"uid {os.getuid()} ({pwd.getpwuid(os.getuid()).pw_name})"
    except (ImportError, KeyError):
        return f"uid {os.getuid()}"


def _sqlite_connector(path: str, *, readonly: bool, timeout: float) -> Callable[[], sqlite3.Connection]:
    absolute = os.path.abspath(path)

    def connect() -> sqlite3.Connection:
        if not os.path.exists(absolute):
            raise StoreError(f"cannot open SQLite database {absolute}: no such file")
        if not os.access(absolute, os.R_OK):
            raise StoreError(f"cannot read SQLite database {absolute}: permission denied for {_uid_text()}")
        target = f"file:{urllib.parse.quote(absolute)}?mode={'ro' if readonly else 'rw'}"
        try:
            conn = sqlite3.connect(target, uri=True, timeout=timeout, check_same_thread=False,
                                   isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {absolute} for {_uid_text()}: {exc}") from exc
        return conn

    return connect


def _postgresql_connector(conninfo: str, *, connect_timeout: float, statement_timeout: float | None,
                          options: Mapping[str, Any]) -> Callable[[], Any]:
    def connect() -> Any:
        import psycopg

        error: Exception | None = None
        try:
            conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=max(2, round(connect_timeout)),
                                   **options)
        except psycopg.OperationalError as exc:
            error = psycopg.OperationalError(str(exc))
        if error is not None:
            # psycopg leaves a timed-out attempt's socket in a reference cycle (its connect generator and the
            # traceback): collected now, it is closed now, instead of staying ESTABLISHED to a hung server until the
            # next garbage collection (measured: one socket per failed attempt). Only failed connects pay for this.
            gc.collect()
            raise error
        if statement_timeout:
            conn.execute(f"SET statement_timeout = {int(statement_timeout * 1000)}")
        return conn

    return connect


def _mysql_connector(params: Mapping[str, Any]) -> Callable[[], Any]:
    def connect() -> Any:
        import pymysql

        return pymysql.connect(**params)

    return connect


def _mysql_params_from_url(url: str) -> dict[str, Any]:
    parts = urllib.parse.urlsplit(url)
    params: dict[str, Any] = {}
    if parts.hostname:
        params["host"] = parts.hostname
    if parts.port:
        params["port"] = parts.port
    if parts.username:
        params["user"] = urllib.parse.unquote(parts.username)
    if parts.password is not None:
        params["password"] = urllib.parse.unquote(parts.password)
    database = urllib.parse.unquote(parts.path.lstrip("/"))
    if database:
        params["database"] = database
    for key, value in urllib.parse.parse_qsl(parts.query):
        if key in ("unix_socket", "charset"):
            params[key] = value
        elif key in ("connect_timeout", "read_timeout", "write_timeout"):
            params[key] = float(value)
        else:
            raise ConfigError(f"unknown MySQL URL option {key!r} (known: unix_socket, charset, *_timeout)")
    return params


def sqlite_path(url: str) -> str:
    """The file an SQLite URL names, read as SQLAlchemy and dj-database-url read it.

    `sqlite:///site.db` is the relative path `site.db`; `sqlite:////srv/site.db` (four slashes) the absolute path
    `/srv/site.db`. The text after the third slash is the path, taken as it is (no percent-decoding).

    Args:
        url: an `sqlite://` URL.

    Returns:
        The path, relative or absolute, as written.

    Raises:
        ConfigError: not an `sqlite://` URL, a URL with a host, or one without a path.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "sqlite":
        raise ConfigError(f"not an SQLite URL: {url!r}")
    host, _, path = rest.partition("/")
    if host or not path:
        raise ConfigError(f"an SQLite URL is sqlite:///relative/path.db or sqlite:////absolute/path.db, not {url!r}")
    return path


def _connector_from_string(target: str, dialect: Dialect | None, readonly: bool,
                           timeout: float) -> tuple[Callable[[], Any], Dialect, Hashable]:
    scheme = target.split("://", 1)[0].lower() if "://" in target else ""
    if scheme in ("postgresql", "postgres") or (not scheme and dialect == "postgresql"):
        return (_postgresql_connector(target, connect_timeout=timeout, statement_timeout=timeout, options={}),
                "postgresql", ("postgresql", target))
    if scheme in ("mysql", "mariadb", "mysql+pymysql"):
        params = {"charset": "utf8mb4", "autocommit": True, "connect_timeout": timeout, "read_timeout": timeout,
                  "write_timeout": timeout, **_mysql_params_from_url(target)}
        return _mysql_connector(params), "mysql", ("mysql", target)
    if scheme == "sqlite" or (not scheme and dialect in (None, "sqlite")):
        path = sqlite_path(target) if scheme else target
        return (_sqlite_connector(path, readonly=readonly, timeout=timeout), "sqlite",
                ("sqlite", os.path.abspath(path), readonly))
    raise ConfigError(f"cannot tell how to connect to {target!r}: use sqlite:///relative.db, "
                      "sqlite:////absolute/path.db, postgresql://..., mysql://... or pass a connect callable")


def _callable_key(connect: Callable[[], Any]) -> Hashable:
    """A registry key for a connect callable that survives a re-import of the script defining it.

    A function is known by its file and qualified name (a lambda also by its line); anything else (a bound method,
    a ``functools.partial``) only by its identity, so pass ``pool_key=`` for those.
    """
    code = getattr(connect, "__code__", None)
    qualname = getattr(connect, "__qualname__", None)
    if code is None or not isinstance(qualname, str):
        return ("callable", id(connect))
    line = code.co_firstlineno if "<lambda>" in qualname else None
    return ("callable", code.co_filename, qualname, line)


# ---------------------------------------------------------------------- the backend

class Backend(adapter.Backend):
    """A credential store in an SQL database.

    Args:
        connect: how to get a connection: a URL (`sqlite:///relative.db` or `sqlite:////absolute/path.db` as with
            SQLAlchemy, a plain SQLite path, ``postgresql://...``,
            ``mysql://USER:PASSWORD@HOST:PORT/DB``; with ``dialect="postgresql"`` also a libpq ``key=value``
            string), or a callable returning a new DB-API connection (it must time out by itself).
        dialect: ``"sqlite"``, ``"postgresql"`` or ``"mysql"``; guessed from the URL, or from the first connection a
            callable returns.
        preset: ``"wsgiauth"`` (default) or ``"django"``: the queries of a known schema.
        password_query: overrides the preset's password query (first column: the stored hash).
        realm_query: overrides the preset's Digest query (returns the HA1). ``""`` disables Digest.
        groups_query: overrides the preset's groups query (one group per row). ``""`` disables groups.
        pool_key: the key of the connection pool in the process-wide registry. Default: the URL, or the
            callable's file and qualified name, so that a re-imported auth script finds its pool again.
        readonly: open an SQLite file read-only (default ``True``).
        query_timeout: PostgreSQL only: the longest a query may run, seen from the client, before its connection
            is cut and the request answered as a backend failure (psycopg has no read timeout of its own, so a
            frozen server would otherwise hold the Apache thread). Default: ``pool_timeout + 1`` s (``postgresql()``:
            ``statement_timeout + 1`` s, so the server's own timeout fires first). ``0`` disables it.
        label, on_error, log_level, access: see `wsgiauth.adapter.Backend` (the label defaults to `"sql"`).
        **pool: the pool options of `wsgiauth.pool.PoolOptions`: `pool_size` (like `DBDMax`), `pool_timeout`
            (also the connect and query timeout of the built-in drivers when `connect` is a URL), `max_idle` (like
            `DBDExptime`), `max_lifetime`, `check_after`, `breaker_threshold`, `breaker_reset`.

    Raises:
        ConfigError: an unknown preset or dialect, a malformed query, or a URL that cannot be used; for a pool
            option out of range an `OptionError` whose `option` is the keyword.
        TypeError: a keyword that is neither a setting above nor a pool option.
    """

    label = "sql"

    def __init__(
        self,
        connect: str | Callable[[], Any],
        *,
        dialect: Dialect | None = None,
        preset: str | None = None,
        password_query: str | None = None,
        realm_query: str | None = None,
        groups_query: str | None = None,
        pool_key: Hashable | None = None,
        readonly: bool = True,
        query_timeout: float | None = None,
        label: str | None = None,
        on_error: adapter.OnError = "unknown",
        log_level: str = "warning",
        access: Callable[[str], bool | None] | None = None,
        **pool: Unpack[PoolOptions],
    ) -> None:
        super().__init__(label=label, on_error=on_error, log_level=log_level, access=access)
        pool_args = pool_arguments(pool, what="sql.Backend")
        pool_timeout: float = pool_args["timeout"]
        # psycopg has no client-side read timeout: a frozen server would hold the Apache thread (see _watchdog).
        self.query_timeout = query_timeout if query_timeout is not None else pool_timeout + 1.0
        if dialect is not None and dialect not in DIALECTS:
            raise ConfigError(f"dialect must be one of {', '.join(DIALECTS)}, not {dialect!r}")
        if preset is None:
            preset = "wsgiauth"
        if preset not in PRESETS:
            raise ConfigError(f"unknown SQL preset {preset!r} (known: {', '.join(sorted(PRESETS))})")
        base = PRESETS[preset]
        self.preset = preset
        self.password_query = base.password_query if password_query is None else password_query
        self.realm_query = base.realm_query if realm_query is None else (realm_query or None)
        self.groups_query = base.groups_query if groups_query is None else (groups_query or None)
        if not self.password_query:
            raise ConfigError("password_query must not be empty")

        if isinstance(connect, str):
            factory, found_dialect, default_key = _connector_from_string(connect, dialect, readonly, pool_timeout)
            if dialect is not None and dialect != found_dialect:
                raise ConfigError(f"dialect={dialect!r} does not match the URL ({found_dialect})")
            dialect = found_dialect
        elif callable(connect):
            factory = connect
            default_key = _callable_key(connect)
        else:
            raise ConfigError(f"connect must be a URL or a callable, not {type(connect).__name__}")
        self.dialect: Dialect | None = dialect
        self._compiled: dict[Dialect, tuple[Query, Query | None, Query | None]] = {}
        if dialect is not None:
            self._compile(dialect)
        else:  # check the queries now, whatever the dialect turns out to be
            self._compile("postgresql")
            self._compiled.clear()

        key = ("sql", pool_key if pool_key is not None else default_key)
        name = f"sql:{dialect or 'dbapi'}"
        self.pool: Pool[Any] = get_pool(key, lambda: Pool(factory, name=name, check=_check, reset=_reset,
                                                          is_dead=is_dead, **pool_args))

    def _compile(self, dialect: Dialect) -> tuple[Query, Query | None, Query | None]:
        compiled = self._compiled.get(dialect)
        if compiled is None:
            compiled = (
                compile_query(self.password_query, dialect, ("user",)),
                compile_query(self.realm_query, dialect, ("user", "realm")) if self.realm_query else None,
                compile_query(self.groups_query, dialect, ("user",)) if self.groups_query else None,
            )
            self._compiled[dialect] = compiled
        return compiled

    # ------------------------------------------------------------------ running queries

    def _deadline(self, conn: Any, dialect: Dialect) -> contextlib.AbstractContextManager[None]:
        """For PostgreSQL, cut the connection of a query that outlives ``query_timeout`` (see `wsgiauth._watchdog`)."""
        if dialect != "postgresql" or not self.query_timeout:
            return contextlib.nullcontext()
        fileno = getattr(conn, "fileno", None)
        if fileno is None:
            return contextlib.nullcontext()
        return guard(fileno(), self.query_timeout)

    def _query(self, which: int, values: Mapping[str, str], limit: int) -> tuple[list[str], list[Sequence[Any]]]:
        what = ("password", "realm", "groups")[which]

        def work(conn: Any) -> tuple[list[str], list[Sequence[Any]]]:
            dialect = self.dialect or _dialect_of(conn)
            query = self._compile(dialect)[which]
            assert query is not None
            cur = conn.cursor()
            try:
                with self._deadline(conn, dialect):
                    cur.execute(query.sql, tuple(values[p] for p in query.params))
                    columns = [str(d[0]) for d in (cur.description or ())]
                    rows = list(cur.fetchmany(limit) if limit else cur.fetchall())
            finally:
                cur.close()
            return columns, rows

        try:
            return self.pool.run(work)
        except BackendError:
            raise
        except Exception as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            logger.error("%s: %s query failed: %s%s", self.label, what, type(exc).__name__,
                         f": {detail}" if detail else "")
            raise BackendError(f"{what} query failed: {type(exc).__name__}"
                               + (f": {detail}" if detail else "")) from exc

    # ------------------------------------------------------------------ the backend interface

    def lookup(self, user: bytes) -> adapter.Record | None:
        """The user's row from ``password_query`` as a `Record`, or ``None``.

        Raises:
            BackendError: the query failed, returned no column, or returned more than one row.
        """
        name = _param_text(user)
        if name is None:
            return None
        columns, rows = self._query(0, {"user": name}, 2)
        if not rows:
            return None
        if len(rows) > 1:
            raise BackendError("password query returned more than one row for one user; it must return at most one")
        row = rows[0]
        if not row:
            raise BackendError("password query returned no column; the first must be the stored hash")
        stored = _as_text(row[0]) or ""
        canonical: bytes | None = None
        active = True
        attributes: dict[str, str] = {}
        for column, value in zip(columns[1:], row[1:], strict=False):
            key = column.lower()
            if key == "name":
                canonical = _as_bytes(value) or None
            elif key in ("active", "is_active"):
                active = _truthy(value)
            elif value is not None:
                attributes[key] = _as_text(value) or ""
        return adapter.Record(hash=stored, name=canonical, active=active, attributes=attributes)

    def realm_hash(self, user: bytes, realm: bytes) -> str | None:
        """The HA1 from ``realm_query``, or ``None`` (unknown user, no Digest query configured).

        Raises:
            BackendError: the query failed or returned more than one row.
        """
        if self.realm_query is None:
            return None
        name, realm_text = _param_text(user), _param_text(realm)
        if name is None or realm_text is None:
            return None
        _, rows = self._query(1, {"user": name, "realm": realm_text}, 2)
        if not rows:
            return None
        if len(rows) > 1:
            raise BackendError("realm query returned more than one row for one user and realm")
        return _as_text(rows[0][0]) if rows[0] else None

    def groups(self, user: bytes) -> Sequence[bytes] | None:
        """The user's groups from ``groups_query`` (one per row), or ``None`` when no groups query is configured.

        Raises:
            BackendError: the query failed.
        """
        if self.groups_query is None:
            return None
        name = _param_text(user)
        if name is None:
            return []
        _, rows = self._query(2, {"user": name}, 0)
        found = [_as_bytes(row[0]) for row in rows if row]
        return [g for g in found if g]

    def stats(self) -> dict[str, int | float]:
        """The connection pool's counters (see `wsgiauth.pool.Pool.stats`)."""
        return self.pool.stats()

    def close(self) -> None:
        """Close the pooled connections (a later request opens a new pool)."""
        self.pool.close()


# ---------------------------------------------------------------------- convenient constructors

def sqlite(path: str | os.PathLike[str], *, readonly: bool = True, timeout: float = SQL_TIMEOUT.default,
           **kwargs: Any) -> Backend:
    """A backend on an SQLite database file (read-only by default; the file must be readable by Apache's user).

    Args:
        path: the database file.
        readonly: open it read-only (``mode=ro``).
        timeout: how long to wait for a lock held by a writer, and for a free pooled connection.
        **kwargs: the queries, preset, pool and adapter options of `Backend`.

    Returns:
        the backend. Nothing is opened until the first request.

    Raises:
        ConfigError: a setting is wrong (a timeout out of range is an `OptionError` naming the keyword).
    """
    timeout = SQL_TIMEOUT.check("timeout", timeout)
    absolute = os.path.abspath(os.fspath(path))
    kwargs.setdefault("pool_key", ("sqlite", absolute, readonly))
    kwargs.setdefault("pool_timeout", timeout)
    return Backend(_sqlite_connector(absolute, readonly=readonly, timeout=timeout), dialect="sqlite", **kwargs)


def postgresql(conninfo: str = "", *, connect_timeout: float = SQL_CONNECT_TIMEOUT.default,
               statement_timeout: float | None = SQL_TIMEOUT.default, **kwargs: Any) -> Backend:
    """A backend on PostgreSQL through psycopg 3.

    Args:
        conninfo: a libpq connection string or URL (``"host=127.0.0.1 dbname=site user=auth password=..."``).
        connect_timeout: seconds before a connection attempt gives up (libpq's minimum is 2).
        statement_timeout: seconds before the server cancels a query (``None``: the server's setting).
        **kwargs: the queries, preset, pool and adapter options of `Backend`; unknown keys starting with
            ``pg_`` are passed to ``psycopg.connect`` without the prefix.

    Returns:
        the backend. Nothing is opened until the first request.

    Raises:
        ConfigError: a setting is wrong (a timeout out of range is an `OptionError` naming the keyword).
    """
    connect_timeout = SQL_CONNECT_TIMEOUT.check("connect_timeout", connect_timeout)
    if statement_timeout is not None:
        statement_timeout = SQL_TIMEOUT.check("statement_timeout", statement_timeout)
    options = {k[3:]: kwargs.pop(k) for k in list(kwargs) if k.startswith("pg_")}
    kwargs.setdefault("pool_key", ("postgresql", conninfo, tuple(sorted(options.items()))))
    if statement_timeout:
        kwargs.setdefault("query_timeout", statement_timeout + 1.0)
    connector = _postgresql_connector(conninfo, connect_timeout=connect_timeout,
                                      statement_timeout=statement_timeout, options=options)
    return Backend(connector, dialect="postgresql", **kwargs)


def mysql(*, host: str = "127.0.0.1", port: int = 3306, user: str | None = None, password: str = "",
          database: str | None = None, unix_socket: str | None = None,
          connect_timeout: float = SQL_CONNECT_TIMEOUT.default, read_timeout: float = SQL_TIMEOUT.default,
          **kwargs: Any) -> Backend:
    """A backend on MariaDB or MySQL through PyMySQL (utf8mb4, autocommit).

    Args:
        host: the server's address (or use ``unix_socket``).
        port: the server's TCP port.
        user: the account to log in with.
        password: its password.
        database: the database holding the tables.
        unix_socket: path of the server's socket, instead of TCP.
        connect_timeout: seconds before a connection attempt gives up.
        read_timeout: seconds before a query waiting for the server gives up (also used for writes).
        **kwargs: the queries, preset, pool and adapter options of `Backend`.

    Returns:
        the backend. Nothing is opened until the first request.

    Raises:
        ConfigError: a setting is wrong (a timeout out of range is an `OptionError` naming the keyword).
    """
    connect_timeout = SQL_CONNECT_TIMEOUT.check("connect_timeout", connect_timeout)
    read_timeout = SQL_TIMEOUT.check("read_timeout", read_timeout)
    params: dict[str, Any] = {"host": host, "port": port, "user": user, "password": password, "database": database,
                              "charset": "utf8mb4", "autocommit": True, "connect_timeout": connect_timeout,
                              "read_timeout": read_timeout, "write_timeout": read_timeout}
    if unix_socket:
        params["unix_socket"] = unix_socket
    kwargs.setdefault("pool_key", ("mysql", host, port, user, password, database, unix_socket))
    return Backend(_mysql_connector(params), dialect="mysql", **kwargs)
