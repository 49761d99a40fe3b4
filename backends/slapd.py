"""A throw-away OpenLDAP ``slapd`` for tests, benchmarks and the demo (in the spirit of python-ldap's slapdtest).

:class:`Slapd` writes a ``slapd.conf`` into a temp dir (mdb database, the standard schemas core/cosine/inetorgperson/
nis plus a tiny test schema with a Digest HA1 attribute, the memberof overlay, the monitor database), makes a test CA
and a server certificate for 127.0.0.1/localhost with ``openssl``, checks the config with ``slapd -Ttest``, starts
slapd on ``ldap://127.0.0.1:PORT`` and ``ldaps://127.0.0.1:TLS_PORT``, polls until it answers (failing fast with the
log when it exits) and loads the seed LDIF (``backends/data/slapd/seed.ldif``) with ``ldapadd`` so that the memberof
overlay fills ``memberOf``. The life cycle is :class:`backends._common.Launcher`'s: :meth:`~Slapd.stop`,
:meth:`~Slapd.start`, :meth:`~Slapd.restart` and :meth:`~Slapd.kill` keep the data and the ports, for outage tests;
:meth:`Slapd.pause`/:meth:`Slapd.resume` make a hung server; :meth:`Slapd.connections` counts the server's open
client connections (from cn=monitor).

Run ``python -m backends.slapd`` to start one by hand and print its URLs (SIGTERM or Ctrl-C stops it and removes
its temp dir).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from backends._common import DATA, LOOPBACK, Launcher, ServerError, find_tool, free_port, port_open, wait_until

SEED_LDIF = DATA / "slapd" / "seed.ldif"
TEST_SCHEMA = DATA / "slapd" / "wsgiauth.schema"
SCHEMA_DIR = Path("/etc/ldap/schema")
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
MODULE_DIR = Path("/usr/lib/ldap")

SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PW = "rootpw"  # the rootdn's password, only ever used by the launcher on loopback
SERVICE_DN = f"cn=wsgiauth,ou=services,{SUFFIX}"
SERVICE_PW = "svc.pw"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"

# The seed's users and their passwords (see the comment at the top of seed.ldif).
PASSWORDS = {
    "alice": "secret",
    "bob": "hunter2",
    "Carol": "Carol.pw",
    "zoë": "ünïcødé",
    "dave": "dave.pw",
    "eve": "eve.pw",
    "mallory": "disabled.pw",
    "admin": "admin.pw",
    "twin": "twin.pw",
}
# An LDAP filter that excludes the disabled account (mallory has employeeType=disabled).
ACTIVE_FILTER = "(&(objectClass=inetOrgPerson)(!(employeeType=disabled)))"

SLAPD_CONF = """\
# written by backends/slapd.py for a throw-away test server
{includes}
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
modulepath {modules}
moduleload back_mdb
moduleload memberof
TLSCACertificateFile {dir}/tls/ca.pem
TLSCertificateFile {dir}/tls/server.pem
TLSCertificateKeyFile {dir}/tls/server.key
sizelimit {size_limit}
# idletimeout 0: never close idle clients (the pools decide)

database mdb
suffix "{suffix}"
rootdn "{rootdn}"
rootpw {rootpw}
directory {dir}/db
maxsize 67108864
index objectClass eq
index uid,cn,member,uniqueMember,memberUid eq
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE
access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to attrs=wsgiauthDigestHA1
    by dn.exact="{service}" read
    by * none
access to *
    by * read

database monitor
access to dn.subtree="cn=monitor"
    by dn.exact="{rootdn}" read
    by * none
"""


def _run(cmd: list[str], *, what: str, stdin: bytes | None = None, timeout: float = 30.0) -> str:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        raise ServerError(
            f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"{proc.stdout.decode(errors='replace')}{proc.stderr.decode(errors='replace')}"
        )
    return proc.stdout.decode(errors="replace")


def make_ca(directory: Path, *, name: str = "wsgiauth test CA", hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
            ) -> tuple[Path, Path, Path]:
    """Make a CA and a server certificate signed by it for ``hosts`` in ``directory`` with ``openssl``.

    Returns:
        ``(ca.pem, server.pem, server.key)``.
    """
    openssl = find_tool("openssl")
    if openssl is None:
        raise ServerError("openssl is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_pem = directory / "ca.key", directory / "ca.pem"
    key, csr, pem = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "server.ext"
    san = ",".join(f"IP:{h}" if h.replace(".", "").isdigit() or ":" in h else f"DNS:{h}" for h in hosts)
    ext.write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n")
    _run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_pem),
          "-days", "2", "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"], what="openssl (CA)")
    _run([openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
          "-subj", f"/CN={hosts[0]}"], what="openssl (server key)")
    _run([openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca_pem), "-CAkey", str(ca_key), "-CAcreateserial",
          "-out", str(pem), "-days", "2", "-extfile", str(ext)], what="openssl (server certificate)")
    for p in (ca_key, key):
        p.chmod(0o600)
    return ca_pem, pem, key


class Slapd(Launcher):
    """One throw-away slapd.

    Args:
        directory: where to put config, data, certificates and the log (default: a new temp dir, removed by
            :meth:`close`).
        seed: load ``backends/data/slapd/seed.ldif`` after the first start.
        log_level: slapd's ``-d`` debug level (``0``: errors only; ``stats`` logs every operation).
        cert_hosts: the names the server certificate holds (change them to test host name checking).
        size_limit: slapd's ``sizelimit`` (the most entries one search returns to anyone but the rootdn; 500 is
            slapd's default).

    Attributes:
        port, tls_port: the plain (STARTTLS-capable) and LDAPS ports on 127.0.0.1.
        url, ldaps_url: ``ldap://127.0.0.1:port`` and ``ldaps://127.0.0.1:tls_port``.
        ca_file: the PEM of the test CA that signed the server certificate.
    """

    name = "slapd"
    suffix = SUFFIX
    root_dn = ROOT_DN
    root_pw = ROOT_PW
    service_dn = SERVICE_DN
    service_pw = SERVICE_PW
    people = PEOPLE
    groups = GROUPS
    passwords = PASSWORDS
    active_filter = ACTIVE_FILTER

    def __init__(self, directory: Path | None = None, *, seed: bool = True, log_level: str = "0",
                 cert_hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), size_limit: int = 500) -> None:
        self.slapd = find_tool("slapd", "/usr/sbin")
        self.ldapadd = find_tool("ldapadd")
        self.ldapsearch = find_tool("ldapsearch")
        if self.slapd is None or self.ldapadd is None or self.ldapsearch is None:
            raise ServerError("slapd and ldap-utils are not installed (apt-get install slapd ldap-utils)")
        if find_tool("openssl") is None:
            raise ServerError("openssl is not installed (apt-get install openssl)")
        self.owns_dir = directory is None
        self.dir = Path(tempfile.mkdtemp(prefix="wsgiauth-slapd-")) if directory is None else directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.seed = seed
        self.cert_hosts = cert_hosts
        self.size_limit = size_limit
        self.log_level = log_level
        self.port = free_port()
        self.tls_port = free_port()
        self.url = f"ldap://{LOOPBACK}:{self.port}"
        self.ldaps_url = f"ldaps://{LOOPBACK}:{self.tls_port}"
        self.log = self.dir / "slapd.log"
        self.conf = self.dir / "slapd.conf"
        self.proc: subprocess.Popen[bytes] | None = None
        self._configured = False
        self.ca_file = self.dir / "tls" / "ca.pem"

    # ------------------------------------------------------------------ setup

    def _configure(self) -> None:
        make_ca(self.dir / "tls", hosts=self.cert_hosts)
        (self.dir / "db").mkdir(exist_ok=True)
        includes = [str(SCHEMA_DIR / f"{s}.schema") for s in SCHEMAS] + [str(TEST_SCHEMA)]
        self.conf.write_text(SLAPD_CONF.format(
            includes="\n".join(f"include {p}" for p in includes), dir=self.dir, modules=MODULE_DIR,
            suffix=self.suffix, rootdn=self.root_dn, rootpw=self.root_pw, service=self.service_dn,
            size_limit=self.size_limit,
        ))
        assert self.slapd is not None
        # -u: dry run (the mdb files do not exist yet, and a read-only open of them would fail)
        _run([self.slapd, "-Ttest", "-u", "-f", str(self.conf)], what="slapd -Ttest (config check)")
        self._configured = True

    # ------------------------------------------------------------------ life cycle

    def start(self) -> Slapd:
        """Start slapd (configuring and seeding it on the first call) and wait until it answers.

        Raises:
            ServerError: slapd exited or did not answer within 20 s (the message ends with the log).
        """
        if self.running:
            return self
        first = not self._configured
        if first:
            self._configure()
        assert self.slapd is not None
        log = open(self.log, "ab")  # handed to slapd as stdout/stderr, closed here after Popen
        urls = f"{self.url}/ {self.ldaps_url}/"
        self.proc = subprocess.Popen(
            [self.slapd, "-f", str(self.conf), "-h", urls, "-d", self.log_level],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        wait_until(lambda: port_open(self.port) and port_open(self.tls_port) and self._answers(),
                   timeout=20.0, proc=self.proc, what="slapd", log=self.log)
        if first and self.seed:
            self.add_ldif(SEED_LDIF.read_text(encoding="utf-8"))
        return self

    def _answers(self) -> bool:
        assert self.ldapsearch is not None
        proc = subprocess.run([self.ldapsearch, "-x", "-LLL", "-H", self.url, "-s", "base", "-b", "",
                               "namingContexts"], capture_output=True, timeout=5)
        return proc.returncode == 0

    def ports(self) -> tuple[int, ...]:
        return (self.port, self.tls_port)

    def pause(self) -> None:
        """Freeze slapd (SIGSTOP): connections are still accepted by the kernel but never answered (a hung server)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`pause` (SIGCONT)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    # ------------------------------------------------------------------ administration

    def add_ldif(self, ldif: str, *, modify: bool = False) -> None:
        """Apply LDIF as the rootdn (``ldapadd``; ``modify=True`` for changetype records via ``ldapmodify``)."""
        assert self.ldapadd is not None
        cmd = [self.ldapadd, "-x", "-H", self.url, "-D", self.root_dn, "-w", self.root_pw]
        if modify:
            cmd = [self.ldapadd.replace("ldapadd", "ldapmodify"), *cmd[1:]]
        _run(cmd, what="ldapadd" if not modify else "ldapmodify", stdin=ldif.encode("utf-8"))

    def search(self, base: str, filt: str = "(objectClass=*)", *attrs: str, scope: str = "sub") -> str:
        """``ldapsearch`` as the rootdn; returns the LDIF text (for tests and debugging)."""
        assert self.ldapsearch is not None
        return _run([self.ldapsearch, "-x", "-LLL", "-o", "ldif-wrap=no", "-H", self.url, "-D", self.root_dn,
                     "-w", self.root_pw, "-s", scope, "-b", base, filt, *attrs], what="ldapsearch")

    def connections(self) -> int:
        """Open client connections on the server now, not counting the one used to ask (from cn=monitor)."""
        out = self.search("cn=Current,cn=Connections,cn=Monitor", "(objectClass=*)", "monitorCounter",
                          scope="base")
        for line in out.splitlines():
            if line.lower().startswith("monitorcounter:"):
                return int(line.split(":", 1)[1]) - 1
        raise ServerError(f"cn=monitor did not report a connection count:\n{out}")


def _banner(s: Slapd) -> str:
    return "\n".join([
        f"  {s.url}   {s.ldaps_url}   CA: {s.ca_file}",
        f"  base {s.suffix}, service account {s.service_dn} / {s.service_pw}",
        f"  users: {', '.join(f'{u}/{p}' for u, p in s.passwords.items())}",
        "Ctrl-C (or SIGTERM) stops it.",
    ])


if __name__ == "__main__":
    sys.exit(Slapd().serve(_banner))
