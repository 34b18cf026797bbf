"""The KV store's model: a value kept per namespace and key, with an optional
expiry, as Kestra's KV store (kv() in templates, the kv.* tasks, the
/api/v1/namespaces/{namespace}/kv API, `harrier kv`). The stores keep it
(memory_store, redis_store); this module checks keys and values."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from harrier.common.durations import format_duration
from harrier.common.errors import HarrierError
from harrier.common.input_coercion import Mismatch, as_date, as_datetime, as_duration
from harrier.common.state import iso, now
from harrier.common.template_values import kestra_iso

# Kestra: a key starts with a letter or digit, then letters, digits, . _ -
KEY_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$")
NAMESPACE_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$")
MAX_KEY_LENGTH = 255
# A value is stored whole and read whole by every kv() call: keep it small.
MAX_VALUE_BYTES = 1024 * 1024
MAX_KEYS_LISTED = 10_000


class KVError(HarrierError, ValueError):
    """A bad key, namespace or value, or a missing key where one is required (a
    ValueError too, so a kv() call in a template fails as a template error)."""


class KVNotFound(KVError):
    """No (unexpired) value for that key."""


@dataclass
class KVEntry:
    namespace: str
    key: str
    value: Any
    description: str | None = None
    created: datetime | None = None
    updated: datetime | None = None
    expires: datetime | None = None
    # The kvType it was set with (kv.Set); None: read from the value (kv_type).
    type: str | None = None

    @property
    def expired(self) -> bool:
        return self.expires is not None and self.expires <= now()

    def to_json(self) -> dict[str, Any]:
        """Kestra's KVEntry (what the list API answers)."""
        return {"key": self.key, "description": self.description,
                "creationDate": iso(self.created) if self.created else None,
                "updateDate": iso(self.updated) if self.updated else None,
                "expirationDate": iso(self.expires) if self.expires else None}

    def to_doc(self) -> dict[str, Any]:
        doc = {**self.to_json(), "namespace": self.namespace, "value": self.value}
        return {**doc, "type": self.type} if self.type else doc

    @classmethod
    def from_doc(cls, data: dict[str, Any]) -> KVEntry:
        def when(name: str) -> datetime | None:
            text = data.get(name)
            return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None

        return cls(namespace=data["namespace"], key=data["key"], value=data.get("value"),
                   description=data.get("description"), created=when("creationDate"),
                   updated=when("updateDate"), expires=when("expirationDate"),
                   type=data.get("type"))


def check_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or not NAMESPACE_PATTERN.match(namespace) or \
            len(namespace) > MAX_KEY_LENGTH:
        raise KVError(f"KV namespace {str(namespace)[:80]!r} is not a valid namespace "
                      "(letters, digits, . _ -)")
    return namespace


def check_key(key: str) -> str:
    if not isinstance(key, str) or not KEY_PATTERN.match(key) or len(key) > MAX_KEY_LENGTH:
        raise KVError(f"KV key {str(key)[:80]!r} is invalid: a key starts with a letter or "
                      f"a digit and holds only letters, digits, '.', '_' and '-' (at most "
                      f"{MAX_KEY_LENGTH} characters)")
    return key


def new_entry(namespace: str, key: str, value: Any, *, ttl: timedelta | None = None,
              description: str | None = None, previous: KVEntry | None = None,
              kind: str | None = None) -> KVEntry:
    """A checked entry to store (`previous`: the one it replaces)."""
    check_namespace(namespace)
    check_key(key)
    try:
        size = len(json.dumps(value).encode())
    except (TypeError, ValueError) as exc:
        raise KVError(f"KV value of {key!r} cannot be stored as JSON: {exc}") from None
    if size > MAX_VALUE_BYTES:
        raise KVError(f"KV value of {key!r} is {size} bytes; at most {MAX_VALUE_BYTES}")
    if ttl is not None and ttl.total_seconds() <= 0:
        raise KVError(f"KV ttl of {key!r} must be positive")
    stamp = now()
    return KVEntry(namespace, key, value, description,
                   created=previous.created if previous and previous.created else stamp,
                   updated=stamp, expires=stamp + ttl if ttl is not None else None,
                   type=kind)


# Kestra's KVType (io.kestra.core.models.kv.KVType).
KV_TYPES = ("STRING", "NUMBER", "BOOLEAN", "DATETIME", "DATE", "DURATION", "JSON")
_EXPECTED = {
    "STRING": "a string", "NUMBER": "a number (e.g. 42 or 3.5)",
    "BOOLEAN": "true or false", "DATETIME": "an ISO date and time (e.g. 2024-01-31T10:00:00Z)",
    "DATE": "an ISO date (e.g. 2024-01-31) or date and time",
    "DURATION": "an ISO-8601 duration (e.g. PT1H)", "JSON": "JSON text",
}


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise Mismatch
    if isinstance(value, str):
        try:
            value = json.loads(value.strip())
        except ValueError:
            raise Mismatch from None
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            (isinstance(value, float) and not math.isfinite(value)):
        raise Mismatch
    return value


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise Mismatch


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        raise Mismatch
    return json.dumps(value)  # 42 -> "42", true -> "true", a map -> its JSON text


def _date(value: Any) -> str:
    try:
        return as_date(value).isoformat()
    except Mismatch:
        return as_datetime(value).astimezone(UTC).date().isoformat()


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise Mismatch from None
    return value


_CONVERT = {
    "STRING": _string, "NUMBER": _number, "BOOLEAN": _boolean,
    "DATETIME": lambda v: kestra_iso(as_datetime(v).astimezone(UTC)),
    "DATE": _date, "DURATION": lambda v: format_duration(as_duration(v)), "JSON": _json,
}


def typed_value(kind: str, value: Any, key: str) -> Any:
    """`value` (as rendered) converted to the kvType `kind`, as Kestra's kv.Set
    does: a JSON number, a boolean, an ISO date-time / date / duration text, a
    parsed JSON value. KVError says what was expected when it does not fit."""
    try:
        return _CONVERT[kind](value)
    except (Mismatch, ValueError, OverflowError):
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise KVError(f"KV value of {key!r} is not of kvType {kind}: expected "
                      f"{_EXPECTED[kind]}, got {shown}") from None


def kv_type(value: Any) -> str:
    """Kestra's KVType of a value read back."""
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int | float):
        return "NUMBER"
    if isinstance(value, str):
        return "STRING"
    return "JSON"


def read_value(store: Any, namespace: str, key: str, *, error_on_missing: bool) -> Any:
    """The value of `key` in `namespace` (None, or KVNotFound, when absent)."""
    entry = store.kv_get(check_namespace(namespace), check_key(key))
    if entry is None:
        if error_on_missing:
            raise KVNotFound(f"no KV value for key {key!r} in namespace {namespace!r}")
        return None
    return entry.value


def template_function(store: Any, default_namespace: str) -> Any:
    """Kestra's kv(key, namespace=flow.namespace, errorOnMissing=true)."""

    def kv(key: str, namespace: str | None = None, errorOnMissing: bool = True) -> Any:
        return read_value(store, namespace or default_namespace, key,
                          error_on_missing=errorOnMissing)

    return kv
