"""How a rendered condition (If, Fail, runIf) reads as true or false, as in
Kestra's TruthUtils: falsy are exactly "false", "0", "-0" and the empty string
(after trimming, as Kestra trims rendered properties); anything else is true."""

from __future__ import annotations

from typing import Any

_FALSE = ("false", "0", "-0", "")


def is_true(value: Any) -> bool:
    if value is None:
        return False  # renders to the empty string
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value == 0:
        return str(value) in ("0", "-0")  # 0.0 renders "0.0" in Kestra: truthy
    return str(value).strip() not in _FALSE
