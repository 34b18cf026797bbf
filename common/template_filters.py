"""Kestra's Pebble filters, tests and functions (date, dateAdd, json, number,
replace, split, slugify, substring*, ...) for the templating environment."""

from __future__ import annotations

import base64
import calendar
import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from jinja2.runtime import Undefined

from harrier.common.javadate import format_java, parse_java, zone
from harrier.common.template_values import KestraDateTime, RawText, to_json, to_text


def _check(value: Any) -> Any:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


def to_datetime(value: Any, tz: Any = UTC, existing_format: str | None = None) -> datetime:
    """What Kestra's date filters accept: datetimes, dates (noon), ISO strings
    (with Z or an offset, or local in `tz`), epoch seconds."""
    _check(value)
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, 12, tzinfo=tz)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz)
    if isinstance(value, str):
        text = value.strip()
        try:
            if existing_format is not None:
                parsed = parse_java(text, existing_format)
            else:
                parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a date (expected ISO-8601, e.g. "
                             f"2024-01-31T10:00:00Z): {exc}") from exc
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)
    raise ValueError(f"cannot use {type(value).__name__} {value!r} as a date")


def _date(value: Any, format: str = "iso", timeZone: str | None = None,
          existingFormat: str | None = None, locale: str | None = None) -> str:
    # locale is accepted for Kestra compatibility; names always print in English.
    tz = zone(timeZone)
    dt = to_datetime(value, tz, existingFormat)
    return format_java(dt.astimezone(tz), format)


_TIME_UNITS = {
    "NANOS": timedelta(microseconds=0.001), "MICROS": timedelta(microseconds=1),
    "MILLIS": timedelta(milliseconds=1), "SECONDS": timedelta(seconds=1),
    "MINUTES": timedelta(minutes=1), "HOURS": timedelta(hours=1),
    "HALF_DAYS": timedelta(hours=12),
}
_DATE_UNITS = {"DAYS": (1, 0), "WEEKS": (7, 0), "MONTHS": (0, 1), "YEARS": (0, 12),
               "DECADES": (0, 120), "CENTURIES": (0, 1200)}


def _add_months(dt: datetime, months: int) -> datetime:
    index = dt.year * 12 + dt.month - 1 + months
    year, month = divmod(index, 12)

    day = min(dt.day, calendar.monthrange(year, month + 1)[1])
    return dt.replace(year=year, month=month + 1, day=day)


def date_add(value: Any, amount: int, unit: str) -> KestraDateTime:
    """Kestra's dateAdd: time units add exact durations, DAYS and longer add
    calendar amounts in the value's zone (months clamp to the last day)."""
    dt = to_datetime(value)
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValueError(f"dateAdd amount must be an integer, got {amount!r}")
    key = str(unit).upper()
    if key in _TIME_UNITS:
        tz = dt.tzinfo
        result = (dt.astimezone(UTC) + amount * _TIME_UNITS[key]).astimezone(tz)
    elif key in _DATE_UNITS:
        days, months = _DATE_UNITS[key]
        result = _add_months(dt, amount * months) if months else dt + timedelta(days=amount * days)
    else:
        known = ", ".join([*_TIME_UNITS, *_DATE_UNITS])
        raise ValueError(f"dateAdd: unknown unit {unit!r} (one of {known})")
    return KestraDateTime.of(result)


def _epoch(value: Any, scale: int) -> int:
    dt = to_datetime(value)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return micros * scale // 1_000_000 if scale <= 1_000_000 else micros * (scale // 1_000_000)


def _from_json(text: Any) -> Any:
    _check(text)
    if not isinstance(text, str | bytes):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno} column "
                         f"{exc.colno}): {str(text)[:80]!r}") from exc


def _now(timeZone: str | None = None) -> KestraDateTime:
    return KestraDateTime.of(datetime.now(UTC).astimezone(zone(timeZone)))


def _number(value: Any, type: str | None = None) -> int | float | Decimal:
    _check(value)
    text = str(value).strip()
    kind = (type or "").upper()
    try:
        if kind in ("INT", "INTEGER", "LONG", "BIGINTEGER"):
            return int(text)
        if kind in ("FLOAT", "DOUBLE"):
            return float(text)
        if kind == "BIGDECIMAL":
            return Decimal(text)
        return int(text) if re.fullmatch(r"[-+]?\d+", text) else float(text)
    except (ValueError, ArithmeticError) as exc:
        raise ValueError(f"{value!r} is not a number") from exc


def _replace(value: Any, search: Any, replacement: Any = None, count: int | None = None,
             regexp: bool = False) -> str:
    text = to_text(_check(value))
    pairs = (list(search.items()) if isinstance(search, Mapping)
             else [(search, "" if replacement is None else replacement)])
    for old, new in pairs:
        if regexp:
            text = re.sub(str(old), to_text(new), text, count=count or 0)
        else:
            text = text.replace(str(old), to_text(new), -1 if count is None else count)
    return text


def _split(value: Any, delimiter: str, limit: int | None = None) -> list[str]:
    text = to_text(_check(value))
    return text.split(delimiter) if not limit or limit < 1 else text.split(delimiter, limit - 1)


def _slugify(value: Any) -> str:

    text = unicodedata.normalize("NFKD", to_text(_check(value)))
    text = text.encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def _before(value: Any, sep: str, last: bool = False) -> str:
    text = to_text(_check(value))
    i = text.rfind(sep) if last else text.find(sep)
    return text if i < 0 else text[:i]


def _after(value: Any, sep: str, last: bool = False) -> str:
    text = to_text(_check(value))
    i = text.rfind(sep) if last else text.find(sep)
    return "" if i < 0 else text[i + len(sep):]


def _distinct(value: Any) -> list[Any]:
    out: list[Any] = []
    for item in _check(value):
        if item not in out:
            out.append(item)
    return out


def _abbreviate(value: Any, length: int) -> str:
    text = to_text(_check(value))
    if len(text) <= length:
        return text
    return text[: max(length - 3, 0)] + "..." if length >= 3 else text[:length]


def _chunk(value: Any, size: int) -> list[list[Any]]:
    items = list(_check(value))
    return [items[i:i + size] for i in range(0, len(items), size)]


def _coalesce(value: Any, fallback: Any) -> Any:
    return fallback if isinstance(value, Undefined) or value is None else value


def _raw(value: Any) -> RawText:
    """`{{ vars.flags | raw }}`: print without shell escaping. Only for text the
    flow author wrote (a variable holding several flags); never for inputs,
    trigger bodies or outputs, since unescaped they can add shell syntax."""
    return RawText(to_text(_check(value)))


FILTERS: dict[str, Callable[..., Any]] = {
    "date": _date,
    "dateAdd": date_add,
    "timestamp": lambda v: _epoch(v, 1),
    "timestampMilli": lambda v: _epoch(v, 1000),
    "timestampMillis": lambda v: _epoch(v, 1000),
    "timestampMicro": lambda v: _epoch(v, 1_000_000),
    "timestampNano": lambda v: _epoch(v, 1_000_000_000),
    "json": lambda v: to_json(_check(v)),
    "toJson": lambda v: to_json(_check(v)),
    "fromJson": _from_json,
    "number": _number,
    "replace": _replace,
    "split": _split,
    "slugify": _slugify,
    "keys": lambda v: list(_check(v).keys()),
    "values": lambda v: list(_check(v).values()),
    "substringBefore": lambda v, s: _before(v, s),
    "substringBeforeLast": lambda v, s: _before(v, s, last=True),
    "substringAfter": lambda v, s: _after(v, s),
    "substringAfterLast": lambda v, s: _after(v, s, last=True),
    "startsWith": lambda v, s: to_text(_check(v)).startswith(s),
    "endsWith": lambda v, s: to_text(_check(v)).endswith(s),
    "abbreviate": _abbreviate,
    "distinct": _distinct,
    "chunk": _chunk,
    "rsort": lambda v: sorted(_check(v), reverse=True),
    "base64encode": lambda v: base64.b64encode(to_text(_check(v)).encode()).decode(),
    "base64decode": lambda v: base64.b64decode(to_text(_check(v))).decode(),
    "sha256": lambda v: hashlib.sha256(to_text(_check(v)).encode()).hexdigest(),
    "md5": lambda v: hashlib.md5(to_text(_check(v)).encode()).hexdigest(),
    "raw": _raw,
    "_coalesce": _coalesce,
}

TESTS: dict[str, Callable[..., bool]] = {
    "null": lambda v: v is None,
    "empty": lambda v: v is None or (hasattr(v, "__len__") and len(v) == 0),
    "map": lambda v: isinstance(v, Mapping),
    "json": lambda v: _is_json(v),
}


def _is_json(value: Any) -> bool:
    """Pebble's `is json`: a string that parses as JSON."""
    if not isinstance(value, str):
        return False
    try:
        json.loads(value)
    except ValueError:
        return False
    return True

def _loop_outputs(outputs: Any = None, name: Any = None) -> list[Any]:
    """Kestra 2.0's loopOutputs(outputs.loop.outputs, 'name'): one declared
    output of every iteration of a Loop, as a list (None where it is missing)."""
    if outputs is None:
        raise ValueError("The 'loopOutputs' function expects a non-null argument 'outputs'.")
    if not isinstance(outputs, Sequence) or isinstance(outputs, str):
        raise ValueError("The 'loopOutputs' function expects 'outputs' to be a list.")
    if not isinstance(name, str):
        raise ValueError("The 'loopOutputs' function expects 'name' to be a string.")
    found: list[Any] = []
    for entry in outputs:
        values = entry.get("outputs") if isinstance(entry, Mapping) else None
        found.append(values.get(name) if isinstance(values, Mapping) else None)
    return found


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "now": _now,
    "loopOutputs": _loop_outputs,
    "json": _from_json,
    "fromJson": _from_json,
}
