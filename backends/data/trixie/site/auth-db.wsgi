"""Basic (and groups) over a DB database made by `htdbm -TDB` (groups in the value's second field)."""
from wsgiauth.backends import dbm

backend = dbm.Backend("/srv/wsgiauth/site/users-db", type="db")
check_password = backend.check_password
groups_for_user = backend.groups_for_user

# Said once per Apache child, in Apache's error log: which code answers (tests/test_debian13.py reads it).
import sys  # noqa: E402
from wsgiauth import _compiled  # noqa: E402

_m = _compiled.load("_native_bdb")
print(f"wsgiauth _native_bdb in this child: {_m.__file__ if _m is not None else 'missing: pure-Python fallback'}",
      file=sys.stderr)
