"""The cost of a task does not grow with the size of its execution: the same
number of store calls per task and the same message size for a flow of 10
tasks as for a flow of 300, as a chain, as one wide Parallel and as a ForEach
over many values (counts, not times: the timings are in bench/scale.py and
bench/for_each.py)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from celery.signals import before_task_publish

from harrier.common.memory_store import MemoryStore
from harrier.common.settings import Settings
from harrier.common.state import State
from harrier.worker.embedded import EmbeddedRuntime
from tests.integration.embedded import run_flow_text

LOG = "type: io.kestra.plugin.core.log.Log, message: 'hi {{ outputs.t0 is defined }}'"


def chain(size: int) -> str:
    return "id: chain\nnamespace: cost\ntasks:\n" + "".join(
        f"  - {{id: t{i}, {LOG}}}\n" for i in range(size))


def wide(size: int) -> str:
    return ("id: wide\nnamespace: cost\ntasks:\n  - {id: t0, " + LOG + "}\n"
            "  - id: fan\n    type: io.kestra.plugin.core.flow.Parallel\n    tasks:\n"
            + "".join(f"      - {{id: b{i}, {LOG}}}\n" for i in range(size))
            + "  - {id: last, " + LOG + "}\n")


def loop(size: int) -> str:
    values = ", ".join(f"v{i}" for i in range(size))
    return ("id: loop\nnamespace: cost\ntasks:\n  - {id: t0, " + LOG + "}\n"
            "  - id: each\n    type: io.kestra.plugin.core.flow.ForEach\n"
            f"    values: [{values}]\n    concurrencyLimit: 4\n    tasks:\n"
            "      - {id: first, " + LOG + "}\n"
            "      - {id: second, type: io.kestra.plugin.core.log.Log,"
            " message: '{{ outputs.first[taskrun.value] is defined }}'}\n"
            "  - {id: last, " + LOG + "}\n")


def loop2(size: int) -> str:
    """Kestra 2.0's Loop: each iteration an execution of its own."""
    values = ", ".join(f"v{i}" for i in range(size))
    return ("id: loop2\nnamespace: cost\ntasks:\n  - {id: t0, " + LOG + "}\n"
            "  - id: each\n    type: io.kestra.plugin.core.flow.Loop\n"
            f"    values: [{values}]\n    concurrencyLimit: 4\n"
            "    outputs: [{id: o, type: STRING, value: '{{ outputs.first.value }}'}]\n"
            "    tasks:\n"
            "      - {id: first, type: io.kestra.plugin.core.debug.Return,"
            " format: '{{ item.value }} {{ outputs.t0 is defined }}'}\n"
            "      - {id: second, type: io.kestra.plugin.core.log.Log,"
            " message: '{{ outputs.first.value }}'}\n"
            "  - {id: last, type: io.kestra.plugin.core.log.Log,"
            " message: '{{ outputs.each.outputs | length }}'}\n")


class CountingStore:
    """A real MemoryStore, its calls counted by method (instrumentation only)."""

    def __init__(self) -> None:
        self._inner = MemoryStore()
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attribute(*args, **kwargs)
        return counted


@contextmanager
def message_sizes() -> Iterator[list[int]]:
    sizes: list[int] = []

    def record(body: Any = None, **_: Any) -> None:
        sizes.append(len(json.dumps(body)))
    before_task_publish.connect(record, weak=False)
    try:
        yield sizes
    finally:
        before_task_publish.disconnect(record)


def measure(make: Callable[[int], str], size: int, tmp_path: Any) -> tuple[Counter[str], int]:
    store = CountingStore()
    settings = Settings(work_root=tmp_path, embedded_concurrency=4)
    with EmbeddedRuntime(settings, store=store) as runtime, message_sizes() as sizes:  # type: ignore[arg-type]
        done = run_flow_text(runtime, make(size), timeout=120)
    assert done.state.current == State.SUCCESS
    # The test's own calls (wait_terminal reads through the inner store, uncounted).
    for own in ("wait_terminal", "put_flow", "create_execution"):
        store.calls.pop(own, None)
    return store.calls, max(sizes)


@pytest.mark.parametrize(("make", "small", "large"), [
    (chain, 10, 300), (wide, 10, 300),
    # A loop's first window of values starts without reading a stored value:
    # sizes large enough that this constant does not show as a cost per task.
    (loop, 100, 400), (loop2, 100, 400),
], ids=["chain", "parallel", "for-each", "loop"])
def test_store_calls_and_message_size_per_task_stay_flat(make, small, large, tmp_path):
    calls_small, biggest_small = measure(make, small, tmp_path / "small")
    calls_large, biggest_large = measure(make, large, tmp_path / "large")
    for method in set(calls_small) | set(calls_large):
        per_task_small = calls_small[method] / small
        per_task_large = calls_large[method] / large
        assert per_task_large <= per_task_small + 0.05, (
            f"{method}: {per_task_small:.2f} calls per task with {small} tasks, "
            f"{per_task_large:.2f} with {large}")
    # What reads a whole execution runs a bounded number of times, not per task.
    for whole in ("task_runs", "get_execution", "search_executions"):
        # A Loop reads each iteration's execution (a few runs) once, for its
        # outputs: one read per iteration, counted per task above.
        limit = large + 2 if make is loop2 and whole == "get_execution" else 2
        assert calls_large[whole] <= limit, f"{whole} called {calls_large[whole]} times"
    assert biggest_large <= biggest_small + 16, (
        f"largest message: {biggest_small} bytes for {small} tasks, "
        f"{biggest_large} for {large}")
