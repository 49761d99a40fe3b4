"""Basic (and groups) over a SDBM database made by `htdbm -TSDBM` (groups in the value's second field)."""
from wsgiauth.backends import dbm

backend = dbm.Backend("/srv/wsgiauth/site/users-sdbm", type="sdbm")
check_password = backend.check_password
groups_for_user = backend.groups_for_user
