"""YAML from people is parsed within limits: alias bombs, deep nesting and big
documents are refused quickly with a clear message, and memory stays flat.

The bounds below are generous on purpose (the machine is shared): refused
documents cost well under a millisecond of CPU and a few MB; an unbounded
parser takes seconds and gigabytes on the same inputs."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harrier.common.errors import FlowValidationError
from harrier.common.input_coercion import Mismatch, as_yaml
from harrier.common.yaml_source import (
    MAX_YAML_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_VALUES,
    load_yaml,
)

CPU_SECONDS_BOUND = 2.0
MEMORY_BOUND = 64 * 1024 * 1024  # peak Python allocations while parsing one document

FLOW_HEAD = "id: bomb\nnamespace: sec.tests\n"


def laughs(width: int, levels: int, *, flow_style: bool = True, merge: bool = False) -> str:
    """The classic billion laughs: each level repeats the previous one `width` times."""
    lines = [f'l0: &l0 [{", ".join(["lol"] * width)}]']
    for level in range(1, levels + 1):
        refs = [f"*l{level - 1}"] * width
        if merge:
            items = "\n".join(f"  k{i}: *l{level - 1}" for i in range(width))
            lines.append(f"l{level}: &l{level}\n{items}")
        elif flow_style:
            lines.append(f"l{level}: &l{level} [{', '.join(refs)}]")
        else:
            items = "\n".join(f"  - {ref}" for ref in refs)
            lines.append(f"l{level}: &l{level}\n{items}")
    return FLOW_HEAD + "\n".join(lines) + f"\ntasks: *l{levels}\n"


def deep_flow(depth: int) -> str:
    return FLOW_HEAD + "tasks: " + "[" * depth + "]" * depth + "\n"


def deep_block(depth: int) -> str:
    body = "".join(f"{'  ' * i}k{i}:\n" for i in range(depth))
    return FLOW_HEAD + "x:\n" + "".join("  " + line + "\n" for line in body.splitlines())


def big_document(kilobytes: int) -> str:
    line = "  - " + "x" * 1000 + "\n"
    return FLOW_HEAD + "tasks:\n" + line * kilobytes


hostile = st.one_of(
    st.builds(laughs, st.integers(2, 16), st.integers(1, 12), flow_style=st.booleans()),
    st.builds(laughs, st.integers(2, 10), st.integers(1, 8), merge=st.just(True)),
    st.builds(deep_flow, st.integers(1, 5000)),
    st.builds(deep_block, st.integers(1, 400)),
    st.builds(big_document, st.integers(1, 2048)),
)


def measured(call: Callable[[], Any]) -> tuple[float, int]:
    """CPU seconds and peak traced bytes of `call`, whether it returns or raises."""
    tracemalloc.start()
    started = time.process_time()
    try:
        call()
    except (FlowValidationError, Mismatch):
        pass
    finally:
        cpu = time.process_time() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return cpu, peak


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(hostile)
def test_hostile_flows_cost_little_time_and_memory(text: str) -> None:
    cpu, peak = measured(lambda: load_yaml(text, "hostile.yaml"))
    assert cpu < CPU_SECONDS_BOUND, (cpu, text[:200])
    assert peak < MEMORY_BOUND, (peak, text[:200])


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(hostile)
def test_hostile_yaml_inputs_cost_little_time_and_memory(text: str) -> None:
    cpu, peak = measured(lambda: as_yaml(text))
    assert cpu < CPU_SECONDS_BOUND, (cpu, text[:200])
    assert peak < MEMORY_BOUND, (peak, text[:200])


def problem_text(text: str) -> str:
    with pytest.raises(FlowValidationError) as raised:
        load_yaml(text, "flows/hostile.yaml")
    return str(raised.value)


def test_alias_bomb_is_refused_naming_file_line_and_limit() -> None:
    message = problem_text(laughs(9, 9))
    assert message.startswith("flows/hostile.yaml:")
    assert f"more than {MAX_YAML_VALUES:,} values" in message and "aliases" in message


def test_merge_key_bomb_is_refused() -> None:
    assert "aliases" in problem_text(laughs(9, 8, merge=True))


def test_deep_nesting_is_refused() -> None:
    assert f"more than {MAX_YAML_DEPTH} levels" in problem_text(deep_flow(MAX_YAML_DEPTH + 1))
    assert "nesting" in problem_text(deep_flow(100_000))  # libyaml's own limit, first


def test_a_document_over_the_size_limit_is_refused() -> None:
    assert f"over {MAX_YAML_BYTES:,} bytes" in problem_text(big_document(1100))


def test_a_recursive_alias_is_refused() -> None:
    assert "contains it" in problem_text(FLOW_HEAD + "tasks: &t [*t]\n")


def test_yaml_within_the_limits_still_loads_aliases_and_merges() -> None:
    data = load_yaml(laughs(3, 3) + "m: &m {a: 1}\nn:\n  <<: *m\n  b: 2\n").data
    assert len(data["tasks"]) == 3 and data["tasks"][0][0][0] == ["lol"] * 3
    assert data["n"] == {"a": 1, "b": 2}
    assert as_yaml("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}


def test_a_yaml_input_bomb_is_a_clear_mismatch() -> None:
    with pytest.raises(Mismatch, match=r"within the limits.*aliases"):
        as_yaml(laughs(9, 9))
