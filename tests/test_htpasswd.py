"""wsgiauth.backends.htpasswd through the mod_wsgi hooks, called the way mod_wsgi calls them.

mod_wsgi passes user, password and realm as ``str`` decoded as latin-1 from the raw request bytes, so a browser's
UTF-8 ``jürgen`` arrives as ``"jÃ¼rgen"``; ``as_wsgi`` below produces exactly that.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from backends._common import require_tool, wait_until
from wsgiauth import hashes
from wsgiauth.backends import htpasswd
from wsgiauth.exceptions import ConfigError, StoreError


def as_wsgi(text: str) -> str:
    """What mod_wsgi hands the hook for ``text`` typed in a browser (UTF-8 on the wire, decoded as latin-1)."""
    return text.encode("utf-8").decode("latin-1")


def sha(password: str) -> str:
    """An Apache {SHA} hash, as `htpasswd -nbs user PASSWORD` prints it."""
    return "{SHA}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()


def md5_ha1(user: str, realm: str, password: str) -> str:
    """HA1 as `htdigest` stores it: MD5 of user:realm:password, lowercase hex."""
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()


def env() -> dict[str, object]:
    return {"REMOTE_ADDR": "127.0.0.1", "wsgi.errors": io.StringIO()}


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(text.encode())
    os.replace(tmp, path)


def write_in_place(path: Path, text: str) -> None:
    with open(path, "r+b") as f:
        f.truncate(0)
        f.write(text.encode())


SCHEMES = {
    "md5": ["-m"],
    "bcrypt": ["-B", "-C", "4"],
    "sha1": ["-s"],
    "des": ["-d"],
    "sha256": ["-2"],
    "sha512": ["-5"],
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An htpasswd file written by Debian's htpasswd (every scheme, a UTF-8 name and password), a digest file and a
    group file."""
    tool = require_tool("htpasswd")
    d = tmp_path_factory.mktemp("site")
    users = d / ".htpasswd"
    first = True
    for name, opts in SCHEMES.items():
        subprocess.run([tool, *(["-c"] if first else []), "-b", *opts, str(users), f"user-{name}", f"pw-{name}"],
                       check=True, capture_output=True)
        first = False
    subprocess.run([tool, "-b", "-m", str(users), "jürgen", "päss wörd"], check=True, capture_output=True)
    subprocess.run([tool, "-b", "-B", "-C", "4", str(users), "alice", "secret"], check=True, capture_output=True)
    digest = d / ".htdigest"
    digest.write_text(
        f"alice:private area:{md5_ha1('alice', 'private area', 'secret')}\n"
        f"alice:other:{md5_ha1('alice', 'other', 'x')}\n"
        f"jürgen:private area:{md5_ha1('jürgen', 'private area', 'päss')}\n", encoding="utf-8")
    groups = d / ".htgroup"
    groups.write_text('admins: alice\nstaff: user-md5 alice "m 3"\nadmins: jürgen\nstäff: jürgen\n', encoding="utf-8")
    return {"users": users, "digest": digest, "groups": groups}


@pytest.fixture(scope="module")
def backend(files: dict[str, Path]) -> htpasswd.Backend:
    return htpasswd.Backend(files["users"], digest=files["digest"], groups=files["groups"])


# ------------------------------------------------------------------------------------------ Basic


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_right_wrong_unknown_every_scheme(backend: htpasswd.Backend, scheme: str) -> None:
    assert backend.check_password(env(), f"user-{scheme}", f"pw-{scheme}") is True
    assert backend.check_password(env(), f"user-{scheme}", "wrong") is False
    assert backend.check_password(env(), f"USER-{scheme}", f"pw-{scheme}") is None  # case-sensitive
    assert backend.check_password(env(), f"nobody-{scheme}", f"pw-{scheme}") is None


def test_utf8_name_and_password_as_mod_wsgi_passes_them(backend: htpasswd.Backend) -> None:
    assert backend.check_password(env(), as_wsgi("jürgen"), as_wsgi("päss wörd")) is True
    assert backend.check_password(env(), as_wsgi("jürgen"), as_wsgi("pass word")) is False
    # the same name in latin-1 bytes is another user (Apache compares raw bytes too)
    assert backend.check_password(env(), "jürgen", as_wsgi("päss wörd")) is None


def test_wrong_password_is_logged_without_the_password(backend: htpasswd.Backend) -> None:
    e = env()
    assert backend.check_password(e, "alice", "hunter2-wrong") is False
    log = e["wsgi.errors"].getvalue()  # type: ignore[attr-defined]
    assert "alice" in log
    assert "hunter2-wrong" not in log


def test_unknown_user_costs_a_hash_of_the_files_most_common_kind(files: dict[str, Path], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "users"
    bcrypt4 = hashes.hash_password(b"x", "bcrypt", cost=4)
    path.write_text(f"a:{sha('x')}\nb:{bcrypt4}\nc:{hashes.hash_password(b'y', 'bcrypt', cost=4)}\n")
    seen: list[str | None] = []
    monkeypatch.setattr(hashes, "dummy_verify", lambda password, like: seen.append(like))
    b = htpasswd.Backend(path)
    assert b.check_password(env(), "nobody", "pw") is None  # the very first request
    assert seen == [bcrypt4]


def test_plaintext_is_refused_as_apache_does(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("plain:secret\nempty:\nnocolon\n")
    b = htpasswd.Backend(path)
    assert b.check_password(env(), "plain", "secret") is False  # Apache on Linux: crypt() never matches
    assert b.check_password(env(), "empty", "") is False
    assert b.check_password(env(), "nocolon", "") is False


def test_allow_plaintext(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("plain:s3cret\nutf:pässword\n", encoding="utf-8")
    b = htpasswd.Backend(path, allow_plaintext=True)
    assert b.check_password(env(), "plain", "s3cret") is True
    assert b.check_password(env(), "plain", "wrong") is False
    assert b.check_password(env(), "utf", as_wsgi("pässword")) is True  # the file's UTF-8 bytes, compared raw
    assert b.check_password(env(), "utf", "pässword") is False  # latin-1 bytes on the wire: not the same password
    assert htpasswd.Backend(path).check_password(env(), "plain", "s3cret") is False


# ------------------------------------------------------------------------------------------ Digest and groups


def test_digest_realm_hash(backend: htpasswd.Backend) -> None:
    assert backend.get_realm_hash(env(), "alice", "private area") == md5_ha1("alice", "private area", "secret")
    assert backend.get_realm_hash(env(), "alice", "other") == md5_ha1("alice", "other", "x")
    assert backend.get_realm_hash(env(), "alice", "Private Area") is None
    assert backend.get_realm_hash(env(), "bob", "private area") is None
    assert backend.get_realm_hash(env(), as_wsgi("jürgen"), "private area") == md5_ha1("jürgen", "private area",
                                                                                     "päss")


def test_groups(backend: htpasswd.Backend) -> None:
    assert backend.groups_for_user(env(), "alice") == ["admins", "staff"]
    assert backend.groups_for_user(env(), "user-md5") == ["staff"]
    assert backend.groups_for_user(env(), "m 3") == ["staff"]
    assert backend.groups_for_user(env(), "nobody") == []
    # mod_wsgi encodes each group as latin-1: the str must give back the file's UTF-8 bytes
    got = backend.groups_for_user(env(), as_wsgi("jürgen"))
    assert [g.encode("latin-1") for g in got] == [b"admins", "stäff".encode()]


def test_a_file_per_hook_is_optional(files: dict[str, Path]) -> None:
    only_groups = htpasswd.Backend(groups=files["groups"])
    assert only_groups.check_password(env(), "alice", "secret") is None
    assert only_groups.get_realm_hash(env(), "alice", "private area") is None
    assert only_groups.groups_for_user(env(), "alice") == ["admins", "staff"]
    only_users = htpasswd.Backend(files["users"])
    assert only_users.groups_for_user(env(), "alice") == []
    assert only_users.label == "htpasswd"
    assert htpasswd.Backend(files["users"], label="site").label == "site"


def test_configuration_errors(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least one file"):
        htpasswd.Backend()
    with pytest.raises(ConfigError, match="check_interval"):
        htpasswd.Backend(files["users"], check_interval=-1)
    with pytest.raises(StoreError) as info:
        htpasswd.Backend(files["users"], groups=tmp_path / "missing.htgroup")
    assert str(tmp_path / "missing.htgroup") in str(info.value)
    assert f"uid {os.geteuid()}" in str(info.value)


# ------------------------------------------------------------------------------------------ reloading


@pytest.mark.parametrize("writer", [write_atomically, write_in_place], ids=["atomic-rename", "in-place"])
def test_changed_password_in_force_within_the_interval(tmp_path: Path, writer) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "users"
    path.write_text(f"alice:{sha('old password')}\nbob:{sha('bob')}\n")
    b = htpasswd.Backend(path, check_interval=0.3)
    assert b.check_password(env(), "alice", "old password") is True
    generation = b.generation()
    writer(path, f"alice:{sha('new password')}\nbob:{sha('bob')}\n")  # same size: only the content differs
    start = time.monotonic()
    wait_until(lambda: b.check_password(env(), "alice", "new password") is True, timeout=5, interval=0.02,
               what="new password")
    assert time.monotonic() - start < 2.0
    assert b.check_password(env(), "alice", "old password") is False
    assert b.generation() != generation


def test_groups_and_digest_files_reload_too(tmp_path: Path) -> None:
    users, digest, groups = tmp_path / "u", tmp_path / "d", tmp_path / "g"
    users.write_text(f"alice:{sha('x')}\n")
    digest.write_text(f"alice:r:{md5_ha1('alice', 'r', 'one')}\n")
    groups.write_text("staff: alice\n")
    b = htpasswd.Backend(users, digest=digest, groups=groups, check_interval=0.1)
    write_atomically(digest, f"alice:r:{md5_ha1('alice', 'r', 'two')}\n")
    write_atomically(groups, "staff: bob\nadmins: alice\n")
    wait_until(lambda: b.groups_for_user(env(), "alice") == ["admins"], timeout=5, interval=0.02, what="groups")
    wait_until(lambda: b.get_realm_hash(env(), "alice", "r") == md5_ha1("alice", "r", "two"), timeout=5,
               interval=0.02, what="digest")
    assert b.refresh() is False


def test_failed_reload_keeps_the_last_good_copy(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "users"
    path.write_text(f"alice:{sha('one')}\n")
    b = htpasswd.Backend(path, check_interval=0)
    caplog.set_level(logging.WARNING, logger="wsgiauth")
    path.unlink()
    path.mkdir()  # a broken deployment: the path now names a directory
    for _ in range(5):
        assert b.check_password(env(), "alice", "one") is True
    assert any(str(path) in r.getMessage() and "keeping the last good copy" in r.getMessage() for r in caplog.records)
    path.rmdir()
    path.write_text(f"alice:{sha('two')}\n")
    assert b.check_password(env(), "alice", "two") is True
    assert b.check_password(env(), "alice", "one") is False


def test_sixteen_threads_during_reloads(tmp_path: Path) -> None:
    """Requests never fail while the file is replaced again and again."""
    path = tmp_path / "users"

    def content(n: int) -> str:
        filler = "".join(f"user{i}:{sha(str(i))}\n" for i in range(200))
        return f"alice:{sha(f'pw{n}')}\n{filler}bob:{sha('bob')}\n"

    path.write_text(content(0))
    b = htpasswd.Backend(path, check_interval=0)
    errors: list[object] = []
    stop = threading.Event()
    counts = [0] * 16

    def worker(i: int) -> None:
        e = env()
        try:
            while not stop.is_set():
                if b.check_password(e, "bob", "bob") is not True:
                    errors.append("bob refused")
                if b.check_password(e, "alice", "pw-never") is not False:
                    errors.append("alice not denied")
                counts[i] += 1
                time.sleep(0.0002)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    try:
        for n in range(1, 41):
            write_atomically(path, content(n))
            time.sleep(0.003)
        wait_until(lambda: b.check_password(env(), "alice", "pw40") is True, timeout=10, interval=0.01,
                   what="last version")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert not errors, errors[:3]
    assert all(c > 0 for c in counts)
    assert b.generation() >= 2
