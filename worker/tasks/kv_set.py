"""io.kestra.plugin.core.kv.Set: store a value under a key of a namespace's
KV store (the flow's namespace by default), optionally expiring after `ttl`,
converted to `kvType` when given.
Followed: Kestra's kv/Set.java (key, value, namespace, overwrite, ttl, kvType)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator

from harrier.common.durations import parse_duration
from harrier.common.errors import TaskFailed
from harrier.common.kv import KVError, check_key, check_namespace, new_entry, typed_value
from harrier.common.task import Task, register_task
from harrier.worker.context import TaskContext


@register_task("io.kestra.plugin.core.kv.Set")
class KVSet(Task):
    key: str
    value: Any
    namespace: str | None = None
    overwrite: bool = True
    ttl: timedelta | None = None
    kv_type: Literal["STRING", "NUMBER", "BOOLEAN", "DATETIME", "DATE", "DURATION",
                     "JSON"] | None = Field(None, alias="kvType")

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        namespace = str(ctx.render(self.namespace, "namespace")) if self.namespace \
            else ctx.flow.namespace
        key = str(ctx.render(self.key, "key"))
        value = ctx.render(self.value, "value")
        try:
            check_namespace(namespace)
            check_key(key)
            if self.kv_type is not None:
                value = typed_value(self.kv_type, value, key)
            previous = ctx.store.kv_get(namespace, key)
            if previous is not None and not self.overwrite:
                raise TaskFailed(f"Cannot set value for key '{key}'. Key already exists and "
                                 "`overwrite` is set to `false`.", retryable=False)
            ctx.store.kv_put(new_entry(namespace, key, value, ttl=self.ttl, previous=previous,
                                       kind=self.kv_type))
        except KVError as exc:
            raise TaskFailed(str(exc), retryable=False) from None
        return {}
