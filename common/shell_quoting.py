"""Shell-safe command templates: tracking the shell quoting context (ShellContext)
through a template's literal text, and escaping each printed value for it (quote_for)."""

from __future__ import annotations

import re
import shlex
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError

from harrier.common.template_values import RawText, to_text


class ShellContextError(ValueError):
    """An expression sits where no escaping can make a value safe."""


_WORD_START = set(" \t\n;&|()")


def shell_modes() -> tuple[str, ...]:
    return ("word", "single", "double", "comment", "heredoc", "quoted_heredoc")


def quote_for(mode: str, text: str, delimiter: str = "") -> str:
    """Escape `text` so that, printed in a shell context `mode`, it is one
    literal piece of data."""
    if "\x00" in text:
        raise ShellContextError("a value with a NUL character cannot go into a shell command")
    if mode.endswith("+bq"):
        # Inside `...` the shell first removes one level of backslashes before
        # $, ` and \, then parses the rest as a command: add that level.
        return re.sub(r"([\\$`])", r"\\\1", quote_for(mode[:-3], text, delimiter))
    if mode == "word":
        return shlex.quote(text)
    if mode == "single":  # inside '...': close, escaped quote, reopen
        return text.replace("'", "'\\''")
    if mode == "double":
        return re.sub(r'([\\$`"])', r"\\\1", text)
    if mode == "comment":
        if "\n" in text:
            raise ShellContextError("a value with a newline would end the shell comment "
                                    "it is printed in")
        return text
    if mode in ("heredoc", "quoted_heredoc"):
        if delimiter and delimiter in text:
            raise ShellContextError(f"a value containing the here-document delimiter "
                                    f"{delimiter!r} would end it early")
        return re.sub(r"([\\$`])", r"\\\1", text) if mode == "heredoc" else text
    raise ValueError(f"unknown shell mode {mode!r}")


class ShellContext:
    """Follows the shell's quoting state through the literal text of a command
    template: bare words, '...', "...", $(...) and backticks, comments and
    here-documents. Control flow ({% if %}) is followed in source order."""

    def __init__(self) -> None:
        # frames: [kind, paren depth]; kinds: word, sub, bq, single, double,
        # comment, heredoc, quoted_heredoc
        self.stack: list[list[Any]] = [["word", 0]]
        self.escaped = False
        self.after_dollar = False
        self.prev = "\n"
        self.pending: list[tuple[str, bool, bool]] = []  # (delimiter, quoted, strip tabs)
        self.heredoc: tuple[str, bool, bool] | None = None
        self.line = ""

    @property
    def kind(self) -> str:
        return str(self.stack[-1][0])

    def expression_mode(self) -> str:
        if self.escaped:
            raise ShellContextError("an expression right after a backslash would have its "
                                    "first character escaped; remove the backslash")
        if self.after_dollar:
            raise ShellContextError("an expression right after '$' would be expanded by the "
                                    "shell; escape the dollar (\\$) or put it in quotes")
        backticks = self._backticks()
        if backticks > 1:
            raise ShellContextError("an expression inside nested backticks cannot be escaped "
                                    "safely; use $(...)")
        mode = self._mode()
        return mode + "+bq" if backticks else mode

    def _backticks(self) -> int:
        return sum(1 for frame in self.stack if frame[0] in ("bq", "bqn"))

    def _mode(self) -> str:
        kind = self.kind
        if kind in ("word", "sub", "bq", "bqn"):
            return "word"
        if kind == "ansi":
            raise ShellContextError("an expression inside $'...' cannot be escaped safely; "
                                    "use '...' or \"...\" around it")
        if kind == "heredoc" and self.heredoc is not None:
            return f"heredoc:{self.heredoc[0]}" if not self.heredoc[1] \
                else f"quoted_heredoc:{self.heredoc[0]}"
        return kind

    def feed_expression(self) -> None:
        self.escaped = self.after_dollar = False
        self.prev = "x"
        self.line += "\x00"  # a printed value never forms a delimiter line

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            i = self._step(text, i)

    def _push(self, kind: str) -> None:
        self.stack.append([kind, 0])

    def _step(self, text: str, i: int) -> int:
        ch = text[i]
        kind = self.kind
        dollar, self.after_dollar = self.after_dollar, False
        if self.escaped:
            self.escaped = False
            self.prev = "x"
            if kind == "heredoc":
                self.line += ch
            return i + 1
        if kind == "single":
            if ch == "'":
                self.stack.pop()
        elif kind == "ansi":
            if ch == "\\":
                self.escaped = True
            elif ch == "'":
                self.stack.pop()
        elif kind == "comment":
            if ch == "\n":
                self.stack.pop()
                return self._newline(i)
        elif kind == "heredoc":
            return self._heredoc_char(text, i, dollar)
        elif kind == "double":
            if ch == "\\":
                self.escaped = True
            elif ch == '"':
                self.stack.pop()
            elif ch == "`":
                self._push("bq")
            elif ch == "$":
                self.after_dollar = True
            elif ch == "(" and dollar:
                self._push("sub")
        else:  # word, sub, bq, bqn (a backtick nested as \` inside backticks)
            if ch == "\\" and text.startswith("\\`", i) and self._backticks():
                if kind == "bqn":
                    self.stack.pop()
                else:
                    self._push("bqn")
                self.prev = "`"
                return i + 2
            if ch == "\\":
                self.escaped = True
            elif ch == "'":
                # $'...' is bash's ANSI-C quoting, where backslashes escape quotes
                self._push("ansi" if dollar else "single")
            elif ch == '"':
                self._push("double")
            elif ch == "`":
                if kind == "bq":
                    self.stack.pop()
                else:
                    self._push("bq")
            elif ch == "$":
                self.after_dollar = True
            elif ch == "(":
                if dollar:
                    self._push("sub")
                else:
                    self.stack[-1][1] += 1
            elif ch == ")":
                if self.stack[-1][1] > 0:
                    self.stack[-1][1] -= 1
                elif kind == "sub":
                    self.stack.pop()
            elif ch == "#" and self.prev in _WORD_START:
                self._push("comment")
            elif ch == "<" and text.startswith("<<", i) and not text.startswith("<<<", i):
                return self._heredoc_start(text, i)
            elif ch == "\n":
                return self._newline(i)
        self.prev = ch
        return i + 1

    def _newline(self, i: int) -> int:
        self.prev = "\n"
        if self.pending and len(self.stack) == 1:
            self.heredoc = self.pending.pop(0)
            self._push("heredoc")
            self.line = ""
        return i + 1

    def _heredoc_start(self, text: str, i: int) -> int:
        m = re.compile(r"<<(-?)[ \t]*(?:'([^']*)'|\"([^\"]*)\"|\\?([^\s;&|<>()]+))").match(
            text, i)
        if m is None:
            self.prev = "<"
            return i + 2
        # any quoting of the delimiter (even one backslash) turns expansion off
        quoted = m.group(4) is None or text[m.start(4) - 1] == "\\"
        delimiter = m.group(2) or m.group(3) or m.group(4) or ""
        self.pending.append((delimiter, quoted, m.group(1) == "-"))
        self.prev = "x"
        return m.end()

    def _heredoc_char(self, text: str, i: int, dollar: bool) -> int:
        assert self.heredoc is not None
        delimiter, quoted, strip = self.heredoc
        ch = text[i]
        if ch == "\n":
            line = self.line.lstrip("\t") if strip else self.line
            self.line = ""
            if line == delimiter:
                self.stack.pop()
                self.heredoc = None
                return self._newline(i)
            return i + 1
        self.line += ch
        if not quoted:
            if ch == "\\":
                self.escaped = True
            elif ch == "$":
                self.after_dollar = True
            elif ch == "`":
                self._push("bq")
            elif ch == "(" and dollar:
                self._push("sub")
        return i + 1


class ShellText(str):
    """Already escaped for its shell context; finalize leaves it alone."""


def shell_escape(value: Any, mode: str, delimiter: str = "") -> ShellText:
    if isinstance(value, RawText):
        return ShellText(value)
    return ShellText(quote_for(mode, to_text(value), delimiter))


def shell_finalize(value: Any) -> str:
    if isinstance(value, ShellText):
        return value
    # Only reached by output the per-context filters did not wrap: quote as a word.
    return shlex.quote(to_text(value))


def wrap_outputs(template: nodes.Template) -> None:
    """Give every printed expression the escaping filter of the shell context
    the literal text before it leaves it in (tracked in source order)."""
    tracker = ShellContext()

    def visit(node: nodes.Node) -> None:
        if isinstance(node, nodes.Output):
            for i, child in enumerate(node.nodes):
                if isinstance(child, nodes.TemplateData):
                    tracker.feed(child.data)
                    continue
                try:
                    mode = tracker.expression_mode()
                except ShellContextError as exc:
                    raise TemplateSyntaxError(str(exc), child.lineno) from exc
                kind, _, delimiter = mode.partition(":")
                if delimiter.endswith("+bq"):
                    kind, delimiter = kind + "+bq", delimiter[:-3]
                args: list[nodes.Expr] = [nodes.Const(kind), nodes.Const(delimiter)]
                node.nodes[i] = nodes.Filter(
                    child, "_shell", args, [], None, None, lineno=child.lineno
                )
                tracker.feed_expression()
            return
        for sub in node.iter_child_nodes():
            visit(sub)

    visit(template)
