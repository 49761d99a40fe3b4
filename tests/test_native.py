"""The hash core (wsgiauth._native, or its pure-Python twin wsgiauth._purecore, through wsgiauth._lowlevel) against
pure-Python references; and the twin against the C, call by call.

`make test` runs this module twice: on the compiled core, and with WSGIAUTH_NO_NATIVE=1 on the fallback.

MD5 and HA1 against hashlib, the constant-time compare against ``==``, $apr1$/$1$ MD5-crypt against a pure-Python
implementation of the algorithm written here (and against libxcrypt's own $1$), the libxcrypt binding's error
handling, and the GIL being released during C calls (threads matter under Apache's event MPM).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import os
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsgiauth import _lowlevel
from wsgiauth.exceptions import InvalidHashError

ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
salts = st.text(alphabet=ITOA64, min_size=0, max_size=8).map(str.encode)


def py_md5crypt(password: bytes, salt: bytes, magic: bytes = b"$apr1$") -> str:
    """Poul-Henning Kamp's MD5-crypt, straight from the algorithm description (reference for the C code)."""
    ctx = hashlib.md5(password + magic + salt)
    alt = hashlib.md5(password + salt + password).digest()
    n = len(password)
    while n > 0:
        ctx.update(alt[: min(16, n)])
        n -= 16
    i = len(password)
    while i:
        ctx.update(b"\x00" if i & 1 else password[:1])
        i >>= 1
    final = ctx.digest()
    for r in range(1000):
        c = hashlib.md5()
        c.update(password if r & 1 else final)
        if r % 3:
            c.update(salt)
        if r % 7:
            c.update(password)
        c.update(final if r & 1 else password)
        final = c.digest()
    out = []
    for a, b, cc in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)):
        v = (final[a] << 16) | (final[b] << 8) | final[cc]
        for _ in range(4):
            out.append(ITOA64[v & 0x3F])
            v >>= 6
    v = final[11]
    for _ in range(2):
        out.append(ITOA64[v & 0x3F])
        v >>= 6
    return (magic + salt).decode() + "$" + "".join(out)


# ------------------------------------------------------------------------------------------------ MD5 / HA1


@pytest.mark.parametrize("n", [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000])
def test_md5_block_boundaries(n: int) -> None:
    data = bytes(range(256)) * 4
    assert _lowlevel.md5(data[:n]) == hashlib.md5(data[:n]).digest()


def test_md5_rfc1321_suite() -> None:
    # RFC 1321, appendix A.5
    suite = {
        b"": "d41d8cd98f00b204e9800998ecf8427e",
        b"a": "0cc175b9c0f1b6a831c399e269772661",
        b"abc": "900150983cd24fb0d6963f7d28e17f72",
        b"message digest": "f96b697d7cb7938d525a2f31aaf161d0",
        b"abcdefghijklmnopqrstuvwxyz": "c3fcd3d76192e4007dfb496cca67e13b",
        b"12345678901234567890123456789012345678901234567890123456789012345678901234567890":
            "57edf4a22be3c955ac49da2e2107b67a",
    }
    for data, hexdigest in suite.items():
        assert _lowlevel.md5(data).hex() == hexdigest


@settings(deadline=None)  # no per-example deadline: CI machines are shared
@given(st.binary(max_size=600))
def test_md5_matches_hashlib(data: bytes) -> None:
    assert _lowlevel.md5(data) == hashlib.md5(data).digest()


@settings(deadline=None)  # no per-example deadline: CI machines are shared
@given(st.binary(max_size=80), st.binary(max_size=80), st.binary(max_size=200))
def test_ha1_matches_hashlib(user: bytes, realm: bytes, password: bytes) -> None:
    assert _lowlevel.ha1(user, realm, password) == hashlib.md5(user + b":" + realm + b":" + password).hexdigest()


def test_ha1_with_nul_and_high_bytes() -> None:
    user, realm, password = b"a\x00b", "r\u00e9alm".encode(), b"\xff\x00\xfe"
    assert _lowlevel.ha1(user, realm, password) == hashlib.md5(user + b":" + realm + b":" + password).hexdigest()


def test_ha1_rejects_str() -> None:
    with pytest.raises(TypeError):
        _lowlevel.ha1("alice", b"realm", b"pw")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ compare


@settings(deadline=None)  # no per-example deadline: CI machines are shared
@given(st.binary(max_size=100), st.binary(max_size=100))
def test_ct_equal_matches_reference(a: bytes, b: bytes) -> None:
    assert _lowlevel.ct_equal(a, b) is (a == b)
    assert _lowlevel.ct_equal(a, b) is hmac.compare_digest(a, b)


@settings(deadline=None)  # no per-example deadline: CI machines are shared
@given(st.binary(min_size=1, max_size=100), st.data())
def test_ct_equal_single_difference_anywhere(a: bytes, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(a) - 1))
    flipped = bytearray(a)
    flipped[i] ^= data.draw(st.integers(1, 255))
    assert _lowlevel.ct_equal(bytes(flipped), a) is False
    assert _lowlevel.ct_equal(a, a) is True


@pytest.mark.parametrize(("a", "b"), [(b"", b""), (b"", b"x"), (b"x", b""), (b"abc", b"abcd"), (b"abcd", b"abc"),
                                      (b"a" * 9, b"a" * 8), (b"a" * 16, b"a" * 16)])
def test_ct_equal_lengths(a: bytes, b: bytes) -> None:
    assert _lowlevel.ct_equal(a, b) is (a == b)


# ------------------------------------------------------------------------------------------------ MD5-crypt


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=130), salts)
def test_apr1_matches_python_reference(password: bytes, salt: bytes) -> None:
    expected = py_md5crypt(password, salt)
    assert _lowlevel.apr1_hash(password, salt) == expected
    assert _lowlevel.apr1_verify(password, expected.encode()) is True
    assert _lowlevel.apr1_verify(password + b"x", expected.encode()) is False


@pytest.mark.parametrize("n", [0, 1, 8, 15, 16, 17, 19, 20, 23, 24, 31, 32, 47, 48, 100, 111, 112, 113, 200])
def test_apr1_every_layout_size(n: int) -> None:
    """Password lengths around the C code's block-layout thresholds (one to four MD5 blocks, then streaming)."""
    password = bytes((i * 7 + 33) % 256 for i in range(n))
    for salt in (b"", b"a", b"abcdefgh"):
        assert _lowlevel.apr1_hash(password, salt) == py_md5crypt(password, salt)


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=60).filter(lambda b: b"\x00" not in b), salts.filter(bool))
def test_md5crypt_dollar1_matches_libxcrypt(password: bytes, salt: bytes) -> None:
    ours = _lowlevel.md5crypt_hash(password, salt, b"$1$")
    assert ours == _lowlevel.crypt(password, b"$1$" + salt + b"$")
    assert ours == py_md5crypt(password, salt, b"$1$")


@pytest.mark.parametrize("salt", [b"abcdefghi", b"ab$", b"ab:", b"\xff", b"a b"])
def test_apr1_bad_salt(salt: bytes) -> None:
    with pytest.raises(ValueError, match="salt"):
        _lowlevel.apr1_hash(b"pw", salt)


GOOD = py_md5crypt(b"secret", b"abcdefgh")


@pytest.mark.parametrize("stored", [
    b"",
    b"$apr1$",
    b"$apr1$abcdefgh",
    b"$apr1$abcdefgh$",
    GOOD.encode()[:-1],
    GOOD.encode() + b"x",
    GOOD.encode().replace(b"$apr1$", b"$apr2$"),
    b"$apr1$abcdefghi$" + GOOD.encode()[-22:],  # salt too long
    b"$apr1$ab:defgh$" + GOOD.encode()[-22:],  # bad salt character
    GOOD.encode()[:-1] + b"!",  # bad hash character
    GOOD.encode()[:-1] + b"\x00",
])
def test_apr1_verify_malformed(stored: bytes) -> None:
    with pytest.raises(InvalidHashError):
        _lowlevel.apr1_verify(b"secret", stored)


def test_apr1_verify_nul_in_password_is_hashed_as_bytes() -> None:
    stored = _lowlevel.apr1_hash(b"a\x00b", b"salt").encode()
    assert _lowlevel.apr1_verify(b"a\x00b", stored) is True
    assert _lowlevel.apr1_verify(b"a", stored) is False


# ------------------------------------------------------------------------------------------------ libxcrypt


@pytest.mark.parametrize("prefix", [b"$1$", b"$5$", b"$6$", b"$y$", b"$2b$"])
def test_crypt_round_trip(prefix: bytes) -> None:
    setting = _lowlevel.crypt_gensalt(prefix, 4 if prefix == b"$2b$" else 0)
    assert setting.startswith(prefix)
    stored = _lowlevel.crypt(b"correct horse", setting)
    assert stored.startswith(setting.decode().rstrip("$"))
    assert _lowlevel.crypt_verify(b"correct horse", stored.encode()) is True
    assert _lowlevel.crypt_verify(b"correct horsE", stored.encode()) is False
    assert _lowlevel.crypt_checksalt(stored.encode()) in (_lowlevel.CRYPT_SALT_OK, _lowlevel.CRYPT_SALT_METHOD_LEGACY)


def test_crypt_rounds_setting() -> None:
    setting = _lowlevel.crypt_gensalt(b"$6$", 10000)
    assert setting.startswith(b"$6$rounds=10000$")
    assert _lowlevel.crypt(b"pw", setting).startswith("$6$rounds=10000$")


@pytest.mark.parametrize("stored", [b"$6$", b"$6$abc", b"$1$abc$", b"$y$j9T$", b"$zz$abc$def", b"*", b"!", b"x",
                                    b"$6$abc$" + b"A" * 85 + b"junk"])
def test_crypt_verify_malformed(stored: bytes) -> None:
    with pytest.raises(InvalidHashError):
        _lowlevel.crypt_verify(b"pw", stored)


def test_crypt_nul_rejected() -> None:
    with pytest.raises(ValueError, match="NUL"):
        _lowlevel.crypt(b"a\x00b", b"$6$salt")
    with pytest.raises(ValueError, match="NUL"):
        _lowlevel.crypt_verify(b"a\x00b", b"$6$salt$x")
    assert _lowlevel.crypt_checksalt(b"$6$sa\x00lt") == _lowlevel.CRYPT_SALT_INVALID
    with pytest.raises(InvalidHashError):
        _lowlevel.crypt_verify(b"ab", b"$6$sa\x00lt")


def test_crypt_long_passwords() -> None:
    # libxcrypt (and so Apache's crypt() call) refuses passphrases of 512 bytes or more: a mismatch, not an error.
    stored = _lowlevel.crypt(b"x" * 100, _lowlevel.crypt_gensalt(b"$6$")).encode()
    assert _lowlevel.CRYPT_MAX_PASSWORD == 511
    assert _lowlevel.crypt_verify(b"x" * 100, stored) is True
    assert _lowlevel.crypt_verify(b"x" * 511, stored) is False
    assert _lowlevel.crypt_verify(b"x" * 512, stored) is False
    assert _lowlevel.crypt_verify(b"x" * 100_000, stored) is False
    with pytest.raises(InvalidHashError):  # the stored hash is still checked
        _lowlevel.crypt_verify(b"x" * 600, b"$6$")
    des = _lowlevel.crypt(b"x" * 511, b"ab").encode()
    assert _lowlevel.crypt_verify(b"x" * 8, des) is True
    assert _lowlevel.crypt_verify(b"x" * 512, des) is False
    with pytest.raises(ValueError, match="at most 511"):
        _lowlevel.crypt(b"x" * 512, b"$6$salt")


def test_crypt_gensalt_bad_prefix() -> None:
    with pytest.raises(ValueError, match="cannot make a setting"):
        _lowlevel.crypt_gensalt(b"$zz$")
    with pytest.raises(ValueError):
        _lowlevel.crypt_gensalt(b"$6$", -1)


def test_type_checks() -> None:
    with pytest.raises(TypeError):
        _lowlevel.ct_equal("a", b"a")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _lowlevel.apr1_verify("pw", b"x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _lowlevel.crypt(b"pw", "$6$salt")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ the GIL


def _count_while(done: threading.Event) -> tuple[int, float]:
    count = 0
    t0 = time.perf_counter()
    while not done.is_set():
        count += 1
    return count, time.perf_counter() - t0


def test_c_calls_release_the_gil() -> None:
    """While one thread is inside a long C call, another thread keeps running Python code at a good rate.

    If the GIL were held during the call, the counting thread would be stopped for the whole call (it could only run
    for one switch interval, 5 ms, before the worker takes the GIL): under 5% of its normal rate over >= 100 ms.
    """
    # Baseline: the counting loop alone for 100 ms.
    stop = threading.Event()
    timer = threading.Timer(0.1, stop.set)
    timer.start()
    base_count, base_elapsed = _count_while(stop)
    timer.join()
    base_rate = base_count / base_elapsed

    setting = _lowlevel.crypt_gensalt(b"$6$", 600_000)  # one C call of a few hundred ms
    started, done = threading.Event(), threading.Event()

    def worker() -> None:
        started.set()
        _lowlevel.crypt(b"pw", setting)
        done.set()

    t = threading.Thread(target=worker)
    t.start()
    started.wait()
    count, elapsed = _count_while(done)
    t.join()
    assert elapsed > 0.1
    assert count / elapsed > 0.1 * base_rate


def test_threads_agree() -> None:
    stored = _lowlevel.apr1_hash(b"secret", b"abc").encode()
    crypt_stored = _lowlevel.crypt(b"secret", _lowlevel.crypt_gensalt(b"$5$")).encode()
    results: list[bool] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        pw = b"secret" if i % 2 else b"wrong"
        r = (_lowlevel.apr1_verify(pw, stored), _lowlevel.crypt_verify(pw, crypt_stored))
        with lock:
            results.append(r == ((i % 2 == 1),) * 2)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 16


# ------------------------------------------------------------------------------------------------ the two cores


def test_the_core_in_use_is_the_one_asked_for() -> None:
    """WSGIAUTH_NO_NATIVE=1 (the fallback run of `make test`) gives the pure-Python core; otherwise an installed
    wheel must give the compiled one."""
    from wsgiauth import _compiled

    assert _lowlevel.NATIVE is (not _compiled.DISABLED and _compiled.load("_native") is not None)
    if os.environ.get("WSGIAUTH_INSTALLED") == "1":
        assert _lowlevel.NATIVE is not _compiled.DISABLED


def _compiled_core() -> Any:
    try:
        return importlib.import_module("wsgiauth._native")  # whatever the mode: the module itself
    except ImportError:
        pytest.skip("this installation has no compiled core to compare the fallback with")


@settings(max_examples=300, deadline=None)
@given(password=st.binary(max_size=130), salt=st.binary(max_size=10), magic=st.sampled_from([b"$apr1$", b"$1$", b"$x$",
                                                                                            b"$0123456789abc$"]))
def test_pure_md5crypt_is_the_c_one(password: bytes, salt: bytes, magic: bytes) -> None:
    from wsgiauth import _purecore

    native = _compiled_core()
    out = native.ffi.new("char[]", native.lib.WA_APR1_SIZE)
    n = native.lib.wa_md5crypt(password, len(password), magic, salt, len(salt), out, native.lib.WA_APR1_SIZE)
    assert _purecore.md5crypt(password, magic, salt) == (None if n < 0 else native.ffi.string(out, n).decode())


@settings(max_examples=300, deadline=None)
@given(password=st.binary(max_size=40), stored=st.one_of(
    st.binary(max_size=40),
    st.builds(lambda s, t: b"$apr1$" + s + t, st.binary(max_size=12), st.binary(max_size=26)),
    st.builds(lambda p, s: _lowlevel.apr1_hash(p, s).encode(), st.binary(max_size=20), salts)))
def test_pure_apr1_verify_answers_as_the_c_one(password: bytes, stored: bytes) -> None:
    from wsgiauth import _purecore

    native = _compiled_core()
    assert _purecore.apr1_verify(password, stored) == native.lib.wa_apr1_verify(password, len(password), stored,
                                                                                len(stored))


@given(user=st.binary(max_size=70), realm=st.binary(max_size=70), password=st.binary(max_size=70),
       other=st.binary(max_size=70))
def test_pure_md5_ha1_compare_are_the_c_ones(user: bytes, realm: bytes, password: bytes, other: bytes) -> None:
    from wsgiauth import _purecore

    native = _compiled_core()
    out = native.ffi.new("char[33]")
    native.lib.wa_ha1(user, len(user), realm, len(realm), password, len(password), out)
    assert _purecore.ha1(user, realm, password) == native.ffi.string(out, 32).decode()
    digest = native.ffi.new("unsigned char[16]")
    native.lib.wa_md5(user + password, len(user + password), digest)
    assert _purecore.md5(user + password) == bytes(native.ffi.buffer(digest, 16))
    for a, b in ((user, other), (user, user)):
        assert _purecore.ct_equal(a, b) is bool(native.lib.wa_ct_equal(a, len(a), b, len(b)))
