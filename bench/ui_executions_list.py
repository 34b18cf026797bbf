"""The executions list with 1,000,000 stored executions (100 flows in 10
namespaces, started over the last 7 days, 10 % FAILED, a fifth labelled):
server time of the list page for the default view (last 24 h) and with
filters, and the whole page in Chromium.

Baseline, same run, same data: the store's previous search, which read every
id of the time window before taking a page.

    .venv/bin/python -m bench.ui_executions_list [--executions 1000000] [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import timedelta
from typing import Any

import httpx

from bench.ui_browser import chromium, median_ms, stack
from harrier.common.execution import Execution, new_id
from harrier.common.state import State, StateHistory, StateRecord, now

STATES = [State.SUCCESS] * 16 + [State.FAILED] * 2 + [State.WARNING, State.RUNNING]


class _Batched:
    """Collects the store's own create_execution writes into large pipelines."""

    def __init__(self, client: Any, every: int = 2000) -> None:
        self.client = client
        self.pipe = client.pipeline(transaction=False)
        self.every = every
        self.count = 0

    def pipeline(self, transaction: bool = True) -> _Batched:
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipe, name)

    def execute(self) -> None:
        self.count += 1
        if self.count % self.every == 0:
            self.pipe.execute()

    def flush(self) -> None:
        self.pipe.execute()


def seed(store: Any, total: int) -> None:
    real = store.redis
    batched = _Batched(real)
    store.redis = batched
    moment = now()
    week = 7 * 24 * 3600
    try:
        for number in range(total):
            start = moment - timedelta(seconds=week * number / total)
            state = STATES[number % len(STATES)]
            histories = [StateHistory(State.CREATED, start), StateHistory(State.RUNNING, start)]
            if state != State.RUNNING:
                histories.append(StateHistory(state, start + timedelta(seconds=30)))
            labels = {"team": "data"} if number % 5 == 0 else {}
            store.create_execution(Execution(
                id=new_id(), namespace=f"ns{number % 10}", flow_id=f"flow{number % 100}",
                flow_revision=1, labels=labels, state=StateRecord(state, histories),
                trigger={"type": "io.kestra.plugin.core.trigger.Schedule"}))
            if number % 100_000 == 99_999:
                print(f"  {number + 1} stored", flush=True)
        batched.flush()
    finally:
        store.redis = real


def old_search(store: Any, window_start: float | None) -> int:
    """The previous RedisStore.search_executions: every id of the window, then a page."""
    ids = store.redis.zrevrangebyscore("harrier:execs", "+inf", window_start or "-inf")
    page = [i.decode() for i in ids[:25]]
    pipe = store.redis.pipeline(transaction=False)
    for execution_id in page:
        store._queue_execution_read(pipe, execution_id)
    pipe.execute()
    return len(ids)


def timed(function: Any, runs: int) -> list[float]:
    found = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        found.append(time.perf_counter() - started)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with stack() as running:
        started = time.perf_counter()
        seed(running.store, args.executions)
        memory = running.store.redis.info("memory")["used_memory_human"]
        print(f"seeded {args.executions} executions in {time.perf_counter() - started:.0f} s "
              f"(Redis: {memory})")
        views = {
            "default (last 24 h)": "",
            "all time": "?window=all",
            "state FAILED, 24 h": "?state=FAILED",
            "namespace + flow, 7 days": "?namespace=ns3&flowId=flow13&window=7d",
            "label team:data, 24 h": "?label=team:data",
            "page 200 of all time": "?window=all&page=200",
        }
        results = {}
        with httpx.Client(base_url=running.url, timeout=60) as client:
            for name, query in views.items():
                response = client.get(f"/ui/executions{query}")
                assert response.status_code == 200, response.text[:500]
                results[name] = timed(lambda q=query: client.get(f"/ui/executions{q}"),
                                      args.runs)
            api = timed(lambda: client.get("/api/v1/executions", params={"size": 25}),
                        args.runs)
        day_ago = (now() - timedelta(days=1)).timestamp()
        baseline_day = timed(lambda: old_search(running.store, day_ago), args.runs)
        baseline_all = timed(lambda: old_search(running.store, None), max(3, args.runs // 2))
        with chromium() as context:
            page = context.new_page()
            page.goto(f"{running.url}/ui/executions")

            def load() -> None:
                page.goto(f"{running.url}/ui/executions")
                page.locator("#executions-table tbody tr >> nth=24").wait_for()

            browser = timed(load, args.runs)
        for name, values in results.items():
            print(f"list page, {name}: median {median_ms(values)}")
        print(f"API GET /api/v1/executions?size=25 (24 h is the UI's default, the API has "
              f"none): median {median_ms(api)}")
        print(f"in Chromium, navigation to 25 rows shown: median {median_ms(browser)}")
        day = statistics.median(results["default (last 24 h)"])
        every = statistics.median(results["all time"])
        print(f"baseline, previous search over the last 24 h: median {median_ms(baseline_day)} "
              f"-> {statistics.median(baseline_day) / day:.1f}x the default view")
        print(f"baseline, previous search over all time: median {median_ms(baseline_all)} -> "
              f"{statistics.median(baseline_all) / every:.1f}x the all-time view")


if __name__ == "__main__":
    main()
