"""One TOML file describing a site's credential backends; `load` turns it into the four mod_wsgi hooks.

An ``auth.wsgi`` becomes::

    from wsgiauth import load
    check_password, get_realm_hash, groups_for_user, allow_access = load("/etc/wsgiauth/site.toml").hooks()

`load` validates the whole file before building anything and reports **every** problem at once, each with its
key path (``backends.corp.url: not an ldap:// or ldaps:// URL``), in one `ConfigError`.
Loading the same file again in the same process (mod_wsgi re-imports a changed script without cleaning up) returns
the same objects, so pools and caches are never duplicated.

The keys are documented in ``docs/config.md``; `SCHEMA` is the machine-readable version.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._options import (
    CACHE_MAX_SIZE,
    CACHE_TTL,
    LDAP_CONNECT_TIMEOUT,
    LDAP_MAX_DEPTH,
    LDAP_TIMEOUT,
    POOL_OPTIONS,
    SQL_CONNECT_TIMEOUT,
    SQL_TIMEOUT,
    THROTTLE_GROWTH,
    THROTTLE_IPV6_PREFIX,
    THROTTLE_LOCKOUT,
    THROTTLE_MAX_FAILURES,
    THROTTLE_MAX_LOCKOUT,
    THROTTLE_MAX_TRACKED,
    THROTTLE_WINDOW,
    OptionError,
    type_name,
)
from ._registry import shared
from ._validate import (
    MISSING,
    Ctx,
    Errors,
    Key,
    boolean,
    check_section,
    choice,
    file_path,
    host_rules,
    number,
    option_key,
    string,
    string_list,
    url,
)
from .adapter import Backend
from .exceptions import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["SCHEMA", "Config", "load", "parse"]

_LEVELS = ("debug", "info", "warning", "error", "off")
_ON_ERROR = ("unknown", "deny", "raise")


# ---------------------------------------------------------------------------------------------------- the schema

_COMMON: dict[str, Key] = {
    "type": Key(string, "the kind of backend", required=True, arg=""),
    "label": Key(string, "name used in logs and by `wsgiauth check` (default: the table's name)"),
    "on_error": Key(choice(*_ON_ERROR), "what a failure of this backend becomes"),
    "log_level": Key(choice(*_LEVELS), "lowest level written to Apache's error log"),
    "canonicalize": Key(lambda v, p, c: v, "table: lower, strip_domain", arg=""),
    "cache": Key(lambda v, p, c: v, "table: a verification cache in front of this backend", arg=""),
}

_FILE_COMMON = {
    "check_interval": Key(number(0), "seconds between checks of the file's modification time"),
    "allow_plaintext": Key(boolean, "accept clear-text stored passwords (Apache on Linux never does)"),
}

# The pool keys of the backends that keep connections: their ranges and defaults are the constructors' own.
_POOL_KEYS = {name: option_key(spec) for name, spec in POOL_OPTIONS.items()}

SCHEMA: dict[str, dict[str, Key]] = {
    "htpasswd": {
        "users": Key(file_path(), "htpasswd file (user:hash)", required=True),
        "groups": Key(file_path(), "htgroup file (group: member member...)"),
        "digest": Key(file_path(), "htdigest file (user:realm:HA1) for Digest"),
        **_FILE_COMMON,
    },
    "htdigest": {
        "digest": Key(file_path(), "htdigest file (user:realm:HA1)", required=True),
        "groups": Key(file_path(), "htgroup file"),
        **_FILE_COMMON,
    },
    "htgroup": {
        "groups": Key(file_path(), "htgroup file (group: member member...)", required=True),
        **_FILE_COMMON,
    },
    "dbm": {
        "path": Key(file_path(must_exist=False), "DBM file, as given to AuthDBMUserFile", required=True),
        "dbm_type": Key(choice("auto", "db", "gdbm", "sdbm", "default"), "DBM format (AuthDBMType)", arg="type"),
        "realm": Key(string, "the AuthName: groups are looked up under user:realm first, as mod_authz_dbm does"),
        "group_path": Key(file_path(must_exist=False), "group database (AuthDBMGroupFile) when not path"),
        "group_type": Key(choice("auto", "db", "gdbm", "sdbm", "default"), "its format"),
        "check_interval": Key(number(0), "seconds between checks that the path still names the open file"),
        "lock_timeout": Key(number(0, strict_low=True), "seconds to wait while htdbm holds a lock"),
    },
    "sql": {
        "driver": Key(choice("sqlite", "postgresql", "mysql"), "database driver", required=True, arg=""),
        "database": Key(string, "SQLite file (a path or sqlite:// URL), or the database name (PostgreSQL, MySQL)",
                        arg=""),
        "conninfo": Key(string, "PostgreSQL connection string (libpq conninfo or URL)", arg=""),
        "host": Key(string, "server host (PostgreSQL, MySQL)", arg=""),
        "port": Key(number(1, 65535, integer=True), "server port", arg=""),
        "user": Key(string, "database user", arg=""),
        "password": Key(string, "database password", secret=True, arg=""),
        "unix_socket": Key(string, "MySQL server socket, instead of TCP", arg=""),
        "preset": Key(choice("wsgiauth", "django"), "ready-made queries for a known schema (default: wsgiauth)"),
        "password_query": Key(string, "query giving the hash (first column) of :user"),
        "groups_query": Key(string, "query giving one group per row for :user (\"\" disables groups)"),
        "realm_query": Key(string, "query giving the HA1 of :user in :realm (\"\" disables Digest)"),
        **_POOL_KEYS,
        # passed on by _build_sql, under the driver's own keyword (_SQL_TIMEOUT_KEYS)
        "connect_timeout": option_key(SQL_CONNECT_TIMEOUT, arg=""),
        "timeout": option_key(SQL_TIMEOUT, arg=""),
    },
    "ldap": {
        "url": Key(url("ldap", "ldaps", what="an ldap:// or ldaps://"),
                   "ldap[s]://host1 host2:port/basedn?attr?scope?filter (AuthLDAPURL)"),
        "hosts": Key(string_list, "servers tried in order (instead of the URL's)"),
        "use_ssl": Key(boolean, "LDAPS (default: from the URL scheme)"),
        "starttls": Key(boolean, "upgrade ldap:// connections with STARTTLS"),
        "base_dn": Key(string, "where users are searched (default: the URL's)"),
        "attribute": Key(string, "the attribute holding the user name (default: the URL's, else uid)"),
        "scope": Key(choice("base", "one", "sub"), "search scope"),
        "filter": Key(string, "extra search filter"),
        "bind_dn": Key(string, "DN to search with (AuthLDAPBindDN)"),
        "bind_password": Key(string, "password of bind_dn", secret=True),
        "bind_template": Key(string, "direct bind without a search: a DN with {user}"),
        "ca_file": Key(file_path(), "CA certificates to verify the server with"),
        "verify": Key(boolean, "check the server certificate (false only for tests)"),
        "connect_timeout": option_key(LDAP_CONNECT_TIMEOUT),
        "timeout": option_key(LDAP_TIMEOUT),
        "remote_user_attribute": Key(string, "attribute whose value becomes REMOTE_USER "
                                             "(default: the entry's own value of the search attribute)"),
        "group_base": Key(string, "base DN under which to search groups"),
        "group_filter": Key(string, "which entries are groups"),
        "group_attributes": Key(string_list, "group attributes holding member DNs (member, uniqueMember)"),
        "group_name_attributes": Key(string_list, "group attributes holding member names (memberUid)"),
        "member_of_attribute": Key(string, "user attribute holding group DNs (memberOf)"),
        "group_name_attribute": Key(string, "group attribute returned as the group's name (cn)"),
        "max_depth": option_key(LDAP_MAX_DEPTH),
        "digest_attribute": Key(string, "user attribute holding realm:HA1 values, for Digest"),
        **_POOL_KEYS,
    },
    "chain": {
        "members": Key(string_list, "names of the backends asked in order", required=True, arg=""),
        "on_member_error": Key(choice("stop", "next"), "a failing member: 'stop' ends the chain with that member's "
                                                       "on_error (default), 'next' asks the next member"),
    },
}

_CANON: dict[str, Key] = {
    "lower": Key(boolean, "lower-case the user name"),
    "strip_domain": Key(boolean, "drop @domain and DOMAIN\\ parts"),
}

_CACHE: dict[str, Key] = {
    "ttl": option_key(CACHE_TTL),
    "max_size": option_key(CACHE_MAX_SIZE),
    "redis": Key(boolean, "share entries through the [redis] server", arg=""),
    "key": Key(string, "shared key for the Redis tier (at least 16 characters)", secret=True),
    "enabled": Key(boolean, "false turns the cache off", arg=""),
}

_THROTTLE: dict[str, Key] = {
    "enabled": Key(boolean, "false turns throttling off", arg=""),
    "max_failures": option_key(THROTTLE_MAX_FAILURES),
    "window": option_key(THROTTLE_WINDOW),
    "lockout": option_key(THROTTLE_LOCKOUT),
    "growth": option_key(THROTTLE_GROWTH),
    "max_lockout": option_key(THROTTLE_MAX_LOCKOUT),
    "per": Key(choice("user", "address", "both"), "what is counted: user names, client addresses or both"),
    "ipv6_prefix": option_key(THROTTLE_IPV6_PREFIX),
    "max_tracked": option_key(THROTTLE_MAX_TRACKED),
    "redis": Key(boolean, "count through the [redis] server (across processes)", arg=""),
}

_REDIS: dict[str, Key] = {
    "url": Key(url("redis", "rediss", "unix", what="a redis://, rediss:// or unix://"),
               "redis://host:port/db", required=True),
    "password": Key(string, "Redis password (AUTH)", secret=True, arg=""),
    "prefix": Key(string, "prefix of every key"),
    "socket_timeout": Key(number(0, strict_low=True), "seconds to wait for a reply"),
}

_ACCESS: dict[str, Key] = {
    "allow": Key(host_rules, "clients admitted (Require ip forms, 'local')"),
    "deny": Key(host_rules, "clients refused (checked first)"),
    "default": Key(choice("allow", "deny", "none"), "answer when no rule matches"),
}

_TOP: dict[str, Key] = {
    "backend": Key(string, "name of the backend (or chain) the hooks use"),
    "realm": Key(string, "AuthName: the realm of Digest hashes and of the login prompt"),
    "log_level": Key(choice(*_LEVELS), "lowest level written to Apache's error log", default="warning"),
    "on_error": Key(choice(*_ON_ERROR), "what a backend failure becomes", default="unknown"),
}
_TOP_TABLES = ("backends", "cache", "throttle", "redis", "access")


# ---------------------------------------------------------------------------------------------------- the model


@dataclass
class Config:
    """A loaded configuration.

    Attributes:
        path: the file it came from.
        backend: the backend the hooks use (chain, cache and throttle applied).
        backends: every named backend, as built (before cache/throttle of the top level).
        realm: the configured realm (``None`` if not set).
        settings: the checked settings, as plain data (secrets replaced by ``"***"``).
    """

    path: str
    backend: Backend
    backends: dict[str, Backend] = field(default_factory=dict)
    realm: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def hooks(self) -> tuple[Any, Any, Any, Any]:
        """``(check_password, get_realm_hash, groups_for_user, allow_access)`` for auth.wsgi."""
        return self.backend.hooks()

    def close(self) -> None:
        """Release every backend's files and connections."""
        self.backend.close()


def _redact(settings: Any, secret_keys: frozenset[str]) -> Any:
    if isinstance(settings, dict):
        return {k: ("***" if k in secret_keys else _redact(v, secret_keys)) for k, v in settings.items()}
    return settings


def parse(data: Mapping[str, Any], *, base: Path | str = ".", source: str = "<config>",
          environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Check a configuration (already read from TOML) and return the checked settings.

    Args:
        data: the TOML document as a dict.
        base: directory against which relative paths are resolved.
        source: name of the file, for the error message.
        environ: environment for ``*_env`` secrets (default: ``os.environ``).

    Returns:
        ``{"top": {...}, "backends": {name: {...}}, "cache": {...}|None, "throttle": ..., "redis": ...,
        "access": ...}`` with every value checked, paths absolute and secrets read.

    Raises:
        ConfigError: listing every problem found, one per line, each with its key path.
    """
    ctx = Ctx(Path(base), Errors(), os.environ if environ is None else environ)
    top = check_section(data, "(top level)", _TOP, ctx, extra=_TOP_TABLES)
    # key paths of top-level keys read better without a prefix
    ctx.errors.items = [i.replace("(top level).", "", 1) for i in ctx.errors.items]
    out: dict[str, Any] = {"top": top, "backends": {}, "cache": None, "throttle": None, "redis": None,
                           "access": None}
    raw_backends = data.get("backends")
    if raw_backends is None or (isinstance(raw_backends, dict) and not raw_backends):
        ctx.errors.add("backends", "no backend defined: add a [backends.NAME] table with a type")
        raw_backends = {}
    elif not isinstance(raw_backends, dict):
        ctx.errors.add("backends", f"expected a table, got {type_name(raw_backends)}")
        raw_backends = {}
    for name, section in raw_backends.items():
        path = f"backends.{name}"
        if not isinstance(section, dict):
            ctx.errors.add(path, f"expected a table, got {type_name(section)}")
            continue
        kind = section.get("type")
        if not isinstance(kind, str) or kind not in SCHEMA:
            shown = repr(kind) if kind is not None else "missing"
            ctx.errors.add(f"{path}.type", f"must be one of {', '.join(sorted(SCHEMA))} (got {shown})")
            continue
        checked = check_section(section, path, {**_COMMON, **SCHEMA[kind]}, ctx)
        checked["type"] = kind
        if "canonicalize" in section:
            checked["canonicalize"] = check_section(section["canonicalize"], f"{path}.canonicalize", _CANON, ctx)
        if "cache" in section:
            checked["cache"] = check_section(section["cache"], f"{path}.cache", _CACHE, ctx)
        _check_backend(kind, checked, section, path, ctx)
        out["backends"][name] = checked
    for table, keys in (("cache", _CACHE), ("throttle", _THROTTLE), ("redis", _REDIS), ("access", _ACCESS)):
        if table in data:
            out[table] = check_section(data[table], table, keys, ctx)
    _check_references(out, data, ctx)
    ctx.errors.raise_if_any(source)
    return out


def _check_backend(kind: str, checked: dict[str, Any], section: Mapping[str, Any], path: str, ctx: Ctx) -> None:
    if kind == "sql":
        driver = checked.get("driver")
        if driver == "sqlite":
            if "database" not in section:
                ctx.errors.add(f"{path}.database", "required for driver 'sqlite': the path of the database file")
            elif "database" in checked:
                checked["database"] = _sqlite_database(section["database"], f"{path}.database", ctx)
            for k in ("conninfo", "host", "port", "user", "password"):
                if k in section:
                    ctx.errors.add(f"{path}.{k}", "not used with driver 'sqlite'")
        elif driver == "postgresql":
            if "conninfo" not in section and "database" not in section:
                ctx.errors.add(f"{path}.conninfo", "required for driver 'postgresql' (or give host/database/user)")
        elif driver == "mysql":
            if "database" not in section:
                ctx.errors.add(f"{path}.database", "required for driver 'mysql'")
            if "conninfo" in section:
                ctx.errors.add(f"{path}.conninfo", "only for driver 'postgresql'; use host, port, user, database")
        if driver in ("sqlite", "postgresql", "mysql"):
            from .backends.sql import compile_query

            for q, allowed in (("password_query", ("user",)), ("groups_query", ("user",)),
                               ("realm_query", ("user", "realm"))):
                text = checked.get(q)
                if isinstance(text, str):
                    try:
                        compile_query(text, driver, allowed)
                    except ValueError as exc:
                        ctx.errors.add(f"{path}.{q}", str(exc))
                        checked.pop(q, None)
    elif kind == "ldap":
        if "bind_dn" in checked and "bind_password" not in checked and not any(
                f"bind_password{s}" in section for s in ("", "_file", "_env")):
            ctx.errors.add(f"{path}.bind_password", "required with bind_dn (give bind_password_file or "
                                                    "bind_password_env rather than the password itself)")
        if "url" not in section and "hosts" not in section:
            ctx.errors.add(f"{path}.url", "required (or hosts): ldap[s]://host/basedn?attr?scope?filter")
        u = checked.get("url", "")
        if checked.get("starttls") and u.lower().startswith("ldaps://"):
            ctx.errors.add(f"{path}.starttls", "STARTTLS makes no sense on an ldaps:// URL")


def _sqlite_database(value: str, path: str, ctx: Ctx) -> Any:
    """An SQLite `database`: a path, or an SQLAlchemy-style URL (`sqlite:///relative.db`, `sqlite:////abs.db`);
    either way a relative path is relative to the configuration file's directory."""
    if value.lower().startswith("sqlite:"):
        from .backends.sql import sqlite_path

        try:
            value = sqlite_path(value)
        except ConfigError as exc:
            ctx.errors.add(path, str(exc))
            return MISSING
    return file_path()(value, path, ctx)


def _check_references(out: dict[str, Any], data: Mapping[str, Any], ctx: Ctx) -> None:
    backends = out["backends"]
    raw_value = data.get("backends")
    raw: dict[str, Any] = raw_value if isinstance(raw_value, dict) else {}
    for name, b in backends.items():
        if b["type"] == "chain":
            for i, member in enumerate(b.get("members", [])):
                if member not in raw:
                    ctx.errors.add(f"backends.{name}.members[{i}]", f"no backend named {member!r}")
                elif member == name:
                    ctx.errors.add(f"backends.{name}.members[{i}]", "a chain cannot contain itself")
    # cycles among chains (each reported once, from the first chain of the file on it)
    reported: set[frozenset[str]] = set()

    def visit(start: str, node: str, trail: tuple[str, ...]) -> None:
        b = backends.get(node)
        if b is None or b["type"] != "chain":
            return
        for member in b.get("members", []):
            if member == node:
                continue  # reported above
            if member == start:
                cycle = frozenset(trail)
                if cycle not in reported:
                    reported.add(cycle)
                    ctx.errors.add(f"backends.{start}.members", f"cycle: {' -> '.join((*trail, member))}")
            elif member not in trail:
                visit(start, member, (*trail, member))

    for name in backends:
        visit(name, name, (name,))
    chosen = out["top"].get("backend")
    if chosen is not None:
        if chosen not in raw:
            ctx.errors.add("backend", f"no backend named {chosen!r} (defined: {', '.join(sorted(raw)) or 'none'})")
    elif len(raw) > 1:
        used = {m for b in backends.values() if b["type"] == "chain" for m in b.get("members", [])}
        roots = [n for n in raw if n not in used]
        if len(roots) != 1:
            ctx.errors.add("backend", "several backends are defined: say which one the hooks use "
                                      f"(backend = \"NAME\", one of {', '.join(sorted(raw))})")
        else:
            out["top"]["backend"] = roots[0]
    elif len(raw) == 1:
        out["top"]["backend"] = next(iter(raw))
    wants_redis = any(
        isinstance(t, dict) and t.get("redis") is True
        for t in [out["cache"], out["throttle"], *[b.get("cache") for b in backends.values()]]
    )
    if wants_redis and out["redis"] is None:
        ctx.errors.add("redis", "a cache or throttle asks for redis = true but there is no [redis] table")
    for where, cache in [("cache", out["cache"]), *[(f"backends.{n}.cache", b.get("cache"))
                                                    for n, b in backends.items()]]:
        if isinstance(cache, dict) and cache.get("redis") and "key" not in cache:
            ctx.errors.add(f"{where}.key", "required with redis = true (the key shared by every process; give "
                                           "key_file or key_env)")
    if out["access"] is not None and not out["access"].get("allow") and not out["access"].get("deny"):
        ctx.errors.add("access", "give allow and/or deny rules")


# ---------------------------------------------------------------------------------------------------- building


_SECRET_KEYS = frozenset({"password", "bind_password", "key"})


def _kwargs(kind: str, checked: Mapping[str, Any]) -> dict[str, Any]:
    keys = {**_COMMON, **SCHEMA[kind]}
    out: dict[str, Any] = {}
    for k, v in checked.items():
        spec = keys.get(k)
        if spec is None or spec.arg == "":
            continue
        out[spec.arg or k] = v
    return out


def _build_one(name: str, checked: dict[str, Any], settings: dict[str, Any], built: dict[str, Backend],
               top: Mapping[str, Any]) -> Backend:
    if name in built:
        return built[name]
    kind = checked["type"]
    kw = _kwargs(kind, checked)
    kw.setdefault("label", name)
    kw.setdefault("on_error", top.get("on_error", "unknown"))
    kw.setdefault("log_level", top.get("log_level", "warning"))
    backend: Backend
    if kind == "chain":
        from .compose import chain

        members = [_build_one(m, settings["backends"][m], settings, built, top) for m in checked["members"]]
        backend = chain(*members, **kw)
    else:
        renamed = _SQL_TIMEOUT_KEYS[checked["driver"]] if kind == "sql" else {}
        with _at_key(f"backends.{name}", {**_COMMON, **SCHEMA[kind]}, {v: k for k, v in renamed.items()}):
            backend = _BUILDERS[kind](checked, kw)
    if checked.get("canonicalize"):
        from .compose import canonicalize

        backend = canonicalize(backend, **checked["canonicalize"], label=kw["label"], on_error=kw["on_error"],
                               log_level=kw["log_level"])
    if isinstance(checked.get("cache"), dict) and checked["cache"].get("enabled", True):
        with _at_key(f"backends.{name}.cache", _CACHE):
            backend = _cached(backend, checked["cache"], settings)
    built[name] = backend
    return backend


class _AtKey(ConfigError):
    """A constructor's refusal of a value, placed at the key path that gave it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@contextmanager
def _at_key(path: str, keys: Mapping[str, Key], renamed: Mapping[str, str] | None = None) -> Iterator[None]:
    """Turn a constructor's `OptionError` into an `_AtKey` at the key that was passed as that keyword.

    Args:
        path: the key path of the table (`backends.corp`).
        keys: the table's keys (their `arg` says which keyword each becomes).
        renamed: keyword -> key, for keywords a builder passes under another name (SQL's `statement_timeout`).
    """
    try:
        yield
    except OptionError as exc:
        key = (renamed or {}).get(exc.option)
        if key is None:
            key = next((k for k, spec in keys.items() if spec.arg != "" and (spec.arg or k) == exc.option), None)
        if key is None:
            raise
        raise _AtKey(f"{path}.{key}", exc.reason) from exc


def _redis_url(settings: Mapping[str, Any]) -> str:
    r = settings["redis"]
    u: str = r["url"]
    if "password" in r and "@" not in u.partition("://")[2]:
        from urllib.parse import quote

        scheme, _, rest = u.partition("://")
        u = f"{scheme}://:{quote(r['password'], safe='')}@{rest}"
    return u


def _cached(backend: Backend, cache: Mapping[str, Any], settings: Mapping[str, Any]) -> Backend:
    from .cache import cached

    kw = {k: v for k, v in cache.items() if k in ("ttl", "max_size", "key")}
    if cache.get("redis"):
        from ._redis import get_tier

        options = {k: v for k, v in settings["redis"].items() if k in ("prefix", "socket_timeout")}
        kw["redis"] = get_tier(_redis_url(settings), **options)
    return cached(backend, **kw)


def _throttled(backend: Backend, throttle: Mapping[str, Any], settings: Mapping[str, Any]) -> Backend:
    from . import throttle as throttle_mod

    kw = {k: v for k, v in throttle.items() if k not in ("enabled", "redis")}
    if throttle.get("redis"):
        kw["redis"] = _redis_url(settings)
    return throttle_mod.throttled(backend, **kw)


def _build_htpasswd(checked: Mapping[str, Any], kw: dict[str, Any]) -> Backend:
    from .backends import htpasswd

    return htpasswd.Backend(**kw)


def _build_dbm(checked: Mapping[str, Any], kw: dict[str, Any]) -> Backend:
    from .backends import dbm

    path = kw.pop("path")
    for k in ("type", "group_type"):
        if kw.get(k) == "default":
            kw[k] = "db"  # Apache's "default" DBM type on Debian
    return dbm.Backend(path, **kw)


# The keyword each driver's constructor takes for the `connect_timeout` and `timeout` keys.
_SQL_TIMEOUT_KEYS: dict[str, dict[str, str]] = {
    "sqlite": {"timeout": "timeout"},
    "postgresql": {"connect_timeout": "connect_timeout", "timeout": "statement_timeout"},
    "mysql": {"connect_timeout": "connect_timeout", "timeout": "read_timeout"},
}


def _build_sql(checked: Mapping[str, Any], kw: dict[str, Any]) -> Backend:
    from .backends import sql

    driver = checked["driver"]
    timeouts = {arg: checked[key] for key, arg in _SQL_TIMEOUT_KEYS[driver].items() if key in checked}
    if driver == "sqlite":
        return sql.sqlite(checked["database"], **timeouts, **kw)
    if driver == "postgresql":
        conninfo = checked.get("conninfo", "")
        parts = {"host": checked.get("host"), "port": checked.get("port"), "dbname": checked.get("database"),
                 "user": checked.get("user"), "password": checked.get("password")}
        extra = " ".join(f"{k}='{_pq_escape(str(v))}'" for k, v in parts.items() if v is not None)
        if extra and "://" in conninfo:
            raise ConfigError("give either a postgresql:// URL in conninfo or host/port/database/user/password")
        conninfo = f"{conninfo} {extra}".strip()
        return sql.postgresql(conninfo, **timeouts, **kw)
    conn = {k: checked[k] for k in ("host", "port", "user", "password", "database", "unix_socket") if k in checked}
    return sql.mysql(**conn, **timeouts, **kw)


def _pq_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _build_ldap(checked: Mapping[str, Any], kw: dict[str, Any]) -> Backend:
    from .backends import ldap

    return ldap.Backend(**kw)


_BUILDERS: dict[str, Callable[[Mapping[str, Any], dict[str, Any]], Backend]] = {
    "htpasswd": _build_htpasswd,
    "htdigest": _build_htpasswd,
    "htgroup": _build_htpasswd,
    "dbm": _build_dbm,
    "sql": _build_sql,
    "ldap": _build_ldap,
}


def build(settings: dict[str, Any], *, source: str = "<config>") -> Config:
    """Build the backends of checked ``settings`` (from `parse`).

    Args:
        settings: what `parse` returned.
        source: name of the file, for the error message.

    Returns:
        The configuration, its backends built (nothing is opened until the first request).

    Raises:
        ConfigError: listing every backend that refused its options: a value a constructor refuses is reported at
            the key path it came from (`backends.corp.max_depth: must be at most 20, not 99`), other refusals at
            the backend's table.
    """
    errors = Errors()
    built: dict[str, Backend] = {}
    top = settings["top"]
    for name in settings["backends"]:
        try:
            _build_one(name, settings["backends"][name], settings, built, top)
        except _AtKey as exc:
            errors.add(exc.path, exc.reason)
        except (ValueError, TypeError) as exc:  # ConfigError is a ValueError
            errors.add(f"backends.{name}", str(exc))
        except ImportError as exc:
            errors.add(f"backends.{name}.type", f"this backend needs a package that is not installed: {exc}")
    errors.raise_if_any(source)
    backend = built[top["backend"]]
    try:
        if settings["cache"] is not None and settings["cache"].get("enabled", True):
            with _at_key("cache", _CACHE):
                backend = _cached(backend, settings["cache"], settings)
        if settings["throttle"] is not None and settings["throttle"].get("enabled", True):
            with _at_key("throttle", _THROTTLE):
                backend = _throttled(backend, settings["throttle"], settings)
    except _AtKey as exc:
        errors.add(exc.path, exc.reason)
    except (ValueError, TypeError) as exc:
        errors.add("cache" if "cache" in str(exc).lower() else "throttle", str(exc))
    except ImportError as exc:
        errors.add("throttle", f"not available: {exc}")
    if settings["access"] is not None:
        from .hostaccess import HostRules

        access = settings["access"]
        default = {"allow": True, "deny": False, "none": None}[access.get("default", "none")]
        try:
            backend.access = HostRules(access.get("allow", ()), access.get("deny", ()), default)
        except ValueError as exc:
            errors.add("access", str(exc))
    errors.raise_if_any(source)
    return Config(path=source, backend=backend, backends=built, realm=top.get("realm"),
                  settings=_redact(settings, _SECRET_KEYS))


def load(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> Config:
    """Read, check and build a configuration file.

    The same file (same absolute path and same content) loaded again in this process returns the same
    `Config`, with the same backends, pools and caches: mod_wsgi re-imports a changed auth script without
    cleaning up, and must not duplicate them.

    Args:
        path: the TOML file.
        environ: environment for ``*_env`` secrets (default: ``os.environ``).

    Returns:
        The loaded configuration; ``.hooks()`` gives the four mod_wsgi callables.

    Raises:
        ConfigError: the file cannot be read, is not valid TOML, or has errors (all listed, with key paths).
    """
    p = Path(path).expanduser().absolute()
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the configuration file: {exc.strerror or exc} "
                          f"(process uid {os.getuid()})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    env = os.environ if environ is None else environ
    secret_env = sorted((k, env.get(k, "")) for k in _env_names(data))
    key = ("wsgiauth.config", str(p), hashlib.sha256(raw).hexdigest(),
           hashlib.sha256(repr(secret_env).encode()).hexdigest())

    # Registered process-wide: building registers pools too, under the same (re-entrant) lock, in the same thread.
    def factory() -> Config:
        return build(parse(data, base=p.parent, source=str(p), environ=env), source=str(p))

    config: Config = shared(key, factory)
    return config


def _env_names(data: Any) -> list[str]:
    """Names of the environment variables a document refers to (``*_env`` keys), for the registry key."""
    names: list[str] = []
    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(k, str) and k.endswith("_env") and isinstance(v, str):
                names.append(v)
            else:
                names.extend(_env_names(v))
    return names
