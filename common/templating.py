"""Rendering of flow properties: Kestra's Pebble dialect on jinja2's immutable
sandbox with strict undefined variables, and shell-safe rendering of commands
(each expression escaped for the shell quoting context it lands in)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shlex
import traceback
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing as _MISSING

from common.durations import format_duration
from common.errors import TemplateError
from common.javadate import format_java, parse_java, zone

MASK = "******"


class KestraDateTime(datetime):
    """A datetime that prints the way Kestra prints an Instant or ZonedDateTime
    (2024-01-31T10:00:00.123Z), also when concatenated with `~` or `string`.

    render() converts context datetimes to it on access, and the date
    functions return it, so context builders may pass plain aware datetimes.
    """

    @classmethod
    def of(cls, value: datetime) -> KestraDateTime:
        if isinstance(value, KestraDateTime):
            return value
        tz = value.tzinfo or UTC
        return cls(value.year, value.month, value.day, value.hour, value.minute,
                   value.second, value.microsecond, tzinfo=tz, fold=value.fold)

    def __str__(self) -> str:
        return kestra_iso(self)


def kestra_iso(value: datetime) -> str:
    """ISO-8601 as Java prints it: seconds always, fraction in groups of three
    digits, Z for UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    offset = value.utcoffset()
    text = f"{value.year:04d}" + value.strftime("-%m-%dT%H:%M:%S")  # %Y: no padding < 1000
    micro = value.microsecond
    if micro:
        text += "." + (f"{micro // 1000:03d}" if micro % 1000 == 0 else f"{micro:06d}")
    if not offset:
        return text + "Z"
    return text + format_java(value, "XXX")


def to_text(value: Any) -> str:
    """How a value prints inside a rendered string (Pebble's conventions)."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return kestra_iso(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Mapping | list | tuple):
        return to_json(value)
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, datetime | date | time | timedelta):
        return to_text(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(value: Any) -> str:
    """Compact JSON like Jackson writes it; datetimes as ISO-8601."""
    return json.dumps(value, default=_json_default, separators=(",", ":"), ensure_ascii=False)


class RawText(str):
    """Text the flow author marked with `| raw`: not escaped in shell mode."""


class _ShellText(str):
    """Already escaped for its shell context; finalize leaves it alone."""


class _HarrierUndefined(ChainableUndefined, StrictUndefined):
    """Strict (printing, iterating or comparing fails) but chainable, so that
    `a.b.c | default('x')` and `a.b.c ?? 'x'` work when `a.b` is missing, as in Pebble."""

    __slots__ = ()


class _Named(dict):
    """A context mapping that knows its path, for 'inputs' has no attribute ... messages."""

    __slots__ = ("_path",)

    def __init__(self, data: Mapping[str, Any], path: str) -> None:
        super().__init__(data)
        self._path = path


def _names(keys: Iterable[Any], limit: int = 30) -> str:
    shown = sorted(str(k) for k in keys if not str(k).startswith("_"))
    more = f", ... ({len(shown) - limit} more)" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more if shown else "nothing"


def _wrap(value: Any, path: str | None) -> Any:
    if isinstance(value, datetime) and not isinstance(value, KestraDateTime):
        return KestraDateTime.of(value)
    if path is not None and isinstance(value, Mapping) and not isinstance(value, _Named):
        return _Named(value, path)
    return value


def _child_path(obj: Any, key: Any, *, attribute: bool) -> str | None:
    parent = getattr(obj, "_path", None) if isinstance(obj, _Named) else None
    if parent is None:
        return None
    if attribute and isinstance(key, str) and key.isidentifier():
        return f"{parent}.{key}"
    return f"{parent}[{key!r}]"


_BUILTIN_GLOBALS = {"range", "dict", "lipsum", "cycler", "joiner", "namespace"}


class _HarrierContext(Context):
    def resolve_or_missing(self, key: str) -> Any:
        rv = super().resolve_or_missing(key)
        if rv is not _MISSING:
            return rv
        names = (set(self.vars) | set(self.parent)) - _BUILTIN_GLOBALS - set(_FUNCTIONS) - {
            "secret"
        }
        return self.environment.undefined(
            hint=f"{key!r} is undefined (available: {_names(names)})", name=key
        )


class _Environment(ImmutableSandboxedEnvironment):
    """Immutable: a template cannot append to a list in the caller's context."""

    context_class = _HarrierContext

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Pebble looks keys up before attributes: an input named `keys` or
        # `items` is the input, not dict.keys.
        if isinstance(obj, Mapping) and attribute in obj:
            return _wrap(obj[attribute], _child_path(obj, attribute, attribute=True))
        rv = super().getattr(obj, attribute)
        return self._explain(obj, attribute, rv, attribute=True)

    def getitem(self, obj: Any, argument: Any) -> Any:
        rv = super().getitem(obj, argument)
        return self._explain(obj, argument, rv, attribute=False)

    def _explain(self, obj: Any, key: Any, rv: Any, *, attribute: bool) -> Any:
        if not isinstance(rv, Undefined):
            return _wrap(rv, _child_path(obj, key, attribute=attribute))
        if getattr(rv, "_undefined_exception", None) is SecurityError:
            return rv
        if isinstance(obj, Mapping) and not isinstance(obj, Undefined):
            name = getattr(obj, "_path", None) if isinstance(obj, _Named) else None
            what = f"'{name}'" if name else "the mapping"
            verb = "attribute" if attribute else "key"
            label = name or "it"
            return self.undefined(
                hint=f"{what} has no {verb} {key!r} ({label} has: {_names(obj.keys())})",
                obj=obj, name=key,
            )
        return rv


# ---------------------------------------------------------------- filters


def _check(value: Any) -> Any:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


def to_datetime(value: Any, tz: Any = UTC, existing_format: str | None = None) -> datetime:
    """What Kestra's date filters accept: datetimes, dates (noon), ISO strings
    (with Z or an offset, or local in `tz`), epoch seconds."""
    _check(value)
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, 12, tzinfo=tz)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz)
    if isinstance(value, str):
        text = value.strip()
        try:
            if existing_format is not None:
                parsed = parse_java(text, existing_format)
            else:
                parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a date (expected ISO-8601, e.g. "
                             f"2024-01-31T10:00:00Z): {exc}") from exc
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)
    raise ValueError(f"cannot use {type(value).__name__} {value!r} as a date")


def _date(value: Any, format: str = "iso", timeZone: str | None = None,
          existingFormat: str | None = None, locale: str | None = None) -> str:
    # locale is accepted for Kestra compatibility; names always print in English.
    tz = zone(timeZone)
    dt = to_datetime(value, tz, existingFormat)
    return format_java(dt.astimezone(tz), format)


_TIME_UNITS = {
    "NANOS": timedelta(microseconds=0.001), "MICROS": timedelta(microseconds=1),
    "MILLIS": timedelta(milliseconds=1), "SECONDS": timedelta(seconds=1),
    "MINUTES": timedelta(minutes=1), "HOURS": timedelta(hours=1),
    "HALF_DAYS": timedelta(hours=12),
}
_DATE_UNITS = {"DAYS": (1, 0), "WEEKS": (7, 0), "MONTHS": (0, 1), "YEARS": (0, 12),
               "DECADES": (0, 120), "CENTURIES": (0, 1200)}


def _add_months(dt: datetime, months: int) -> datetime:
    index = dt.year * 12 + dt.month - 1 + months
    year, month = divmod(index, 12)
    import calendar

    day = min(dt.day, calendar.monthrange(year, month + 1)[1])
    return dt.replace(year=year, month=month + 1, day=day)


def date_add(value: Any, amount: int, unit: str) -> KestraDateTime:
    """Kestra's dateAdd: time units add exact durations, DAYS and longer add
    calendar amounts in the value's zone (months clamp to the last day)."""
    dt = to_datetime(value)
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValueError(f"dateAdd amount must be an integer, got {amount!r}")
    key = str(unit).upper()
    if key in _TIME_UNITS:
        tz = dt.tzinfo
        result = (dt.astimezone(UTC) + amount * _TIME_UNITS[key]).astimezone(tz)
    elif key in _DATE_UNITS:
        days, months = _DATE_UNITS[key]
        result = _add_months(dt, amount * months) if months else dt + timedelta(days=amount * days)
    else:
        known = ", ".join([*_TIME_UNITS, *_DATE_UNITS])
        raise ValueError(f"dateAdd: unknown unit {unit!r} (one of {known})")
    return KestraDateTime.of(result)


def _epoch(value: Any, scale: int) -> int:
    dt = to_datetime(value)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return micros * scale // 1_000_000 if scale <= 1_000_000 else micros * (scale // 1_000_000)


def _from_json(text: Any) -> Any:
    _check(text)
    if not isinstance(text, str | bytes):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno} column "
                         f"{exc.colno}): {str(text)[:80]!r}") from exc


def _now(timeZone: str | None = None) -> KestraDateTime:
    return KestraDateTime.of(datetime.now(UTC).astimezone(zone(timeZone)))


def _number(value: Any, type: str | None = None) -> int | float | Decimal:
    _check(value)
    text = str(value).strip()
    kind = (type or "").upper()
    try:
        if kind in ("INT", "INTEGER", "LONG", "BIGINTEGER"):
            return int(text)
        if kind in ("FLOAT", "DOUBLE"):
            return float(text)
        if kind == "BIGDECIMAL":
            return Decimal(text)
        return int(text) if re.fullmatch(r"[-+]?\d+", text) else float(text)
    except (ValueError, ArithmeticError) as exc:
        raise ValueError(f"{value!r} is not a number") from exc


def _replace(value: Any, search: Any, replacement: Any = None, count: int | None = None,
             regexp: bool = False) -> str:
    text = to_text(_check(value))
    pairs = (list(search.items()) if isinstance(search, Mapping)
             else [(search, "" if replacement is None else replacement)])
    for old, new in pairs:
        if regexp:
            text = re.sub(str(old), to_text(new), text, count=count or 0)
        else:
            text = text.replace(str(old), to_text(new), -1 if count is None else count)
    return text


def _split(value: Any, delimiter: str, limit: int | None = None) -> list[str]:
    text = to_text(_check(value))
    return text.split(delimiter) if not limit or limit < 1 else text.split(delimiter, limit - 1)


def _slugify(value: Any) -> str:
    import unicodedata

    text = unicodedata.normalize("NFKD", to_text(_check(value)))
    text = text.encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def _before(value: Any, sep: str, last: bool = False) -> str:
    text = to_text(_check(value))
    i = text.rfind(sep) if last else text.find(sep)
    return text if i < 0 else text[:i]


def _after(value: Any, sep: str, last: bool = False) -> str:
    text = to_text(_check(value))
    i = text.rfind(sep) if last else text.find(sep)
    return "" if i < 0 else text[i + len(sep):]


def _distinct(value: Any) -> list[Any]:
    out: list[Any] = []
    for item in _check(value):
        if item not in out:
            out.append(item)
    return out


def _abbreviate(value: Any, length: int) -> str:
    text = to_text(_check(value))
    if len(text) <= length:
        return text
    return text[: max(length - 3, 0)] + "..." if length >= 3 else text[:length]


def _chunk(value: Any, size: int) -> list[list[Any]]:
    items = list(_check(value))
    return [items[i:i + size] for i in range(0, len(items), size)]


def _coalesce(value: Any, fallback: Any) -> Any:
    return fallback if isinstance(value, Undefined) or value is None else value


def _raw(value: Any) -> RawText:
    """`{{ vars.flags | raw }}`: print without shell escaping. Only for text the
    flow author wrote (a variable holding several flags); never for inputs,
    trigger bodies or outputs, since unescaped they can add shell syntax."""
    return RawText(to_text(_check(value)))


_FILTERS: dict[str, Callable[..., Any]] = {
    "date": _date,
    "dateAdd": date_add,
    "timestamp": lambda v: _epoch(v, 1),
    "timestampMilli": lambda v: _epoch(v, 1000),
    "timestampMillis": lambda v: _epoch(v, 1000),
    "timestampMicro": lambda v: _epoch(v, 1_000_000),
    "timestampNano": lambda v: _epoch(v, 1_000_000_000),
    "json": lambda v: to_json(_check(v)),
    "toJson": lambda v: to_json(_check(v)),
    "fromJson": _from_json,
    "number": _number,
    "replace": _replace,
    "split": _split,
    "slugify": _slugify,
    "keys": lambda v: list(_check(v).keys()),
    "values": lambda v: list(_check(v).values()),
    "substringBefore": lambda v, s: _before(v, s),
    "substringBeforeLast": lambda v, s: _before(v, s, last=True),
    "substringAfter": lambda v, s: _after(v, s),
    "substringAfterLast": lambda v, s: _after(v, s, last=True),
    "startsWith": lambda v, s: to_text(_check(v)).startswith(s),
    "endsWith": lambda v, s: to_text(_check(v)).endswith(s),
    "abbreviate": _abbreviate,
    "distinct": _distinct,
    "chunk": _chunk,
    "rsort": lambda v: sorted(_check(v), reverse=True),
    "base64encode": lambda v: base64.b64encode(to_text(_check(v)).encode()).decode(),
    "base64decode": lambda v: base64.b64decode(to_text(_check(v))).decode(),
    "sha256": lambda v: hashlib.sha256(to_text(_check(v)).encode()).hexdigest(),
    "md5": lambda v: hashlib.md5(to_text(_check(v)).encode()).hexdigest(),
    "raw": _raw,
    "_coalesce": _coalesce,
}

_TESTS: dict[str, Callable[..., bool]] = {
    "null": lambda v: v is None,
    "empty": lambda v: v is None or (hasattr(v, "__len__") and len(v) == 0),
    "map": lambda v: isinstance(v, Mapping),
}

_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "now": _now,
    "json": _from_json,
    "fromJson": _from_json,
}


# ---------------------------------------------------------------- shell mode


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


def _shell_escape(value: Any, mode: str, delimiter: str = "") -> _ShellText:
    if isinstance(value, RawText):
        return _ShellText(value)
    return _ShellText(quote_for(mode, to_text(value), delimiter))


def _shell_finalize(value: Any) -> str:
    if isinstance(value, _ShellText):
        return value
    # Only reached by output the per-context filters did not wrap: quote as a word.
    return shlex.quote(to_text(value))


def _plain_finalize(value: Any) -> str:
    return to_text(value)


def _make_env(shell: bool) -> _Environment:
    env = _Environment(
        undefined=_HarrierUndefined,
        autoescape=False,
        keep_trailing_newline=True,  # YAML block scalars end with a newline
        finalize=_shell_finalize if shell else _plain_finalize,
    )
    env.filters.update(_FILTERS)
    env.tests.update(_TESTS)
    env.globals.update(_FUNCTIONS)
    if shell:
        env.filters["_shell"] = _shell_escape
    return env


_ENVS = {False: _make_env(False), True: _make_env(True)}


def _wrap_outputs(template: nodes.Template) -> None:
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


# ---------------------------------------------------------------- Pebble syntax

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


# ---------------------------------------------------------------- rendering


@lru_cache(maxsize=1024)
def _compile(source: str, shell: bool) -> Any:
    env = _ENVS[shell]
    translated = translate_pebble(source)
    tree = env.parse(translated)
    if shell:
        _wrap_outputs(tree)
    return env.from_string(tree)


def _snippet(source: str, line: int | None) -> str:
    lines = source.splitlines() or [source]
    text = lines[line - 1] if line and 0 < line <= len(lines) else source
    text = text.strip()
    return text if len(text) <= 160 else text[:157] + "..."


def _template_line(exc: BaseException) -> int | None:
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == "<template>":
            line = lineno
    return line


def _fail(source: str, field: str, problem: str, line: int | None) -> TemplateError:
    where = f"{field}: " if field else ""
    multi = "\n" in source.rstrip("\n")
    at = f" at line {line} of the template" if line and multi else ""
    return TemplateError(f"{where}{problem}{at}: {_snippet(source, line if multi else None)!r}")


def render_string(source: str, context: Mapping[str, Any], *, field: str = "",
                  shell: bool = False, secrets: Mapping[str, str] | None = None,
                  secrets_used: set[str] | None = None) -> str:
    """Render one template string (see render)."""
    if "{{" not in source and "{%" not in source:
        return source
    try:
        template = _compile(source, shell)
    except TemplateSyntaxError as exc:
        raise _fail(source, field, f"template syntax error: {exc.message}", exc.lineno) from exc

    def secret(name: str) -> str:
        if secrets is None or name not in secrets:
            known = _names(secrets.keys()) if secrets else "none configured"
            raise ValueError(f"secret {name!r} is not defined (known secrets: {known})")
        value = secrets[name]
        if secrets_used is not None:
            secrets_used.add(value)
        return value

    variables = {key: _wrap(value, key) for key, value in context.items()}
    variables["secret"] = secret
    try:
        return str(template.render(variables))
    except SecurityError as exc:
        raise _fail(source, field, f"not allowed in a template: {exc}",
                    _template_line(exc)) from exc
    except UndefinedError as exc:
        raise _fail(source, field, str(exc), _template_line(exc)) from exc
    except (JinjaTemplateError, ValueError, TypeError, LookupError, ArithmeticError,
            AttributeError) as exc:
        raise _fail(source, field, f"{type(exc).__name__}: {exc}" if not isinstance(
            exc, ValueError | JinjaTemplateError) else str(exc), _template_line(exc)) from exc


def render(value: Any, context: Mapping[str, Any], *, field: str = "", shell: bool = False,
           secrets: Mapping[str, str] | None = None,
           secrets_used: set[str] | None = None) -> Any:
    """Render every string in `value` (recursing into lists and dict values;
    keys and non-strings are returned unchanged) with `context`.

    shell=True is for properties that are shell scripts (Commands.commands,
    SparkCLI.commands). Each `{{ expression }}` output is escaped for the shell
    quoting context the literal text around it puts it in (bare word, '...',
    "...", $(...), backticks, here-documents, comments), so a value from inputs,
    webhooks or the API is always one piece of literal data and can never add
    shell syntax. Values made only of characters the shell leaves alone
    (com.etl.Aggregator, s3a://bucket/jars/etl.jar, 2024/01/31) are unchanged,
    so Kestra flows render as before. Positions no escaping can make safe
    (right after `$` or a backslash, inside $'...' or nested backticks) are a
    TemplateError. `| raw` opts out, for author-written text only. Values are
    rendered once: `{{ ... }}` inside a value stays literal text.

    Datetimes in the context print as Kestra prints them (2024-01-31T10:00:00.123Z):
    they are converted to KestraDateTime when a template reads them. The `date`
    filter works in UTC unless given timeZone (Kestra uses the server's zone).
    Pebble's `a ?? b` and `c ? a : b` work at the top level of a `{{ }}`
    (not inside `{% %}` tags or parentheses).

    `secret('NAME')` reads `secrets`; every value it returns is added to
    `secrets_used` so the caller can mask_secrets() logs. Errors raise
    TemplateError naming `field` (e.g. tasks[0].commands[0]), what is wrong and
    the template line.
    """
    if isinstance(value, str):
        return render_string(value, context, field=field, shell=shell, secrets=secrets,
                             secrets_used=secrets_used)
    if isinstance(value, list):
        return [render(item, context, field=f"{field}[{i}]", shell=shell, secrets=secrets,
                       secrets_used=secrets_used) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: render(item, context, field=f"{field}.{key}" if field else str(key),
                            shell=shell, secrets=secrets, secrets_used=secrets_used)
                for key, item in value.items()}
    return value


def mask_secrets(text: str, secrets_used: Iterable[str]) -> str:
    """Replace every secret value (also as shell-escaped in a command) with ******."""
    variants: set[str] = set()
    for value in secrets_used:
        if not value:
            continue
        variants.add(value)
        for mode in shell_modes():
            try:
                variants.add(quote_for(mode, value))
            except ShellContextError:
                continue
    for variant in sorted(variants, key=len, reverse=True):
        text = text.replace(variant, MASK)
    return text
