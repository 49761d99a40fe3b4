"""Basic (and groups) over an htpasswd file made by `htpasswd -5`, with Apache's htgroup file."""
from wsgiauth.backends import htpasswd

backend = htpasswd.Backend(users="/srv/wsgiauth/site/htpasswd-sha512", groups="/srv/wsgiauth/site/htgroup")
check_password = backend.check_password
groups_for_user = backend.groups_for_user
