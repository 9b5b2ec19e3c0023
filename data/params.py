"""Typed params: the one config layer at the bottom of the stack (imports nothing from the repo).

Every stage section of ``params.yaml`` becomes a frozen dataclass through :func:`build_config`,
which validates with pydantic (a ``TypeAdapter`` over the dataclass, strict types, unknown keys
rejected) instead of a hand-written checker. Field constraints are written on the dataclass as
``Annotated[int, Range(1, 3650, integer=True)]``; cross-field rules stay in ``__post_init__``
and raise :class:`ConfigError` with their dotted key. Whatever fails, the caller gets ONE line
naming the dotted key, what is allowed and the bad value, e.g.
``params.yaml:data.simulator.n_learners: must be an integer >= 1, got 0``.

Why here: ``data``, ``features`` and ``training`` build configs too, and a lower layer must not
import ``pipelines`` (which imports them). ``pipelines.common`` re-exports these names.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import numbers
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict, TypeVar, Unpack

T = TypeVar("T")


class ConfigError(ValueError):
    """A params section is missing a key, has an unknown key, or a value out of range."""


def require(cond: bool, where: str, message: str) -> None:
    """Raise ConfigError naming the field when a check fails (used in __post_init__)."""
    if not cond:
        raise ConfigError(f"{where}: {message}")


def _fmt_bound(x: float) -> str:
    """A range bound as written in params: ``0`` rather than ``0.0``, ``1e-05`` as is."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return str(x)


def fmt_range(
    lo: float | None, hi: float | None, lo_open: bool = False, hi_open: bool = False
) -> str:
    """Interval notation: ``in [1, 64]``, ``in (0, 1]``, ``>= 0``, ``> 0``, ``<= 1``, ``< 1``."""
    if lo is not None and hi is not None:
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        return f"in {left}{_fmt_bound(lo)}, {_fmt_bound(hi)}{right}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {_fmt_bound(lo)}"
    if hi is None:
        raise TypeError("a range needs lo, hi or both")
    return f"{'<' if hi_open else '<='} {_fmt_bound(hi)}"


def range_problem(
    value: object,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    integer: bool = False,
    note: str = "",
) -> str | None:
    """``"must be an integer in [1, 64], got 0"`` when ``value`` is outside the range, else None.

    Bools, strings, None and NaN are always rejected; ``integer=True`` also rejects floats.
    """
    if lo is None and hi is None:
        raise TypeError("require_range needs lo, hi or both")
    rng = fmt_range(lo, hi, lo_open, hi_open)
    if note:
        rng = f"{rng} ({note})"
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "an integer" if integer else "a number"
        return f"must be {what} {rng}, got {value!r}"
    num = typing.cast(float, value)  # a Real; compared as is, so big ints stay exact
    # Written as "ok" conditions so that NaN (which fails every comparison) is rejected.
    ok = True
    if lo is not None:
        ok = ok and (num > lo if lo_open else num >= lo)
    if hi is not None:
        ok = ok and (num < hi if hi_open else num <= hi)
    if not ok:
        what = "an integer " if integer else ""
        return f"must be {what}{rng}, got {value}"
    return None


class RangeFlags(TypedDict, total=False):
    """The keyword options of a range besides its bounds, as :func:`range_problem` takes them
    (``require_range`` and ``Range`` pass them on unchanged, so they are declared once)."""

    lo_open: bool
    hi_open: bool
    integer: bool
    note: str


def require_range(
    value: object,
    where: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    **flags: Unpack[RangeFlags],
) -> None:
    """Raise ConfigError unless ``value`` is a number in the given range (used in __post_init__).

    The message names the field, the range in interval notation and the value, e.g.
    ``train_generator.epochs: must be an integer in [1, 1000], got 0``; ``note`` (e.g.
    ``"0 = off"``) is added in parentheses after the range.
    """
    problem = range_problem(value, lo=lo, hi=hi, **flags)
    if problem:
        raise ConfigError(f"{where}: {problem}")


class FieldProblem(ValueError):
    """Raised by a field validator; :func:`build_config` prefixes the dotted key.

    ``at`` names a key inside the field's value (a mapping's key), appended to the dotted key:
    ``FieldProblem("must be ...", at=("num_leaves",))`` on ``base`` reads
    ``train_weakness.base.num_leaves: must be ...``.
    """

    def __init__(self, message: str, *, at: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.at = at


def Range(lo: float | None = None, hi: float | None = None, **flags: Unpack[RangeFlags]) -> Any:
    """Annotated metadata: the field must be a number in the range (message as require_range).

    Runs before pydantic's type check, so the message quotes the value as written in params and
    says both the type and the range: ``must be an integer in [1, 3650], got 2.0``.
    """
    from pydantic import BeforeValidator

    def check(value: Any) -> Any:
        problem = range_problem(value, lo=lo, hi=hi, **flags)
        if problem:
            raise FieldProblem(problem)
        return value

    return BeforeValidator(check)


def OneOf(allowed: Iterable[str], *, each: bool = False, non_empty: bool = True) -> Any:
    """Annotated metadata: the value (``each=True``: every item of a list) is one of ``allowed``."""
    from pydantic import AfterValidator

    choices = tuple(allowed)

    def check(value: Any) -> Any:
        items = list(value) if each else [value]
        if each and non_empty and not items:
            raise FieldProblem(f"must be a non-empty list of {list(choices)}, got []")
        bad = [v for v in items if v not in choices]
        if bad:
            raise FieldProblem(f"must be one of {list(choices)}, got {bad[0]!r}")
        if each and len(set(items)) != len(items):
            raise FieldProblem(f"must not repeat a value, got {items}")
        return value

    return AfterValidator(check)


# --------------------------------------------------------------------------- build_config


@functools.cache
def _adapter(cls: type) -> Any:
    from pydantic import TypeAdapter

    _forbid_extra(cls)
    return TypeAdapter(cls)


def _forbid_extra(cls: type) -> None:
    """Give a dataclass (and the dataclasses in its fields) ``extra='forbid'`` unless set."""
    from pydantic import ConfigDict

    if not dataclasses.is_dataclass(cls) or "__pydantic_config__" in cls.__dict__:
        return
    cls.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    for hint in typing.get_type_hints(cls).values():
        for inner in _types_in(hint):
            _forbid_extra(inner)


def _types_in(hint: Any) -> list[type]:
    out: list[type] = []
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        out.append(hint)
    for arg in typing.get_args(hint):
        out.extend(_types_in(arg))
    return out


def _is_tag(part: Any) -> bool:
    """A step of pydantic's error location that is not a params key (a union / validator tag)."""
    return isinstance(part, str) and ("[" in part or part in ("function-after", "tagged-union"))


def _loc_text(where: str, loc: tuple[Any, ...]) -> str:
    text = where
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not _is_tag(part):
            text += f".{part}"
    return text


def _hint_at(cls: Any, loc: tuple[Any, ...]) -> Any:
    """The type hint of the field ``loc`` leads to (None when it leaves the dataclasses).

    A list position (``topics[1]``) or a mapping's key (``counted.hour``) leads to the item's
    type, so an unknown key inside a list item still lists what that item allows."""
    node = cls
    for part in loc:
        if _is_tag(part):
            continue
        if typing.get_origin(node) in (dict, Mapping):
            node = typing.get_args(node)[1]  # a key of the mapping: its value type
            continue
        if isinstance(part, int):
            continue  # a position: _types_in looks inside tuple[X, ...] / list[X]
        dcs = _types_in(node)
        if not dcs:
            return None
        hints = typing.get_type_hints(dcs[0], include_extras=False)
        if part not in hints:
            return None
        node = hints[part]
    return node


def _fields_at(cls: Any, loc: tuple[Any, ...]) -> list[str]:
    """Field names of the dataclass reached by ``loc`` (for "allowed:" in unknown-key errors)."""
    dcs = _types_in(_hint_at(cls, loc))
    return [f.name for f in dataclasses.fields(dcs[0])] if dcs else []


def _literal_values(hint: Any) -> list[Any] | None:
    if typing.get_origin(hint) is typing.Literal:
        return list(typing.get_args(hint))
    for arg in typing.get_args(hint):
        found = _literal_values(arg)
        if found:
            return found
    return None


_TYPE_WORDS = {
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "tuple_type": "a list",
    "list_type": "a list",
    "dict_type": "a mapping",
    "dataclass_type": "a mapping",
    "dataclass_exact_type": "a mapping",
    "finite_number": "a finite number",
}


def format_error(exc: Any, where: str, cls: Any = None) -> str:
    """One line from a pydantic ValidationError: dotted key, what is allowed, the bad value."""
    errors = exc.errors()
    # A wrong value first, then missing keys: a partial mapping (a test, a one-key override)
    # is told about the value it holds rather than about the keys it leaves out.
    errors = sorted(errors, key=lambda e: e["type"] == "missing")
    first = errors[0]
    kind, loc, value = first["type"], tuple(first["loc"]), first.get("input")
    key = _loc_text(where, loc)
    ctx = first.get("ctx") or {}
    error = ctx.get("error")
    if isinstance(error, ConfigError):
        line = str(error)  # a __post_init__ rule: already names its dotted key
    elif isinstance(error, FieldProblem):
        line = f"{_loc_text(where, loc + error.at)}: {error}"
    elif isinstance(error, ValueError) and kind == "value_error":
        line = f"{key}: {error}"
    elif kind == "missing":
        # where="" and a key missing at the root leave no key to name before it
        parent = _loc_text(where, loc[:-1])
        line = f"{parent + ': ' if parent else ''}missing required key '{loc[-1]}'"
    elif kind in ("extra_forbidden", "unexpected_keyword_argument"):
        allowed = _fields_at(cls, loc[:-1]) if cls is not None else []
        line = f"{key}: unknown key; allowed: {allowed}"
    elif kind == "literal_error":
        choices = _literal_values(_hint_at(cls, loc)) if cls is not None else None
        shown = str(choices) if choices else f"[{ctx.get('expected')}]"
        line = f"{key}: must be one of {shown}, got {value!r}"
    elif kind in _TYPE_WORDS:
        line = f"{key}: must be {_TYPE_WORDS[kind]}, got {value!r}"
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sign = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<="}.get(
            kind, "<"
        )
        bound = next(iter(ctx.values()), "?")
        line = f"{key}: must be {sign} {bound}, got {value!r}"
    else:
        line = f"{key}: {first['msg']}, got {value!r}"
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more problem(s))"
    return line


def _plain(value: Any) -> Any:
    """YAML values as JSON can carry them (dates become ISO text, tuples lists)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return value.item()  # numpy scalars
    return value


def build_config(cls: type[T], values: Mapping[str, Any], where: str) -> T:
    """Build a frozen dataclass from a params mapping; ConfigError (one line) when invalid.

    Validation is pydantic's, in strict JSON mode: YAML lists become tuples, dicts nested
    dataclasses, but ``"5"``, ``true`` or ``2.0`` never pass for an integer, and unknown or
    missing keys are errors. ``__post_init__`` rules still run (and may raise ConfigError).
    """
    from pydantic import ValidationError

    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: must be a mapping, got {values!r}")
    try:
        blob = json.dumps(_plain(values), allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{where}: values must be plain YAML scalars, lists and maps: {exc}"
        ) from None
    try:
        return typing.cast(T, _adapter(cls).validate_json(blob, strict=True))
    except ValidationError as exc:
        raise ConfigError(format_error(exc, where, cls)) from None


def check_value(hint: Any, value: Any, where: str) -> Any:
    """Validate one value (e.g. ``Annotated[float, Range(0, 1)]``) with the same messages."""
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(hint).validate_json(json.dumps(_plain(value)), strict=True)
    except ValidationError as exc:
        raise ConfigError(format_error(exc, where)) from None
