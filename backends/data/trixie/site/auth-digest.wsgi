"""Digest over an htdigest file made by `htdigest` (realm "trixie digest")."""
from wsgiauth.backends import htpasswd

backend = htpasswd.Backend(digest="/srv/wsgiauth/site/htdigest")
get_realm_hash = backend.get_realm_hash
