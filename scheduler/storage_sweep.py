"""Retention of internal storage: an execution's files go when the execution
does. Deleting through the API removes them at once; executions that expire
by the store's retention TTL leave files a periodic sweep removes."""

from __future__ import annotations

import logging
import threading

from harrier.common.errors import ExecutionNotFound, HarrierError
from harrier.common.settings import Settings
from harrier.common.storage import storage_for, sweep
from harrier.common.store import ExecutionStore

log = logging.getLogger(__name__)

SWEEP_EVERY_SECONDS = 3600.0


def sweep_storage(settings: Settings, store: ExecutionStore, *, grace: float = 3600.0) -> int:
    """Remove the files of executions the store no longer has; how many went."""

    def exists(execution_id: str) -> bool:
        try:
            store.execution_state(execution_id)
        except ExecutionNotFound:
            return False
        return True

    return sweep(storage_for(settings.storage_root), exists, grace=grace)


def sweep_forever(settings: Settings, store: ExecutionStore, stop: threading.Event) -> None:
    while True:
        try:
            removed = sweep_storage(settings, store)
            if removed:
                log.info("storage: removed the files of %d expired execution(s)", removed)
        except HarrierError as exc:  # the store is down: try again next round
            log.warning("storage sweep skipped: %s", exc)
        if stop.wait(SWEEP_EVERY_SECONDS):
            return
