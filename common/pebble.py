"""Pebble's operators jinja lacks, rewritten into jinja expressions before a
template is parsed: `a ?? b`, `c ? a : b` (anywhere: inside parentheses,
brackets and `{% %}` tags too) and `a equals b`."""

from __future__ import annotations

import re
from collections.abc import Iterator

from jinja2.exceptions import TemplateSyntaxError

_STRING = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""", re.DOTALL)
_CLOSE = {"(": ")", "[": "]", "{": "}"}
_EQUALS = re.compile(r"(?<![\w.])equals(?![\w])")


def _top_level_chars(text: str) -> Iterator[tuple[int, str]]:
    """Each character outside strings and brackets, with its position."""
    depth = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "'\"":
            m = _STRING.match(text, i)
            i = m.end() if m else len(text)
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            yield i, ch
        i += 1


def _top_level(expr: str) -> list[tuple[int, str]]:
    """Positions of top-level `??`, `?` and `:` outside strings and brackets."""
    marks: list[tuple[int, str]] = []
    for i, ch in _top_level_chars(expr):
        if ch == "?":
            if marks and marks[-1] == (i - 1, "?"):
                marks[-1] = (i - 1, "??")
            else:
                marks.append((i, "?"))
        elif ch == ":":
            marks.append((i, ":"))
    return marks


def _has_operator(expr: str) -> bool:
    bare = _STRING.sub("''", expr)
    return "?" in bare or _EQUALS.search(bare) is not None


def _split_commas(inner: str) -> list[str]:
    parts: list[str] = []
    start = 0
    for i, ch in _top_level_chars(inner):
        if ch == ",":
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    return parts


def _translate_groups(expr: str) -> str:
    """Translate inside every (...) and [...] group holding a Pebble operator,
    one comma-separated item at a time (dict literals {...} are left alone:
    their `:` is not a ternary's)."""
    out: list[str] = []
    i = 0
    while i < len(expr):
        ch = expr[i]
        if ch in "'\"":
            m = _STRING.match(expr, i)
            end = m.end() if m else len(expr)
            out.append(expr[i:end])
            i = end
            continue
        if ch in "([":
            end = _matching(expr, i)
            inner = expr[i + 1:end]
            if _has_operator(inner):
                inner = ",".join(_translate_expr(part) for part in _split_commas(inner))
            out.append(ch + inner + expr[end:end + 1])
            i = end + 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _matching(expr: str, start: int) -> int:
    depth = 0
    i = start
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
            if depth == 0:
                return i
        i += 1
    return len(expr)  # unbalanced: jinja's parser reports it


def _translate_expr(expr: str) -> str:
    if not _has_operator(expr):
        return expr
    expr = _translate_groups(expr)
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
                    # jinja's `x if c else y` evaluates only the branch taken, as Pebble.
                    return (f"(({_translate_expr(then)}) if ({_translate_expr(cond)}) "
                            f"else ({_translate_expr(other)}))")
                pending -= 1
        raise TemplateSyntaxError("'?' without its ':' (Pebble's cond ? a : b)", 1)
    coalesce = [i for i, k in marks if k == "??"]
    if coalesce:
        first = coalesce[0]
        head, rest = expr[:first], expr[first + 2:]
        return f"(({_translate_expr(head)}) | _coalesce({_translate_expr(rest)}))"
    return _replace_equals(expr)


def _replace_equals(expr: str) -> str:
    """Pebble's `a equals b` is jinja's `a == b` (outside strings)."""
    out: list[str] = []
    last = 0
    for m in _STRING.finditer(expr):
        out.append(_EQUALS.sub("==", expr[last:m.start()]))
        out.append(m.group(0))
        last = m.end()
    out.append(_EQUALS.sub("==", expr[last:]))
    return "".join(out)


_BLOCKS = re.compile(
    r"\{%-?\s*raw\s*-?%\}.*?\{%-?\s*endraw\s*-?%\}|\{#.*?#\}"
    r"|\{\{(?P<expr>(?:" + r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^'"}]|\}(?!\}))*)\}\}"""
    r"|\{%(?P<tag>(?:" + r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^'"%]|%(?!\}))*)%\}""",
    re.DOTALL,
)
# Where the expression starts in the tags that hold one.
_TAG = re.compile(r"^(?P<lead>-?\s*(?:if|elif|elseif|set\s+[\w.]+\s*=|for\s+[\w\s,]+?\s+in)\s)"
                  r"(?P<expr>.*?)(?P<trail>\s*-?)$", re.DOTALL)


def translate_pebble(source: str) -> str:
    """Rewrite Pebble's `a ?? b`, `c ? a : b` and `a equals b` into jinja;
    jinja has no `?` operator nor `equals`, so no valid jinja template changes."""
    if "?" not in source and "equals" not in source:
        return source

    def fix(match: re.Match[str]) -> str:
        expr = match.group("expr")
        if expr is not None:
            if not _has_operator(expr):
                return match.group(0)
            lead = "-" if expr.startswith("-") else ""
            trail = "-" if expr.endswith("-") else ""
            body = expr[len(lead): len(expr) - len(trail)]
            return "{{" + lead + " " + _translate_expr(body).strip() + " " + trail + "}}"
        tag = match.group("tag")
        if tag is None or not _has_operator(tag):
            return match.group(0)
        parts = _TAG.match(tag)
        if parts is None:
            return match.group(0)
        body = _translate_expr(parts.group("expr").strip())
        # `elseif` is Pebble's spelling of jinja's `elif`.
        lead = re.sub(r"\belseif\b", "elif", parts.group("lead"))
        return "{%" + lead + body + parts.group("trail") + "%}"

    return _BLOCKS.sub(fix, source)
