"""io.kestra.plugin.core.flow.ForEach and the older EachSequential and
EachParallel: run a block of tasks once per value of a list.

The engine runs the iterations (FlowControl.run_each): it keeps the values
beside the loop's task run and starts an iteration when a place in the window
frees up, so a loop over 10,000 values costs each iteration the same as a loop
over ten. As in Kestra, values are made distinct, nulls are an error, and a
value that is not a string is passed on as compact JSON."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, field_validator

from harrier.common.errors import HarrierError
from harrier.common.execution import ITEM_MARK
from harrier.common.flow import FlowOutput
from harrier.common.storage import is_uri
from harrier.common.task import FlowableTask, FlowControl, Task, register_task
from harrier.worker.template_context import loop_value_text

# A rendered `values` larger than this is refused: each value is one block run.
MAX_VALUES = 100_000
# Starts the stored value of an iteration of a Loop over a map ([key, value]).
MAP_ENTRY = "\x1f"


class _Loop(FlowableTask):
    is_loop = True

    def _values_property(self) -> Any:
        raise NotImplementedError

    def window(self) -> int:
        raise NotImplementedError

    def start(self, ctl: FlowControl) -> None:
        values = loop_values(ctl.render(self._values_property(), self._values_name()),
                             self._values_name())
        ctl.run_each("tasks", values, window=self.window())

    def _values_name(self) -> str:
        return "values"


def check_values(value: object, name: str) -> object:
    """Validation of a literal `values`: a list, or a string that is a template
    or a JSON list."""
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        if "{{" in value or "{%" in value:
            return value
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"{name} must be a list, a JSON list or an expression; found "
                             f"{value[:80]!r}") from None
        if not isinstance(parsed, list):
            raise ValueError(f"{name} must be a list; the JSON {value[:80]!r} is a "
                             f"{type(parsed).__name__}")
        return value
    raise ValueError(f"{name} must be a list, a JSON list or an expression; found "
                     f"{type(value).__name__} {value!r}")


def loop_values(rendered: object, name: str) -> list[str]:
    """The values a loop runs over, from its rendered property: a list, or a
    string holding a JSON list (what an expression renders to)."""
    if isinstance(rendered, str):
        text = rendered
        try:
            rendered = json.loads(text)
        except json.JSONDecodeError:
            raise HarrierError(f"{name} must render to a JSON list; got "
                               f"{text[:200]!r}") from None
    if not isinstance(rendered, list):
        raise HarrierError(f"{name} must render to a list; got a {type(rendered).__name__}: "
                           f"{str(rendered)[:200]!r}")
    if len(rendered) > MAX_VALUES:
        raise HarrierError(f"{name} has {len(rendered)} values; at most {MAX_VALUES} are "
                           "allowed (split the work with subflows)")
    nulls = sum(1 for value in rendered if value is None)
    if nulls:
        raise HarrierError(f"{name} holds {nulls} null value(s): {str(rendered)[:200]}")
    return list(dict.fromkeys(loop_value_text(value) for value in rendered))


@register_task("io.kestra.plugin.core.flow.ForEach")
class ForEach(_Loop):
    """Each value's tasks run in order; `concurrencyLimit` values at a time
    (Kestra's default 1; 0: all at once)."""

    values: Any
    tasks: list[Task] = Field(min_length=1)
    concurrency_limit: int = Field(1, ge=0, alias="concurrencyLimit")

    _check = field_validator("values")(classmethod(
        lambda cls, value: check_values(value, "values")))

    def _values_property(self) -> Any:
        return self.values

    def window(self) -> int:
        return self.concurrency_limit


@register_task("io.kestra.plugin.core.flow.EachSequential",
               "io.kestra.core.tasks.flows.EachSequential")
class EachSequential(_Loop):
    """Kestra's older loop: one value after the other, its tasks in order."""

    value: Any
    tasks: list[Task] = Field(min_length=1)

    _check = field_validator("value")(classmethod(
        lambda cls, value: check_values(value, "value")))

    def _values_property(self) -> Any:
        return self.value

    def _values_name(self) -> str:
        return "value"

    def window(self) -> int:
        return 1


@register_task("io.kestra.plugin.core.flow.EachParallel",
               "io.kestra.core.tasks.flows.EachParallel")
class EachParallel(_Loop):
    """Kestra's older parallel loop: every value's tasks at once. `concurrent`
    limits how many values run at a time (0: no limit); a value's tasks run
    together (with one task, or a Sequential, as Kestra's examples do, this is
    Kestra's count of concurrent tasks)."""

    value: Any
    tasks: list[Task] = Field(min_length=1)
    concurrent: int = Field(0, ge=0)

    _check = field_validator("value")(classmethod(
        lambda cls, value: check_values(value, "value")))

    def _values_property(self) -> Any:
        return self.value

    def _values_name(self) -> str:
        return "value"

    def window(self) -> int:
        return self.concurrent

    def iteration_window(self) -> int:
        return 0


@register_task("io.kestra.plugin.core.flow.Loop")
class Loop(_Loop):
    """Kestra 2.0's loop: each iteration is an isolated sub-execution of the
    same flow revision (worker.loop_runs), `concurrencyLimit` at a time
    (default 0: all). Every task of an iteration, nested or not, reads
    `item.value`, `item.index` (and `item.key` over a map); `outputs.task`
    inside it is that iteration's run. Outside the loop an iteration's tasks
    are not visible: declared `outputs` are rendered at the end of each
    iteration and listed in the loop's `outputs` output.

    Followed: Kestra's Loop.java and LoopExecutionEventMessageHandler (05f736ba):
    with `transmitFailed` (default) the first FAILED or KILLED iteration ends
    the loop FAILED and starts no other (those running finish on their own);
    without it the loop ends SUCCESS whatever its iterations did. `breakWhen`
    is rendered after each iteration with `item` and `iteration.executionId /
    state / outputs`: once true, no other iteration starts."""

    runs_executions = True

    values: Any
    tasks: list[Task] = Field(min_length=1)
    concurrency_limit: int = Field(0, ge=0, alias="concurrencyLimit")
    transmit_failed: bool = Field(True, alias="transmitFailed")
    outputs: list[FlowOutput] = Field(default_factory=list)
    # FETCH: each iteration's outputs kept in the loop's run; STORE: written to
    # a file of the internal storage (its `uri` kept instead); AUTO: STORE when
    # `values` is a storage URI.
    fetch_type: Literal["AUTO", "FETCH", "STORE"] = Field("AUTO", alias="fetchType")
    break_when: str | None = Field(None, alias="breakWhen")

    @field_validator("values")
    @classmethod
    def _check_values(cls, value: object) -> object:
        if isinstance(value, dict):
            return value  # a map: one iteration per entry (item.key, item.value)
        if is_uri(value):
            return value  # a file of the internal storage: one iteration per line
        return check_values(value, "values")

    @field_validator("retry")
    @classmethod
    def _no_retry(cls, value: object) -> object:
        if value is not None:
            raise ValueError("retry is not supported on a Loop (its iterations are executions "
                             "of their own): put the retry on the tasks inside it")
        return value

    def _values_property(self) -> Any:
        return self.values

    def window(self) -> int:
        return self.concurrency_limit

    def start(self, ctl: FlowControl) -> None:
        rendered = ctl.render(self.values, "values")
        from_file = is_uri(rendered)
        store = self.fetch_type == "STORE" or (self.fetch_type == "AUTO" and from_file)
        if from_file:
            # One iteration per line of the file; a line that is JSON is that value.
            lines = ctl.read_lines(str(rendered), MAX_VALUES + 1)
            ctl.run_isolated(loop_values([_line_value(line) for line in lines if line.strip()],
                                         "values"), window=self.window(), store_outputs=store)
            return
        if isinstance(rendered, str):
            try:
                parsed = json.loads(rendered)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                rendered = parsed
        if isinstance(rendered, dict):
            if len(rendered) > MAX_VALUES:
                raise HarrierError(f"values has {len(rendered)} entries; at most {MAX_VALUES} "
                                   "are allowed")
            # Each iteration's value carries its key: MAP_ENTRY + [key, value] as JSON.
            entries = [MAP_ENTRY + json.dumps([str(key), loop_value_text(value)])
                       for key, value in rendered.items()]
        else:
            entries = loop_values(rendered, "values")
        ctl.run_isolated(entries, window=self.window(), store_outputs=store)

    def path_element(self, index: int, value: str) -> str:
        return ITEM_MARK + json.dumps(self.item(index, value), separators=(",", ":"))

    @staticmethod
    def item(index: int, value: str) -> dict[str, Any]:
        """Kestra's `item` of an iteration: index, value and, over a map, key."""
        if value.startswith(MAP_ENTRY):
            key, text = json.loads(value[len(MAP_ENTRY):])
            return {"index": index, "key": key, "value": text}
        return {"index": index, "value": value}

    def iteration_value(self, value: str) -> str:
        if value.startswith(MAP_ENTRY):
            return str(json.loads(value[len(MAP_ENTRY):])[1])
        return value


def _line_value(line: str) -> object:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return line
