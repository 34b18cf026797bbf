"""Rendering of flow properties: Kestra's Pebble dialect on jinja2's immutable sandbox
with strict undefined variables (filters in template_filters, value printing in
template_values, shell escaping in shell_quoting, Python escaping in python_quoting,
`??`/ternary syntax in pebble)."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

from jinja2 import ChainableUndefined, StrictUndefined
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing as _MISSING

from harrier.common.errors import TemplateError
from harrier.common.pebble import translate_pebble
from harrier.common.python_quoting import (
    literal,
    python_escape,
    python_finalize,
    wrap_python_outputs,
)
from harrier.common.shell_quoting import (
    ShellContext,
    ShellContextError,
    quote_for,
    shell_escape,
    shell_finalize,
    shell_modes,
    wrap_outputs,
)
from harrier.common.template_filters import FILTERS, FUNCTIONS, TESTS, date_add, to_datetime
from harrier.common.template_values import KestraDateTime, RawText, kestra_iso, to_json, to_text

# Re-exported: callers import the whole templating API from this module.
__all__ = [
    "MASK", "KestraDateTime", "LazyMapping", "RawText", "ShellContext", "ShellContextError",
    "date_add",
    "kestra_iso", "mask_secrets", "quote_for", "render", "render_string", "shell_modes",
    "to_datetime", "to_json", "to_text", "translate_pebble",
]

MASK = "******"


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

    def __missing__(self, key: str) -> _Named:
        # Dotted keys nest, as Kestra nests them: `labels.system.correlationId`
        # reads the label `system.correlationId`, `inputs.nested.string` the
        # input with id `nested.string`.
        prefix = f"{key}."
        found = {k[len(prefix):]: v for k, v in self.items()
                 if isinstance(k, str) and k.startswith(prefix)}
        if not found:
            raise KeyError(key)
        return _Named(found, f"{self._path}.{key}")


class LazyMapping(Mapping[str, Any]):
    """A context mapping whose values are fetched when a template reads them
    (the outputs of earlier tasks), never copied as a whole. `_path` names it
    in error messages, as for _Named."""

    _path = ""


def _names(keys: Iterable[Any], limit: int = 30) -> str:
    shown = sorted(str(k) for k in keys if not str(k).startswith("_"))
    more = f", ... ({len(shown) - limit} more)" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more if shown else "nothing"


def _wrap(value: Any, path: str | None) -> Any:
    if isinstance(value, datetime) and not isinstance(value, KestraDateTime):
        return KestraDateTime.of(value)
    if path is not None and isinstance(value, Mapping) and not isinstance(
            value, _Named | LazyMapping):
        return _Named(value, path)
    return value


def _child_path(obj: Any, key: Any, *, attribute: bool) -> str | None:
    parent = getattr(obj, "_path", None) if isinstance(obj, _Named | LazyMapping) else None
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
        names = (set(self.vars) | set(self.parent)) - _BUILTIN_GLOBALS - set(FUNCTIONS) - {
            "secret", "kv"
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
            name = getattr(obj, "_path", None) if isinstance(obj, _Named | LazyMapping) else None
            what = f"'{name}'" if name else "the mapping"
            verb = "attribute" if attribute else "key"
            label = name or "it"
            return self.undefined(
                hint=f"{what} has no {verb} {key!r} ({label} has: {_names(obj.keys())})",
                obj=obj, name=key,
            )
        return rv


def _plain_finalize(value: Any) -> str:
    return to_text(value)


_FINALIZE = {"text": _plain_finalize, "shell": shell_finalize, "python": python_finalize}


def _make_env(syntax: str) -> _Environment:
    env = _Environment(
        undefined=_HarrierUndefined,
        autoescape=False,
        keep_trailing_newline=True,  # YAML block scalars end with a newline
        finalize=_FINALIZE[syntax],
    )
    env.filters.update(FILTERS)
    env.tests.update(TESTS)
    env.globals.update(FUNCTIONS)
    env.filters["_shell"] = shell_escape
    env.filters["_python"] = python_escape
    return env


_ENVS = {syntax: _make_env(syntax) for syntax in _FINALIZE}


@lru_cache(maxsize=1024)
def _compile(source: str, syntax: str) -> Any:
    env = _ENVS[syntax]
    translated = translate_pebble(source)
    tree = env.parse(translated)
    if syntax == "shell":
        wrap_outputs(tree)
    elif syntax == "python":
        wrap_python_outputs(tree)
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
                  shell: bool = False, python: bool = False,
                  secrets: Mapping[str, str] | None = None,
                  secrets_used: set[str] | None = None,
                  functions: Mapping[str, Callable[..., Any]] | None = None) -> str:
    """Render one template string (see render)."""
    if "{{" not in source and "{%" not in source:
        return source
    try:
        template = _compile(source, "shell" if shell else "python" if python else "text")
    except TemplateSyntaxError as exc:
        raise _fail(source, field, f"template syntax error: {exc.message}", exc.lineno) from exc

    def secret(name: str) -> str:
        # Kestra upper-cases the name: secret('my_secret') reads SECRET_MY_SECRET.
        key = name if secrets is not None and name in secrets else str(name).upper()
        broken = getattr(secrets, "undecodable", {})
        if key in broken:
            raise ValueError(f"secret {name!r}: {broken[key]}")
        if secrets is None or key not in secrets:
            known = _names(secrets.keys()) if secrets else "none configured"
            raise ValueError(f"secret {name!r} is not defined (known secrets: {known})")
        value = secrets[key]
        if secrets_used is not None:
            secrets_used.add(value)
        return value

    variables = {key: _wrap(value, key) for key, value in context.items()}
    variables["secret"] = secret
    variables.update(functions or {})
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
           python: bool = False, secrets: Mapping[str, str] | None = None,
           secrets_used: set[str] | None = None,
           functions: Mapping[str, Callable[..., Any]] | None = None) -> Any:
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

    python=True is the same for Python scripts (python.Script's script, `.py`
    inputFiles): the tokenize module finds where each expression lands; in code
    the value becomes a Python literal of its own (5, 'Ada', [1, 2], None), in
    a string literal it is escaped for that literal (quotes, backslashes,
    newlines; braces doubled in f-strings), in a comment it stays on its line.

    Datetimes in the context print as Kestra prints them (2024-01-31T10:00:00.123Z):
    they are converted to KestraDateTime when a template reads them. The `date`
    filter works in UTC unless given timeZone (Kestra uses the server's zone).
    Pebble's `a ?? b` and `c ? a : b` work at the top level of a `{{ }}`
    (not inside `{% %}` tags or parentheses).

    `secret('NAME')` reads `secrets`; every value it returns is added to
    `secrets_used` so the caller can mask_secrets() logs. Errors raise
    TemplateError naming `field` (e.g. tasks[0].commands[0]), what is wrong and
    the template line. `functions`: more functions the caller provides (the
    worker's `read(uri)`, which needs the task's storage).
    """
    if isinstance(value, str):
        return render_string(value, context, field=field, shell=shell, python=python,
                             secrets=secrets, secrets_used=secrets_used, functions=functions)
    if isinstance(value, list):
        return [render(item, context, field=f"{field}[{i}]", shell=shell, python=python,
                       secrets=secrets, secrets_used=secrets_used, functions=functions)
                for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: render(item, context, field=f"{field}.{key}" if field else str(key),
                            shell=shell, python=python, secrets=secrets,
                            secrets_used=secrets_used, functions=functions)
                for key, item in value.items()}
    return value


def mask_secrets(text: str, secrets_used: Iterable[str]) -> str:
    """Replace every secret value (also as shell-escaped in a command, or
    percent-encoded in a URL an HTTP client reports) with ******."""
    variants: set[str] = set()
    for value in secrets_used:
        if not value:
            continue
        variants.update((value, quote(value, safe=""), quote(value), quote_plus(value)))
        variants.add(literal(value)[1:-1])  # as written into a Python script
        for mode in shell_modes():
            try:
                variants.add(quote_for(mode, value))
            except ShellContextError:
                continue
    for variant in sorted(variants, key=len, reverse=True):
        text = text.replace(variant, MASK)
    return text
