"""``make demo``: a real Apache on http://127.0.0.1:8000/ whose page is protected by wsgiauth.

The bundled demo store (``backends/data/demo/``: an htpasswd file with bcrypt hashes, an htgroup file, the four-line
``auth.wsgi`` and a small page) is copied into a temp dir, and Apache is started through mod_wsgi-express with
``--auth-user-script auth.wsgi --auth-group-script auth.wsgi --auth-group staff`` (Basic). The URL, the demo
credentials and a curl line are printed; Ctrl-C (or SIGTERM) stops Apache and removes the temp dir (the signal
handling of every launcher's ``python -m`` entry, :meth:`backends._common.Launcher.serve`).

Run it with ``make demo`` or ``.venv/bin/python -m backends.demo [--port N]``. When port 8000 is busy another free
port is chosen (and said so). :func:`start` is the non-blocking part, used by the tests.
"""

from __future__ import annotations

import argparse
import errno
import socket
import sys
from typing import TextIO

from backends._common import DATA, LOOPBACK, free_port
from backends.apache import Apache, unavailable

DEMO_DIR = DATA / "demo"
DEFAULT_PORT = 8000
REALM = "wsgiauth demo"
GROUP = "staff"
# (user, password, may read the page): the hashes in backends/data/demo/htpasswd were made from these.
CREDENTIALS = (("alice", "wonderland", True), ("bob", "builder", False))


def port_is_free(port: int) -> bool:
    """True when nothing listens on (and nothing holds) ``127.0.0.1:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def make(port: int | None = DEFAULT_PORT, *, out: TextIO | None = None) -> Apache:
    """The demo Apache, configured but not started (``start()`` or ``serve()`` it; ``close()`` removes it).

    Args:
        port: the port to use; ``None`` picks a free one. A busy port is replaced by a free one, with a note on
            ``out``.
        out: where to write notes (default: ``sys.stdout``).

    Raises:
        SystemExit: when Apache or mod_wsgi-express is missing (with what to install).
    """
    out = out or sys.stdout
    reason = unavailable()
    if reason is not None:
        raise SystemExit(f"make demo: {reason}")
    if port is None:
        port = free_port()
    elif not port_is_free(port):
        chosen = free_port()
        print(f"Port {port} is busy on {LOOPBACK}; using port {chosen} instead.", file=out)
        port = chosen
    return Apache(
        DEMO_DIR / "app.wsgi",
        files={name: DEMO_DIR / name for name in ("htpasswd", "htgroup", "auth.wsgi")},
        auth_user_script="auth.wsgi",
        auth_group_script="auth.wsgi",
        auth_group=GROUP,
        realm=REALM,
        port=port,
        access_log=True,
    )


def start(port: int | None = DEFAULT_PORT, *, out: TextIO | None = None) -> Apache:
    """Start the demo Apache (see :func:`make`) and return it running; the caller stops it with ``close()``.

    Raises:
        SystemExit: when Apache or mod_wsgi-express is missing (with what to install).
        backends._common.ServerError: when Apache does not start (with its error log; the temp dir is removed).
    """
    server = make(port, out=out)
    try:
        return server.start()
    except BaseException:
        server.close()
        raise


def banner(server: Apache) -> str:
    """What the demo prints once Apache answers: the URL, the credentials and a curl line."""
    user, password, _ = CREDENTIALS[0]
    other, other_pw, _ = CREDENTIALS[1]
    return "\n".join([
        "",
        f"wsgiauth demo: Apache + mod_wsgi on {server.url}",
        f"  protected by wsgiauth (htpasswd backend, bcrypt), Basic, Require wsgi-group {GROUP}",
        "",
        f"  {user} / {password}   member of {GROUP}: sees the page (200)",
        f"  {other} / {other_pw}      right password, not in {GROUP}: 401",
        "",
        f"  curl -u {user}:{password} {server.url}",
        "",
        f"  files: {server.site}",
        f"  error log: {server.error_log}",
        "Ctrl-C stops Apache.",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    """Run the demo until Ctrl-C or SIGTERM; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m backends.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port on 127.0.0.1 (0: any free port)")
    args = parser.parse_args(argv)
    return make(args.port or None).serve(banner)


if __name__ == "__main__":
    sys.exit(main())
