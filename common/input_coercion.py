"""Converting one given input value (a CLI string, a JSON value, a form field) to
the Python type of one Kestra input type, or raising Mismatch."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import yaml

from harrier.common.durations import parse_duration
from harrier.common.yaml_source import YamlLimitExceeded, load_data


class Mismatch(ValueError):
    """A value is not of the expected type; the message says what was expected."""


def as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise Mismatch
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    # ASCII digits and blanks only: int() rejects some characters \s and \d accept.
    if isinstance(value, str) and re.fullmatch(r"[-+]?[0-9]+", value.strip(" \t\r\n")):
        return int(value.strip(" \t\r\n"))
    raise Mismatch


def as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise Mismatch
    try:
        number = float(value) if isinstance(value, int | float | Decimal | str) else math.nan
    except ValueError as exc:
        raise Mismatch from exc
    if not math.isfinite(number):
        raise Mismatch
    return number


_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise Mismatch


def as_date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError as exc:
            raise Mismatch from exc
    raise Mismatch


def as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and re.match(r"\d{4}-\d{2}-\d{2}[T ]\d", value.strip()):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise Mismatch from exc
    else:
        raise Mismatch
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def as_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?", value.strip()):
        try:
            return time.fromisoformat(value.strip())
        except ValueError as exc:
            raise Mismatch from exc
    raise Mismatch


def as_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise Mismatch from exc
    raise Mismatch


def as_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise Mismatch from exc
    return value


def as_yaml(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return load_data(value)
        except YamlLimitExceeded as exc:
            raise Mismatch(f"YAML within the limits ({exc})") from exc
        except yaml.YAMLError as exc:
            raise Mismatch from exc
    return value


def as_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # a JSON number given for a STRING input
    raise Mismatch


def as_uri(value: Any) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise Mismatch
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise Mismatch from exc
    if not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9+.-]*", parts.scheme) or not (
            parts.netloc or parts.path):
        raise Mismatch
    return value


def as_email(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        return value
    raise Mismatch


def as_list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise Mismatch from exc
        if isinstance(parsed, list):
            return parsed
    raise Mismatch
