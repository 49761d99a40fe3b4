"""TEMPORARY: a cp313 wheel of the checkout, built in a Debian 13 *builder* layer, until `make dist` makes the abi3 one.

The Debian 13 leg must install a wheel on Python 3.13 in a root without a compiler. Until the packaging work ships an
abi3 wheel (``WSGIAUTH_WHEEL`` names it), this module builds a cp313 wheel of the current checkout in a separate
layer stacked over the cached root (:mod:`backends.trixie`), so the runtime root itself never sees a compiler.
Delete this file (and its use in tests/test_debian13.py) once the abi3 wheel exists.

Cache (next to the root, in :func:`backends.trixie.cache_dir`)::

    CACHE/builder/        an overlay upper dir over CACHE/root: gcc, the -dev packages, a venv with the build
                          requirements of pyproject.toml
    CACHE/builder.json    its stamp (the root's build time, the package lists): written last, rebuilt on mismatch
    CACHE/builder.lock    flock while the layer is built
    CACHE/wheels/HASH/    one wheel per source hash (pyproject.toml, setup.py, csrc/, src/): a warm run reuses it
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tomllib

from ._common import ServerError
from .trixie import SHARE, Trixie, _Lock, _remove_tree, cache_dir

__all__ = ["BUILDER_PACKAGES", "BUILDER_VENV", "build_wheel", "source_files"]

BUILDER_PACKAGES = ("gcc", "libc6-dev", "python3-dev", "libffi-dev", "libcrypt-dev", "libgdbm-dev", "libdb-dev")
BUILDER_VENV = "/opt/wsgiauth-builder"
# What a wheel is built from; everything else in the checkout (tests, docs, backends) is not in it.
_SOURCE = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "csrc", "src")
_SKIP_SUFFIXES = (".so", ".pyc", ".o")


def source_files(checkout: Path) -> Iterator[Path]:
    """The files of ``checkout`` a wheel is built from (relative paths, sorted)."""
    for name in _SOURCE:
        top = checkout / name
        if top.is_file():
            yield Path(name)
        elif top.is_dir():
            for path in sorted(top.rglob("*")):
                rel = path.relative_to(checkout)
                if (not path.is_file() or "__pycache__" in rel.parts or path.suffix in _SKIP_SUFFIXES
                        or any(p.endswith(".egg-info") for p in rel.parts)
                        or (path.name.startswith("_native") and path.suffix == ".c")):
                    continue
                yield rel


def _source_hash(checkout: Path) -> str:
    h = hashlib.sha256()
    for rel in source_files(checkout):
        h.update(str(rel).encode() + b"\0" + (checkout / rel).read_bytes() + b"\0")
    return h.hexdigest()[:20]


def _build_requires(checkout: Path) -> list[str]:
    with open(checkout / "pyproject.toml", "rb") as fh:
        data: dict[str, Any] = tomllib.load(fh)
    return list(data.get("build-system", {}).get("requires", ["setuptools", "wheel"]))


def build_wheel(checkout: Path, *, cache: Path | None = None) -> tuple[Path, dict[str, float]]:
    """A cp313 wheel of ``checkout`` built in the builder layer (cached by source hash).

    Returns:
        The wheel's path (under ``CACHE/wheels/``) and the seconds spent (``"builder layer"``, ``"wheel build"``;
        empty when both were cached).

    Raises:
        ServerError: apt, pip or the build failed (the output is in the message).
    """
    cache = cache or cache_dir()
    timings: dict[str, float] = {}
    out = cache / "wheels" / _source_hash(checkout)
    found = sorted(out.glob("wsgiauth-*.whl")) if out.is_dir() else []
    if found:
        return found[-1], timings
    lock = _Lock(cache / "builder.lock")  # held while the layer is built or used: nobody rebuilds it under us
    lock.acquire(exclusive=True, timeout=900)
    try:
        layer = _ensure_layer(cache, _build_requires(checkout), timings)
        wheel = _build(checkout, layer, out, cache, timings)
    finally:
        lock.release()
    return wheel, timings


def _build(checkout: Path, layer: Path, out: Path, cache: Path, timings: dict[str, float]) -> Path:
    started = time.monotonic()
    with Trixie(cache, layers=[layer]) as root:
        for rel in source_files(checkout):
            root.write(f"{SHARE}/src/{rel}", (checkout / rel).read_bytes())
        root.run([f"{BUILDER_VENV}/bin/python", "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps",
                  "-w", f"{SHARE}/dist", f"{SHARE}/src"], timeout=900)
        wheels = sorted(root.host_path(f"{SHARE}/dist").glob("wsgiauth-*.whl"))
        if len(wheels) != 1:
            raise ServerError(f"pip wheel made {len(wheels)} wsgiauth wheels: {wheels}")
        tmp = out.with_name(out.name + ".tmp")
        _remove_tree(tmp)
        tmp.mkdir(parents=True)
        shutil.copy2(wheels[0], tmp / wheels[0].name)
        _remove_tree(out)
        os.rename(tmp, out)
    # keep the three newest wheels (other checkouts, other branches); drop the rest
    for old in sorted((p for p in out.parent.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)[:-3]:
        _remove_tree(old)
    timings["wheel build"] = time.monotonic() - started
    return out / wheels[0].name


def _ensure_layer(cache: Path, requires: list[str], timings: dict[str, float]) -> Path:
    layer = cache / "builder"
    stamp = cache / "builder.json"
    probe = Trixie(cache)
    try:
        root_info = probe.ensure_root()
        timings.update(probe.timings)  # "root build" when the root was made here
    finally:
        probe.close()
    recipe = {"root_built": root_info["built"], "packages": BUILDER_PACKAGES, "requires": requires}
    want = json.loads(json.dumps(recipe))  # as it reads back (lists, not tuples)
    try:
        have = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        have = None
    if have == want and layer.is_dir():
        return layer
    started = time.monotonic()
    with contextlib.suppress(FileNotFoundError):
        stamp.unlink()
    new = cache / "builder.new"
    _remove_tree(new)
    with Trixie(cache, upper=new) as root:
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        root.run(["apt-get", "update", "-q"], env=env, timeout=600)
        root.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *BUILDER_PACKAGES], env=env,
                 timeout=900)
        root.run(["apt-get", "clean"], env=env)
        root.run(["/usr/bin/python3", "-m", "venv", BUILDER_VENV])
        root.run([f"{BUILDER_VENV}/bin/python", "-m", "pip", "install", "-q", "--only-binary", ":all:",
                  *requires], timeout=600)
    _remove_tree(new.with_name(new.name + ".work"))
    _remove_tree(layer)
    os.rename(new, layer)
    stamp.write_text(json.dumps(want), encoding="utf-8")
    timings["builder layer"] = time.monotonic() - started
    return layer
