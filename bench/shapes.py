"""The flow shapes the latency benchmarks run: a chain of 10 `true` tasks, a
1 -> 10 -> 1 fan-out, and a one-task flow."""

from __future__ import annotations

TRUE = "type: io.kestra.plugin.scripts.shell.Commands, commands: ['true']"

CHAIN = "id: chain10\nnamespace: bench\ntasks:\n" + "".join(
    f"  - {{id: t{i}, {TRUE}}}\n" for i in range(10))
FANOUT = ("id: fanout\nnamespace: bench\ntasks:\n"
          f"  - {{id: first, {TRUE}}}\n"
          "  - id: fan\n    type: io.kestra.plugin.core.flow.Parallel\n    tasks:\n"
          + "".join(f"      - {{id: b{i}, {TRUE}}}\n" for i in range(10))
          + f"  - {{id: last, {TRUE}}}\n")
ONE = f"id: one\nnamespace: bench\ntasks:\n  - {{id: t, {TRUE}}}\n"
