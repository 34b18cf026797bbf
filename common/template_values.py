"""How values print in rendered templates, the way Kestra's Pebble prints them:
KestraDateTime, ISO-8601 datetimes, compact JSON, and RawText for `| raw`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from jinja2.runtime import Undefined

from harrier.common.durations import format_duration
from harrier.common.javadate import format_java


class KestraDateTime(datetime):
    """A datetime that prints the way Kestra prints an Instant or ZonedDateTime
    (2024-01-31T10:00:00.123Z), also when concatenated with `~` or `string`.

    render() converts context datetimes to it on access, and the date
    functions return it, so context builders may pass plain aware datetimes.
    """

    @classmethod
    def of(cls, value: datetime) -> KestraDateTime:
        if isinstance(value, KestraDateTime):
            return value
        tz = value.tzinfo or UTC
        return cls(value.year, value.month, value.day, value.hour, value.minute,
                   value.second, value.microsecond, tzinfo=tz, fold=value.fold)

    def __str__(self) -> str:
        return kestra_iso(self)


def kestra_iso(value: datetime) -> str:
    """ISO-8601 as Java prints it: seconds always, fraction in groups of three
    digits, Z for UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    offset = value.utcoffset()
    text = f"{value.year:04d}" + value.strftime("-%m-%dT%H:%M:%S")  # %Y: no padding < 1000
    micro = value.microsecond
    if micro:
        text += "." + (f"{micro // 1000:03d}" if micro % 1000 == 0 else f"{micro:06d}")
    if not offset:
        return text + "Z"
    return text + format_java(value, "XXX")


def to_text(value: Any) -> str:
    """How a value prints inside a rendered string (Pebble's conventions)."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return kestra_iso(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Mapping | list | tuple):
        return to_json(value)
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, datetime | date | time | timedelta):
        return to_text(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(value: Any) -> str:
    """Compact JSON like Jackson writes it; datetimes as ISO-8601."""
    return json.dumps(value, default=_json_default, separators=(",", ":"), ensure_ascii=False)


class RawText(str):
    """Text the flow author marked with `| raw`: not escaped in shell mode."""
