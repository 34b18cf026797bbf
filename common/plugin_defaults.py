"""Kestra's flow-level `pluginDefaults` (and its older name `taskDefaults`):
property values given once per task type, or per type prefix, applied to every
matching task of the flow before it is validated, so a default is checked
exactly like a property written on the task. `forced: true` overrides what the
task sets; otherwise the task's own values win (maps are merged key by key)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic.errors import PydanticSchemaGenerationError, PydanticUndefinedAnnotation

from harrier.common.errors import Problem
from harrier.common.task import Task, known_task_types, task_class
from harrier.common.yaml_source import YamlDocument

# Properties a default may not set: they name the task itself.
_OWN = frozenset({"id", "type"})


@dataclass(frozen=True)
class PluginDefault:
    type_name: str  # a task type or a prefix of task types
    values: dict[str, Any]
    forced: bool = False

    def matches(self, written_type: str, cls: type[Task]) -> bool:
        names = (written_type, *cls.type_names)
        return any(name == self.type_name or name.startswith(self.type_name + ".")
                   for name in names)


def parse_plugin_defaults(raw: object, key: str, document: YamlDocument
                          ) -> tuple[list[PluginDefault], list[Problem]]:
    """The defaults of a flow, each checked: a known task type (or prefix of
    one), properties those types have, values of the right kind."""
    problems: list[Problem] = []
    if not isinstance(raw, list):
        return [], [document.problem((key,), "expected a list of {type, values, forced} "
                                     f"entries, found {type(raw).__name__}")]
    found: list[PluginDefault] = []
    known = known_task_types()
    for index, entry in enumerate(raw):
        path: tuple[str | int, ...] = (key, index)
        if not isinstance(entry, dict):
            problems.append(document.problem(path, "expected a mapping with type and values"))
            continue
        extra = sorted(set(entry) - {"type", "values", "forced"})
        if extra:
            problems.append(document.problem((*path, extra[0]), f"unknown property "
                                             f"{extra[0]!r}; a default has type, values, "
                                             "forced"))
            continue
        type_name, values, forced = entry.get("type"), entry.get("values"), entry.get("forced")
        if not isinstance(type_name, str) or not type_name:
            problems.append(document.problem(path, "missing required property 'type'"))
            continue
        if not isinstance(values, dict):
            problems.append(document.problem((*path, "values"), "expected a map of "
                                             "property values"))
            continue
        if forced is not None and not isinstance(forced, bool):
            problems.append(document.problem((*path, "forced"), f"expected true or false, "
                                             f"found {forced!r}"))
            continue
        classes = {task_class(name) for name in known
                   if name == type_name or name.startswith(type_name + ".")}
        classes.discard(None)
        if not classes:
            problems.append(document.problem((*path, "type"), f"{type_name!r} is not a task "
                                             "type nor the prefix of one (e.g. "
                                             "io.kestra.plugin.scripts)"))
            continue
        for name, value in values.items():
            problems.extend(_check_value(document, (*path, "values", name), str(name), value,
                                         classes))  # type: ignore[arg-type]
        found.append(PluginDefault(type_name, dict(values), bool(forced)))
    return found, problems


def _check_value(document: YamlDocument, path: tuple[str | int, ...], name: str, value: Any,
                 classes: set[type[Task]]) -> list[Problem]:
    if name in _OWN:
        return [document.problem(path, f"a default cannot set {name!r}")]
    fields = [field for cls in classes for attribute, field in cls.model_fields.items()
              if name in (attribute, field.alias)]
    if not fields:
        names = ", ".join(sorted(cls.type_names[0] for cls in classes))
        return [document.problem(path, f"unknown property {name!r} for {names}")]
    errors = []
    for field in fields:
        try:
            TypeAdapter(field.annotation or Any).validate_python(value)
            return []  # right for at least one of the types it applies to
        except ValidationError as exc:
            errors.append(exc.errors()[0]["msg"])
        except (PydanticSchemaGenerationError, PydanticUndefinedAnnotation):
            return []  # a type not checkable alone (a task list): checked on the task
    return [document.problem(path, f"{name}: {errors[0]}")]


def apply_defaults(raw: dict[str, Any], cls: type[Task],
                   defaults: Sequence[PluginDefault]) -> dict[str, Any]:
    """The task's properties with the matching defaults applied (defaults listed
    later win over earlier ones, as in Kestra)."""
    if not defaults:
        return raw
    written_type = str(raw.get("type"))
    result = dict(raw)
    for default in defaults:
        if not default.matches(written_type, cls):
            continue
        known = {name for attribute, field in cls.model_fields.items()
                 for name in (attribute, field.alias) if name}
        for name, value in default.values.items():
            if name not in known:
                continue  # a prefix default for a property this type has not
            if default.forced:
                result[name] = _merge(result.get(name), value) if isinstance(value, dict) \
                    else value
            elif name not in result:
                result[name] = value
            elif isinstance(result[name], dict) and isinstance(value, dict):
                result[name] = _merge(value, result[name])
    return result


def _merge(base: Any, override: dict[str, Any]) -> Any:
    if not isinstance(base, dict):
        return override
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merge(merged.get(key), value) if isinstance(value, dict) else value
    return merged
