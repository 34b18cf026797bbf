"""Removing attempt working directories off the task's critical path: on a
disk, creating and removing a directory costs milliseconds (2.6 ms measured
on the development machine's ext4), as much as running `true`, so the task
reports its end first and a background thread of the worker process removes
its directory just after. A worker that starts removes the directories its
crashed predecessors left behind."""

from __future__ import annotations

import os
import queue
import shutil
import threading
import time
from pathlib import Path

from harrier.common.errors import ExecutionNotFound
from harrier.common.state import State
from harrier.common.store import ExecutionStore


class _Marker:
    def __init__(self, event: threading.Event) -> None:
        self.event = event


_pending: queue.SimpleQueue[Path | _Marker] = queue.SimpleQueue()
_lock = threading.Lock()
_owner_pid = 0


def remove_later(path: Path) -> None:
    """Remove `path` (a directory tree) soon, in this process's remover thread."""
    _ensure_thread()
    _pending.put(path)


def wait_removed(timeout: float = 10.0) -> None:
    """Block until everything queued so far is removed (shutdown, tests)."""
    done = threading.Event()
    _ensure_thread()
    _pending.put(_Marker(done))
    done.wait(timeout)


def _ensure_thread() -> None:
    global _owner_pid
    # A prefork child inherits the queue but not the thread: one per process.
    if _owner_pid == os.getpid():
        return
    with _lock:
        if _owner_pid != os.getpid():
            threading.Thread(target=_remove_forever, daemon=True,
                             name="harrier-workdir-remover").start()
            _owner_pid = os.getpid()


def _remove_forever() -> None:
    while True:
        item = _pending.get()
        if isinstance(item, _Marker):
            item.event.set()
            continue
        shutil.rmtree(item, ignore_errors=True)


def attempt_dir(work_root: Path, execution_id: str, task_run_id: str, attempt: int) -> Path:
    """One flat directory per attempt: one mkdir, not four, on a hot path."""
    return work_root / f"{execution_id}-{task_run_id}-{attempt}"


def remove_crashed(work_root: Path, store: ExecutionStore, *, lease: float) -> list[Path]:
    """Remove the directories of attempts that ended badly or whose worker died
    (still RUNNING, no heartbeat for `lease` seconds). Those of live attempts (a
    worker beside this one runs them) stay, and so do successful ones' (their
    files are in storage; the directory is normally gone with the attempt)."""
    removed: list[Path] = []
    if not work_root.is_dir():
        return removed
    for path in work_root.iterdir():
        parts = path.name.split("-")
        if len(parts) != 3 or not all(p.isalnum() for p in parts) or not parts[2].isdigit() \
                or not path.is_dir():
            continue
        execution_id, run_id, number = parts[0], parts[1], int(parts[2])
        try:
            run = store.task_run(execution_id, run_id)
        except ExecutionNotFound:
            run = None
        if run is not None and 0 < number <= len(run.attempts):
            state = run.attempts[number - 1].state.current
            if state in (State.SUCCESS, State.WARNING):
                continue
            if state == State.RUNNING:
                beat = store.last_beat(execution_id, run_id)
                if beat is not None and time.time() - beat.timestamp() < lease:
                    continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
