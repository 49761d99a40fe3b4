"""Composition of backends: provider chains and user-name canonicalisation.

``chain(a, b)`` behaves like Apache's ``AuthBasicProvider a b``: a backend that does not know the user ("unknown")
passes the question to the next one; the first that knows the user decides (granted or denied). ``canonicalize``
maps the name a user typed to the name the store holds (lower-case, ``alice@EXAMPLE.ORG`` -> ``alice``, or any
function) and makes that name the one Apache records as REMOTE_USER.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from .adapter import Backend, Decision, Outcome, Record, Wrapper
from .exceptions import BackendError

__all__ = ["Canonical", "Chain", "canonicalize", "chain"]

logger = logging.getLogger("wsgiauth")


class Chain(Backend):
    """Several backends asked in order, like ``AuthBasicProvider a b c``.

    * ``authenticate``: the first member that knows the user decides; "unknown" falls through. A member that fails
      (server down) is logged and skipped; if no later member knows the user, the failure is re-raised so the
      adapter applies the chain's ``on_error``.
    * ``realm_hash``: the first member that has one.
    * ``groups``: the union of every member's groups for that name, in member order (as Apache's group providers
      consult their own stores whichever provider authenticated the user).

    Note on timing: a name unknown everywhere costs one dummy verification per member.
    """

    label = "chain"

    def __init__(self, *members: Backend, **backend_kwargs: Any) -> None:
        if not members:
            raise ValueError("chain() needs at least one backend")
        for m in members:
            if not isinstance(m, Backend):
                raise TypeError(f"chain() members must be wsgiauth backends, not {type(m).__name__}")
        backend_kwargs.setdefault("label", "chain(" + ", ".join(m.label for m in members) + ")")
        super().__init__(**backend_kwargs)
        self.members: tuple[Backend, ...] = members

    def authenticate(self, user: bytes, password: bytes, client: str | None = None) -> Decision:
        failure: BaseException | None = None
        last: Decision | None = None
        for member in self.members:
            try:
                decision = member.authenticate(user, password, client)
            except BackendError as exc:
                logger.warning("%s: member %s failed: %s", self.label, member.label, exc)
                failure = exc
                continue
            if decision.outcome is not Outcome.UNKNOWN:
                return decision
            last = decision
        if failure is not None:
            raise failure
        return last if last is not None else Decision(Outcome.UNKNOWN, backend=self.label)

    def dummy_authenticate(self, user: bytes, password: bytes) -> None:
        for member in self.members:
            try:
                member.dummy_authenticate(user, password)
            except BackendError:
                continue

    def lookup(self, user: bytes) -> Record | None:
        for member in self.members:
            try:
                record = member.lookup(user)
            except NotImplementedError:
                continue
            if record is not None:
                return record
        return None

    def realm_hash(self, user: bytes, realm: bytes) -> str | None:
        failure: BaseException | None = None
        for member in self.members:
            try:
                ha1 = member.realm_hash(user, realm)
            except BackendError as exc:
                failure = exc
                continue
            if ha1 is not None:
                return ha1
        if failure is not None:
            raise failure
        return None

    def groups(self, user: bytes) -> Sequence[bytes] | None:
        found: list[bytes] = []
        known = False
        for member in self.members:
            groups = member.groups(user)
            if groups is not None:
                known = True
                found.extend(groups)
        return found if known else None

    def user_key(self, user: bytes) -> bytes:
        """The name through every member's `user_key` in turn: spellings that any member matches to one account
        share a key (a throttle counts them together), whichever member answers. Exact when the members' foldings
        commute, as case, width and space folding, NFKC and domain stripping do; a key shared by names that only
        some member confuses merely counts them together (stricter, never looser)."""
        for member in self.members:
            user = member.user_key(user)
        return user

    def generation(self) -> int:
        return hash(tuple(m.generation() for m in self.members))

    def close(self) -> None:
        for m in self.members:
            m.close()


def chain(*members: Backend, **backend_kwargs: Any) -> Chain:
    """Ask ``members`` in order, like ``AuthBasicProvider a b``: `Chain(*members, **backend_kwargs)`.

    Args:
        members: the backends, in the order they are asked.
        backend_kwargs: passed to `Backend` (``label``, ``on_error``, ``log_level``, ``access``).

    Returns:
        The chain, itself a backend.

    Raises:
        ValueError: no member.
        TypeError: a member is not a wsgiauth backend.
    """
    return Chain(*members, **backend_kwargs)


class Canonical(Wrapper):
    """A backend seen through a user-name mapping; the mapped name becomes REMOTE_USER.

    The mapping applies to Basic authentication and to group look-ups. Digest is left as typed: the client's
    response is computed over the name it sent, so a store's HA1 must be keyed by that same name.
    """

    def __init__(self, inner: Backend, mapping: Callable[[bytes], bytes], **backend_kwargs: Any) -> None:
        super().__init__(inner, **backend_kwargs)
        self.mapping = mapping

    def _map(self, user: bytes) -> bytes:
        mapped = self.mapping(user)
        return mapped if mapped else user

    def authenticate(self, user: bytes, password: bytes, client: str | None = None) -> Decision:
        name = self._map(user)
        decision = self.inner.authenticate(name, password, client)
        if decision.outcome is Outcome.GRANTED and decision.name is None and name != user:
            return decision.replace(name=name)
        return decision

    def dummy_authenticate(self, user: bytes, password: bytes) -> None:
        self.inner.dummy_authenticate(self._map(user), password)

    def lookup(self, user: bytes) -> Record | None:
        return self.inner.lookup(self._map(user))

    def user_key(self, user: bytes) -> bytes:
        """The inner store's key of the mapped name: ``alice@x0`` and ``alice@x1`` share alice's key."""
        return self.inner.user_key(self._map(user))

    def groups(self, user: bytes) -> Sequence[bytes] | None:
        # Apache passes the canonical name (REMOTE_USER) to the group hook; mapping it again must be harmless.
        return self.inner.groups(self._map(user))

    # realm_hash is forwarded as typed (Wrapper), see the class docstring.


def canonicalize(
    inner: Backend,
    *,
    lower: bool = False,
    strip_domain: bool = False,
    func: Callable[[str], str] | None = None,
    **backend_kwargs: Any,
) -> Canonical:
    """Map user names before the look-up, and report the mapped name to Apache as REMOTE_USER.

    Args:
        inner: the backend holding the canonical names.
        lower: lower-case the name (Unicode-aware for UTF-8 names).
        strip_domain: drop an ``@domain`` suffix and a ``DOMAIN\\`` prefix (``alice@EXAMPLE.ORG`` and
            ``EXAMPLE\\alice`` both become ``alice``).
        func: any further mapping on the name as text (decoded as UTF-8; undecodable bytes are kept as
            surrogates and restored afterwards). Applied last.
        backend_kwargs: passed to `Backend` (``label``, ``on_error``, ``log_level``...).

    Returns:
        A backend whose ``check_password`` returns the canonical name when it differs from the typed one.
    """

    def mapping(user: bytes) -> bytes:
        text = user.decode("utf-8", "surrogateescape")
        if strip_domain:
            if "\\" in text:
                text = text.rsplit("\\", 1)[1]
            if "@" in text:
                text = text.split("@", 1)[0]
        if lower:
            text = text.lower()
        if func is not None:
            text = func(text)
        return text.encode("utf-8", "surrogateescape")

    return Canonical(inner, mapping, **backend_kwargs)
