"""Executions, task runs, attempts and log entries: plain data in Kestra's
JSON shape, with no I/O (the store persists them)."""

from __future__ import annotations

import copy
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from harrier.common.state import State, StateRecord, iso, now, parse_iso

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


# The key a waiting task run (a Pause, a Subflow's parent) keeps in its
# outputs, with the reason: it is RUNNING without a process, so no heartbeat.
WAITING = "_waiting"


def new_id() -> str:
    """A 22-character random id, like Kestra's base62 UUIDs (128 random bits)."""
    number = int.from_bytes(secrets.token_bytes(16), "big")
    digits = []
    for _ in range(22):
        number, digit = divmod(number, 62)
        digits.append(_ALPHABET[digit])
    return "".join(digits)


@dataclass
class Attempt:
    state: StateRecord = field(default_factory=lambda: StateRecord.start(State.RUNNING))
    exit_code: int | None = None
    error: str | None = None
    worker_id: str | None = None  # the Celery worker that ran it

    def clone(self) -> Attempt:
        return Attempt(self.state.clone(), self.exit_code, self.error, self.worker_id)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"state": self.state.to_json()}
        if self.worker_id:
            data["workerId"] = self.worker_id
        if self.exit_code is not None:
            data["exitCode"] = self.exit_code
        if self.error:
            data["error"] = self.error
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attempt:
        return cls(StateRecord.from_json(data["state"]), data.get("exitCode"), data.get("error"),
                   data.get("workerId"))


# In a value path, marks one iteration of a LoopUntil (whose iterations have no
# value): the runs of each iteration get their own keys.
ITERATION_MARK = "\x1d"


# In a value path, an iteration of a Kestra 2.0 Loop: ITEM_MARK then the JSON of
# its index, value and (over a map) key, which templates see as `item`.
ITEM_MARK = "\x1e"


def loop_item(value_path: tuple[str, ...]) -> dict[str, Any] | None:
    """Kestra 2.0's `item` (index, value, key) of the innermost Loop in a path;
    in nested Loops, `item.parent` is the next Loop out and `item.parents` all
    of them, closest first."""
    items: list[dict[str, Any]] = [json.loads(element[1:]) for element in reversed(value_path)
                                   if element.startswith(ITEM_MARK)]
    if not items:
        return None
    item = dict(items[0])
    if len(items) > 1:
        item["parent"] = items[1]
        item["parents"] = items[1:]
    return item


def plain_values(value_path: tuple[str, ...]) -> tuple[str, ...]:
    """The loop values of a path, without LoopUntil's iteration marks."""
    return tuple(value for value in value_path if not value.startswith(ITERATION_MARK))


def run_key(task_id: str, value_path: tuple[str, ...] = ()) -> str:
    """The key of a task's run: one per task, and per loop value inside loops
    (Kestra runs a loop once per distinct value, so values tell runs apart)."""
    return f"{task_id}\x00{json.dumps(list(value_path))}" if value_path else f"{task_id}\x00"


@dataclass
class TaskRun:
    id: str
    execution_id: str
    namespace: str
    flow_id: str
    task_id: str
    task_path: str  # where the task sits in the flow tree, e.g. "tasks.1.tasks.0"
    parent_task_run_id: str | None = None
    value: str | None = None  # the loop value of a loop's direct child (Kestra's taskrun.value)
    # The loop iteration a loop's direct child belongs to (Kestra's taskrun.iteration).
    iteration: int | None = None
    # The values of every loop holding the run, outermost first (inherited by
    # nested children): with the task id, what tells its runs apart.
    value_path: tuple[str, ...] = ()
    state: StateRecord = field(default_factory=StateRecord.start)
    attempts: list[Attempt] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def clone(self) -> TaskRun:
        """An independent copy (the in-memory store hands out copies), much
        cheaper than copy.deepcopy on the hot path."""
        return TaskRun(
            id=self.id, execution_id=self.execution_id, namespace=self.namespace,
            flow_id=self.flow_id, task_id=self.task_id, task_path=self.task_path,
            parent_task_run_id=self.parent_task_run_id, value=self.value,
            iteration=self.iteration, value_path=self.value_path,
            state=self.state.clone(), attempts=[a.clone() for a in self.attempts],
            outputs=copy.deepcopy(self.outputs) if self.outputs else {}, error=self.error)

    @property
    def key(self) -> str:
        """What identifies the run in its execution: its task and loop values."""
        return run_key(self.task_id, self.value_path)

    @property
    def latest_key(self) -> str | None:
        """Inside a LoopUntil's iterations: the key that finds the latest
        iteration's run (what `outputs.task` reads), else None."""
        plain = plain_values(self.value_path)
        return run_key(self.task_id, plain) if plain != self.value_path else None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "executionId": self.execution_id,
            "namespace": self.namespace,
            "flowId": self.flow_id,
            "taskId": self.task_id,
            "taskPath": self.task_path,
            "parentTaskRunId": self.parent_task_run_id,
            "value": self.value,
            "state": self.state.to_json(),
            "attempts": [a.to_json() for a in self.attempts],
            "outputs": self.outputs,
            "error": self.error,
        }
        if self.iteration is not None:
            data["iteration"] = self.iteration
        if self.value_path:
            data["valuePath"] = list(self.value_path)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskRun:
        return cls(
            id=data["id"], execution_id=data["executionId"], namespace=data["namespace"],
            flow_id=data["flowId"], task_id=data["taskId"], task_path=data["taskPath"],
            parent_task_run_id=data.get("parentTaskRunId"), value=data.get("value"),
            iteration=data.get("iteration"), value_path=tuple(data.get("valuePath") or ()),
            state=StateRecord.from_json(data["state"]),
            attempts=[Attempt.from_json(a) for a in data.get("attempts", [])],
            outputs=data.get("outputs") or {}, error=data.get("error"),
        )


@dataclass
class Execution:
    id: str
    namespace: str
    flow_id: str
    flow_revision: int
    inputs: dict[str, Any] = field(default_factory=dict)  # JSON-able form
    labels: dict[str, str] = field(default_factory=dict)
    state: StateRecord = field(default_factory=StateRecord.start)
    task_runs: list[TaskRun] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    trigger: dict[str, Any] | None = None
    created: datetime = field(default_factory=now)
    error: str | None = None
    # Set by the store when a task failed: tasks not started yet are skipped.
    # Internal bookkeeping, not part of Kestra's JSON.
    halted: str | None = None
    # Kestra's metadata: which attempt of a flow this execution is (a retry with
    # behavior CREATE_NEW_EXECUTION makes the next attempt a new execution) and
    # the execution the first attempt was.
    attempt_number: int = 1
    original_id: str | None = None
    # Ids of the inputs declared SECRET: their values are masked wherever the
    # execution is shown (API, CLI, UI, logs), kept only for the tasks.
    secret_inputs: list[str] = field(default_factory=list)
    # Kestra 2.0's `loopRun`: set on an execution that is one iteration of a
    # Loop (an isolated sub-execution of the same flow revision). Keys:
    # parentId, taskRunId, taskId, index, value, key (over a map), path (the
    # loop run's value path in the parent), outputsFrom ([execution id, value
    # path] of every enclosing execution, closest first: where `outputs` of
    # tasks outside the iteration are read) and trigger (the parent's).
    loop_run: dict[str, Any] | None = None

    @property
    def start_date(self) -> datetime:
        return self.state.start_date or self.created

    def task_run(self, task_run_id: str) -> TaskRun | None:
        return next((t for t in self.task_runs if t.id == task_run_id), None)

    def shown_inputs(self) -> dict[str, Any]:
        """The inputs as shown to people: SECRET values masked."""
        return {k: "******" if k in self.secret_inputs and v is not None else v
                for k, v in self.inputs.items()}

    def secret_values(self) -> list[str]:
        """The values of SECRET inputs (what logs must mask)."""
        return [str(self.inputs[k]) for k in self.secret_inputs
                if self.inputs.get(k) not in (None, "")]

    def to_json(self, *, reveal: bool = False) -> dict[str, Any]:
        """Kestra's JSON of the execution, SECRET inputs masked; `reveal` (the
        store's own copy) keeps their values and which they are."""
        data = {
            "id": self.id,
            "namespace": self.namespace,
            "flowId": self.flow_id,
            "flowRevision": self.flow_revision,
            "inputs": self.inputs if reveal else self.shown_inputs(),
            "labels": [{"key": k, "value": v} for k, v in self.labels.items()],
            "state": self.state.to_json(),
            "taskRunList": [t.to_json() for t in self.task_runs],
            "outputs": self.outputs,
            "trigger": self.trigger,
            "created": iso(self.created),
            "error": self.error,
            "originalId": self.original_id or self.id,
            "metadata": {"attemptNumber": self.attempt_number},
        }
        if reveal and self.secret_inputs:
            data["secretInputs"] = list(self.secret_inputs)
        if self.loop_run is not None:
            data["kind"] = "LOOP"
            data["loopRun"] = self.loop_run if reveal else {
                k: v for k, v in self.loop_run.items() if k in _PUBLIC_LOOP_RUN}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Execution:
        return cls(
            id=data["id"], namespace=data["namespace"], flow_id=data["flowId"],
            flow_revision=data["flowRevision"], inputs=data.get("inputs") or {},
            labels={lab["key"]: lab["value"] for lab in data.get("labels") or []},
            state=StateRecord.from_json(data["state"]),
            task_runs=[TaskRun.from_json(t) for t in data.get("taskRunList") or []],
            outputs=data.get("outputs") or {}, trigger=data.get("trigger"),
            created=parse_iso(data["created"]), error=data.get("error"),
            attempt_number=int((data.get("metadata") or {}).get("attemptNumber", 1)),
            original_id=data.get("originalId"),
            secret_inputs=list(data.get("secretInputs") or []),
            loop_run=data.get("loopRun"),
        )


# What the API shows of an iteration's loopRun (the rest is the engine's).
_PUBLIC_LOOP_RUN = ("parentId", "taskRunId", "taskId", "index", "key", "value")


@dataclass
class LogEntry:
    execution_id: str
    task_run_id: str | None
    task_id: str | None
    level: str  # INFO, WARN, ERROR, DEBUG, TRACE
    message: str
    timestamp: datetime = field(default_factory=now)
    attempt: int | None = None
    id: str = ""  # assigned by the store; ordered

    def to_json(self) -> dict[str, Any]:
        return {
            "executionId": self.execution_id,
            "taskRunId": self.task_run_id,
            "taskId": self.task_id,
            "level": self.level,
            "message": self.message,
            "timestamp": iso(self.timestamp),
            "attemptNumber": self.attempt,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], id: str = "") -> LogEntry:
        return cls(
            execution_id=data["executionId"], task_run_id=data.get("taskRunId"),
            task_id=data.get("taskId"), level=data["level"], message=data["message"],
            timestamp=parse_iso(data["timestamp"]), attempt=data.get("attemptNumber"), id=id,
        )
