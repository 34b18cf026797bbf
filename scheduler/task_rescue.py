"""Task runs whose worker died are run again within seconds, not when the
broker's visibility timeout (an hour) passes: every scheduler replica looks
every 2 s for running attempts whose heartbeats stopped, exactly one replica
claims each (compare-and-set in Redis) and sends the task again; the worker
that takes it records the lost attempt as failed and starts a new one. In an
execution being killed, the lost run ends KILLED instead."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis
from celery import Celery
from kombu.exceptions import KombuError

from harrier.common.dispatch import FlowRef, publish, run_task_message
from harrier.common.errors import ExecutionNotFound, FlowNotFound, HarrierError
from harrier.common.execution import LogEntry, TaskRun
from harrier.common.redis_store import RedisStore
from harrier.common.settings import Settings
from harrier.common.state import State, transition
from harrier.common.task import FlowableTask
from harrier.worker.engine import Engine
from harrier.worker.runtime import Runtime

log = logging.getLogger("harrier.scheduler.rescue")

SWEEP_SECONDS = 2.0
# A re-sent task has this long to start (all workers may be busy) before it
# counts as lost again and is sent once more.
HOLD_SECONDS = 300.0
_STOPPING = (State.KILLING, State.KILLED, State.CANCELLED)


class TaskRescue:
    """One replica's sweeper: sweep() once, or run(stop) every SWEEP_SECONDS."""

    def __init__(self, store: RedisStore, app: Celery, settings: Settings, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.runtime = Runtime(settings, store, app)
        self.lost_after = float(settings.task_lost_after)
        self.clock = clock
        self._up_since: float | None = None  # monotonic: since Redis answers us

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
        if state in _STOPPING or state.terminated:
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

    def run(self, stop: threading.Event, interval: float = SWEEP_SECONDS) -> None:
        while not stop.wait(interval):
            try:
                self.sweep()
            except (HarrierError, redis.RedisError, KombuError, OSError) as exc:
                self._up_since = None
                log.warning("lost task runs not checked: %s", exc)
