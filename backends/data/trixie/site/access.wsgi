"""Host access: 127.0.0.1 may come in, every other client is refused (403), as `Require ip 127.0.0.1`."""
from wsgiauth.hostaccess import allow_access as rules

allow_access = rules(allow=["127.0.0.1"], default=False)
