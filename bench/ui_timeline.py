"""The execution page's timeline with 500 task runs (a Parallel of 498 tasks
between two others, some retried): time from navigation to every row drawn.

Baseline, same run: the same page for an execution of 5 task runs (what the
page costs whatever the execution's size).

    .venv/bin/python -m bench.ui_timeline [--tasks 500] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import timedelta

from bench.ui_browser import chromium, median_ms, stack
from harrier.common.execution import Attempt, Execution, TaskRun, new_id
from harrier.common.state import State, StateHistory, StateRecord, now


def flow_source(flow_id: str, width: int) -> str:
    children = "\n".join(f"""      - id: part-{index:03d}
        type: io.kestra.plugin.scripts.shell.Commands
        commands: ["true"]""" for index in range(width))
    return f"""id: {flow_id}
namespace: bench.ui
tasks:
  - id: setup
    type: io.kestra.plugin.core.log.Log
    message: start
  - id: fan
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
{children}
  - id: finish
    type: io.kestra.plugin.core.log.Log
    message: done
"""


def _record(start, seconds: float, end_state: State) -> StateRecord:
    return StateRecord(end_state, [StateHistory(State.CREATED, start),
                                   StateHistory(State.RUNNING, start),
                                   StateHistory(end_state, start + timedelta(seconds=seconds))])


def seed(store, flow_id: str, task_runs: int) -> str:
    width = task_runs - 3
    record = store.put_flow("bench.ui", flow_id, flow_source(flow_id, width))
    t0 = now() - timedelta(minutes=10)
    execution = Execution(id=new_id(), namespace="bench.ui", flow_id=flow_id,
                          flow_revision=record.revision, state=StateRecord.start(State.CREATED, t0))
    store.create_execution(execution)
    store.change_execution_state(execution.id, State.RUNNING)

    def run(task_id: str, path: str, start, seconds: float, parent: str | None = None,
            retried: bool = False) -> TaskRun:
        attempts = [Attempt(_record(start, seconds, State.SUCCESS), 0, None, "w1@bench")]
        if retried:
            attempts.insert(0, Attempt(_record(start - timedelta(seconds=seconds + 5), seconds,
                                               State.FAILED), 1, "exit 1", "w2@bench"))
        made = TaskRun(id=new_id(), execution_id=execution.id, namespace="bench.ui",
                       flow_id=flow_id, task_id=task_id, task_path=path,
                       parent_task_run_id=parent, state=_record(start, seconds, State.SUCCESS),
                       attempts=attempts)
        store.get_or_create_task_run(execution.id, made)
        return made

    run("setup", "tasks.0", t0 + timedelta(seconds=1), 1)
    fan = run("fan", "tasks.1", t0 + timedelta(seconds=3), 400)
    for index in range(width):
        start = t0 + timedelta(seconds=3 + (index % 40) * 9 + (20 if index % 7 == 0 else 0))
        run(f"part-{index:03d}", f"tasks.1.tasks.{index}", start, 8, fan.id,
            retried=index % 7 == 0)
    run("finish", "tasks.2", t0 + timedelta(seconds=404), 1)
    store.change_execution_state(execution.id, State.SUCCESS)
    return execution.id


def time_page(page, url: str, rows: int, runs: int) -> list[float]:
    found = []
    for _ in range(runs):
        started = time.perf_counter()
        page.goto(url)
        page.locator(f".tl-row[data-run] >> nth={rows - 1}").wait_for()
        found.append(time.perf_counter() - started)
        assert page.locator(".tl-row[data-run]").count() == rows
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with stack() as running, chromium() as context:
        big = seed(running.store, "wide", args.tasks)
        small = seed(running.store, "narrow", 5)
        page = context.new_page()
        page.set_default_timeout(60_000)
        time_page(page, f"{running.url}/ui/executions/{small}", 5, 1)  # warm up
        large = time_page(page, f"{running.url}/ui/executions/{big}", args.tasks, args.runs)
        base = time_page(page, f"{running.url}/ui/executions/{small}", 5, args.runs)
        bars = page.evaluate("document.querySelectorAll('.tl-bar').length")
        page.goto(f"{running.url}/ui/executions/{big}")
        page.locator(f".tl-row[data-run] >> nth={args.tasks - 1}").wait_for()
        narrow = page.evaluate("""() => Math.min(...[...document.querySelectorAll('.tl-bar')]
            .map(b => b.getBoundingClientRect().width))""")
        print(f"timeline of {args.tasks} task runs drawn: median {median_ms(large)} "
              f"(runs: {', '.join(f'{v * 1000:.0f}' for v in large)} ms)")
        print(f"baseline, 5 task runs: median {median_ms(base)} -> "
              f"{statistics.median(large) / statistics.median(base):.2f}x")
        print(f"narrowest bar: {narrow:.0f} px wide (minimum clickable width); bars on the "
              f"small page: {bars}")


if __name__ == "__main__":
    main()
