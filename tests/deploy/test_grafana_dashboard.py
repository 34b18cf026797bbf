"""The Grafana dashboard (helm/harrier/dashboards/harrier.json) is built from
metrics Harrier serves: every series a panel queries is one Harrier exports."""

from __future__ import annotations

import json
import re
from typing import Any

from prometheus_client import REGISTRY

from harrier.common.metrics import enable_metrics
from tests.deploy.conftest import CHART

DASHBOARD = CHART / "dashboards" / "harrier.json"
SERIES = re.compile(r"\b((?:kestra|harrier)_[a-z_]+)")


def exported_series() -> set[str]:
    enable_metrics()
    names: set[str] = set()
    for family in REGISTRY.collect():
        if not family.name.startswith(("kestra_", "harrier_")):
            continue
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
                    "gauge": ("",)}[family.type]
        names |= {family.name + suffix for suffix in suffixes}
    return names


def queries(dashboard: dict[str, Any]) -> list[str]:
    found = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    found += [v["query"]["query"] for v in dashboard["templating"]["list"]
              if isinstance(v.get("query"), dict)]
    return found


def test_every_queried_series_is_one_harrier_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = exported_series()
    used = {name for expr in queries(dashboard) for name in SERIES.findall(expr)}
    assert used - exported == set()
    # ...and every metric Harrier has appears on some panel.
    families = {re.sub(r"(_total|_bucket|_count|_sum)$", "", name) for name in exported}
    shown = {re.sub(r"(_total|_bucket|_count|_sum)$", "", name) for name in used}
    assert families - shown == set()


def test_panels_use_the_datasource_variable_and_do_not_overlap() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        grid = panel["gridPos"]
        mine = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not mine & cells, panel["title"]
        cells |= mine
