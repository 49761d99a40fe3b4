"""Process-wide state: the registry a re-imported auth script finds its objects in, and the after-fork reset.

mod_wsgi re-imports an auth script when its file changes, without cleaning up the old module: whatever the script
created (backends, pools, caches, Redis tiers, loaded configurations) must be found again, not built twice. `shared`
keeps one object per key for the whole process.

Apache forks its children after the parent may have imported the script: objects that hold per-process state
(sockets, locks, cached grants, counters) register with `per_process`, which sets that state up, and every forked
child calls their `_reset_for_process()` again right after the fork (through `os.register_at_fork`; mod_wsgi runs
CPython's after-fork handling in each child). The registry's own lock is replaced there too: another thread of the
parent may have held it.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

__all__ = ["AT_FORK", "PerProcess", "lock", "per_process", "replace", "shared"]

T = TypeVar("T")

#: Whether forked children reset registered objects by themselves (else objects compare pids on use).
AT_FORK = hasattr(os, "register_at_fork")

_objects: dict[tuple[Any, ...], Any] = {}
# Re-entrant: a factory may register what it builds on (a configuration builds backends, a backend its pools).
_lock = [threading.RLock()]


def lock() -> threading.RLock:
    """The registry's lock (re-entrant); hold it to look up and replace an entry as one step."""
    return _lock[0]


def shared(key: tuple[Any, ...], factory: Callable[[], T]) -> T:
    """The process-wide object registered under `key`, created by `factory` on first use.

    Args:
        key: identifies the object; a tuple of hashable values (never a password in clear).
        factory: builds the object. It runs with the registry's lock held and may itself call `shared`.

    Returns:
        The registered object (the same one on every later call with an equal key).

    Raises:
        Exception: whatever `factory` raised; nothing is registered then.
    """
    with _lock[0]:
        obj = _objects.get(key)
        if obj is None:
            obj = factory()
            _objects[key] = obj
        return obj


def replace(key: tuple[Any, ...], stale: T, factory: Callable[[], T]) -> T:
    """Register a new object under `key` in place of `stale` (e.g. a pool that was closed).

    When another thread already replaced `stale`, its replacement is returned and `factory` is not called.

    Returns:
        The object now registered under `key`.
    """
    with _lock[0]:
        current = _objects.get(key)
        if current is None or current is stale:
            current = factory()
            _objects[key] = current
        return current


class _PerProcess(Protocol):
    def _reset_for_process(self) -> None: ...


_per_process: weakref.WeakSet[_PerProcess] = weakref.WeakSet()


def per_process(obj: _PerProcess) -> None:
    """Set up `obj`'s per-process state now (`obj._reset_for_process()`), and again in every forked child.

    The object is held weakly: registering does not keep it alive. `_reset_for_process` must drop (never close, never
    use) what belongs to the parent, such as sockets, and must not raise.
    """
    obj._reset_for_process()
    _per_process.add(obj)


class PerProcess:
    """A base for objects whose state belongs to one process: `_pid`, `_lock` and what `_fresh_state` sets up.

    A subclass calls `self._start_per_process()` at the end of its `__init__`: the state is set up then, and again in
    every forked child (a child never shares its parent's lock, entries or counters).
    """

    _pid: int
    _lock: threading.Lock

    def _start_per_process(self) -> None:
        per_process(self)

    def _reset_for_process(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._fresh_state()

    def _fresh_state(self) -> None:
        """Set up this process's own state (called with `_pid` and `_lock` already fresh)."""


def _after_fork_in_child() -> None:
    _lock[0] = threading.RLock()
    for obj in list(_per_process):
        obj._reset_for_process()


if AT_FORK:
    os.register_at_fork(after_in_child=_after_fork_in_child)
