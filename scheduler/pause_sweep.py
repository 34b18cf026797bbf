"""A second way for a Pause's pauseDuration to end it: the countdown message
the Pause sent is the first (worker/tasks/pause.py); should the broker lose it,
every scheduler replica looks every 15 s for paused executions whose Pause is
overdue and sends the expiry again. Ending a pause is a compare-and-set on the
execution's PAUSED state (worker/pauses.py), so a second expiry, or one that
meets a resume, does nothing."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import redis
from celery import Celery
from kombu.exceptions import KombuError

from harrier.common.dispatch import FlowRef, advance_message, publish
from harrier.common.errors import ExecutionNotFound, FlowNotFound, HarrierError
from harrier.common.execution import WAITING
from harrier.common.settings import Settings
from harrier.common.state import State
from harrier.common.store import ExecutionQuery, ExecutionStore
from harrier.worker.pauses import PAUSE_EXPIRED, PAUSE_TYPE, Expiring
from harrier.worker.runtime import Runtime

log = logging.getLogger("harrier.scheduler.pauses")

SWEEP_SECONDS = 15.0
# The countdown message normally ends the pause on time; the sweep steps in
# only this long after it is due.
GRACE = timedelta(seconds=30)
MAX_PER_SWEEP = 1000


class PauseSweep:
    def __init__(self, store: ExecutionStore, app: Celery, settings: Settings) -> None:
        self.store = store
        self.runtime = Runtime(settings, store, app)

    def sweep(self, now: datetime | None = None) -> list[str]:
        """Send the expiry of every overdue Pause; the task run ids it was sent for."""
        now = now or datetime.now(UTC)
        paused, _ = self.store.search_executions(
            ExecutionQuery(states=(State.PAUSED,), limit=MAX_PER_SWEEP))
        sent = []
        for head in paused:
            try:
                flow = self.runtime.flow(head.namespace, head.flow_id, head.flow_revision)
                runs = self.store.task_runs(head.id)
            except (ExecutionNotFound, FlowNotFound):
                continue
            ref = FlowRef(head.namespace, head.flow_id, head.flow_revision)
            for run in runs:
                if run.state.current != State.PAUSED or WAITING not in run.outputs:
                    continue
                try:
                    task = flow.index.task(run.task_id)
                except KeyError:
                    continue
                expiry = task.expiry() if isinstance(task, Expiring) else None
                if PAUSE_TYPE not in task.type_names or expiry is None:
                    continue
                duration = expiry[0]
                paused_at = next((h.date for h in reversed(run.state.histories)
                                  if h.state == State.PAUSED), None)
                if paused_at is not None and now >= paused_at + duration + GRACE:
                    publish([advance_message(ref, head.id, PAUSE_EXPIRED, task_id=run.id)])
                    sent.append(run.id)
                    log.info("pause %s of execution %s is overdue: expiry sent again",
                             run.task_id, head.id)
        return sent

    def run(self, stop: threading.Event, interval: float = SWEEP_SECONDS) -> None:
        while not stop.wait(interval):
            try:
                self.sweep()
            except (HarrierError, redis.RedisError, KombuError, OSError) as exc:
                log.warning("overdue pauses not checked: %s", exc)
