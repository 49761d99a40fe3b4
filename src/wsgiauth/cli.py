"""The ``wsgiauth`` command: check a login, manage users, hash passwords, print Apache configuration, diagnose a
configuration as Apache's user, and benchmark the configured backends.

Exit codes (every subcommand):

====  ============================================================================================
0     success; ``check``: access granted; ``doctor``: no problem found
1     ``check``: denied or unknown user; ``doctor``: problems found; ``user``: no such user / already exists
2     usage error, or a configuration error (bad file, bad option)
3     a backend failed (file unreadable, server unreachable)
130   interrupted (Ctrl-C)
====  ============================================================================================

Passwords are read from the terminal (without echo) or, when standard input is not a terminal, from its first line.
They are never taken from the command line, where other users could see them in the process list.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from . import __version__

if TYPE_CHECKING:
    from .adapter import Backend

__all__ = ["EXIT_BACKEND", "EXIT_DENIED", "EXIT_OK", "EXIT_USAGE", "main"]

EXIT_OK = 0
EXIT_DENIED = 1
EXIT_USAGE = 2
EXIT_BACKEND = 3
EXIT_INTERRUPTED = 130

_APACHE_SCHEMES = ("bcrypt", "apr1", "sha256_crypt", "sha512_crypt", "sha1", "md5_crypt", "des")


class CliError(Exception):
    """An error to report in one line and exit with ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------------- helpers


def read_password(prompt: str = "Password: ", *, confirm: bool = False, stdin: TextIO | None = None) -> bytes:
    """A password from the terminal (no echo; asked twice with ``confirm``) or the first line of standard input.

    Raises:
        CliError: empty password, mismatch, or end of input.
    """
    stream = stdin or sys.stdin
    if stream.isatty():
        first = getpass.getpass(prompt)
        if confirm and getpass.getpass("Again: ") != first:
            raise CliError("the two passwords differ", EXIT_USAGE)
        text = first
    else:
        line = stream.buffer.readline() if hasattr(stream, "buffer") else stream.readline().encode("utf-8")
        if not line:
            raise CliError("no password on standard input", EXIT_USAGE)
        raw = line.rstrip(b"\r\n") if isinstance(line, bytes) else line
        if not raw:
            raise CliError("empty password", EXIT_USAGE)
        return raw
    if not text:
        raise CliError("empty password", EXIT_USAGE)
    return text.encode("utf-8")


def _load(path: str) -> Any:
    from .config import load
    from .exceptions import ConfigError

    try:
        return load(path)
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def _text(raw: bytes | None) -> str:
    return "" if raw is None else raw.decode("utf-8", "backslashreplace")


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if getattr(args, "cost", None) is not None:
        params["cost"] = args.cost
    if getattr(args, "rounds", None) is not None:
        params["rounds"] = args.rounds
    return params


# ---------------------------------------------------------------------------------------------------- check


def cmd_check(args: argparse.Namespace) -> int:
    from .adapter import Outcome
    from .exceptions import BackendError

    cfg = _load(args.config)
    backend = cfg.backend
    user = args.user.encode("utf-8")
    password = read_password(f"Password for {args.user}: ")
    start = time.perf_counter()
    try:
        decision = backend.authenticate(user, password, args.client)
        groups = decision.groups
        if decision.outcome is Outcome.GRANTED and groups is None:
            groups = backend.groups(decision.name or user)
    except Exception as exc:  # noqa: BLE001 - report any failure of the backend in one line
        elapsed = (time.perf_counter() - start) * 1000
        reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, BackendError) else type(exc).__name__
        print(f"decision:  error ({reason})")
        print(f"time:      {elapsed:.1f} ms")
        return EXIT_BACKEND
    elapsed = (time.perf_counter() - start) * 1000
    from .adapter import group_names

    print(f"decision:  {decision.outcome.value}" + (f" ({decision.reason})" if decision.reason else ""))
    print(f"user:      {_text(decision.name or user)}"
          + (f" (typed: {args.user})" if decision.name and decision.name != user else ""))
    if decision.outcome is Outcome.GRANTED:
        shown = _shown_groups(backend, decision.name or user, group_names(groups))
        print(f"groups:    {', '.join(sorted(shown, key=str.lower)) or '(none)'}")
    print(f"backend:   {decision.backend or backend.label}")
    print(f"time:      {elapsed:.1f} ms")
    return EXIT_OK if decision.outcome is Outcome.GRANTED else EXIT_DENIED


# ---------------------------------------------------------------------------------------------------- hash


def cmd_hash(args: argparse.Namespace) -> int:
    from . import hashes

    if args.scheme == "ha1":
        if not args.user or not args.realm:
            raise CliError("--scheme ha1 needs --user and --realm")
        password = read_password(confirm=sys.stdin.isatty())
        print(hashes.ha1(args.user.encode("utf-8"), args.realm.encode("utf-8"), password))
        return EXIT_OK
    password = read_password(confirm=sys.stdin.isatty())
    try:
        print(hashes.hash_password(password, args.scheme, **_params(args)))
    except (TypeError, ValueError) as exc:
        raise CliError(f"cannot hash with {args.scheme}: {exc}") from None
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------- user


def _store(args: argparse.Namespace) -> tuple[str, Any]:
    from ._cli_store import FileStore, from_config, sql_store

    if args.config:
        from .config import parse
        from .exceptions import ConfigError

        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib

        path = os.path.abspath(args.config)
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
            settings = parse(data, base=os.path.dirname(path), source=path)
            kind, d = from_config(settings, args.backend)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CliError(f"{path}: {exc}") from None
        except (ConfigError, ValueError) as exc:
            raise CliError(str(exc)) from None
        if kind == "sql":
            try:
                return "sql", sql_store(d["target"], d["dialect"])
            except Exception as exc:  # noqa: BLE001 - any driver error: report it in one line
                raise CliError(f"cannot open the database of {path}: {exc}", EXIT_BACKEND) from None
        if kind == "dbm":
            args.dbm, args.dbm_type = d["path"], args.dbm_type or d["type"]
            return "dbm", d["path"]
        # a file backend: htpasswd unless --htdigest/--htgroup-like intent is given by --kind
        which = args.file or ("users" if d["users"] else "digest" if d["digest"] else "groups")
        target = d[which]
        if target is None:
            raise CliError(f"that backend has no {which} file")
        if which == "digest":
            realm = args.realm or d["realm"]
            if not realm:
                raise CliError("a Digest file needs --realm (or realm = ... in the configuration)")
            args.htdigest = target
            return "htdigest", FileStore("htdigest", target, realm.encode("utf-8"))
        if which == "groups":
            args.htgroup = target
            return "htgroup", FileStore("htgroup", target)
        args.htpasswd = target
        return "htpasswd", FileStore("htpasswd", target)
    if args.htpasswd:
        return "htpasswd", FileStore("htpasswd", args.htpasswd)
    if args.htdigest:
        if not args.realm:
            raise CliError("--htdigest needs --realm (the AuthName)")
        return "htdigest", FileStore("htdigest", args.htdigest, args.realm.encode("utf-8"))
    if args.htgroup:
        return "htgroup", FileStore("htgroup", args.htgroup)
    if args.dbm:
        return "dbm", args.dbm
    if args.sql:
        try:
            return "sql", sql_store(args.sql)
        except Exception as exc:  # noqa: BLE001 - any driver error: report it in one line
            raise CliError(f"cannot open {args.sql}: {exc}", EXIT_BACKEND) from None
    raise CliError("say which store: --htpasswd FILE, --htdigest FILE --realm R, --htgroup FILE, --dbm FILE or "
                   "--sql URL")


def cmd_user(args: argparse.Namespace) -> int:
    from ._cli_store import StoreMissingUser, StoreUserExists
    from .exceptions import StoreError

    kind, store = _store(args)
    action = args.action
    user = args.user.encode("utf-8") if args.user else b""
    if action != "list" and not user:
        raise CliError(f"user {action} needs a USER")
    groups = [g.encode("utf-8") for g in (getattr(args, "group", None) or [])]
    scheme = getattr(args, "scheme", None) or ("argon2" if kind == "sql" else "bcrypt")
    try:
        if kind == "dbm":
            return _user_dbm(args, action, user, scheme, groups)
        if action == "list":
            for name, detail in store.users():
                print(f"{_text(name)}\t{detail}")
            return EXIT_OK
        if action == "delete":
            store.delete(user)
            where = args.htpasswd or args.htdigest or args.htgroup or args.sql or args.config
            print(f"deleted {args.user} from {where}")
            return EXIT_OK
        if kind == "htgroup":
            if action == "passwd":
                raise CliError("an htgroup file holds no passwords: use add --group G")
            if not groups:
                raise CliError("user add --htgroup needs --group G (repeatable)")
            store.set_groups(user, groups)
            print(f"{args.user} is in {', '.join(args.group)}")
            return EXIT_OK
        password = read_password(f"New password for {args.user}: ", confirm=sys.stdin.isatty())
        extra: dict[str, Any] = {}
        if kind == "sql":
            extra["groups"] = groups
            if args.realm:
                extra["realm"] = args.realm.encode("utf-8")
        store.set(user, password, scheme=scheme, must_exist=(action == "passwd"), **_params(args), **extra)
        what = "HA1 (MD5)" if kind == "htdigest" else scheme
        print(f"{'added' if action == 'add' else 'updated'} {args.user} ({what})")
        return EXIT_OK
    except StoreUserExists:
        print(f"wsgiauth: user {args.user} already exists (use `user passwd`)", file=sys.stderr)
        return EXIT_DENIED
    except StoreMissingUser:
        print(f"wsgiauth: no user {args.user}", file=sys.stderr)
        return EXIT_DENIED
    except StoreError as exc:
        raise CliError(str(exc), EXIT_BACKEND) from None
    except (TypeError, ValueError) as exc:  # TypeError: a parameter the scheme does not take (--cost for argon2)
        raise CliError(str(exc)) from None
    except Exception as exc:
        if kind != "sql":
            raise
        # a driver's error (lock wait timeout, lost connection...): one line, no traceback
        raise CliError(f"the database refused the change: {type(exc).__name__}: {exc}", EXIT_BACKEND) from None
    finally:
        if kind == "sql":
            store.close()


def _shown_groups(backend: Backend, user: bytes, groups: list[str]) -> list[str]:
    """The groups to print: never the user's stored hash.

    mod_authz_dbm takes a combined users+groups value with no ``:`` as a group list, so such a user's "group" is the
    password hash itself. wsgiauth keeps that rule for Apache parity, but never prints the hash.
    """
    try:
        record = backend.lookup(user)
    except Exception:  # noqa: BLE001 - stores that cannot look up a hash (LDAP) hand out no hash as a group
        record = None
    if record is None:
        return groups
    stored = record.hash.encode("latin-1", "replace")
    hidden = [g for g in groups if g.encode("latin-1") == stored]
    return [g for g in groups if g not in hidden] + (["(the stored hash, not shown)"] if hidden else [])


def _user_dbm(args: argparse.Namespace, action: str, user: bytes, scheme: str, groups: list[bytes]) -> int:
    from .backends import dbm

    path, kind = args.dbm, args.dbm_type or "auto"
    if action == "list":
        for name in dbm.list_users(path, type=kind):
            entry = dbm.get_entry(path, name, type=kind)
            detail = ""
            if entry is not None and entry.has_fields:  # a value without ':' is only a hash: never print it
                detail = ", ".join(_text(g) for g in entry.groups)
            print(f"{_text(name)}\t{detail}")
        return EXIT_OK
    if action == "delete":
        if not dbm.delete_user(path, user, type=kind):
            print(f"wsgiauth: no user {args.user}", file=sys.stderr)
            return EXIT_DENIED
        print(f"deleted {args.user} from {path}")
        return EXIT_OK
    # A first look, to answer before asking for a password; the change itself checks again under the lock.
    exists = _dbm_exists(path) and dbm.get_entry(path, user, type=kind) is not None
    if action == "add" and exists:
        print(f"wsgiauth: user {args.user} already exists (use `user passwd`)", file=sys.stderr)
        return EXIT_DENIED
    if action == "passwd" and not exists:
        print(f"wsgiauth: no user {args.user}", file=sys.stderr)
        return EXIT_DENIED
    password = read_password(f"New password for {args.user}: ", confirm=sys.stdin.isatty())
    try:
        if action == "add":
            dbm.add_user(path, user, password, type=kind, scheme=scheme, groups=groups or None, **_params(args))
        else:
            dbm.set_password(path, user, password, type=kind, scheme=scheme, groups=groups or None,
                             **_params(args))
    except dbm.UserExistsError:
        print(f"wsgiauth: user {args.user} already exists (use `user passwd`)", file=sys.stderr)
        return EXIT_DENIED
    except KeyError:
        print(f"wsgiauth: no user {args.user}", file=sys.stderr)
        return EXIT_DENIED
    print(f"{'added' if action == 'add' else 'updated'} {args.user} ({scheme})")
    return EXIT_OK


def _dbm_exists(path: str) -> bool:
    return any(os.path.exists(path + ext) for ext in ("", ".pag", ".db", ".dir"))


# ---------------------------------------------------------------------------------------------------- apache-config


def cmd_apache_config(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    from .middleware import lua_script_path

    config_path = os.path.abspath(args.config)
    script = args.script
    realm = args.realm or cfg.realm or "Restricted"
    digest = args.digest
    has_access = cfg.backend.access is not None
    print("# ---- auth.wsgi (save as " + script + ", readable by Apache's user) ----")
    print("from wsgiauth import load\n")
    print(f'check_password, get_realm_hash, groups_for_user, allow_access = load("{config_path}").hooks()')
    print()
    print(f"# ---- Apache configuration (inside the VirtualHost serving {args.location}) ----")
    print(f'<Location "{args.location}">')
    print(f"    AuthType {'Digest' if digest else 'Basic'}")
    print(f'    AuthName "{realm}"')
    if digest:
        print("    AuthDigestProvider wsgi")
    else:
        print("    AuthBasicProvider wsgi")
    print(f"    WSGIAuthUserScript {script} application-group=%{{GLOBAL}}")
    if args.group:
        print(f"    WSGIAuthGroupScript {script} application-group=%{{GLOBAL}}")
        print(f"    Require wsgi-group {' '.join(args.group)}")
    else:
        print("    Require valid-user")
    if has_access:
        print(f"    WSGIAccessScript {script} application-group=%{{GLOBAL}}")
    print("</Location>")
    print()
    print("# ---- the same with mod_wsgi-express ----")
    opts = [f"--auth-user-script {script}", f"--auth-type {'Digest' if digest else 'Basic'}"]
    if args.group:
        opts.append(f"--auth-group-script {script}")
        opts += [f"--auth-group {g}" for g in args.group]
    if has_access:
        opts.append(f"--host-access-script {script}")
    print("mod_wsgi-express start-server app.wsgi \\\n    " + " \\\n    ".join(opts))
    print()
    print("# ---- only for an application using wsgiauth.middleware with emit_headers=True: log its user as %u ----")
    print("# LoadModule lua_module /usr/lib/apache2/modules/mod_lua.so   (a2enmod lua headers)")
    print(f'# <Location "{args.location}">')
    print("#     Header note X-Remote-User wsgiauth-user")
    print("#     Header note X-Auth-Type wsgiauth-auth-type")
    print("#     Header unset X-Remote-User")
    print("#     Header unset X-Auth-Type")
    print(f"#     LuaHookLog {lua_script_path()} reflect_user")
    print("# </Location>")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------- doctor


def cmd_doctor(args: argparse.Namespace) -> int:
    from ._cli_doctor import doctor

    return doctor(args)


# ---------------------------------------------------------------------------------------------------- bench


def cmd_bench(args: argparse.Namespace) -> int:
    from ._cli_bench import bench

    return bench(args)


# ---------------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``wsgiauth`` command."""
    from . import hashes

    creatable = getattr(hashes, "CREATABLE_SCHEMES", None) or [s for s in hashes.SCHEMES if s != "plaintext"]
    schemes = sorted(creatable)
    p = argparse.ArgumentParser(
        prog="wsgiauth",
        description="Credential backends for Apache mod_wsgi: check logins, manage users, diagnose a configuration.",
        epilog="exit codes: 0 ok/granted, 1 denied/unknown or problems found, 2 usage or configuration error, "
               "3 backend failure, 130 interrupted. Passwords are read from the terminal or standard input, "
               "never from arguments.",
    )
    p.add_argument("--version", action="version", version=f"wsgiauth {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    c = sub.add_parser("check", help="check a user's password against a configuration",
                       description="Ask for USER's password (or read it from standard input) and print the "
                                   "decision, the canonical name, the groups, which backend answered and the time.")
    c.add_argument("config", metavar="CONFIG", help="the TOML configuration file")
    c.add_argument("user", metavar="USER", help="the user name, as typed at the login prompt")
    c.add_argument("--client", metavar="ADDR", default="127.0.0.1", help="client address for throttling rules")
    c.set_defaults(func=cmd_check)

    stores = argparse.ArgumentParser(add_help=False)
    where = stores.add_argument_group("store (exactly one)")
    store = where.add_mutually_exclusive_group(required=True)
    store.add_argument("--htpasswd", metavar="FILE", help="an htpasswd file (user:hash)")
    store.add_argument("--htdigest", metavar="FILE", help="an htdigest file (user:realm:HA1); needs --realm")
    store.add_argument("--htgroup", metavar="FILE", help="an htgroup file (group: members)")
    store.add_argument("--dbm", metavar="FILE", help="a DBM database as AuthDBMUserFile names it")
    store.add_argument("--sql", metavar="URL", help="wsgiauth's SQL schema: sqlite:///relative.db, "
                                                    "sqlite:////absolute/path.db, postgresql://..., mysql://... (a "
                                                    "password in the URL is visible in ps: prefer --config)")
    store.add_argument("--config", metavar="CONFIG", help="the store of a backend of this configuration file "
                                                          "(its paths, connection settings and secrets)")
    stores.add_argument("--backend", metavar="NAME", help="with --config: which backend (default: the only one)")
    stores.add_argument("--file", choices=("users", "digest", "groups"),
                        help="with --config and a file backend: which of its files (default: users)")
    stores.add_argument("--realm", help="the realm (AuthName) for --htdigest, or to store an HA1 in SQL")
    stores.add_argument("--dbm-type", choices=("auto", "db", "gdbm", "sdbm"),
                        help="DBM format (default: detect; a new database is db, as Apache's default on Debian)")
    hashing = argparse.ArgumentParser(add_help=False)
    hashing.add_argument("--scheme", choices=schemes, metavar="SCHEME",
                         help="hash scheme: " + ", ".join(schemes) + " (default: bcrypt; argon2 for --sql)")
    hashing.add_argument("--cost", type=int, help="bcrypt/yescrypt cost")
    hashing.add_argument("--rounds", type=int, help="SHA-crypt rounds")
    hashing.add_argument("--group", action="append", metavar="G", help="also put the user in group G (repeatable)")

    u = sub.add_parser("user", help="add, change, delete or list users in a store",
                       description="Manage users in an htpasswd, htdigest, htgroup, DBM or SQL store. Passwords "
                                   "are hashed with bcrypt for stores Apache reads itself (files, DBM) and argon2id "
                                   "for SQL, unless --scheme says otherwise. The password is asked twice on a "
                                   "terminal, or read from the first line of standard input.")
    actions = u.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text, parents in (
        ("add", "add a user (asks for the password)", [stores, hashing]),
        ("passwd", "change a user's password", [stores, hashing]),
        ("delete", "delete a user", [stores]),
    ):
        ap = actions.add_parser(name, help=text, description=text, parents=parents)
        ap.add_argument("user", metavar="USER", help="the user name")
        ap.set_defaults(func=cmd_user)
    lp = actions.add_parser("list", help="list the users (and their hash scheme or groups)",
                            description="List the users of a store, with their hash scheme, realm or groups.",
                            parents=[stores])
    lp.set_defaults(func=cmd_user, user=None)

    h = sub.add_parser("hash", help="print the hash of a password",
                       description="Read a password and print its hash in the chosen format, ready to paste into a "
                                   "store. --scheme ha1 prints a Digest HA1 (needs --user and --realm).")
    h.add_argument("--scheme", choices=[*schemes, "ha1"], default="bcrypt", metavar="SCHEME",
                   help="hash format: " + ", ".join(schemes) + ", ha1 (default: bcrypt)")
    h.add_argument("--cost", type=int, help="bcrypt/yescrypt cost")
    h.add_argument("--rounds", type=int, help="SHA-crypt rounds")
    h.add_argument("--user", help="user name (ha1)")
    h.add_argument("--realm", help="realm (ha1)")
    h.set_defaults(func=cmd_hash)

    a = sub.add_parser("apache-config", help="print the Apache directives and auth.wsgi for a configuration",
                       description="Print the auth.wsgi to drop in, the Apache directives and the equivalent "
                                   "mod_wsgi-express options.")
    a.add_argument("config", metavar="CONFIG", help="the TOML configuration file")
    a.add_argument("--script", default="/etc/wsgiauth/auth.wsgi", help="where auth.wsgi will be")
    a.add_argument("--location", default="/", help="the URL path to protect")
    a.add_argument("--realm", help="AuthName (default: the configuration's realm)")
    a.add_argument("--digest", action="store_true", help="HTTP Digest instead of Basic")
    a.add_argument("--group", action="append", metavar="G", help="require membership of group G")
    a.set_defaults(func=cmd_apache_config)

    d = sub.add_parser("doctor", help="check a configuration as Apache's user and say what to fix",
                       description="Load CONFIG as Apache's user (www-data, via runuser when run as root) and check "
                                   "that files are readable, servers reachable, TLS certificates valid and stored "
                                   "hashes recognised.")
    d.add_argument("config", metavar="CONFIG", help="the TOML configuration file")
    d.add_argument("--as-user", default="www-data", metavar="USER", help="the account Apache runs as")
    d.add_argument("--no-switch", action="store_true", help="check as the current user")
    d.set_defaults(func=cmd_doctor)

    b = sub.add_parser("bench", help="measure latency and throughput of the configured backend",
                       description="Check USER's password repeatedly from 1..N threads, with the cache off and "
                                   "on, and print p50/p99 latency and checks per second.")
    b.add_argument("config", metavar="CONFIG", help="the TOML configuration file")
    b.add_argument("--user", required=True, help="the user to log in as")
    b.add_argument("--threads", default="1,2,4,8", help="comma-separated thread counts (default 1,2,4,8)")
    b.add_argument("--duration", type=float, default=2.0, help="seconds per measurement (default 2)")
    b.add_argument("--cache", choices=("both", "on", "off"), default="both", help="measure with the cache on, off "
                                                                                   "or both (default)")
    b.add_argument("--png", metavar="FILE", help="also draw a chart (needs matplotlib)")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the ``wsgiauth`` command."""
    sys.exit(run(argv))


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command and return its exit code (used by `main` and the tests)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except CliError as exc:
        print(f"wsgiauth: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    main()
