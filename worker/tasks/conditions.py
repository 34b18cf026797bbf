"""How a rendered condition (If, Fail, runIf) reads as true or false, as in Kestra."""

from __future__ import annotations

from typing import Any

_FALSE = {"", "false", "0", "no", "null", "none"}


def is_true(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE
    return bool(value)
