"""The exceptions Harrier raises, one small hierarchy written for the person
who wrote the YAML or called the API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class HarrierError(Exception):
    """Base class: every error Harrier raises on purpose derives from it."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document, located as precisely as we can."""

    source: str  # file name, or "<api>", "<string>" ...
    line: int | None  # 1-based
    column: int | None  # 1-based
    field: str  # "tasks[1].retry.interval"
    message: str  # what was expected and what was found

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class FlowValidationError(HarrierError):
    """A flow document is not valid; carries every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class InputError(HarrierError):
    """Execution inputs do not match the flow's typed inputs."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class TemplateError(HarrierError):
    """A template could not be rendered (syntax, missing variable, sandbox)."""


class TaskFailed(HarrierError):
    """A task attempt failed; the message is what the user sees on the task run."""

    def __init__(self, message: str, *, exit_code: int | None = None,
                 retryable: bool = True) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.retryable = retryable


class TaskTimeout(TaskFailed):
    """A task attempt ran past its `timeout` and was killed."""


class TaskKilled(TaskFailed):
    """A task attempt was stopped because its execution is being killed."""

    def __init__(self, message: str = "killed") -> None:
        super().__init__(message, retryable=False)


class SparkSubmissionError(TaskFailed):
    """Submitting a Spark application or following its driver failed."""


class HttpTaskError(TaskFailed):
    """An HTTP call of a task (Request, Download, a notification) failed: no
    answer in time, a refused connection, or an answer it did not accept."""


class DockerError(TaskFailed):
    """The Docker engine refused or failed a container operation."""


class ExecutionNotFound(HarrierError):
    """No execution with that id exists in the store."""


class FlowNotFound(HarrierError):
    """No flow with that namespace and id exists."""


class StorageError(HarrierError):
    """A kestra:// URI that is malformed, not allowed here, or names no file."""


class StoreUnavailable(HarrierError):
    """The execution store (Redis) cannot be reached."""


class IllegalTransition(HarrierError):
    """A state change that Kestra's state machine does not allow."""
