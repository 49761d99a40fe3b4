"""Type stub of the generated module ``wsgiauth._abi``: cffi's out-of-line ABI mode, pure Python (made at build time
from csrc/abi_*.h by csrc/build_native.py). Its ``ffi.dlopen(soname)`` opens a system library (`wsgiauth._compiled`).
"""

from typing import Any

ffi: Any
