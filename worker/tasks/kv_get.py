"""io.kestra.plugin.core.kv.Get: read a key of a namespace's KV store into the
`value` output. Followed: Kestra's kv/Get.java (key, namespace, errorOnMissing
default false)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from harrier.common.errors import TaskFailed
from harrier.common.kv import KVError, read_value
from harrier.common.task import Task, register_task
from harrier.worker.context import TaskContext


@register_task("io.kestra.plugin.core.kv.Get")
class KVGet(Task):
    key: str
    namespace: str | None = None
    error_on_missing: bool = Field(False, alias="errorOnMissing")

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        namespace = str(ctx.render(self.namespace, "namespace")) if self.namespace \
            else ctx.flow.namespace
        try:
            value = read_value(ctx.store, namespace, str(ctx.render(self.key, "key")),
                               error_on_missing=self.error_on_missing)
        except KVError as exc:
            raise TaskFailed(str(exc), retryable=False) from None
        return {"value": value}
