"""A throw-away real Apache (httpd + mod_wsgi) started through ``mod_wsgi-express``.

For tests, benchmarks and the demo, in the spirit of python-ldap's ``slapdtest``: the class writes
everything into a temp dir, picks a free loopback port, generates the configuration with
``mod_wsgi-express setup-server``, starts Apache in the foreground (so that a crash is seen at once),
polls until it answers HTTP, and offers ``restart()``, ``graceful()`` and ``stop()``.

Layout of the temp dir (mode 0755, so that Apache's ``www-data`` children can traverse it)::

    ROOT/site/        the WSGI app, the auth scripts and the data files you give (mode 0644 each)
    ROOT/server/      mod_wsgi-express's server root: httpd.conf, apachectl, error_log, access_log
    ROOT/include.conf the ``--include-file`` written from ``include=`` (LoadModule lines + your text)
    ROOT/apache.out   Apache's own stdout/stderr (configuration errors land here)

How mod_wsgi-express wires the hooks (mod_wsgi 6.1.1; see ``ROOT/server/httpd.conf``):

* ``--auth-user-script`` puts ``AuthType Basic`` (or ``Digest`` with ``--auth-type Digest``),
  ``AuthName 'HOST:PORT'``, ``AuthBasicProvider wsgi`` (or ``AuthDigestProvider wsgi``) and
  ``WSGIAuthUserScript`` in a ``<Location />``: the whole URL space is protected, with
  ``Require valid-user``. The realm is therefore ``"127.0.0.1:PORT"``, which an htdigest file cannot
  hold (``user:realm:HA1`` is split at colons, by Apache and by wsgiauth alike): pass ``realm=`` to
  override ``AuthName`` through the include file (:attr:`Apache.realm` is the realm in force).
* ``--auth-group-script`` adds ``WSGIAuthGroupScript`` there and ``--auth-group NAME`` turns the
  requirement into ``<RequireAll> Require valid-user / Require wsgi-group 'NAME' </RequireAll>``.
* ``--host-access-script`` puts ``WSGIAccessScript`` in its own ``<Location />``.
* The hooks run in Apache's child processes (embedded mode) even though the application itself runs
  in a mod_wsgi daemon process; the children run as ``www-data``, so everything they read must be
  world-readable.
* ``--include-file`` is included at the very end of httpd.conf, so its ``<Location /sub>`` sections
  override the ``<Location />`` above (``AuthMerging Off``: the most specific section's ``Require``
  lines win). This is how several auth scripts, or native providers next to wsgiauth, share a server.

The include text is prefixed with ``Define WSGIAUTH_SITE /path/to/ROOT/site`` (and ``WSGIAUTH_ROOT``),
so directives can name files as ``"${WSGIAUTH_SITE}/htpasswd"``, and with guarded
``<IfModule !X_module> LoadModule ...`` lines for the native modules requested with ``modules=``
(names as in ``mod_NAME.so``: ``authn_file``, ``authz_groupfile``, ``authn_dbm``, ``authz_dbm``,
``dbd``, ``authn_dbd``, ``ldap``, ``authnz_ldap`` ...; :data:`NATIVE_AUTH_MODULES` lists them).
``auth_basic``, ``auth_digest`` and ``authz_user`` are always loaded with an include, since express
loads them only when its own auth options are used.

Example (a native provider and wsgiauth side by side)::

    from backends.apache import Apache

    AUTH = "from wsgiauth.backends import htpasswd\\n..."
    with Apache(files={"htpasswd": data, "auth.wsgi": AUTH}, modules=["authn_file"], include='''
    <Location /native>
        AuthType Basic
        AuthName "native"
        AuthBasicProvider file
        AuthUserFile "${WSGIAUTH_SITE}/htpasswd"
        Require valid-user
    </Location>
    <Location /wsgi>
        AuthType Basic
        AuthName "wsgi"
        AuthBasicProvider wsgi
        WSGIAuthUserScript "${WSGIAUTH_SITE}/auth.wsgi"
        Require valid-user
    </Location>
    ''') as server:
        requests.get(server.url + "native/", auth=("alice", "secret"))

API summary (see each docstring):

* ``Apache(...)`` creates the temp dir and writes the files (no process yet);
* the life cycle of :class:`backends._common.Launcher`: ``start()``, ``stop()``, ``kill()``, ``close()`` (stop
  and remove the temp dir), ``with Apache(...) as server`` (starts, then closes); here ``restart()`` is Apache's
  own (SIGHUP: the parent and its port stay), and ``graceful()`` (SIGUSR1) is added;
* ``url`` (``http://127.0.0.1:PORT/``), ``port``, ``host``, ``realm``, ``root``, ``site``, ``pid``,
  ``running``, ``error_log`` / ``access_log`` (paths), ``error_log_text()``, ``access_log_text()``;
* ``path(name)``, ``write(name, data)`` (atomic replace, readable by www-data);
* ``get(path, user=..., password=...)``: one raw HTTP request (the user name may be any bytes),
  returning a :class:`Response` (``status``, ``headers``, ``body``, ``json()``);
* ``unavailable()`` says why Apache cannot run here (``None`` when it can);
* ``htpasswd_line(user, password, "-B")`` and ``htdigest_line(user, realm, password)`` make entries
  with Apache's own tools (for differential tests).

The default application (:data:`DEFAULT_APP`) answers every URL with 200 and a JSON body::

    {"REMOTE_USER": "alice", "REMOTE_USER_HEX": "616c696365", "AUTH_TYPE": "Basic", "PATH_INFO": "/x"}

where ``REMOTE_USER`` is the raw name Apache recorded, decoded as UTF-8 (``backslashreplace``), and
``REMOTE_USER_HEX`` its raw bytes in hex.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from backends._common import LOOPBACK, Launcher, ServerError, free_port, wait_until

__all__ = [
    "DEFAULT_APP",
    "MODULES_DIR",
    "NATIVE_AUTH_MODULES",
    "Apache",
    "Response",
    "express_path",
    "htdigest_line",
    "htpasswd_line",
    "unavailable",
]

MODULES_DIR = Path("/usr/lib/apache2/modules")
RUN_USER = "www-data"
RUN_GROUP = "www-data"

# Every native authn/authz module the differential tests may want (all shipped by Debian's apache2).
NATIVE_AUTH_MODULES = (
    "authn_file",
    "authz_groupfile",
    "authn_dbm",
    "authz_dbm",
    "dbd",
    "authn_dbd",
    "authz_dbd",
    "ldap",
    "authnz_ldap",
    "authn_socache",
    "socache_shmcb",
)
# Loaded whenever an include is given: express loads these only with its own --auth-user-script.
_ALWAYS_WITH_INCLUDE = ("authn_core", "authz_core", "auth_basic", "auth_digest", "authz_user")

DEFAULT_APP = '''\
"""wsgiauth test app: echoes who Apache says the user is."""
import json


def application(environ, start_response):
    user = environ.get("REMOTE_USER")
    raw = user.encode("latin-1") if user is not None else None
    body = {
        "REMOTE_USER": raw.decode("utf-8", "backslashreplace") if raw is not None else None,
        "REMOTE_USER_HEX": raw.hex() if raw is not None else None,
        "AUTH_TYPE": environ.get("AUTH_TYPE"),
        "PATH_INFO": environ.get("PATH_INFO"),
    }
    data = json.dumps(body).encode("ascii")
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
'''

FileData = str | bytes | Path


def express_path() -> str | None:
    """The ``mod_wsgi-express`` of this interpreter's environment (the venv), or from ``PATH``."""
    candidate = Path(sys.executable).parent / "mod_wsgi-express"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which("mod_wsgi-express")


def unavailable() -> str | None:
    """Why a real Apache cannot be started here, or ``None`` when it can.

    Returns:
        A sentence for ``backends._common.missing()`` naming what to install, or ``None``.
    """
    if express_path() is None:
        return "mod_wsgi-express is not installed (pip install mod_wsgi; `make install` does it)"
    if shutil.which("apache2") is None and not Path("/usr/sbin/apache2").exists():
        return "apache2 is not installed (apt-get install apache2 apache2-dev; `make deps` does it)"
    if not MODULES_DIR.is_dir():
        return f"Apache modules directory {MODULES_DIR} is missing (apt-get install apache2)"
    return None


class Response:
    """A raw HTTP response: ``status``, ``headers`` (lower-case names), ``body``; ``json()`` decodes it."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = dict(headers)
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:80]!r}>"


class Apache(Launcher):
    """A real Apache with mod_wsgi on ``127.0.0.1`` and a free port, in its own temp dir.

    Creating the object writes the files; :meth:`start` (or ``with``) launches Apache.

    Args:
        app: the WSGI application: a name from ``files``, a path to copy, or ``None`` for :data:`DEFAULT_APP`.
        files: files to put in the site dir (``ROOT/site``), name -> ``str`` (written as UTF-8),
            ``bytes`` or a ``Path`` to copy. Scripts find them next to themselves (``os.path.dirname(__file__)``).
        auth_user_script: ``--auth-user-script``: a name from ``files`` or a path to copy into the site dir.
        auth_type: ``--auth-type`` (``"Basic"`` or ``"Digest"``); ``None`` leaves express's default (Basic).
        auth_group_script: ``--auth-group-script`` (name or path, as above).
        auth_group: ``--auth-group``: the group of ``Require wsgi-group``.
        realm: an ``AuthName`` for express's ``<Location />`` in place of ``HOST:PORT`` (written to the
            include file); needed for Digest over htdigest files, whose realms cannot contain ``:``.
        host_access_script: ``--host-access-script`` (name or path, as above).
        include: extra Apache directives (text) for ``--include-file``; may use ``${WSGIAUTH_SITE}``.
        modules: native modules to load for the include (``"authn_file"`` loads ``mod_authn_file.so``).
        processes: ``--processes`` (daemon processes, or children in embedded mode).
        threads: ``--threads``.
        embedded: ``--embedded-mode`` (the app runs in Apache's children too).
        mpm: ``--server-mpm`` (``"event"``, ``"worker"``, ``"prefork"``); ``None``: express's choice.
        log_level: Apache's ``LogLevel`` (``--log-level``), default ``"warn"``.
        access_log: write ``ROOT/server/access_log`` (``--access-log``).
        port: the port; default a free one.
        extra_args: more ``mod_wsgi-express setup-server`` arguments, passed as given.
        startup_timeout: seconds to wait for Apache to answer.
        keep: keep the temp dir after :meth:`close` (for debugging); its path is printed.

    Raises:
        ServerError: when mod_wsgi-express or Apache is missing (see :func:`unavailable`), or a script
            path does not exist.
    """

    name = "Apache"
    host = LOOPBACK
    stop_timeout = 15.0

    def __init__(
        self,
        app: str | Path | None = None,
        *,
        files: Mapping[str, FileData] | None = None,
        auth_user_script: str | Path | None = None,
        auth_type: str | None = None,
        auth_group_script: str | Path | None = None,
        auth_group: str | None = None,
        realm: str | None = None,
        host_access_script: str | Path | None = None,
        include: str | None = None,
        modules: Iterable[str] = (),
        processes: int = 1,
        threads: int = 5,
        embedded: bool = False,
        mpm: str | None = None,
        log_level: str = "warn",
        access_log: bool = True,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30.0,
        keep: bool = False,
    ) -> None:
        reason = unavailable()
        if reason is not None:
            raise ServerError(reason)
        self.express = express_path() or "mod_wsgi-express"
        self.port = port or free_port()
        self.url = f"http://{self.host}:{self.port}/"
        self.root = self.dir = Path(tempfile.mkdtemp(prefix="wsgiauth-apache-"))
        os.chmod(self.root, 0o755)
        self.site = self.root / "site"
        self.site.mkdir(mode=0o755)
        os.chmod(self.site, 0o755)
        self.server_root = self.root / "server"
        self.error_log = self.log = self.server_root / "error_log"
        self.access_log = self.server_root / "access_log"
        self.output_log = self.root / "apache.out"
        self.keep = keep
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._configured = False
        for name, data in (files or {}).items():
            self.write(name, data, atomic=False)
        self.app = self._place(app) if app is not None else self.write("app.wsgi", DEFAULT_APP)
        self.options: list[str] = []
        for flag, value in (("--auth-user-script", auth_user_script),
                            ("--auth-group-script", auth_group_script),
                            ("--host-access-script", host_access_script)):
            if value is not None:
                self.options += [flag, str(self._place(value))]
        if auth_type is not None:
            self.options += ["--auth-type", auth_type]
        if auth_group is not None:
            self.options += ["--auth-group", auth_group]
        self.auth_type = auth_type or "Basic"
        if realm is not None:
            if '"' in realm or "\n" in realm:
                raise ValueError(f"realm must not contain quotes or newlines: {realm!r}")
            include = f'<Location />\n    AuthName "{realm}"\n</Location>\n' + (include or "")
        self._realm = realm
        self.include_file: Path | None = None
        if include is not None or modules:
            self.include_file = self.root / "include.conf"
            self.include_file.write_text(self._include_text(include or "", modules), encoding="utf-8")
            os.chmod(self.include_file, 0o644)
            self.options += ["--include-file", str(self.include_file)]
        self.options += ["--processes", str(processes), "--threads", str(threads), "--log-level", log_level]
        if embedded:
            self.options.append("--embedded-mode")
        if mpm is not None:
            self.options += ["--server-mpm", mpm]
        if access_log:
            self.options.append("--access-log")
        self.options += list(extra_args)

    # ------------------------------------------------------------------ files

    def path(self, name: str) -> Path:
        """The path of file ``name`` in the site dir."""
        return self.site / name

    def write(self, name: str, data: FileData, *, atomic: bool = True, mode: int = 0o644) -> Path:
        """Write (or replace) file ``name`` in the site dir, readable by Apache's children.

        Args:
            name: a plain file name (no directory part).
            data: ``str`` (written as UTF-8), ``bytes``, or a ``Path`` whose content is copied.
            atomic: write a temporary file and ``rename()`` it over the old one (as editors and
                ``htpasswd`` do: the inode changes), so a reader never sees half a file.
            mode: the file mode (default 0644).

        Returns:
            The path written.

        Raises:
            ValueError: when ``name`` has a directory part.
        """
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"file name must be a plain name, not {name!r}")
        if isinstance(data, Path):
            content = data.read_bytes()
        elif isinstance(data, str):
            content = data.encode("utf-8")
        else:
            content = bytes(data)
        target = self.site / name
        if atomic:
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=self.site)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(content)
                os.chmod(tmp, mode)
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        else:
            target.write_bytes(content)
            os.chmod(target, mode)
        return target

    def _place(self, value: str | Path) -> Path:
        """A script given by name (already in the site dir) or by path (copied there)."""
        if isinstance(value, str) and "/" not in value and (self.site / value).is_file():
            return self.site / value
        source = Path(value)
        if not source.is_file():
            raise ServerError(f"script {value!s} is neither a file given in files= nor an existing path")
        target = self.site / source.name
        if target.exists() and target.read_bytes() != source.read_bytes():
            target = self.site / f"{len(list(self.site.iterdir()))}-{source.name}"
        return self.write(target.name, source, atomic=False)

    def _include_text(self, text: str, modules: Iterable[str]) -> str:
        lines = [
            "# written by backends/apache.py",
            f'Define WSGIAUTH_SITE "{self.site}"',
            f'Define WSGIAUTH_ROOT "{self.root}"',
        ]
        wanted = list(_ALWAYS_WITH_INCLUDE) + [m for m in modules if m not in _ALWAYS_WITH_INCLUDE]
        for name in dict.fromkeys(wanted):
            if not re.fullmatch(r"[a-z0-9_]+", name):
                raise ValueError(f"bad module name {name!r} (use e.g. 'authn_file' for mod_authn_file.so)")
            so = MODULES_DIR / f"mod_{name}.so"
            if not so.is_file():
                raise ServerError(f"Apache module {so} is missing (apt-get install apache2)")
            lines += [f"<IfModule !{name}_module>", f'    LoadModule {name}_module "{so}"', "</IfModule>"]
        return "\n".join(lines) + "\n\n" + text + "\n"

    # ------------------------------------------------------------------ logs

    def error_log_text(self) -> str:
        """The whole error log so far (``""`` before Apache opened it)."""
        return _read(self.error_log)

    def access_log_text(self) -> str:
        """The whole access log so far (``""`` when disabled or empty)."""
        return _read(self.access_log)

    @property
    def realm(self) -> str:
        """The ``AuthName`` of express's ``--auth-user-script`` location: ``realm=``, else ``HOST:PORT``."""
        return self._realm if self._realm is not None else f"{self.host}:{self.port}"

    # ------------------------------------------------------------------ process control

    def setup(self) -> None:
        """Generate the configuration (``mod_wsgi-express setup-server``); :meth:`start` calls it once.

        Raises:
            ServerError: when mod_wsgi-express rejects the options (its output is in the message).
        """
        cmd = [self.express, "setup-server", str(self.app), "--server-root", str(self.server_root),
               "--host", self.host, "--port", str(self.port), "--locale", "C.UTF-8",
               "--working-directory", str(self.site), *self.options]
        if os.geteuid() == 0:  # Apache refuses to run its children as root
            cmd += ["--user", RUN_USER, "--group", RUN_GROUP]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServerError(f"mod_wsgi-express setup-server failed ({result.returncode}):\n"
                              f"{result.stdout}{result.stderr}")
        for dirpath, _dirnames, filenames in os.walk(self.server_root):
            os.chmod(dirpath, 0o755)
            for f in filenames:
                p = os.path.join(dirpath, f)
                os.chmod(p, os.stat(p).st_mode | 0o444)
        self._configured = True

    def start(self) -> Apache:
        """Start Apache in the foreground and wait until it answers HTTP.

        Returns:
            ``self``.

        Raises:
            ServerError: when Apache exits during start-up or does not answer within ``startup_timeout``; the
                message ends with the tail of the error log and of Apache's own output.
        """
        if self.running:
            return self
        if not self._configured:
            self.setup()
        out = open(self.output_log, "ab")  # handed to Apache as stdout/stderr, closed here after Popen
        # apachectl execs httpd; -DFOREGROUND keeps it our child so a crash is seen at once.
        try:
            self.proc = subprocess.Popen([str(self.server_root / "apachectl"), "-DFOREGROUND"],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        finally:
            out.close()
        self._wait_ready(generation=0)
        return self

    def _generations(self) -> int:
        # "Apache/2.4 ... configured -- resuming normal operations", once per (re)start (AH00489 under event,
        # AH00292 under worker, AH00163 under prefork).
        return self.error_log_text().count("resuming normal operations")

    def _wait_ready(self, generation: int) -> None:
        def ready() -> bool:
            return self._generations() > generation and self._answers()

        try:
            wait_until(ready, timeout=self.startup_timeout, proc=self.proc, what=f"Apache on {self.url}",
                       log=self.error_log)
        except ServerError as exc:
            out = _read(self.output_log).strip()
            self.stop()
            raise ServerError(f"{exc}\n--- {self.output_log} ---\n{out[-3000:]}") from None

    def _answers(self) -> bool:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            conn.request("GET", "/.wsgiauth-probe")
            conn.getresponse().read()
            return True
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def restart(self) -> Apache:
        """Restart Apache (SIGHUP: children killed, configuration and scripts re-read; the parent and its port stay);
        wait until ready.

        Returns:
            ``self``.

        Raises:
            ServerError: when Apache is not running, exits, or does not come back.
        """
        self._signal(signal.SIGHUP)
        return self

    def graceful(self) -> None:
        """Graceful restart (SIGUSR1: children finish their requests first); wait until it answers again.

        Raises:
            ServerError: when Apache is not running, exits, or does not come back.
        """
        self._signal(signal.SIGUSR1)

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise ServerError(f"Apache on {self.url} is not running{_tail_text(self.error_log_text())}")
        generation = self._generations()
        self.proc.send_signal(sig)
        self._wait_ready(generation)

    # ------------------------------------------------------------------ requests

    def get(self, path: str = "/", *, user: str | bytes | None = None, password: str | bytes = b"",
            headers: Mapping[str, str | bytes] | None = None, method: str = "GET",
            timeout: float = 10.0) -> Response:
        """Send one request with ``http.client`` (Basic credentials as raw bytes: any user name can be sent).

        Args:
            path: the URL path (and query).
            user: the Basic user name; ``str`` is sent as UTF-8, ``bytes`` as given. ``None``: no credentials.
            password: the Basic password (same encoding rules).
            headers: extra request headers.
            method: the HTTP method.
            timeout: socket timeout in seconds.

        Returns:
            The :class:`Response`.
        """
        send: dict[str, str | bytes] = dict(headers or {})
        if user is not None:
            raw = _utf8(user) + b":" + _utf8(password)
            send["Authorization"] = b"Basic " + base64.b64encode(raw)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in send.items():
                conn.putheader(name, value)
            conn.endheaders()
            resp = conn.getresponse()
            body = resp.read()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
        finally:
            conn.close()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<Apache {self.url} {state} root={self.root}>"


def htpasswd_line(user: str | bytes, password: str | bytes, *flags: str) -> bytes:
    """One ``user:hash`` line made by Apache's own ``htpasswd -nb`` (e.g. flags ``"-B", "-C", "4"``).

    Args:
        user: the user name (``str`` is passed as UTF-8).
        password: the password (same rule).
        flags: hash options: ``-m`` (apr1, the default), ``-B`` (bcrypt), ``-s`` (SHA-1), ``-d`` (crypt),
            ``-2`` (SHA-256 crypt), ``-5`` (SHA-512 crypt), ``-p`` (plain text), ``-C N``, ``-r N``.

    Returns:
        The line, ending in a newline.

    Raises:
        ServerError: when ``htpasswd`` is missing or refuses the input.
    """
    tool = shutil.which("htpasswd")
    if tool is None:
        raise ServerError("htpasswd is not installed (apt-get install apache2-utils)")
    result = subprocess.run([tool, "-nb", *flags, _utf8(user), _utf8(password)], capture_output=True, check=False)
    line = result.stdout.strip()
    if result.returncode != 0 or not line:
        raise ServerError(f"htpasswd {' '.join(flags)} failed: {result.stderr.decode(errors='replace')}")
    return line + b"\n"


def htdigest_line(user: str | bytes, realm: str | bytes, password: str | bytes) -> bytes:
    """One ``user:realm:HA1`` line made by Apache's own ``htdigest`` (password fed on stdin).

    Raises:
        ServerError: when ``htdigest`` is missing or fails.
    """
    tool = shutil.which("htdigest")
    if tool is None:
        raise ServerError("htdigest is not installed (apt-get install apache2-utils)")
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "htdigest"
        pw = _utf8(password)
        result = subprocess.run([tool, "-c", str(target), _utf8(realm), _utf8(user)], input=pw + b"\n" + pw + b"\n",
                                capture_output=True, check=False)
        if result.returncode != 0 or not target.exists():
            raise ServerError(f"htdigest failed: {result.stderr.decode(errors='replace')}")
        return target.read_bytes().strip() + b"\n"


def _utf8(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _tail_text(text: str, lines: int = 30) -> str:
    return "\n--- error_log ---\n" + "\n".join(text.splitlines()[-lines:]) if text else ""
