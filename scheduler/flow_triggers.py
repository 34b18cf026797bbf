"""Flow triggers: start a flow when executions of other flows end. FlowTriggers
evaluates one ended execution against every Flow trigger, whatever brings the
end: in distributed mode (FlowTriggerLoop) every end is appended to a Redis
stream by the store (change_execution_state.lua); scheduler replicas share it
through a consumer group, and entries a dead replica read but never
acknowledged are claimed by another one (XAUTOCLAIM). Each (ended execution,
trigger) is decided once (in Redis, or in memory when embedded) and its
execution id derived from both, so a retried entry never starts a flow twice."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import redis
from celery import Celery
from kombu.exceptions import KombuError

from harrier.common.errors import (
    ExecutionNotFound,
    HarrierError,
    InputError,
    StoreUnavailable,
    TemplateError,
)
from harrier.common.execution import Execution
from harrier.common.flow import Flow
from harrier.common.lua import lua_script
from harrier.common.metrics import recorder
from harrier.common.state import State
from harrier.common.store import ExecutionStore
from harrier.common.templating import render
from harrier.common.trigger_conditions import ConditionContext, ConditionError, all_true
from harrier.common.triggers import Filter, FlowTrigger, Preconditions
from harrier.common.truth import is_true
from harrier.scheduler.executions import (
    CORRELATION_ID,
    create_execution,
    resume_start,
    start_execution,
)
from harrier.scheduler.firing import FireContext
from harrier.scheduler.flow_catalog import FlowCatalog
from harrier.scheduler.trigger_state import RedisTriggerStates, TriggerStates

log = logging.getLogger("harrier.scheduler.flow_triggers")

FLOW_TRIGGER_TYPE = "io.kestra.plugin.core.trigger.Flow"
GROUP = "flow-triggers"
DECISION_TTL_SECONDS = 7 * 24 * 3600
# An entry read but not acknowledged for this long: its reader died, take it over
# (the default of HARRIER_FLOW_TRIGGER_CLAIM_IDLE).
CLAIM_IDLE_SECONDS = 30.0
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DECIDE = lua_script("harrier.scheduler", "decide_flow_trigger")

# A fault hook for tests only: called after an entry is read, before any of its
# work, where a test kills the process. Never set in production code.
after_read: Callable[[str], None] | None = None
# Likewise, after the triggered execution is stored and before it is started.
after_create: Callable[[str], None] | None = None


def triggered_execution_id(upstream_id: str, trigger_key: str) -> str:
    """The id of the execution a trigger starts for an upstream end: derived, so
    whoever completes the work creates the same one."""
    number = int.from_bytes(hashlib.sha256(f"{upstream_id}\0{trigger_key}".encode())
                            .digest()[:16], "big")
    digits = []
    for _ in range(22):
        number, digit = divmod(number, 62)
        digits.append(_ALPHABET[digit])
    return "".join(digits)


def upstream_view(execution: Execution) -> dict[str, Any]:
    """`trigger.*` as Kestra's Flow trigger exposes the execution that ended."""
    return {"type": FLOW_TRIGGER_TYPE, "executionId": execution.id,
            "namespace": execution.namespace, "flowId": execution.flow_id,
            "flowRevision": execution.flow_revision, "state": execution.state.current.value,
            "executionLabels": {k: v for k, v in execution.labels.items()
                                if k != CORRELATION_ID},
            "labels": dict(execution.labels),
            "outputs": dict(execution.outputs or {})}


def _filter_holds(item: Filter, upstream: Mapping[str, Any], ctx: ConditionContext) -> bool:
    if item.field == "EXPRESSION":
        value: str | None = str(ctx.render(item.value, "where.filters.value"))
    else:
        value = {"FLOW_ID": upstream["flowId"], "NAMESPACE": upstream["namespace"],
                 "STATE": upstream["state"]}[item.field]
    if item.type == "IS_NULL":
        return value is None
    if item.type == "IS_NOT_NULL":
        return value is not None
    if item.type == "IS_TRUE":
        return is_true(value)
    if item.type == "IS_FALSE":
        return not is_true(value)
    if item.type in ("IN", "NOT_IN"):
        return (value in (item.values or [])) == (item.type == "IN")
    if value is None:
        return False
    expected = item.value or ""
    return {"EQUAL_TO": value == expected, "NOT_EQUAL_TO": value != expected,
            "STARTS_WITH": value.startswith(expected), "ENDS_WITH": value.endswith(expected),
            "CONTAINS": expected in value,
            "REGEX": bool(re.fullmatch(expected, value))}[item.type]


def satisfied_preconditions(preconditions: Preconditions, upstream: Mapping[str, Any],
                            ctx: ConditionContext) -> list[str]:
    """Ids of the preconditions this ended execution meets (Kestra's
    UpstreamFlowCondition and FilterCondition)."""
    ids = preconditions.condition_ids()
    met = [ids[i] for i, flow in enumerate(preconditions.flows) if flow.matches(upstream)]
    offset = len(preconditions.flows)
    for i, where in enumerate(preconditions.where):
        results = (_filter_holds(f, upstream, ctx) for f in where.filters)
        if (all(results) if where.operand == "AND" else any(results)):
            met.append(ids[offset + i])
    return met


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def end_of(execution: Execution) -> datetime:
    return execution.state.end_date or datetime.now(UTC)


@dataclass(frozen=True)
class Window:
    """A preconditions window one end counts in: which conditions were met when."""

    key: str  # the trigger's window (its key, preconditions id, window start)
    total: int  # number of conditions, all to be met within the window
    reset_on_success: bool
    ended_ms: int  # when the upstream execution ended
    start_ms: int  # a condition met before this no longer counts
    ttl_seconds: int  # how long what was met is worth keeping


class TriggerDecisions(Protocol):
    """Whether a trigger fires for one end, decided once and remembered."""

    def decide(self, decision: str, window: Window | None, met: list[str]) -> str:
        """'fire', 'skip', or 'done' (fired and started before)."""
        ...

    def mark_done(self, decision: str) -> None: ...


class RedisDecisions:
    """The decisions of every scheduler replica, in Redis (decide_flow_trigger.lua)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.redis = client
        self.prefix = prefix
        self._decide = client.register_script(_DECIDE)

    def decide(self, decision: str, window: Window | None, met: list[str]) -> str:
        keys = [f"{self.prefix}:flowtrigger:decision:{decision}", ""]
        args: list[Any] = [DECISION_TTL_SECONDS, 0, "1", 0, 0, 0]
        if window is None:
            keys[1] = keys[0]  # unused: no window
        else:
            keys[1] = f"{self.prefix}:flowtrigger:window:{window.key}"
            args = [DECISION_TTL_SECONDS, window.total,
                    "1" if window.reset_on_success else "0", window.ended_ms,
                    window.start_ms, window.ttl_seconds, *met]
        answer = self._decide(keys=keys, args=args)
        return answer.decode() if isinstance(answer, bytes) else str(answer)

    def mark_done(self, decision: str) -> None:
        self.redis.set(f"{self.prefix}:flowtrigger:decision:{decision}", "done",
                       ex=DECISION_TTL_SECONDS)


class MemoryDecisions:
    """The same decisions in this process (embedded mode): decide_flow_trigger.lua
    in Python, behind a lock; expired entries are dropped as new ones come."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._decisions: dict[str, tuple[str, float]] = {}  # -> (decision, expiry)
        self._windows: dict[str, tuple[dict[str, int], float]] = {}  # -> (met, expiry)

    def decide(self, decision: str, window: Window | None, met: list[str]) -> str:
        with self._lock:
            moment = self.clock()
            self._expire(moment)
            known = self._decisions.get(decision)
            if known is not None:
                return known[0]
            answer = "fire"
            if window is not None and window.total > 0:
                seen, _ = self._windows.get(window.key, ({}, 0.0))
                seen.update(dict.fromkeys(met, window.ended_ms))
                self._windows[window.key] = (seen, moment + window.ttl_seconds)
                if sum(1 for at in seen.values() if at >= window.start_ms) >= window.total:
                    if window.reset_on_success:
                        del self._windows[window.key]
                else:
                    answer = "skip"
            self._decisions[decision] = (answer, moment + DECISION_TTL_SECONDS)
            return answer

    def mark_done(self, decision: str) -> None:
        with self._lock:
            self._decisions[decision] = ("done", self.clock() + DECISION_TTL_SECONDS)

    def _expire(self, moment: float) -> None:
        for table in (self._decisions, self._windows):
            for key in [k for k, (_, expiry) in table.items() if expiry <= moment]:
                del table[key]


class FlowTriggers:
    """Evaluates ended executions against every Flow trigger of a catalog and
    starts the flows they trigger; how ends arrive is the caller's business."""

    def __init__(self, catalog: FlowCatalog, store: ExecutionStore, app: Celery, *,
                 decisions: TriggerDecisions, states: TriggerStates,
                 secrets: Mapping[str, str] | None = None,
                 clock: Callable[[Execution], datetime] = end_of,
                 admit: Callable[[Flow, FlowTrigger, Execution], bool] | None = None,
                 on_fired: Callable[[Flow, FlowTrigger, Execution, str], None] | None = None
                 ) -> None:
        self.catalog = catalog
        self.store = store
        self.app = app
        self.decisions = decisions
        # Triggers disabled at run time (UI, API): ends pass them by.
        self.states = states
        self.secrets: Mapping[str, str] = secrets if secrets is not None else {}
        self.clock = clock  # when an end happened, for preconditions windows
        # Asked before a triggered execution is created (a bound on a chain);
        # told when one is started.
        self.admit = admit
        self.on_fired = on_fired

    # -- one ended execution
    def handle(self, upstream_id: str) -> bool:
        """Fire every Flow trigger this end satisfies; False: retry later (Redis down)."""
        triggers = self.catalog.flow_triggers()
        if not triggers:
            return True
        try:
            upstream = self.store.get_execution(upstream_id)
        except ExecutionNotFound:
            log.warning("ended execution %s is gone (retention): no Flow trigger evaluated",
                        upstream_id)
            return True
        except StoreUnavailable as exc:
            log.warning("cannot load ended execution %s: %s", upstream_id, exc)
            return False
        if not upstream.state.current.terminated:
            return True  # restarted since: its next end is another entry
        if upstream.loop_run is not None:
            return True  # an iteration of a Loop: part of its parent, which ends later
        view = upstream_view(upstream)
        try:
            disabled = self.states.disabled_keys()
        except StoreUnavailable as exc:
            log.warning("cannot read disabled triggers: %s", exc)
            return False
        done = True
        for flow, trigger in triggers:
            if f"{flow.namespace}/{flow.id}/{trigger.id}" in disabled:
                continue
            try:
                self._evaluate(flow, trigger, upstream, view)
            except (StoreUnavailable, redis.RedisError) as exc:
                log.warning("flow %s.%s trigger %s: execution %s not evaluated yet: %s",
                            flow.namespace, flow.id, trigger.id, upstream_id, exc)
                done = False
        return done

    def _evaluate(self, flow: Flow, trigger: FlowTrigger, upstream: Execution,
                  view: dict[str, Any]) -> None:
        if upstream.state.current not in trigger.states:
            return
        variables = {"trigger": view,
                     "flow": {"id": upstream.flow_id, "namespace": upstream.namespace},
                     "execution": {"id": upstream.id, "state": view["state"]},
                     "labels": view["labels"], "outputs": view["outputs"]}
        ctx = ConditionContext(variables, self.secrets, execution=view)
        key = f"{flow.namespace}/{flow.id}/{trigger.id}"
        try:
            if not all_true(trigger.conditions, trigger.when, ctx):
                return
            met: list[str] = []
            if trigger.preconditions is not None:
                met = satisfied_preconditions(trigger.preconditions, view, ctx)
                if not met:
                    return
        except ConditionError as exc:
            log.error("flow %s.%s trigger %s: execution %s skipped, a condition cannot be "
                      "evaluated: %s", flow.namespace, flow.id, trigger.id, upstream.id, exc)
            return
        pre = trigger.preconditions
        window: Window | None = None
        if pre is not None:
            # When the execution ended, not when it is read: a retry after a
            # crash lands in the same window.
            ended = self.clock(upstream)
            bounds = pre.time_window.bounds(ended)
            if bounds is None:
                log.info("flow %s.%s trigger %s: execution %s ended outside the "
                         "preconditions' %s window: not counted", flow.namespace, flow.id,
                         trigger.id, upstream.id, pre.time_window.type)
                return
            start, end = bounds
            sliding = pre.time_window.type == "SLIDING_WINDOW"
            life = (end - start if sliding else end - ended) + timedelta(days=1)
            window = Window(
                key=f"{key}:{pre.id or ''}:{'sliding' if sliding else start.isoformat()}",
                total=len(pre.condition_ids()), reset_on_success=pre.reset_on_success,
                ended_ms=_ms(ended), start_ms=_ms(start),
                ttl_seconds=max(1, int(life.total_seconds())))
        decision = f"{upstream.id}:{key}"
        if self.decisions.decide(decision, window, met) == "fire" \
                and self._start(flow, trigger, upstream, view, key):
            self.decisions.mark_done(decision)

    def _start(self, flow: Flow, trigger: FlowTrigger, upstream: Execution,
               view: dict[str, Any], key: str) -> bool:
        """Create and start the triggered execution (or finish starting it, after a
        replica died part-way). False: not done, to be retried."""
        execution_id = triggered_execution_id(upstream.id, key)
        store = self.store
        try:
            try:
                head = store.execution_head(execution_id)
            except ExecutionNotFound:
                head = None
            if head is None:
                inputs = render(trigger.inputs, {"trigger": view},
                                field=f"triggers.{trigger.id}.inputs",
                                secrets=self.secrets)
                if self.admit is not None and not self.admit(flow, trigger, upstream):
                    return True
                # The chain keeps the correlation id of the execution that started it.
                correlation = upstream.labels.get(CORRELATION_ID, upstream.id)
                execution = create_execution(store, flow, inputs, trigger=view,
                                             labels={CORRELATION_ID: correlation},
                                             execution_id=execution_id)
                if after_create is not None:
                    after_create(execution_id)
                start_execution(self.app, flow, execution, store=store)
            elif head.state.current == State.CREATED:
                resume_start(self.app, flow, head, store=store)
        except (InputError, TemplateError) as exc:
            log.error("flow %s.%s trigger %s: the inputs rendered for execution %s of %s.%s "
                      "are not valid, not triggered:\n%s", flow.namespace, flow.id, trigger.id,
                      upstream.id, upstream.namespace, upstream.flow_id, exc)
            return True
        except (HarrierError, redis.RedisError, KombuError, OSError) as exc:
            log.error("flow %s.%s trigger %s: execution %s for the end of %s not started yet "
                      "(retried): %s", flow.namespace, flow.id, trigger.id, execution_id,
                      upstream.id, exc)
            raise StoreUnavailable(str(exc)) from exc
        recorder().trigger_fired(FLOW_TRIGGER_TYPE, "flow", 0.0)
        log.info("fired flow %s.%s (trigger %s) after %s.%s execution %s ended %s -> "
                 "execution %s", flow.namespace, flow.id, trigger.id, upstream.namespace,
                 upstream.flow_id, upstream.id, view["state"], execution_id)
        if self.on_fired is not None:
            self.on_fired(flow, trigger, upstream, execution_id)
        return True


class FlowTriggerLoop(FlowTriggers):
    """One scheduler replica's consumer of the ended-executions stream."""

    def __init__(self, catalog: FlowCatalog, context: FireContext, *,
                 claim_idle: float = CLAIM_IDLE_SECONDS, batch: int = 50,
                 block_ms: int = 1000, states: TriggerStates | None = None,
                 clock: Callable[[Execution], datetime] = end_of) -> None:
        # Flow triggers need the Redis store (the scheduler's); its stream and key prefix.
        prefix = context.store.prefix  # type: ignore[attr-defined]
        super().__init__(
            catalog, context.store, context.app,
            decisions=RedisDecisions(context.redis, prefix),
            states=states if states is not None else RedisTriggerStates(context.redis),
            secrets=context.secrets, clock=clock)
        self.context = context
        self.redis = context.redis
        self.stream = context.store.ended_stream  # type: ignore[attr-defined]
        self.prefix = prefix
        self.claim_idle_ms = int(claim_idle * 1000)
        self.batch = batch
        self.block_ms = block_ms
        self._group_ready = False

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            # From the stream's start: ends recorded before any scheduler ran count too.
            self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def step(self) -> int:
        """Take over entries a dead replica left, then read new ones; the number
        handled (-1: Redis did not answer)."""
        try:
            self._ensure_group()
            reply: Any = self.redis.xautoclaim(
                self.stream, GROUP, self.context.replica, self.claim_idle_ms, "0-0",
                count=self.batch)
            claimed = list(reply[1])
            if claimed:
                log.info("taking over %d ended execution(s) a dead replica had read",
                         len(claimed))
            entries = list(claimed)
            # (block=0 would wait forever: with work in hand, do not wait at all)
            read: Any = self.redis.xreadgroup(
                GROUP, self.context.replica, {self.stream: ">"}, count=self.batch,
                block=None if claimed else self.block_ms)
            for _, found in read or []:
                entries.extend(found)
        except redis.RedisError as exc:
            log.warning("cannot read ended executions: %s", exc)
            self._group_ready = False
            return -1
        handled = 0
        for entry_id, fields in entries:
            if not fields:  # trimmed away by MAXLEN before anyone read it
                self.redis.xack(self.stream, GROUP, entry_id)
                continue
            upstream_id = (fields.get(b"id") or b"").decode()
            if after_read is not None:
                after_read(upstream_id)
            if self.handle(upstream_id):
                try:
                    self.redis.xack(self.stream, GROUP, entry_id)
                except redis.RedisError as exc:
                    log.warning("ended execution %s handled, not acknowledged (it will "
                                "be checked again, creating nothing twice): %s", upstream_id, exc)
                handled += 1
        return handled

    def run(self, stop: threading.Event) -> None:
        log.info("flow trigger loop started (replica %s)", self.context.replica)
        while not stop.is_set():
            try:
                handled = self.step()
            except Exception:
                # Unacknowledged entries come back through XAUTOCLAIM: nothing is lost.
                log.exception("flow trigger step failed; retrying in 1 s")
                handled = -1
            if handled < 0:
                stop.wait(1.0)  # Redis down: do not spin
