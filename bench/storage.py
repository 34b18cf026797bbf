"""Files between tasks, embedded mode: a task writes a file of N MiB and the
next reads it through internal storage (outputFiles, then the URI in a
command), against the same two tasks where the second writes its own file and
reads it (no storage): the difference is what storage costs, the copy into
storage and the copy into the reader's working directory (page cache: a disk
that is not in memory is slower).

    .venv/bin/python bench/storage.py [--mib 100] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harrier.common.flow import parse_flow
from harrier.common.settings import Settings
from harrier.common.state import State
from harrier.scheduler.executions import create_execution, start_execution
from harrier.worker.embedded import EmbeddedRuntime

THROUGH_STORAGE = """
id: through-storage
namespace: bench
tasks:
  - id: write
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: ["data.bin"]
    commands: ["head -c {size} /dev/zero > data.bin"]
  - id: read
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["wc -c < {{{{ outputs.write.outputFiles['data.bin'] }}}}"]
"""

ONE_TASK = """
id: one-task
namespace: bench
tasks:
  - id: write
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["head -c {size} /dev/zero > data.bin"]
  - id: read
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["head -c {size} /dev/zero > again.bin && wc -c < again.bin"]
"""


def time_flow(runtime: EmbeddedRuntime, text: str) -> float:
    flow = parse_flow(text, "bench")
    started = time.perf_counter()
    execution = create_execution(runtime.store, flow, {})
    start_execution(runtime.app, flow, execution, store=runtime.store)
    done = runtime.store.wait_terminal(execution.id, 600)
    elapsed = time.perf_counter() - started
    assert done.state.current == State.SUCCESS, [r.error for r in done.task_runs]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    size = args.mib * 1024 * 1024
    results = {}
    with tempfile.TemporaryDirectory() as work, \
            EmbeddedRuntime(Settings(work_root=Path(work))) as runtime:
        for name, text in (("without storage", ONE_TASK), ("through storage", THROUGH_STORAGE)):
            flow_text = text.format(size=size)
            time_flow(runtime, flow_text)  # warm up
            results[name] = statistics.median(
                time_flow(runtime, flow_text) for _ in range(args.runs))
    base = results["without storage"]
    print(f"{args.mib} MiB file, median of {args.runs} runs (embedded mode)")
    for name, seconds in results.items():
        print(f"  {name:16} {seconds * 1000:8.1f} ms   x{seconds / base:.2f}")
    extra = results["through storage"] - base
    print(f"  storage cost     {extra * 1000:8.1f} ms  "
          f"({args.mib / extra if extra > 0 else float('inf'):.0f} MiB/s for copy in + out)")


if __name__ == "__main__":
    main()
