"""The flow model: Kestra's YAML syntax parsed and validated into plain data,
with every problem reported as file:line:column, field path and expectation."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from harrier.common.errors import FlowValidationError, Problem
from harrier.common.flow_index import FlowIndex
from harrier.common.inputs import InputSpec, InputType
from harrier.common.plugin_defaults import PluginDefault, apply_defaults, parse_plugin_defaults
from harrier.common.retry import RetryPolicy
from harrier.common.task import Task, known_task_types, task_class
from harrier.common.template_check import template_problems
from harrier.common.triggers import TRIGGER_TYPES, Trigger
from harrier.common.yaml_source import YamlDocument, load_yaml

# The flow's pluginDefaults while its tasks are parsed.
_DEFAULTS: ContextVar[tuple[PluginDefault, ...]] = ContextVar("plugin_defaults", default=())
# Kestra properties Harrier does not have: named as such, not as "unknown"
# (tests/test_support_matrix.py keeps this list and the README in step).
UNSUPPORTED_FLOW_PROPERTIES = {
    "sla": "",
    "afterExecution": "",
    "checks": "",
    "listeners": " (deprecated in Kestra: use errors or finally)",
}
UNSUPPORTED_TASK_PROPERTIES = {
    "logToFile": "",
    "scheduleDate": " (a Subflow starts its child at once)",
    "restartBehavior": " (restarting a parent starts a new subflow execution, as "
                       "Kestra's NEW_EXECUTION)",
}

FLOW_ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$"
NAMESPACE_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$"


class Concurrency(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    limit: int = Field(ge=1)
    behavior: Literal["QUEUE", "CANCEL", "FAIL"] = "QUEUE"


class FlowOutput(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    id: str
    # The rendered value is checked and converted as an input of this type
    # would be; a value that does not fit fails the execution, as in Kestra.
    type: InputType = InputType.STRING
    value: Any = None
    description: str | None = None


class Flow(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", populate_by_name=True, frozen=True)

    id: str = Field(pattern=FLOW_ID_PATTERN)
    namespace: str = Field(pattern=NAMESPACE_PATTERN)
    revision: int | None = None
    description: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    inputs: list[InputSpec] = Field(default_factory=list)
    variables: dict[str, Any] = Field(default_factory=dict)
    tasks: list[Task] = Field(min_length=1)
    errors: list[Task] = Field(default_factory=list)
    finally_: list[Task] = Field(default_factory=list, alias="finally")
    triggers: list[Trigger] = Field(default_factory=list)
    disabled: bool = False
    concurrency: Concurrency | None = None
    # Kestra's flow-level retry: after a failure, the failed tasks run again in
    # the same execution (RETRY_FAILED_TASK) or a new execution starts over
    # (CREATE_NEW_EXECUTION); `errors` run once the retries are exhausted.
    retry: RetryPolicy | None = None
    outputs: list[FlowOutput] = Field(default_factory=list)
    deleted: bool = False

    source: str = Field("", exclude=True)  # the YAML as written, kept for revisions
    _index: FlowIndex | None = PrivateAttr(None)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: object) -> object:
        # Kestra accepts a map or a list of {key, value}.
        if isinstance(value, list):
            return {item["key"]: str(item["value"]) for item in value
                    if isinstance(item, dict) and "key" in item and "value" in item}
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.id

    @property
    def index(self) -> FlowIndex:
        """Where each task sits (built on first use, then kept with the flow)."""
        if self._index is None:
            self._index = FlowIndex(self)
        return self._index

    def all_tasks(self) -> Iterator[Task]:
        """Every task of the flow, depth first, including errors and finally."""
        def walk(tasks: list[Task]) -> Iterator[Task]:
            for task in tasks:
                yield task
                yield from walk([child for _, child in task.children()])
        yield from walk(self.tasks)
        yield from walk(self.errors)
        yield from walk(self.finally_)

    def task(self, task_id: str) -> Task:
        for task in self.all_tasks():
            if task.id == task_id:
                return task
        raise KeyError(task_id)

    def triggers_of(self, cls: type[Trigger]) -> list[Trigger]:
        return [t for t in self.triggers if isinstance(t, cls) and not t.disabled]


def load_flow_file(path: str | Path) -> Flow:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FlowValidationError([Problem(str(path), None, None, "",
                                           f"cannot read file: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise FlowValidationError([Problem(str(path), None, None, "",
                                           "file is not UTF-8 text")]) from None
    return parse_flow(text, str(path))


# Tasks in one flow, counting nested ones, errors and finally. A 14,764-task
# flow made 5.4 MB broker messages and ran at 2.6 tasks/s; real flows have tens.
MAX_FLOW_TASKS = 1000


def parse_flow(text: str, source: str = "<string>") -> Flow:
    """Parse and validate a flow; raise FlowValidationError listing every problem."""
    document = load_yaml(text, source)
    data = document.data
    if not isinstance(data, dict):
        found = "an empty document" if data is None else f"a {type(data).__name__}"
        raise FlowValidationError([document.problem(
            (), f"a flow must be a mapping with id, namespace and tasks; found {found}")])

    problems: list[Problem] = []
    fields: dict[str, Any] = _present(data, Flow)
    defaults: list[PluginDefault] = []
    for key in ("taskDefaults", "pluginDefaults"):  # the older name's entries apply first
        if key in fields:
            entries, bad = parse_plugin_defaults(fields.pop(key), key, document)
            defaults += entries
            problems += bad
    token = _DEFAULTS.set(tuple(defaults))
    try:
        for name in ("tasks", "errors", "finally"):
            if name in fields:
                fields[name] = _parse_task_list(fields[name], (name,), document, problems)
    finally:
        _DEFAULTS.reset(token)
    if "triggers" in fields:
        fields["triggers"] = _parse_triggers(fields["triggers"], document, problems)
    for key, hint in UNSUPPORTED_FLOW_PROPERTIES.items():
        if key in fields:
            problems.append(document.problem((key,), f"`{key}` is not supported yet{hint}"))
            fields.pop(key)
    if problems:
        # Do not validate the flow model over broken tasks: errors would double up.
        fields["tasks"] = [t for t in fields.get("tasks") or [] if isinstance(t, Task)]
    fields["source"] = text
    flow: Flow | None = None
    try:
        flow = Flow.model_validate(fields)
    except ValidationError as exc:
        problems.extend(_problems_from(exc, (), document, Flow))
    if flow is not None:
        count = sum(1 for _ in flow.all_tasks())
        if count > MAX_FLOW_TASKS:
            raise FlowValidationError([document.problem(("tasks",), (
                f"the flow has {count:,} tasks; the limit is {MAX_FLOW_TASKS:,} (every "
                "task travels in the flow's messages); split it into several flows"))])
        problems.extend(_duplicate_ids(flow, document))
        if not problems:
            problems.extend(template_problems(flow, _locator(document)))
    if problems:
        problems = [p for p in problems if not (problems and _is_noise(p, problems))]
        raise FlowValidationError(sorted(set(problems), key=_position))
    assert flow is not None
    return flow


def _present(raw: dict[Any, Any], model: type[BaseModel] | None = None) -> dict[Any, Any]:
    """The properties set to something: `defaults: null` is as if absent (as
    Jackson reads Kestra's flows), also inside nested models (`retry`,
    `concurrency`, a condition ...). Free-form maps (`variables`, `inputs` of
    a trigger, `env` ...) keep their nulls: there null is a value."""
    return {key: _nested_present(value, _field_models(model, key))
            for key, value in raw.items() if value is not None}


def _field_models(model: type[BaseModel] | None, key: Any) -> list[type[BaseModel]]:
    if model is None:
        return []
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return [m for m in _models_of(info.annotation) if not issubclass(m, Task)]
    return []


def _models_of(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) or () for m in _models_of(arg)]


def _nested_present(value: Any, models: list[type[BaseModel]]) -> Any:
    if not models:
        return value
    if isinstance(value, dict):
        # A union (retry: constant | exponential | random): the members agree on
        # which keys are models; a null is dropped either way.
        kept = {key: item for key, item in value.items() if item is not None}
        return {key: _nested_present(item, [m for model in models
                                            for m in _field_models(model, key)])
                for key, item in kept.items()}
    if isinstance(value, list):
        return [_nested_present(item, models) for item in value]
    return value


def _position(problem: Problem) -> tuple[int, int, str]:
    return problem.line or 0, problem.column or 0, problem.field


def _is_noise(problem: Problem, problems: list[Problem]) -> bool:
    # "tasks: at least 1 item" after every task was rejected says nothing new.
    return problem.field == "tasks" and "at least 1" in problem.message and len(problems) > 1


def _parse_task_list(raw: object, path: tuple[str | int, ...], document: YamlDocument,
                     problems: list[Problem]) -> object:
    if not isinstance(raw, list):
        problems.append(document.problem(path, f"expected a list of tasks, found "
                                         f"{_describe(raw)}"))
        return []
    parsed = [_parse_task(item, (*path, index), document, problems)
              for index, item in enumerate(raw)]
    return [task for task in parsed if task is not None]


def _parse_task(raw: object, path: tuple[str | int, ...], document: YamlDocument,
                problems: list[Problem]) -> Task | None:
    if not isinstance(raw, dict):
        problems.append(document.problem(path, f"expected a task (a mapping with id and "
                                         f"type), found {_describe(raw)}"))
        return None
    type_name = raw.get("type")
    if type_name is None:
        problems.append(document.problem(path, "missing required property 'type'"))
        return None
    cls = task_class(str(type_name))
    if cls is None:
        known = known_task_types()
        close = difflib.get_close_matches(str(type_name), known, n=1, cutoff=0.8)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        problems.append(document.problem(
            (*path, "type"),
            f"unknown task type {type_name!r}{hint} Known types: {', '.join(known)}"))
        return None
    fields = apply_defaults(_present(raw, cls), cls, _DEFAULTS.get())
    child_problems: list[Problem] = []
    for key, hint in UNSUPPORTED_TASK_PROPERTIES.items():
        if key in fields:
            child_problems.append(document.problem((*path, key),
                                                   f"`{key}` is not supported yet{hint}"))
            fields.pop(key)
    child_properties = cls.all_child_properties() if hasattr(cls, "all_child_properties") \
        else ()
    for name in child_properties:
        if name not in fields:
            continue
        value = fields[name]
        wrapper = getattr(cls, "child_wrappers", {}).get(name)
        if wrapper is not None:
            fields[name] = _parse_wrapped_tasks(value, (*path, name), wrapper, document,
                                                child_problems)
        elif isinstance(value, dict) and name in getattr(cls, "child_maps", ()):
            fields[name] = {key: _parse_task_list(branch, (*path, name, key), document,
                                                  child_problems)
                            for key, branch in value.items()}
        else:
            fields[name] = _parse_task_list(value, (*path, name), document, child_problems)
    problems.extend(child_problems)
    try:
        task = cls.model_validate(fields)
    except ValidationError as exc:
        own = _problems_from(exc, path, document, cls)
        if child_problems:
            # A block whose tasks were all rejected is empty: saying so again
            # ("at least 1 item") adds nothing to the children's own errors.
            own = [p for p in own if "at least 1 item" not in p.message]
        problems.extend(own)
        return None
    return None if child_problems else task


def _parse_wrapped_tasks(raw: object, path: tuple[str | int, ...], key: str,
                         document: YamlDocument, problems: list[Problem]) -> object:
    """A list of mappings each holding a task under `key` (a Dag's
    `tasks: [{task: ..., dependsOn: [...]}]`): the tasks parsed in place."""
    if not isinstance(raw, list):
        problems.append(document.problem(path, f"expected a list of {{{key}: ...}} entries, "
                                         f"found {_describe(raw)}"))
        return []
    entries = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or key not in item:
            problems.append(document.problem((*path, index), f"expected a mapping with a "
                                             f"{key!r} (and dependsOn), found {_describe(item)}"))
            continue
        task = _parse_task(item[key], (*path, index, key), document, problems)
        if task is not None:
            entries.append({**item, key: task})
    return entries


def _parse_triggers(raw: object, document: YamlDocument,
                    problems: list[Problem]) -> list[Trigger]:
    if not isinstance(raw, list):
        problems.append(document.problem(("triggers",), f"expected a list of triggers, "
                                         f"found {_describe(raw)}"))
        return []
    triggers: list[Trigger] = []
    for index, item in enumerate(raw):
        path: tuple[str | int, ...] = ("triggers", index)
        if not isinstance(item, dict) or "type" not in item:
            problems.append(document.problem(path, "expected a trigger with id and type"))
            continue
        cls = TRIGGER_TYPES.get(str(item["type"]))
        if cls is None:
            problems.append(document.problem(
                (*path, "type"), f"unknown trigger type {item['type']!r}; known types: "
                f"{', '.join(sorted(TRIGGER_TYPES))}"))
            continue
        try:
            triggers.append(cls.model_validate(_present(item, cls)))
        except ValidationError as exc:
            problems.extend(_problems_from(exc, path, document, cls))
    return triggers


def _duplicate_ids(flow: Flow, document: YamlDocument) -> list[Problem]:
    seen: set[str] = set()
    problems = []
    for task in flow.all_tasks():
        if task.id in seen:
            line_path = _find_task_path(document.data, task.id, occurrence=2)
            problems.append(document.problem(line_path or (), f"duplicate task id {task.id!r}: "
                                             "task ids must be unique in the whole flow"))
        seen.add(task.id)
    return problems


def _locator(document: YamlDocument) -> Any:
    def locate(task_id: str | None, field: str, message: str) -> Problem:
        base = _find_task_path(document.data, task_id, occurrence=1) if task_id else None
        path: tuple[str | int, ...] = (*base[:-1], *_field_path(field)) if base else \
            _field_path(field)
        return document.problem(path, message)
    return locate


def _field_path(field: str) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    for piece in field.replace("]", "").split("."):
        name, *indexes = piece.split("[")
        if name:
            parts.append(name)
        parts.extend(int(i) for i in indexes if i.isdigit())
    return tuple(parts)


def _find_task_path(data: Any, task_id: str, occurrence: int,
                    path: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    found: list[tuple[str | int, ...]] = []

    def walk(node: Any, where: tuple[str | int, ...]) -> None:
        if isinstance(node, dict):
            if node.get("id") == task_id and "type" in node:
                found.append((*where, "id"))
            for key, value in node.items():
                walk(value, (*where, key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, (*where, index))

    walk(data, path)
    return found[occurrence - 1] if len(found) >= occurrence else None


def _describe(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"a {type(value).__name__}"


def _problems_from(exc: ValidationError, prefix: tuple[str | int, ...],
                   document: YamlDocument, model: type[BaseModel]) -> list[Problem]:
    raw: Any = document.data
    for part in prefix:
        raw = raw[part] if isinstance(raw, dict | list) else None  # type: ignore[index]
    by_path: dict[tuple[str | int, ...], list[str]] = {}
    for error in exc.errors():
        loc = _real_loc(raw, tuple(error["loc"]))
        by_path.setdefault((*prefix, *loc), []).append(
            _message(dict(error), model, raw, loc))
    problems = []
    for path, messages in by_path.items():
        if len(messages) > 1:
            # One value failed every member of a union (str | list[str] ...).
            found = _found_at(document.data, path)
            messages = [f"expected {' or '.join(_union_names(messages))}, found {found!r}"
                        if found is not _MISSING else "; ".join(dict.fromkeys(messages))]
        problems.append(document.problem(path, messages[0]))
    return problems


_MISSING = object()


def _found_at(data: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return data


def _union_names(messages: list[str]) -> list[str]:
    names = []
    for message in messages:
        lowered = message.lower()
        for word, name in (("valid list", "a list"), ("valid string", "a string"),
                           ("valid boolean", "a boolean"), ("valid integer", "an integer"),
                           ("valid number", "a number"), ("valid dictionary", "a mapping")):
            if word in lowered and name not in names:
                names.append(name)
    return names or list(dict.fromkeys(messages))


def _real_loc(raw: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Drop the parts pydantic adds for union members (e.g. the retry 'constant' tag)."""
    real: list[str | int] = []
    node = raw
    for index, part in enumerate(loc):
        if (isinstance(node, dict) and part in node) or (
                isinstance(node, list) and isinstance(part, int) and part < len(node)):
            real.append(part)
            node = node[part]  # type: ignore[index]
        elif index == len(loc) - 1 or not _is_union_tag(part):
            real.append(part)
            node = None
    return tuple(real)


def _is_union_tag(part: str | int) -> bool:
    # pydantic names union members in the location: 'constant' (a tag),
    # 'list[str]', 'str', 'function-after[...]'.
    return isinstance(part, str) and (
        part in ("constant", "exponential", "random", "str", "int", "float", "bool",
                 "dict", "list", "timedelta", "datetime")
        or "[" in part or part.startswith(("function-", "tagged-union")))


def _message(error: dict[str, Any], model: type[BaseModel], raw: Any,
             loc: tuple[str | int, ...]) -> str:
    kind = error["type"]
    found = error.get("input")
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        known = sorted(f.alias or name for name, f in parent.model_fields.items()
                       if name != "source") if parent else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown property {loc[-1]!r}{hint}" + (
            f" Known properties: {', '.join(known)}" if known else "")
    if kind == "missing":
        return f"missing required property {loc[-1]!r}" if loc else "missing required property"
    if kind == "string_pattern_mismatch":
        return (f"{found!r} is not a valid id: use letters, digits, '-' and '_', "
                "starting with a letter or digit")
    if kind in ("value_error", "assertion_error"):
        return str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "union_tag_invalid":
        expected = error.get("ctx", {}).get("expected_tags", "")
        return f"unknown type {found.get('type') if isinstance(found, dict) else found!r}; " \
               f"expected one of {expected}"
    if kind == "union_tag_not_found":
        return "missing required property 'type'"
    message = str(error["msg"])
    if found is not None and not isinstance(found, dict | list):
        message += f", found {found!r}"
    return message


def _model_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = next((f for n, f in current.model_fields.items()
                      if part in (n, f.alias)), None)
        if field is None:
            return None
        current = _unwrap(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    args = getattr(annotation, "__args__", None)
    if args:
        for arg in args:
            inner = _unwrap(arg)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return annotation
