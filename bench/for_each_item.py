"""ForEachItem fan-out on a real Redis and real worker processes: a parent
that writes an N-line file and starts one child execution per line
(ForEachItem, batch.rows 1), against the same N children started by a ForEach
of Subflow tasks (bench/subflows.py). Both wait without a worker slot; the
figure is what ForEachItem's split, batch files and per-child counting cost.

    .venv/bin/python bench/for_each_item.py [--children 20] [--runs 5] [--concurrency 1]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.subflows import arguments, compare  # noqa: E402

FOR_EACH_ITEM = """
id: items
namespace: bench
tasks:
  - id: make
    type: io.kestra.plugin.scripts.shell.Commands
    taskRunner: {{type: io.kestra.plugin.core.runner.Process}}
    outputFiles: [items.txt]
    commands: ["seq 1 {n} > items.txt"]
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{{{ outputs.make.outputFiles['items.txt'] }}}}"
    namespace: bench
    flowId: child
    inputs: {{value: "{{{{ taskrun.items }}}}"}}
"""
FOR_EACH = """
id: subflows
namespace: bench
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: {values}
    concurrencyLimit: 0
    tasks:
      - id: call
        type: io.kestra.plugin.core.flow.Subflow
        namespace: bench
        flowId: child
        inputs: {{value: "{{{{ taskrun.value }}}}"}}
"""


def main() -> None:
    args = arguments()
    values = [str(i) for i in range(args.children)]
    compare({"forEachItem": FOR_EACH_ITEM.format(n=args.children),
             "subflows": FOR_EACH.format(values=values)}, args, "children")


if __name__ == "__main__":
    main()
