"""The checking engine of `wsgiauth.config`: key specs, value checks, and errors collected with their key paths.

A section (a TOML table) is checked against a mapping of key names to `Key` specs. Every problem is recorded in an
`Errors` with its key path (`backends.corp.timeout: must be greater than 0, not -1`) and checking goes on, so one
`ConfigError` can list them all. A check returns the checked value, or `MISSING` after recording why it is unusable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._options import Option, type_name
from .exceptions import ConfigError

#: What a check returns for a value it refused (the reason is in the errors), and a `Key`'s "no default".
MISSING: Any = object()

class Errors:
    """Collects every problem found, each with its key path."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}")

    def raise_if_any(self, source: str) -> None:
        if self.items:
            n = len(self.items)
            head = f"{source}: {n} error{'s' if n > 1 else ''} in the configuration"
            exc = ConfigError(head + "\n  " + "\n  ".join(self.items))
            exc.errors = list(self.items)  # type: ignore[attr-defined]
            raise exc


@dataclass
class Ctx:
    base: Path  # directory of the config file: relative paths are resolved against it
    errors: Errors
    environ: Mapping[str, str]


Check = Callable[[Any, str, Ctx], Any]


def string(value: Any, path: str, ctx: Ctx) -> Any:
    if not isinstance(value, str) or not value:
        ctx.errors.add(path, f"expected a non-empty string, got {type_name(value)}"
                       if not isinstance(value, str) else "must not be empty")
        return MISSING
    return value


def boolean(value: Any, path: str, ctx: Ctx) -> Any:
    if not isinstance(value, bool):
        ctx.errors.add(path, f"expected true or false, got {type_name(value)}")
        return MISSING
    return value


def option(spec: Option[Any]) -> Check:
    """The check of a constructor's numeric keyword: its type and range, as the constructor checks them."""
    def check(value: Any, path: str, ctx: Ctx) -> Any:
        problem = spec.problem(value)
        if problem is not None:
            ctx.errors.add(path, problem)
            return MISSING
        return value
    return check


def number(low: float | None = None, high: float | None = None, *, integer: bool = False,
           strict_low: bool = False) -> Check:
    """A number in `[low, high]` (`(low, high]` with `strict_low`), for keys no constructor checks the same way."""
    return option(Option(0 if integer else 0.0, low=None if strict_low else low, high=high,
                         above=low if strict_low else None))


def choice(*options: str) -> Check:
    def check(value: Any, path: str, ctx: Ctx) -> Any:
        if not isinstance(value, str) or value.lower() not in options:
            shown = repr(value) if isinstance(value, str) else type_name(value)
            ctx.errors.add(path, f"must be one of {', '.join(repr(o) for o in options)}, not {shown}")
            return MISSING
        return value.lower()
    return check


def string_list(value: Any, path: str, ctx: Ctx) -> Any:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        ctx.errors.add(path, "expected an array of non-empty strings")
        return MISSING
    return list(value)


def file_path(must_exist: bool = True) -> Check:
    """A path, resolved against the config file's directory. Existence is checked by ``wsgiauth doctor`` as the
    Apache user; here only when ``must_exist`` (a missing credential file is a mistake worth reporting early)."""
    def check(value: Any, path: str, ctx: Ctx) -> Any:
        if string(value, path, ctx) is MISSING:
            return MISSING
        p = Path(value).expanduser()
        if not p.is_absolute():
            p = ctx.base / p
        if must_exist and not p.exists():
            ctx.errors.add(path, f"{p} does not exist")
            return MISSING
        return str(p)
    return check


def url(*schemes: str, what: str) -> Check:
    def check(value: Any, path: str, ctx: Ctx) -> Any:
        if string(value, path, ctx) is MISSING:
            return MISSING
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() not in schemes or not rest.strip("/ "):
            ctx.errors.add(path, f"not {what} URL: {value!r}")
            return MISSING
        return value
    return check


def host_rules(value: Any, path: str, ctx: Ctx) -> Any:
    rules = string_list(value, path, ctx)
    if rules is MISSING:
        return MISSING
    from .hostaccess import parse_rule

    bad = False
    for i, rule in enumerate(rules):
        for word in rule.split():
            try:
                parse_rule(word)
            except ValueError as exc:
                ctx.errors.add(f"{path}[{i}]", str(exc))
                bad = True
    return MISSING if bad else rules


@dataclass(frozen=True)
class Key:
    """One key of a section: its check, whether it is required, its default, its constructor argument, its doc."""

    check: Check
    doc: str
    required: bool = False
    default: Any = MISSING
    arg: str | None = None  # the constructor keyword (default: the key itself); "" = not passed on
    secret: bool = False  # also accepted as KEY_file (a file holding it) or KEY_env (an environment variable)
    option: Option[Any] | None = None  # the constructor's own spec of this keyword, when it has one


def option_key(spec: Option[Any], doc: str | None = None, **kw: Any) -> Key:
    """The key of a constructor's numeric keyword: checked with the constructor's `Option`, documented by it."""
    return Key(option(spec), spec.doc if doc is None else doc, option=spec, **kw)


def _secret_value(section: Mapping[str, Any], key: str, spec: Key, path: str, ctx: Ctx) -> Any:
    forms = [f for f in (key, f"{key}_file", f"{key}_env") if f in section]
    if len(forms) > 1:
        ctx.errors.add(f"{path}.{forms[1]}", f"give only one of {', '.join(forms)}")
        return MISSING
    if not forms:
        return MISSING
    form = forms[0]
    value = section[form]
    where = f"{path}.{form}"
    if form == key:
        return spec.check(value, where, ctx)
    if string(value, where, ctx) is MISSING:
        return MISSING
    if form.endswith("_env"):
        if value not in ctx.environ:
            ctx.errors.add(where, f"environment variable {value} is not set (for Apache's processes, export it "
                                  "in /etc/apache2/envvars)")
            return MISSING
        return spec.check(ctx.environ[value], where, ctx)
    p = Path(value).expanduser()
    if not p.is_absolute():
        p = ctx.base / p
    try:
        text = p.read_text(encoding="utf-8")
    except PermissionError:
        ctx.errors.add(where, f"cannot read {p}: permission denied for uid {os.getuid()}")
        return MISSING
    except OSError as exc:
        ctx.errors.add(where, f"cannot read {p}: {exc.strerror or exc}")
        return MISSING
    secret = text.rstrip("\r\n")
    if not secret:
        ctx.errors.add(where, f"{p} is empty")
        return MISSING
    return spec.check(secret, where, ctx)


def check_section(section: Any, path: str, keys: Mapping[str, Key], ctx: Ctx,
             extra: Sequence[str] = ()) -> dict[str, Any]:
    """Check a table against ``keys``; returns the checked values (absent optional keys are left out)."""
    if not isinstance(section, dict):
        ctx.errors.add(path, f"expected a table, got {type_name(section)}")
        return {}
    out: dict[str, Any] = {}
    allowed = set(keys) | set(extra)
    for key, spec in keys.items():
        if spec.secret:
            allowed |= {f"{key}_file", f"{key}_env"}
    for key in section:
        if key not in allowed:
            hint = closest(key, sorted(allowed))
            ctx.errors.add(f"{path}.{key}", "unknown key" + (f" (did you mean {hint!r}?)" if hint else ""))
    for key, spec in keys.items():
        if spec.secret:
            value = _secret_value(section, key, spec, path, ctx)
            present = any(f in section for f in (key, f"{key}_file", f"{key}_env"))
        else:
            present = key in section
            value = spec.check(section[key], f"{path}.{key}", ctx) if present else MISSING
        if not present:
            if spec.required:
                forms = f" (or {key}_file / {key}_env)" if spec.secret else ""
                ctx.errors.add(f"{path}.{key}", f"required{forms}: {spec.doc}")
            elif spec.default is not MISSING:
                out[key] = spec.default
            continue
        if value is not MISSING:
            out[key] = value
    return out


def closest(word: str, options: Sequence[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, options, n=1, cutoff=0.75)
    return found[0] if found else None
