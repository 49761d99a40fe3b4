"""Immutable value classes without dataclasses.

`dataclasses` imports `inspect`, which every Apache child that loads an auth script would then carry
(docs/benchmarks.md, Memory). The records the hot path builds (`adapter.Record`, `adapter.Decision`, the parsed
tables of `_textfile`) subclass `Value` instead.
"""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = ["Value"]

V = TypeVar("V", bound="Value")


class Value:
    """Value semantics for a `__slots__` class whose fields are named, in constructor order, in `__match_args__`.

    What a frozen dataclass has: assignment and deletion raise `AttributeError`; equality (same class, equal
    fields), hashing, `repr` and pickling go field by field; `match` statements see the fields positionally.
    Subclasses set their fields once, in `__init__`, with `self._init(value, ...)`.
    """

    __slots__ = ()
    __match_args__: tuple[str, ...] = ()

    def _init(self, *values: Any) -> None:
        """Set every field, in `__match_args__` order (the only way to assign them)."""
        for name, value in zip(self.__match_args__, values, strict=True):
            object.__setattr__(self, name, value)

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__match_args__)

    def _replace(self: V, **changes: Any) -> V:
        """A copy with some fields changed (what `dataclasses.replace` does)."""
        fields = dict(zip(self.__match_args__, self._fields(), strict=True))
        fields.update(changes)
        return type(self)(**fields)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            assert isinstance(other, Value)
            return self._fields() == other._fields()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={v!r}" for n, v in zip(self.__match_args__, self._fields(), strict=True))
        return f"{type(self).__qualname__}({shown})"

    def __reduce__(self) -> tuple[type[Any], tuple[Any, ...]]:
        return (type(self), self._fields())
