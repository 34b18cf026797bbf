from __future__ import annotations

import json
import shlex
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from harrier.common.errors import TemplateError
from harrier.common.templating import KestraDateTime, date_add, mask_secrets, render

START = datetime(2024, 1, 31, 10, 0, 0, 123000, tzinfo=UTC)
SEED_SPARK = """spark-submit \\
  --master spark://ilum-core:9888 \\
  --deploy-mode cluster \\
  --class {{ inputs.main_class }} \\
  {{ inputs.jar_location }} \\
  --date {{ execution.startDate | date("yyyy-MM-dd") }} \\
  --input-path s3a://raw-data/{{ execution.startDate | date("yyyy/MM/dd") }}/
"""


def context(**inputs: Any) -> dict[str, Any]:
    return {
        "flow": {"id": "daily", "namespace": "com.etl"},
        "execution": {"id": "4wjtkzwVGBM9yKnjm3yv8r", "startDate": START},
        "inputs": {"main_class": "com.etl.Aggregator",
                   "jar_location": "s3a://bucket/jars/etl.jar", **inputs},
        "outputs": {"make-data": {"vars": {"rows": 3}}, "plain": {"value": "x"}},
        "vars": {"region": "eu"},
        "taskrun": {"id": "tr1", "attemptsCount": 1, "value": None},
    }


# ------------------------------------------------------------ plain rendering


def test_seed_spark_command_renders_as_in_kestra() -> None:
    for shell in (False, True):
        assert render(SEED_SPARK, context(), shell=shell) == """spark-submit \\
  --master spark://ilum-core:9888 \\
  --deploy-mode cluster \\
  --class com.etl.Aggregator \\
  s3a://bucket/jars/etl.jar \\
  --date 2024-01-31 \\
  --input-path s3a://raw-data/2024/01/31/
"""


def test_strings_without_template_syntax_come_back_unchanged() -> None:
    text = "echo ${#arr[@]} {not a template} }}"
    assert render(text, {}) is text


def test_renders_recursively_inside_lists_and_dict_values_only() -> None:
    value = {"{{ vars.region }}": ["{{ vars.region }}", 3, {"k": "{{ flow.id }}"}], "n": None}
    assert render(value, context()) == {"{{ vars.region }}": ["eu", 3, {"k": "daily"}], "n": None}


def test_start_date_prints_as_kestra_iso_instant() -> None:
    assert render("{{ execution.startDate }}", context()) == "2024-01-31T10:00:00.123Z"
    assert render("{{ 'at ' ~ execution.startDate }}", context()) == "at 2024-01-31T10:00:00.123Z"
    assert str(KestraDateTime.of(datetime(2024, 1, 31, tzinfo=UTC))) == "2024-01-31T00:00:00Z"
    paris = KestraDateTime.of(START.astimezone(ZoneInfo("Europe/Paris")))
    assert str(paris) == "2024-01-31T11:00:00.123+01:00"


def test_values_print_like_pebble() -> None:
    ctx = {"t": True, "f": False, "n": None, "d": {"a": [1, 2]}, "dur": timedelta(minutes=5),
           "day": date(2024, 1, 31)}
    assert render("{{ t }} {{ f }} [{{ n }}] {{ d }} {{ dur }} {{ day }}", ctx) == (
        'true false [] {"a":[1,2]} PT5M 2024-01-31')


def test_trailing_newline_of_block_scalars_is_kept() -> None:
    assert render("echo {{ vars.region }}\n", context()) == "echo eu\n"


def test_outputs_of_tasks_with_dashes_are_reachable_by_subscript() -> None:
    assert render("{{ outputs['make-data'].vars.rows }}", context()) == "3"


def test_values_are_rendered_once_never_as_templates() -> None:
    ctx = context(evil="{{ secret('DB') }}{% for x in range(10**9) %}{% endfor %}")
    assert render("{{ inputs.evil }}", ctx) == ctx["inputs"]["evil"]


def test_pebble_null_coalescing_and_ternary() -> None:
    ctx = context(flag=True, empty=None)
    assert render("{{ inputs.nope ?? 'dflt' }}", ctx) == "dflt"
    assert render("{{ inputs.empty ?? 'dflt' }}", ctx) == "dflt"
    assert render("{{ inputs.main_class ?? 'dflt' }}", ctx) == "com.etl.Aggregator"
    assert render("{{ trigger.body.x ?? inputs.nope ?? 'last' }}", ctx) == "last"
    assert render("{{ inputs.flag ? 'yes' : 'no' }}", ctx) == "yes"
    assert render("{{ not inputs.flag ? 'yes' : inputs.nope ?? 'n/a' }}", ctx) == "n/a"
    assert render("{{ inputs.flag ? 'a' : inputs.flag ? 'b' : 'c' }}", ctx) == "a"
    assert render("{{ 'what?' }} {{ {'a': 1}['a'] }} {{ [1, 2][0:1] }}", ctx) == "what? 1 [1]"
    assert render("{{- ' x ' ?? 'y' -}}", ctx) == " x "


def test_default_filter_works_for_missing_attribute_chains() -> None:
    assert render("{{ inputs.nope | default('y') }}", context()) == "y"
    assert render("{{ trigger.body.a.b | default('y') }}", context()) == "y"
    assert render("{% if inputs.nope is defined %}a{% else %}b{% endif %}", context()) == "b"


def test_mapping_keys_win_over_dict_methods() -> None:
    assert render("{{ inputs.keys }}-{{ inputs.items }}", {"inputs": {"keys": "k", "items": 2}}) \
        == "k-2"


# ------------------------------------------------------------ filters and functions


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('{{ execution.startDate | date("yyyy/MM/dd") }}', "2024/01/31"),
        ('{{ execution.startDate | date("HH:mm", timeZone="Europe/Paris") }}', "11:00"),
        ('{{ execution.startDate | date(format="iso_sec") }}', "2024-01-31T10:00:00Z"),
        ("{{ execution.startDate | date }}", "2024-01-31T10:00:00.123000Z"),
        ('{{ "2024-01-31T23:30:00+01:00" | date("yyyy-MM-dd HH:mm") }}', "2024-01-31 22:30"),
        ('{{ "2024-01-31T10:00:00Z" | date("dd.MM.yyyy") }}', "31.01.2024"),
        ('{{ "2024-01-31" | date("EEEE") }}', "Wednesday"),
        ('{{ 1706695200 | date("yyyy-MM-dd HH:mm") }}', "2024-01-31 10:00"),
        ('{{ "31/01/2024" | date("yyyy-MM-dd", existingFormat="dd/MM/yyyy") }}', "2024-01-31"),
        ("{{ execution.startDate | dateAdd(-1, 'DAYS') | date('yyyy-MM-dd') }}", "2024-01-30"),
        ("{{ execution.startDate | dateAdd(1, 'MONTHS') | date('yyyy-MM-dd') }}", "2024-02-29"),
        ("{{ execution.startDate | dateAdd(2, 'HOURS') }}", "2024-01-31T12:00:00.123Z"),
        ("{{ execution.startDate | timestamp }}", "1706695200"),
        ("{{ execution.startDate | timestampMilli }}", "1706695200123"),
        ("{{ execution.startDate | timestampNano }}", "1706695200123000000"),
        ("{{ outputs['make-data'] | json }}", '{"vars":{"rows":3}}'),
        ("{{ {'d': execution.startDate} | toJson }}", '{"d":"2024-01-31T10:00:00.123Z"}'),
        ("{{ json('{\"a\": [1, 2]}').a[1] }}", "2"),
        ("{{ fromJson('[3]') | first }}", "3"),
        ("{{ ' Hi ' | trim | upper }}{{ 'X' | lower }}", "HIx"),
        ("{{ 'a,b,c' | split(',') | join('+') }}", "a+b+c"),
        ("{{ 'a,b,c' | split(',', 2) | last }}", "b,c"),
        ("{{ 'I like %this%' | replace({'%this%': 'that'}) }}", "I like that"),
        ("{{ 'aaa' | replace('a', 'b') }}", "bbb"),
        ("{{ 'a1b22' | replace('[0-9]+', '#', regexp=true) }}", "a#b#"),
        ("{{ outputs | keys | sort | join(',') }}", "make-data,plain"),
        ("{{ {'a': 1, 'b': 2} | values | sum }}", "3"),
        ("{{ -3 | abs }} {{ '12' | number + 1 }} {{ '1.5' | number * 2 }}", "3 13 3.0"),
        ("{{ 'Hello, World à la Spark!' | slugify }}", "hello-world-a-la-spark"),
        ("{{ 'a.b.c' | substringBefore('.') }}|{{ 'a.b.c' | substringAfter('.') }}", "a|b.c"),
        ("{{ 'a.b.c' | substringBeforeLast('.') }}|{{ 'a.b.c' | substringAfterLast('.') }}",
         "a.b|c"),
        ("{{ 'abc' | substringBefore('x') }}|{{ 'abc' | substringAfter('x') }}", "abc|"),
        ("{{ 's3a://x' | startsWith('s3a') }} {{ 'a.jar' | endsWith('.py') }}", "true false"),
        ("{{ [1, 2, 3] | length }} {{ 'abc' | length }}", "3 3"),
        ("{{ none is null }} {{ '' is empty }} {{ {} is map }}", "true true true"),
        ("{{ [1, 1, 2] | distinct }} {{ [1, 2, 3] | chunk(2) }}", "[1,2] [[1,2],[3]]"),
        ("{{ 'hello' | base64encode }} {{ 'aGVsbG8=' | base64decode }}", "aGVsbG8= hello"),
    ],
)
def test_kestra_filters_and_functions(template: str, expected: str) -> None:
    assert render(template, context()) == expected


def test_now_is_an_aware_utc_datetime_printing_iso() -> None:
    before = datetime.now(UTC)
    rendered = render("{{ now() }}", {})
    parsed = datetime.fromisoformat(rendered)
    assert rendered.endswith("Z") and parsed.tzinfo is not None
    assert before - timedelta(seconds=1) <= parsed <= datetime.now(UTC) + timedelta(seconds=1)
    assert render("{{ now() | date('yyyy') }}", {}) == str(datetime.now(UTC).year)


def test_date_add_is_calendar_aware_and_exact_across_dst() -> None:
    assert date_add(datetime(2024, 1, 31, tzinfo=UTC), 1, "MONTHS").day == 29
    assert date_add(datetime(2024, 2, 29, tzinfo=UTC), 1, "YEARS") == datetime(
        2025, 2, 28, tzinfo=UTC)
    paris = datetime(2024, 3, 30, 12, tzinfo=ZoneInfo("Europe/Paris"))  # DST starts 31 March
    assert date_add(paris, 1, "DAYS").hour == 12
    assert date_add(paris, 24, "HOURS").hour == 13
    assert date_add("2024-01-01T00:00:00Z", 1500, "MILLIS").microsecond == 500000
    with pytest.raises(ValueError, match="unknown unit 'FORTNIGHTS'"):
        date_add(START, 1, "FORTNIGHTS")


def test_secret_reads_the_given_mapping_and_records_what_it_returned() -> None:
    used: set[str] = set()
    out = render(["--password {{ secret('DB') }}"], {}, secrets={"DB": "s3cr3t", "X": "y"},
                 secrets_used=used)
    assert out == ["--password s3cr3t"]
    assert used == {"s3cr3t"}
    assert mask_secrets("connecting with s3cr3t", used) == "connecting with ******"


def test_missing_secret_is_named_without_revealing_others() -> None:
    with pytest.raises(TemplateError, match="secret 'NOPE' is not defined") as info:
        render("{{ secret('NOPE') }}", {}, secrets={"DB": "s3cr3t"})
    assert "s3cr3t" not in str(info.value)


def test_mask_secrets_also_masks_the_shell_quoted_form() -> None:
    used: set[str] = set()
    command = render("psql '{{ secret(\"DB\") }}' {{ secret('DB') }}", {}, shell=True,
                     secrets={"DB": "it's a secret"}, secrets_used=used)
    masked = mask_secrets(command, used)
    assert "secret" not in masked.replace("******", "")
    assert masked == "psql '******' ******"


# ------------------------------------------------------------ errors


def test_missing_attribute_names_field_template_and_available_keys() -> None:
    with pytest.raises(TemplateError) as info:
        render(SEED_SPARK.replace("main_class", "main_clas"), context(),
               field="tasks[0].commands[0]", shell=True)
    message = str(info.value)
    assert message.startswith("tasks[0].commands[0]: ")
    assert "'inputs' has no attribute 'main_clas' (inputs has: jar_location, main_class)" \
        in message
    assert "line 4 of the template" in message and "--class {{ inputs.main_clas }}" in message


def test_missing_top_level_variable_lists_what_is_available() -> None:
    with pytest.raises(TemplateError, match=r"'input' is undefined \(available: execution, "
                                            r"flow, inputs, outputs, taskrun, vars\)"):
        render("{{ input.main_class }}", context())


def test_missing_nested_key_names_its_path() -> None:
    with pytest.raises(TemplateError, match=r"'outputs\['make-data'\].vars' has no attribute "
                                            r"'row' \(outputs\['make-data'\].vars has: rows\)"):
        render("{{ outputs['make-data'].vars.row }}", context())
    with pytest.raises(TemplateError, match=r"'outputs' has no key 'nope' \(outputs has: "
                                            r"make-data, plain\)"):
        render("{{ outputs['nope'] }}", context())


def test_render_recursion_names_the_field_path() -> None:
    with pytest.raises(TemplateError, match=r"^commands\[1\]: 'nope' is undefined"):
        render({"commands": ["ok", "{{ nope }}"]}, {})


def test_syntax_errors_name_the_line_within_the_template() -> None:
    with pytest.raises(TemplateError, match=r"template syntax error: .* at line 2 of the "
                                            r"template: '--class \{\{ inputs.x \}'"):
        render("spark-submit \\\n--class {{ inputs.x }\n", {}, field="commands[0]")


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ inputs.__class__ }}",
        "{{ now.__globals__['os'] }}",
        "{{ range.__self__ }}",
        "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    ],
)
def test_sandbox_escapes_are_template_errors(template: str) -> None:
    with pytest.raises(TemplateError, match=r"not allowed|unsafe|undefined|no attribute"):
        render(template, context())


def test_filter_errors_become_template_errors() -> None:
    with pytest.raises(TemplateError, match="unknown pattern letter 'b'"):
        render("{{ execution.startDate | date('yyyy-bb') }}", context())
    with pytest.raises(TemplateError, match="not valid JSON"):
        render("{{ json('{nope') }}", {})
    with pytest.raises(TemplateError, match="not a date"):
        render("{{ 'yesterday' | date('yyyy') }}", {})


def test_printing_an_undefined_value_through_a_filter_fails() -> None:
    with pytest.raises(TemplateError, match="'inputs' has no attribute 'nope'"):
        render("{{ inputs.nope | upper }}", context())
    with pytest.raises(TemplateError, match="'inputs' has no attribute 'nope'"):
        render("{{ inputs.nope | date('yyyy') }}", context())


# ------------------------------------------------------------ shell mode


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ("com.etl.Aggregator", "echo com.etl.Aggregator"),
        ("s3a://bucket/jars/etl.jar", "echo s3a://bucket/jars/etl.jar"),
        ("2024/01/31", "echo 2024/01/31"),
        ("a b", "echo 'a b'"),
        ("x; rm -rf /", "echo 'x; rm -rf /'"),
        ("$(id)", "echo '$(id)'"),
        ("", "echo ''"),
    ],
)
def test_shell_mode_quotes_only_what_needs_quoting(value: str, rendered: str) -> None:
    assert render("echo {{ inputs.x }}", {"inputs": {"x": value}}, shell=True) == rendered


def test_shell_mode_escapes_for_the_quoting_context() -> None:
    ctx = {"inputs": {"x": "it's $HOME `id` \"q\" \\"}}
    assert render("echo '{{ inputs.x }}'", ctx, shell=True) == (
        "echo 'it'\\''s $HOME `id` \"q\" \\'")
    assert render('echo "{{ inputs.x }}"', ctx, shell=True) == (
        'echo "it\'s \\$HOME \\`id\\` \\"q\\" \\\\"')


def test_raw_filter_leaves_author_controlled_text_unquoted() -> None:
    ctx = {"vars": {"flags": "--verbose --num-executors 2"}}
    assert render("spark-submit {{ vars.flags | raw }}", ctx, shell=True) == (
        "spark-submit --verbose --num-executors 2")
    assert render("spark-submit {{ vars.flags }}", ctx, shell=True) == (
        "spark-submit '--verbose --num-executors 2'")


def test_loops_quote_each_item_as_its_own_word() -> None:
    ctx = {"inputs": {"args": ["a b", "c"]}}
    assert render("run {% for a in inputs.args %}{{ a }} {% endfor %}", ctx, shell=True) == (
        "run 'a b' c ")


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("echo \\{{ inputs.x }}", "backslash"),
        ("echo ${{ inputs.x }}", "'\\$'"),
        ("echo \"${{ inputs.x }}\"", "'\\$'"),
        ("echo $'{{ inputs.x }}'", r"\$'\.\.\.'"),
        ("echo `echo \\`echo {{ inputs.x }}\\``", "nested backticks"),
    ],
)
def test_shell_positions_that_cannot_be_escaped_are_refused(template: str, problem: str) -> None:
    with pytest.raises(TemplateError, match=problem):
        render(template, {"inputs": {"x": "v"}}, shell=True)


def test_value_that_would_end_a_heredoc_or_comment_is_refused() -> None:
    with pytest.raises(TemplateError, match="here-document delimiter 'EOF'"):
        render("cat <<EOF\n{{ inputs.x }}\nEOF\n", {"inputs": {"x": "a\nEOF\nrm -rf /"}},
               shell=True)
    with pytest.raises(TemplateError, match="shell comment"):
        render("true # {{ inputs.x }}\n", {"inputs": {"x": "a\nrm -rf /"}}, shell=True)


def run_sh(script: str, shell: str = "/bin/sh", cwd: Path | None = None) -> str:
    # bytes, not text=True: universal newlines would turn a printed \r into \n
    done = subprocess.run([shell, "-c", script], capture_output=True, check=True,
                          cwd=cwd, timeout=30)
    return done.stdout.decode()


shell_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=40,
)
nasty_text = st.one_of(
    shell_text,
    st.lists(st.sampled_from(["'", '"', "\\", "$", "`", "(", ")", ";", "&", "|", "\n", " ",
                              "$(touch pwned)", "{{ 7*7 }}", "EOF", "#", "*", "~", "!", "a"]),
             max_size=12).map("".join),
)


@given(nasty_text)
def test_any_value_becomes_exactly_one_shell_word(value: str) -> None:
    rendered = render("echo {{ inputs.x }}", {"inputs": {"x": value}}, shell=True)
    assert shlex.split(rendered) == ["echo", value]


CONTEXTS = [
    "printf '%s' {{ inputs.x }}",
    "printf '%s' '{{ inputs.x }}'",
    "printf '%s' \"{{ inputs.x }}\"",
    "printf '%s' \"$(printf '%s' {{ inputs.x }})\"",
    "printf '%s' \"pre-{{ inputs.x }}-post\"",
    "printf '%s' \"`printf '%s' {{ inputs.x }}`\"",
    "printf '%s' \"`printf '%s' \"{{ inputs.x }}\"`\"",
    "printf '%s' \"$(printf '%s' \"`printf '%s' '{{ inputs.x }}'`\")\"",
    "printf '%s' \"`printf '%s' \\\"$(printf '%s' {{ inputs.x }})\\\"`\"",
    "cat <<EOF\n{{ inputs.x }}\nEOF",
    "cat <<'EOF'\n{{ inputs.x }}\nEOF",
    "cat <<-EOF\n\t{{ inputs.x }}\n\tEOF",
    "true # {{ inputs.x }}\nprintf done",
]


def expected_output(template: str, value: str) -> str:
    if template.startswith("cat <<-"):
        # <<- strips leading tabs from every line: the shell's rule, not an escape.
        return "\n".join(line.lstrip("\t") for line in value.split("\n")) + "\n"
    if template.startswith("cat"):
        return value + "\n"
    if template.startswith("true"):
        return "done"
    if "pre-" in template:
        return f"pre-{value}-post"
    if "$(" in template or "`" in template:
        return value.rstrip("\n")  # command substitution strips trailing newlines
    return value


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=nasty_text, template=st.sampled_from(CONTEXTS),
       sh=st.sampled_from(["/bin/sh", "/usr/bin/bash"]))
def test_rendered_commands_print_the_value_and_run_nothing_else(
        tmp_path: Path, value: str, template: str, sh: str) -> None:
    if template.startswith("cat"):
        assume("EOF" not in value)
    if template.startswith("true"):
        assume("\n" not in value)
    script = render(template, {"inputs": {"x": value}}, shell=True)
    assert run_sh(script, sh, cwd=tmp_path) == expected_output(template, value)
    assert list(tmp_path.iterdir()) == []


@given(st.text(alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd"),
                                      max_codepoint=127) | st.sampled_from("@%+=:,./-_"),
               min_size=1))
def test_safe_values_are_never_changed(value: str) -> None:
    assert render("x {{ v }} '{{ v }}' \"{{ v }}\"", {"v": value}, shell=True) == (
        f"x {value} '{value}' \"{value}\"")


@given(st.dictionaries(st.text(min_size=1, max_size=5),
                       st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                                    lambda inner: st.lists(inner, max_size=3)
                                    | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                                    max_leaves=10),
                       max_size=4))
def test_to_json_then_from_json_round_trips(value: dict[str, Any]) -> None:
    rendered = render("{{ v | toJson }}", {"v": value})
    assert json.loads(rendered) == value
    assert render("{{ fromJson(v | toJson) == v }}", {"v": value}) == "true"


@given(st.text(max_size=50))
def test_any_text_either_renders_or_raises_template_error(source: str) -> None:
    try:
        result = render("{{ " + source + " }}", context())
    except TemplateError:
        return
    assert isinstance(result, str)


def test_templates_cannot_mutate_the_context() -> None:
    ctx = {"outputs": {"t": {"rows": [1, 2]}}}
    with pytest.raises(TemplateError, match="not allowed"):
        render("{{ outputs.t.rows.append(3) }}", ctx)
    with pytest.raises(TemplateError, match="not allowed"):
        render("{{ outputs.t.update({'x': 1}) }}", ctx)
    assert ctx == {"outputs": {"t": {"rows": [1, 2]}}}


def test_namespaces_and_set_still_work() -> None:
    template = ("{% set ns = namespace(total=0) %}{% for n in inputs.xs %}"
                "{% set ns.total = ns.total + n %}{% endfor %}{{ ns.total }}")
    assert render(template, {"inputs": {"xs": [1, 2, 3]}}) == "6"


@given(st.text(alphabet=st.sampled_from(list("ab(),[]{}:'\" ~+|%")), max_size=30))
def test_templates_without_pebble_operators_are_not_rewritten(text: str) -> None:
    from harrier.common.pebble import translate_pebble

    for source in (f"{{{{ {text} }}}}", f"{{% if {text} %}}x{{% endif %}}"):
        assert translate_pebble(source) == source


def test_pebble_operators_inside_parentheses_and_tags() -> None:
    ctx = {"inputs": {"a": "A"}}
    assert render("{{ ((inputs.nope ?? 'x') ~ (true ? 'y' : nope)) }}", ctx) == "xy"
    assert render("{{ ['p', inputs.nope ?? 'q'] | join(',') }}", ctx) == "p,q"
    assert render("{% if inputs.a equals 'A' %}eq{% endif %}", ctx) == "eq"
    assert render("{% for x in (inputs.nope ?? ['m', 'n']) %}{{ x }}{% endfor %}", ctx) == "mn"
    assert render("{{ 'a equals b ? c' }}", ctx) == "a equals b ? c"  # strings untouched
