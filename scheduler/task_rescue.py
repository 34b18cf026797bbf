"""Task runs whose worker died are run again within seconds, not when the
broker's visibility timeout (an hour) passes: every scheduler replica looks
every 2 s for running attempts whose heartbeats stopped, exactly one replica
claims each (compare-and-set in Redis) and sends the task again; the worker
that takes it records the lost attempt as failed and starts a new one. In an
execution being killed, the lost run ends KILLED instead. An execution that
stops moving with nothing running (its next message was lost with a worker)
gets what it is missing sent again."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import redis
from celery import Celery
from kombu.exceptions import KombuError

from harrier.common.dispatch import (
    DEFAULT_QUEUE,
    FlowRef,
    publish,
    queue_for,
    run_task_message,
)
from harrier.common.errors import ExecutionNotFound, FlowNotFound, HarrierError
from harrier.common.execution import WAITING, LogEntry, TaskRun
from harrier.common.redis_store import RedisStore
from harrier.common.settings import Settings
from harrier.common.state import STOPPING, State, now, transition
from harrier.common.task import FlowableTask, Task
from harrier.scheduler.executions import resume_start
from harrier.worker.engine import Engine
from harrier.worker.loop_runs import started_iterations
from harrier.worker.runtime import Runtime

log = logging.getLogger("harrier.scheduler.rescue")

SWEEP_SECONDS = 2.0
# A re-sent task has this long to start (all workers may be busy) before it
# counts as lost again and is sent once more.
HOLD_SECONDS = 300.0
# An execution that has not moved (no task run began or ended) for this many
# times HARRIER_TASK_LOST_AFTER, with nothing running, lost a message.
STALL_FACTOR = 2
STALL_CHECK_SECONDS = 10.0
NUDGE_AGAIN_SECONDS = 300


class TaskRescue:
    """One replica's sweeper: sweep() once, or run(stop) every SWEEP_SECONDS."""

    def __init__(self, store: RedisStore, app: Celery, settings: Settings, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.runtime = Runtime(settings, store, app)
        self.lost_after = float(settings.task_lost_after)
        self.clock = clock
        self.stall_after = self.lost_after * STALL_FACTOR
        self._up_since: float | None = None  # monotonic: since Redis answers us
        self._stall_checked = 0.0  # monotonic
        broker = str(app.conf.broker_url or "")
        # The broker's queues, when it is Redis: a backlog there is not a stall.
        self._broker: redis.Redis | None = redis.Redis.from_url(broker) \
            if broker.startswith(("redis://", "rediss://")) else None

    def sweep(self) -> list[TaskRun]:
        """The lost runs this replica took charge of."""
        if not self._trusted():
            return []
        now = self.clock()
        before = now - self.lost_after
        handled = []
        for execution_id, run_id in self.store.silent_task_runs(before):
            claimed = self.store.claim_lost_task_run(execution_id, run_id, before=before,
                                                     hold_until=now + HOLD_SECONDS)
            if claimed is None:
                continue  # another replica has it, or it ended meanwhile
            state, run = claimed
            try:
                if self._rescue(state, run):
                    handled.append(run)
            except (ExecutionNotFound, FlowNotFound) as exc:
                log.warning("lost task run %s cannot be run again: %s", run_id, exc)
                self.store.forget_live(execution_id, run_id)
        return handled

    def _trusted(self) -> bool:
        """Silence means death only when the workers could have spoken: Redis has
        been up, and reachable from here, for a whole lost_after period (after
        an outage every worker gets its chance to beat again first)."""
        uptime = float(self.store.redis.info("server")["uptime_in_seconds"])
        moment = time.monotonic()
        if self._up_since is None:
            self._up_since = moment
        return min(uptime, moment - self._up_since) >= self.lost_after

    def _rescue(self, state: State, run: TaskRun) -> bool:
        head = self.store.execution_head(run.execution_id)
        flow = self.runtime.flow(head.namespace, head.flow_id, head.flow_revision)
        try:
            node = flow.index.node(run.task_id)
        except KeyError:
            node = None
        task = node.task if node is not None else None
        # A task run inside its owner's attempt (a WorkingDirectory's child) is
        # the owner's to rescue: the owner's own run beats and is rescued whole.
        if task is None or isinstance(task, FlowableTask) or node is None or node.inline or \
                run.state.current != State.RUNNING:
            self.store.forget_live(run.execution_id, run.id)
            return False
        worker = run.attempts[-1].worker_id if run.attempts else None
        silence = f"no heartbeat from {worker or 'its worker'} for {self.lost_after:.0f} s"
        if state in STOPPING or state.terminated:
            # Killed (or ended) while its worker was gone: nobody else will end it.
            attempt = run.attempts[-1]
            if not attempt.state.current.terminated:
                transition(attempt.state, State.KILLED, what=f"attempt of {run.task_id}")
                attempt.error = f"worker lost ({silence})"
            transition(run.state, State.KILLED, what=f"task {run.task_id}")
            run.error = "killed"
            engine = Engine(self.runtime, head, flow)
            engine.task_ended(task, run)
            engine.flush()
            log.info("task run %s (%s) of execution %s: %s; ended KILLED", run.id,
                     run.task_id, run.execution_id, silence)
            return True
        self.store.append_log(LogEntry(run.execution_id, run.id, run.task_id, "WARN",
                                       f"{silence}: the attempt is lost, running the task "
                                       "again", attempt=len(run.attempts)))
        publish([run_task_message(FlowRef(head.namespace, head.flow_id, head.flow_revision),
                                  run.execution_id, task, run.parent_task_run_id, run.value,
                                  run.iteration, run.value_path)])
        log.info("task run %s (%s) of execution %s: %s; sent again", run.id, run.task_id,
                 run.execution_id, silence)
        return True

    # -- executions whose next message was lost
    def nudge_stalled(self) -> list[str]:
        """Send again what stalled executions miss; their ids."""
        if not self._trusted():
            return []
        before = self.clock() - self.stall_after
        nudged = []
        for state in (State.CREATED, State.RUNNING):
            for execution_id in self.store.unmoved_executions(state, before):
                try:
                    if self._nudge(execution_id):
                        nudged.append(execution_id)
                except (ExecutionNotFound, FlowNotFound) as exc:
                    log.warning("stalled execution %s not resumed: %s", execution_id, exc)
        return nudged

    def _nudge(self, execution_id: str) -> bool:
        head = self.store.execution_head(execution_id)
        if head.state.current == State.CREATED and head.attempt_number > 1:
            return False  # a retry's next execution starts after its delay, on purpose
        flow = self.runtime.flow(head.namespace, head.flow_id, head.flow_revision)
        runs = self.store.task_runs(execution_id)
        overdue: list[tuple[Task, TaskRun]] = []  # retries whose message was lost
        quiet_needed = self.stall_after
        queues = {DEFAULT_QUEUE}
        for run in runs:
            try:
                task = flow.index.task(run.task_id)
                node = flow.index.node(run.task_id)
            except KeyError:
                continue
            queues.update(queue_for(t) for t in flow.index.block(node.owner, node.block))
            if run.state.current.terminated:
                continue
            if self._retry_overdue(task, run):
                overdue.append((task, run))
            elif not isinstance(task, FlowableTask) or WAITING in run.outputs or \
                    run.state.current != State.RUNNING:
                return False  # running, waiting, retrying: it moves on by itself
            elif task.runs_executions and any(
                    not self.store.execution_state(child).terminated
                    for child in started_iterations(self.store, execution_id, run.id)):
                return False  # a Loop whose iterations (executions of their own) run
            else:
                # A loop waits its checkFrequency interval between iterations.
                interval = getattr(getattr(task, "check_frequency", None), "interval", None)
                if isinstance(interval, timedelta):
                    quiet_needed = max(quiet_needed, interval.total_seconds() + self.stall_after)
        if self.clock() - self.store.moved_at(execution_id) < quiet_needed:
            return False
        if self._backlog(queues):
            return False  # a queue is busy: the message may be waiting there
        # One replica, once in a while: a nudge that changed nothing is not repeated
        # at every check.
        if not self.store.redis.set(f"{self.store.prefix}:exec:{execution_id}:nudged", "1",
                                    nx=True, ex=max(int(self.stall_after), NUDGE_AGAIN_SECONDS)):
            return False
        ref = FlowRef(head.namespace, head.flow_id, head.flow_revision)
        if overdue:
            publish([run_task_message(ref, execution_id, task, run.parent_task_run_id,
                                      run.value, run.iteration, run.value_path)
                      for task, run in overdue])
        elif head.state.current == State.CREATED:
            resume_start(self.runtime.app, flow, head, store=self.store)
        else:
            engine = Engine(self.runtime, head, flow)
            engine.resume(runs)
            engine.flush()
        self.store.append_log(LogEntry(
            execution_id, None, None, "WARN",
            f"the execution had not moved for {self.stall_after:.0f} s with nothing running "
            "(a message lost with a worker): what it was waiting for was sent again"))
        log.info("execution %s had stalled: resumed", execution_id)
        return True

    def _retry_overdue(self, task: Task, run: TaskRun) -> bool:
        """A task run waiting to be retried well past its longest possible delay:
        the worker holding the retry's delayed message died."""
        if run.state.current != State.RETRYING or isinstance(task, FlowableTask) or \
                task.retry is None:
            return False
        entered = max((h.date for h in run.state.histories if h.state == State.RETRYING),
                      default=None)
        if entered is None:
            return False
        longest = max(task.retry.delay(len(run.attempts)).total_seconds(),
                      float(getattr(task.retry, "max_interval", timedelta()).total_seconds()))
        return (now() - entered).total_seconds() > longest + self.stall_after

    def _backlog(self, queues: set[str]) -> bool:
        if self._broker is None:
            return False
        return any(self._broker.llen(queue) for queue in queues)

    def run(self, stop: threading.Event, interval: float = SWEEP_SECONDS) -> None:
        while not stop.wait(interval):
            try:
                self.sweep()
                if time.monotonic() - self._stall_checked >= STALL_CHECK_SECONDS:
                    self._stall_checked = time.monotonic()
                    self.nudge_stalled()
            except (HarrierError, redis.RedisError, KombuError, OSError) as exc:
                self._up_since = None
                log.warning("lost task runs not checked: %s", exc)
