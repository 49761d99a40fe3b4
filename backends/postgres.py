"""A throw-away PostgreSQL server on a free loopback port, in a temp dir, for tests, benchmarks and the demo.

Debian's binaries (``initdb``, ``postgres`` from /usr/lib/postgresql/VERSION/bin) refuse to run as root, so when
we are root the temp dir is chowned to the ``postgres`` user and the server runs as that user. The cluster is
created once (:meth:`Postgres.start`); :meth:`~Postgres.stop` / :meth:`~Postgres.restart` keep the data and the
port, and :meth:`~Postgres.kill` crashes the postmaster, for outage tests; the life cycle is
:class:`backends._common.Launcher`'s.

Authentication (pg_hba.conf): the superuser ``postgres`` is trusted on loopback and on the Unix socket (the launcher
uses it to load schemas and count connections); the application role (``wsgiauth`` by default) must give its
password (SCRAM), as in production. The server is tuned for throw-away use (fsync off).

Usage::

    with Postgres() as pg:
        pg.load_seed()                         # wsgiauth/data/sql/schema.sql (pg.schema) + backends/data/sql/seed.sql
        conninfo = pg.conninfo                 # "host=127.0.0.1 port=... dbname=wsgiauth user=wsgiauth ..."
        pg.count_connections()                 # client connections of the application role (pg_stat_activity)

``python -m backends.postgres`` runs a seeded one by hand until SIGTERM or Ctrl-C (then stops it and removes its
temp dir).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from ._common import SQL_SCHEMA, Database, ServerError, port_open, wait_until

__all__ = ["Postgres", "postgres_bindir"]


def postgres_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres`` (the newest /usr/lib/postgresql/*/bin), or ``None``."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class Postgres(Database):
    """One throw-away PostgreSQL cluster.

    Args: those of :class:`backends._common.Database` (``port``, ``user``, ``password``, ``database``,
    ``max_connections``; the application role owns ``database``), and
        bindir: where ``initdb`` and ``postgres`` live (default: :func:`postgres_bindir`).

    Raises:
        ServerError: the binaries are missing, or the server did not start or answer in time.
    """

    name = "postgres"
    scheme = "postgresql"
    schema = SQL_SCHEMA
    stop_signal = signal.SIGINT  # "fast" shutdown: clients are disconnected; SIGTERM would wait for them to leave
    stop_timeout = 15.0

    def __init__(self, port: int | None = None, *, user: str = "wsgiauth", password: str = "wsgiauth-pw",
                 database: str = "wsgiauth", bindir: str | Path | None = None, max_connections: int = 60) -> None:
        found = Path(bindir) if bindir else postgres_bindir()
        if found is None or not (found / "postgres").exists():
            raise ServerError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bindir = found
        super().__init__(port, user=user, password=password, database=database, max_connections=max_connections,
                         prefix="wsgiauth-pg-")
        self.sockdir = self.dir / "sock"
        self.log = self.dir / "postgres.log"
        self._run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            self._run_as = {"user": "postgres", "group": "postgres", "extra_groups": []}

    # ------------------------------------------------------------------ connection strings

    @property
    def conninfo(self) -> str:
        """libpq conninfo of the application role (what psycopg and the SQL backend take)."""
        return (f"host={self.host} port={self.port} dbname={self.database} user={self.user} "
                f"password={self.password}")

    @property
    def admin_conninfo(self) -> str:
        """libpq conninfo of the superuser (trusted on loopback)."""
        return f"host={self.host} port={self.port} dbname={self.database} user=postgres"

    # ------------------------------------------------------------------ lifecycle

    def _chown(self, path: Path) -> None:
        if self._run_as:
            shutil.chown(path, "postgres", "postgres")

    def _init_cluster(self) -> None:
        self.dir.chmod(0o755)
        self._chown(self.dir)
        self.sockdir.mkdir(exist_ok=True)
        self._chown(self.sockdir)
        out = subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--locale=C",
             "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"],
            capture_output=True, cwd=self.dir, **self._run_as, check=False)
        if out.returncode != 0:
            raise ServerError(f"initdb failed ({out.returncode}): {out.stderr.decode(errors='replace')[-2000:]}")
        hba = self.data / "pg_hba.conf"
        hba.write_text(
            "# wsgiauth test cluster: superuser trusted locally, everyone else gives a password\n"
            "local all all trust\n"
            "host all postgres 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n")
        self._chown(hba)
        self._initialized = True

    def _command(self) -> list[str]:
        return [
            str(self.bindir / "postgres"), "-D", str(self.data),
            "-c", f"listen_addresses={self.host}", "-p", str(self.port),
            "-c", f"unix_socket_directories={self.sockdir}",
            "-c", f"max_connections={self.max_connections}",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "shared_buffers=16MB", "-c", "logging_collector=off",
            "-c", "log_connections=off", "-c", "log_min_messages=warning",
        ]

    def start(self) -> Postgres:
        """Create the cluster (first time), start the server, and wait until it accepts connections.

        Returns:
            ``self``.

        Raises:
            ServerError: initdb failed, the server exited, or it did not answer within 30 s (with the log tail).
        """
        if self.running:
            return self
        first = not self._initialized
        if first:
            self._init_cluster()
        log = open(self.log, "ab")  # handed to the child
        try:
            self.proc = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.dir, start_new_session=True,
                                         **self._run_as)
        finally:
            log.close()
        wait_until(self._ready, timeout=30.0, proc=self.proc, what=f"postgres on port {self.port}", log=self.log)
        if first:
            self._create_role()
        return self

    def _ready(self) -> bool:
        if not port_open(self.port):
            return False
        import psycopg

        try:
            with psycopg.connect(f"host={self.host} port={self.port} dbname=postgres user=postgres",
                                 connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def _create_role(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(f"host={self.host} port={self.port} dbname=postgres user=postgres",
                             autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(self.user), sql.Literal(self.password)))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8'").format(
                sql.Identifier(self.database), sql.Identifier(self.user)))

    def _after_kill(self) -> None:
        # orphaned backends may linger a moment; remove a stale pid file so that start() works
        (self.data / "postmaster.pid").unlink(missing_ok=True)

    # ------------------------------------------------------------------ data and introspection

    def execute(self, statement: str, params: tuple[Any, ...] = (), *, database: str | None = None) -> list[Any]:
        """Run one statement as the superuser (autocommit) and return its rows ([] when it returns none)."""
        import psycopg

        with psycopg.connect(f"host={self.host} port={self.port} dbname={database or self.database} user=postgres",
                             autocommit=True, connect_timeout=5) as conn:
            cur = conn.execute(statement.encode(), params or None)
            return cur.fetchall() if cur.description else []

    def load_sql(self, *files: str | Path, as_owner: bool = True) -> None:
        """Run SQL files (several statements each) in the application database, as its owner by default."""
        import psycopg

        info = self.conninfo if as_owner else self.admin_conninfo
        with psycopg.connect(info, autocommit=True, connect_timeout=5) as conn:
            for f in files:
                conn.execute(Path(f).read_text(encoding="utf-8").encode())

    def add_user(self, name: str, password: str) -> str:
        """Create a login role that may only read the application database's tables (as Apache's should).

        Returns:
            the role's libpq conninfo.
        """
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(password)))
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(self.database), sql.Identifier(name)))
            conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(name)))
        return f"host={self.host} port={self.port} dbname={self.database} user={name} password={password}"

    def count_connections(self, user: str | None = None) -> int:
        """Client connections of ``user`` (default: the application role) open on the server right now."""
        rows = self.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND backend_type = 'client backend'",
            (user or self.user,))
        return int(rows[0][0])

    def terminate_connections(self, user: str | None = None) -> int:
        """Kill the server side of every connection of ``user`` (as a DBA or a network blip would)."""
        rows = self.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = %s "
            "AND backend_type = 'client backend'", (user or self.user,))
        return int(rows[0][0])


if __name__ == "__main__":
    sys.exit(Postgres().serve(Postgres.seeded))
