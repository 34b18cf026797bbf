"""io.kestra.plugin.core.flow.Subflow: start an execution of another flow
and, with `wait` (the default), end when it ends, with its outputs as
`outputs.<task>.outputs.<name>`. The parent's run waits without a worker slot
(worker.context.Waiting); the child's finisher ends it (worker.subflows).
Followed: Kestra's Subflow.java and ExecutableUtils.subflowExecution."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from harrier.common.errors import ExecutionNotFound, FlowNotFound, TaskFailed
from harrier.common.execution import Execution, new_id
from harrier.common.flow import Flow, parse_flow
from harrier.common.launch import create_execution, resume_start, start_execution
from harrier.common.state import State
from harrier.common.store import FlowRecord
from harrier.common.task import Task, register_task
from harrier.worker.context import TaskContext, Waiting
from harrier.worker.runtime import current
from harrier.worker.subflows import SUBFLOW_TYPE, notify_parent

# A flow that starts itself (directly or not) stops at this depth instead of
# creating executions without end.
MAX_DEPTH = 32
_DEPTH = "subflowDepth"


@register_task(SUBFLOW_TYPE, "io.kestra.core.tasks.flows.Subflow",
               "io.kestra.core.tasks.flows.Flow")
class Subflow(Task):
    namespace: str
    flow_id: str = Field(alias="flowId")
    revision: int | None = Field(None, ge=1)
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, Any] = Field(default_factory=dict)
    inherit_labels: bool = Field(False, alias="inheritLabels")
    wait: bool = True
    transmit_failed: bool = Field(True, alias="transmitFailed")

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: object) -> object:
        if isinstance(value, list):  # Kestra's list of {key, value}
            labels = {}
            for item in value:
                if not (isinstance(item, dict) and set(item) == {"key", "value"}):
                    raise ValueError("labels: a list of labels holds {key: ..., value: ...} "
                                     f"mappings; found {item!r}")
                labels[str(item["key"])] = item["value"]
            value = labels
        if isinstance(value, dict):
            for key in value:
                if str(key).startswith("system."):
                    raise ValueError(f"labels: {key!r}: system labels are set by Harrier, "
                                     "not by a flow")
        return value

    def run(self, ctx: TaskContext) -> dict[str, Any] | Waiting:
        runtime = current()
        store = ctx.store
        child_id = ctx.previous_checkpoint.get("subflowExecutionId")
        child: Execution | None = None
        if child_id:  # a redelivery: the child may exist already
            try:
                child = store.get_execution(child_id)
            except ExecutionNotFound:
                child = None
        existing = child is not None
        if child is None:
            child_id = new_id()
            ctx.checkpoint({"subflowExecutionId": child_id})
            child = self._create(ctx, child_id)
            ctx.log("INFO", f"started subflow execution {child.id} of "
                            f"{child.namespace}.{child.flow_id}")
        flow = runtime.flow(child.namespace, child.flow_id, child.flow_revision)
        started = child

        def start() -> None:
            parent_run = store.task_run(ctx.execution.id, ctx.task_run.id)
            if self.wait and parent_run.state.current.terminated:
                # The parent was killed before its child could start: so is the child.
                store.change_execution_state(started.id, State.KILLED,
                                             only_from=(State.CREATED,))
                return
            state = store.execution_state(started.id)
            if state.terminated:
                notify_parent(store.get_execution(started.id))
                return
            if existing:
                # A redelivery: the first delivery may have started it (half-way).
                if state == State.CREATED:
                    resume_start(runtime.app, flow, started, store=store)
                return
            start_execution(runtime.app, flow, started, store=store)
            if store.execution_state(started.id).terminated:  # refused (concurrency)
                notify_parent(store.get_execution(started.id))

        if not self.wait:
            start()
            return {"executionId": child.id}
        return Waiting("subflow", outputs={"executionId": child.id}, then=start)

    def _target(self, ctx: TaskContext) -> tuple[FlowRecord, Flow]:
        """The child flow (its stored revision and parsed source)."""
        namespace = str(ctx.render(self.namespace, "namespace"))
        flow_id = str(ctx.render(self.flow_id, "flowId"))
        try:
            record = ctx.store.get_flow(namespace, flow_id, self.revision)
        except FlowNotFound:
            hint = " (embedded: `harrier run --flows-dir DIR` makes DIR's flows available)" \
                if ctx.settings.embedded else ""
            raise TaskFailed(f"Unable to find flow '{namespace}'.'{flow_id}' with revision "
                             f"'{self.revision or 0}'{hint}", retryable=False) from None
        flow = parse_flow(record.source, f"{namespace}.{flow_id}@{record.revision}")
        if flow.disabled:
            raise TaskFailed(f"cannot execute flow {namespace}.{flow_id}: it is disabled",
                             retryable=False)
        return record, flow

    def _create(self, ctx: TaskContext, child_id: str,
                target: tuple[FlowRecord, Flow] | None = None,
                iteration: int | None = None, warn: bool = True) -> Execution:
        """Create the child execution (CREATED). `target`: the child flow read
        already; `iteration`: the child's taskRunIteration (a ForEachItem batch);
        `warn`: log the inputs the child does not declare (once, not per batch)."""
        record, flow = target or self._target(ctx)
        namespace, flow_id = flow.namespace, flow.id
        parent = ctx.execution
        parent_vars = (parent.trigger or {}).get("variables") or {}
        depth = int(parent_vars.get(_DEPTH, 0)) + 1 \
            if (parent.trigger or {}).get("type") == SUBFLOW_TYPE else 1
        if depth > MAX_DEPTH:
            raise TaskFailed(f"subflows nested deeper than {MAX_DEPTH} levels: "
                             f"{namespace}.{flow_id} is not started", retryable=False)
        if self.inherit_labels:
            labels = {k: v for k, v in parent.labels.items() if k not in flow.labels}
        else:
            labels = {k: v for k, v in parent.labels.items() if k.startswith("system.")}
        rendered = ctx.render(self.labels, "labels") if self.labels else {}
        labels.update({str(k): str(v) for k, v in rendered.items()})
        run = ctx.task_run
        variables: dict[str, Any] = {
            "executionId": parent.id, "namespace": ctx.flow.namespace,
            "flowId": ctx.flow.id, "flowRevision": parent.flow_revision,
            "taskRunId": run.id, "taskId": run.task_id, _DEPTH: depth}
        if run.value is not None:
            variables["taskRunValue"] = run.value
        if iteration is None:
            iteration = run.iteration
        if iteration is not None:
            variables["taskRunIteration"] = iteration
        inputs = ctx.render(self.inputs, "inputs") if self.inputs else {}
        declared = {spec.id for spec in flow.inputs}
        for name in inputs:
            if warn and name not in declared:
                ctx.log("WARN", f"input {name} is not declared by {namespace}.{flow_id}")
        return create_execution(
            ctx.store, flow, {k: v for k, v in inputs.items() if k in declared},
            trigger={"id": run.task_id, "type": SUBFLOW_TYPE, "variables": variables},
            labels=labels, execution_id=child_id, revision=record.revision)
