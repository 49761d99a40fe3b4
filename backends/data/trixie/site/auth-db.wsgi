"""Basic (and groups) over a DB database made by `htdbm -TDB` (groups in the value's second field)."""
from wsgiauth.backends import dbm

backend = dbm.Backend("/srv/wsgiauth/site/users-db", type="db")
check_password = backend.check_password
groups_for_user = backend.groups_for_user
