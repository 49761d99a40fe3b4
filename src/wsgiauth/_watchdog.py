"""A per-process watchdog that cuts the socket of a call that outlives its deadline.

Some drivers (psycopg 3) have no client-side read timeout: a query sent to a server that hangs (frozen, not gone: the
kernel still acknowledges packets, so TCP never gives up) would block an Apache thread until the server wakes up.
``guard(fd, seconds)`` registers the connection's socket for the duration of a call; if the call is still running at
its deadline, one shared thread shuts the socket down (``shutdown(SHUT_RDWR)`` on a duplicate of the descriptor, so
the driver's own descriptor stays valid), the blocked read returns at once, the driver raises, and the pool discards
the connection as dead.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["guard"]

logger = logging.getLogger("wsgiauth")


class _Watchdog:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.cond = threading.Condition()
        self.heap: list[tuple[float, int]] = []
        self.active: dict[int, int] = {}  # ticket -> fd, while the call runs
        self.tickets = itertools.count()
        self.thread: threading.Thread | None = None
        self.cut = 0

    def add(self, fd: int, seconds: float) -> int:
        ticket = next(self.tickets)
        with self.cond:
            self.active[ticket] = fd
            heapq.heappush(self.heap, (time.monotonic() + seconds, ticket))
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="wsgiauth-watchdog", daemon=True)
                self.thread.start()
            elif self.heap[0][1] == ticket:
                self.cond.notify()
        return ticket

    def remove(self, ticket: int) -> None:
        with self.cond:
            self.active.pop(ticket, None)  # its heap entry is dropped when it comes up

    def _run(self) -> None:
        while True:
            with self.cond:
                while self.heap and self.heap[0][1] not in self.active:
                    heapq.heappop(self.heap)
                if not self.heap:
                    self.cond.wait(30.0)
                    if not self.heap:
                        self.thread = None
                        return
                    continue
                deadline, ticket = self.heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self.cond.wait(delay)
                    continue
                heapq.heappop(self.heap)
                fd = self.active.pop(ticket, None)
                if fd is not None:
                    # Under the lock: remove() waits for the cut, so once a call's guard has ended its descriptor
                    # (which may then be closed and reused) is never touched.
                    self._cut(fd)

    def _cut(self, fd: int) -> None:
        try:
            dup = socket.socket(fileno=os.dup(fd))
        except OSError:
            return
        try:
            dup.shutdown(socket.SHUT_RDWR)
            self.cut += 1
            logger.warning("a database call outlived its deadline: its connection was cut")
        except OSError:
            pass
        finally:
            dup.close()


_dog: _Watchdog | None = None
_lock = threading.Lock()


def _watchdog() -> _Watchdog:
    global _dog
    dog = _dog
    if dog is None or dog.pid != os.getpid():  # a forked child starts its own (threads do not survive fork)
        with _lock:
            if _dog is None or _dog.pid != os.getpid():
                _dog = _Watchdog()
            dog = _dog
    return dog


@contextmanager
def guard(fd: int, seconds: float) -> Iterator[None]:
    """Cut the socket ``fd`` if the body is still running after ``seconds``."""
    dog = _watchdog()
    ticket = dog.add(fd, seconds)
    try:
        yield
    finally:
        dog.remove(ticket)
