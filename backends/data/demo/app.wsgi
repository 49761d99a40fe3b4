# The wsgiauth demo page: Apache only runs it for users that wsgiauth let in.
import html


def application(environ, start_response):
    raw = environ.get("REMOTE_USER", "").encode("latin-1")
    user = html.escape(raw.decode("utf-8", "replace"))
    auth_type = html.escape(environ.get("AUTH_TYPE", ""))
    body = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>wsgiauth demo</title></head>
<body>
<h1>Hello, {user}!</h1>
<p>Apache let you in: {auth_type} authentication by wsgiauth (htpasswd backend, bcrypt hashes),
and your groups include <b>staff</b> (<code>Require wsgi-group staff</code>).</p>
<p>REMOTE_USER = <code>{user}</code></p>
</body></html>
""".encode("utf-8")
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]
