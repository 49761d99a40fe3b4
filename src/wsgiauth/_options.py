"""Numeric keyword arguments described once: type, allowed range, default and meaning.

A constructor checks such a keyword with its `Option` and raises `OptionError`, which names the keyword; the
configuration file's schema (`wsgiauth.config`) builds its checks from the same `Option`, and reports a constructor's
`OptionError` at the key path of that keyword. So a range or a default is written in one place only.

A group of options that several constructors take (the connection pool's) is a `TypedDict` whose fields carry their
`Option` in `Annotated[...]`: `options_of` reads them back, and `**kwargs: Unpack[...]` types the constructors.

The specs live here, not beside their constructors, so that the configuration schema can read them without importing
the backends (ldap3, sqlite3, the pool machinery) into an Apache child that does not use them.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Annotated, Any, Generic, TypedDict, TypeVar

from ._value import Value
from .exceptions import ConfigError

__all__ = [
    "CACHE_MAX_SIZE",
    "CACHE_TTL",
    "LDAP_CONNECT_TIMEOUT",
    "LDAP_MAX_DEPTH",
    "LDAP_TIMEOUT",
    "POOL_OPTIONS",
    "SQL_CONNECT_TIMEOUT",
    "SQL_TIMEOUT",
    "THROTTLE_GROWTH",
    "THROTTLE_IPV6_PREFIX",
    "THROTTLE_LOCKOUT",
    "THROTTLE_MAX_FAILURES",
    "THROTTLE_MAX_LOCKOUT",
    "THROTTLE_MAX_TRACKED",
    "THROTTLE_WINDOW",
    "Option",
    "OptionError",
    "PoolOptions",
    "check_options",
    "options_of",
    "type_name",
]

N = TypeVar("N", int, float)


class OptionError(ConfigError):
    """A keyword argument is out of range or of the wrong type.

    Attributes:
        option: the keyword's name.
        reason: what is wrong, without the name (`must be at most 20, not 99`).
    """

    def __init__(self, option: str, reason: str) -> None:
        super().__init__(f"{option}: {reason}")
        self.option = option
        self.reason = reason


def type_name(value: Any) -> str:
    """How a value's type is named in an error message (`an integer`, `a string`, `an array`...)."""
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            tuple: "an array", dict: "a table"}.get(type(value), type(value).__name__)


def _shown(value: float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


class Option(Value, Generic[N]):
    """One numeric keyword: an integer when the default is an `int`, else any real number.

    Args:
        default: the value when the keyword is not given.
        low: the smallest value allowed (`None`: no lower bound).
        high: the largest value allowed (`None`: no upper bound).
        above: the value must be greater than this (an open lower bound, for durations that cannot be 0).
        doc: what the keyword means, for the configuration reference and error messages.
    """

    __slots__ = ("above", "default", "doc", "high", "low")
    __match_args__ = ("default", "low", "high", "above", "doc")

    default: N
    low: float | None
    high: float | None
    above: float | None
    doc: str

    def __init__(self, default: N, *, low: float | None = None, high: float | None = None,
                 above: float | None = None, doc: str = "") -> None:
        self._init(default, low, high, above, doc)

    @property
    def integer(self) -> bool:
        """Whether only integers are allowed."""
        return isinstance(self.default, int)

    def describe(self) -> str:
        """The range and default in words (`an integer from 1 to 1000, default 4`), for references."""
        kind = "an integer" if self.integer else "a number"
        if self.above is not None:
            low = f"> {_shown(self.above)}"
        elif self.low is not None:
            low = f">= {_shown(self.low)}"
        else:
            low = ""
        if self.low is not None and self.high is not None:
            bounds = f" from {_shown(self.low)} to {_shown(self.high)}"
        elif low and self.high is not None:
            bounds = f" {low} and <= {_shown(self.high)}"
        elif low:
            bounds = f" {low}"
        else:
            bounds = f" <= {_shown(self.high)}" if self.high is not None else ""
        return f"{kind}{bounds}, default {_shown(self.default)}"

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value` (`must be at least 1, not 0`), or `None` when it is allowed."""
        allowed = int if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, allowed):
            return f"expected {'an integer' if self.integer else 'a number'}, got {type_name(value)}"
        if value != value:  # NaN compares false with every bound
            return "must be a number, not NaN"
        if self.above is not None and not value > self.above:
            return f"must be greater than {_shown(self.above)}, not {_shown(value)}"
        if self.low is not None and value < self.low:
            return f"must be at least {_shown(self.low)}, not {_shown(value)}"
        if self.high is not None and value > self.high:
            return f"must be at most {_shown(self.high)}, not {_shown(value)}"
        return None

    def check(self, name: str, value: Any) -> N:
        """`value` when it is allowed, as an `int` or a `float`.

        Raises:
            OptionError: naming `name` and what is wrong.
        """
        problem = self.problem(value)
        if problem is not None:
            raise OptionError(name, problem)
        return value if self.integer else float(value)  # type: ignore[return-value]


def options_of(group: type[Any]) -> dict[str, Option[Any]]:
    """The `Option` of each field of a `TypedDict` whose fields are `Annotated[int | float, Option(...)]`."""
    hints = typing.get_type_hints(group, include_extras=True)
    found: dict[str, Option[Any]] = {}
    for name, hint in hints.items():
        specs = [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, Option)]
        if len(specs) != 1:
            raise TypeError(f"{group.__name__}.{name} needs exactly one Option in Annotated[...]")
        found[name] = specs[0]
    return found


def check_options(specs: Mapping[str, Option[Any]], given: Mapping[str, Any], *, what: str) -> dict[str, Any]:
    """Every option of `specs`: the checked value of those in `given`, the default of the others.

    Args:
        specs: the options allowed.
        given: the keyword arguments received.
        what: the callable's name, for the error about an unknown keyword.

    Raises:
        TypeError: `given` holds a keyword that is not in `specs`.
        OptionError: a value is out of range or of the wrong type.
    """
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise TypeError(f"{what} got an unexpected keyword argument {unknown[0]!r}")
    return {name: spec.check(name, given[name]) if name in given else spec.default for name, spec in specs.items()}


# ---------------------------------------------------------------------- the specs

class PoolOptions(TypedDict, total=False):
    """The pool keywords of the backends that keep connections (`sql.Backend`, `ldap.Backend`): the one place that
    says their types, ranges, defaults and meaning (`POOL_OPTIONS`; the configuration file takes the same keys)."""

    pool_size: Annotated[int, Option(4, low=1, high=1000, doc="connections per Apache process (per pool for LDAP; "
                                                                 "like DBDMax)")]
    pool_timeout: Annotated[float, Option(5.0, above=0, doc="longest wait for a free connection, in seconds")]
    max_idle: Annotated[float, Option(300.0, low=0, doc="seconds an unused connection is kept (like DBDExptime; "
                                                          "0: no limit)")]
    max_lifetime: Annotated[float, Option(3600.0, low=0, doc="seconds a connection is used at most (jittered; "
                                                               "0: no limit)")]
    check_after: Annotated[float, Option(30.0, low=0, doc="idle seconds after which a connection is validated "
                                                            "before use")]
    breaker_threshold: Annotated[int, Option(5, low=0, doc="failures in a row that open the circuit breaker "
                                                            "(0: no breaker)")]
    breaker_reset: Annotated[float, Option(10.0, low=0, doc="seconds before a broken server is tried again")]


#: The `Option` of each `PoolOptions` keyword.
POOL_OPTIONS = options_of(PoolOptions)

# ldap.Backend
LDAP_MAX_DEPTH = Option(10, low=0, high=20, doc="levels of nested groups followed (AuthLDAPMaxSubGroupDepth; "
                                                "0: direct membership only)")
LDAP_CONNECT_TIMEOUT = Option(2.0, above=0, high=60, doc="seconds to open a connection to one server (then the "
                                                         "next is tried)")
LDAP_TIMEOUT = Option(5.0, above=0, high=300, doc="seconds to wait for any answer of the server")

# sql.sqlite(), sql.postgresql(), sql.mysql(); the configuration file's `connect_timeout` and `timeout`
SQL_CONNECT_TIMEOUT = Option(3.0, above=0, doc="seconds before a connection attempt gives up (PostgreSQL, MySQL)")
SQL_TIMEOUT = Option(5.0, above=0, doc="query timeout (statement_timeout, read_timeout, SQLite lock)")

# cache.Cached; the configuration file's [cache] tables
CACHE_TTL = Option(300.0, above=0, doc="seconds a verified password stays cached")
CACHE_MAX_SIZE = Option(10000, low=1, doc="users kept per process")

# throttle.Throttled; the configuration file's [throttle] table
THROTTLE_MAX_FAILURES = Option(5, low=1, doc="failed attempts allowed per window")
THROTTLE_WINDOW = Option(300.0, above=0, doc="window in seconds")
THROTTLE_LOCKOUT = Option(60.0, above=0, doc="seconds a user (or client) stays refused")
THROTTLE_GROWTH = Option(2.0, low=1, doc="factor applied to each further lockout of the same subject")
THROTTLE_MAX_LOCKOUT = Option(3600.0, above=0, doc="the longest lockout, in seconds (at least lockout)")
THROTTLE_MAX_TRACKED = Option(100000, low=1, doc="subjects (user names, addresses) tracked per process; live "
                                                  "lockouts of accounts and addresses are never forgotten")
THROTTLE_IPV6_PREFIX = Option(64, low=1, high=128, doc="IPv6 clients are counted per network of this prefix length "
                                                      "(IPv4 per address)")
