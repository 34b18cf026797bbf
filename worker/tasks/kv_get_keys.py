"""io.kestra.plugin.core.kv.GetKeys: the keys of a namespace's KV store
(starting with `prefix`) as the `keys` output. Followed: Kestra's
kv/GetKeys.java (prefix, namespace)."""

from __future__ import annotations

from typing import Any

from harrier.common.errors import TaskFailed
from harrier.common.kv import KVError, check_namespace
from harrier.common.task import Task, register_task
from harrier.worker.context import TaskContext


@register_task("io.kestra.plugin.core.kv.GetKeys")
class KVGetKeys(Task):
    prefix: str | None = None
    namespace: str | None = None

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        namespace = str(ctx.render(self.namespace, "namespace")) if self.namespace \
            else ctx.flow.namespace
        prefix = str(ctx.render(self.prefix, "prefix")) if self.prefix else ""
        try:
            entries = ctx.store.kv_list(check_namespace(namespace))
        except KVError as exc:
            raise TaskFailed(str(exc), retryable=False) from None
        return {"keys": [e.key for e in entries if e.key.startswith(prefix)]}
