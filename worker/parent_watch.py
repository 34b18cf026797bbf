"""Prefork pool processes die with their worker: a pool process whose parent
(the main worker process) died, killed with -9 say, would otherwise finish
its task as an orphan nobody accounts for, while the task is run again
elsewhere. With it go the tasks it runs (see runners/supervise.sh)."""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5


def die_with_parent(interval: float = POLL_SECONDS) -> None:
    """In a pool process: a daemon thread that kills this process as soon as
    its parent is gone (it has been re-parented)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(interval)
        log.error("the worker process %d died: pool process %d stops with it", parent,
                  os.getpid())
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="harrier-parent-watch", daemon=True).start()
