"""How soon the execution page shows a state change: the store changes an
execution's state, and the page's badge shows it (the API's SSE stream polls
the store every 0.25 s). Browser and benchmark share the machine's clock.

Baseline, same run: reading the state straight from the store (what a page
that polled the store itself would at best see).

    .venv/bin/python -m bench.ui_live [--changes 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.ui_browser import chromium, stack
from harrier.common.execution import Execution, new_id
from harrier.common.state import State, StateRecord

FLOW = """id: live
namespace: bench.ui
tasks:
  - id: step
    type: io.kestra.plugin.core.log.Log
    message: hi
"""

WATCH = """() => { window.seenAt = new Promise(resolve => {
  const badge = document.getElementById('exec-state');
  const seen = new MutationObserver(() => {
    if (badge.textContent === 'SUCCESS') { seen.disconnect(); resolve(Date.now()); }
  });
  seen.observe(badge, {childList: true, characterData: true, subtree: true});
}); }"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--changes", type=int, default=20)
    args = parser.parse_args()
    delays, direct = [], []
    with stack() as running, chromium() as context:
        record = running.store.put_flow("bench.ui", "live", FLOW)
        page = context.new_page()
        for _ in range(args.changes):
            execution = Execution(id=new_id(), namespace="bench.ui", flow_id="live",
                                  flow_revision=record.revision,
                                  state=StateRecord.start(State.CREATED))
            running.store.create_execution(execution)
            running.store.change_execution_state(execution.id, State.RUNNING)
            page.goto(f"{running.url}/ui/executions/{execution.id}")
            page.locator("#exec-state", has_text="RUNNING").wait_for()
            time.sleep(0.6)  # the stream is open and idle
            page.evaluate(WATCH)
            changed = time.time()
            running.store.change_execution_state(execution.id, State.SUCCESS)
            direct.append(time.time() - changed)
            shown = page.evaluate("() => window.seenAt") / 1000
            delays.append(shown - changed)
    delays.sort()
    print(f"state change -> badge on the page, {args.changes} changes: median "
          f"{statistics.median(delays) * 1000:.0f} ms, max {delays[-1] * 1000:.0f} ms")
    print(f"baseline, the store's own write: median {statistics.median(direct) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
