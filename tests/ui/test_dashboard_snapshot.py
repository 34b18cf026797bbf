"""The Grafana dashboard's panels, evaluated on real scrapes: flows run on a
real prefork worker and a real `harrier scheduler` (tests/integration/
test_metrics.py's `system`), both are scraped, each panel's queries are
summed the way the panel groups them, and every panel must show data. The
result is drawn as a static page and screenshotted (no Grafana can be
installed here), e.g. HARRIER_SCREENSHOTS=docs/screenshots."""

from __future__ import annotations

import html
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harrier.common.state import State
from tests.integration.embedded import wait_for
from tests.integration.test_metrics import start, system  # noqa: F401 (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

DASHBOARD = Path(__file__).resolve().parents[2] / "helm/harrier/dashboards/harrier.json"
SERIES = re.compile(r"\b((?:kestra|harrier)_[a-z_]+)(?:\{([^}]*)\})?")
BY = re.compile(r"by \(([^)]*)\)")
QUANTILE = re.compile(r"histogram_quantile\(([\d.]+)")


def samples(text: str) -> list[Any]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def matches(labels: dict[str, str], selector: str | None) -> bool:
    for matcher in re.findall(r'(\w+)\s*(=~|=)\s*"([^"]*)"', selector or ""):
        name, op, wanted = matcher
        wanted = wanted.replace("$namespace", ".*").replace("$flow", ".*") \
            .replace("$worker_group", ".*")
        value = labels.get(name, "")
        if (op == "=" and value != wanted) or (op == "=~" and not re.fullmatch(wanted, value)):
            return False
    return True


def evaluate(expr: str, scraped: list[Any]) -> dict[tuple[tuple[str, str], ...], float]:
    """What the panel shows since the start, grouped as its `by (...)` groups
    (`le` aside): totals for counters, the quantile for histograms, the sum
    (or max) for gauges."""
    name, selector = SERIES.search(expr).groups()  # type: ignore[union-attr]
    group = [g.strip() for g in (BY.search(expr).group(1).split(",") if BY.search(expr) else [])
             if g.strip() and g.strip() != "le"]
    quantile = QUANTILE.search(expr)
    chosen = [s for s in scraped if s.name == name and matches(s.labels, selector)]
    def key_of(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
        return tuple((g, labels.get(g, "")) for g in group)

    if quantile is None:
        out: dict[tuple[tuple[str, str], ...], float] = defaultdict(float)
        for s in chosen:
            key = key_of(s.labels)
            out[key] = max(out[key], s.value) if expr.startswith("max") else out[key] + s.value
        return dict(out)
    buckets: dict[tuple[tuple[str, str], ...], dict[float, float]] = defaultdict(
        lambda: defaultdict(float))
    for s in chosen:
        buckets[key_of(s.labels)][float(s.labels["le"])] += s.value
    result = {}
    for key, cumulative in buckets.items():
        total = cumulative[float("inf")]
        if total:
            rank = float(quantile.group(1)) * total
            result[key] = next(le for le, count in sorted(cumulative.items()) if count >= rank)
    return result


def legend_of(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{(\w+)\}\}", lambda m: labels.get(m.group(1)) or "-", template)


def render(dashboard: dict[str, Any], panels: list[tuple[dict[str, Any], list[Any]]]) -> str:
    cards = []
    for panel, rows in panels:
        if panel["type"] == "row":
            cards.append(f'<h2>{html.escape(panel["title"])}</h2>')
            continue
        unit = panel["fieldConfig"]["defaults"]["unit"]
        top = max((v for _, _, v in rows), default=1) or 1
        lines = "".join(
            f'<tr><td>{html.escape(legend)}</td><td class="bar"><span style="width:'
            f'{100 * value / top:.0f}%"></span></td><td class="v">{value:.3g}'
            f'{" s" if unit == "s" else ""}</td></tr>' for legend, _, value in rows)
        body = f"<table>{lines}</table>" if rows else '<p class="none">No data</p>'
        cards.append(f'<section><h3>{html.escape(panel["title"])}</h3>{body}</section>')
    return f"""<!doctype html><meta charset="utf-8"><title>{dashboard["title"]}</title>
<style>body{{font:13px system-ui,sans-serif;background:#111217;color:#ccccdc;margin:16px}}
h1{{font-size:18px}} h2{{font-size:14px;margin:18px 0 6px;grid-column:1/-1}}
main{{display:grid;grid-template-columns:1fr 1fr;gap:8px}}
section{{background:#181b1f;border:1px solid #2c3235;border-radius:3px;padding:8px}}
h3{{font-size:13px;margin:0 0 6px}} table{{width:100%;border-collapse:collapse}}
td{{padding:1px 4px;white-space:nowrap;overflow:hidden;max-width:260px}}
td.bar{{width:40%}} td.bar span{{display:block;height:9px;background:#73bf69}}
td.v{{text-align:right;font-variant-numeric:tabular-nums}} p.none{{color:#6e7079;margin:4px}}
</style>
<h1>{dashboard["title"]}: values scraped from a real worker and scheduler (totals since
start; quantiles from histogram buckets)</h1><main>{"".join(cards)}</main>"""


def test_every_dashboard_panel_shows_real_data(system, browser, screenshots):  # noqa: F811
    cluster, api, worker_metrics = system
    ids = [start(api, "ok") for _ in range(3)] + [start(api, "flaky"), start(api, "broken")]
    for execution_id in ids:
        assert cluster.store.wait_terminal(execution_id, 90).state.current.terminated
    start(api, "parked")
    for key in ("the-key", "wrong"):
        httpx.post(f"{api}/api/v1/executions/webhook/metrics.cron/ticking/{key}", timeout=10)

    def scheduler_seen() -> bool:  # the parked message is counted, a tick has fired
        text = httpx.get(f"{api}/metrics", timeout=10).text
        return 'harrier_queue_length{worker_group="nobody"} 1.0' in text and \
            "kestra_scheduler_trigger_count_total{" in text

    wait_for(scheduler_seen, timeout=30, every=0.5)
    scraped = samples(httpx.get(worker_metrics, timeout=10).text) + \
        samples(httpx.get(f"{api}/metrics", timeout=10).text)
    dashboard = json.loads(DASHBOARD.read_text())
    evaluated = []
    empty = []
    for panel in dashboard["panels"]:
        rows = []
        for target in panel.get("targets", []):
            for key, value in sorted(evaluate(target["expr"], scraped).items()):
                rows.append((legend_of(target["legendFormat"], dict(key)), target["refId"],
                             value))
        if panel["type"] != "row" and not rows:
            empty.append(panel["title"])
        evaluated.append((panel, rows))
    # The system has no Spark master: its panels are the only empty ones.
    assert empty == ["Spark submission time p95 by submitter",
                     "Spark drivers ended / s by state"]
    assert State.FAILED.value in str(evaluated)  # the broken flow's end is on a panel

    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    try:
        page.set_content(render(dashboard, evaluated))
        page.screenshot(path=str(screenshots / "metrics-dashboard.png"), full_page=True)
    finally:
        page.close()
