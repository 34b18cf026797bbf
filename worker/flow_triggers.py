"""Flow triggers (io.kestra.plugin.core.trigger.Flow): when an execution ends,
start the flows whose Flow trigger matches it. The store keeps every end as
an event (common/store.py read_ended); a reader (the scheduler's, or the
embedded runtime's) hands each one to fire_flow_triggers and acknowledges it
after. The executions started get an id derived from the event and the
trigger, so an event handled twice (its first reader died before
acknowledging it) starts nothing twice. Followed: Kestra's trigger/Flow.java
(trigger variables, inputs rendered with them, the correlation id carried on)."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

from harrier.common.errors import ExecutionNotFound, HarrierError
from harrier.common.execution import Execution, LogEntry
from harrier.common.flow import Flow, parse_flow
from harrier.common.launch import CORRELATION_ID, create_execution, start_execution
from harrier.common.state import iso
from harrier.common.store import ExecutionStore
from harrier.common.templating import render
from harrier.common.trigger_conditions import ConditionError
from harrier.common.triggers import FlowTrigger
from harrier.worker.runtime import Runtime

log = logging.getLogger("harrier.flow_triggers")

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class FlowTriggerIndex:
    """The deployed flows that have a Flow trigger, re-read from the store at
    most every `refresh_seconds` (each revision parsed once)."""

    def __init__(self, store: ExecutionStore, refresh_seconds: float = 2.0) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self._parsed: dict[tuple[str, str, int], Flow | None] = {}
        self._flows: list[tuple[Flow, int]] = []
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def flows(self) -> list[tuple[Flow, int]]:
        """(flow, revision) of every enabled flow with an enabled Flow trigger."""
        with self._lock:
            if time.monotonic() - self._read_at >= self.refresh_seconds:
                self._read()
            return list(self._flows)

    def _read(self) -> None:
        found = []
        for record in self.store.list_flows():
            key = (record.namespace, record.flow_id, record.revision)
            if key not in self._parsed:
                try:
                    self._parsed[key] = parse_flow(record.source, f"{key[0]}.{key[1]}@{key[2]}")
                except HarrierError:
                    self._parsed[key] = None  # an invalid flow has no triggers
            flow = self._parsed[key]
            if flow is not None and not flow.disabled and not flow.deleted and \
                    flow.triggers_of(FlowTrigger):
                found.append((flow, record.revision))
        self._flows = found
        self._read_at = time.monotonic()


def trigger_variables(execution: Execution) -> dict[str, Any]:
    """Kestra's Flow trigger output: what `trigger.*` holds for the started flow."""
    runs = execution.task_runs
    failed = next((r.task_id for r in runs if r.state.current.value == "FAILED"), None)
    labels: dict[str, Any] = {}
    for key, value in execution.labels.items():
        if key == CORRELATION_ID:
            continue
        node = labels
        *parents, last = key.split(".")
        for part in parents:
            child = node.get(part)
            node = node.setdefault(part, {}) if not isinstance(child, str) else {}
        node[last] = value
    end = execution.state.histories[-1].date if execution.state.histories else None
    return {"executionId": execution.id, "executionLabels": labels,
            "namespace": execution.namespace, "flowId": execution.flow_id,
            "flowRevision": execution.flow_revision, "state": execution.state.current.value,
            "startDate": iso(execution.start_date), "endDate": iso(end) if end else None,
            "firstFailedTaskId": failed, "lastTaskId": runs[-1].task_id if runs else None,
            "outputs": dict(execution.outputs)}


def started_id(event_id: str, upstream: str, flow: Flow, trigger: FlowTrigger) -> str:
    """The id of the execution this event starts through this trigger: the same
    however many times the event is handled."""
    digest = hashlib.sha256(
        f"{event_id}\x00{upstream}\x00{flow.namespace}\x00{flow.id}\x00{trigger.id}".encode()
    ).digest()
    number = int.from_bytes(digest[:16], "big")
    digits = []
    for _ in range(22):
        number, digit = divmod(number, 62)
        digits.append(_ALPHABET[digit])
    return "".join(digits)


def fire_flow_triggers(runtime: Runtime, index: FlowTriggerIndex, event_id: str,
                       execution_id: str) -> list[str]:
    """Start the flows whose Flow trigger matches the ended execution; the ids
    of the executions started (or found started by an earlier handling)."""
    store = runtime.store
    try:
        ended = store.get_execution(execution_id)
    except ExecutionNotFound:
        return []  # deleted since
    variables = trigger_variables(ended)
    started = []
    for flow, revision in index.flows():
        for trigger in flow.triggers_of(FlowTrigger):
            assert isinstance(trigger, FlowTrigger)
            if ended.state.current not in trigger.states:
                continue
            context = {"trigger": variables,
                       "flow": {"id": flow.id, "namespace": flow.namespace,
                                "revision": revision}}
            try:
                if not trigger.should_fire(context, runtime.settings.secrets):
                    continue
            except ConditionError as exc:
                log.warning("Flow trigger %s of %s.%s not evaluated for execution %s: %s",
                            trigger.id, flow.namespace, flow.id, ended.id, exc)
                continue
            new_id = started_id(event_id, ended.id, flow, trigger)
            try:
                store.execution_state(new_id)
                started.append(new_id)  # handled before: started then
                continue
            except ExecutionNotFound:
                pass
            try:
                inputs = render(trigger.inputs, context, field=f"triggers.{trigger.id}.inputs",
                                secrets=runtime.settings.secrets) if trigger.inputs else {}
                labels = {CORRELATION_ID: ended.labels.get(CORRELATION_ID, ended.id)}
                execution = create_execution(
                    store, flow, inputs, labels=labels, execution_id=new_id,
                    revision=revision,
                    trigger={"id": trigger.id, "type": trigger.type_names[0],
                             "variables": variables})
            except HarrierError as exc:
                # Kestra logs it on the flow and creates nothing usable: say it once.
                log.warning("Flow trigger %s of %s.%s could not start an execution for "
                            "execution %s: %s", trigger.id, flow.namespace, flow.id,
                            ended.id, exc)
                store.append_log(LogEntry(ended.id, None, None, "WARN",
                                          f"Flow trigger {trigger.id} of {flow.namespace}."
                                          f"{flow.id} not started: {exc}"))
                continue
            start_execution(runtime.app, flow, execution, store=store)
            started.append(new_id)
            log.info("execution %s of %s.%s ended %s: Flow trigger %s of %s.%s started %s",
                     ended.id, ended.namespace, ended.flow_id, ended.state.current.value,
                     trigger.id, flow.namespace, flow.id, new_id)
    return started


class FlowTriggerReader:
    """Reads the store's ended executions and fires Flow triggers: run(stop) in
    a thread (the scheduler's replicas each run one; so does embedded mode)."""

    def __init__(self, runtime: Runtime, consumer: str, *,
                 claim_idle_ms: int = 60_000) -> None:
        self.runtime = runtime
        self.consumer = consumer
        self.claim_idle_ms = claim_idle_ms
        self.index = FlowTriggerIndex(runtime.store)

    def step(self, block_ms: int = 1000) -> list[str]:
        started = []
        for event_id, execution_id in self.runtime.store.read_ended(
                self.consumer, block_ms=block_ms, claim_idle_ms=self.claim_idle_ms):
            started += fire_flow_triggers(self.runtime, self.index, event_id, execution_id)
            self.runtime.store.ack_ended(event_id)
        return started

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.step()
            except Exception:  # logged: the reader thread must outlive one bad event
                log.exception("Flow triggers: reading ended executions failed; retrying")
                stop.wait(1.0)
