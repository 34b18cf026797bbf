"""io.kestra.plugin.core.runner.Process: run a task's script as a subprocess
in its own process group, streaming each line as it is printed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from worker.runners.base import RunRequest, RunResult
from worker.runners.output_protocol import merge_outputs, parse_protocol_line

TYPE_NAMES = ("io.kestra.plugin.core.runner.Process", "PROCESS")
_TAIL = 20
# Worker-only variables never reach task processes: secrets are opt-in via secret().
_PRIVATE_PREFIXES = ("SECRET_", "HARRIER_")


def task_environment(extra: Mapping[str, str],
                     base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The worker's environment minus its private variables, plus the task's env.

    The worker's own Python directory goes first on PATH so `python3`, the
    `kestra` helper and pip's `spark-submit` resolve to what the worker has.
    """
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not k.startswith(_PRIVATE_PREFIXES)}
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    env.update(extra)
    return env


class ProcessRunner:
    """Runs the script with the worker's own operating system account."""

    def __init__(self, kill_grace: float = 5.0) -> None:
        self.kill_grace = kill_grace

    def run(self, request: RunRequest) -> RunResult:
        request.workdir.mkdir(parents=True, exist_ok=True)
        script = "\n".join(request.commands)
        try:
            process = subprocess.Popen(
                [*request.interpreter, script], cwd=request.workdir,
                env=task_environment(request.env), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: kill reaches children
            )
        except OSError as exc:
            return RunResult(exit_code=127, stderr_tail=[
                f"cannot start {request.interpreter[0]}: {exc.strerror}"])
        outputs: dict[str, Any] = {}
        tails = {"stdout": deque[str](maxlen=_TAIL), "stderr": deque[str](maxlen=_TAIL)}
        lock = threading.Lock()
        readers = [
            threading.Thread(target=_pump, daemon=True,
                             args=(stream, name, request, outputs, tails[name], lock))
            for stream, name in ((process.stdout, "stdout"), (process.stderr, "stderr"))
        ]
        for reader in readers:
            reader.start()
        finished = threading.Event()
        threading.Thread(target=lambda: (process.wait(), finished.set()), daemon=True).start()

        deadline = None if request.timeout is None else time.monotonic() + request.timeout
        timed_out = cancelled = False
        while not finished.wait(_slice(deadline)):
            if request.cancel.is_set():
                cancelled = True
            elif deadline is not None and time.monotonic() >= deadline:
                timed_out = True
            if cancelled or timed_out:
                self._stop_group(process, finished)
                break
        for reader in readers:
            reader.join(timeout=2.0)
        if any(reader.is_alive() for reader in readers):
            # A background child still holds the pipes open: the task is over, so
            # its process group goes with it.
            _signal_group(process.pid, signal.SIGKILL)
            for reader in readers:
                reader.join(timeout=2.0)
        return RunResult(
            exit_code=process.returncode if process.returncode is not None else -9,
            outputs=outputs, stdout_tail=list(tails["stdout"]),
            stderr_tail=list(tails["stderr"]), timed_out=timed_out, cancelled=cancelled)

    def _stop_group(self, process: subprocess.Popen[bytes], finished: threading.Event) -> None:
        _signal_group(process.pid, signal.SIGTERM)
        if not finished.wait(self.kill_grace):
            _signal_group(process.pid, signal.SIGKILL)
            finished.wait(5.0)
        else:
            # The leader exited on SIGTERM; children that ignored it must go too.
            _signal_group(process.pid, signal.SIGKILL)


def _slice(deadline: float | None) -> float:
    if deadline is None:
        return 0.1
    return max(0.0, min(0.1, deadline - time.monotonic()))


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone: nothing to stop
        os.killpg(pid, sig)


def _pump(stream: IO[bytes] | None, name: str, request: RunRequest, outputs: dict[str, Any],
          tail: deque[str], lock: threading.Lock) -> None:
    if stream is None:
        return
    with stream:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            message = parse_protocol_line(line)
            if message is not None:
                with lock:
                    merge_outputs(outputs, message)
                for log in message.get("logs") or []:
                    if isinstance(log, dict) and "message" in log:
                        request.on_line(name, str(log["message"]))
                continue
            tail.append(line)
            request.on_line(name, line)
