"""Python-safe script templates: finding, with the tokenize module, where each
printed value lands in a Python script (code, a string literal, a comment) and
writing it there as data only: a literal of its own in code, escaped text in a
string, one line in a comment. The Python counterpart of shell_quoting."""

from __future__ import annotations

import io
import math
import re
import tokenize
from collections.abc import Mapping
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError

from harrier.common.template_values import RawText, to_text


class PythonContextError(ValueError):
    """An expression sits where no escaping can make a value safe."""


_PLACEHOLDER = "_HARRIER_VALUE_{}_"
_PLACEHOLDER_RE = re.compile(r"_HARRIER_VALUE_(\d+)_")
_STRING_START = re.compile(r"(?i)([rbuf]*)('''|\"\"\"|'|\")")
_IDENTIFIER_SAFE = re.compile(r"[A-Za-z0-9_]*")


# Python 3.12 tokenizes f-strings into parts; 3.11 gives one STRING token.
_FSTRING_START = getattr(tokenize, "FSTRING_START", -1)
_FSTRING_MIDDLE = getattr(tokenize, "FSTRING_MIDDLE", -1)
_FSTRING_END = getattr(tokenize, "FSTRING_END", -1)
_FSTRING_FIELD = ("an expression inside an f-string's {...} would be Python code; assign the "
                  "value to a variable first (x = {{ ... }}) and write {x}")


class PythonText(str):
    """Already written as data for its Python context; finalize leaves it alone."""


def literal(value: Any) -> str:
    """A Python expression that evaluates to `value`, built from literals only."""
    if value is None or isinstance(value, bool | int):
        return repr(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
    if isinstance(value, str):
        return repr(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    return repr(to_text(value))  # dates, durations, decimals: as they print


def _escape_char(ch: str, quote: str) -> str:
    if ch == "\\" or ch == quote:
        return "\\" + ch
    if ch.isprintable() or ch == " ":
        return ch
    return ch.encode("unicode_escape").decode("ascii")


def escape_in_string(text: str, prefix: str, quote: str) -> str:
    """`text` written inside a string literal opened with prefix+quote, so that
    the literal's value holds exactly `text` and nothing closes it early."""
    flags = prefix.lower()
    if "r" in flags:
        bad = [c for c in ("\\", quote[0], "\n", "\r") if c in text]
        if len(quote) == 3:
            bad = [c for c in bad if c not in "\n\r"]
        if bad:
            raise PythonContextError(
                f"a value holding {bad[0]!r} cannot be put in a raw string {prefix}{quote}...; "
                "drop the r prefix, or assign the value to a variable (x = {{ ... }})")
        escaped = text
    elif "b" in flags:
        escaped = "".join(
            chr(byte) if 32 <= byte < 127 and chr(byte) not in ("\\", quote[0])
            else ("\\" + chr(byte) if chr(byte) in ("\\", quote[0]) else f"\\x{byte:02x}")
            for byte in text.encode("utf-8"))
    else:
        escaped = "".join(_escape_char(ch, quote[0]) for ch in text)
    if "f" in flags:
        escaped = escaped.replace("{", "{{").replace("}", "}}")
    return escaped


def python_escape(value: Any, mode: str, detail: str = "") -> PythonText:
    """`value` written for a Python context found by wrap_python_outputs."""
    if isinstance(value, RawText):
        return PythonText(value)
    if mode == "code":
        return PythonText(literal(value))
    if mode == "string":
        prefix, _, quote = detail.partition(":")
        return PythonText(escape_in_string(to_text(value), prefix, quote))
    if mode == "comment":
        # One line, printable: a newline would end the comment, a NUL the script.
        text = re.sub(r"[\r\n]+", " ", to_text(value))
        return PythonText("".join(ch if ch.isprintable() or ch == "\t" else _escape_char(ch, "")
                                  for ch in text))
    if mode == "name":
        text = to_text(value)
        if not _IDENTIFIER_SAFE.fullmatch(text):
            raise PythonContextError(f"{text!r} would become part of a Python name; only "
                                     "letters, digits and _ can be")
        return PythonText(text)
    raise ValueError(f"unknown Python context {mode!r}")


def python_finalize(value: Any) -> str:
    if isinstance(value, PythonText):
        return value
    # Only reached by output the context filter did not wrap: a literal of its own.
    return literal(value)


def _fstring_field_depth(body: str, end: int) -> int:
    """How many `{...}` replacement fields of an f-string body are open at `end`."""
    depth, i = 0, 0
    while i < end:
        pair = body[i:i + 2]
        if depth == 0 and pair in ("{{", "}}"):
            i += 2
            continue
        if body[i] == "{":
            depth += 1
        elif body[i] == "}" and depth:
            depth -= 1
        i += 1
    return depth


def _string_context(token: str, offset: int) -> tuple[str, str]:
    match = _STRING_START.match(token)
    assert match, token
    prefix, quote = match.groups()
    if "f" in prefix.lower() and _fstring_field_depth(token[match.end():],
                                                      offset - match.end()):
        raise PythonContextError(_FSTRING_FIELD)
    return "string", f"{prefix}:{quote}"


def find_contexts(pieces: list[str | int]) -> dict[int, tuple[str, str]]:
    """The Python context of each expression (int) among literal texts (str),
    in source order: (mode, detail) for python_escape."""
    probe = "".join(_PLACEHOLDER.format(p) if isinstance(p, int) else p for p in pieces)
    found: dict[int, tuple[str, str]] = {}
    # Python 3.12+: the FSTRING_START tokens still open, and how many {...}
    # fields are open inside each (a format spec is inside a field).
    fstrings: list[str] = []
    fields: list[int] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(probe).readline):
            if token.type == _FSTRING_START:
                fstrings.append(token.string)
                fields.append(0)
            elif token.type == _FSTRING_END and fstrings:
                fstrings.pop()
                fields.pop()
            elif token.type == tokenize.OP and fields and token.string in ("{", "}"):
                fields[-1] += 1 if token.string == "{" else -1
            for match in _PLACEHOLDER_RE.finditer(token.string):
                index = int(match.group(1))
                if token.type == _FSTRING_MIDDLE and fields and fields[-1] > 0:
                    raise PythonContextError(_FSTRING_FIELD)
                if token.type == _FSTRING_MIDDLE and fstrings:
                    # The literal part of an f-string (3.12+ tokenizes its inside).
                    opening = _STRING_START.match(fstrings[-1])
                    assert opening, fstrings[-1]
                    found[index] = ("string", f"{opening.group(1)}:{opening.group(2)}")
                elif token.type == tokenize.NAME and fstrings:
                    raise PythonContextError(_FSTRING_FIELD)
                elif token.type == tokenize.NAME:
                    found[index] = ("code", "") if token.string == match.group(0) \
                        else ("name", "")
                elif token.type == tokenize.STRING:
                    found[index] = _string_context(token.string, match.start())
                elif token.type == tokenize.COMMENT:
                    found[index] = ("comment", "")
    except (tokenize.TokenError, IndentationError, SyntaxError) as exc:
        problem = exc.args[0] if exc.args else str(exc)
        raise PythonContextError(
            f"cannot tell where the expressions land in this Python script ({problem}); "
            "fix the script, or mark author-written values with | raw") from None
    missing = [p for p in pieces if isinstance(p, int) and p not in found]
    if missing:
        raise PythonContextError("an expression sits where Python cannot hold a value "
                                 "(e.g. inside a number); move it into code or a string")
    return found


def wrap_python_outputs(template: nodes.Template) -> None:
    """Give every printed expression the filter writing it for its Python context."""
    outputs: list[tuple[nodes.Output, int]] = []
    pieces: list[str | int] = []

    def visit(node: nodes.Node) -> None:
        if isinstance(node, nodes.Output):
            for i, child in enumerate(node.nodes):
                if isinstance(child, nodes.TemplateData):
                    pieces.append(child.data)
                else:
                    pieces.append(len(outputs))
                    outputs.append((node, i))
            return
        for sub in node.iter_child_nodes():
            visit(sub)

    visit(template)
    if not outputs:
        return
    try:
        contexts = find_contexts(pieces)
    except PythonContextError as exc:
        first = outputs[0][0].nodes[outputs[0][1]]
        raise TemplateSyntaxError(str(exc), first.lineno) from exc
    for index, (node, i) in enumerate(outputs):
        child = node.nodes[i]
        mode, detail = contexts[index]
        node.nodes[i] = nodes.Filter(child, "_python", [nodes.Const(mode), nodes.Const(detail)],
                                     [], None, None, lineno=child.lineno)
