"""Build glue only: compiles csrc/ into wsgiauth._native and wsgiauth._native_dbm (metadata lives in pyproject.toml)."""

from setuptools import setup

setup(cffi_modules=["csrc/build_native.py:ffi", "csrc/build_native.py:ffi_dbm"])
