"""Cost per ended execution of the Flow trigger loop on a real redis-server:
reading and acknowledging ends with no Flow trigger deployed (the baseline),
with 100 Flow triggers none of which matches, and with one that fires (the
execution is created and enqueued on the in-memory transport).
Run: .venv/bin/python -m bench.flow_triggers [--ends 500]"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from harrier.common.celery_app import configure_app
from harrier.common.flow import parse_flow
from harrier.common.redis_store import RedisStore
from harrier.common.settings import Settings
from harrier.common.state import State
from harrier.scheduler.executions import create_execution
from harrier.scheduler.firing import FireContext
from harrier.scheduler.flow_catalog import FlowCatalog, MemoryOrigins
from harrier.scheduler.flow_triggers import FlowTriggerLoop
from tests.fixtures.redis_server import start_redis_server

UPSTREAM = parse_flow("id: up\nnamespace: bench\ntasks:\n"
                      "  - {id: t, type: io.kestra.plugin.core.log.Log, message: hi}\n", "up")


def _downstream(index: int, upstream: str) -> str:
    return f"""id: down{index}
namespace: bench
tasks:
  - {{id: t, type: io.kestra.plugin.core.log.Log, message: hi}}
triggers:
  - id: after
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: bench
        flowId: {upstream}
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [SUCCESS]
"""


def per_end(store: RedisStore, flows: Path, ends: int) -> float:
    store.redis.flushdb()
    catalog = FlowCatalog(flows, store, origins=MemoryOrigins())
    catalog.refresh()
    loop = FlowTriggerLoop(catalog, FireContext(store, configure_app(Settings()), store.redis,
                                                "bench"), block_ms=1, batch=100)
    for _ in range(ends):
        execution = create_execution(store, UPSTREAM, {}, deploy=False)
        store.change_execution_state(execution.id, State.RUNNING)
        store.change_execution_state(execution.id, State.SUCCESS)
    started = time.perf_counter()
    handled = 0
    while handled < ends:
        handled += max(0, loop.step())
    return (time.perf_counter() - started) / ends


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ends", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        server = start_redis_server(Path(work))
        try:
            store = RedisStore(server.client())
            cases = {"none": Path(work, "none"), "100 unmatched": Path(work, "unmatched"),
                     "1 fires": Path(work, "fires")}
            for path in cases.values():
                path.mkdir()
            for index in range(100):
                Path(cases["100 unmatched"], f"d{index}.yaml").write_text(
                    _downstream(index, "other"))
            Path(cases["1 fires"], "d.yaml").write_text(_downstream(0, "up"))
            baseline = per_end(store, cases["none"], args.ends)
            print(f"{'no Flow trigger (baseline)':28} {baseline * 1e3:7.3f} ms per end")
            for name in ("100 unmatched", "1 fires"):
                cost = per_end(store, cases[name], args.ends)
                print(f"{name:28} {cost * 1e3:7.3f} ms per end  "
                      f"({cost / baseline:5.1f}x baseline)")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
