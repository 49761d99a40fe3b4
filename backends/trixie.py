"""A Debian 13 (trixie) root with Python 3.13 and Debian's own Apache + mod_wsgi, for the Debian 13 test leg.

The root is made once with ``debootstrap`` into a cache directory and reused across runs; every session sees it
through a private overlay, so nothing a test does (the installed wheel, Apache's config, logs) ever reaches the cache,
and two sessions never see each other's changes.

Layout of the cache (``$WSGIAUTH_TRIXIE_CACHE``, default ``/var/cache/wsgiauth/trixie``)::

    CACHE/root/        the Debian 13 root: minbase + :data:`RUNTIME_PACKAGES` + a venv at :data:`VENV`
    CACHE/stamp.json   written last: the recipe hash (:func:`recipe_hash`) and versions; no stamp (or another
                       recipe, or older than ``max_age_days``) means the root is rebuilt
    CACHE/lock         flock: exclusive while building, shared while a session uses the root
    CACHE/build.log    the output of the last build

How a session reaches the root: :meth:`Trixie.start` runs a small holder process under ``unshare --mount`` (a
private mount namespace) which mounts an overlay (the cached root below, an upper dir in the session's temp dir),
``/proc``, ``/dev`` (recursively: ``/dev/pts``, ``/dev/shm``) and a shared directory, bind-mounts the host's local pip
indexes read-only, copies in the host's resolver, CA bundle and pip configuration, and then waits. :meth:`Trixie.run`
enters that namespace (``nsenter``) and ``chroot`` s into the overlay. No mount is ever made in the host's namespace:
when the holder and everything started inside it are gone (stop, failure, SIGTERM, even SIGKILL), the kernel drops
the mounts, so there is nothing to unmount and no stale ``/dev`` mount can sit under a directory that is removed.
The chroot shares the host's network namespace: a server started inside on ``127.0.0.1:PORT`` answers the host.

Inside the root (paths as the chroot sees them):

* :data:`SHARE` (``/srv/wsgiauth``) is the session's share dir on the host (:attr:`Trixie.share`): put files there
  from the host (:meth:`Trixie.write`, :meth:`Trixie.host_path`) and read what the root writes;
* :data:`VENV` (``/opt/wsgiauth-venv``) is a venv made from Debian 13's ``/usr/bin/python3`` with
  :data:`VENV_PACKAGES` preinstalled from wheels only (``--only-binary :all:``: there is no compiler to build with);
  :meth:`Trixie.install_wheel` adds the wheel under test.

The root holds runtime packages only: :func:`Trixie.compilers` lists any compiler, ``-dev`` package or Python header
found, and the build fails when there is one.

Usage::

    with Trixie() as root:                       # builds the cache on first use (about a minute), then reuses it
        root.install_wheel(Path("dist/wsgiauth-...-cp313-....whl"))
        print(root.run([root.python, "-c", "import wsgiauth, sys; print(sys.version)"]).stdout)

Needs root privileges (debootstrap, unshare, chroot) and the host packages ``debootstrap`` (and util-linux,
coreutils); :func:`unavailable` says what is missing.
"""

from __future__ import annotations

import configparser
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Self
from urllib.parse import unquote, urlparse

from ._common import Launcher, ServerError, _kill_group, free_port, port_open, wait_until

__all__ = [
    "BUILD_PACKAGES",
    "DEFAULT_CACHE",
    "RUNTIME_PACKAGES",
    "SHARE",
    "SUITE",
    "VENV",
    "VENV_PACKAGES",
    "Layer",
    "Trixie",
    "cache_dir",
    "debian_mirror",
    "recipe_hash",
    "unavailable",
]

SUITE = "trixie"
DEFAULT_CACHE = Path("/var/cache/wsgiauth/trixie")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Bumped when the way the root is made changes in a way the package lists do not show.
LAYOUT = 1

# What debootstrap puts in (minbase + these), then what apt adds: runtime packages only (no compiler, no -dev).
BOOTSTRAP_PACKAGES = ("python3", "python3-venv", "ca-certificates")
RUNTIME_PACKAGES = (
    "apache2",
    "libapache2-mod-wsgi-py3",
    "apache2-utils",  # htpasswd, htdbm, htdigest
    "libgdbm6t64",
    "libdb5.3t64",
    "libcrypt1",
    "curl",
    "openssl",  # `openssl passwd` and `mkpasswd` (whois) make reference hashes in the unit tests
    "whois",
)
VENV = "/opt/wsgiauth-venv"
# Wheels only, preinstalled into VENV: the package's runtime dependencies and what its unit tests import.
VENV_PACKAGES = (
    "cffi>=1.16",
    "bcrypt>=4.1",
    "argon2-cffi>=23.1",
    "pytest>=8",
    "pytest-timeout>=2.3",
    "pytest-benchmark>=4",  # the suite's addopts say --benchmark-disable
    "hypothesis>=6.100",
    "requests>=2.31",
    "libpass>=1.9",
    "Django>=4.2",
    "Werkzeug>=3.0",
)
SHARE = "/srv/wsgiauth"

# A compiler or a header in the root would defeat the point of the leg (the wheel must work without one).
_COMPILER_PACKAGE = re.compile(r"^(gcc|g\+\+|cpp|clang|tcc|cc|c\+\+|binutils)(-[0-9.]+)?(-x86-64-linux-gnu)?$|-dev$")
_COMPILER_FILES = ("/usr/bin/cc", "/usr/bin/gcc", "/usr/bin/c99", "/usr/bin/x86_64-linux-gnu-gcc", "/usr/bin/ld",
                   "/usr/bin/python3-config")
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Host environment passed into the root: pip's settings (PIP_CERT, PIP_FIND_LINKS ...) and proxies.
_PASS_ENV = re.compile(r"^(PIP_[A-Z_]+|https?_proxy|HTTPS?_PROXY|no_proxy|NO_PROXY|SOURCE_DATE_EPOCH)$")
# pip configuration files, in pip's order; each is copied to the same path in the root when it exists.
_PIP_CONFIGS = ("/etc/xdg/pip/pip.conf", "/etc/pip.conf", "~/.pip/pip.conf", "~/.config/pip/pip.conf")
_HOST_TOOLS = ("debootstrap", "unshare", "nsenter", "chroot", "mount")


def cache_dir() -> Path:
    """The cache directory: ``$WSGIAUTH_TRIXIE_CACHE``, else :data:`DEFAULT_CACHE`."""
    return Path(os.environ.get("WSGIAUTH_TRIXIE_CACHE") or DEFAULT_CACHE)


def unavailable() -> str | None:
    """Why a Debian 13 root cannot be made or used here, or ``None`` when it can."""
    if sys.platform != "linux":
        return "a Debian 13 root needs Linux"
    if os.geteuid() != 0:
        return "a Debian 13 root needs root privileges (debootstrap, unshare --mount, chroot)"
    for tool in _HOST_TOOLS:
        if _which(tool) is None:
            package = "debootstrap" if tool == "debootstrap" else "util-linux / coreutils"
            return f"{tool} is not installed (apt-get install {package}; `make deps` does it)"
    return None


def recipe_hash() -> str:
    """A hash of everything the cached root is made from (suite, package lists, layout): a change rebuilds it."""
    recipe = {"suite": SUITE, "layout": LAYOUT, "bootstrap": BOOTSTRAP_PACKAGES, "runtime": RUNTIME_PACKAGES,
              "venv": VENV, "venv_packages": VENV_PACKAGES}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------- host facts


def debian_mirror(sources: Iterable[Path] | None = None) -> str:
    """The Debian mirror the host's apt uses (``$WSGIAUTH_DEBIAN_MIRROR`` first).

    Reads one-line ``deb URI SUITE ...`` entries (``/etc/apt/sources.list``, ``sources.list.d/*.list``) and deb822
    stanzas (``sources.list.d/*.sources``: ``Types``/``URIs``/``Suites``, ``Enabled: no`` skipped), and takes the
    first archive whose suite is a Debian release name (the security archive and third-party repositories are
    skipped). Falls back to :data:`DEFAULT_MIRROR`.
    """
    override = os.environ.get("WSGIAUTH_DEBIAN_MIRROR")
    if override:
        return override.rstrip("/")
    if sources is None:
        apt = Path("/etc/apt")
        sources = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list")),
                   *sorted((apt / "sources.list.d").glob("*.sources"))]
    for path in sources:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        entries = _deb822_entries(text) if path.suffix == ".sources" else _one_line_entries(text)
        for uri, suite in entries:
            if _is_debian_archive(uri, suite):
                return uri.rstrip("/")
    return DEFAULT_MIRROR


_DEBIAN_SUITES = {"buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid",
                  "oldoldstable", "oldstable", "stable", "testing", "unstable"}


def _is_debian_archive(uri: str, suite: str) -> bool:
    base = suite.split("-", 1)[0].split("/", 1)[0]
    if base not in _DEBIAN_SUITES or "security" in suite or "security" in uri:
        return False
    return urlparse(uri).scheme in ("http", "https", "file")


def _one_line_entries(text: str) -> Iterator[tuple[str, str]]:
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # [arch=amd64 signed-by=...]
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2:
            yield words[0], words[1]


def _deb822_entries(text: str) -> Iterator[tuple[str, str]]:
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key is not None:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                yield uri, suite


def host_pip_files() -> tuple[list[Path], list[Path]]:
    """What pip needs inside the root to behave as on the host: (files to copy, directories to bind read-only).

    Files: the pip configuration files that exist, the CA bundle and the constraint / requirement files they (or
    ``PIP_*`` variables) name. Directories: the local ``find-links`` and ``file://`` index directories.
    """
    files: list[Path] = []
    dirs: list[Path] = []
    values: list[tuple[str, str]] = []
    for name in (*_PIP_CONFIGS, os.environ.get("PIP_CONFIG_FILE", "")):
        if not name:
            continue
        path = Path(os.path.expanduser(name))
        if not path.is_file():
            continue
        files.append(path)
        parser = configparser.ConfigParser(interpolation=None)
        with contextlib.suppress(configparser.Error, OSError):
            parser.read(path, encoding="utf-8")
        for section in parser.sections():
            values.extend(parser.items(section))
    for key, value in os.environ.items():
        if key.startswith("PIP_"):
            values.append((key[4:].lower().replace("_", "-"), value))
    for key, value in values:
        for word in value.split():
            target = Path(unquote(urlparse(word).path)) if word.startswith("file:") else Path(word)
            if not target.is_absolute():
                continue
            if key in ("cert", "client-cert", "constraint", "requirement") and target.is_file():
                files.append(target)
            elif key in ("find-links", "index-url", "extra-index-url") and target.is_dir():
                # file:///opt/pypi/simple: bind /opt/pypi (the index's links may point next to simple/)
                dirs.append(target.parent if target.name == "simple" else target)
    return list(dict.fromkeys(files)), list(dict.fromkeys(dirs))


def _which(tool: str) -> str | None:
    found = shutil.which(tool)
    if found:
        return found
    for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        if os.access(f"{d}/{tool}", os.X_OK):
            return f"{d}/{tool}"
    return None


def _mounts_under(path: Path) -> list[str]:
    """Mount points in *this* namespace at or under ``path`` (none is expected: every mount is private)."""
    prefix = str(path.resolve())
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


def _remove_tree(path: Path) -> None:
    """``rm -rf`` that refuses to run when something is mounted below (it would delete the mount's contents)."""
    if not path.exists() and not path.is_symlink():
        return
    mounted = _mounts_under(path)
    if mounted:
        raise ServerError(f"refusing to remove {path}: mounted below it: {', '.join(mounted)} (umount them first)")
    shutil.rmtree(path)


# ---------------------------------------------------------------------------------------------------- locking


class _Lock:
    """An flock on one file: exclusive or shared, with a bounded wait; the kernel drops it if the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, *, exclusive: bool, timeout: float) -> None:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self._fd, mode | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() > deadline:
                raise ServerError(f"{self.path} is still locked after {timeout:.0f}s (another session building or "
                                  "using the Debian 13 root?)")
            time.sleep(0.5)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


# ---------------------------------------------------------------------------------------------------- namespaces


class _Namespace:
    """A private mount namespace holding a root's mounts, entered by :meth:`command`.

    ``lowers`` + ``upper`` + ``work``: an overlay of the lower dirs (first on top) with writes going to ``upper``,
    mounted at ``target``; without them ``target`` itself is the root (used while building the cache).
    """

    def __init__(self, target: Path, *, lowers: Sequence[Path] = (), upper: Path | None = None,
                 work: Path | None = None, share: Path | None = None, binds: Sequence[Path] = (),
                 copies: Sequence[tuple[Path, str]] = (), log: Path) -> None:
        self.target = target
        self.lowers = list(lowers)
        self.upper = upper
        self.work = work
        self.share = share
        self.binds = list(binds)
        self.copies = list(copies)
        self.log = log
        self._proc: subprocess.Popen[bytes] | None = None
        self._err: IO[bytes] | None = None

    def _script(self) -> str:
        q = shlex.quote
        t = str(self.target)
        lines = ["set -eu"]
        if self.lowers:
            assert self.upper is not None and self.work is not None
            options = f"lowerdir={':'.join(map(str, self.lowers))},upperdir={self.upper},workdir={self.work}"
            lines.append(f"mount -t overlay overlay -o {q(options)} {q(t)}")
        lines += [f"mount -t proc proc {q(t + '/proc')}",
                  f"mount --rbind /dev {q(t + '/dev')}"]
        if self.share is not None:
            lines += [f"mkdir -p {q(t + SHARE)}", f"mount --bind {q(str(self.share))} {q(t + SHARE)}"]
        for d in self.binds:
            inner = q(t + str(d))
            lines += [f"mkdir -p {inner}", f"mount --bind {q(str(d))} {inner}",
                      f"mount -o remount,bind,ro {inner}"]
        for src, dst in self.copies:
            inner = t + dst
            lines += [f"mkdir -p {q(os.path.dirname(inner))}", f"rm -f {q(inner)}",
                      f"cp -L -- {q(str(src))} {q(inner)}", f"chmod 0644 {q(inner)}"]
        lines += ["echo ready", "exec cat >/dev/null"]  # hold the namespace until our stdin closes
        return "\n".join(lines)

    def start(self, timeout: float = 60.0) -> None:
        self._err = open(self.log, "ab")
        self._proc = subprocess.Popen(
            [_which("unshare") or "unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
             self._script()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, start_new_session=True)
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        line = self._proc.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            self.stop()
            tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise ServerError(f"could not set up the mounts of the Debian 13 root at {self.target}:\n{tail}")

    @property
    def pid(self) -> int:
        if self._proc is None or self._proc.poll() is not None:
            raise ServerError("the Debian 13 root's mount namespace is not running (call start() first)")
        return self._proc.pid

    def command(self, cmd: Sequence[str], *, env: Mapping[str, str], cwd: str | None = None,
                user: str | None = None) -> list[str]:
        """The host command line that runs ``cmd`` inside the root."""
        chroot = [_which("chroot") or "chroot"]
        if user is not None:
            chroot.append(f"--userspec={user}")
        inner = ["/usr/bin/env", "-i"]
        if cwd is not None:
            inner += ["-C", cwd]
        inner += [f"{k}={v}" for k, v in env.items()]
        return [_which("nsenter") or "nsenter", f"--mount=/proc/{self.pid}/ns/mnt", "--", *chroot,
                str(self.target), *inner, *cmd]

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._err is not None:
            self._err.close()
            self._err = None


# ---------------------------------------------------------------------------------------------------- the root


class Trixie(Launcher):
    """A session on the cached Debian 13 root: :meth:`start` (builds the cache when needed), :meth:`run`, :meth:`stop`.

    The :class:`~backends._common.Launcher` life cycle: ``start()`` mounts the session's view (``self.pid`` is the
    namespace's holder), ``stop()`` unmounts it (the session dir and what the root wrote are kept, ``start()`` mounts
    them again), ``kill()`` kills the holder, ``close()`` also removes the session dir, ``with Trixie() as root``;
    ``python -m backends.trixie`` holds a session until SIGTERM/Ctrl-C and prints how to enter it.

    Args:
        cache: the cache directory (default :func:`cache_dir`).
        mirror: the Debian mirror for debootstrap and apt (default :func:`debian_mirror`).
        layers: extra lower dirs stacked over the root (first on top), e.g. a builder layer.
        upper: a persistent upper dir (writes go there instead of a throw-away one): used to make a layer.
        max_age_days: rebuild a root older than this (``None``: never for age).
        lock_timeout: seconds to wait for another session's build.
        keep: keep the session's temp dir after :meth:`close` (its path is printed).

    Attributes:
        dir: the session's temp dir (overlay upper/work, mount point, share dir, logs).
        share: the host side of :data:`SHARE`.
        timings: seconds spent per phase (``"root build"``, ``"package install"`` ...), for the report.
    """

    python = f"{VENV}/bin/python"
    name = "Debian 13 root"

    def __init__(self, cache: str | os.PathLike[str] | None = None, *, mirror: str | None = None,
                 layers: Sequence[Path] = (), upper: Path | None = None, max_age_days: float | None = 30.0,
                 lock_timeout: float = 900.0, keep: bool = False) -> None:
        self.cache = Path(cache) if cache is not None else cache_dir()
        self.root = self.cache / "root"
        self.stamp = self.cache / "stamp.json"
        self.mirror = mirror or debian_mirror()
        self.layers = list(layers)
        self.persistent_upper = upper
        self.max_age_days = max_age_days
        self.lock_timeout = lock_timeout
        self.keep = keep
        self.timings: dict[str, float] = {}
        self.dir = Path(tempfile.mkdtemp(prefix="wsgiauth-trixie-"))
        os.chmod(self.dir, 0o755)
        self.share = self.dir / "share"
        self.share.mkdir(mode=0o755)
        os.chmod(self.share, 0o755)
        self._lock = _Lock(self.cache / "lock")
        self._ns: _Namespace | None = None
        self._old_sigterm: Any = None
        self.info: dict[str, Any] = {}
        self._build_started = time.monotonic()

    # ------------------------------------------------------------------ the cache

    def stamp_info(self) -> dict[str, Any] | None:
        """The stamp of a complete root, or ``None`` when it is missing, from another recipe, or too old."""
        try:
            info: dict[str, Any] = json.loads(self.stamp.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if info.get("recipe") != recipe_hash() or not (self.root / "usr/bin/python3").exists():
            return None
        if self.max_age_days is not None and time.time() - float(info.get("built", 0)) > self.max_age_days * 86400:
            return None
        return info

    def ensure_root(self) -> dict[str, Any]:
        """Build the cached root unless a complete one is there; return its stamp.

        Takes the cache lock exclusively while it builds; a second session waits (``lock_timeout``).

        Raises:
            ServerError: debootstrap, apt or pip failed (the message has the tail of ``CACHE/build.log``), or the root
                holds a compiler.
        """
        return self._ensure(hold=False)

    def _ensure(self, *, hold: bool) -> dict[str, Any]:
        """:meth:`ensure_root`; with ``hold``, keep the lock afterwards, turned into a shared one.

        A complete root needs only the shared lock (so a process that already holds one, e.g. an open session, can
        start another session); the exclusive one is taken only to build.
        """
        self._lock.acquire(exclusive=False, timeout=self.lock_timeout)
        info = self.stamp_info()
        if info is not None:
            if not hold:
                self._lock.release()
            return info
        self._lock.release()
        self._lock.acquire(exclusive=True, timeout=self.lock_timeout)
        try:
            info = self.stamp_info()
            if info is None:
                started = time.monotonic()
                info = self._build()
                self.timings["root build"] = time.monotonic() - started
            if hold:  # flock converts the lock in place: nobody can rebuild the root in between
                self._lock.acquire(exclusive=False, timeout=self.lock_timeout)
        except BaseException:
            self._lock.release()
            raise
        if not hold:
            self._lock.release()
        return info

    def _log(self, text: str) -> None:
        with open(self.cache / "build.log", "a", encoding="utf-8") as fh:
            fh.write(text)

    def _step(self, mark: str, cmd: Sequence[str]) -> None:
        elapsed = time.monotonic() - self._build_started
        self._log(f"[{elapsed:6.1f}s] {mark} {shlex.join(cmd)}\n")

    def _build(self) -> dict[str, Any]:
        reason = unavailable()
        if reason is not None:
            raise ServerError(reason)
        self.cache.mkdir(parents=True, exist_ok=True)
        (self.cache / "build.log").write_text(f"building {self.root} from {self.mirror}\n", encoding="utf-8")
        self._build_started = time.monotonic()
        with contextlib.suppress(FileNotFoundError):
            self.stamp.unlink()
        new = self.cache / "root.new"
        _remove_tree(new)
        # debootstrap mounts /proc and /sys in the target: in a private namespace they vanish with it.
        self._host([_which("unshare") or "unshare", "--mount", "--propagation", "private", "--",
                    _which("debootstrap") or "debootstrap", "--variant=minbase",
                    "--include=" + ",".join(BOOTSTRAP_PACKAGES), SUITE, str(new), self.mirror], timeout=900)
        # Never start services from maintainer scripts (apache2's postinst would start one on port 80).
        policy = new / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\n# written by backends/trixie.py: no daemons while packages install\nexit 101\n")
        os.chmod(policy, 0o755)
        ns = self._namespace(new, share=None)
        ns.start()
        try:
            env = self._env({"DEBIAN_FRONTEND": "noninteractive"})
            self._in(ns, ["apt-get", "update", "-q"], env, timeout=600)
            self._in(ns, ["apt-get", "install", "-y", "-q", "--no-install-recommends", *RUNTIME_PACKAGES], env,
                     timeout=900)
            self._in(ns, ["apt-get", "clean"], env, timeout=120)
            self._in(ns, ["/usr/bin/python3", "-m", "venv", VENV], env, timeout=300)
            self._in(ns, [f"{VENV}/bin/python", "-m", "pip", "install", "-q", "--only-binary", ":all:",
                          *VENV_PACKAGES], env, timeout=900)
            versions = self._in(ns, ["/bin/sh", "-c", "grep VERSION_ID /etc/os-release; python3 -V; "
                                     "dpkg-query -W -f='${Package} ${Version}\\n' apache2 libapache2-mod-wsgi-py3"],
                                env, timeout=60)
        finally:
            ns.stop()
        bad = _compilers_in(new)
        if bad:
            raise ServerError(f"the Debian 13 root must hold no compiler or -dev package, found: {', '.join(bad)}")
        old = self.cache / "root.old"
        _remove_tree(old)
        if self.root.exists():
            os.rename(self.root, old)
        os.rename(new, self.root)
        _remove_tree(old)
        self._step("done:", [str(self.root)])
        info = {"recipe": recipe_hash(), "built": time.time(), "mirror": self.mirror,
                "versions": versions.strip().splitlines()}
        tmp = self.stamp.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=1), encoding="utf-8")
        os.replace(tmp, self.stamp)  # the stamp comes last: a build cut short leaves none
        return info

    def _host(self, cmd: Sequence[str], *, timeout: float) -> None:
        self._step("$", cmd)
        with open(self.cache / "build.log", "ab") as log:
            try:
                result = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        timeout=timeout, check=False)
            except subprocess.TimeoutExpired:
                raise ServerError(f"{cmd[0]} took more than {timeout:.0f}s{self._build_tail()}") from None
        if result.returncode != 0:
            raise ServerError(f"{shlex.join(cmd)} failed ({result.returncode}){self._build_tail()}")

    def _in(self, ns: _Namespace, cmd: Sequence[str], env: Mapping[str, str], *, timeout: float) -> str:
        self._step("#", cmd)
        result = _run(ns.command(cmd, env=env), timeout=timeout)
        self._log(result.stdout + result.stderr)
        if result.returncode != 0:
            raise ServerError(f"in the Debian 13 root: {shlex.join(cmd)} failed ({result.returncode})"
                              f"{self._build_tail()}")
        return result.stdout

    def _build_tail(self) -> str:
        text = (self.cache / "build.log").read_text(errors="replace").splitlines()[-40:]
        return f"\n--- {self.cache / 'build.log'} ---\n" + "\n".join(text)

    def _namespace(self, target: Path, *, share: Path | None, lowers: Sequence[Path] = (),
                   upper: Path | None = None, work: Path | None = None) -> _Namespace:
        files, dirs = host_pip_files()
        copies: list[tuple[Path, str]] = [(f, str(f)) for f in files]
        for name in ("/etc/resolv.conf", "/etc/ssl/certs/ca-certificates.crt"):
            if Path(name).is_file() and Path(name) not in files:
                copies.append((Path(name), name))
        return _Namespace(target, lowers=lowers, upper=upper, work=work, share=share, binds=dirs, copies=copies,
                          log=self.dir / "namespace.log")

    # ------------------------------------------------------------------ the session

    def start(self) -> Self:
        """Make sure the cached root exists, then mount this session's view of it.

        Returns:
            ``self``.

        Raises:
            ServerError: see :meth:`ensure_root`; or the mounts failed.
        """
        if self._ns is not None:
            return self
        reason = unavailable()
        if reason is not None:
            raise ServerError(reason)
        self.info = self._ensure(hold=True)  # shared while in use: nobody rebuilds the root under our overlay
        try:
            merged = self.dir / "merged"
            merged.mkdir(exist_ok=True)
            if self.persistent_upper is not None:
                upper = self.persistent_upper
                work = upper.parent / (upper.name + ".work")
                _remove_tree(work)
            else:
                upper, work = self.dir / "upper", self.dir / "work"
            upper.mkdir(parents=True, exist_ok=True)
            work.mkdir(parents=True, exist_ok=True)
            self._ns = self._namespace(merged, share=self.share, lowers=[*self.layers, self.root], upper=upper,
                                       work=work)
            self._ns.start()
        except BaseException:
            self._ns = None
            self._lock.release()
            raise
        self._trap_sigterm()
        return self

    def _trap_sigterm(self) -> None:
        """Turn SIGTERM into KeyboardInterrupt while the session runs, so ``finally``/``with`` clean-up happens."""
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            def on_term(signum: int, frame: Any) -> None:
                raise KeyboardInterrupt(f"signal {signum}")

            self._old_sigterm = signal.signal(signal.SIGTERM, on_term)

    def stop(self) -> None:
        """Unmount this session's view (the holder exits; the kernel drops its mounts). Idempotent."""
        ns, self._ns = self._ns, None
        if ns is not None:
            ns.stop()
            self._lock.release()
        if self._old_sigterm is not None:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None

    def kill(self) -> None:
        """Kill the namespace's holder (SIGKILL): the kernel drops the mounts; :meth:`start` mounts them again."""
        ns = self._ns
        if ns is not None and ns._proc is not None:
            _kill_group(ns._proc)
        self.stop()

    def close(self) -> None:
        """Stop and remove the session's temp dir (unless ``keep``); never while something is mounted below it."""
        self.stop()
        if self.keep:
            print(f"backends.trixie: kept {self.dir}", file=sys.stderr)
        else:
            _remove_tree(self.dir)

    @property
    def pid(self) -> int | None:
        """The pid of the process holding the session's mount namespace, while it is mounted."""
        ns = self._ns
        return ns._proc.pid if ns is not None and ns._proc is not None and ns._proc.poll() is None else None

    # ------------------------------------------------------------------ inside the root

    def _env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {"PATH": _PATH, "HOME": "/root", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        env.update({k: v for k, v in os.environ.items() if _PASS_ENV.match(k)})
        env.update(extra or {})
        return env

    def command(self, cmd: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None,
                user: str | None = None) -> list[str]:
        """The host command line that runs ``cmd`` in the root (for ``subprocess.Popen`` of long-running programs)."""
        if self._ns is None:
            raise ServerError("the Debian 13 root is not started (call start() or use `with Trixie() as root`)")
        return self._ns.command(cmd, env=self._env(env), cwd=cwd, user=user)

    def run(self, cmd: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None,
            user: str | None = None, input: str | None = None, timeout: float = 300.0,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` (paths as the root sees them) in the root and return its output.

        Args:
            cmd: the program and its arguments.
            env: variables on top of a clean environment (PATH, HOME=/root, LANG=C.UTF-8, the host's PIP_* and
                proxy variables).
            cwd: the working directory inside the root (default ``/``).
            user: ``"UID:GID"`` or ``"www-data:www-data"`` to run as (default root).
            input: text for standard input.
            timeout: seconds; the whole process group is killed after that.
            check: raise when the command fails.

        Returns:
            The completed process (``returncode``, ``stdout``, ``stderr`` as text).

        Raises:
            ServerError: with ``check``, when the command exits non-zero or times out (the output is in the message).
        """
        result = _run(self.command(cmd, env=env, cwd=cwd, user=user), input=input, timeout=timeout)
        if check and result.returncode != 0:
            raise ServerError(f"in the Debian 13 root: {shlex.join(cmd)} failed ({result.returncode}):\n"
                              f"{result.stdout[-4000:]}{result.stderr[-4000:]}")
        return result

    def host_path(self, inner: str) -> Path:
        """The host path of ``inner``, a path under :data:`SHARE` as the root sees it."""
        if inner != SHARE and not inner.startswith(SHARE + "/"):
            raise ValueError(f"{inner!r} is not under {SHARE}")
        return self.share / inner[len(SHARE):].lstrip("/")

    def write(self, inner: str, data: str | bytes, *, mode: int = 0o644) -> Path:
        """Write a file under :data:`SHARE` from the host (readable by Apache's www-data); return its host path."""
        target = self.host_path(inner)
        target.parent.mkdir(parents=True, exist_ok=True)
        for parent in (target.parent, *target.parent.parents):
            if parent == self.share.parent:
                break
            os.chmod(parent, 0o755)
        target.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(target, mode)
        return target

    def install_wheel(self, wheel: str | os.PathLike[str], *extra: str, extras: Sequence[str] = ()) -> str:
        """``pip install`` a wheel (and its missing dependencies, wheels only) into :data:`VENV`.

        Args:
            wheel: the wheel on the host.
            extra: more pip arguments or requirements.
            extras: the wheel's extras to install with it (``["ldap"]``: ``WHEEL[ldap]``).

        Returns:
            pip's output.
        """
        source = Path(wheel)
        inner = f"{SHARE}/wheels/{source.name}"
        self.write(inner, source.read_bytes())
        started = time.monotonic()
        requirement = inner + (f"[{','.join(extras)}]" if extras else "")
        out = self.run([self.python, "-m", "pip", "install", "-q", "--only-binary", ":all:", requirement, *extra],
                       timeout=600).stdout
        self.timings["package install"] = self.timings.get("package install", 0.0) + time.monotonic() - started
        return out

    def compilers(self) -> list[str]:
        """Compilers, ``-dev`` packages and C headers for Python found in this session's view of the root."""
        script = ("dpkg-query -W -f='${Package}\\n'; for f in " + " ".join(_COMPILER_FILES) + "; do "
                  "[ -e \"$f\" ] && echo \"file:$f\"; done; "
                  "ls /usr/include/python3*/Python.h 2>/dev/null | sed 's/^/file:/'; true")
        out = self.run(["/bin/sh", "-c", script]).stdout
        return _bad_entries(out)

    def __repr__(self) -> str:
        return f"<Trixie {self.root} {'running' if self.running else 'stopped'} session={self.dir}>"


def _bad_entries(out: str) -> list[str]:
    bad = []
    for line in out.splitlines():
        name = line.strip().split(":", 1)[0] if not line.startswith("file:") else line.strip()
        if line.startswith("file:") or _COMPILER_PACKAGE.search(name):
            bad.append(line.strip())
    return bad


def _compilers_in(root: Path) -> list[str]:
    """The same check as :meth:`Trixie.compilers`, from the host, on a root that is not mounted."""
    status = root / "var/lib/dpkg/status"
    lines = []
    for block in status.read_text(encoding="utf-8", errors="replace").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != " ")
        if fields.get("Package") and "installed" in fields.get("Status", "").split():
            lines.append(fields["Package"])
    for f in _COMPILER_FILES:
        if os.path.lexists(str(root) + f):
            lines.append(f"file:{f}")
    lines += [f"file:{p}" for p in root.glob("usr/include/python3*/Python.h")]
    return _bad_entries("\n".join(lines))


def _run(cmd: Sequence[str], *, input: str | None = None, timeout: float) -> subprocess.CompletedProcess[str]:
    """``subprocess.run`` in a new session, killing the whole process group on timeout."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={"PATH": _PATH})
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += f"\n(killed after {timeout:.0f}s)"
        return subprocess.CompletedProcess(list(cmd), -signal.SIGKILL, out, err)
    return subprocess.CompletedProcess(list(cmd), proc.returncode, out, err)


# ---------------------------------------------------------------------------------------------------- layers


#: The build layer's packages: a compiler and the Python headers, nothing else (apt pulls in what they depend on).
BUILD_PACKAGES = ("gcc", "python3-dev")


class Layer:
    """A cached overlay layer over the root: ``CACHE/NAME/`` holds what ``apt-get install PACKAGES`` adds.

    Made once in a session whose upper dir is the layer itself, stamped (``CACHE/NAME.json``: the root's build time
    and the package list) and rebuilt when either changes. Use it as ``Trixie(layers=[layer.path])`` inside
    ``with layer:`` (a shared lock on ``CACHE/NAME.lock``: nobody rebuilds the layer under a session using it).

    Args:
        name: the layer's directory name under the cache.
        packages: the apt packages it adds (``--no-install-recommends``).
        cache: the cache directory (default :func:`cache_dir`).
    """

    def __init__(self, name: str, packages: Sequence[str], *, cache: Path | None = None) -> None:
        self.cache = cache or cache_dir()
        self.name = name
        self.packages = tuple(packages)
        self.path = self.cache / name
        self.stamp = self.cache / f"{name}.json"
        self.timings: dict[str, float] = {}
        self._lock = _Lock(self.cache / f"{name}.lock")

    def _wanted(self, root_info: dict[str, Any]) -> dict[str, Any]:
        return {"root_built": root_info["built"], "packages": list(self.packages)}

    def _current(self, wanted: dict[str, Any]) -> bool:
        try:
            have = json.loads(self.stamp.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return bool(have == wanted and self.path.is_dir())

    def __enter__(self) -> Layer:
        probe = Trixie(self.cache)
        try:
            root_info = probe.ensure_root()
            self.timings.update(probe.timings)  # "root build" when the root was made here
        finally:
            probe.close()
        wanted = self._wanted(root_info)
        self._lock.acquire(exclusive=False, timeout=900)
        if self._current(wanted):
            return self
        self._lock.release()
        self._lock.acquire(exclusive=True, timeout=900)
        try:
            if not self._current(wanted):
                self._build(wanted)
            self._lock.acquire(exclusive=False, timeout=900)  # flock converts in place
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def _build(self, wanted: dict[str, Any]) -> None:
        started = time.monotonic()
        with contextlib.suppress(FileNotFoundError):
            self.stamp.unlink()
        new = self.cache / f"{self.name}.new"
        _remove_tree(new)
        with Trixie(self.cache, upper=new) as root:
            env = {"DEBIAN_FRONTEND": "noninteractive"}
            root.run(["apt-get", "update", "-q"], env=env, timeout=600)
            root.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *self.packages], env=env,
                     timeout=900)
            root.run(["apt-get", "clean"], env=env)
        _remove_tree(new.with_name(new.name + ".work"))
        _remove_tree(self.path)
        os.rename(new, self.path)
        self.stamp.write_text(json.dumps(wanted), encoding="utf-8")
        self.timings[f"{self.name} layer build"] = time.monotonic() - started


# ---------------------------------------------------------------------------------------------------- Debian's Apache

DATA = Path(__file__).resolve().parent / "data" / "trixie"
SITE = f"{SHARE}/site"
CONFDIR = "/etc/apache2-wsgiauth"  # a Debian "multiple instances" config dir: apache2ctl derives run/lock dirs
_CONF_SHARE = f"{SHARE}/apache2"  # ... and it lives in the share dir (a symlink), so the host can read it
_LOGS = f"{SHARE}/logs"
MODULES = ("auth_digest", "authn_dbm", "authz_dbm", "authz_groupfile")


class DebianApache(Launcher):
    """Debian 13's own Apache 2.4 + libapache2-mod-wsgi-py3 in a :class:`Trixie` session, on ``127.0.0.1:port``.

    Configured the Debian way, as a private instance: ``/etc/apache2`` copied to :data:`CONFDIR` (Debian's
    ``envvars`` run as ``www-data``, with ``APACHE_LOG_DIR`` pointed at the share dir), ``a2enmod`` for the
    modules the site needs (:data:`MODULES`), ``a2dissite 000-default``, the site
    ``backends/data/trixie/site.conf`` installed with ``a2ensite``, ``ports.conf`` listening on loopback only.
    Started and stopped with ``apache2ctl`` (``APACHE_CONFDIR`` set), as Debian's service unit does.

    The site dir :data:`SITE` gets ``backends/data/trixie/site/*`` (the app and the auth scripts); the data files
    they name (htpasswd-*, users-*, htdigest, htgroup) are the caller's to make, with Apache's tools in the root.

    Args:
        root: a started :class:`Trixie` session with the wheel installed.
        port: the port (default: a free one; the root shares the host's network).
        startup_timeout: seconds to wait until Apache answers.
    """

    host = "127.0.0.1"
    name = "Debian 13 apache2"
    owns_dir = False  # the share dir is the Trixie session's

    def __init__(self, root: Trixie, *, port: int | None = None, startup_timeout: float = 30.0) -> None:
        self.trixie = root
        self.port = port or free_port()
        self.url = f"http://{self.host}:{self.port}/"
        self.dir = root.host_path(SHARE)
        self.startup_timeout = startup_timeout
        self.error_log = root.host_path(f"{_LOGS}/error.log")
        self.access_log = root.host_path(f"{_LOGS}/access.log")
        self.log = self.error_log
        self._apache_pid: int | None = None
        self._configured = False

    @property
    def pid(self) -> int | None:
        """Apache's parent (root; its children run as www-data), while it runs."""
        pid = self._apache_pid
        return pid if pid is not None and os.path.exists(f"/proc/{pid}") else None

    def _env(self) -> dict[str, str]:
        # apache2ctl start hands over to systemctl when /proc/1/exe is systemd (the host's): say we are the unit.
        return {"APACHE_CONFDIR": CONFDIR, "APACHE_STARTED_BY_SYSTEMD": "true"}

    def configure(self) -> None:
        """Write the site and the private instance's configuration; :meth:`start` calls it once."""
        t = self.trixie
        for path in sorted((DATA / "site").iterdir()):
            t.write(f"{SITE}/{path.name}", path.read_bytes())
        site = (DATA / "site.conf").read_text(encoding="utf-8")
        site = site.replace("@PORT@", str(self.port)).replace("@SITE@", SITE).replace("@VENV@", VENV)
        t.write(f"{SHARE}/wsgiauth.conf", site)
        t.write(f"{SHARE}/ports.conf", f"# backends/trixie.py: loopback only\nListen {self.host}:{self.port}\n")
        t.host_path(_LOGS).mkdir(mode=0o755, exist_ok=True)
        script = "\n".join([
            "set -eu",
            f"rm -rf {_CONF_SHARE} {CONFDIR}",
            f"cp -a /etc/apache2 {_CONF_SHARE}",
            f"ln -s {_CONF_SHARE} {CONFDIR}",
            f"cp {SHARE}/ports.conf {CONFDIR}/ports.conf",
            f"cp {SHARE}/wsgiauth.conf {CONFDIR}/sites-available/wsgiauth.conf",
            f"printf '\\n# backends/trixie.py: logs in the session share dir\\nexport APACHE_LOG_DIR={_LOGS}\\n'"
            f" >> {CONFDIR}/envvars",
            "a2dissite -q 000-default",
            "a2enmod -q " + " ".join(MODULES),
            "a2ensite -q wsgiauth",
            "apache2ctl configtest",
        ])
        t.run(["/bin/sh", "-c", script], env=self._env())
        self._configured = True

    def _pid(self) -> int | None:
        result = self.trixie.run(["cat", "/run/apache2-wsgiauth/apache2.pid"], check=False)
        text = result.stdout.strip()
        return int(text) if result.returncode == 0 and text.isdigit() else None

    def start(self) -> Self:
        """Start Apache (``apache2ctl start``) and wait until it answers HTTP.

        Raises:
            ServerError: Apache did not start or answer (the tail of its error log is in the message).
        """
        if self.pid is not None:
            return self
        if not self._configured:
            self.configure()
        self.trixie.run(["apache2ctl", "start"], env=self._env())
        try:
            wait_until(lambda: self._pid() is not None and port_open(self.port), timeout=self.startup_timeout,
                       what=f"Debian 13 Apache on {self.url}", log=self.error_log)
        except ServerError:
            self.stop()
            raise
        self._apache_pid = self._pid()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stop Apache (``apache2ctl stop``), wait until the parent is gone; SIGKILL after ``timeout``. Idempotent."""
        pid = self.pid or (self._pid() if self.trixie.running else None)
        self._apache_pid = None
        if pid is None:
            return
        if self.trixie.running:
            self.trixie.run(["apache2ctl", "stop"], env=self._env(), check=False)
        deadline = time.monotonic() + timeout
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:  # one pid namespace with the root
            time.sleep(0.05)
        if os.path.exists(f"/proc/{pid}"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL Apache's process group (the parent and its children: a crash); :meth:`start` recovers."""
        pid = self.pid
        self._apache_pid = None
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # apache2 daemonises into a session of its own
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.trixie.running:  # the stale pid file would make apache2ctl refuse to start
            self.trixie.run(["rm", "-f", "/run/apache2-wsgiauth/apache2.pid"], check=False)

    def error_log_text(self) -> str:
        try:
            return self.error_log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def __repr__(self) -> str:
        return f"<DebianApache {self.url} pid={self.pid}>"


if __name__ == "__main__":  # python -m backends.trixie: hold a session until SIGTERM / Ctrl-C
    session = Trixie()
    sys.exit(session.serve(lambda t: f"  enter it: {shlex.join(t.command(['/bin/bash']))}\n"
                                     "Ctrl-C (or SIGTERM) unmounts it."))
