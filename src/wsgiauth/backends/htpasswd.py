"""htpasswd, htdigest and htgroup files, read exactly as Apache's ``mod_authn_file`` and ``mod_authz_groupfile`` do.

An ``auth.wsgi`` in four lines::

    from wsgiauth.backends import htpasswd
    backend = htpasswd.Backend(users="/srv/site/.htpasswd", groups="/srv/site/.htgroup")
    check_password = backend.check_password
    groups_for_user = backend.groups_for_user

Apache re-reads these files on every request; this backend parses each file once into a dictionary and re-reads it
only when it changes on disk (its mtime, size or inode: an in-place write or an editor's atomic rename), checking at
most once per ``check_interval`` seconds. A reload that fails keeps the last good copy; a file missing or unreadable
at start-up is an immediate `StoreError` naming the path and the uid of the process.

The format rules (comments, blank lines, surrounding whitespace, backslash continuation, CR LF, over-long lines,
first match wins, case-sensitive raw-byte names, quoted group members, groups merged over several lines) are those of
`wsgiauth._textfile`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .. import adapter
from .._filewatch import WatchedFile
from .._textfile import DigestTable, GroupTable, PasswdTable, load_htdigest, load_htgroup, load_htpasswd
from ..exceptions import ConfigError

__all__ = ["Backend"]

PathLike = str | os.PathLike[str]


class Backend(adapter.Backend):
    """Users from an htpasswd file, Digest hashes from an htdigest file, groups from an htgroup file.

    Args:
        users: the htpasswd file (``user:hash``) used by ``check_password``, as ``AuthUserFile`` with Basic.
        digest: the htdigest file (``user:realm:HA1``) used by ``get_realm_hash``, as ``AuthUserFile`` with Digest.
        groups: the htgroup file (``group: member ...``) used by ``groups_for_user``, as ``AuthGroupFile``.
        check_interval: at most one ``stat()`` per file per this many seconds (default 1.0; 0 checks on every
            request). A change on disk is in force within this delay.
        allow_plaintext: accept stored passwords in clear text. Apache on Linux never does (it hands them to
            ``crypt()``, which cannot match), so they are refused unless this is ``True``.
        **backend_kwargs: ``label`` (default ``"htpasswd"``), ``on_error``, ``log_level``, ``access``: see
            `wsgiauth.adapter.Backend`.

    Raises:
        ConfigError: none of ``users``, ``digest`` and ``groups`` is given, or ``check_interval`` is negative.
        StoreError: a file is missing or unreadable (the message names it and this process's uid and user name).
    """

    label = "htpasswd"

    def __init__(
        self,
        users: PathLike | None = None,
        *,
        digest: PathLike | None = None,
        groups: PathLike | None = None,
        check_interval: float = 1.0,
        allow_plaintext: bool = False,
        **backend_kwargs: Any,
    ) -> None:
        super().__init__(**backend_kwargs)
        if users is None and digest is None and groups is None:
            raise ConfigError("htpasswd.Backend needs at least one file: users=, digest= or groups=")
        try:
            interval = float(check_interval)
        except (TypeError, ValueError):
            raise ConfigError(f"check_interval must be a number of seconds, not {check_interval!r}") from None
        if not interval >= 0.0:
            raise ConfigError(f"check_interval must be >= 0 seconds, not {check_interval!r}")
        self.check_interval = interval
        self.allow_plaintext = bool(allow_plaintext)  # the adapter hands it to hashes.verify()
        self._users: WatchedFile[PasswdTable] | None = None
        self._digest: WatchedFile[DigestTable] | None = None
        self._groups: WatchedFile[GroupTable] | None = None
        if users is not None:
            self._users = WatchedFile(users, load_htpasswd, check_interval=interval, what="htpasswd file")
        if digest is not None:
            self._digest = WatchedFile(digest, load_htdigest, check_interval=interval, what="htdigest file")
        if groups is not None:
            self._groups = WatchedFile(groups, load_htgroup, check_interval=interval, what="htgroup file")
        self._timing_table: PasswdTable | None = None
        if self._users is not None:
            self._users_table()  # sets timing_hash: an unknown user costs a real-looking check from the first request

    # ------------------------------------------------------------------ the backend interface (raw bytes)

    def _users_table(self) -> PasswdTable:
        assert self._users is not None
        table = self._users.get()
        if table is not self._timing_table:  # first use, or reloaded: model unknown users on the new file
            self._timing_table = table
            self.timing_hash = table.timing_hash
        return table

    def lookup(self, user: bytes) -> adapter.Record | None:
        """The htpasswd entry of ``user`` (first line naming it), or ``None`` (no users file, or no such user)."""
        if self._users is None:
            return None
        stored = self._users_table().users.get(user)
        return None if stored is None else adapter.Record(stored)

    def realm_hash(self, user: bytes, realm: bytes) -> str | None:
        """The HA1 stored for ``user`` in ``realm`` in the htdigest file, or ``None``."""
        if self._digest is None:
            return None
        return self._digest.get().hashes.get((user, realm))

    def groups(self, user: bytes) -> Sequence[bytes] | None:
        """The groups whose members include ``user`` in the htgroup file, in file order, or ``None``."""
        if self._groups is None:
            return None
        return self._groups.get().by_user.get(user)

    def generation(self) -> int:
        """Changes whenever one of the files is reloaded."""
        return sum(w.generation for w in self._watched())

    # ------------------------------------------------------------------ extras

    def refresh(self) -> bool:
        """Check every file now, whatever the interval.

        Returns:
            ``True`` if at least one file had changed and was reloaded.
        """
        changed = False
        for watched in self._watched():
            changed = watched.refresh() or changed
        return changed

    @property
    def paths(self) -> dict[str, str]:
        """The files in use: ``{"users": ..., "digest": ..., "groups": ...}`` (only those given)."""
        out: dict[str, str] = {}
        for key, watched in (("users", self._users), ("digest", self._digest), ("groups", self._groups)):
            if watched is not None:
                out[key] = watched.path
        return out

    def _watched(self) -> list[WatchedFile[Any]]:
        return [w for w in (self._users, self._digest, self._groups) if w is not None]

    def __repr__(self) -> str:
        files = ", ".join(f"{k}={v!r}" for k, v in self.paths.items())
        return f"<htpasswd.Backend {self.label!r} {files}>"
