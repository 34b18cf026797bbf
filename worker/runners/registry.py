"""Task runner types by Kestra name; picks the runner a task asked for, or the
deployment's default (Process unless HARRIER_DEFAULT_TASK_RUNNER says docker)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harrier.common.errors import TaskFailed
from harrier.common.settings import Settings
from harrier.worker.runners.base import TaskRunner
from harrier.worker.runners.process import ProcessRunner


def _process(settings: Settings) -> TaskRunner:
    return ProcessRunner()


def _docker(settings: Settings) -> TaskRunner:
    # lazy: only workers that run Docker tasks pay for the Docker client
    from harrier.worker.runners.docker import DockerRunner

    return DockerRunner(host=settings.docker_host)


RUNNERS: dict[str, Callable[[Settings], TaskRunner]] = {
    "io.kestra.plugin.core.runner.Process": _process,
    "io.kestra.core.models.tasks.runners.types.ProcessTaskRunner": _process,
    "process": _process,
    "io.kestra.plugin.scripts.runner.docker.Docker": _docker,
    "io.kestra.core.models.tasks.runners.types.DockerTaskRunner": _docker,
    "docker": _docker,
}


def runner_for(task: Any, settings: Settings) -> TaskRunner:
    wanted = task.runner_type() if hasattr(task, "runner_type") else None
    name = wanted or settings.default_task_runner
    factory = RUNNERS.get(name) or RUNNERS.get(name.lower())
    if factory is None:
        known = ", ".join(k for k in RUNNERS if "." in k)
        raise TaskFailed(f"unknown task runner type {name!r}; known types: {known}",
                         retryable=False)
    return factory(settings)
