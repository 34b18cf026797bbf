"""Pebble's `a ?? b` and `c ? a : b` operators, rewritten into jinja expressions
before a template is parsed."""

from __future__ import annotations

import re

from jinja2.exceptions import TemplateSyntaxError

_STRING = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""", re.DOTALL)


def _top_level(expr: str) -> list[tuple[int, str]]:
    """Positions of top-level `??`, `?` and `:` outside strings and brackets."""
    marks: list[tuple[int, str]] = []
    depth = 0
    i = 0
    while i < len(expr):
        ch = expr[i]
        if ch in "'\"":
            m = _STRING.match(expr, i)
            i = m.end() if m else len(expr)
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and ch == "?":
            if expr.startswith("??", i):
                marks.append((i, "??"))
                i += 2
                continue
            marks.append((i, "?"))
        elif depth == 0 and ch == ":":
            marks.append((i, ":"))
        i += 1
    return marks


def _translate_expr(expr: str) -> str:
    marks = _top_level(expr)
    questions = [(i, k) for i, k in marks if k == "?"]
    if questions:
        start = questions[0][0]
        pending = 0
        for i, kind in marks:
            if i <= start:
                continue
            if kind == "?":
                pending += 1
            elif kind == ":":
                if pending == 0:
                    cond, then, other = expr[:start], expr[start + 1:i], expr[i + 1:]
                    return (f"(({_translate_expr(then)}) if ({_translate_expr(cond)}) "
                            f"else ({_translate_expr(other)}))")
                pending -= 1
        raise TemplateSyntaxError("'?' without its ':' (Pebble's cond ? a : b)", 1)
    coalesce = [i for i, k in marks if k == "??"]
    if coalesce:
        first = coalesce[0]
        head, rest = expr[:first], expr[first + 2:]
        return f"(({head}) | _coalesce({_translate_expr(rest)}))"
    return expr


_BLOCKS = re.compile(
    r"\{%-?\s*raw\s*-?%\}.*?\{%-?\s*endraw\s*-?%\}|\{#.*?#\}|\{\{(?P<expr>(?:"
    + r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^'"}]|\}(?!\}))*)\}\}""",
    re.DOTALL,
)


def translate_pebble(source: str) -> str:
    """Rewrite Pebble's `a ?? b` and `c ? a : b` (top level of a `{{ }}`) into
    jinja; jinja has no `?` operator, so no valid jinja template changes."""
    if "?" not in source:
        return source

    def fix(match: re.Match[str]) -> str:
        expr = match.group("expr")
        if expr is None or "?" not in _STRING.sub("", expr):
            return match.group(0)
        body = expr
        lead = "-" if body.startswith("-") else ""
        trail = "-" if body.endswith("-") else ""
        body = body[len(lead): len(body) - len(trail)]
        return "{{" + lead + " " + _translate_expr(body).strip() + " " + trail + "}}"

    return _BLOCKS.sub(fix, source)
