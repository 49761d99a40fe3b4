"""Claims the docs make about the code, checked against the code wherever a test can check them.

Each test reads the sentence that makes the claim out of the doc itself, so an edit of either side that breaks the
agreement fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from wsgiauth import hashes

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _paragraph(doc: str, start: str) -> str:
    text = (DOCS / doc).read_text()
    at = text.find(start)
    assert at >= 0, f"{doc}: the paragraph starting {start!r} is gone; update this test with the doc"
    end = text.find("\n\n", at)
    return text[at:end if end >= 0 else None]


_DJANGO = """
import sys, django
from django.conf import settings
settings.configure(PASSWORD_HASHERS=["django.contrib.auth.hashers." + n for n in (
    "PBKDF2PasswordHasher", "PBKDF2SHA1PasswordHasher", "Argon2PasswordHasher", "BCryptSHA256PasswordHasher",
    "BCryptPasswordHasher", "ScryptPasswordHasher")])
django.setup()
from django.contrib.auth.hashers import get_hasher
hasher = get_hasher(sys.argv[1])
if hasattr(hasher, "rounds"):
    hasher.rounds = 4  # bcrypt: a fast cost, the same format
if hasattr(hasher, "iterations"):
    hasher.iterations = 1000
print(hasher.encode(sys.argv[2], hasher.salt()))
"""


def _django_hash(algorithm: str, password: str) -> str:
    """A hash made by Django's own hasher (in a fresh process: Django's settings are process-wide)."""
    out = subprocess.run([sys.executable, "-c", _DJANGO, algorithm, password], capture_output=True, text=True,
                         timeout=120, check=True)
    return out.stdout.strip()


DJANGO_CLAIM = _paragraph("sql.md", "Django's `pbkdf2_sha256$ITERATIONS$SALT$HASH`")
CLAIMED_DJANGO = re.findall(r"`([a-z0-9_]+)\$", DJANGO_CLAIM)


def test_sql_md_names_the_django_formats() -> None:
    assert "verified" in DJANGO_CLAIM and len(CLAIMED_DJANGO) >= 5
    assert " not " not in DJANGO_CLAIM.replace("never verify", "")  # no format is said to be refused


@pytest.mark.parametrize("algorithm", CLAIMED_DJANGO)
def test_every_django_format_sql_md_calls_verified_is_verified(algorithm: str) -> None:
    stored = _django_hash(algorithm, "s3cret pässword")
    assert stored.startswith(algorithm + "$")
    assert hashes.verify("s3cret pässword".encode(), stored) is True
    assert hashes.verify(b"wrong", stored) is False


def test_cache_md_names_the_per_process_digest_the_cache_uses() -> None:
    """docs/cache.md says which keyed digest the per-process tier keeps; the cache must compute exactly that."""
    import hashlib

    from wsgiauth import cached
    from wsgiauth.backends import htpasswd

    claim = _paragraph("cache.md", "What it keeps, per user:")
    assert "keyed BLAKE2s" in claim and "random key made by" in claim
    backend = cached(htpasswd.Backend(users=str(Path(__file__))))
    key = backend._key
    expected = hashlib.blake2s(len(b"alice").to_bytes(4, "big") + b"alice" + b"pw", key=key).digest()
    assert backend._local_digest(b"alice", b"pw") == expected
