"""WatchedFile: load once, reload on change (in place or by atomic rename), keep the last good copy, thread-safe."""

from __future__ import annotations

import logging
import os
import pwd
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from backends._common import missing, wait_until
from wsgiauth import _filewatch
from wsgiauth._filewatch import WatchedFile
from wsgiauth.exceptions import StoreError


def write_atomically(path: Path, data: bytes) -> None:
    """What editors and `htpasswd` do: write a new file, then rename it over the old one (new inode)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_in_place(path: Path, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.truncate(0)
        f.write(data)


def make_old(path: Path) -> None:
    """Give the file an mtime well in the past, so that its signature alone tells changes."""
    past = time.time_ns() - 3600 * 10**9
    os.utime(path, ns=(past, past))


class CountingLoader:
    def __init__(self, fail_on: bytes | None = None) -> None:
        self.calls = 0
        self.fail_on = fail_on

    def __call__(self, path: str) -> bytes:
        self.calls += 1
        data = Path(path).read_bytes()
        if self.fail_on is not None and data == self.fail_on:
            raise ValueError("refusing this content")
        return data


def seen(watched: WatchedFile[bytes], value: bytes, timeout: float = 5.0) -> bool:
    wait_until(lambda: watched.get() == value, timeout=timeout, interval=0.01, what=f"reload to {value!r}")
    return True


def test_loads_at_construction(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"one")
    loader = CountingLoader()
    watched = WatchedFile(path, loader, check_interval=5, what="test file")
    assert loader.calls == 1
    assert watched.get() == b"one"
    assert watched.path == str(path)
    assert watched.generation == 0


def test_missing_file_names_path_uid_and_user(tmp_path: Path) -> None:
    path = tmp_path / "nope" / ".htpasswd"
    with pytest.raises(StoreError) as info:
        WatchedFile(path, CountingLoader(), what="htpasswd file")
    message = str(info.value)
    uid = os.geteuid()
    assert str(path) in message
    assert f"uid {uid} ({pwd.getpwuid(uid).pw_name})" in message
    assert "no such file" in message
    assert "htpasswd file" in message


def test_permission_denied_message_as_www_data(tmp_path: Path) -> None:
    """The message an admin sees when Apache's user cannot read the file (the real thing, as uid 33)."""
    if os.geteuid() != 0:
        missing("switching to www-data needs root")
    try:
        www = pwd.getpwnam("www-data")
    except KeyError:
        missing("no www-data user")
        return
    secret = Path("/tmp") / f"wsgiauth-perm-{os.getpid()}"
    secret.write_bytes(b"alice:x\n")
    secret.chmod(0o600)
    try:
        code = ("from wsgiauth._filewatch import WatchedFile\n"
                f"WatchedFile({str(secret)!r}, lambda p: open(p, 'rb').read(), what='htpasswd file')\n")
        proc = subprocess.run([sys.executable, "-c", code], user=www.pw_uid, group=www.pw_gid,
                              capture_output=True, text=True, cwd="/", timeout=60)
    finally:
        secret.unlink()
    assert proc.returncode != 0
    assert (f"StoreError: cannot read htpasswd file {secret}: permission denied for uid {www.pw_uid} (www-data)"
            in proc.stderr), proc.stderr


def test_loader_failure_at_start_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"bad")
    with pytest.raises(StoreError, match=f"cannot load file {path}: ValueError"):
        WatchedFile(path, CountingLoader(fail_on=b"bad"))


def test_negative_interval_refused(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match="check_interval"):
        WatchedFile(path, CountingLoader(), check_interval=-1)


@pytest.mark.parametrize("writer", [write_atomically, write_in_place], ids=["atomic-rename", "in-place"])
def test_change_seen_within_the_interval(tmp_path: Path, writer: Callable[[Path, bytes], None]) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"version 1")
    watched = WatchedFile(path, CountingLoader(), check_interval=0.2)
    writer(path, b"version 2, longer")
    start = time.monotonic()
    assert seen(watched, b"version 2, longer")
    assert time.monotonic() - start < 2.0
    assert watched.generation == 1


@pytest.mark.parametrize("writer", [write_atomically, write_in_place], ids=["atomic-rename", "in-place"])
def test_same_size_rewrite_within_one_timestamp_tick(tmp_path: Path, writer: Callable[[Path, bytes], None]) -> None:
    """A rewrite that keeps size and mtime (same clock tick) is still seen: a just-written file is racy."""
    path = tmp_path / "f"
    path.write_bytes(b"password A")
    st = path.stat()
    watched = WatchedFile(path, CountingLoader(), check_interval=0)
    writer(path, b"password B")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # as if written within the same tick
    assert watched.get() == b"password B"


def test_just_written_file_is_rechecked_soon_whatever_the_interval(tmp_path: Path) -> None:
    """A copy loaded while a writer was rewriting the file in place is replaced within moments, not an hour."""
    path = tmp_path / "f"
    path.write_bytes(b"")  # as if caught after the writer's truncate, before its write
    watched = WatchedFile(path, CountingLoader(), check_interval=3600)
    write_in_place(path, b"the complete file")
    start = time.monotonic()
    assert seen(watched, b"the complete file", timeout=2.0)
    assert time.monotonic() - start < 1.0


def test_stat_is_rate_limited_and_unchanged_file_not_reparsed(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"data")
    make_old(path)
    stats = []
    real_stat = os.stat

    def counting_stat(p: object, *args: object, **kwargs: object) -> os.stat_result:
        if os.fspath(p) == str(path):  # type: ignore[call-overload]
            stats.append(p)
        return real_stat(p, *args, **kwargs)  # type: ignore[arg-type]

    loader = CountingLoader()
    slow = WatchedFile(path, loader, check_interval=3600)
    fast = WatchedFile(path, loader, check_interval=0)
    monkeypatch.setattr(_filewatch.os, "stat", counting_stat)
    for _ in range(1000):
        slow.get()
    assert len(stats) == 0, "no stat() inside the interval"
    for _ in range(1000):
        fast.get()
    assert len(stats) == 1000, "check_interval=0 checks on every call"
    assert loader.calls == 2, "an unchanged file is never parsed again"


def test_change_not_seen_before_the_interval_but_by_refresh(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"old")
    make_old(path)
    watched = WatchedFile(path, CountingLoader(), check_interval=3600)
    write_atomically(path, b"new!")
    assert watched.get() == b"old"
    assert watched.refresh() is True
    assert watched.get() == b"new!"
    assert watched.refresh() is False
    assert watched.generation == 1


def test_failed_reload_keeps_last_good_copy_logs_once_and_retries(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"good 1")
    watched = WatchedFile(path, CountingLoader(fail_on=b"broken"), check_interval=0, what="test file")
    caplog.set_level(logging.INFO, logger="wsgiauth")
    write_atomically(path, b"broken")
    for _ in range(20):
        assert watched.get() == b"good 1"
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1
    assert str(path) in failures[0].getMessage()
    assert "ValueError" in failures[0].getMessage()
    assert "broken" not in failures[0].getMessage(), "file content never goes to the log"
    assert watched.generation == 0
    write_atomically(path, b"good 2")
    assert watched.get() == b"good 2"
    assert watched.generation == 1


def test_file_that_disappears_keeps_last_copy_and_comes_back(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"here")
    watched = WatchedFile(path, CountingLoader(), check_interval=0)
    caplog.set_level(logging.WARNING, logger="wsgiauth")
    path.unlink()
    for _ in range(10):
        assert watched.get() == b"here"
    gone = [r for r in caplog.records if str(path) in r.getMessage()]
    assert len(gone) == 1, "logged once, not on every check"
    path.write_bytes(b"back again")
    assert watched.get() == b"back again"


def test_reload_in_a_forked_child_even_if_the_lock_was_held(tmp_path: Path) -> None:
    """A fork while another thread holds the lock must not leave the child unable to reload."""
    path = tmp_path / "f"
    path.write_bytes(b"parent")
    watched = WatchedFile(path, CountingLoader(), check_interval=0)
    write_atomically(path, b"child sees this")
    watched._lock.acquire()  # as if another thread were reloading at the moment of the fork
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            ok = watched.get() == b"child sees this"
            os._exit(0 if ok else 1)
    finally:
        watched._lock.release()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_sixteen_threads_read_during_reloads(tmp_path: Path) -> None:
    """Readers never see an error or a torn value while the file is rewritten, in place and by rename."""
    path = tmp_path / "f"

    def content(n: int) -> bytes:
        return (b"%06d;" % n) * 2000  # 14 KB: an in-place write is not atomic for a concurrent reader

    def load(p: str) -> int:
        data = Path(p).read_bytes()
        parts = data.split(b";")[:-1]
        if len(parts) != 2000 or len(set(parts)) != 1:
            raise ValueError("torn read")  # a half-written file: the watcher must keep the last good copy
        return int(parts[0])

    path.write_bytes(content(0))
    watched = WatchedFile(path, load, check_interval=0)
    errors: list[BaseException] = []
    values: list[set[int]] = [set() for _ in range(16)]
    stop = threading.Event()

    def reader(i: int) -> None:
        try:
            last = -1
            while not stop.is_set():
                v = watched.get()
                assert isinstance(v, int)
                assert v >= last, "a reader never goes back to an older copy"
                last = v
                values[i].add(v)
                time.sleep(0.0002)  # a request does other work too; without it the writer starves on the GIL
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    try:
        for n in range(1, 61):
            (write_atomically if n % 2 else write_in_place)(path, content(n))
            time.sleep(0.002)
        wait_until(lambda: watched.get() == 60, timeout=10, interval=0.01, what="last version")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert not errors, errors[:3]
    assert watched.get() == 60
    assert all(len(v) >= 2 for v in values), "every reader saw reloads happen under it"
    assert watched.generation >= 2
