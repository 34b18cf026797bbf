"""The execution page's logs with 100,000 lines in one task: time from
navigation to the last screen of lines shown, and scrolling through the whole
log (frame times while the view scrolls 60 screens in 600 frames).

Baseline, same run, same data: the whole log fetched at once and written into
one <pre> (what a log view that is not virtual does).

    .venv/bin/python -m bench.ui_logs [--lines 100000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from bench.ui_browser import chromium, median_ms, stack
from harrier.common.execution import Execution, LogEntry, TaskRun, new_id
from harrier.common.state import State, StateRecord

FLOW = """id: chatty
namespace: bench.ui
tasks:
  - id: spark-job
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["true"]
"""

SCROLL = """async (pixels) => {
  const view = document.getElementById('log-view');
  document.getElementById('log-follow').checked = false;
  window.harrierLogView.setFollow(false);
  view.scrollTop = 0;
  await new Promise(r => requestAnimationFrame(r));
  const step = pixels < 0 ? (view.scrollHeight - view.clientHeight) / 600 : pixels;
  const frames = [];
  let last = performance.now();
  let maxRows = 0;
  for (let i = 0; i < 600; i++) {
    if (step) view.scrollTop += step;
    await new Promise(r => requestAnimationFrame(r));
    const now = performance.now();
    frames.push(now - last);
    last = now;
    maxRows = Math.max(maxRows, window.harrierLogView.domRows());
  }
  frames.sort((a, b) => a - b);
  return {p50: frames[300], p95: frames[570], max: frames[599],
          slow: frames.filter(f => f > 33.4).length, maxRows};
}"""

BASELINE = """async (id) => {
  const response = await fetch('/api/v1/logs/' + id);
  const entries = await response.json();
  const pre = document.createElement('pre');
  pre.style.height = '55vh'; pre.style.overflow = 'auto';
  pre.textContent = entries.map(
    e => [e.timestamp, e.level, e.taskId, e.message].join(' ')).join('\\n');
  document.body.prepend(pre);
  pre.scrollTop = pre.scrollHeight;
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return entries.length;
}"""


def seed(store, lines: int) -> str:
    flow = store.put_flow("bench.ui", "chatty", FLOW)
    execution = Execution(id=new_id(), namespace="bench.ui", flow_id="chatty",
                          flow_revision=flow.revision, state=StateRecord.start(State.CREATED))
    store.create_execution(execution)
    store.change_execution_state(execution.id, State.RUNNING)
    run = TaskRun(id=new_id(), execution_id=execution.id, namespace="bench.ui",
                  flow_id="chatty", task_id="spark-job", task_path="tasks.0",
                  state=StateRecord.start(State.RUNNING))
    store.get_or_create_task_run(execution.id, run)
    pipe = store.redis.pipeline(transaction=False)
    key = f"harrier:exec:{execution.id}:logs"
    for number in range(lines):
        level = "WARN" if number % 97 == 0 else "INFO"
        entry = LogEntry(execution.id, run.id, "spark-job", level,
                         f"[driver stdout] 24/01/31 10:00:{number % 60:02d} INFO DAGScheduler: "
                         f"Job {number} finished: collect at etl.py:{number % 400}, "
                         f"took 0.0{number % 9}s")
        pipe.xadd(key, {"e": json.dumps(entry.to_json())})
        if number % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    run.state.current = State.SUCCESS
    store.save_task_run(run)
    store.change_execution_state(execution.id, State.SUCCESS)
    return execution.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with stack() as running, chromium() as context:
        started = time.perf_counter()
        execution_id = seed(running.store, args.lines)
        print(f"seeded {args.lines} log lines in {time.perf_counter() - started:.1f} s")
        page = context.new_page()
        page.set_default_timeout(120_000)
        last_line = f"Job {args.lines - 1} finished"
        first_screen, all_loaded, baseline = [], [], []
        for _ in range(args.runs):
            started = time.perf_counter()
            page.goto(f"{running.url}/ui/executions/{execution_id}")
            page.locator("#log-view .log-row:not([hidden])", has_text=last_line).wait_for()
            first_screen.append(time.perf_counter() - started)
            page.locator("body[data-logs-loaded='true']").wait_for(state="attached")
            all_loaded.append(time.perf_counter() - started)
        scroll = page.evaluate(SCROLL, -1)  # the whole log in 600 frames
        wheel = page.evaluate(SCROLL, 100)  # a mouse wheel's pace: 5 lines a frame
        idle = page.evaluate(SCROLL, 0)  # the same frames without scrolling: the floor
        for _ in range(args.runs):
            page.goto(f"{running.url}/ui/flows")
            started = time.perf_counter()
            count = page.evaluate(BASELINE, execution_id)
            baseline.append(time.perf_counter() - started)
            assert count == args.lines, count
        print(f"last screen of {args.lines} lines shown: median {median_ms(first_screen)} "
              f"(runs: {', '.join(f'{v * 1000:.0f}' for v in first_screen)} ms)")
        print(f"every line loaded (older ones behind the last screen): median "
              f"{median_ms(all_loaded)}")
        print(f"baseline, the whole log into one <pre>: median {median_ms(baseline)} -> "
              f"{statistics.median(baseline) / statistics.median(first_screen):.1f}x slower")
        print(f"scrolling 600 frames over all {args.lines} lines: frame p50 "
              f"{scroll['p50']:.1f} ms, p95 {scroll['p95']:.1f} ms, max {scroll['max']:.1f} ms, "
              f"frames over 33 ms: "
              f"{scroll['slow']}; at most {scroll['maxRows']} rows in the DOM")
        print(f"scrolling 100 px a frame (a wheel): frame p50 {wheel['p50']:.1f} ms, "
              f"p95 {wheel['p95']:.1f} ms, frames over 33 ms: {wheel['slow']}")
        print(f"same frames without scrolling (this machine's floor): p50 {idle['p50']:.1f} ms, "
              f"p95 {idle['p95']:.1f} ms, frames over 33 ms: {idle['slow']}")


if __name__ == "__main__":
    main()
