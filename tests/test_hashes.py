"""wsgiauth.hashes against the real tools: Apache's htpasswd/htdigest, openssl passwd, mkpasswd (libxcrypt),
Django's and Werkzeug's hashers, argon2-cffi, libpass.

Each format is tested twice: with vectors generated now by the installed tool (a missing tool skips locally and fails
in CI), and with frozen copies below, each with the command that produced it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pty
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backends._common import require_tool
from wsgiauth import hashes
from wsgiauth.exceptions import InvalidHashError, UnsupportedHashError

PASSWORD = b"correct horse"

# ------------------------------------------------------------------------------------------------ frozen vectors
# Every hash below is of the password "correct horse" unless said otherwise.
FROZEN: list[tuple[str, str]] = [
    # htpasswd -nb -m alice 'correct horse'   (Debian 12, apache2-utils 2.4)
    ("apr1", "$apr1$eZML9FfC$poeM/yJs31H62DRDOZ6PX1"),
    # htpasswd -nb -B alice 'correct horse'
    ("bcrypt", "$2y$05$lBLNJ1ftm4Gj1t4TERgGvuOOM9fqy/r.A0jIcHZsdVEF8LLAPMbzO"),
    # htpasswd -nbB -C 4 alice 'correct horse'
    ("bcrypt", "$2y$04$2ga8h67pbXlTTEa0wQvpA.cf757MmNCIyg.llCUAXqSAslUH6E6rO"),
    # htpasswd -nb -s alice 'correct horse'
    ("sha1", "{SHA}L55TUjtiq8FBorTWAZ0jy6g129A="),
    # htpasswd -nb -d alice 'correct horse'   (DES: only "correct " counts)
    ("des", "NlhgWsCycyKww"),
    # htpasswd -nb -2 alice 'correct horse'
    ("sha256_crypt", "$5$ZKFNIi9xYIKJnZVe$ysN5m7DA5T7nZXmm1y4i06aNTfjJWAk4t7GsYjLMRf0"),
    # htpasswd -nb -5 alice 'correct horse'
    ("sha512_crypt", "$6$pfHwT3jt6/pse.1V$wrRs52380tH98j6awR0Yd8ftDauCOChiEYZjvXQlTOQtBeAOMVknPpqRGnn.JLOvOaH58aR6nXubBPA1hyMTN0"),
    # htpasswd -nb -2 -r 10000 alice 'correct horse'
    ("sha256_crypt", "$5$rounds=10000$EHm9GhbTDgl0mAvy$FTO0SM23j5zGkWhGAAYm6V8g2P6.QUf4kiBu2/i8bC6"),
    # htpasswd -nb -5 -r 10000 alice 'correct horse'
    ("sha512_crypt", "$6$rounds=10000$xdFj24H3fuFZ4/Mz$0nNfWViwW3nS2wg.Q1lxQ6zCOQmSAkd2anGrmXOeFcA5iaada16eoxH9OmGbWYh32DFztLHgZFz1AoCOhXiC7/"),
    # openssl passwd -apr1 'correct horse'
    ("apr1", "$apr1$lrEkk09U$kzeMUNG3R4FyC4xYeOjN/."),
    # openssl passwd -1 'correct horse'
    ("md5_crypt", "$1$U.U9Qy4P$GwdkSiyIA2vGN3L6INY9n1"),
    # openssl passwd -5 'correct horse'
    ("sha256_crypt", "$5$YomKnGhDDMfHFEpQ$0vMUcF8vY1jaYJwILrJWtpN7t3TUCuPmKbSupdN.HF/"),
    # openssl passwd -6 'correct horse'
    ("sha512_crypt", "$6$Q1AHBB4FC02hb8JB$Y40jfV1GXv3ykm3vv7/ebKXZ05rLCeHkuTaeGUvr1IDY8n7XcbYmxy5A2lCvtmW6n4PTL/rCjJqFMlRArBgMZ1"),
    # mkpasswd -m yescrypt 'correct horse'
    ("yescrypt", "$y$j9T$Tg2UA3AvkAcRnxyY0pi7D0$ADomNZK0PPzyEdOy9AvLO7Jd88WpYUEo/d9fGn5VTEB"),
    # mkpasswd -m yescrypt -R 3 'correct horse'
    ("yescrypt", "$y$j7T$1gyvgXcqIWqj1b3eLZg7o.$XlFsOAGGzDWlXZgpxqzSMb4eMM.SPKaiaVrluEZGzO8"),
    # mkpasswd -m gost-yescrypt -R 3 'correct horse'
    ("gost_yescrypt", "$gy$j7T$zPJMC/vlK/B2TOdC4SthP0$yYu7QimTp65bQRWfTN9oljDeXONo/.l1xAQNmUFzsV8"),
    # mkpasswd -m scrypt -R 6 'correct horse'   (the cheapest cost mkpasswd accepts)
    ("scrypt_crypt", "$7$BU..../....XGZuxjuLDtS.Z9RrG/BSs0$O3NGxTMT/m9AmzwH8en1fjPQxlQjP0evRMLw.3nxmdD"),
    # mkpasswd -m bcrypt-a 'correct horse'
    ("bcrypt", "$2a$05$.u8WQXzkFrZ3IQbZFOu1U.5xc6PvDlkldlrF9mF2YUKyWhUU/O1vi"),
    # mkpasswd -m bsdicrypt 'correct horse'
    ("bsdi_crypt", "_J9..BiKGMimP6Si.K4k"),
    # Django 5.2: PBKDF2PasswordHasher().encode("correct horse", PBKDF2PasswordHasher().salt(), iterations=10000)
    ("django_pbkdf2_sha256", "pbkdf2_sha256$10000$gPFpRl7wsOVjB7jZjYs4hj$TP28u6qOWcUCv/5e7TiKW/fsQ5orZgAhd9iIx1gDAsE="),
    # Django 5.2: PBKDF2SHA1PasswordHasher().encode("correct horse", ..., iterations=10000)
    ("django_pbkdf2_sha1", "pbkdf2_sha1$10000$OEwnz5fxe7PSYcgqPgfUvM$NSybXPbKpbXhimvEJ4n4EPi4TXo="),
    # Django 5.2: h = Argon2PasswordHasher(); h.memory_cost, h.time_cost, h.parallelism = 1024, 1, 1;
    #             h.encode("correct horse", h.salt())
    ("django_argon2", "argon2$argon2id$v=19$m=1024,t=1,p=1$elBQWUtZNlpsaTdXVTRjTWlXeW9sVg$dZwuPL1PuH3n7iuLDDqoxOcBvZrEyQrVxN9Rj1UGSf0"),
    # Django 5.2: h = BCryptSHA256PasswordHasher(); h.rounds = 4; h.encode("correct horse", h.salt())
    ("django_bcrypt_sha256", "bcrypt_sha256$$2b$04$UUva8mUkQ3K9UNql7GCDiu2sNuTNjrtjraXhCF2dS5RTt7yZFkRSO"),
    # Django 5.2: h = BCryptPasswordHasher(); h.rounds = 4; h.encode("correct horse", h.salt())
    ("django_bcrypt", "bcrypt$$2b$04$7TzZvKddwLOJBWQoRZwUjORY414EsSo/2F9SDsgpTRqbBRdFqlHeq"),
    # Django 5.2: h = ScryptPasswordHasher(); h.encode("correct horse", h.salt(), n=1024)
    ("django_scrypt", "scrypt$1024$U9WzeoSvSHtQEX6IIkZQKO$8$5$XVMUlH3qc8Cx2diO8Qjq8HcF6xF9eBf4zIq+DFM4Y3+TvO3o2wW8/0gGKx35KPKqCK4kolQuw+gdTg109wWZ7w=="),
    # Werkzeug 3.1: generate_password_hash("correct horse", "pbkdf2:sha256:10000")
    ("werkzeug_pbkdf2", "pbkdf2:sha256:10000$N3PjOvWyLtqciHOu$795555ab4e49c39acab3de632e469e452d00a56b6365856a6ede995ecb02d14a"),
    # Werkzeug 3.1: generate_password_hash("correct horse", "pbkdf2:sha512:10000")
    ("werkzeug_pbkdf2", "pbkdf2:sha512:10000$rPxZ99LJXKzk8vQq$01d8da8e67cf517a670499cce097fe896a1e9582a2dc4352c336083f388dd16bdee4cee58f77cac39c1beee8c048c09f431653964afbce10374eb7849bbbf1c5"),
    # Werkzeug 3.1: generate_password_hash("correct horse", "scrypt:1024:8:1")
    ("werkzeug_scrypt", "scrypt:1024:8:1$hJ78fC1guYKuQQRK$43afcfee3b0def4b18adffc4ea7c93e86c59aa5a2b191219c61611128a61a8c3632b587f1de26657ec71f9ec0eda848aefa257a5c88de1e87b71b7ee4bb98992"),
    # argon2-cffi 25.1: PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("correct horse")
    ("argon2", "$argon2id$v=19$m=1024,t=1,p=1$Hx26P9VeFuzEs63EHPnjNg$jww+3iocX2myBEgFjb9OTSXR6TGydRhdkqQuuc7HDtk"),
    # argon2-cffi 25.1: PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=Type.I).hash("correct horse")
    ("argon2", "$argon2i$v=19$m=1024,t=1,p=1$RLZnD0Iw5Cq19YOOYtZlPw$dl3i9HkMYv1m/ZOU10wyDa669JCJgw/k6241gRdCkPk"),
]
FIRST = {scheme: stored for scheme, stored in reversed(FROZEN)}  # the first frozen vector of each scheme

# Password "" — htpasswd -nbm bob ''
FROZEN_EMPTY = "$apr1$xA51t1te$9J4LGegbgR7H/7EzzdUkl1"
# Password "pässwörd" as UTF-8 — htpasswd -nbm carol 'pässwörd'   (UTF-8 terminal)
FROZEN_UTF8 = "$apr1$UBvys2HM$Y90gQ5kWrg0Er09A1IFOq."
# Password b"p\xe4ss" (latin-1 "päss") — htpasswd -nbm erin "$(printf 'p\xe4ss')"
FROZEN_LATIN1 = "$apr1$fkJYsdbz$CuZAkZqwAO.DReM3U72BC."
# Password "pässwörd" as UTF-8 — LC_ALL=C htpasswd -nb -5 carol 'pässwörd'
FROZEN_UTF8_SHA512 = "$6$7UZBbLjyJAK.R8kg$27A6nKUhgUAMdjsP3Vv7t22X1jrOfljLnZWtqjKnB96/MMJu5ofG4Cqo//4AEuWSMVg8FpAHVy./Ki0m749uB."
# Password "a" * 100 — htpasswd -nbB dave "$(printf 'a%.0s' {1..100})"   (Apache's bcrypt reads 72 bytes)
FROZEN_BCRYPT_LONG = "$2y$05$UjlHxvkjkTDiFbBEMhKCXehwrCQoz9LrFFH9rikafaNeRArDWsReq"
# htdigest -c FILE 'wsgiauth realm' alice   (password "correct horse" typed twice) -> the file's line:
FROZEN_HTDIGEST = "alice:wsgiauth realm:5972ba2dd576ebbfa7c99e7acdd62d19"


@pytest.mark.parametrize(("scheme", "stored"), FROZEN, ids=[f"{i}-{s}" for i, (s, _) in enumerate(FROZEN)])
def test_frozen_vectors(scheme: str, stored: str) -> None:
    assert hashes.identify(stored) == scheme
    assert hashes.verify(PASSWORD, stored) is True
    assert hashes.verify(b"Correct horse", stored) is False
    assert hashes.verify(b"correct horsE", stored) is (scheme == "des")  # DES reads 8 characters
    assert hashes.verify(b"", stored) is False


def test_frozen_des_reads_eight_characters() -> None:
    des = FIRST["des"]
    assert hashes.verify(b"correct ", des) is True
    assert hashes.verify(b"correct whatever", des) is True
    assert hashes.verify(b"correct", des) is False


def test_frozen_encodings() -> None:
    assert hashes.verify(b"", FROZEN_EMPTY) is True
    assert hashes.verify(b" ", FROZEN_EMPTY) is False
    assert hashes.verify("pässwörd".encode(), FROZEN_UTF8) is True
    assert hashes.verify("pässwörd".encode("latin-1"), FROZEN_UTF8) is False
    assert hashes.verify("pässwörd".encode(), FROZEN_UTF8_SHA512) is True
    assert hashes.verify("pässwörd".encode("latin-1"), FROZEN_UTF8_SHA512) is False
    assert hashes.verify(b"p\xe4ss", FROZEN_LATIN1) is True
    assert hashes.verify("päss".encode(), FROZEN_LATIN1) is False


def test_frozen_bcrypt_72_bytes() -> None:
    assert hashes.verify(b"a" * 100, FROZEN_BCRYPT_LONG) is True
    assert hashes.verify(b"a" * 72, FROZEN_BCRYPT_LONG) is True  # Apache reads the first 72 bytes only
    assert hashes.verify(b"a" * 72 + b"anything else", FROZEN_BCRYPT_LONG) is True
    assert hashes.verify(b"a" * 71, FROZEN_BCRYPT_LONG) is False


# bcrypt and 8-bit passwords: crypt_blowfish (Apache's and libxcrypt's bcrypt) keeps a safety measure in $2a$ that
# makes "\xff\xff\xa3" hash differently from $2b$/$2y$; $2x$ is the old sign-extension bug, which Apache still accepts.
BLOWFISH_8BIT = [
    # mkpasswd -m bcrypt-a -R 5 -S /OK.fbVrR/bpIqNJ5ianF. "$(printf '\xff\xff\xa3')"
    ("$2a$05$/OK.fbVrR/bpIqNJ5ianF.nqd1wy.pTMdcvrRWxyiGL2eMz.2a85.", b"\xff\xff\xa3"),
    # mkpasswd -m bcrypt -R 5 -S /OK.fbVrR/bpIqNJ5ianF. "$(printf '\xff\xff\xa3')"
    ("$2b$05$/OK.fbVrR/bpIqNJ5ianF.CE5elHaaO4EbggVDjb8P19RukzXSM3e", b"\xff\xff\xa3"),
    # the same, relabelled $2y$ (what htpasswd -B writes: the same algorithm as $2b$)
    ("$2y$05$/OK.fbVrR/bpIqNJ5ianF.CE5elHaaO4EbggVDjb8P19RukzXSM3e", b"\xff\xff\xa3"),
    # mkpasswd -m bcrypt-a -R 5 -S /OK.fbVrR/bpIqNJ5ianF. "$(printf '\xa3')"
    ("$2a$05$/OK.fbVrR/bpIqNJ5ianF.Sa7shbm4.OzKpvFnX1pQLmQW96oUlCq", b"\xa3"),
    # libxcrypt crypt("\xa3", "$2x$05$/OK.fbVrR/bpIqNJ5ianF.") (the buggy variant: "\xff\xff\xa3" collides with it)
    ("$2x$05$/OK.fbVrR/bpIqNJ5ianF.CE5elHaaO4EbggVDjb8P19RukzXSM3e", b"\xa3"),
]


@pytest.mark.parametrize(("stored", "password"), BLOWFISH_8BIT)
def test_bcrypt_8bit_as_apache(tmp_path: Path, stored: str, password: bytes) -> None:
    assert hashes.identify(stored) == "bcrypt"
    assert hashes.verify(password, stored) is True
    assert hashes.verify(password + b"!", stored) is False
    assert _apache_accepts(tmp_path, stored, password) is True  # htpasswd -v: Apache's own check agrees


def test_bcrypt_2a_differs_from_the_bcrypt_package() -> None:
    # The reason bcrypt is checked through crypt_blowfish: the bcrypt package reads $2a$ as $2b$ and refuses this.
    import bcrypt

    stored, password = BLOWFISH_8BIT[0]
    assert bcrypt.checkpw(password, stored.encode()) is False
    assert hashes.verify(password, stored) is True
    assert hashes.needs_update(BLOWFISH_8BIT[-1][0], "bcrypt", cost=5) is True  # $2x$ is legacy
    assert hashes.needs_update(BLOWFISH_8BIT[0][0], "bcrypt", cost=5) is False


def test_frozen_htdigest() -> None:
    user, realm, ha1 = FROZEN_HTDIGEST.split(":")
    assert hashes.ha1(user.encode(), realm.encode(), PASSWORD) == ha1


# ------------------------------------------------------------------------------------------------ live tools


def _htpasswd(*args: str | bytes) -> str:
    exe = require_tool("htpasswd")
    out = subprocess.run([exe, "-nb", *args], check=True, capture_output=True, timeout=60).stdout
    return out.decode("ascii").strip().split(":", 1)[1]


HTPASSWD_OPTIONS = [("-m",), ("-B",), ("-B", "-C", "6"), ("-s",), ("-d",), ("-2",), ("-5",), ("-2", "-r", "6000"),
                    ("-5", "-r", "6000")]


@pytest.mark.parametrize("options", HTPASSWD_OPTIONS, ids=" ".join)
def test_htpasswd_live(options: tuple[str, ...]) -> None:
    stored = _htpasswd(*options, "alice", "correct horse")
    assert hashes.verify(PASSWORD, stored) is True
    assert hashes.verify(b"Correct horse", stored) is False
    assert hashes.verify(b"correct horsf", stored) is ("-d" in options)  # DES reads 8 characters
    if "-r" in options:
        assert "rounds=6000$" in stored
    if "-B" in options:
        assert stored.startswith("$2y$")


@pytest.mark.parametrize("option", ["-m", "-B", "-s", "-2", "-5"])
def test_htpasswd_live_byte_passwords(option: str) -> None:
    for password in (b"", "pässwörd".encode(), b"p\xe4ss\xff", b"x" * 200):
        stored = _htpasswd(option, "alice", password)
        assert hashes.verify(password, stored) is True, password
        assert hashes.verify(password + b"!", stored) is (option == "-B" and len(password) >= 72)


def test_htpasswd_live_bcrypt_truncates_like_apache() -> None:
    long = bytes(range(33, 127)) + b"xyz"  # 97 bytes
    stored = _htpasswd("-B", "-C", "4", "alice", long)
    assert hashes.verify(long[:72], stored) is True
    assert hashes.verify(long[:72] + b"something else", stored) is True
    assert hashes.verify(long[:71], stored) is False


def _apache_accepts(tmp_path: Path, stored: str, password: bytes) -> bool:
    """Ask Apache's own password check (apr_password_validate, via ``htpasswd -v``) whether ``password`` matches."""
    exe = require_tool("htpasswd")
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{stored}\n", encoding="ascii")
    rc = subprocess.run([exe, "-vb", str(path), "alice", password], capture_output=True, timeout=60).returncode
    assert rc in (0, 3), rc  # 3: "password verification failed"
    return rc == 0


APACHE_SCHEMES = ["bcrypt", "apr1", "sha1", "des", "md5_crypt", "sha256_crypt", "sha512_crypt", "yescrypt"]


@pytest.mark.parametrize("scheme", APACHE_SCHEMES)
def test_apache_accepts_our_hashes(tmp_path: Path, scheme: str) -> None:
    """Hashes we create are verified by Apache exactly as by us (same answers for right and wrong passwords)."""
    params = {"bcrypt": {"cost": 4}, "sha256_crypt": {"rounds": 1000}, "sha512_crypt": {"rounds": 1000},
              "yescrypt": {"cost": 3}}.get(scheme, {})
    for password in (b"correct horse", "pässwörd".encode(), b"p\xe4ss\xff", b"x" * 100):
        stored = hashes.hash_password(password, scheme, **params)
        for attempt in (password, password[:72] + b"tail", b"Correct horse", password[:-1]):
            if not attempt or b"\x00" in attempt:
                continue
            assert hashes.verify(attempt, stored) is _apache_accepts(tmp_path, stored, attempt), (scheme, attempt)
    assert _apache_accepts(tmp_path, hashes.hash_password(b"", "apr1"), b"") is True


def _openssl_passwd(algo: str, password: str) -> str:
    exe = require_tool("openssl")
    return subprocess.run([exe, "passwd", algo, password], check=True, capture_output=True, text=True,
                          timeout=60).stdout.strip()


@pytest.mark.parametrize(("algo", "scheme"), [("-apr1", "apr1"), ("-1", "md5_crypt"), ("-5", "sha256_crypt"),
                                              ("-6", "sha512_crypt")])
def test_openssl_passwd_live(algo: str, scheme: str) -> None:
    # (openssl passwd -5/-6 print "<NULL>" for an empty password: only -apr1 and -1 get one)
    for password in ("correct horse", "pässwörd", "x" * 100, *([""] if algo in ("-apr1", "-1") else [])):
        stored = _openssl_passwd(algo, password)
        assert hashes.identify(stored) == scheme
        assert hashes.verify(password.encode(), stored) is True
        assert hashes.verify(password.encode() + b"?", stored) is False


def test_openssl_apr1_with_given_salt_matches_ours() -> None:
    exe = require_tool("openssl")
    for salt in ("abcdefgh", "a", "./09AZaz"):
        theirs = subprocess.run([exe, "passwd", "-apr1", "-salt", salt, "correct horse"], check=True,
                                capture_output=True, text=True, timeout=60).stdout.strip()
        assert hashes.hash_password(PASSWORD, "apr1", salt=salt) == theirs


@pytest.mark.parametrize(("method", "scheme"), [("yescrypt", "yescrypt"), ("gost-yescrypt", "gost_yescrypt"),
                                                ("scrypt", "scrypt_crypt"), ("md5crypt", "md5_crypt"),
                                                ("sha512crypt", "sha512_crypt"), ("descrypt", "des"),
                                                ("bsdicrypt", "bsdi_crypt"), ("bcrypt", "bcrypt")])
def test_mkpasswd_live(method: str, scheme: str) -> None:
    exe = require_tool("mkpasswd")
    cost = {"scrypt": ["-R", "6"], "yescrypt": ["-R", "3"], "gost-yescrypt": ["-R", "3"], "bcrypt": ["-R", "4"]}
    stored = subprocess.run([exe, "-m", method, *cost.get(method, []), "correct horse"], check=True,
                            capture_output=True, text=True, timeout=60).stdout.strip()
    assert hashes.identify(stored) == scheme
    assert hashes.verify(PASSWORD, stored) is True
    assert hashes.verify(b"wrong horse", stored) is False


def _htdigest(path: Path, realm: str, user: str, password: bytes) -> None:
    """Run ``htdigest -c`` on a pseudo-terminal (it reads the password from the tty) and type the password twice."""
    exe = require_tool("htdigest")
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal
        try:
            os.execv(exe, [exe, "-c", str(path), realm, user])
        finally:
            os._exit(127)
    output, typed = b"", 0
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            while output.count(b"password:") > typed:
                os.write(fd, password + b"\n")
                typed += 1
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, output


@pytest.mark.parametrize(("user", "realm", "password"), [
    ("alice", "wsgiauth realm", b"correct horse"),
    ("bob", "Private Area", "pässwörd".encode()),
    ("carol", "r", b""),
])
def test_htdigest_live(tmp_path: Path, user: str, realm: str, password: bytes) -> None:
    path = tmp_path / "htdigest"
    _htdigest(path, realm, user, password)
    line = path.read_bytes().decode("utf-8").strip()
    f_user, f_realm, f_ha1 = line.split(":")
    assert (f_user, f_realm) == (user, realm)
    assert hashes.ha1(user.encode(), realm.encode(), password) == f_ha1


# ------------------------------------------------------------------------------------------------ frameworks


@pytest.fixture(scope="module")
def django_hashers() -> object:
    from django.conf import settings

    if not settings.configured:
        settings.configure(PASSWORD_HASHERS=[
            "django.contrib.auth.hashers.PBKDF2PasswordHasher",
            "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
        ])
    from django.contrib.auth import hashers

    return hashers


DJANGO_CHEAP = {"Argon2PasswordHasher": {"memory_cost": 1024, "time_cost": 1, "parallelism": 1},
                "BCryptSHA256PasswordHasher": {"rounds": 4}, "BCryptPasswordHasher": {"rounds": 4},
                "ScryptPasswordHasher": {"work_factor": 1024}}


@pytest.mark.parametrize(("hasher", "scheme", "ours"), [
    ("Argon2PasswordHasher", "django_argon2", {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}),
    ("BCryptSHA256PasswordHasher", "django_bcrypt_sha256", {"cost": 4}),
    ("ScryptPasswordHasher", "django_scrypt", {"n": 1024}),
])
def test_django_live_other_hashers(django_hashers: object, hasher: str, scheme: str, ours: dict[str, int]) -> None:
    h = getattr(django_hashers, hasher)()
    for attr, value in DJANGO_CHEAP[hasher].items():
        setattr(h, attr, value)
    for password in ("correct horse", "pässwörd", "x" * 100):
        stored = h.encode(password, h.salt())
        assert hashes.identify(stored) == scheme
        assert hashes.verify(password.encode(), stored) is True
        assert hashes.verify(password.encode() + b"x", stored) is False
    made = hashes.hash_password("pässwörd".encode() * 10, scheme, **ours)  # 100 bytes: bcrypt_sha256 reads all
    assert h.verify("pässwörd" * 10, made) is True
    assert h.verify("pässwörd" * 9 + "passwörd", made) is False
    assert hashes.needs_update(made, scheme, **ours) is False


def test_django_live_bcrypt(django_hashers: object) -> None:
    h = django_hashers.BCryptPasswordHasher()  # type: ignore[attr-defined]
    h.rounds = 4
    stored = h.encode("correct horse", h.salt())
    assert hashes.identify(stored) == "django_bcrypt"
    assert hashes.verify(PASSWORD, stored) is True
    assert hashes.verify(b"correct horsE", stored) is False


@pytest.mark.parametrize(("hasher", "scheme"), [("PBKDF2PasswordHasher", "django_pbkdf2_sha256"),
                                                ("PBKDF2SHA1PasswordHasher", "django_pbkdf2_sha1")])
def test_django_live(django_hashers: object, hasher: str, scheme: str) -> None:
    h = getattr(django_hashers, hasher)()
    for password in ("correct horse", "pässwörd", ""):
        stored = h.encode(password, h.salt(), iterations=2000)
        assert hashes.identify(stored) == scheme
        assert hashes.verify(password.encode(), stored) is True
        assert hashes.verify(password.encode() + b"x", stored) is False
    ours = hashes.hash_password("pässwörd".encode(), scheme, iterations=2000)
    assert h.verify("pässwörd", ours) is True
    assert h.verify("passwort", ours) is False


def test_werkzeug_live() -> None:
    from werkzeug.security import check_password_hash, generate_password_hash

    for method in ("pbkdf2:sha256:2000", "pbkdf2:sha1:2000", "pbkdf2:sha512:2000", "scrypt:1024:8:1"):
        for password in ("correct horse", "pässwörd"):
            stored = generate_password_hash(password, method)
            assert hashes.verify(password.encode(), stored) is True, method
            assert hashes.verify(b"nope", stored) is False
    stored = generate_password_hash("correct horse", "scrypt")  # Werkzeug's defaults: scrypt:32768:8:1
    assert stored.startswith("scrypt:32768:8:1$")
    assert hashes.verify(PASSWORD, stored) is True
    ours = hashes.hash_password(PASSWORD, "werkzeug_pbkdf2", iterations=2000)
    assert check_password_hash(ours, "correct horse") is True
    assert check_password_hash(ours, "correct horsE") is False
    ours = hashes.hash_password(PASSWORD, "werkzeug_scrypt", n=1024)
    assert check_password_hash(ours, "correct horse") is True


def test_werkzeug_default_iterations() -> None:
    # Werkzeug reads "pbkdf2:sha256" (no count) with its default count.
    from werkzeug.security import DEFAULT_PBKDF2_ITERATIONS, _hash_internal

    digest, _ = _hash_internal("pbkdf2:sha256", "saltsalt", "correct horse")
    assert hashes.WERKZEUG_DEFAULT_ITERATIONS == DEFAULT_PBKDF2_ITERATIONS
    assert hashes.verify(PASSWORD, f"pbkdf2:sha256$saltsalt${digest}") is True


def test_argon2_live() -> None:
    import argon2

    for kind in (argon2.low_level.Type.ID, argon2.low_level.Type.I):
        ph = argon2.PasswordHasher(time_cost=1, memory_cost=2048, parallelism=2, type=kind)
        stored = ph.hash(PASSWORD)
        assert hashes.verify(PASSWORD, stored) is True
        assert hashes.verify(b"x", stored) is False
    ours = hashes.hash_password(PASSWORD, "argon2", time_cost=1, memory_cost=2048, parallelism=1)
    assert ours.startswith("$argon2id$")
    assert argon2.PasswordHasher().verify(ours, PASSWORD) is True


def test_libpass_cross_check() -> None:
    from passlib.hash import apr_md5_crypt, bcrypt, md5_crypt, sha256_crypt, sha512_crypt

    for handler, scheme, params in ((apr_md5_crypt, "apr1", {}), (md5_crypt, "md5_crypt", {}),
                                    (sha256_crypt, "sha256_crypt", {"rounds": 6000}),
                                    (sha512_crypt, "sha512_crypt", {"rounds": 6000}),
                                    (bcrypt, "bcrypt", {"cost": 4})):
        ours = hashes.hash_password(PASSWORD, scheme, **params)
        assert handler.verify(PASSWORD, ours) is True, scheme
        assert handler.verify(b"correct horsE", ours) is False
    theirs = apr_md5_crypt.hash(PASSWORD)
    assert hashes.verify(PASSWORD, theirs) is True


# ------------------------------------------------------------------------------------------------ every scheme

CHEAP: dict[str, dict[str, int]] = {
    "bcrypt": {"cost": 4},
    "sha256_crypt": {"rounds": 1000},
    "sha512_crypt": {"rounds": 1000},
    "yescrypt": {"cost": 3},
    "argon2": {"time_cost": 1, "memory_cost": 1024, "parallelism": 1},
    "django_pbkdf2_sha256": {"iterations": 1000},
    "django_pbkdf2_sha1": {"iterations": 1000},
    "werkzeug_pbkdf2": {"iterations": 1000},
    "werkzeug_scrypt": {"n": 1024},
    "django_argon2": {"time_cost": 1, "memory_cost": 1024, "parallelism": 1},
    "django_bcrypt_sha256": {"cost": 4},
    "django_scrypt": {"n": 1024},
}
MADE = ["bcrypt", "apr1", "sha1", "des", "md5_crypt", "sha256_crypt", "sha512_crypt", "yescrypt", "argon2",
        "django_pbkdf2_sha256", "django_pbkdf2_sha1", "werkzeug_pbkdf2", "werkzeug_scrypt", "django_argon2",
        "django_bcrypt_sha256", "django_scrypt"]


def _altered(password: bytes) -> bytes:
    """A different password that differs within the first 8 bytes (DES reads no more)."""
    return bytes([password[0] ^ 1]) + password[1:] if password else b"x"


def test_creatable_schemes() -> None:
    assert set(MADE) == set(hashes.CREATABLE_SCHEMES)
    assert set(hashes.CREATABLE_SCHEMES) < set(hashes.SCHEMES)


@pytest.mark.parametrize("scheme", MADE)
def test_round_trip_every_scheme(scheme: str) -> None:
    params = CHEAP.get(scheme, {})
    for password in (PASSWORD, b"", "pässwörd".encode(), "päss".encode("latin-1"), bytes(range(1, 60))):
        stored = hashes.hash_password(password, scheme, **params)
        assert hashes.identify(stored) == scheme
        assert hashes.verify(password, stored) is True
        assert hashes.verify(_altered(password), stored) is False
        assert hashes.verify(password + b"x", stored) is (scheme == "des" and len(password) >= 8)
        assert hashes.verify(b"\x00" + password, stored) is False
        assert hashes.needs_update(stored, scheme, **params) is False or scheme in ("md5_crypt", "sha256_crypt")
        assert hashes.needs_update(stored, "argon2" if scheme != "argon2" else "bcrypt") is True


def test_bcrypt_default_is_2y_cost_10() -> None:
    stored = hashes.hash_password(PASSWORD)
    assert stored.startswith(f"$2y${hashes.BCRYPT_DEFAULT_COST:02d}$")
    assert hashes.BCRYPT_DEFAULT_COST == 10


def test_bcrypt_prefixes_and_long_passwords() -> None:
    stored = hashes.hash_password(b"b" * 100, "bcrypt", cost=4)
    assert hashes.verify(b"b" * 72, stored) is True
    assert hashes.verify(b"b" * 72 + b"c", stored) is True
    assert hashes.verify(b"b" * 71 + b"c", stored) is False
    body = stored[4:]
    for prefix in ("$2a$", "$2b$", "$2y$"):
        assert hashes.verify(b"b" * 100, prefix + body) is True


@pytest.mark.parametrize("scheme", ["sha512_crypt", "sha256_crypt", "md5_crypt", "yescrypt", "des", "bcrypt",
                                    "apr1", "sha1", "argon2", "django_pbkdf2_sha256", "werkzeug_scrypt"])
def test_very_long_passwords(scheme: str) -> None:
    """Long passwords are a mismatch (libxcrypt, like Apache's crypt(), refuses 512 bytes or more), never an error."""
    stored = hashes.hash_password(b"y" * 300, scheme, **CHEAP.get(scheme, {}))
    assert hashes.verify(b"y" * 300, stored) is True
    long_ok = {"bcrypt": True, "des": False}.get(scheme, False)  # bcrypt reads 72 bytes; DES reads 8 but < 512
    assert hashes.verify(b"y" * 5000, stored) is long_ok
    assert hashes.verify(b"z" * 5000, stored) is False
    assert hashes.dummy_verify(b"y" * 5000, stored) is None


def test_nul_bytes() -> None:
    # Apache reads passwords as C strings (and HMAC pads keys with NULs): a NUL never verifies, in any format.
    for scheme in MADE:
        stored = hashes.hash_password(b"secret", scheme, **CHEAP.get(scheme, {}))
        assert hashes.verify(b"secret\x00", stored) is False, scheme
        assert hashes.verify(b"secret\x00anything", stored) is False
        assert hashes.verify(b"\x00", hashes.hash_password(b"", scheme, **CHEAP.get(scheme, {}))) is False
        with pytest.raises(ValueError, match="NUL"):
            hashes.hash_password(b"a\x00b", scheme, **CHEAP.get(scheme, {}))
    # Django's PBKDF2 itself cannot tell "" from "\0" (HMAC pads the key with NULs); we refuse the NUL.
    dj = hashes.hash_password(b"", "django_pbkdf2_sha256", iterations=1000)
    _, iterations, salt, b64 = dj.split("$")
    assert hashlib.pbkdf2_hmac("sha256", b"\x00", salt.encode(), int(iterations)) == base64.b64decode(b64)
    assert hashes.verify(b"\x00", dj) is False


def test_plaintext_only_when_enabled() -> None:
    assert hashes.identify("hunter2") == "plaintext"
    with pytest.raises(UnsupportedHashError, match="plaintext"):
        hashes.verify(b"hunter2", "hunter2")
    assert hashes.verify(b"hunter2", "hunter2", allow_plaintext=True) is True
    assert hashes.verify(b"hunter3", "hunter2", allow_plaintext=True) is False
    assert hashes.verify("pässwörd".encode(), "pässwörd", allow_plaintext=True) is True
    # Hash-like strings are never compared as plaintext, even when plaintext is allowed.
    for stored in ("$zz$abc", "{SSHA}abc", "sha1$salt$abc", "!", "*", "!$6$abc$def"):
        with pytest.raises(UnsupportedHashError):
            hashes.verify(stored.encode(), stored, allow_plaintext=True)
    with pytest.raises(UnsupportedHashError):
        hashes.hash_password(b"x", "plaintext")


MALFORMED = [
    "",
    "$apr1$",
    "$apr1$abcdefgh$short",
    "$apr1$abcdefghij$poeM/yJs31H62DRDOZ6PX1",
    "$apr1$eZML9FfC$poeM/yJs31H62DRDOZ6PX1extra",
    "$apr1$eZML9FfC$poeM/yJs31H62DRDOZ6PX\u00e9",
    "$2y$05$short",
    "$2y$99$lBLNJ1ftm4Gj1t4TERgGvuOOM9fqy/r.A0jIcHZsdVEF8LLAPMbzO",
    "$2y$03$lBLNJ1ftm4Gj1t4TERgGvuOOM9fqy/r.A0jIcHZsdVEF8LLAPMbzO",
    "$2y$05$lBLNJ1ftm4Gj1t4TERgGvuOOM9fqy/r.A0jIcHZsdVEF8LLAPMbz!",
    "{SHA}",
    "{SHA}L55TUjtiq8FBorTWAZ0jy6g129A",
    "{SHA}L55TUjtiq8FBorTWAZ0jy6g129A==",
    "$1$",
    "$5$abc",
    "$6$",
    "$6$rounds=abc$salt$hash",
    "$6$pfHwT3jt6/pse.1V$wrRs52380tH98j6awR0Yd8ftDauCOChiEYZjvXQlTOQtBeAOMVknPpqRGnn.JLOvOaH58aR6nXubBPA1hyMTN0!",
    "$y$j9T$",
    "$y$$$",
    "$argon2id$v=19$m=1024,t=1,p=1$Hx26P9VeFuzEs63EHPnjNg",
    "$argon2id$v=19$m=1024,t=0,p=1$Hx26P9VeFuzEs63EHPnjNg$jww+3iocX2myBEgFjb9OTSXR6TGydRhdkqQuuc7HDtk",
    "$argon2id$v=19$m=99999999999,t=1,p=1$Hx26P9VeFuzEs63EHPnjNg$jww+3iocX2myBEgFjb9OTSXR6TGydRhdkqQuuc7HDtk",
    "$argon2id$v=19$m=1024,t=1,p=1$!!!$jww+3iocX2myBEgFjb9OTSXR6TGydRhdkqQuuc7HDtk",
    "pbkdf2_sha256$",
    "pbkdf2_sha256$10000$salt",
    "pbkdf2_sha256$abc$salt$TP28u6qOWcUCv/5e7TiKW/fsQ5orZgAhd9iIx1gDAsE=",
    "pbkdf2_sha256$0$salt$TP28u6qOWcUCv/5e7TiKW/fsQ5orZgAhd9iIx1gDAsE=",
    "pbkdf2_sha256$999999999999$salt$TP28u6qOWcUCv/5e7TiKW/fsQ5orZgAhd9iIx1gDAsE=",
    "pbkdf2_sha256$10000$salt$TP28u6qOWcUCv/5e7TiKW/fsQ5orZgAhd9iIx1gDAs",
    "pbkdf2_sha1$10000$salt$TP28u6qOWcUCv/5e7TiKW/fsQ5orZgAhd9iIx1gDAsE=",
    "pbkdf2:sha256:10000$salt",
    "pbkdf2:sha256:10000$salt$zz",
    "pbkdf2:sha256:10000$salt$abcd",
    "pbkdf2:sha256:1:2:3$salt$abcd",
    "pbkdf2:sha256:-5$salt$" + "00" * 32,
    "scrypt:1000:8:1$salt$" + "00" * 64,
    "scrypt:1048576:64:1$salt$" + "00" * 64,
    "scrypt:1024:8$salt$" + "00" * 64,
    "scrypt:1024:8:1$salt$" + "00" * 32,
    "a\x00b",
    "line\nbreak",
    "bcrypt_sha256$$2b$12$abc",
    "bcrypt$$2b$99$7TzZvKddwLOJBWQoRZwUjORY414EsSo/2F9SDsgpTRqbBRdFqlHeq",
    "argon2$argon2id$v=19$m=1,t=1,p=1$abc$def",
    "scrypt$1000$salt$8$5$" + "A" * 86 + "==",
    "scrypt$1024$salt$8$0$" + "A" * 86 + "==",
    "scrypt$1024$salt$8$5$AAAA",
    "$y$jJT$abcdefgh$" + "A" * 43,  # 8 GiB
    "$gy$jzz$abcdefgh$" + "A" * 43,
    "$7$KU..../....abcdefgh$" + "A" * 43,  # 128 * 32 * 2**20 bytes: 4 GiB
    "$7$CU........zabcdefgh$" + "A" * 43,  # p = 63 * 2**24
    "$2y$\u0660\u0665$lBLNJ1ftm4Gj1t4TERgGvuOOM9fqy/r.A0jIcHZsdVEF8LLAPMbzO",  # Arabic-Indic digits
    "$argon2id$v=19$m=\u0661\u0660\u0662\u0664,t=1,p=1$Hx26P9VeFuzEs63EHPnjNg$jww+3iocX2myBEgFjb9OTSXR6TGydRhdkqQuuc7HDtk",
    "pbkdf2_sha256$\u0661\u0660\u0660\u0660$salt$TP28u6qOWcUCv/5e7TiKW/fsQ5orZgAhd9iIx1gDAsE=",
    "$6$r\u00e9sum\u00e9$abc",
]


@pytest.mark.parametrize("stored", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_hashes_raise(stored: str) -> None:
    for password in (PASSWORD, b"", stored.encode("utf-8", "replace")):
        with pytest.raises(InvalidHashError):
            hashes.verify(password, stored, allow_plaintext=True)
    assert hashes.needs_update(stored) is True


UNSUPPORTED = ["$y$j9T7$abcdefgh$" + "A" * 43,  # extended yescrypt parameters
               "bcrypt$$2x$05$lBLNJ1ftm4Gj1t4TERgGvuOOM9fqy/r.A0jIcHZsdVEF8LLAPMbzO",  # Django never wrote $2x$
               "$argon2d$v=19$m=1024,t=1,p=1$Hx26P9VeFuzEs63EHPnjNg$jww+3iocX2myBEgFjb9OTSXR6TGydRhdkqQuuc7HDtk",
               "{SSHA}abcdef", "$sha1$1000$abc$def", "$md5,rounds=5$abc$", "$nt$abc",
               "md5$salt$abc", "unsalted_sha1$$abc", "scrypt$1$2$3",
               "!", "*", "!!", "*LK*", "pbkdf2:md5:1000$salt$" + "00" * 16]


@pytest.mark.parametrize("stored", UNSUPPORTED)
def test_unsupported_hashes_raise(stored: str) -> None:
    with pytest.raises(UnsupportedHashError):
        hashes.verify(PASSWORD, stored, allow_plaintext=True)
    with pytest.raises(UnsupportedHashError):
        hashes.verify(stored.encode(), stored, allow_plaintext=True)


def test_type_errors() -> None:
    with pytest.raises(TypeError):
        hashes.verify("correct horse", FIRST["apr1"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        hashes.verify(PASSWORD, FIRST["apr1"].encode())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        hashes.hash_password("x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        hashes.constant_time_equal("a", b"a")  # type: ignore[arg-type]
    with pytest.raises(UnsupportedHashError):
        hashes.hash_password(b"x", "rot13")
    with pytest.raises(TypeError):
        hashes.ha1("alice", b"realm", b"pw")  # type: ignore[arg-type]


def test_hash_password_parameters() -> None:
    assert hashes.hash_password(PASSWORD, "sha512_crypt", rounds=7000).startswith("$6$rounds=7000$")
    assert "rounds=" not in hashes.hash_password(PASSWORD, "sha512_crypt")
    assert hashes.hash_password(PASSWORD, "django_pbkdf2_sha256", iterations=1234).startswith("pbkdf2_sha256$1234$")
    assert hashes.hash_password(PASSWORD, "werkzeug_pbkdf2", iterations=1234).startswith("pbkdf2:sha256:1234$")
    assert hashes.hash_password(PASSWORD, "werkzeug_scrypt", n=1024, r=4).startswith("scrypt:1024:4:1$")
    assert hashes.hash_password(PASSWORD, "sha1") == "{SHA}" + base64.b64encode(hashlib.sha1(PASSWORD).digest()).decode()
    with pytest.raises(ValueError, match="cost"):
        hashes.hash_password(PASSWORD, "bcrypt", cost=3)
    with pytest.raises(ValueError, match="salt"):
        hashes.hash_password(PASSWORD, "apr1", salt="abcdefghi")
    with pytest.raises(TypeError):
        hashes.hash_password(PASSWORD, "argon2", colour="red")
    with pytest.raises(TypeError):
        hashes.hash_password(PASSWORD, "sha1", rounds=5)


def test_needs_update() -> None:
    b5 = FIRST["bcrypt"]  # cost 5, as htpasswd -B
    assert hashes.needs_update(b5) is True  # default cost 10
    assert hashes.needs_update(b5, "bcrypt", cost=5) is False
    assert hashes.needs_update(b5, "bcrypt", cost=4) is False
    assert hashes.needs_update(FIRST["apr1"]) is True
    assert hashes.needs_update(FIRST["apr1"], "apr1") is False
    s6 = "$6$rounds=10000$xdFj24H3fuFZ4/Mz$0nNfWViwW3nS2wg.Q1lxQ6zCOQmSAkd2anGrmXOeFcA5iaada16eoxH9OmGbWYh32DFztLHgZFz1AoCOhXiC7/"
    assert hashes.needs_update(s6, "sha512_crypt", rounds=10000) is False
    assert hashes.needs_update(s6, "sha512_crypt", rounds=20000) is True
    assert hashes.needs_update(s6, "sha512_crypt") is False  # default 5000
    dj = FIRST["django_pbkdf2_sha256"]
    assert hashes.needs_update(dj, "django_pbkdf2_sha256", iterations=10000) is False
    assert hashes.needs_update(dj, "django_pbkdf2_sha256") is True
    a2 = hashes.hash_password(PASSWORD, "argon2", time_cost=1, memory_cost=1024, parallelism=1)
    assert hashes.needs_update(a2, "argon2", time_cost=1, memory_cost=1024, parallelism=1) is False
    assert hashes.needs_update(a2, "argon2", time_cost=2, memory_cost=1024, parallelism=1) is True
    y = next(h for s, h in FROZEN if s == "yescrypt")  # j9T: libxcrypt's default cost 5
    assert hashes.needs_update(y, "yescrypt") is False
    assert hashes.needs_update(y, "yescrypt", cost=5) is False
    assert hashes.needs_update(y, "yescrypt", cost=7) is True
    y3 = [h for s, h in FROZEN if s == "yescrypt"][1]  # j7T: cost 3
    assert hashes.needs_update(y3, "yescrypt") is True
    assert hashes.needs_update(y3, "yescrypt", cost=3) is False
    assert hashes.needs_update("$apr1$garbage") is True
    assert hashes.needs_update("$2x$05$" + "a" * 53) is True


def test_constant_time_equal() -> None:
    assert hashes.constant_time_equal(b"abc", b"abc") is True
    assert hashes.constant_time_equal(b"abc", b"abd") is False
    assert hashes.constant_time_equal(b"abc", b"abcd") is False
    assert hashes.constant_time_equal(b"", b"") is True


def test_ha1() -> None:
    assert hashes.ha1(b"Mufasa", b"testrealm@host.com", b"Circle Of Life") == "939e7578ed9e3c518a452acee763bce9"


# ------------------------------------------------------------------------------------------------ dummy_verify


def _best_times(*fns: Callable[[], object], runs: int = 9) -> list[float]:
    """The best time of each function, measured interleaved so that a busy machine slows all of them alike."""
    best = [float("inf")] * len(fns)
    for _ in range(runs):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


@pytest.mark.parametrize("like", [None, "", "garbage$", "$apr1$x", "$2x$05$" + "a" * 53, "!", "$zz$", "plain",
                                  "pbkdf2_sha256$999999999999$s$x", "\x00"])
def test_dummy_verify_never_raises(like: str | None) -> None:
    assert hashes.dummy_verify(PASSWORD, like) is None
    assert hashes.dummy_verify("not bytes", like) is None  # type: ignore[arg-type]


def test_dummy_verify_costs_like_the_hash() -> None:
    cheap = hashes.hash_password(PASSWORD, "bcrypt", cost=4)
    dear = hashes.hash_password(PASSWORD, "bcrypt", cost=8)
    hashes.dummy_verify(b"x", cheap)  # first calls generate and cache the dummies
    hashes.dummy_verify(b"x", dear)
    t_cheap, t_dear, t_real = _best_times(lambda: hashes.dummy_verify(b"x", cheap),
                                          lambda: hashes.dummy_verify(b"x", dear),
                                          lambda: hashes.verify(b"x", dear))
    assert t_dear > 5 * t_cheap  # cost 8 is 16 times cost 4
    assert 0.33 < t_dear / t_real < 3.0  # a dummy of another cost would be off by 16 times or more


def test_dummy_verify_tracks_iterations() -> None:
    few = hashes.hash_password(PASSWORD, "django_pbkdf2_sha256", iterations=2_000)
    many = hashes.hash_password(PASSWORD, "django_pbkdf2_sha256", iterations=60_000)
    hashes.dummy_verify(b"x", few)
    hashes.dummy_verify(b"x", many)
    t_few, t_many, t_real = _best_times(lambda: hashes.dummy_verify(b"x", few),
                                        lambda: hashes.dummy_verify(b"x", many),
                                        lambda: hashes.verify(b"x", many))
    assert t_many > 6 * t_few  # 30 times the iterations
    assert 0.33 < t_many / t_real < 3.0


def test_dummy_verify_default_is_apr1_like() -> None:
    apr1 = FIRST["apr1"]
    hashes.dummy_verify(b"x", None)
    t_none, t_apr1 = _best_times(lambda: hashes.dummy_verify(b"x", None), lambda: hashes.verify(b"x", apr1))
    assert 0.33 < t_none / t_apr1 < 3.0


# ------------------------------------------------------------------------------------------------ threads


def test_concurrent_verification() -> None:
    vectors = [(s, h) for s, h in FROZEN if s in ("apr1", "sha512_crypt", "bcrypt", "sha1", "md5_crypt")]
    errors: list[str] = []

    def work(i: int) -> None:
        for scheme, stored in vectors:
            good = i % 2 == 0
            if hashes.verify(PASSWORD if good else b"nope", stored) is not good:
                errors.append(f"{scheme} {i}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# ------------------------------------------------------------------------------------------------ properties

# Prefixes fix every cost parameter (random ones could ask for hours of work: that is the store owner's choice).
PREFIXES = ["", "$apr1$", "$apr1$abcdefgh$", "$2y$05$", "$2a$04$", "$2b$0", "{SHA}", "$1$", "$5$", "$6$",
            "$6$rounds=1000$", "$y$j75$", "$gy$j75$", "$7$9U..../....", "_J9..", "$argon2id$v=19$m=8,t=1,p=1$",
            "$argon2i$", "pbkdf2_sha256$1000$", "pbkdf2_sha1$1000$", "pbkdf2:sha256:1000$", "scrypt:16:1:1$",
            "argon2$argon2id$v=19$m=8,t=1,p=1$", "bcrypt_sha256$$2b$04$", "scrypt$16$", "!", "*", "{", "$"]
HASHY = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz$:=,+{}!*é\x00\n"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PREFIXES), st.text(alphabet=HASHY, max_size=70), st.binary(max_size=20))
def test_random_stored_values_never_crash_or_grant(prefix: str, tail: str, password: bytes) -> None:
    stored = prefix + tail
    try:
        result = hashes.verify(password, stored)
    except InvalidHashError:  # UnsupportedHashError included
        pass
    else:
        assert result is False  # a random string is never a hash of a random password
    try:
        identified = hashes.identify(stored)
    except InvalidHashError:
        pass
    else:
        assert identified in hashes.SCHEMES
    assert isinstance(hashes.needs_update(stored), bool)
    assert hashes.dummy_verify(password, stored) is None


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=90).filter(lambda b: b"\x00" not in b),
       st.sampled_from(["apr1", "sha1", "md5_crypt", "bcrypt", "sha512_crypt", "django_pbkdf2_sha256"]),
       st.binary(min_size=1, max_size=8))
def test_random_passwords_round_trip(password: bytes, scheme: str, change: bytes) -> None:
    stored = hashes.hash_password(password, scheme, **CHEAP.get(scheme, {}))
    assert hashes.verify(password, stored) is True
    other = change + password  # always a different password
    expected = other[:72] == password[:72] if scheme == "bcrypt" else False  # bcrypt reads 72 bytes
    assert hashes.verify(other, stored) is expected


def test_an_auth_script_loads_only_what_its_hashes_need() -> None:
    """Every Apache child pays for what an auth script imports: no OpenSSL (hashlib/hmac), bcrypt, argon2, DBM
    libraries or Django/Werkzeug schemes for an htpasswd store of {SHA} and $apr1$ users, and the C core only once a
    scheme needs it."""
    code = """
import sys
from wsgiauth import hashes
from wsgiauth.backends import htpasswd  # noqa: F401
from wsgiauth.cache import cached  # noqa: F401
heavy = ("hashlib", "hmac", "_hashlib", "bcrypt", "argon2", "secrets", "dataclasses", "wsgiauth._native",
         "wsgiauth._native_dbm", "wsgiauth._redis", "wsgiauth._webhashes")
print(sorted(m for m in heavy if m in sys.modules))
assert hashes.verify(b"secret", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=")  # htpasswd -nbs x secret
print(sorted(m for m in heavy if m in sys.modules))
assert hashes.verify(b"secret", "$apr1$XyeQis99$Muqr01OMP3fesNSPx.Z021")  # htpasswd -nbm x secret
print(sorted(m for m in heavy if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:3] == ["[]", "[]", "['wsgiauth._native']"]
