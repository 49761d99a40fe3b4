"""Build glue only (metadata lives in pyproject.toml): the cffi modules of csrc/build_native.py, tagged abi3.

* The compiled modules use the limited API, so the wheel is tagged ``cp310-abi3``: one wheel for every CPython >= 3.10.
* A compiled module that cannot be built (no C compiler, no Python headers) is skipped with a warning: the package
  then runs on its pure-Python fallback (``wsgiauth doctor`` says so). ``WSGIAUTH_REQUIRE_NATIVE=1`` makes such a
  failure fatal instead (``make dist`` sets it: a release wheel always holds every compiled module).
"""

from __future__ import annotations

import os
import runpy
import sys
import sysconfig

from setuptools import setup
from setuptools.command.build_ext import build_ext

REQUIRE_NATIVE = os.environ.get("WSGIAUTH_REQUIRE_NATIVE", "") not in ("", "0")
# The free-threaded build has no limited API: its wheel is tagged for that interpreter alone.
LIMITED_API = not sysconfig.get_config_var("Py_GIL_DISABLED")


class OptionalBuildExt(build_ext):
    """build_ext that skips (with a warning) a module it cannot compile, unless WSGIAUTH_REQUIRE_NATIVE is set."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - distutils raises a platform error when there is no compiler
            self._skipped("the compiled modules", exc)

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001 - CompileError, LinkError, OSError (no gcc) ...
            self._skipped(ext.name, exc)

    def _skipped(self, what: str, exc: Exception) -> None:
        if REQUIRE_NATIVE:
            raise exc
        print(f"wsgiauth build: WARNING: {what} could not be compiled ({type(exc).__name__}: {exc}); the "
              "pure-Python fallback will be used (install gcc and the Python headers, python3-dev, for the "
              "compiled core)", file=sys.stderr, flush=True)


build = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc", "build_native.py"))
setup(
    cffi_modules=build["cffi_modules"](),
    cmdclass={"build_ext": OptionalBuildExt},
    options={"bdist_wheel": {"py_limited_api": "cp310"}} if LIMITED_API else {},
)
