"""The htpasswd / htdigest / htgroup parsers (wsgiauth._textfile).

Two kinds of input:

* files written by Debian's real ``htpasswd`` (every hash option) and ``htdigest`` (driven through a pty, since it
  prompts for the password on the terminal);
* hand-made tricky files. Every expectation in ``TRICKY_HTPASSWD`` and ``TRICKY_GROUPS`` was checked against a real
  Apache 2.4.71 (mod_authn_file / mod_authz_groupfile, ``{SHA}`` hashes, one request per user: 200 when the user
  is found with the right hash, 401 otherwise) with the same bytes on disk.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends._common import require_tool
from wsgiauth._textfile import (
    LINE_MAX,
    _exact_lines,
    _fast_path_ok,
    config_lines,
    getword,
    getword_conf,
    parse_htdigest,
    parse_htgroup,
    parse_htpasswd,
    read_file,
    representative_hash,
    split_conf_words,
)
from wsgiauth.exceptions import StoreError


def sha(password: bytes) -> bytes:
    """An Apache {SHA} hash, as `htpasswd -nbs user PASSWORD` prints it."""
    return b"{SHA}" + base64.b64encode(hashlib.sha1(password).digest())


H = sha(b"pw")
HS = H.decode()


# ------------------------------------------------------------------------------------------ real tools


def run_on_tty(argv: list[str], answers: list[bytes], timeout: float = 20.0) -> tuple[int, bytes]:
    """Run a program that reads passwords from its terminal; answer each ``...password:`` prompt in turn."""
    pid, fd = pty.fork()
    if pid == 0:  # child: the pty is its controlling terminal
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    out = b""
    answered = 0
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, 9)
                raise TimeoutError(f"{argv[0]} did not finish: {out!r}")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
            if answered < len(answers) and out.lower().count(b"password:") > answered:
                os.write(fd, answers[answered] + b"\n")
                answered += 1
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out


def htdigest(path: Path, realm: str, user: str, password: bytes, *, create: bool = False) -> None:
    tool = require_tool("htdigest")
    argv = [tool, *(["-c"] if create else []), str(path), realm, user]
    code, out = run_on_tty(argv, [password, password])
    assert code == 0, out


# Every hash option of Debian's htpasswd; cheap costs where the tool allows it.
HTPASSWD_OPTIONS = {
    "md5": (["-m"], "$apr1$"),
    "bcrypt": (["-B", "-C", "4"], "$2y$04$"),
    "sha1": (["-s"], "{SHA}"),
    "des": (["-d"], ""),
    "sha256": (["-2"], "$5$"),
    "sha512": (["-5", "-r", "1000"], "$6$rounds=1000$"),
}


@pytest.fixture(scope="module")
def real_htpasswd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tool = require_tool("htpasswd")
    path = tmp_path_factory.mktemp("htpasswd") / "users"
    first = True
    for name, (opts, _) in HTPASSWD_OPTIONS.items():
        args = [tool, *(["-c"] if first else []), "-b", *opts, str(path), f"user-{name}", f"pw-{name}"]
        subprocess.run(args, check=True, capture_output=True)
        first = False
    # A UTF-8 name, as `htpasswd` stores the argument's bytes.
    subprocess.run([tool, "-b", "-m", str(path), "jürgen", "pw-utf8"], check=True, capture_output=True)
    return path


def test_real_htpasswd_file_every_scheme(real_htpasswd: Path) -> None:
    data = real_htpasswd.read_bytes()
    table = parse_htpasswd(data)
    assert set(table.users) == {f"user-{n}".encode() for n in HTPASSWD_OPTIONS} | {"jürgen".encode()}
    for name, (_, prefix) in HTPASSWD_OPTIONS.items():
        stored = table.users[f"user-{name}".encode()]
        assert stored.startswith(prefix)
        # the whole hash, exactly as the tool wrote it on that line
        assert f"user-{name}:{stored}\n".encode() in data
    assert len(table.users[b"user-des"]) == 13
    assert table.too_long_at is None


def test_real_htpasswd_hashes_verify(real_htpasswd: Path) -> None:
    """The extracted hashes are complete: Apache's own `htpasswd -v` and wsgiauth agree on each of them."""
    from wsgiauth import hashes

    table = parse_htpasswd(real_htpasswd.read_bytes())
    for name in HTPASSWD_OPTIONS:
        stored = table.users[f"user-{name}".encode()]
        assert hashes.verify(f"pw-{name}".encode(), stored) is True
        assert hashes.verify(b"wrong", stored) is False
    assert hashes.verify(b"pw-utf8", table.users["jürgen".encode()]) is True


def test_real_htdigest_file(tmp_path: Path) -> None:
    path = tmp_path / "digest"
    htdigest(path, "realm one", "alice", b"secret", create=True)
    htdigest(path, "realm two", "alice", b"other")
    htdigest(path, "realm one", "jürgen", "päss".encode())
    table = parse_htdigest(path.read_bytes())
    md5 = lambda s: hashlib.md5(s).hexdigest()  # noqa: E731 - HA1 = MD5(user:realm:password), RFC 2617
    assert table.hashes == {
        (b"alice", b"realm one"): md5(b"alice:realm one:secret"),
        (b"alice", b"realm two"): md5(b"alice:realm two:other"),
        ("jürgen".encode(), b"realm one"): md5("jürgen:realm one:päss".encode()),
    }


# ------------------------------------------------------------------------------------------ tricky files


def users(data: bytes) -> dict[bytes, str]:
    return parse_htpasswd(data).users


def test_comments_blank_lines_and_whitespace() -> None:
    data = b"# a comment\n\n   \n\t alice:" + H + b" \t\r\n  # indented comment\n#bob:" + H + b"\ncarol:ab#cd\n"
    assert users(data) == {b"alice": HS, b"carol": "ab#cd"}


def test_crlf_line_endings() -> None:
    assert users(b"alice:" + H + b"\r\nbob:x\r\n") == {b"alice": HS, b"bob": "x"}


def test_backslash_continuation() -> None:
    data = b"al\\\nice:" + H + b"\nd\\\r\n  an:" + H[:10] + b"\\\n" + H[10:] + b"\n"
    # the continuation line keeps its leading whitespace; a hash may be split over lines
    assert users(data) == {b"alice": HS, b"d  an": HS}


def test_double_backslash_before_a_blank_line() -> None:
    # Apache joins "dave\\" + "" and then, seeing the first backslash before the (empty) line's end, joins again.
    assert users(b"dave\\\\\n\n:" + H + b"\nx:y\n") == {b"dave": HS, b"x": "y"}


def test_backslash_on_the_last_line() -> None:
    assert users(b"eve:" + H + b"\\\n") == {b"eve": HS}


def test_first_match_wins_and_names_are_case_sensitive() -> None:
    data = b"frank:first\nfrank:second\nGrace:" + H + b"\n"
    assert users(data) == {b"frank": "first", b"Grace": HS}
    assert b"grace" not in users(data)


def test_extra_fields_and_runs_of_colons() -> None:
    # ap_getword skips every ':' after the word: "alice::H::x" is alice with hash H
    assert users(b"alice::" + H + b"::x\nbob:h:comment:more\n") == {b"alice": HS, b"bob": "h"}


def test_no_colon_and_empty_hash_are_users_who_cannot_log_in() -> None:
    assert users(b"nocolon\nempty:\nsp: " + H + b"\n") == {b"nocolon": "", b"empty": "", b"sp": " " + HS}


def test_nul_byte_ends_the_line() -> None:
    assert users(b"eve:" + H + b"\x00junk\nev\x00e:" + H + b"\n") == {b"eve": HS, b"ev": ""}


def test_utf8_and_latin1_names_are_raw_bytes() -> None:
    data = "jürgen:".encode() + H + b"\n" + "jürgen:".encode("latin-1") + b"l1\n"
    assert users(data) == {"jürgen".encode(): HS, "jürgen".encode("latin-1"): "l1"}


def test_hash_bytes_that_are_not_utf8_survive() -> None:
    assert users(b"u:\xff\xfe\n")[b"u"].encode("latin-1") == b"\xff\xfe"


@pytest.mark.parametrize(("length", "crlf", "found"), [
    (8189, False, True), (8190, False, True), (8191, False, False), (8192, False, False),
    (8189, True, True), (8190, True, False),  # the CR counts
])
def test_over_long_line_stops_the_scan(length: int, crlf: bool, found: bool) -> None:
    eol = b"\r\n" if crlf else b"\n"
    table = parse_htpasswd(b"x" * length + eol + b"alice:" + H + eol)
    assert (b"alice" in table.users) is found
    assert table.too_long_at == (None if found else 1)


@pytest.mark.parametrize(("length", "found"), [(8190, True), (8191, False)])
def test_long_user_line_itself(length: int, found: bool) -> None:
    line = b"bob:" + H + b":"
    line += b"p" * (length - len(line))
    assert (b"bob" in users(b"alice:a\n" + line + b"\ncarol:c\n")) is found
    assert (b"bob" in users(b"alice:a\n" + line)) is found  # last line without LF
    assert (b"carol" in users(b"alice:a\n" + line + b"\ncarol:c\n")) is found
    assert b"alice" in users(b"alice:a\n" + line)  # users before the long line stay


@pytest.mark.parametrize(("length", "found"), [(8190, True), (8191, False)])
def test_continued_line_counts_its_joined_length(length: int, found: bool) -> None:
    line = b"car\\\nol:" + H + b":"
    line += b"q" * (length - len(line) + 2)  # +2: the backslash and LF do not count once joined
    table = users(line + b"\nzed:" + H + b"\n")
    assert (b"carol" in table) is found
    assert (b"zed" in table) is found


def test_htdigest_tricky() -> None:
    data = b"# c\nu:r:aaa\nu:r:bbb\nu:r2:ccc:extra\nv::r:ddd\nw\n  x:r:eee  \r\n"
    assert parse_htdigest(data).hashes == {
        (b"u", b"r"): "aaa", (b"u", b"r2"): "ccc", (b"v", b"r"): "ddd", (b"w", b""): "", (b"x", b"r"): "eee",
    }


TRICKY_GROUPS = (
    b'g1: a "b c" \'d\' e\\\\f "g\\"h"\n'
    b"g1 :i\n"
    b"g1::j\n"
    b" g2: k\n"
    b"g2: " + b"z" * 20000 + b" x\n"  # group lines are not limited to 8 KiB (varbuf, 16 MiB)
    b"g1: " + b"y " * 6000 + b"x\n"
)


def test_groups_quotes_merge_and_long_lines() -> None:
    table = parse_htgroup(TRICKY_GROUPS)
    for member in (b"a", b"b c", b"d", b"e\\f", b'g"h', b"i", b"j", b"x"):
        assert b"g1" in table.by_user[member], member
    assert table.by_user[b"k"] == (b"g2",)
    assert table.by_user[b"x"] == (b"g2", b"g1")  # file order
    assert table.by_user[b"y"] == (b"g1",)  # listed 6000 times, once in the map
    assert set(table.members) == {b"g1", b"g2"}
    assert table.members[b"g1"][:5] == (b"a", b"b c", b"d", b"e\\f", b'g"h')


def test_group_quote_corner_cases() -> None:
    # a word ends at its closing quote even without a space; an unterminated quote runs to the end of the line
    table = parse_htgroup(b"g1: \"a\"b 'b c'd \"i j\n")
    assert table.members[b"g1"] == (b"a", b"b", b"b c", b"d", b"i j")


def test_group_names_keep_their_bytes_and_lose_trailing_space() -> None:
    table = parse_htgroup("Admins \t: alice\nmitarbeiter-ä: alice\n".encode())
    assert table.by_user[b"alice"] == (b"Admins", "mitarbeiter-ä".encode())


def test_getword_and_getword_conf() -> None:
    assert getword(b"a::b:c", 0) == (b"a", 3)
    assert getword(b"abc", 0) == (b"abc", 3)
    assert getword_conf(b'  "x\\"y\\\\z" rest', 0) == (b'x"y\\z', 12)
    assert getword_conf(b"'it''s'", 0) == (b"it", 4)
    assert getword_conf(b"plain\\\\word\\x next", 0) == (b"plain\\word\\x", 14)
    assert split_conf_words(b" a  'b c'\t\"d\" ") == [b"a", b"b c", b"d"]
    assert split_conf_words(b" \t\x0b") == []
    assert split_conf_words(b'a "" b') == [b"a", b"", b"b"]  # an empty quoted word is a (useless) member


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"b", b" ", b"\t", b"\r", b"\x0b", b"\x0c", b"\xa0"]), max_size=40).map(b"".join))
def test_member_fast_split_agrees_with_getword_conf(text: bytes) -> None:
    words = []
    pos = len(text) - len(text.lstrip(b" \t\n\r\x0b\x0c"))
    while pos < len(text):
        word, pos = getword_conf(text, pos)
        words.append(word)
    assert split_conf_words(text) == words


def test_representative_hash_is_the_most_common_scheme_and_cost() -> None:
    b4 = "$2y$04$" + "a" * 53
    b12 = "$2y$12$" + "b" * 53
    apr = "$apr1$salt$" + "c" * 22
    assert representative_hash([apr, b12, b4, b4, ""]) == b4
    assert representative_hash([b12, apr, apr]) == apr
    assert representative_hash([b12, b4]) == b12  # a tie: the first one seen
    assert representative_hash(["", ""]) is None


def test_read_file_refuses_what_apache_refuses(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(StoreError, match="not a regular file"):
        read_file(str(tmp_path / "fifo"))  # and does not hang waiting for a writer
    with pytest.raises(StoreError, match="not a regular file"):
        read_file(str(tmp_path))
    assert read_file("/dev/null") == b""


# ------------------------------------------------------------------------------------------ the fast path

_ALPHABET = st.sampled_from([b"a", b"b", b":", b" ", b"\t", b"\r", b"\n", b"#", b"\\", b"\x00", b'"'])


@settings(max_examples=300, deadline=None)
@given(st.lists(_ALPHABET, max_size=80).map(b"".join), st.integers(min_value=3, max_value=24))
def test_fast_path_agrees_with_the_exact_reader(data: bytes, bufsize: int) -> None:
    """The split()-based fast path, taken when nothing needs the byte-exact model, gives the same lines."""
    exact = list(_exact_lines(data, bufsize, None))
    assert list(config_lines(data, bufsize)) == exact
    if _fast_path_ok(data, bufsize):
        simple = [ln.strip(b" \t\r\n\x0b\x0c") for ln in data.split(b"\n")]
        assert exact == [ln for ln in simple if ln and not ln.startswith(b"#")]


def test_big_file_uses_the_fast_path_and_stays_fast() -> None:
    data = b"".join(b"user%06d:%s\n" % (i, H) for i in range(100_000))
    assert _fast_path_ok(data, LINE_MAX)
    start = time.perf_counter()
    table = parse_htpasswd(data)
    elapsed = time.perf_counter() - start
    assert len(table.users) == 100_000
    assert elapsed < 2.0, f"parsing 100k users took {elapsed:.2f}s"
