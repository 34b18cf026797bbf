from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from harrier.common.errors import InputError
from harrier.common.inputs import InputSpec, InputType, coerce_inputs, inputs_to_json


def spec(**fields: Any) -> InputSpec:
    return InputSpec.model_validate(fields)


def coerce_one(value: Any, **fields: Any) -> Any:
    fields.setdefault("id", "x")
    return coerce_inputs([spec(**fields)], {"x": value})["x"]


def problems_of(specs: list[InputSpec], given: dict[str, Any]) -> list[str]:
    with pytest.raises(InputError) as info:
        coerce_inputs(specs, given)
    return info.value.problems


# ------------------------------------------------------------ the model


def test_seed_inputs_validate_unchanged() -> None:
    specs = [spec(id="jar_location", type="STRING",
                  defaults="s3a://data-lake-artifacts/jobs/spark-job-1.0.jar"),
             spec(id="main_class", type="STRING", defaults="com.enterprise.data.IngestionJob"),
             spec(id="YourMainClass", type="STRING")]
    assert coerce_inputs(specs, {"YourMainClass": "com.x.Main"}) == {
        "jar_location": "s3a://data-lake-artifacts/jobs/spark-job-1.0.jar",
        "main_class": "com.enterprise.data.IngestionJob",
        "YourMainClass": "com.x.Main",
    }


def test_camel_case_aliases_and_field_names_both_populate() -> None:
    by_alias = spec(id="d", type="ARRAY", itemType="INT", displayName="Days",
                    allowCustomValue=False)
    by_name = InputSpec(id="d", type=InputType.ARRAY, item_type=InputType.INT,
                        display_name="Days")
    assert by_alias == by_name
    assert by_alias.display_name == "Days"


def test_old_name_spelling_is_accepted_but_not_together_with_id() -> None:
    assert spec(name="region", type="STRING").id == "region"
    with pytest.raises(ValidationError, match="not both"):
        spec(name="region", id="region", type="STRING")


def test_unknown_properties_and_types_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        spec(id="x", type="STRING", default="oops")
    with pytest.raises(ValidationError, match="type"):
        spec(id="x", type="COLOUR")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": "SELECT"}, "SELECT needs a non-empty `values` list"),
        ({"type": "MULTISELECT", "values": []}, "non-empty `values`"),
        ({"type": "STRING", "values": ["a"]}, "`values` applies to SELECT"),
        ({"type": "ARRAY"}, "ARRAY needs an `itemType`"),
        ({"type": "ARRAY", "itemType": "ARRAY"}, "itemType ARRAY is not allowed"),
        ({"type": "INT", "itemType": "INT"}, "`itemType` applies to ARRAY"),
        ({"type": "STRING", "validator": "(["}, "is not a regular expression"),
        ({"type": "INT", "validator": "\\d+"}, "`validator` applies to STRING"),
        ({"type": "INT", "defaults": "abc"}, "defaults 'abc' is not valid: expected INT"),
        ({"type": "INT", "defaults": 0, "min": 1}, "expected INT \\(a whole number\\) >= 1"),
        ({"type": "INT", "min": 5, "max": 1}, "min/max"),
        ({"type": "STRING", "min": 1}, "min/max apply to"),
        ({"type": "DATE", "after": "2024-02-01", "before": "2024-01-01"}, "after/before"),
        ({"type": "BOOLEAN", "minLength": 1}, "minLength/maxLength apply to STRING"),
        ({"type": "SELECT", "values": ["a"], "defaults": "b"}, "expected one of a"),
        ({"type": "DURATION", "defaults": "five minutes"}, "expected DURATION"),
        ({"id": "bad id!", "type": "STRING"}, "must match"),
    ],
)
def test_inconsistent_specs_are_refused_with_a_reason(fields: dict[str, Any],
                                                      message: str) -> None:
    fields.setdefault("id", "x")
    with pytest.raises(ValidationError, match=message):
        spec(**fields)


def test_template_defaults_are_kept_as_strings_for_later_rendering() -> None:
    specs = [spec(id="when", type="DATETIME", defaults="{{ now() }}")]
    assert coerce_inputs(specs, {}) == {"when": "{{ now() }}"}


# ------------------------------------------------------------ coercion


@pytest.mark.parametrize(
    ("fields", "value", "expected"),
    [
        ({"type": "STRING"}, "hello", "hello"),
        ({"type": "STRING"}, 42, "42"),
        ({"type": "INT"}, "42", 42),
        ({"type": "INT"}, " -7 ", -7),
        ({"type": "INT"}, 3.0, 3),
        ({"type": "FLOAT"}, "1.5", 1.5),
        ({"type": "FLOAT"}, 2, 2.0),
        ({"type": "BOOLEAN"}, "TRUE", True),
        ({"type": "BOOLEAN"}, "no", False),
        ({"type": "BOOL"}, "1", True),
        ({"type": "BOOLEAN"}, 0, False),
        ({"type": "DATE"}, "2024-01-31", date(2024, 1, 31)),
        ({"type": "DATETIME"}, "2024-01-31T10:00:00Z", datetime(2024, 1, 31, 10, tzinfo=UTC)),
        ({"type": "DATETIME"}, "2024-01-31T10:00:00", datetime(2024, 1, 31, 10, tzinfo=UTC)),
        ({"type": "DATETIME"}, "2024-01-31T11:00:00+01:00",
         datetime(2024, 1, 31, 11, tzinfo=timezone(timedelta(hours=1)))),
        ({"type": "TIME"}, "10:30", time(10, 30)),
        ({"type": "TIME"}, "10:30:15.5", time(10, 30, 15, 500000)),
        ({"type": "DURATION"}, "PT1H30M", timedelta(hours=1, minutes=30)),
        ({"type": "JSON"}, '{"a": [1, 2]}', {"a": [1, 2]}),
        ({"type": "JSON"}, {"a": 1}, {"a": 1}),
        ({"type": "YAML"}, "a: [1, 2]", {"a": [1, 2]}),
        ({"type": "SELECT", "values": ["eu", "us"]}, "eu", "eu"),
        ({"type": "SELECT", "values": ["eu"], "allowCustomValue": True}, "ap", "ap"),
        ({"type": "ENUM", "values": ["eu", "us"]}, "us", "us"),
        ({"type": "MULTISELECT", "values": ["a", "b", "c"]}, '["a", "c"]', ["a", "c"]),
        ({"type": "ARRAY", "itemType": "INT"}, "[1, 2]", [1, 2]),
        ({"type": "ARRAY", "itemType": "INT"}, ["1", 2], [1, 2]),
        ({"type": "ARRAY", "itemType": "DATE"}, '["2024-01-31"]', [date(2024, 1, 31)]),
        ({"type": "URI"}, "s3a://bucket/jars/etl.jar", "s3a://bucket/jars/etl.jar"),
        ({"type": "URI"}, "file:///tmp/x", "file:///tmp/x"),
        ({"type": "EMAIL"}, "a@example.com", "a@example.com"),
        ({"type": "SECRET"}, "hunter2", "hunter2"),
        ({"type": "FILE"}, "/data/in.csv", "/data/in.csv"),
        ({"type": "STRING", "validator": "[a-z]+"}, "abc", "abc"),
        ({"type": "INT", "min": 1, "max": 10}, "10", 10),
        ({"type": "DURATION", "max": "PT1H"}, "PT30M", timedelta(minutes=30)),
        ({"type": "DATE", "after": "2024-01-01"}, "2024-01-02", date(2024, 1, 2)),
    ],
)
def test_values_are_coerced_to_their_type(fields: dict[str, Any], value: Any,
                                          expected: Any) -> None:
    result = coerce_one(value, **fields)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("fields", "value", "problem"),
    [
        ({"type": "INT"}, "1.5", "expected INT (a whole number), got '1.5'"),
        ({"type": "INT"}, "abc", "expected INT (a whole number), got 'abc'"),
        ({"type": "INT"}, 1.5, "got 1.5"),
        ({"type": "INT"}, True, "got True"),
        ({"type": "FLOAT"}, "nan", "expected FLOAT (a number), got 'nan'"),
        ({"type": "BOOLEAN"}, "maybe", "expected BOOLEAN (true or false), got 'maybe'"),
        ({"type": "DATE"}, "2024-13-45", "expected DATE (yyyy-MM-dd), got '2024-13-45'"),
        ({"type": "DATE"}, "31/01/2024", "expected DATE (yyyy-MM-dd)"),
        ({"type": "DATETIME"}, "2024-01-31", "expected DATETIME (ISO-8601"),
        ({"type": "TIME"}, "25:00", "expected TIME"),
        ({"type": "DURATION"}, "5 minutes", "expected DURATION (ISO-8601, e.g. PT5M)"),
        ({"type": "JSON"}, "{nope", "expected JSON, got '{nope'"),
        ({"type": "SELECT", "values": ["eu", "us"]}, "ap", "expected one of eu, us, got 'ap'"),
        ({"type": "MULTISELECT", "values": ["a"]}, '["a", "z"]', "(not 'z')"),
        ({"type": "ARRAY", "itemType": "INT"}, "1,2", "expected ARRAY of INT"),
        ({"type": "ARRAY", "itemType": "INT"}, "[1, \"x\"]", "item [1] 'x' is not INT"),
        ({"type": "URI"}, "just words", "expected URI with a scheme"),
        ({"type": "URI"}, "no-scheme/path", "expected URI with a scheme"),
        ({"type": "STRING", "validator": "[a-z]+"}, "ABC", "matching [a-z]+, got 'ABC'"),
        ({"type": "STRING", "maxLength": 2}, "abc", "of at most 2 characters"),
        ({"type": "STRING", "minLength": 3}, "ab", "of at least 3 characters"),
        ({"type": "INT", "min": 1, "max": 10}, "11", "expected INT (a whole number) <= 10"),
        ({"type": "FLOAT", "min": 0.5}, "0.1", ">= 0.5"),
        ({"type": "DURATION", "max": "PT1H"}, "PT2H", "<= PT1H"),
        ({"type": "DATE", "before": "2024-01-01"}, "2024-01-02", "before 2024-01-01"),
    ],
)
def test_bad_values_name_input_expected_type_and_value(fields: dict[str, Any], value: Any,
                                                       problem: str) -> None:
    [found] = problems_of([spec(id="x", **fields)], {"x": value})
    assert found.startswith("input 'x': expected ")
    assert problem in found


def test_every_problem_is_collected() -> None:
    specs = [spec(id="date", type="DATE"), spec(id="n", type="INT"),
             spec(id="region", type="SELECT", values=["eu", "us"]),
             spec(id="needed", type="STRING")]
    problems = problems_of(specs, {"date": "2024-13-45", "n": "x", "region": "ap",
                                   "extra": "1"})
    assert problems == [
        "unknown input 'extra' (this flow's inputs: date, n, region, needed)",
        "input 'date': expected DATE (yyyy-MM-dd), got '2024-13-45'",
        "input 'n': expected INT (a whole number), got 'x'",
        "input 'region': expected one of eu, us, got 'ap'",
        "input 'needed': required STRING was not given and has no defaults",
    ]
    assert str(InputError(problems)).count("\n") == 4


def test_optional_inputs_without_value_are_none_and_defaults_apply() -> None:
    specs = [spec(id="opt", type="INT", required=False),
             spec(id="with_default", type="DURATION", defaults="PT5M"),
             spec(id="given_none", type="STRING", defaults="d")]
    assert coerce_inputs(specs, {"given_none": None}) == {
        "opt": None, "with_default": timedelta(minutes=5), "given_none": "d"}


def test_unknown_input_on_a_flow_without_inputs() -> None:
    assert problems_of([], {"x": 1}) == ["unknown input 'x' (this flow's inputs: none)"]


def test_secret_values_are_not_echoed_in_errors() -> None:
    [problem] = problems_of([spec(id="pw", type="SECRET", validator="[0-9]+")],
                            {"pw": "hunter2"})
    assert "hunter2" not in problem and "got a value" in problem


def test_inputs_to_json_gives_iso_text_that_coerces_back() -> None:
    specs = [spec(id="d", type="DATE"), spec(id="t", type="DATETIME"),
             spec(id="dur", type="DURATION"), spec(id="tm", type="TIME"),
             spec(id="xs", type="ARRAY", itemType="DATE"), spec(id="j", type="JSON")]
    values = coerce_inputs(specs, {"d": "2024-01-31", "t": "2024-01-31T10:00:00.5Z",
                                   "dur": "P1D", "tm": "10:30", "xs": '["2024-01-01"]',
                                   "j": '{"a": null}'})
    as_json = inputs_to_json(values)
    assert as_json == {"d": "2024-01-31", "t": "2024-01-31T10:00:00.500Z", "dur": "PT24H",
                       "tm": "10:30:00", "xs": ["2024-01-01"], "j": {"a": None}}
    assert coerce_inputs(specs, json.loads(json.dumps(as_json))) == values


# ------------------------------------------------------------ properties


@given(st.integers())
def test_integers_round_trip_through_strings(number: int) -> None:
    assert coerce_one(str(number), type="INT") == number


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_round_trip_through_strings(number: float) -> None:
    assert coerce_one(repr(number), type="FLOAT") == number


@given(st.text())
def test_int_coercion_either_succeeds_or_names_the_value(text: str) -> None:
    try:
        result = coerce_one(text, type="INT")
    except InputError as exc:
        assert exc.problems == [f"input 'x': expected INT (a whole number), got {text!r}"
                                if len(repr(text)) <= 80 else exc.problems[0]]
        return
    assert result == int(text)


@given(st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3))])))
def test_datetimes_round_trip_through_inputs_to_json(value: datetime) -> None:
    specs = [spec(id="t", type="DATETIME")]
    text = inputs_to_json({"t": value})["t"]
    assert coerce_inputs(specs, {"t": text})["t"] == value


@given(st.lists(st.integers(), max_size=10))
def test_int_arrays_round_trip_through_json_text(items: list[int]) -> None:
    assert coerce_one(json.dumps(items), type="ARRAY", itemType="INT") == items


@given(st.sampled_from(["true", "TRUE", "Yes", "1", "on"]), st.sampled_from(["false", "No", "0"]))
def test_boolean_spellings(yes: str, no: str) -> None:
    assert coerce_one(yes, type="BOOLEAN") is True
    assert coerce_one(no, type="BOOLEAN") is False
