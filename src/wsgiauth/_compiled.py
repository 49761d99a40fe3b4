"""Which compiled modules this installation uses, and the system libraries it opens at run time.

The compiled modules (``wsgiauth._native``: the hash core; ``wsgiauth._native_dbm``: SDBM; ``wsgiauth._native_bdb``:
Berkeley DB) are optional: where one is missing (an install from the sdist without a compiler) or when
``WSGIAUTH_NO_NATIVE=1`` is set, the pure-Python fallback takes its place (``_purecore``, ``_puresdbm``; Berkeley DB
has none). The choice is made once, at import.

The system libraries (libxcrypt, libgdbm, Berkeley DB) are never linked: each is opened by its versioned soname
through cffi's ABI mode (``wsgiauth._abi``, generated at build time, pure Python) the first time it is needed, in
either mode. A missing one is a `LibraryMissing` error that names the library and the Debian package.
"""

from __future__ import annotations

import importlib
import os
import re
import threading
from types import ModuleType
from typing import Any, NamedTuple

__all__ = ["DISABLED", "LIBRARIES", "Library", "LibraryMissing", "library", "load", "parts"]

#: ``WSGIAUTH_NO_NATIVE`` set (to anything but ``0``): use no compiled module, as if none had been built.
DISABLED: bool = os.environ.get("WSGIAUTH_NO_NATIVE", "") not in ("", "0")

_loaded: dict[str, ModuleType | None] = {}


def load(name: str) -> ModuleType | None:
    """The compiled module ``wsgiauth.<name>``, or ``None`` when it is missing or `DISABLED`."""
    if name not in _loaded:
        module: ModuleType | None = None
        if not DISABLED:
            try:
                module = importlib.import_module(f"wsgiauth.{name}")
            except ImportError:
                module = None
        _loaded[name] = module
    return _loaded[name]


class Library(NamedTuple):
    """A system library opened at run time: its soname and the Debian package that provides it."""

    name: str
    soname: str
    package: str
    package_t64: str  # the package's name since Debian 13's 64-bit time_t transition ("" when unchanged)
    needed_for: str

    def install_hint(self) -> str:
        hint = f"apt-get install {self.package}"
        return hint + (f" ({self.package_t64} on Debian 13 and Ubuntu 24.04)" if self.package_t64 else "")


#: The system libraries, by the name the messages use.
LIBRARIES: dict[str, Library] = {
    "libxcrypt": Library("libxcrypt", "libcrypt.so.1", "libcrypt1", "",
                         "DES, $1$, $5$, $6$, bcrypt and yescrypt hashes"),
    "libgdbm": Library("libgdbm", "libgdbm.so.6", "libgdbm6", "libgdbm6t64", "GDBM files"),
    "libdb": Library("Berkeley DB", "libdb-5.3.so", "libdb5.3", "libdb5.3t64", "Berkeley DB (DB) files"),
}


class LibraryMissing(Exception):
    """A system library wsgiauth needs for this operation is not installed (the message says which, and the fix)."""

    def __init__(self, lib: Library, detail: str) -> None:
        self.library = lib
        super().__init__(f"{lib.needed_for} need {lib.name} ({lib.soname}), which cannot be loaded here ({detail}): "
                         f"{lib.install_hint()}")


_libs: dict[str, Any] = {}
_libs_lock = threading.Lock()


def library(key: str, soname: str | None = None) -> Any:
    """The cffi library object of ``LIBRARIES[key]`` (by its soname, or ``soname``), opened on first use.

    Raises:
        LibraryMissing: the library (or the generated ``wsgiauth._abi``) cannot be loaded.
    """
    info = LIBRARIES[key]
    if soname is not None and soname != info.soname:
        info = info._replace(soname=soname)
        key = f"{key}:{soname}"
    lib = _libs.get(key)
    if lib is not None:
        return lib
    with _libs_lock:
        lib = _libs.get(key)
        if lib is None:
            try:
                from ._abi import ffi
            except ImportError as exc:  # an install that skipped the build step generating it
                raise LibraryMissing(info, f"wsgiauth._abi is missing: {exc}") from None
            try:
                # RTLD_NODELETE: never unmapped, not even when the lib object is freed at interpreter exit, so no
                # pointer into the library (the handles' methods, db_create in wsgiauth._native_bdb) can dangle
                lib = ffi.dlopen(info.soname, ffi.RTLD_NOW | ffi.RTLD_NODELETE)
            except OSError as exc:  # cffi says "cannot load library 'NAME': " before dlopen's own message
                detail = re.sub(r"^cannot load library '[^']*': ", "", str(exc).strip())
                raise LibraryMissing(info, detail or "not found") from None
            _libs[key] = lib
    return lib


class Part(NamedTuple):
    """One native part, as ``wsgiauth doctor`` reports it."""

    name: str
    available: bool
    detail: str


def parts() -> list[Part]:
    """What this installation has of each native part: the compiled modules and the system libraries."""
    out: list[Part] = []
    why = "disabled by WSGIAUTH_NO_NATIVE" if DISABLED else "not built"
    for name, what, fallback in (
        ("_native", "compiled hash core (compare, MD5/HA1, $apr1$)", "pure-Python fallback in use"),
        ("_native_dbm", "compiled SDBM reader/writer", "pure-Python fallback in use"),
        ("_native_bdb", "compiled Berkeley DB binding", "Berkeley DB files cannot be opened"),
    ):
        module = load(name)
        if module is not None:
            out.append(Part(what, True, f"wsgiauth.{name} from {module.__file__}"))
        else:
            out.append(Part(what, False, f"wsgiauth.{name} {why}: {fallback}"))
    for key, info in LIBRARIES.items():
        try:
            library(key)
        except LibraryMissing as exc:
            out.append(Part(f"{info.name} ({info.soname})", False, str(exc)))
        else:
            out.append(Part(f"{info.name} ({info.soname})", True, f"loaded, for {info.needed_for}"))
    return out
