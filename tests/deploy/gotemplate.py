"""Static checks of Helm (Go text/template) files without a template engine.

Used where no helm binary can run: find the `{{ ... }}` actions, check their
block structure, list the `.Values` paths they read, and turn a template into
YAML a parser accepts (the heuristic is described on `to_yaml_skeleton`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ACTION = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.DOTALL)
COMMENT = re.compile(r"^\s*/\*.*\*/\s*$", re.DOTALL)
VALUES_PATH = re.compile(r"(?<![\w)])\$?\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
OPENERS = ("if", "range", "with", "define", "block")
INDENT = re.compile(r"\bn?indent\s+(\d+)")


class TemplateSyntaxError(ValueError):
    """An action is unterminated, or if/range/with/define/end do not pair up."""


@dataclass(frozen=True)
class Action:
    text: str  # without delimiters and trim markers, stripped
    line: int  # 1-based line of the opening {{
    start: int
    end: int

    @property
    def keyword(self) -> str:
        word = self.text.split(None, 1)[0] if self.text else ""
        return word if word in (*OPENERS, "else", "end") else ""

    @property
    def is_comment(self) -> bool:
        return bool(COMMENT.match(self.text))


def actions(source: str, name: str = "<template>") -> list[Action]:
    """Every action in source; raises TemplateSyntaxError on unbalanced delimiters."""
    found: list[Action] = []
    position = 0
    for match in ACTION.finditer(source):
        between = source[position:match.start()]
        if "}}" in between:
            line = source.count("\n", 0, position + between.index("}}")) + 1
            raise TemplateSyntaxError(f"{name}:{line}: '}}}}' without an opening '{{{{'")
        if "{{" in match.group(2):
            line = source.count("\n", 0, match.start()) + 1
            raise TemplateSyntaxError(f"{name}:{line}: '{{{{' opened inside another action")
        found.append(
            Action(match.group(2).strip(), source.count("\n", 0, match.start()) + 1,
                   match.start(), match.end())
        )
        position = match.end()
    rest = source[position:]
    for token in ("{{", "}}"):
        if token in rest:
            line = source.count("\n", 0, position + rest.index(token)) + 1
            raise TemplateSyntaxError(f"{name}:{line}: unterminated '{token}'")
    return found


def check_blocks(found: list[Action], name: str = "<template>") -> None:
    """if/range/with/define/block each closed by one end; else only inside if/range/with."""
    stack: list[Action] = []
    for action in found:
        if action.is_comment:
            continue
        keyword = action.keyword
        if keyword in OPENERS:
            stack.append(action)
        elif keyword == "else":
            if not stack or stack[-1].keyword not in ("if", "range", "with"):
                raise TemplateSyntaxError(f"{name}:{action.line}: 'else' outside if/range/with")
        elif keyword == "end":
            if not stack:
                raise TemplateSyntaxError(f"{name}:{action.line}: 'end' without an opening block")
            stack.pop()
    if stack:
        opened = stack[-1]
        raise TemplateSyntaxError(f"{name}:{opened.line}: '{opened.keyword}' is never closed")


def values_paths(found: list[Action]) -> list[tuple[int, tuple[str, ...]]]:
    """(line, path) of every `.Values.a.b` (or `$.Values.a.b`) read by an action."""
    paths: list[tuple[int, tuple[str, ...]]] = []
    for action in found:
        if action.is_comment:
            continue
        for match in VALUES_PATH.finditer(action.text):
            paths.append((action.line, tuple(match.group(1).lstrip(".").split("."))))
    return paths


def to_yaml_skeleton(source: str) -> str:
    """Replace template actions so the rest can be parsed as YAML (best effort).

    Heuristic, per line:
    - comments vanish; a line holding only control actions (if/else/end/range/
      with/define, `$x := ...` assignments) is dropped, so the bodies of all
      branches are kept once, in order;
    - a line holding only an output action piped to `nindent N`/`indent N`
      (include/toYaml blocks) becomes a placeholder mapping entry
      `__action_K__: "..."` indented by N, which is where Helm puts its output
      (a sequence item `- __action_K__: ...` when the line above at indent N
      is one);
    - any other output action inside a line becomes the scalar `__action__`
      (quoted scalars keep their quotes), which YAML accepts as a plain string.
    """
    source = re.sub(r"\{\{-?\s*/\*.*?\*/\s*-?\}\}", "", source, flags=re.DOTALL)
    out: list[str] = []
    counter = 0
    for line in source.splitlines():
        stripped = line.strip()
        line_actions = [a for a in actions(line) if not a.is_comment]
        if not line_actions:
            out.append(line)
            continue
        leftover = ACTION.sub("", line).strip()
        if not leftover and all(_is_control(a.text) for a in line_actions):
            continue
        if not leftover and len(line_actions) == 1 and INDENT.search(line_actions[0].text):
            counter += 1
            indent = int(INDENT.search(line_actions[0].text).group(1))  # type: ignore[union-attr]
            text = line_actions[0].text.replace('"', "'")
            item = "- " if _sequence_at(out, indent) else ""
            out.append(" " * indent + item + f'__action_{counter}__: "{text}"')
            continue
        if stripped.startswith("{{") and not leftover:
            # A lone output action on its own line: keep indentation, make it a key.
            counter += 1
            out.append(line[: len(line) - len(line.lstrip())] + f"__action_{counter}__: x")
            continue
        out.append(ACTION.sub(_scalar_placeholder, line))
    return "\n".join(out) + "\n"


def _sequence_at(lines: list[str], indent: int) -> bool:
    for previous in reversed(lines):
        content = previous.lstrip()
        if not content or content.startswith("#"):
            continue
        width = len(previous) - len(content)
        if width == indent:
            return content.startswith("- ")
        if width < indent:
            return False
    return False


def _is_control(text: str) -> bool:
    word = text.split(None, 1)[0] if text else ""
    return word in (*OPENERS, "else", "end") or bool(re.match(r"^\$\w+\s*:?=", text))


def _scalar_placeholder(match: re.Match[str]) -> str:
    return "__action__"
