"""Load a YAML document into plain Python data while remembering where every
value sits, so validation errors can name file:line:column. Every YAML read
from a person goes through `compose_bounded`: size, depth and alias expansion
are bounded before anything is built, so an alias bomb costs microseconds."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from harrier.common.errors import FlowValidationError, Problem

Path = tuple[str | int, ...]

# Limits on YAML from people (flows, YAML inputs). A real flow is far below all
# three: the largest seed flow is 4 KiB, a few hundred values, depth 12.
MAX_YAML_BYTES = 1024 * 1024
MAX_YAML_VALUES = 100_000  # scalars, lists and mappings, counted after aliases expand
MAX_YAML_DEPTH = 64


class YamlLimitExceeded(ValueError):
    """A YAML document over one of the limits; the message says which."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.line, self.column = line, column


@dataclass
class YamlDocument:
    data: Any
    source: str
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Path) -> tuple[int | None, int | None]:
        """The line and column of `path`, or of its nearest located ancestor."""
        while True:
            if path in self.positions:
                return self.positions[path]
            if not path:
                return None, None
            path = path[:-1]

    def problem(self, path: Path, message: str) -> Problem:
        line, column = self.locate(path)
        return Problem(self.source, line, column, format_path(path), message)


def format_path(path: Path) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available


class _Loader(_BaseLoader):
    pass


# Kestra reads YAML with Jackson, where `yes`, `no`, `on` and `off` stay strings
# (YAML 1.2); PyYAML's 1.1 rules would turn `message: yes` into a boolean.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_limits(root: yaml.Node) -> None:
    """Count the values `root` holds once aliases are expanded, and its depth,
    visiting each node once (an alias is the same node object as its anchor),
    so the cost follows the text's size, not the expansion's."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        mark = node.start_mark
        if finished:
            children = _children(node)
            size[key] = 1 + sum(size[id(child)] for child in children)
            depth[key] = 1 + max((depth[id(child)] for child in children), default=0)
            open_nodes.discard(key)
            if size[key] > MAX_YAML_VALUES:
                raise YamlLimitExceeded(
                    f"the document holds more than {MAX_YAML_VALUES:,} values once its "
                    "aliases (*name) are expanded", mark.line + 1, mark.column + 1)
            if depth[key] > MAX_YAML_DEPTH:
                raise YamlLimitExceeded(
                    f"values are nested more than {MAX_YAML_DEPTH} levels deep",
                    mark.line + 1, mark.column + 1)
            continue
        if key in size:
            continue
        if key in open_nodes:
            raise YamlLimitExceeded("an alias refers to a value that contains it",
                                    mark.line + 1, mark.column + 1)
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))


def compose_bounded(text: str, loader: Any = _BaseLoader) -> yaml.Node | None:
    """The node graph of `text`, or YamlLimitExceeded / yaml.YAMLError.
    libyaml itself refuses nesting past 1,000 levels while parsing."""
    if len(text) > MAX_YAML_BYTES or len(text.encode("utf-8")) > MAX_YAML_BYTES:
        raise YamlLimitExceeded(f"the document is over {MAX_YAML_BYTES:,} bytes")
    node = yaml.compose(text, Loader=loader)
    if node is not None:
        check_limits(node)
    return node


def load_data(text: str) -> Any:
    """Plain data from YAML given as a value (a `type: YAML` input), within the limits."""
    node = compose_bounded(text, _BaseLoader)
    if node is None:
        return None
    return _BaseLoader("").construct_document(node)


def load_yaml(text: str, source: str = "<string>") -> YamlDocument:
    """Parse `text`; raise FlowValidationError for syntax errors or duplicate keys."""
    try:
        node = compose_bounded(text, _Loader)
    except YamlLimitExceeded as exc:
        raise FlowValidationError(
            [Problem(source, exc.line, exc.column, "", f"YAML over the limits: {exc}")]
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        what = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        tab_line = _tab_indented_line(text, line)
        if tab_line is not None:
            line, column = tab_line, 1
            what = ("the line is indented with a tab; YAML indentation must use spaces "
                    "(replace the tabs with spaces)")
        raise FlowValidationError(
            [Problem(source, line, column, "", f"invalid YAML: {what}")]) from None
    except yaml.YAMLError as exc:
        raise FlowValidationError([Problem(source, None, None, "", f"invalid YAML: {exc}")]
                                  ) from None
    document = YamlDocument(None, source)
    if node is None:
        return document
    problems: list[Problem] = []
    constructor = _Loader(text)
    document.data = _build(node, (), document, constructor, problems)
    if problems:
        raise FlowValidationError(problems)
    return document


def _tab_indented_line(text: str, near: int | None) -> int | None:
    """The line indented with a tab that made the parser fail: the failing line
    or, as PyYAML often notices a line later, the one before it."""
    if near is None:
        return None
    lines = text.splitlines()
    for number in (near, near - 1):
        if 0 < number <= len(lines):
            indent = lines[number - 1][:len(lines[number - 1]) - len(lines[number - 1].lstrip())]
            if "\t" in indent:
                return number
    return None


def _build(node: yaml.Node, path: Path, document: YamlDocument,
           constructor: yaml.SafeLoader, problems: list[Problem]) -> Any:
    document.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        constructor.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) and key is not None:
                problems.append(Problem(document.source, key_node.start_mark.line + 1,
                                        key_node.start_mark.column + 1, format_path(path),
                                        "mapping keys must be plain scalars"))
                continue
            child = (*path, str(key))
            if key in result:
                problems.append(Problem(
                    document.source, key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1, format_path(child),
                    f"duplicate key {key!r} (first defined on line "
                    f"{document.positions[child][0]})"))
                continue
            document.positions[child] = (key_node.start_mark.line + 1,
                                         key_node.start_mark.column + 1)
            result[key] = _build(value_node, child, document, constructor, problems)
            # Keep the key's own position: errors about a field point at its name.
            document.positions[child] = (key_node.start_mark.line + 1,
                                         key_node.start_mark.column + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, index), document, constructor, problems)
                for index, item in enumerate(node.value)]
    return constructor.construct_object(node, deep=True)
