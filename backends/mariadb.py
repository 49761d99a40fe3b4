"""A throw-away MariaDB server on a free loopback port (and a Unix socket), in a temp dir, for tests and benchmarks.

Uses Debian's ``mariadb-install-db`` and ``mariadbd`` with ``--no-defaults`` (nothing of /etc/mysql is read). When we
are root the temp dir is chowned to the ``mysql`` user and the server runs as that user (``--user=mysql``). The
data directory is created once; :meth:`MariaDB.stop` / :meth:`~MariaDB.restart` keep the data and the port, and
:meth:`~MariaDB.kill` crashes it (InnoDB recovers on the next start), for outage tests; the life cycle is
:class:`backends._common.Launcher`'s.

Accounts: ``root`` has no password and may connect only through the Unix socket in the temp dir (the launcher uses
it to load schemas and count connections); the application user (``wsgiauth``) connects over TCP on 127.0.0.1 with
its password, as in production.

Usage::

    with MariaDB() as db:
        db.load_seed()                        # wsgiauth/data/sql/schema.mysql.sql (db.schema) + the seed users
        kwargs = db.connect_kwargs            # host, port, user, password, database for PyMySQL / sql.mysql()
        db.count_connections()                # information_schema.processlist rows of the application user

``python -m backends.mariadb`` runs a seeded one by hand until SIGTERM or Ctrl-C (then stops it and removes its
temp dir).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ._common import SQL_SCHEMA_MYSQL, Database, ServerError, find_tool, port_open, wait_until

__all__ = ["MariaDB", "mariadbd_path"]


def mariadbd_path() -> str | None:
    """Path of ``mariadbd`` (Debian package mariadb-server), or ``None``."""
    return find_tool("mariadbd") or find_tool("mysqld")


class MariaDB(Database):
    """One throw-away MariaDB instance.

    Args: those of :class:`backends._common.Database` (``port``, ``user``, ``password``, ``database``,
    ``max_connections``); the application user gets all rights on ``database``.

    Raises:
        ServerError: the binaries are missing, or the server did not start or answer in time.
    """

    name = "mariadbd"
    scheme = "mysql"
    schema = SQL_SCHEMA_MYSQL
    stop_timeout = 30.0  # SIGTERM: clients are disconnected, InnoDB flushes

    def __init__(self, port: int | None = None, *, user: str = "wsgiauth", password: str = "wsgiauth-pw",
                 database: str = "wsgiauth", max_connections: int = 60) -> None:
        self.binary = mariadbd_path()
        self.install_db = find_tool("mariadb-install-db") or find_tool("mysql_install_db")
        if self.binary is None or self.install_db is None:
            raise ServerError("MariaDB is not installed (apt-get install mariadb-server)")
        super().__init__(port, user=user, password=password, database=database, max_connections=max_connections,
                         prefix="wsgiauth-mariadb-")
        self.socket = self.dir / "mysqld.sock"
        self.log = self.dir / "mariadb.err"
        self._os_user = "mysql" if os.geteuid() == 0 else None

    # ------------------------------------------------------------------ connection parameters

    @property
    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``pymysql.connect`` and ``wsgiauth.backends.sql.mysql`` (application user, TCP)."""
        return {"host": self.host, "port": self.port, "user": self.user, "password": self.password,
                "database": self.database}

    # ------------------------------------------------------------------ lifecycle

    def _init_datadir(self) -> None:
        self.dir.chmod(0o755)
        if self._os_user:
            shutil.chown(self.dir, self._os_user, self._os_user)
        cmd = [self.install_db, "--no-defaults", f"--datadir={self.data}", "--auth-root-authentication-method=normal",
               "--skip-test-db", "--skip-name-resolve"]
        if self._os_user:
            cmd.append(f"--user={self._os_user}")
        out = subprocess.run(cmd, capture_output=True, cwd=self.dir, check=False)
        if out.returncode != 0:
            raise ServerError(f"mariadb-install-db failed ({out.returncode}): "
                              f"{(out.stdout + out.stderr).decode(errors='replace')[-2000:]}")
        self._initialized = True

    def _command(self) -> list[str]:
        assert self.binary is not None
        cmd = [
            self.binary, "--no-defaults", f"--datadir={self.data}", f"--socket={self.socket}",
            f"--port={self.port}", f"--bind-address={self.host}", "--skip-networking=0", "--skip-name-resolve",
            f"--pid-file={self.dir / 'mariadbd.pid'}", f"--log-error={self.log}",
            f"--max-connections={self.max_connections}", "--innodb-buffer-pool-size=16M",
            "--innodb-log-file-size=16M", "--innodb-flush-log-at-trx-commit=0", "--skip-log-bin",
            "--character-set-server=utf8mb4", "--collation-server=utf8mb4_nopad_bin",
            "--performance-schema=OFF", "--wait-timeout=600",
        ]
        if self._os_user:
            cmd.append(f"--user={self._os_user}")
        return cmd

    def start(self) -> MariaDB:
        """Create the data directory (first time), start the server, and wait until it accepts connections.

        Returns:
            ``self``.

        Raises:
            ServerError: mariadb-install-db failed, the server exited, or it did not answer within 60 s.
        """
        if self.running:
            return self
        first = not self._initialized
        if first:
            self._init_datadir()
        self.proc = subprocess.Popen(self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, cwd=self.dir, start_new_session=True)
        wait_until(self._ready, timeout=60.0, proc=self.proc, what=f"mariadbd on port {self.port}", log=self.log)
        if first:
            self._create_user()
        return self

    def _root(self, database: str | None = None) -> Any:
        import pymysql

        return pymysql.connect(unix_socket=str(self.socket), user="root", password="", database=database,
                               charset="utf8mb4", autocommit=True, connect_timeout=5)

    def _ready(self) -> bool:
        if not (self.socket.exists() and port_open(self.port)):
            return False
        import pymysql

        try:
            self._root().close()
            return True
        except pymysql.err.OperationalError:
            return False

    def _create_user(self) -> None:
        conn = self._root()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin")
                cur.execute(f"CREATE USER '{self.user}'@'127.0.0.1' IDENTIFIED BY %s", (self.password,))
                cur.execute(f"GRANT ALL ON `{self.database}`.* TO '{self.user}'@'127.0.0.1'")
        finally:
            conn.close()

    # ------------------------------------------------------------------ data and introspection

    def execute(self, statement: str, params: tuple[Any, ...] | None = None) -> list[Any]:
        """Run one statement as root in the application database and return its rows."""
        conn = self._root(self.database)
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return list(cur.fetchall())
        finally:
            conn.close()

    def load_sql(self, *files: str | Path) -> None:
        """Run SQL files (several statements each) in the application database with the ``mariadb`` client."""
        client = find_tool("mariadb") or find_tool("mysql")
        if client is None:
            raise ServerError("the mariadb client is not installed (apt-get install mariadb-client)")
        for f in files:
            with open(f, "rb") as fh:
                out = subprocess.run(
                    [client, "--no-defaults", f"--socket={self.socket}", "--user=root",
                     "--default-character-set=utf8mb4", self.database],
                    stdin=fh, capture_output=True, check=False)
            if out.returncode != 0:
                raise ServerError(f"loading {f} failed: {out.stderr.decode(errors='replace')[-2000:]}")

    def add_user(self, name: str, password: str) -> dict[str, Any]:
        """Create an account that may only read the application database (as Apache's should).

        Returns:
            its connection keyword arguments (host, port, user, password, database).
        """
        conn = self._root()
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE USER %s@'127.0.0.1' IDENTIFIED BY %s", (name, password))
                cur.execute(f"GRANT SELECT ON `{self.database}`.* TO %s@'127.0.0.1'", (name,))
        finally:
            conn.close()
        return {**self.connect_kwargs, "user": name, "password": password}

    def count_connections(self, user: str | None = None) -> int:
        """Connections of ``user`` (default: the application user) open on the server right now."""
        rows = self.execute("SELECT COUNT(*) FROM information_schema.processlist WHERE user = %s",
                            (user or self.user,))
        return int(rows[0][0])

    def terminate_connections(self, user: str | None = None) -> int:
        """Kill the server side of every connection of ``user``; returns how many were killed."""
        rows = self.execute("SELECT id FROM information_schema.processlist WHERE user = %s", (user or self.user,))
        for (pid,) in rows:
            try:
                self.execute(f"KILL CONNECTION {int(pid)}")
            except Exception:  # noqa: BLE001 - it may have gone already
                pass
        return len(rows)


if __name__ == "__main__":
    sys.exit(MariaDB().serve(MariaDB.seeded))
