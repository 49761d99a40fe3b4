"""Basic (and groups) over an htpasswd file made by `htpasswd -m`, with Apache's htgroup file."""
from wsgiauth.backends import htpasswd

backend = htpasswd.Backend(users="/srv/wsgiauth/site/htpasswd-apr1", groups="/srv/wsgiauth/site/htgroup")
check_password = backend.check_password
groups_for_user = backend.groups_for_user

# Said once per Apache child, in Apache's error log: which code answers (tests/test_debian13.py reads it).
import sys  # noqa: E402
from wsgiauth import _compiled  # noqa: E402

_m = _compiled.load("_native")
print(f"wsgiauth _native in this child: {_m.__file__ if _m is not None else 'missing: pure-Python fallback'}",
      file=sys.stderr)
