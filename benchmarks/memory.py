"""Memory: how much RSS an Apache child gains from loading an auth script (wsgiauth per backend vs Django's handler).

    .venv/bin/python -m benchmarks.memory --out benchmarks/results/memory.json

For each script a fresh Apache (same build and settings as :mod:`benchmarks.e2e`, but one child process) serves one
location through ``WSGIAuthUserScript``. Before any authenticated request the child has not imported the script; the
harness reads the child's ``VmRSS`` from ``/proc/PID/status``, sends authenticated requests (the first imports the
script and opens its files, pools and connections; a few more settle them), and reads ``VmRSS`` again. wsgiauth's
bytecode is compiled first (:func:`compile_package`), as installing the wheel does.

Scripts: a ``check_password`` that returns ``True`` (what loading *any* Python auth script costs: the interpreter's
own growth), wsgiauth's htpasswd, DBM, SQL (PostgreSQL) and LDAP backends behind :func:`wsgiauth.cache.cached` (the
scripts of :mod:`benchmarks.e2e`), wsgiauth's SQL backend on Django's own SQLite database (``preset="django"``: the drop-in replacement), and Django's
``django.contrib.auth.handlers.modwsgi`` on that database (``django.setup()`` with contenttypes and auth, as its
documentation shows).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from backends._common import ServerError
from backends.apache import Apache
from benchmarks import e2e

DJANGO_SCRIPT = """\
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_django_settings")
import django

django.setup()
from django.contrib.auth.handlers.modwsgi import check_password, groups_for_user  # noqa: E402
"""

SQL_DJANGO_SCRIPT = e2e.HEADER + """\
from wsgiauth.backends import sql
from wsgiauth.cache import cached
backend = cached(sql.sqlite(os.path.join(HERE, "django.sqlite3"), preset="django"))
check_password, get_realm_hash, groups_for_user, allow_access = backend.hooks()
"""


def compile_package() -> Path:
    """Compile wsgiauth's bytecode into its ``__pycache__`` directories, as installing the wheel with pip does.

    An editable install in a checkout that Apache's user cannot write to (and a shell with PYTHONDONTWRITEBYTECODE)
    has no ``.pyc`` files, so every Apache child would compile wsgiauth's sources when it imports them: about 2 MiB
    more RSS per child (the compiler's peak heap) that no installed wsgiauth costs. Django, installed from its
    wheel, has its ``.pyc`` files. Stale files are harmless: Python checks a ``.pyc`` against its source.

    Returns:
        The package directory.
    """
    import compileall

    import wsgiauth

    package = Path(wsgiauth.__file__).resolve().parent
    compileall.compile_dir(str(package), quiet=1)
    for cache in package.rglob("__pycache__"):  # Apache's www-data reads them
        cache.chmod(0o755)
        for pyc in cache.iterdir():
            pyc.chmod(0o644)
    return package


def _children(parent: int) -> list[int]:
    out = subprocess.run(["ps", "--ppid", str(parent), "-o", "pid="], capture_output=True, text=True, check=False)
    return [int(x) for x in out.stdout.split()]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ServerError(f"no VmRSS for pid {pid}")


def measure(name: str, files: dict[str, str | bytes], script: str, user: str, password: str,
            requests: int = 5) -> dict[str, Any]:
    """RSS of the only Apache child before and after ``requests`` authenticated requests through ``script``."""
    include = e2e._wsgi("/w", script)
    server = Apache(files=files, include=include, mpm=e2e.APACHE["mpm"], processes=1,
                    threads=e2e.APACHE["threads"], embedded=True, access_log=False, log_level="error")
    try:
        server.setup()
        e2e._static_tree(server, ["/w"])
        server.start()
        assert server.pid is not None
        time.sleep(0.5)
        children = _children(server.pid)
        if len(children) != 1:
            raise ServerError(f"{name}: expected one Apache child, found {children}")
        child = children[0]
        before = _rss_kib(child)
        for _ in range(requests):
            status = server.get("/w/ok.txt", user=user, password=password).status
            if status != 200:
                raise ServerError(f"{name}: authenticated request answered {status}\n"
                                  f"{server.error_log_text()[-2000:]}")
        after = _rss_kib(child)
        if _children(server.pid) != [child]:
            raise ServerError(f"{name}: the Apache child changed during the measurement")
        return {"name": name, "before_kib": before, "after_kib": after, "added_kib": after - before}
    finally:
        server.close()


def run(include_services: bool = True) -> dict[str, Any]:
    """Measure every script; PostgreSQL and slapd are started for the SQL and LDAP scripts when asked for.

    Returns:
        ``{"method": ..., "rows": [...], "target": ...}``: JSON-ready.
    """
    from benchmarks.bench_peers import make_django_site

    compile_package()
    threads = str(e2e.APACHE["threads"])
    scripts = {name: text.replace("{threads}", threads) for name, text in e2e.SCRIPTS.items()}
    data = {"htpasswd": e2e._htpasswd_text(), "htdigest": e2e._htdigest_text()}
    sha_user = "u_sha1"
    sha_pw = e2e.FILE_USERS[sha_user][0]
    rows: list[dict[str, Any]] = []
    rows.append(measure("Python returns True (baseline)", {"trivial.wsgi": scripts["trivial.wsgi"]}, "trivial.wsgi",
                        sha_user, sha_pw))
    rows.append(measure("wsgiauth htpasswd + cache", {**data, "file_on.wsgi": scripts["file_on.wsgi"]},
                        "file_on.wsgi", sha_user, sha_pw))
    with e2e._tempdir() as tmp:
        db_hash = e2e._db_hash()
        db_path = Path(tmp) / "users.db"
        e2e._make_dbm(db_path, db_hash)
        rows.append(measure("wsgiauth dbm + cache", {"users.db": db_path.read_bytes(),
                                                     "dbm_on.wsgi": scripts["dbm_on.wsgi"]},
                            "dbm_on.wsgi", e2e.DB_USER, e2e.DB_PASSWORD))
        if include_services:
            from backends.postgres import Postgres
            from backends.slapd import Slapd

            with Postgres() as pg:
                seed = Path(tmp) / "seed.sql"
                seed.write_text(e2e._sql_seed(db_hash))
                pg.load_sql(pg.schema, seed)
                rows.append(measure("wsgiauth sql (PostgreSQL) + cache",
                                    {"pg.conninfo": pg.conninfo, "sql_on.wsgi": scripts["sql_on.wsgi"]},
                                    "sql_on.wsgi", e2e.DB_USER, e2e.DB_PASSWORD))
            with Slapd() as slapd:
                conf = {"url": f"ldap://127.0.0.1:{slapd.port}/{slapd.people}?uid?sub?(objectClass=inetOrgPerson)",
                        "bind_dn": slapd.service_dn, "bind_pw": slapd.service_pw}
                rows.append(measure("wsgiauth ldap + cache", {"ldap.json": json.dumps(conf),
                                                              "ldap_on.wsgi": scripts["ldap_on.wsgi"]},
                                    "ldap_on.wsgi", e2e.LDAP_USER, e2e.LDAP_PASSWORD))
        site = Path(tmp) / "django"
        site.mkdir()
        os.chmod(site, 0o755)
        make_django_site(site, {sha_user: sha_pw})
        django_files: dict[str, str | bytes] = {p.name: p.read_bytes() for p in site.iterdir() if p.is_file()}
        django_files["django.wsgi"] = DJANGO_SCRIPT
        django_files["sql_django.wsgi"] = SQL_DJANGO_SCRIPT
        rows.append(measure("wsgiauth sql (Django's SQLite database) + cache", django_files, "sql_django.wsgi",
                            sha_user, sha_pw))
        rows.append(_measure_django(django_files, sha_user, sha_pw))
    baseline = rows[0]["added_kib"]
    django_row = rows[-1]
    for row in rows:
        row["net_kib"] = row["added_kib"] - baseline
    for row in rows:
        row["vs_django"] = row["added_kib"] / django_row["added_kib"] if django_row["added_kib"] else None
        row["net_vs_django"] = (row["net_kib"] / django_row["net_kib"]) if django_row["net_kib"] > 0 else None
    verdicts = []
    for row in rows:
        if row["name"].startswith("wsgiauth") and row["vs_django"] is not None:
            row["met"] = row["vs_django"] <= 0.25
            verdicts.append(f"{row['name']}: {row['vs_django']:.2f} ({'met' if row['met'] else '**missed**'})")
    return {
        "method": (f"One Apache child ({e2e.APACHE['mpm']} MPM, {e2e.APACHE['threads']} threads, embedded), "
                   "VmRSS before the first authenticated request and after 5 of them (wsgiauth's bytecode compiled "
                   "first, as installing a wheel with pip does); 'vs Django' = added RSS "
                   "over the added RSS of Django's handler. The baseline row is what any Python auth script costs "
                   "(the interpreter's own growth on first use)."),
        "rows": rows,
        "target": (f"Target: RSS added per child by wsgiauth <= 1/4 of Django's handler "
                   f"({django_row['added_kib'] / 1024:.2f} MiB): " + "; ".join(verdicts) + "."),
    }


def _measure_django(files: dict[str, str | bytes], user: str, password: str) -> dict[str, Any]:
    """Django's handler: its settings must name the database copy inside the Apache site dir, known only there."""
    settings = files["bench_django_settings.py"]
    text = settings.decode() if isinstance(settings, bytes) else settings
    files = dict(files)
    files["bench_django_settings.py"] = text.replace(
        text.split('"NAME": ', 1)[1].split("}", 1)[0],
        'os.path.join(os.path.dirname(os.path.abspath(__file__)), "django.sqlite3")').replace(
        "SECRET_KEY", "import os\nSECRET_KEY", 1)
    return measure("Django handlers.modwsgi", files, "django.wsgi", user, password)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--out", default="benchmarks/results/memory.json")
    parser.add_argument("--no-services", action="store_true", help="skip the SQL and LDAP scripts")
    args = parser.parse_args(argv)
    result = run(include_services=not args.no_services)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    for row in result["rows"]:
        print(f"{row['name']:40s} +{row['added_kib'] / 1024:7.2f} MiB")
    print(result["target"])
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
