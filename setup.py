"""Build glue only: compiles csrc/ into the private module wsgiauth._native (metadata lives in pyproject.toml)."""

from setuptools import setup

setup(cffi_modules=["csrc/build_native.py:ffi"])
