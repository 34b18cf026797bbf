"""io.kestra.plugin.core.runner.Process: run a task's script as a subprocess
in its own process group, streaming each line as it is printed. The group
dies with the worker process (group_reaper), so a task never outlives it."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from harrier.worker.runners import group_reaper
from harrier.worker.runners.base import RunRequest, RunResult
from harrier.worker.runners.output_protocol import merge_outputs, parse_protocol_line

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
    env = dict(_worker_environment() if base is None else _public(base))
    env.update(extra)
    return env


@lru_cache(maxsize=1)
def _worker_environment() -> dict[str, str]:
    # Read once per process: copying os.environ for every task costs more than
    # running `true`.
    return _public(os.environ)


def _public(environ: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in environ.items() if not k.startswith(_PRIVATE_PREFIXES)}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "/usr/bin:/bin")
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
        group_reaper.register(process.pid)
        try:
            return self._follow(process, request)
        finally:
            if process.poll() is None:
                # Left before the task ended: the worker process is stopping
                # (SIGTERM reached the pool process too). The task goes with it
                # rather than run on unwatched once it is unregistered.
                _signal_group(process.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)
            group_reaper.unregister(process.pid)

    def _follow(self, process: subprocess.Popen[bytes], request: RunRequest) -> RunResult:
        outputs: dict[str, Any] = {}
        tails = {"stdout": deque[str](maxlen=_TAIL), "stderr": deque[str](maxlen=_TAIL)}
        streams = _LineStreams(process, request, outputs, tails)
        deadline = None if request.timeout is None else time.monotonic() + request.timeout
        timed_out = cancelled = False
        # One thread reads both pipes and watches the clock: no reader threads to
        # start per task, which matters when tasks take milliseconds.
        while streams.open:
            streams.pump(_slice(deadline))
            if request.cancel.is_set():
                cancelled = True
            elif deadline is not None and time.monotonic() >= deadline:
                timed_out = True
            if cancelled or timed_out:
                self._stop_group(process)
                streams.drain(2.0)
                break
        try:
            process.wait(timeout=5.0 if (cancelled or timed_out) else None)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
        streams.close()
        return RunResult(
            exit_code=process.returncode if process.returncode is not None else -9,
            outputs=outputs, stdout_tail=list(tails["stdout"]),
            stderr_tail=list(tails["stderr"]), timed_out=timed_out, cancelled=cancelled)

    def _stop_group(self, process: subprocess.Popen[bytes]) -> None:
        _signal_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):  # SIGTERM ignored: SIGKILL below
            process.wait(timeout=self.kill_grace)
        # The leader is gone or stubborn; children that ignored SIGTERM go too.
        _signal_group(process.pid, signal.SIGKILL)


def _slice(deadline: float | None) -> float:
    if deadline is None:
        return 0.1
    return max(0.0, min(0.1, deadline - time.monotonic()))


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone: nothing to stop
        os.killpg(pid, sig)


class _LineStreams:
    """stdout and stderr of one process, read with a selector, split into lines."""

    def __init__(self, process: subprocess.Popen[bytes], request: RunRequest,
                 outputs: dict[str, Any], tails: dict[str, deque[str]]) -> None:
        self._request = request
        self._outputs = outputs
        self._tails = tails
        self._selector = selectors.DefaultSelector()
        self._partial: dict[str, bytes] = {}
        for stream, name in ((process.stdout, "stdout"), (process.stderr, "stderr")):
            if stream is not None:
                os.set_blocking(stream.fileno(), False)
                self._selector.register(stream, selectors.EVENT_READ, name)
                self._partial[name] = b""

    @property
    def open(self) -> bool:
        return bool(self._selector.get_map())

    def pump(self, timeout: float) -> None:
        for key, _ in self._selector.select(timeout):
            name = key.data
            stream = key.fileobj
            chunk = os.read(stream.fileno(), 65536)  # type: ignore[union-attr]
            if not chunk:
                self._selector.unregister(stream)
                if self._partial[name]:
                    self._line(name, self._partial[name])
                    self._partial[name] = b""
                continue
            lines = (self._partial[name] + chunk).split(b"\n")
            self._partial[name] = lines.pop()
            for raw in lines:
                self._line(name, raw)

    def drain(self, seconds: float) -> None:
        """After a kill: read what is left, but never wait on a stuck pipe for long."""
        deadline = time.monotonic() + seconds
        while self.open and time.monotonic() < deadline:
            self.pump(0.05)

    def close(self) -> None:
        for key in list(self._selector.get_map().values()):
            self._selector.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()

    def _line(self, name: str, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        message = parse_protocol_line(line)
        if message is not None:
            merge_outputs(self._outputs, message)
            for log in message.get("logs") or []:
                if isinstance(log, dict) and "message" in log:
                    self._request.on_line(name, str(log["message"]))
            return
        self._tails[name].append(line)
        self._request.on_line(name, line)
