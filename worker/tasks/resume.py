"""io.kestra.plugin.core.execution.Resume: resume a PAUSED execution (this
one by default, e.g. from another branch of a Parallel) with `inputs` for its
Pause's onResume. Followed: Kestra's Resume.java (executionId, namespace,
flowId, inputs; it succeeds with no output)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from harrier.common.errors import ExecutionNotFound, TaskFailed
from harrier.common.task import Task, register_task
from harrier.worker.context import TaskContext
from harrier.worker.engine import Engine
from harrier.worker.pauses import NotPaused, resume
from harrier.worker.runtime import current


@register_task("io.kestra.plugin.core.execution.Resume")
class Resume(Task):
    execution_id: str | None = Field(None, alias="executionId")
    namespace: str | None = None
    flow_id: str | None = Field(None, alias="flowId")
    inputs: dict[str, Any] = Field(default_factory=dict)

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        target = str(ctx.render(self.execution_id, "executionId")) if self.execution_id \
            else ctx.execution.id
        try:
            engine = Engine.load(current(), target)
        except ExecutionNotFound:
            raise TaskFailed(f"No execution found for execution id {target}",
                             retryable=False) from None
        head = engine.execution
        # Kestra asks for namespace and flowId to make the permission explicit:
        # when given, the execution must belong to that flow.
        for name, expected, actual in (("namespace", self.namespace, head.namespace),
                                       ("flowId", self.flow_id, head.flow_id)):
            if expected is not None and str(ctx.render(expected, name)) != actual:
                raise TaskFailed(f"execution {target} is not of {name} {expected!r} "
                                 f"(it is {actual!r})", retryable=False)
        inputs = ctx.render(self.inputs, "inputs") if self.inputs else {}
        try:
            resume(engine, inputs)
        except NotPaused as exc:
            raise TaskFailed(str(exc), retryable=False) from None
        engine.flush()
        ctx.log("INFO", f"resumed execution {target}")
        return {}
