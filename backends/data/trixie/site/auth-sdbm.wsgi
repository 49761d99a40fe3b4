"""Basic (and groups) over a SDBM database made by `htdbm -TSDBM` (groups in the value's second field)."""
from wsgiauth.backends import dbm

backend = dbm.Backend("/srv/wsgiauth/site/users-sdbm", type="sdbm")
check_password = backend.check_password
groups_for_user = backend.groups_for_user

# Said once per Apache child, in Apache's error log: which code answers (tests/test_debian13.py reads it).
import sys  # noqa: E402
from wsgiauth import _compiled  # noqa: E402

_m = _compiled.load("_native_dbm")
print(f"wsgiauth _native_dbm in this child: {_m.__file__ if _m is not None else 'missing: pure-Python fallback'}",
      file=sys.stderr)
