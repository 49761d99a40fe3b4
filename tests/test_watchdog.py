"""The watchdog bounds a blocking read on a socket whose peer hangs (psycopg has no read timeout of its own)."""

from __future__ import annotations

import socket
import threading
import time

from wsgiauth._watchdog import _watchdog, guard


def test_a_read_past_its_deadline_is_cut_and_a_finished_call_is_left_alone() -> None:
    a, b = socket.socketpair()  # b never answers: a frozen server
    try:
        t0 = time.monotonic()
        with guard(a.fileno(), 0.3):
            data = a.recv(10)  # blocks until the watchdog shuts the socket down
        elapsed = time.monotonic() - t0
        assert data == b"" and 0.25 < elapsed < 3.0
    finally:
        a.close()
        b.close()

    c, d = socket.socketpair()
    try:
        with guard(c.fileno(), 0.2):
            d.sendall(b"pong")
            assert c.recv(10) == b"pong"
        time.sleep(0.4)  # past the deadline: the guard has ended, the socket must still work
        d.sendall(b"again")
        assert c.recv(10) == b"again"
    finally:
        c.close()
        d.close()


def test_many_threads_each_get_their_own_deadline() -> None:
    pairs = [socket.socketpair() for _ in range(8)]
    results: dict[int, float] = {}

    def worker(i: int) -> None:
        a, _ = pairs[i]
        t0 = time.monotonic()
        with guard(a.fileno(), 0.2 + 0.1 * i):
            a.recv(10)
        results[i] = time.monotonic() - t0

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for a, b in pairs:
        a.close()
        b.close()
    assert sorted(results) == list(range(8))
    assert all(0.15 + 0.1 * i < results[i] < 3.0 + 0.1 * i for i in range(8)), results
    assert _watchdog().cut >= 9
