"""Composition of backends: provider chains and user-name canonicalisation.

``chain(a, b)`` behaves like Apache's ``AuthBasicProvider a b``: a backend that does not know the user ("unknown")
passes the question to the next one; the first that knows the user decides (granted or denied). A backend that
*fails* (server down, pool timeout, breaker open) ends the chain, as Apache stops at ``AUTH_GENERAL_ERROR``: a later
member never decides for it, unless the chain is built with ``on_member_error="next"``. ``canonicalize`` maps the
name a user typed to the name the store holds (lower-case, ``alice@EXAMPLE.ORG`` -> ``alice``, or any function) and
makes that name the one Apache records as REMOTE_USER.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal

from .adapter import Backend, Decision, Outcome, Record, Wrapper
from .exceptions import BackendError, MemberFailedError, WsgiAuthError

__all__ = ["Canonical", "Chain", "canonicalize", "chain"]

logger = logging.getLogger("wsgiauth")

OnMemberError = Literal["stop", "next"]


def _describe(exc: BaseException) -> str:
    """An exception for the log: its message only for wsgiauth's own errors (others may quote driver internals)."""
    return f"{type(exc).__name__}: {exc}" if isinstance(exc, WsgiAuthError) else type(exc).__name__


class Chain(Backend):
    """Several backends asked in order, like ``AuthBasicProvider a b c``.

    * ``authenticate``: the first member that knows the user decides; "unknown" falls through.
    * ``realm_hash``: the first member that has one.
    * ``groups``: the union of every member's groups for that name, in member order (as Apache's group providers
      consult their own stores whichever provider authenticated the user).

    A member that fails (raises: server down, pool timeout, breaker open) ends the chain with the outcome *that
    member* is configured for, as Apache's ``AuthBasicProvider`` stops at ``AUTH_GENERAL_ERROR`` and falls through only
    on "user not found". A later member never decides in its place, so a stale local file cannot grant a password the
    directory would refuse:

    * member ``on_error="deny"``: the chain's answer is "denied" (``check_password`` returns ``False``, a 401);
      ``realm_hash`` answers ``None`` (Digest has no "denied"); ``groups`` answers ``[]`` (no groups at all);
    * member ``on_error="unknown"`` (the default) or ``"raise"``: the chain fails with that exception, and the
      chain's own ``on_error`` says what the hook answers (``None``, ``False``, or a 500 for ``"raise"``).

    ``on_member_error="next"`` (an explicit opt-in) restores falling through: a member's `BackendError` is logged and
    the next member asked, whatever that member's ``on_error``; if no later member knows the user, the failure is
    re-raised. Only use it when every member holds current passwords (an old password kept in a later member would
    be granted while the earlier one is down).

    Note on timing: a name unknown everywhere costs one dummy verification per member.

    Args:
        members: the backends, in the order they are asked.
        on_member_error: ``"stop"`` (default) or ``"next"``, see above.
        backend_kwargs: passed to `Backend` (``label``, ``on_error``, ``log_level``, ``access``).

    Raises:
        ValueError: no member, or an unknown ``on_member_error``.
        TypeError: a member is not a wsgiauth backend.
    """

    label = "chain"

    def __init__(self, *members: Backend, on_member_error: OnMemberError = "stop", **backend_kwargs: Any) -> None:
        if not members:
            raise ValueError("chain() needs at least one backend")
        for m in members:
            if not isinstance(m, Backend):
                raise TypeError(f"chain() members must be wsgiauth backends, not {type(m).__name__}")
        if on_member_error not in ("stop", "next"):
            raise ValueError(f"on_member_error must be 'stop' or 'next', not {on_member_error!r}")
        backend_kwargs.setdefault("label", "chain(" + ", ".join(m.label for m in members) + ")")
        super().__init__(**backend_kwargs)
        self.members: tuple[Backend, ...] = members
        self.on_member_error: OnMemberError = on_member_error

    def _skips(self, member: Backend, exc: Exception, what: str) -> bool:
        """Whether the chain goes on past ``member``'s failure (``on_member_error="next"``); logs either way."""
        if self.on_member_error == "next" and isinstance(exc, BackendError):
            logger.warning("%s: %s: member %s failed (%s); asking the next member (on_member_error = 'next')",
                           self.label, what, member.label, _describe(exc))
            return True
        logger.warning("%s: %s: member %s failed (%s); the chain stops there (its on_error = %r)",
                       self.label, what, member.label, _describe(exc), member.on_error)
        return False

    def authenticate(self, user: bytes, password: bytes, client: str | None = None) -> Decision:
        failure: BaseException | None = None
        last: Decision | None = None
        for member in self.members:
            try:
                decision = member.authenticate(user, password, client)
            except Exception as exc:
                if self._skips(member, exc, "authenticate"):
                    failure = exc
                    continue
                if member.on_error == "deny":
                    # An exception, not a DENIED decision: a throttle above must not count an outage as a guess.
                    raise MemberFailedError(member.label, exc, "deny") from exc
                raise
            if decision.outcome is not Outcome.UNKNOWN:
                return decision
            last = decision
        if failure is not None:
            raise failure
        return last if last is not None else Decision(Outcome.UNKNOWN, backend=self.label)

    def dummy_authenticate(self, user: bytes, password: bytes) -> None:
        # The work authenticate would do: every member in turn, up to the first that fails (where a real check
        # stops too, unless on_member_error = "next"). Nothing is decided, so a failure is not raised.
        for member in self.members:
            try:
                member.dummy_authenticate(user, password)
            except Exception as exc:  # noqa: BLE001 - a dummy check decides nothing
                if self.on_member_error == "next" and isinstance(exc, BackendError):
                    continue
                return

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
            except Exception as exc:
                if self._skips(member, exc, "realm_hash"):
                    failure = exc
                    continue
                if member.on_error == "deny":
                    return None  # Digest has no "denied": no hash, and no later member asked
                raise
            if ha1 is not None:
                return ha1
        if failure is not None:
            raise failure
        return None

    def groups(self, user: bytes) -> Sequence[bytes] | None:
        found: list[bytes] = []
        known = False
        failure: BaseException | None = None
        for member in self.members:
            try:
                groups = member.groups(user)
            except Exception as exc:
                if self._skips(member, exc, "groups"):
                    failure = exc
                    continue
                if member.on_error == "deny":
                    return []  # no groups at all: the other members' would be a partial answer
                raise
            if groups is not None:
                known = True
                found.extend(groups)
        if failure is not None and not known:
            raise failure
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


def chain(*members: Backend, on_member_error: OnMemberError = "stop", **backend_kwargs: Any) -> Chain:
    """Ask ``members`` in order, like ``AuthBasicProvider a b``: `Chain(*members, **backend_kwargs)`.

    Args:
        members: the backends, in the order they are asked.
        on_member_error: what a member's failure does: ``"stop"`` (default) ends the chain with that member's
            ``on_error`` (``"deny"``: denied; ``"unknown"``/``"raise"``: the chain fails and its own ``on_error``
            applies); ``"next"`` (opt-in) logs it and asks the next member. See `Chain`.
        backend_kwargs: passed to `Backend` (``label``, ``on_error``, ``log_level``, ``access``).

    Returns:
        The chain, itself a backend.

    Raises:
        ValueError: no member, or an unknown ``on_member_error``.
        TypeError: a member is not a wsgiauth backend.
    """
    return Chain(*members, on_member_error=on_member_error, **backend_kwargs)


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
