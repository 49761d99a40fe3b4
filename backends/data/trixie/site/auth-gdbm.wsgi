"""Basic (and groups) over a GDBM database made by `htdbm -TGDBM` (groups in the value's second field)."""
from wsgiauth.backends import dbm

backend = dbm.Backend("/srv/wsgiauth/site/users-gdbm", type="gdbm")
check_password = backend.check_password
groups_for_user = backend.groups_for_user
