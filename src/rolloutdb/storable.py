"""What the database can hold, one rule for every write path (the store's statements and bulk inserts, the
recorder's calls): JSON values without NaN or infinities, and strings without NUL characters (PostgreSQL
cannot store them, in JSON or in text columns; SQLite is held to the same rule, so that a value is
refused or kept the same way on both) or lone surrogates (not text in any encoding: no driver sends them),
and no longer than their column (PostgreSQL refuses more, SQLite would keep it). A refused value raises ``Unstorable``, which says where inside
the value the problem is; callers name the field."""

from __future__ import annotations

import dataclasses
import math
from types import NoneType
from typing import Any

import orjson

from .errors import InvalidInputError

JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY  # what json.dumps takes, and arrays
NUL = "\x00"


class Unstorable(ValueError):
    """A value the database cannot hold: ``where`` is the path inside it ("" for the value itself)."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}" if where else reason)
        self.where, self.reason = where, reason

    def at(self, field: str) -> str:
        """The message, for the value of ``field``."""
        where = field + (self.where if self.where.startswith("[") or not self.where else f".{self.where}")
        return f"{where}: {self.reason}"


def json_text(value: Any) -> str:
    """``value`` as JSON, or Unstorable when it holds something JSON or PostgreSQL cannot."""
    try:
        text = orjson.dumps(value, option=JSON_OPTIONS).decode()  # str: searched faster than bytes
    except TypeError as exc:
        raise _problem(value, "") or Unstorable("", str(exc)) from None
    # orjson writes NaN and infinities as null and a NUL as \u0000: look closer only when either may be
    # there, that is when there are more nulls than the value's own None fields (a record's are counted in C).
    if ("\\" in text and "\\u0000" in text) or ("null" in text and text.count("null") > (
            list(map(type, value.values())).count(NoneType) if type(value) is dict else 0)):
        problem = _problem(value, "")
        if problem is not None:
            raise problem
    return text


def canonical_json(value: Any) -> bytes:
    """``value`` as JSON in one spelling (keys sorted, no spaces), for a checksum: equal values, equal bytes."""
    return orjson.dumps(value, option=JSON_OPTIONS | orjson.OPT_SORT_KEYS)


def require_storable(field: str, value: Any, table: str | None = None) -> None:
    """InvalidInputError naming ``field`` (and ``table``, as a batch written in bulk names it) unless the database
    can hold ``value``: for a value kept before it is written, so that it is refused where it is given rather than
    at every later write."""
    try:
        json_text(value)
    except Unstorable as exc:
        raise InvalidInputError(f"cannot store {'' if table is None else f'{table}: '}{exc.at(field)}") from None


def check_text(value: str, length: int | None = None) -> str:
    """A text value as it is, or Unstorable when it holds a NUL character, is not text at all (a lone
    surrogate, which no encoding of text holds) or is longer than ``length`` characters (its column's)."""
    problem = _text_problem(value, "")
    if problem is not None:
        raise problem
    if length is not None and len(value) > length:
        raise _too_long(len(value), length)
    return value


def check_texts(values: list[str | None], length: int | None = None) -> None:
    """``check_text`` for a column of values (None for SQL NULL)."""
    try:
        joined = "".join(values)  # one C-level pass when there is no NULL among them
    except TypeError:
        values = [value for value in values if value is not None]
        joined = "".join(values)
    check_text(joined)
    if length is not None and (longest := max(map(len, values), default=0)) > length:
        raise _too_long(longest, length)


def _too_long(found: int, length: int) -> Unstorable:
    return Unstorable("", f"a string of {found:,} characters is longer than the {length:,} its column holds")


def _text_problem(value: str, where: str) -> Unstorable | None:
    if NUL in value:
        return _nul(where)
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            return Unstorable(where, f"a string holds {value[exc.start]!r}, a lone surrogate, which is not text")
    return None


def _problem(value: Any, where: str) -> Unstorable | None:
    """The first thing inside ``value`` the database cannot hold, or None."""
    if isinstance(value, str):
        return _text_problem(value, where)
    if isinstance(value, float):
        return None if math.isfinite(value) else Unstorable(
            where, f"{value!r} is not a JSON number (NaN and infinities cannot be stored: use null)")
    if value is None or isinstance(value, (bool, int)):
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and NUL in key:
                return _nul(where)
            inner = f"{where}.{key}" if where else str(key)
            if (problem := _problem(item, inner)) is not None:
                return problem
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if (problem := _problem(item, f"{where}[{index}]")) is not None:
                return problem
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _problem(dataclasses.asdict(value), where)
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy arrays and scalars
        return _problem(value.tolist(), where)
    try:
        orjson.dumps(value, option=JSON_OPTIONS)  # dates, UUIDs, enums: JSON as they are
    except TypeError:
        return Unstorable(where, f"{type(value).__name__} is not JSON")
    return None


def _nul(where: str) -> Unstorable:
    return Unstorable(where, "a string holds a NUL character (\\x00), which PostgreSQL cannot store")


__all__ = ["JSON_OPTIONS", "Unstorable", "check_text", "check_texts", "json_text", "require_storable"]
