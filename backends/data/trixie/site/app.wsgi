"""The test application: says who Apache authenticated (REMOTE_USER as UTF-8 text, AUTH_TYPE)."""
import json


def application(environ, start_response):
    user = environ.get("REMOTE_USER")
    body = json.dumps({
        "REMOTE_USER": user.encode("latin-1").decode("utf-8", "backslashreplace") if user is not None else None,
        "AUTH_TYPE": environ.get("AUTH_TYPE"),
    }).encode("ascii")
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
