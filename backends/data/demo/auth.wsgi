# The wsgiauth demo's auth script: the README's four lines, with paths next to this file.
# mod_wsgi imports it in every Apache child and calls check_password (Basic) and groups_for_user
# (Require wsgi-group staff).
import os

from wsgiauth.backends import htpasswd

HERE = os.path.dirname(os.path.abspath(__file__))
backend = htpasswd.Backend(users=os.path.join(HERE, "htpasswd"), groups=os.path.join(HERE, "htgroup"))
check_password = backend.check_password
groups_for_user = backend.groups_for_user
