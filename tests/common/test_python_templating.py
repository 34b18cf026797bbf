"""Template values in Python scripts land as data, never as code: a literal of
their own in code, escaped text inside the string literal around them. Checked
by running the rendered scripts with a real Python interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harrier.common.errors import TemplateError
from harrier.common.templating import render

ATTACK = '"; import os; os.system("touch {marker}"); x="'

# One assignment per context an expression can land in; the script prints what
# each variable holds, as JSON.
CONTEXTS = '''
import json
double = "{{ inputs.v }}"
single = '{{ inputs.v }}'
triple = """{{ inputs.v }}"""
triple_single = \'\'\'<{{ inputs.v }}>\'\'\'
fstring = f"[{{ inputs.v }}]{len('ab')}"
prefixed = u"{{ inputs.v }}"
as_bytes = b"{{ inputs.v }}".decode("utf-8")
bare = {{ inputs.v }}
called = str({{ inputs.v }})
# a comment holding {{ inputs.v }}
after_comment = "still code"
print(json.dumps([double, single, triple, triple_single, fstring, prefixed, as_bytes, bare,
                  called, after_comment]))
'''


def run_python(source: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", source], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def rendered(source: str, **inputs: Any) -> str:
    return str(render(source, {"inputs": inputs}, field="script", python=True))


def expected_for(value: str) -> list[str]:
    return [value, value, value, f"<{value}>", f"[{value}]2", value, value, value, value,
            "still code"]


text_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40) | st.sampled_from([
    '"; import os; x="', "'; import os; x='", '"""', "'''", "\\", "\\\"", "{x}", "}}{{",
    "a\nb\r\nc", "\x00\x07\x1b", "\u2028\u0085", "é ☃ 𝄞", "# not a comment", "$(id)",
])


@settings(max_examples=40)
@given(text_values)
def test_any_text_value_is_data_in_every_context(tmp_path_factory, value: str) -> None:
    workdir = tmp_path_factory.mktemp("py")
    done = run_python(rendered(CONTEXTS, v=value), workdir)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected_for(value)
    assert list(workdir.iterdir()) == []


def test_the_injection_string_is_inert(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    attack = ATTACK.format(marker=marker)
    done = run_python(rendered(CONTEXTS, v=attack), tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected_for(attack)
    assert not marker.exists()


@pytest.mark.parametrize(("value", "code"), [
    (5, "5"), (-2.5, "-2.5"), (True, "True"), (None, "None"), ("Ada", "'Ada'"),
    ([1, "a", None], "[1, 'a', None]"), ({"k": [True]}, "{'k': [True]}"),
    (float("inf"), "float('inf')"),
])
def test_a_value_in_code_is_a_literal_of_its_own(value: Any, code: str) -> None:
    assert rendered("x = {{ inputs.v }}\n", v=value) == f"x = {code}\n"


@settings(max_examples=40)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=10))
def test_json_like_values_in_code_evaluate_to_themselves(value: Any) -> None:
    source = rendered("{{ inputs.v }}", v=value)
    assert eval(source, {"__builtins__": {"float": float}}) == value


def test_values_inside_strings_print_as_text_like_kestra() -> None:
    assert rendered('print("n={{ inputs.n }} ok={{ inputs.ok }}")', n=3, ok=True) == \
        'print("n=3 ok=true")'


def test_safe_values_are_unchanged_inside_strings() -> None:
    path = "s3a://bucket/jars/etl-2024.01.31.jar"
    assert rendered('p = "{{ inputs.p }}"', p=path) == f'p = "{path}"'


def test_raw_opts_out_for_author_written_code() -> None:
    assert rendered('{{ "print(1)" | raw }}') == "print(1)"


def test_an_expression_in_an_f_string_field_is_refused_with_a_way_out() -> None:
    with pytest.raises(TemplateError, match=r"f-string's \{...\}.*assign the value"):
        rendered('print(f"{ {{ inputs.v }} }")', v="1")


def test_a_raw_string_refuses_values_that_would_close_it() -> None:
    assert rendered('p = r"{{ inputs.v }}"', v="C:/data") == 'p = r"C:/data"'
    with pytest.raises(TemplateError, match="raw string"):
        rendered('p = r"{{ inputs.v }}"', v='x"; import os; "')


def test_an_expression_in_a_name_only_takes_identifier_characters() -> None:
    assert rendered("col_{{ inputs.v }} = 1", v="2024") == "col_2024 = 1"
    with pytest.raises(TemplateError, match="part of a Python name"):
        rendered("col_{{ inputs.v }} = 1", v="x = 1; import os")


def test_a_script_python_cannot_tokenize_is_a_clear_error() -> None:
    with pytest.raises(TemplateError, match="cannot tell where the expressions land"):
        rendered('x = """{{ inputs.v }}\n', v="1")


def test_control_flow_keeps_the_context() -> None:
    source = ('names = [{% for n in inputs.names %}"{{ n }}", {% endfor %}]\n'
              "{% if inputs.flag %}flag = {{ inputs.flag }}{% endif %}\n")
    out = rendered(source, names=['a"b', "c"], flag="yes")
    scope: dict[str, Any] = {}
    exec(out, scope)
    assert scope["names"] == ['a"b', "c"] and scope["flag"] == "yes"
