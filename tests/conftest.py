"""Shared fixtures. Keep this file small: one fixture per shared need, documented.

* ``require_apache()`` / the ``apache_available`` fixture: skip (locally) or fail (CI) when a real Apache with
  mod_wsgi-express cannot be started here.
* ``apache_factory``: a module-scoped factory ``apache_factory(**kwargs) -> backends.apache.Apache`` that starts a
  throw-away Apache and stops it (removing its temp dir) when the test module ends.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `backends` is a top-level package of the checkout, not of the install
    sys.path.insert(0, str(ROOT))

from backends import apache as _apache  # noqa: E402
from backends._common import missing  # noqa: E402


def require_apache() -> None:
    """Skip locally, fail in CI, when Apache or mod_wsgi-express is missing."""
    reason = _apache.unavailable()
    if reason is not None:
        missing(reason)


@pytest.fixture(scope="session")
def apache_available() -> None:
    require_apache()


@pytest.fixture(scope="module")
def apache_factory(apache_available: None) -> Iterator[Callable[..., _apache.Apache]]:
    started: list[_apache.Apache] = []

    def factory(**kwargs: Any) -> _apache.Apache:
        server = _apache.Apache(**kwargs)
        started.append(server)
        return server.start()

    yield factory
    for server in reversed(started):
        server.close()
