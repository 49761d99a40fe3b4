"""``wsgiauth doctor``: check a configuration the way Apache's processes will see it, and say what to fix."""

from __future__ import annotations

import argparse
import os
import pwd
import secrets
import socket
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_WEAK = {"sha1": "unsalted SHA-1", "des": "DES crypt (8 characters significant)", "plaintext": "clear text",
         "md5_crypt": "MD5-crypt", "bsdi_crypt": "BSDi crypt"}


class Report:
    """Collects findings and prints them as they come."""

    def __init__(self) -> None:
        self.problems = 0
        self.warnings = 0

    def ok(self, text: str) -> None:
        print(f"ok    {text}")

    def warn(self, text: str, fix: str = "") -> None:
        self.warnings += 1
        print(f"WARN  {text}" + (f"\n      fix: {fix}" if fix else ""))

    def fail(self, text: str, fix: str = "") -> None:
        self.problems += 1
        print(f"FAIL  {text}" + (f"\n      fix: {fix}" if fix else ""))


def _whoami() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def doctor(args: argparse.Namespace) -> int:
    """Run the checks; re-run as ``args.as_user`` first when root."""
    me = _whoami()
    if not args.no_switch and os.geteuid() == 0 and args.as_user != me:
        try:
            pwd.getpwnam(args.as_user)
        except KeyError:
            print(f"wsgiauth: no user {args.as_user!r} on this system (use --as-user)", file=sys.stderr)
            return 2
        cmd = ["runuser", "-u", args.as_user, "--", sys.executable, "-m", "wsgiauth.cli", "doctor",
               os.path.abspath(args.config), "--no-switch", "--as-user", args.as_user]
        sys.stdout.flush()
        return subprocess.run(cmd, cwd="/", check=False).returncode
    report = Report()
    print(f"wsgiauth doctor: {os.path.abspath(args.config)} as {me} (uid {os.getuid()})")
    _check_native(report)
    _check(args.config, report)
    print(f"\n{report.problems} problem{'s' if report.problems != 1 else ''}, "
          f"{report.warnings} warning{'s' if report.warnings != 1 else ''}")
    return 1 if report.problems else 0


def _check_native(report: Report) -> None:
    """Which native parts this installation has: the compiled modules and the system libraries opened at run time.

    A missing compiled hash core is a warning (the pure-Python fallback works, slower); a missing library is a note
    (it matters only to a store that needs it, and that store's own check then fails with the package to install).
    """
    from . import _compiled

    for part in _compiled.parts():
        if part.available:
            report.ok(f"native: {part.name}: {part.detail}")
        elif part.name.startswith("compiled hash core") and not _compiled.DISABLED:
            report.warn(f"native: {part.name}: {part.detail}",
                        "install the wheel, or gcc and python3-dev before installing from source")
        else:
            print(f"note  native: {part.name}: {part.detail}")


def _readable(path: str, report: Report, what: str) -> bool:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except PermissionError:
        report.fail(f"{what} {path}: not readable by uid {os.getuid()} ({_whoami()})",
                    f"chgrp {_group_hint()} {path} && chmod g+r {path} (and o+x on its directories)")
        return False
    except FileNotFoundError:
        report.fail(f"{what} {path}: does not exist", "create it, or correct the path in the configuration")
        return False
    except OSError as exc:
        report.fail(f"{what} {path}: {exc.strerror}")
        return False
    report.ok(f"{what} {path} is readable")
    return True


def _not_public(path: str, report: Report, what: str, holds: str = "password hashes") -> None:
    """Warn when every local user can read ``path`` (fail when every one can write it)."""
    from ._safefile import world_access

    try:
        readable, writable = world_access(path)
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return
    if writable:
        report.fail(f"{what} {path} is writable by every local user (mode {mode:04o}): anyone on this machine can "
                    "give themselves access", f"chmod o-rwx {path}")
    elif readable:
        report.warn(f"{what} {path} is readable by every local user (mode {mode:04o}): anyone on this machine can "
                    f"copy its {holds}", f"chmod o-rwx {path}")


def _group_hint() -> str:
    try:
        import grp

        return grp.getgrgid(os.getgid()).gr_name
    except (KeyError, ImportError):
        return str(os.getgid())


def _check(config: str, report: Report) -> None:
    from .config import _SECRET_KEYS, build, parse
    from .exceptions import ConfigError

    path = os.path.abspath(config)
    if not _readable(path, report, "configuration"):
        return
    st = os.stat(path)
    if st.st_mode & stat.S_IWOTH:
        report.fail(f"{path} is writable by everyone: anyone could point Apache at their own password file",
                    f"chmod o-w {path}")
    import tomllib

    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        settings = parse(data, base=Path(path).parent, source=path)
    except (ConfigError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        for line in str(exc).splitlines():
            report.fail(line.strip())
        return
    report.ok("configuration is valid")
    inline = [f"backends.{n}.{k}" for n, b in data.get("backends", {}).items() if isinstance(b, dict)
              for k in b if k in _SECRET_KEYS]
    inline += [f"{t}.{k}" for t in ("redis", "cache") if isinstance(data.get(t), dict) for k in data[t]
               if k in _SECRET_KEYS]
    if inline and st.st_mode & stat.S_IROTH:
        report.warn(f"secret{'s' if len(inline) > 1 else ''} written in the file ({', '.join(inline)}) and the file "
                    "is readable by everyone", f"chmod o-r {path}, or use KEY_file / KEY_env instead")
    for name, b in settings["backends"].items():
        _check_backend(name, b, report)
    if settings["redis"] is not None:
        _check_redis(settings["redis"]["url"], report)
    try:
        cfg = build(settings, source=path)
    except ConfigError as exc:
        for line in str(exc).splitlines()[1:]:
            report.fail(line.strip())
        return
    _probe(cfg, report)


def _check_backend(name: str, b: dict[str, Any], report: Report) -> None:
    kind = b["type"]
    where = f"backends.{name}"
    if kind in ("htpasswd", "htdigest", "htgroup"):
        for key, what in (("users", "htpasswd file"), ("digest", "htdigest file"), ("groups", "htgroup file")):
            if key not in b:
                continue
            if _readable(b[key], report, f"{where}: {what}"):
                _not_public(b[key], report, f"{where}: {what}",
                            "group memberships" if key == "groups" else "password hashes")
                if key == "users":
                    _scan_htpasswd(b[key], where, report)
            if key == "digest":
                _scan_htdigest(b[key], where, report)
    elif kind == "dbm":
        p = b["path"]
        candidates = [p, p + ".db", p + ".pag"]
        found = [c for c in candidates if os.path.exists(c)]
        if not found:
            report.fail(f"{where}: DBM database {p} does not exist", "create it with `wsgiauth user add --dbm` or "
                                                                       "htdbm -c")
        else:
            if found[0].endswith(".pag") and os.path.exists(p + ".dir"):
                found.append(p + ".dir")
            for c in found:
                if _readable(c, report, f"{where}: DBM file"):
                    _not_public(c, report, f"{where}: DBM file")
            _scan_dbm(p, b.get("dbm_type", "auto"), where, report)
    elif kind == "sql":
        driver = b["driver"]
        if driver == "sqlite":
            if _readable(b["database"], report, f"{where}: SQLite database"):
                _not_public(b["database"], report, f"{where}: SQLite database")
        else:
            host, port = _sql_address(b)
            if host.startswith("/"):
                report.ok(f"{where}: connects through the socket {host}")
            else:
                _reachable(f"{where} ({driver})", host, port, report)
    elif kind == "ldap":
        _check_ldap(where, b, report)


def _check_redis(url: str, report: Report) -> None:
    from urllib.parse import parse_qs

    u = urlsplit(url)
    if u.scheme == "unix":
        return
    query = {k: v[-1] for k, v in parse_qs(u.query).items()}
    # redis-py reads these from the URL: ssl_cert_reqs=none|optional turns the certificate check off
    reqs = query.get("ssl_cert_reqs", "required").lower()
    setting = f"ssl_cert_reqs={reqs}"
    verify = reqs not in ("none", "optional", "cert_none", "cert_optional")
    if verify and query.get("ssl_check_hostname", "true").lower() in ("false", "0", "no", "n", "off"):
        verify, setting = False, "ssl_check_hostname=false"
    fix = ("give the CA in the URL instead: rediss://...?ssl_ca_certs=/path/to/ca.pem (the CA that signed the "
           "server's certificate), without ssl_cert_reqs or ssl_check_hostname")
    _reachable("redis", u.hostname or "127.0.0.1", u.port or 6379, report, tls=u.scheme == "rediss",
               ca_file=query.get("ssl_ca_certs"), verify=verify, unverified=(setting, fix))


def _sql_address(b: dict[str, Any]) -> tuple[str, int]:
    default = 5432 if b["driver"] == "postgresql" else 3306
    host, port = b.get("host", "localhost"), b.get("port", default)
    info = b.get("conninfo", "")
    if "://" in info:
        u = urlsplit(info)
        return u.hostname or host, u.port or port
    for word in info.split():
        k, _, v = word.partition("=")
        if k == "host":
            host = v.strip("'")
        elif k == "port" and v.strip("'").isdigit():
            port = int(v.strip("'"))
    if b.get("unix_socket"):
        host = b["unix_socket"]
    return host, int(port)


def _check_ldap(where: str, b: dict[str, Any], report: Report) -> None:
    from ._ldapurl import parse_ldap_url

    if "url" in b:
        parsed = parse_ldap_url(b["url"])
        hosts = [(h.host, h.port) for h in parsed.hosts]
        tls = parsed.use_ssl
    else:
        hosts = []
        tls = bool(b.get("use_ssl"))
        for h in b.get("hosts", []):
            host, _, port = h.rpartition(":") if h.count(":") == 1 else (h, "", "")
            hosts.append((host or h, int(port) if port.isdigit() else (636 if tls else 389)))
    verify = b.get("verify", True)
    unverified = f"set ca_file = \"/path/to/ca.pem\" in {where} (the CA that signed the server's certificate) " \
                 "and remove verify = false"
    for host, port in hosts:
        _reachable(f"{where} (ldap)", host, port, report, tls=tls, ca_file=b.get("ca_file"), verify=verify,
                   unverified=("verify = false", unverified))
    if b.get("starttls") and not verify:
        report.warn(f"{where}: STARTTLS without checking the server's certificate (verify = false): a machine in "
                    "the middle can pose as the directory and collect every password", unverified)
    if not tls and not b.get("starttls"):
        host_list = [h for h, _ in hosts]
        if any(h not in ("127.0.0.1", "localhost", "::1") for h in host_list):
            report.warn(f"{where}: passwords travel in clear text to {', '.join(host_list)}",
                        "use ldaps:// or starttls = true")


def _reachable(what: str, host: str, port: int, report: Report, *, tls: bool = False,
               ca_file: str | None = None, verify: bool = True, unverified: tuple[str, str] = ("", "")) -> None:
    """Connect (and, with ``tls``, make a TLS handshake); ``unverified`` is ``(setting, fix)``: what turned the
    certificate check off and how to turn it on, for the warning given when ``verify`` is false."""
    start = time.perf_counter()
    try:
        sock = socket.create_connection((host, port), timeout=3)
    except OSError as exc:
        report.fail(f"{what}: cannot connect to {host}:{port}: {exc.strerror or exc}",
                    "is the server running and listening there? is a firewall in the way?")
        return
    ms = (time.perf_counter() - start) * 1000
    with sock:
        if not tls:
            report.ok(f"{what}: {host}:{port} answers ({ms:.1f} ms)")
            return
        ctx = ssl.create_default_context(cafile=ca_file)
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        try:
            with ctx.wrap_socket(sock, server_hostname=host) as tls_sock:
                cert = tls_sock.getpeercert()
        except ssl.SSLCertVerificationError as exc:
            report.fail(f"{what}: TLS certificate of {host}:{port} is not valid: {exc.verify_message}",
                        "set ca_file to the CA that signed it, or fix the server's certificate and name")
            return
        except (ssl.SSLError, OSError) as exc:
            report.fail(f"{what}: TLS handshake with {host}:{port} failed: {exc}")
            return
    if not verify:
        setting, fix = unverified
        report.warn(f"{what}: {host}:{port} answers over TLS, but its certificate is not checked ({setting}): a "
                    "machine in the middle can pose as the server and read what is sent", fix)
        return
    if cert and cert.get("notAfter"):
        days = (ssl.cert_time_to_seconds(str(cert["notAfter"])) - time.time()) / 86400
        if days < 14:
            report.warn(f"{what}: certificate of {host}:{port} expires in {days:.0f} days", "renew it")
        else:
            report.ok(f"{what}: {host}:{port} answers over TLS, certificate valid for {days:.0f} more days")
    else:
        report.ok(f"{what}: {host}:{port} answers over TLS, certificate verified")


def _scan(entries: Iterable[tuple[int, bytes, str]], where: str, path: str, report: Report,
          unit: str = "line") -> None:
    from . import hashes

    counts: dict[str, int] = {}
    bad: list[str] = []
    weak: dict[str, list[str]] = {}
    for lineno, user, stored in entries:
        name = user.decode("utf-8", "replace")
        try:
            scheme = hashes.identify(stored)
        except ValueError as exc:
            bad.append(f"{unit} {lineno} ({name}): {exc}")
            continue
        counts[scheme] = counts.get(scheme, 0) + 1
        if scheme in _WEAK:
            weak.setdefault(scheme, []).append(name)
    if counts:
        total = sum(counts.values())
        report.ok(f"{where}: {total} hash{'es' if total != 1 else ''} recognised in {path} ("
                  + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")")
    for b in bad:
        report.fail(f"{where}: {path} {b}", "reset that user's password with `wsgiauth user passwd`")
    if not counts and not bad:
        report.warn(f"{where}: {path} holds no users")
    for scheme, users in weak.items():
        report.warn(f"{where}: {len(users)} weak {_WEAK[scheme]} hash{'es' if len(users) > 1 else ''} "
                    f"({', '.join(users[:5])}{'...' if len(users) > 5 else ''})",
                    "reset them with `wsgiauth user passwd` (bcrypt by default)")


def _scan_htpasswd(path: str, where: str, report: Report) -> None:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return
    entries = []
    for i, raw in enumerate(data.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(b"#") or b":" not in line:
            continue
        user, _, rest = line.partition(b":")
        entries.append((i, user, rest.split(b":")[0].decode("utf-8", "replace")))
    _scan(entries, where, path, report)


def _scan_htdigest(path: str, where: str, report: Report) -> None:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return
    bad = 0
    for i, raw in enumerate(data.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        parts = line.split(b":")
        if len(parts) < 3 or len(parts[2]) != 32 or any(c not in b"0123456789abcdef" for c in parts[2].lower()):
            bad += 1
            report.fail(f"{where}: {path} line {i}: not user:realm:HA1 with 32 hex digits",
                        "re-create the entry with `wsgiauth user passwd --htdigest`")
    if not bad:
        report.ok(f"{where}: {path} holds well-formed Digest hashes")


def _scan_dbm(path: str, kind: str, where: str, report: Report) -> None:
    from .backends import dbm

    kind = "db" if kind == "default" else kind
    try:
        names = dbm.list_users(path, type=kind)
        entries = []
        for i, name in enumerate(names, 1):
            entry = dbm.get_entry(path, name, type=kind)
            if entry is not None and b":" not in name:  # user:realm keys hold Digest HA1s
                entries.append((i, name, entry.hash.decode("utf-8", "replace")))
    except Exception as exc:  # noqa: BLE001 - report, do not crash
        report.fail(f"{where}: cannot read {path}: {exc}")
        return
    _scan(entries, where, path, report, unit="entry")


def _probe(cfg: Any, report: Report) -> None:
    from .adapter import Outcome

    probe = b"wsgiauth-doctor-" + secrets.token_hex(4).encode()
    for name, backend in cfg.backends.items():
        start = time.perf_counter()
        try:
            decision = backend.authenticate(probe, b"not-a-password", "127.0.0.1")
        except Exception as exc:  # noqa: BLE001 - report any failure
            report.fail(f"backends.{name}: a test look-up failed: {type(exc).__name__}: {exc}",
                        "see the message; the same error would make Apache answer 401 (or 500 with on_error='raise')")
            continue
        ms = (time.perf_counter() - start) * 1000
        if decision.outcome is Outcome.GRANTED:
            report.fail(f"backends.{name}: a made-up user with a made-up password was GRANTED",
                        "check the queries/filters of this backend")
        else:
            report.ok(f"backends.{name}: answers look-ups ({ms:.1f} ms for an unknown user)")
