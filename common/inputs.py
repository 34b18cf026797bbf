"""A flow's typed inputs as Kestra declares them (InputSpec), and turning the values an
execution is given into typed Python values (per-type conversions in input_coercion)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from harrier.common.durations import format_duration
from harrier.common.errors import InputError
from harrier.common.input_coercion import (
    Mismatch,
    as_bool,
    as_date,
    as_datetime,
    as_duration,
    as_email,
    as_float,
    as_int,
    as_json,
    as_list,
    as_string,
    as_time,
    as_uri,
    as_yaml,
)
from harrier.common.templating import kestra_iso


class InputType(StrEnum):
    STRING = "STRING"
    INT = "INT"
    FLOAT = "FLOAT"
    BOOLEAN = "BOOLEAN"
    BOOL = "BOOL"
    DATE = "DATE"
    DATETIME = "DATETIME"
    TIME = "TIME"
    DURATION = "DURATION"
    JSON = "JSON"
    YAML = "YAML"
    SELECT = "SELECT"
    ENUM = "ENUM"  # Kestra's older name for SELECT
    MULTISELECT = "MULTISELECT"
    ARRAY = "ARRAY"
    URI = "URI"
    EMAIL = "EMAIL"
    SECRET = "SECRET"
    FILE = "FILE"  # a kestra:// URI (an API upload is stored), or a path or URI string


_CHOICE_TYPES = {InputType.SELECT, InputType.ENUM, InputType.MULTISELECT}
_TEXT_TYPES = {InputType.STRING, InputType.SECRET, InputType.EMAIL}
_RANGE_TYPES = {InputType.INT, InputType.FLOAT, InputType.DURATION}
_TEMPORAL_TYPES = {InputType.DATE, InputType.DATETIME, InputType.TIME}
_ID = re.compile(r"[a-zA-Z0-9][.a-zA-Z0-9_-]*")

EXPECTED: dict[InputType, str] = {
    InputType.STRING: "STRING",
    InputType.INT: "INT (a whole number)",
    InputType.FLOAT: "FLOAT (a number)",
    InputType.BOOLEAN: "BOOLEAN (true or false)",
    InputType.BOOL: "BOOL (true or false)",
    InputType.DATE: "DATE (yyyy-MM-dd)",
    InputType.DATETIME: "DATETIME (ISO-8601, e.g. 2024-01-31T10:00:00Z)",
    InputType.TIME: "TIME (HH:mm or HH:mm:ss)",
    InputType.DURATION: "DURATION (ISO-8601, e.g. PT5M)",
    InputType.JSON: "JSON",
    InputType.YAML: "YAML",
    InputType.MULTISELECT: "MULTISELECT (a JSON array of the allowed values)",
    InputType.ARRAY: "ARRAY (a JSON array, e.g. [1, 2])",
    InputType.URI: "URI with a scheme (e.g. s3a://bucket/key)",
    InputType.EMAIL: "EMAIL (name@example.com)",
    InputType.SECRET: "SECRET (a string)",
    InputType.FILE: "FILE (a path or URI)",
}


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


class InputSpec(BaseModel):
    """One entry of a flow's `inputs:` list."""

    model_config = ConfigDict(defer_build=True,
        extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=True
    )

    id: str
    type: InputType
    description: str | None = None
    display_name: str | None = None
    required: bool = True
    defaults: Any = None
    values: list[str] | None = None
    allow_custom_value: bool = False
    item_type: InputType | None = None
    validator: str | None = None
    min_value: Any = Field(default=None, alias="min")
    max_value: Any = Field(default=None, alias="max")
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=0)
    after: Any = None
    before: Any = None

    @model_validator(mode="before")
    @classmethod
    def _old_spellings(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        if "name" in data:
            if "id" in data:
                raise ValueError("give the input an `id` (`name` is Kestra's old spelling), "
                                 "not both")
            data["id"] = data.pop("name")
        for key in ("type", "itemType", "item_type"):
            if isinstance(data.get(key), str):
                data[key] = data[key].upper()
        return data

    @model_validator(mode="after")
    def _consistent(self) -> InputSpec:
        kind = self.type
        if not _ID.fullmatch(self.id):
            raise ValueError(f"input id {self.id!r} must match {_ID.pattern}")
        if kind in _CHOICE_TYPES and not self.values:
            raise ValueError(f"input {self.id!r}: {kind} needs a non-empty `values` list")
        if kind not in _CHOICE_TYPES and self.values is not None:
            raise ValueError(f"input {self.id!r}: `values` applies to SELECT and MULTISELECT, "
                             f"not {kind}")
        if kind == InputType.ARRAY:
            if self.item_type is None:
                raise ValueError(f"input {self.id!r}: ARRAY needs an `itemType` (e.g. STRING)")
            if self.item_type in {InputType.ARRAY, InputType.MULTISELECT, InputType.FILE,
                                  *_CHOICE_TYPES}:
                raise ValueError(f"input {self.id!r}: itemType {self.item_type} is not allowed")
        elif self.item_type is not None:
            raise ValueError(f"input {self.id!r}: `itemType` applies to ARRAY, not {kind}")
        if self.validator is not None:
            if kind not in _TEXT_TYPES:
                raise ValueError(f"input {self.id!r}: `validator` applies to STRING, not {kind}")
            try:
                re.compile(self.validator)
            except re.error as exc:
                raise ValueError(f"input {self.id!r}: validator {self.validator!r} is not a "
                                 f"regular expression ({exc})") from exc
        if (self.min_length is not None or self.max_length is not None) and \
                kind not in _TEXT_TYPES:
            raise ValueError(f"input {self.id!r}: minLength/maxLength apply to STRING, not {kind}")
        self._check_bounds("min_value", "max_value", "min/max", _RANGE_TYPES)
        self._check_bounds("after", "before", "after/before", _TEMPORAL_TYPES)
        if self.defaults is not None and not _is_template(self.defaults):
            try:
                _coerce(self, self.defaults, check_bounds=True)
            except Mismatch as exc:
                raise ValueError(f"input {self.id!r}: defaults {_show(self.defaults)} is not "
                                 f"valid: expected {exc}") from exc
        return self

    def _check_bounds(self, low_name: str, high_name: str, label: str,
                      kinds: set[InputType]) -> None:
        low, high = getattr(self, low_name), getattr(self, high_name)
        if low is None and high is None:
            return
        if self.type not in kinds:
            raise ValueError(f"input {self.id!r}: {label} apply to "
                             f"{', '.join(sorted(kinds))}, not {self.type}")
        coerced = []
        for bound in (low, high):
            try:
                coerced.append(None if bound is None else _coerce(self, bound,
                                                                  check_bounds=False))
            except Mismatch as exc:
                raise ValueError(f"input {self.id!r}: bound {_show(bound)} is not valid: "
                                 f"expected {exc}") from exc
        # Stored coerced, so comparisons at coercion time are between like types.
        object.__setattr__(self, low_name, coerced[0])
        object.__setattr__(self, high_name, coerced[1])
        if coerced[0] is not None and coerced[1] is not None and coerced[0] > coerced[1]:
            raise ValueError(f"input {self.id!r}: {label}: {_show(low)} is after {_show(high)}")

    @property
    def expected(self) -> str:
        if self.type in (InputType.SELECT, InputType.ENUM):
            return "one of " + ", ".join(self.values or [])
        if self.type == InputType.ARRAY and self.item_type is not None:
            return f"ARRAY of {self.item_type} (a JSON array, e.g. [1, 2])"
        return EXPECTED[self.type]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_SIMPLE: dict[InputType, Callable[[Any], Any]] = {
    InputType.STRING: as_string,
    InputType.SECRET: as_string,
    InputType.FILE: as_string,
    InputType.INT: as_int,
    InputType.FLOAT: as_float,
    InputType.BOOLEAN: as_bool,
    InputType.BOOL: as_bool,
    InputType.DATE: as_date,
    InputType.DATETIME: as_datetime,
    InputType.TIME: as_time,
    InputType.DURATION: as_duration,
    InputType.JSON: as_json,
    InputType.YAML: as_yaml,
    InputType.URI: as_uri,
    InputType.EMAIL: as_email,
}


def _coerce(spec: InputSpec, value: Any, *, check_bounds: bool = True) -> Any:
    """The typed value, or Mismatch whose message completes 'expected ...'."""
    kind = spec.type
    if kind in (InputType.SELECT, InputType.ENUM):
        choice = as_string(value) if not isinstance(value, str) else value
        if choice not in (spec.values or []) and not spec.allow_custom_value:
            raise Mismatch(spec.expected)
        return choice
    if kind == InputType.MULTISELECT:
        try:
            items = as_list(value)
        except Mismatch as exc:
            raise Mismatch(spec.expected) from exc
        bad = [i for i in items if not isinstance(i, str) or (
            i not in (spec.values or []) and not spec.allow_custom_value)]
        if bad:
            raise Mismatch(f"values among {', '.join(spec.values or [])} "
                            f"(not {', '.join(map(repr, bad))})")
        return items
    if kind == InputType.ARRAY:
        assert spec.item_type is not None
        try:
            items = as_list(value)
        except Mismatch as exc:
            raise Mismatch(spec.expected) from exc
        out = []
        for index, item in enumerate(items):
            try:
                out.append(_SIMPLE[spec.item_type](item))
            except Mismatch as exc:
                raise Mismatch(f"{spec.expected}; item [{index}] {_show(item)} is not "
                                f"{EXPECTED[spec.item_type]}") from exc
        return out
    try:
        result = _SIMPLE[kind](value)
    except Mismatch as exc:
        # A YAML input over the limits says so; other mismatches name the type.
        detail = str(exc) if kind == InputType.YAML else ""
        raise Mismatch(detail or spec.expected) from exc
    if check_bounds:
        _check_range(spec, result)
    return result


def _check_range(spec: InputSpec, value: Any) -> None:
    if spec.min_value is not None and value < spec.min_value:
        raise Mismatch(f"{spec.expected} >= {_plain(spec.min_value)}")
    if spec.max_value is not None and value > spec.max_value:
        raise Mismatch(f"{spec.expected} <= {_plain(spec.max_value)}")
    if spec.after is not None and value <= spec.after:
        raise Mismatch(f"{spec.expected} after {_plain(spec.after)}")
    if spec.before is not None and value >= spec.before:
        raise Mismatch(f"{spec.expected} before {_plain(spec.before)}")
    if isinstance(value, str):
        if spec.validator is not None and not re.fullmatch(spec.validator, value):
            raise Mismatch(f"{spec.expected} matching {spec.validator}")
        if spec.min_length is not None and len(value) < spec.min_length:
            raise Mismatch(f"{spec.expected} of at least {spec.min_length} characters")
        if spec.max_length is not None and len(value) > spec.max_length:
            raise Mismatch(f"{spec.expected} of at most {spec.max_length} characters")


def _plain(value: Any) -> str:
    return str(to_json_value(value))


def _given(spec: InputSpec, value: Any) -> str:
    # Never echo a secret back into an error message or a log.
    return "a value" if spec.type == InputType.SECRET else _show(value)


def coerce_inputs(specs: Sequence[InputSpec], given: Mapping[str, Any], *,
                  now: datetime | None = None) -> dict[str, Any]:
    """Typed values for every declared input, from what the caller gave
    (strings from the CLI or a form, or JSON values) and the declared defaults.

    Collects every problem and raises InputError(problems). Defaults that are
    templates ("{{ now() }}") are returned as strings for the caller to render.
    Inputs that are optional, not given and without defaults map to None.
    `now` is accepted for callers that pin the clock; coercion does not read it.
    """
    del now  # nothing here depends on the clock; kept for a stable signature
    problems: list[str] = []
    known = {spec.id for spec in specs}
    for name in given:
        if name not in known:
            listing = ", ".join(spec.id for spec in specs) or "none"
            problems.append(f"unknown input {name!r} (this flow's inputs: {listing})")
    values: dict[str, Any] = {}
    for spec in specs:
        value = given.get(spec.id)
        if value is None:
            if spec.defaults is None:
                if spec.required:
                    problems.append(f"input {spec.id!r}: required {spec.expected} was not "
                                    f"given and has no defaults")
                values[spec.id] = None
                continue
            if _is_template(spec.defaults):
                values[spec.id] = spec.defaults
                continue
            value = spec.defaults
        try:
            values[spec.id] = _coerce(spec, value)
        except Mismatch as exc:
            problems.append(f"input {spec.id!r}: expected {exc}, got {_given(spec, value)}")
    if problems:
        raise InputError(problems)
    return values


def to_json_value(value: Any) -> Any:
    """A JSON-ready form of one typed value (ISO dates, ISO-8601 durations)."""
    if isinstance(value, datetime):
        return kestra_iso(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    return value


def inputs_to_json(values: Mapping[str, Any]) -> dict[str, Any]:
    """Typed inputs as JSON-ready values, for storing and printing; what
    coerce_inputs accepts back unchanged."""
    return {name: to_json_value(value) for name, value in values.items()}
