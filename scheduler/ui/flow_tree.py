"""What the UI needs to know about a flow beyond its JSON: its task tree as
the timeline nests it, how an execution was triggered, and the fields of
the forms generated from typed inputs (the flow's Run form, a Pause's
Resume form), read back as the API takes them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from harrier.common.errors import FlowValidationError
from harrier.common.flow import Flow, parse_flow
from harrier.common.inputs import InputSpec, InputType, to_json_value
from harrier.common.store import FlowRecord
from harrier.common.task import Task

SPARK_TYPES = ("io.kestra.plugin.spark.",)


@lru_cache(maxsize=256)
def _parse_cached(namespace: str, flow_id: str, revision: int, source: str) -> Flow | None:
    try:
        return parse_flow(source, f"{namespace}.{flow_id}")
    except FlowValidationError:
        return None


def parsed(record: FlowRecord) -> Flow | None:
    """A stored revision, parsed once per process (revisions never change; a
    500-task flow takes ~100 ms to validate). None when it no longer validates."""
    return _parse_cached(record.namespace, record.flow_id, record.revision, record.source)


def _node(task: Task) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, child in task.children():
        groups.setdefault(path.rsplit("[", 1)[0], []).append(_node(child))
    layout = getattr(type(task), "layout", None) if task.is_flowable else None
    node: dict[str, Any] = {"id": task.id, "type": task.type, "short": task.type.rsplit(".", 1)[-1],
                            "layout": layout,
                            "groups": [{"label": k, "tasks": v} for k, v in groups.items()]}
    if task.type.startswith(SPARK_TYPES):
        node["spark"] = {"submitter": str(getattr(task, "submitter", None) or "cli")}
    return node


def task_tree(flow: Flow) -> dict[str, Any]:
    """{"groups": [{"label": "tasks" | "errors" | "finally", "tasks": [node...]}]}
    where a node is {id, type, short, layout, groups, spark?}."""
    groups = [("tasks", flow.tasks), ("errors", flow.errors), ("finally", flow.finally_)]
    return {"groups": [{"label": label, "tasks": [_node(t) for t in tasks]}
                       for label, tasks in groups if tasks]}


def trigger_kind(trigger: Mapping[str, Any] | None) -> dict[str, str]:
    """How an execution started, in words: cron tick, backfill, webhook, API."""
    if not trigger:
        return {"kind": "manual", "detail": ""}
    kind = str(trigger.get("type") or "")
    if kind == "api":
        return {"kind": "API", "detail": ""}
    if kind.endswith("Schedule"):
        label = "backfill" if trigger.get("backfill") else "cron tick"
        return {"kind": label, "detail": str(trigger.get("date") or "")}
    if kind.endswith("Webhook"):
        return {"kind": "webhook", "detail": str(trigger.get("id") or "")}
    return {"kind": kind.rsplit(".", 1)[-1] or "unknown", "detail": ""}


@dataclass(frozen=True)
class FormField:
    """One input of the Run form: the HTML control that fits its type."""

    id: str
    type: str
    control: str  # the form control: text, number, checkbox, select, date, file, ...
    label: str
    description: str
    required: bool
    value: Any
    choices: tuple[str, ...] = ()
    step: str = ""
    hint: str = ""


_CONTROLS = {
    InputType.INT: "number", InputType.FLOAT: "number", InputType.BOOLEAN: "checkbox",
    InputType.BOOL: "checkbox", InputType.DATE: "date", InputType.DATETIME: "datetime",
    InputType.TIME: "time", InputType.JSON: "textarea", InputType.YAML: "textarea",
    InputType.ARRAY: "textarea", InputType.SELECT: "select", InputType.ENUM: "select",
    InputType.MULTISELECT: "multiselect", InputType.SECRET: "password",
    InputType.EMAIL: "email", InputType.URI: "url", InputType.FILE: "file",
}


def _default_text(spec: InputSpec) -> Any:
    value = spec.defaults
    if value is None:
        return None
    if isinstance(value, str):
        return value
    plain = to_json_value(value)
    if spec.type in (InputType.JSON, InputType.ARRAY, InputType.MULTISELECT) or isinstance(
            plain, (dict, list)):
        return json.dumps(plain)
    return plain


def form_fields(specs: Iterable[InputSpec], given: Mapping[str, Any] | None = None
                ) -> list[FormField]:
    fields = []
    for spec in specs:
        value = (given or {}).get(spec.id, _default_text(spec))
        control = _CONTROLS.get(spec.type, "text")
        hint = spec.expected
        fields.append(FormField(
            id=spec.id, type=spec.type.value, control=control,
            label=spec.display_name or spec.id, description=spec.description or "",
            required=spec.required and spec.defaults is None, value=value,
            choices=tuple(spec.values or ()),
            step="1" if spec.type == InputType.INT else "any" if spec.type == InputType.FLOAT
            else "", hint=hint))
    return fields


_INPUT_PROBLEM = re.compile(r"^(?:unknown )?input '([^']+)'")


def form_inputs(specs: Iterable[InputSpec], values: Mapping[str, Any]) -> dict[str, Any]:
    """Form values as the API takes them: empty optional fields are not given,
    a checkbox is its last value (a hidden `false` precedes it)."""
    kinds = {spec.id: spec.type for spec in specs}
    given: dict[str, Any] = {}
    for name, value in values.items():
        if kinds.get(name) in (InputType.BOOLEAN, InputType.BOOL) and isinstance(value, list):
            value = value[-1]
        if value == "" or value == []:
            continue
        given[name] = value
    return given


def split_problems(problems: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Input problems by field (shown next to it) and the others (above the form)."""
    by_field: dict[str, list[str]] = {}
    general: list[str] = []
    for problem in problems:
        match = _INPUT_PROBLEM.match(problem)
        if match and not problem.startswith("unknown"):
            by_field.setdefault(match.group(1), []).append(problem)
        else:
            general.append(problem)
    return by_field, general
