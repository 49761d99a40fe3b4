"""Apache's text credential files, read exactly as Apache reads them.

Three formats, all read through httpd's config-line reader (``ap_cfg_getline`` in ``server/util.c``):

* **htpasswd** (``mod_authn_file``, Basic): ``user:hash[:ignored]``;
* **htdigest** (``mod_authn_file``, Digest): ``user:realm:HA1``;
* **htgroup** (``mod_authz_groupfile``): ``group: member member "member with spaces"``.

The line reader's rules, reproduced byte for byte:

* a physical line is read with ``apr_file_gets`` into a fixed buffer: 8192 bytes for htpasswd and htdigest
  (``MAX_STRING_LEN``), so a line of 8191 bytes or more (not counting its LF) ends the scan there ("Line too long"):
  users after it do not exist for Apache. Group files use a growing buffer capped at 16 MiB;
* a line ending in a backslash (before LF or CR LF) is joined with the next one, the backslash and the line break
  removed; the joined line must still fit the buffer;
* a NUL byte ends the line's content (C strings);
* surrounding whitespace (space, tab, CR, LF, VT, FF) is trimmed; empty lines and lines starting with ``#`` are
  skipped (a ``#`` later on a line is not a comment);
* fields are split with ``ap_getword``: the text up to the first ``:``, then *every* following ``:`` is skipped
  (``alice::hash`` is ``alice`` with hash ``hash``); a line without ``:`` is a user with an empty hash (who can never
  log in, but exists);
* the first line naming a user (or a user and realm) wins; names are compared case-sensitively, as raw bytes;
* group members are split like Apache configuration words (``ap_getword_conf``): whitespace separates them,
  ``"..."`` and ``'...'`` quote them, and inside quotes a backslash escapes the quote or a backslash; a group named on
  several lines gets all their members.

Everything works on bytes: a user name is whatever bytes the file holds, UTF-8 or not.
"""

from __future__ import annotations

import collections
import logging
import os
import stat
from collections.abc import Iterator

from ._value import Value
from .exceptions import StoreError
from .hashes import _cost_key

__all__ = [
    "GROUP_LINE_MAX",
    "LINE_MAX",
    "DigestTable",
    "GroupTable",
    "PasswdTable",
    "config_lines",
    "getword",
    "getword_conf",
    "load_htdigest",
    "load_htgroup",
    "load_htpasswd",
    "parse_htdigest",
    "parse_htgroup",
    "parse_htpasswd",
    "read_file",
    "representative_hash",
    "split_conf_words",
]

logger = logging.getLogger("wsgiauth")

#: The line buffer of mod_authn_file (``char l[MAX_STRING_LEN]``, 8192 bytes including the terminating NUL).
LINE_MAX = 8192
#: The cap of mod_authz_groupfile's growing line buffer (``VARBUF_MAX_LEN``).
GROUP_LINE_MAX = 16 * 1024 * 1024

_WHITESPACE = b" \t\n\r\x0b\x0c"  # C isspace() in the C locale, which is what apr_isspace() tests
_LF = 0x0A
_CR = 0x0D
_BACKSLASH = 0x5C


# ---------------------------------------------------------------------------------------------- the line reader


class _Scan:
    """Where a scan stopped: the 1-based number of the physical line that was too long, if any."""

    __slots__ = ("too_long_at",)

    def __init__(self, too_long_at: int | None = None) -> None:
        self.too_long_at = too_long_at


def _fast_path_ok(data: bytes, bufsize: int) -> bool:
    """True when the file has nothing that needs the byte-exact reader: no NUL, no continuation, no long line."""
    if b"\x00" in data or b"\\\n" in data or b"\\\r\n" in data:
        return False
    if len(data) < bufsize - 1:
        return True
    return max(map(len, data.split(b"\n"))) <= bufsize - 2


def config_lines(data: bytes, bufsize: int = LINE_MAX, scan: _Scan | None = None) -> Iterator[bytes]:
    """The logical lines Apache's ``ap_cfg_getline`` gives its callers, trimmed, blank and ``#`` lines skipped.

    Args:
        data: the whole file.
        bufsize: the caller's line buffer (`LINE_MAX` for mod_authn_file, `GROUP_LINE_MAX` for
            mod_authz_groupfile).
        scan: receives the number of the physical line at which the scan stopped because it was too long.

    Returns:
        An iterator of lines without surrounding whitespace; it ends early, like Apache's loop, at a line that does
        not fit the buffer.
    """
    if _fast_path_ok(data, bufsize):
        for raw in data.split(b"\n"):
            line = raw.strip(_WHITESPACE)
            if line and line[0] != 0x23:  # '#'
                yield line
        return
    yield from _exact_lines(data, bufsize, scan)


def _exact_lines(data: bytes, bufsize: int, scan: _Scan | None) -> Iterator[bytes]:
    """A byte-exact model of ``ap_cfg_getline_core`` over ``apr_file_gets``, then ``cfg_trim_line``."""
    pos = 0
    size = len(data)
    physical = 0
    while True:
        buf = bytearray()
        cbuf = 0  # where the next physical line is written (after a continuation: over the backslash)
        cbufsize = bufsize
        eof = False
        too_long = False
        while True:
            if pos >= size:  # apr_file_gets reports EOF only when it read nothing
                if cbuf != 0:
                    del buf[cbuf:]
                    break
                eof = True
                break
            physical += 1
            limit = cbufsize - 1  # apr_file_gets stores at most bufsize - 1 bytes and a NUL
            if limit <= 0:
                segment = b""
            else:
                nl = data.find(b"\n", pos, pos + limit)
                end = nl + 1 if nl != -1 else min(pos + limit, size)
                segment = data[pos:end]
                pos = end
            del buf[cbuf:]
            buf += segment
            nul = segment.find(b"\x00")
            cp = cbuf + (nul if nul != -1 else len(segment))  # strlen(): a NUL ends the string
            if cp > 0 and buf[cp - 1] == _LF:
                cp -= 1
                if cp > 0 and buf[cp - 1] == _CR:
                    cp -= 1
                if cp > 0 and buf[cp - 1] == _BACKSLASH:
                    cp -= 1
                    cbufsize -= cp - cbuf
                    cbuf = cp
                    continue
            elif cp >= bufsize - 1:
                too_long = True
            break
        if eof:
            return
        if too_long:
            if scan is not None:
                scan.too_long_at = physical
            return
        nul = buf.find(b"\x00")
        line = bytes(buf if nul == -1 else buf[:nul]).strip(_WHITESPACE)
        if line and line[0] != 0x23:
            yield line


# ---------------------------------------------------------------------------------------------- word splitting


def getword(line: bytes, pos: int, stop: int = 0x3A) -> tuple[bytes, int]:
    """``ap_getword``: the bytes from ``pos`` up to ``stop`` (``:``), and the position after the run of ``stop``.

    Returns:
        ``(word, next_position)``; at the end of the line the word is empty.
    """
    end = line.find(bytes((stop,)), pos)
    if end == -1:
        return line[pos:], len(line)
    word = line[pos:end]
    n = len(line)
    while end < n and line[end] == stop:
        end += 1
    return word, end


def _unescape(raw: bytes, quote: int) -> bytes:
    """``substring_conf``: a backslash before a backslash (or before the quote, in a quoted word) is dropped."""
    if b"\\" not in raw:
        return raw
    out = bytearray()
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == _BACKSLASH and i + 1 < n and (raw[i + 1] == _BACKSLASH or (quote and raw[i + 1] == quote)):
            i += 1
            c = raw[i]
        out.append(c)
        i += 1
    return bytes(out)


def getword_conf(line: bytes, pos: int) -> tuple[bytes, int]:
    """``ap_getword_conf``: one configuration word starting at ``pos``, and where the next one starts.

    Leading whitespace is skipped; a word starting with ``"`` or ``'`` runs to the matching quote (a backslash escapes
    the quote or a backslash inside it; an unterminated quote runs to the end of the line); any other word runs to
    the next whitespace.
    """
    n = len(line)
    while pos < n and line[pos] in _WHITESPACE:
        pos += 1
    if pos >= n:
        return b"", n
    quote = line[pos]
    if quote in (0x22, 0x27):  # '"' or "'"
        end = pos + 1
        while end < n and line[end] != quote:
            if line[end] == _BACKSLASH and end + 1 < n and line[end + 1] in (quote, _BACKSLASH):
                end += 2
            else:
                end += 1
        word = _unescape(line[pos + 1:end], quote)
        if end < n and line[end] == quote:
            end += 1
    else:
        end = pos
        while end < n and line[end] not in _WHITESPACE:
            end += 1
        word = _unescape(line[pos:end], 0)
    while end < n and line[end] in _WHITESPACE:
        end += 1
    return word, end


def split_conf_words(text: bytes) -> list[bytes]:
    """All the configuration words of ``text``, as mod_authz_groupfile reads a group's members."""
    if b'"' not in text and b"'" not in text and b"\\" not in text:
        return text.split()  # no quoting at all: bytes.split() splits on exactly C's isspace() set
    words: list[bytes] = []
    n = len(text)
    pos = n - len(text.lstrip(_WHITESPACE))  # like Apache's `while (ll[0])`: no word from mere whitespace
    while pos < n:
        word, pos = getword_conf(text, pos)  # also skips the whitespace after the word
        words.append(word)
    return words


# ---------------------------------------------------------------------------------------------- the three formats


class PasswdTable(Value):
    """A parsed htpasswd file.

    Attributes:
        users: user name (raw bytes) -> stored hash (``str``, see `_field_text`), first line wins.
        timing_hash: one stored hash of the scheme (and cost) most users have, for unknown-user timing.
        too_long_at: the physical line at which reading stopped because it was too long for Apache, if any.
    """

    __slots__ = ("timing_hash", "too_long_at", "users")
    __match_args__ = ("users", "timing_hash", "too_long_at")
    users: dict[bytes, str]
    timing_hash: str | None
    too_long_at: int | None

    def __init__(self, users: dict[bytes, str] | None = None, timing_hash: str | None = None,
                 too_long_at: int | None = None) -> None:
        self._init({} if users is None else users, timing_hash, too_long_at)


class DigestTable(Value):
    """A parsed htdigest file.

    Attributes:
        hashes: ``(user, realm)`` (raw bytes each) -> the HA1 field as stored (``str``), first line wins.
        too_long_at: the physical line at which reading stopped because it was too long for Apache, if any.
    """

    __slots__ = ("hashes", "too_long_at")
    __match_args__ = ("hashes", "too_long_at")
    hashes: dict[tuple[bytes, bytes], str]
    too_long_at: int | None

    def __init__(self, hashes: dict[tuple[bytes, bytes], str] | None = None, too_long_at: int | None = None) -> None:
        self._init({} if hashes is None else hashes, too_long_at)


class GroupTable(Value):
    """A parsed htgroup file.

    Attributes:
        members: group name -> its members in file order (a group on several lines merged; duplicates removed).
        by_user: user name -> the groups listing that user, in file order: ``groups(user)`` is one lookup.
        too_long_at: the physical line at which reading stopped because it was too long for Apache, if any.
    """

    __slots__ = ("by_user", "members", "too_long_at")
    __match_args__ = ("members", "by_user", "too_long_at")
    members: dict[bytes, tuple[bytes, ...]]
    by_user: dict[bytes, tuple[bytes, ...]]
    too_long_at: int | None

    def __init__(self, members: dict[bytes, tuple[bytes, ...]] | None = None,
                 by_user: dict[bytes, tuple[bytes, ...]] | None = None, too_long_at: int | None = None) -> None:
        self._init({} if members is None else members, {} if by_user is None else by_user, too_long_at)


def representative_hash(hashes: list[str]) -> str | None:
    """The first hash of the scheme (and cost) most of ``hashes`` use: what an unknown user should cost.

    Hashes cost the same when ``wsgiauth.hashes`` finds the same scheme and cost parameters in them (the salt does not
    count); the hashes that can never verify count as one kind.
    """
    usable = [h for h in hashes if h]
    if not usable:
        return None
    keys = [_cost_key(h) for h in usable]
    best = collections.Counter(keys).most_common(1)[0][0]
    return usable[keys.index(best)]


def _field_text(raw: bytes) -> str:
    """A stored hash field as ``str``: UTF-8 when it decodes (so ``.encode("utf-8")`` gives the file's bytes back,
    which is how a plaintext entry is compared), else latin-1 (lossless). Real hashes are ASCII either way."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def parse_htpasswd(data: bytes) -> PasswdTable:
    """Parse an htpasswd file: ``user:hash[:ignored]`` per line, first line for a user wins."""
    scan = _Scan()
    users: dict[bytes, str] = {}
    for line in config_lines(data, LINE_MAX, scan):
        user, pos = getword(line, 0)
        if user in users:
            continue
        hash_, _ = getword(line, pos)
        users[user] = _field_text(hash_)
    return PasswdTable(users, representative_hash(list(users.values())), scan.too_long_at)


def parse_htdigest(data: bytes) -> DigestTable:
    """Parse an htdigest file: ``user:realm:HA1`` per line, first line for a (user, realm) wins."""
    scan = _Scan()
    table: dict[tuple[bytes, bytes], str] = {}
    for line in config_lines(data, LINE_MAX, scan):
        user, pos = getword(line, 0)
        realm, pos = getword(line, pos)
        key = (user, realm)
        if key in table:
            continue
        ha1, _ = getword(line, pos)
        table[key] = _field_text(ha1)
    return DigestTable(table, scan.too_long_at)


def parse_htgroup(data: bytes) -> GroupTable:
    """Parse an htgroup file: ``group: member member ...`` per line; a group on several lines is merged."""
    scan = _Scan()
    members: dict[bytes, dict[bytes, None]] = {}
    by_user: dict[bytes, dict[bytes, None]] = {}
    for line in config_lines(data, GROUP_LINE_MAX, scan):
        group, pos = getword(line, 0)
        group = group.rstrip(_WHITESPACE)
        listed = members.setdefault(group, {})
        for user in split_conf_words(line[pos:]):
            listed[user] = None
            by_user.setdefault(user, {})[group] = None
    return GroupTable(
        {g: tuple(m) for g, m in members.items()},
        {u: tuple(g) for u, g in by_user.items()},
        scan.too_long_at,
    )


# ---------------------------------------------------------------------------------------------- loading files


def read_file(path: str) -> bytes:
    """The bytes of a credential file.

    Raises:
        OSError: the file cannot be opened or read.
        StoreError: the path is not a regular file (Apache refuses those too, except ``/dev/null``).
    """
    # O_NONBLOCK: opening a FIFO must not hang the request until some writer shows up.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) and path != "/dev/null":
            raise StoreError(f"{path} is not a regular file")
        chunks = []
        while chunk := os.read(fd, max(st.st_size, 65536)):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _warn_too_long(kind: str, path: str, line: int | None) -> None:
    if line is not None:
        logger.warning("%s file %s: line %d is too long for Apache (which stops reading there); entries after it "
                       "are ignored", kind, path, line)


def load_htpasswd(path: str) -> PasswdTable:
    """Read and parse an htpasswd file (see `parse_htpasswd`)."""
    table = parse_htpasswd(read_file(path))
    _warn_too_long("htpasswd", path, table.too_long_at)
    return table


def load_htdigest(path: str) -> DigestTable:
    """Read and parse an htdigest file (see `parse_htdigest`)."""
    table = parse_htdigest(read_file(path))
    _warn_too_long("htdigest", path, table.too_long_at)
    return table


def load_htgroup(path: str) -> GroupTable:
    """Read and parse an htgroup file (see `parse_htgroup`)."""
    table = parse_htgroup(read_file(path))
    _warn_too_long("htgroup", path, table.too_long_at)
    return table
