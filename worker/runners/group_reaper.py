"""Task process groups die with the worker process that started them.

One small watcher process per worker process (group_reaper.sh) holds the
groups of the tasks running there and kills them when that process dies: a
re-run elsewhere never overlaps an orphan. Registering a group is one write
to a pipe (microseconds), where a watcher per task cost a shell and a fork
per task (0.9 ms measured on `true`, as much as the task itself)."""

from __future__ import annotations

import os
import subprocess
import threading
from functools import cache
from importlib.resources import files

_lock = threading.Lock()
_owner_pid = 0
_write_fd = -1


@cache
def _script() -> str:
    text = files("harrier.worker.runners").joinpath("group_reaper.sh").read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not line.startswith("#"))


def _start() -> int:
    global _owner_pid, _write_fd
    read_fd, write_fd = os.pipe()  # not inheritable: tasks never hold the write end
    try:
        subprocess.Popen(["/bin/sh", "-c", _script(), "harrier-group-reaper"], stdin=read_fd,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)  # a kill of the worker's group spares it
    except OSError:
        os.close(write_fd)
        raise
    finally:
        os.close(read_fd)
    _owner_pid, _write_fd = os.getpid(), write_fd
    return write_fd


def _send(line: str) -> None:
    data = line.encode()
    with _lock:
        # A prefork child inherits the parent's state, not its watcher: one each.
        fd = _write_fd if _owner_pid == os.getpid() else _start()
        try:
            os.write(fd, data)
        except BrokenPipeError:  # the watcher was killed: start another
            os.close(fd)
            os.write(_start(), data)


def register(pgid: int) -> None:
    """Kill process group `pgid` if this process dies before unregister()."""
    _send(f"+{pgid}\n")


def unregister(pgid: int) -> None:
    _send(f"-{pgid}\n")
