"""A throw-away ``redis-server`` on a free loopback port, in a temp dir, for tests, benchmarks and the demo.

Persistence is off (``--save ""``, ``--appendonly no``): nothing outlives :meth:`RedisServer.stop`. The server
can be stopped and started again on the same port (:meth:`RedisServer.restart`, or :meth:`stop` then
:meth:`start`) to simulate an outage.

Usage::

    with RedisServer() as srv:
        url = srv.url  # redis://127.0.0.1:PORT/0
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from ._common import LOOPBACK, ServerError, find_tool, free_port, port_open, wait_until

__all__ = ["RedisServer", "redis_server_path"]


def redis_server_path() -> str | None:
    """Path of the ``redis-server`` binary (Debian package redis-server), or ``None``."""
    return find_tool("redis-server")


class RedisServer:
    """One throw-away Redis instance.

    Args:
        port: the TCP port (default: a free one). Kept across :meth:`restart`.
        binary: path of ``redis-server`` (default: found on PATH or in /usr/sbin, /usr/bin).

    Raises:
        ServerError: the binary is missing, or the server did not start or answer in time.
    """

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

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING.

        Returns:
            ``self``.

        Raises:
            ServerError: it exited or did not answer within 15 s (the message carries the log tail).
        """
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.proc = subprocess.Popen(self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._ping, timeout=15.0, proc=self.proc, what=f"redis-server on port {self.port}",
                   log=self.log)
        return self

    def _ping(self) -> bool:
        import socket

        with socket.create_connection((self.host, self.port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and wait until the port is closed."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        wait_until(lambda: not port_open(self.port), timeout=5.0,
                   what=f"redis-server port {self.port} to close")

    def restart(self) -> RedisServer:
        """Stop, then start again on the same port (the data is lost: persistence is off)."""
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        """Stop the server and remove its temp dir."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cleanup()


if __name__ == "__main__":  # manual use: python -m backends.redis
    import time

    with RedisServer() as srv:
        print(f"redis on {srv.url} (dir {srv.dir}); Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
