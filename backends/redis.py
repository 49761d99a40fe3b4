"""A throw-away ``redis-server`` on a free loopback port, in a temp dir, for tests, benchmarks and the demo.

Persistence is off (``--save ""``, ``--appendonly no``): nothing outlives :meth:`Redis.stop`. The server can be
stopped and started again on the same port (:meth:`Redis.restart`, or ``stop()`` then ``start()``) to simulate an
outage; the life cycle is :class:`backends._common.Launcher`'s.

Usage::

    with Redis() as srv:
        url = srv.url  # redis://127.0.0.1:PORT/0

``python -m backends.redis`` runs one by hand until SIGTERM or Ctrl-C (then stops it and removes its temp dir).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from ._common import LOOPBACK, Launcher, ServerError, find_tool, free_port, wait_until

__all__ = ["Redis", "redis_server_path"]


def redis_server_path() -> str | None:
    """Path of the ``redis-server`` binary (Debian package redis-server), or ``None``."""
    return find_tool("redis-server")


class Redis(Launcher):
    """One throw-away Redis instance.

    Args:
        port: the TCP port (default: a free one). Kept across :meth:`restart`.
        binary: path of ``redis-server`` (default: found on PATH or in /usr/sbin, /usr/bin).

    Raises:
        ServerError: the binary is missing, or the server did not start or answer in time.
    """

    name = "redis-server"
    stop_timeout = 5.0

    def __init__(self, port: int | None = None, binary: str | None = None) -> None:
        self.binary = binary or redis_server_path()
        if self.binary is None:
            raise ServerError("redis-server is not installed (apt-get install redis-server)")
        self.port = port or free_port()
        self.host = LOOPBACK
        self.dir = Path(tempfile.mkdtemp(prefix="wsgiauth-redis-"))
        self.log = self.dir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://{self.host}:{self.port}/0"

    def _command(self) -> list[str]:
        assert self.binary is not None
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str(self.log),
            "--databases", "4",
        ]

    def start(self) -> Redis:
        """Start the server and wait until it answers PING.

        Returns:
            ``self``.

        Raises:
            ServerError: it exited or did not answer within 15 s (the message carries the log tail).
        """
        if self.running:
            return self
        self.proc = subprocess.Popen(self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        wait_until(self._ping, timeout=15.0, proc=self.proc, what=f"redis-server on port {self.port}", log=self.log)
        return self

    def _ping(self) -> bool:
        with socket.create_connection((self.host, self.port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")


if __name__ == "__main__":
    sys.exit(Redis().serve(lambda srv: f"  {srv.url}   (persistence off)\nCtrl-C (or SIGTERM) stops it."))
