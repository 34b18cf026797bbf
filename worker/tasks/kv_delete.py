"""io.kestra.plugin.core.kv.Delete: remove a key from a namespace's KV store;
the `deleted` output says whether it existed. Followed: Kestra's
kv/Delete.java (key, namespace, errorOnMissing default false)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from harrier.common.errors import TaskFailed
from harrier.common.kv import KVError, check_key, check_namespace
from harrier.common.task import Task, register_task
from harrier.worker.context import TaskContext


@register_task("io.kestra.plugin.core.kv.Delete")
class KVDelete(Task):
    key: str
    namespace: str | None = None
    error_on_missing: bool = Field(False, alias="errorOnMissing")

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        namespace = str(ctx.render(self.namespace, "namespace")) if self.namespace \
            else ctx.flow.namespace
        key = str(ctx.render(self.key, "key"))
        try:
            deleted = ctx.store.kv_delete(check_namespace(namespace), check_key(key))
        except KVError as exc:
            raise TaskFailed(str(exc), retryable=False) from None
        if not deleted and self.error_on_missing:
            raise TaskFailed(f"No key '{key}' in namespace '{namespace}'", retryable=False)
        return {"deleted": deleted}
