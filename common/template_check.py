"""Check a flow's templates before anything runs: syntax, unknown top-level
variables, inputs that are not declared, outputs of tasks that do not exist."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from jinja2 import Environment, TemplateSyntaxError, meta, nodes

from harrier.common.errors import Problem
from harrier.common.pebble import translate_pebble
from harrier.common.template_filters import FILTERS, FUNCTIONS, TESTS

# What templates can see (worker/template_context.py builds it).
CONTEXT_NAMES = frozenset({"flow", "execution", "inputs", "outputs", "vars", "trigger",
                           "labels", "task", "taskrun", "parent", "parents", "item"})
_JINJA_GLOBALS = frozenset({"range", "dict", "lipsum", "cycler", "joiner", "namespace", "secret",
                            "read",  # a stored file (task properties, worker side)
                            "kv", "loop", "true", "false", "none", "null"})
_PARSER = Environment()
_PARSER.filters.update(FILTERS)
_PARSER.filters["raw"] = lambda value: value  # the shell-mode opt-out
_PARSER.tests.update(TESTS)


def template_problems(flow: Any, locate: Any) -> list[Problem]:
    """Problems in every templated string of `flow`; `locate(task_id, field)`
    returns a Problem for a message at that task property (or flow field)."""
    inputs = {spec.id for spec in flow.inputs}
    task_ids = {task.id for task in flow.all_tasks()}
    problems: list[Problem] = []
    for task in flow.all_tasks():
        if task.is_flowable and not hasattr(task, "choose"):
            continue  # Parallel/Sequential hold no templates of their own
        holds_tasks = task.is_flowable or next(task.children(), None) is not None
        raw = task.model_dump(by_alias=True, exclude_none=True,
                              exclude={"tasks", "then", "else_", "cases", "defaults",
                                       "errors", "finally_"} if holds_tasks else set())
        for field, text in _strings(raw, ""):
            message = _check(text, inputs, task_ids)
            if message:
                problems.append(locate(task.id, field, message))
    for output in flow.outputs:
        for field, text in _strings({"value": output.value}, ""):
            message = _check(text, inputs, task_ids)
            if message:
                problems.append(locate(None, f"outputs.{output.id}.{field}", message))
    return problems


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        if "{{" in value or "{%" in value:
            yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def _check(text: str, inputs: set[str], task_ids: set[str]) -> str | None:
    try:
        tree = _PARSER.parse(translate_pebble(text))
        undeclared = meta.find_undeclared_variables(tree)  # also finds unknown filters
    except TemplateSyntaxError as exc:
        return f"template error on line {exc.lineno} of {text.strip()[:80]!r}: {exc.message}"
    # A name only in a branch Kestra may not take (`c ? x : y`, `x ?? y`) is not
    # certainly wrong: it is checked when rendered.
    evaluated = {node.name for node in _evaluated(tree)
                 if isinstance(node, nodes.Name) and node.ctx == "load"}
    unknown = sorted((undeclared & evaluated) - CONTEXT_NAMES - set(FUNCTIONS) - _JINJA_GLOBALS)
    if unknown:
        return (f"unknown variable {unknown[0]!r} in {text.strip()[:80]!r}; templates see: "
                f"{', '.join(sorted(CONTEXT_NAMES))}")
    for root, name in _references(tree):
        if root == "inputs" and name not in inputs and not any(
                i.startswith(f"{name}.") for i in inputs):  # dotted ids nest
            declared = ", ".join(sorted(inputs)) or "none"
            return f"{{{{ inputs.{name} }}}} names an input the flow does not declare " \
                   f"(declared: {declared})"
        if root == "outputs" and name not in task_ids:
            close = difflib.get_close_matches(name, sorted(task_ids), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return f"{{{{ outputs.{name} }}}} names no task of this flow{hint}"
    return None


# Filters and tests whose operand may be missing: Pebble gives the fallback.
_TOLERANT_FILTERS = frozenset({"_coalesce", "default", "d"})
_TOLERANT_TESTS = frozenset({"defined", "undefined", "null", "none", "empty"})


def _evaluated(node: nodes.Node) -> Iterator[nodes.Node]:
    """The nodes that are certainly evaluated: not the operand of `??` or
    `default`, not a ternary's or an `{% if %}`'s branches, not what `is
    defined` tests (Kestra runs those whatever they name)."""
    children: list[nodes.Node]
    if isinstance(node, nodes.Filter) and node.name in _TOLERANT_FILTERS:
        children = [*node.args, *(kw.value for kw in node.kwargs)]
    elif isinstance(node, nodes.Test) and node.name in _TOLERANT_TESTS:
        children = [*node.args]
    elif isinstance(node, nodes.CondExpr | nodes.If):
        children = [node.test]
    else:
        children = list(node.iter_child_nodes())
    yield node
    for child in children:
        yield from _evaluated(child)


def _references(tree: nodes.Template) -> Iterator[tuple[str, str]]:
    """(root, name) for every `inputs.name`, `inputs['name']`, `outputs.x` ...
    that is certainly evaluated."""
    for node in _evaluated(tree):
        if not isinstance(node, nodes.Getattr | nodes.Getitem):
            continue
        target = node.node
        if not (isinstance(target, nodes.Name) and target.name in ("inputs", "outputs")):
            continue
        if isinstance(node, nodes.Getattr):
            yield target.name, node.attr
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            yield target.name, node.arg.value
