"""The on-call engineer's journeys in a real Chromium, against a real
`harrier scheduler` (API and UI), Redis and a worker process: run a flow from
its form and watch it turn green, find a failure in the logs and restart it,
kill a running execution, edit YAML with a mistake, backfill, and be refused
without credentials. Each test saves screenshots of the pages it visits."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.browser import HarrierServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

FORM_FLOW = """id: daily-report
namespace: ui.test
description: Builds the daily report for one region.
labels:
  team: data
inputs:
  - id: region
    type: SELECT
    values: [emea, apac, amer]
    defaults: emea
  - id: rows
    type: INT
    min: 1
    max: 1000
    defaults: 10
  - id: day
    type: DATE
    defaults: "2024-01-31"
  - id: dryRun
    type: BOOLEAN
    defaults: false
  - id: token
    type: SECRET
    required: false
tasks:
  - id: extract
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo "extracting {{ inputs.rows }} rows for {{ inputs.region }} on {{ inputs.day }}"
      - sleep 1.5
  - id: both
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: transform
        type: io.kestra.plugin.core.log.Log
        message: "transforming {{ inputs.region }}"
      - id: publish
        type: io.kestra.plugin.core.log.Log
        message: "dry run: {{ inputs.dryRun }}"
"""

FAILING_FLOW = """id: flaky-load
namespace: ui.test
inputs:
  - id: marker
    type: STRING
tasks:
  - id: prepare
    type: io.kestra.plugin.core.log.Log
    message: preparing
  - id: load
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - for i in $(seq 1 40); do echo "loading batch $i"; done
      - 'test -f {{ inputs.marker }} || { echo "boom: the upstream file is missing" >&2; exit 3; }'
      - echo "loaded"
"""

SLOW_FLOW = """id: long-job
namespace: ui.test
tasks:
  - id: wait
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo started
      - sleep 60
"""

APPROVAL_FLOW = """id: approve-purge
namespace: ui.test
inputs:
  - id: marker
    type: STRING
tasks:
  - id: compact
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - 'while [ ! -f {{ inputs.marker }} ]; do sleep 0.05; done'
      - echo compacted
  - id: approve
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: purge
        type: BOOLEAN
        defaults: false
      - id: keepDays
        type: INT
        min: 1
        defaults: 7
      - id: evidence
        type: FILE
        required: false
  - id: purge
    type: io.kestra.plugin.core.log.Log
    message: >-
      purge={{ outputs.approve.onResume.purge }}
      keep={{ outputs.approve.onResume.keepDays }}
      evidence={{ read(outputs.approve.onResume.evidence) | trim }}
"""

SCHEDULED_FLOW = """id: nightly
namespace: ui.test
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "tick {{ trigger.date }}"
triggers:
  - id: midnight
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 0 * * *"
"""


def shot(page: Any, screenshots: Path, name: str, *, full: bool = False) -> None:
    page.screenshot(path=str(screenshots / f"{name}.png"), full_page=full)


def test_run_a_flow_from_its_form_and_watch_it_turn_green_without_reloading(
        page: Any, harrier_server: HarrierServer, screenshots: Path) -> None:
    harrier_server.push(FORM_FLOW)
    page.goto("/ui/flows/ui.test/daily-report")
    # A bad value first: the error shows next to its field, nothing runs.
    page.get_by_label("rows").fill("5000")
    page.get_by_role("button", name="Run", exact=True).click()
    error = page.locator("#err-rows")
    assert "input 'rows'" in error.inner_text() and "5000" in error.inner_text()
    assert page.get_by_label("rows").get_attribute("aria-invalid") == "true"
    shot(page, screenshots, "run-form-errors")

    page.get_by_label("rows").fill("42")
    page.get_by_label("region").select_option("apac")
    page.get_by_label("dryRun").check()
    page.get_by_label("token").fill("do-not-show")
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_url(re.compile(r"/ui/executions/\w+$"))
    page.evaluate("window.notReloaded = true")
    badge = page.locator("#exec-state")
    badge.filter(has_text="RUNNING").wait_for()
    shot(page, screenshots, "execution-running")
    badge.filter(has_text="SUCCESS").wait_for(timeout=30_000)
    assert page.evaluate("window.notReloaded") is True
    # Header, inputs (the secret masked), nested timeline, logs.
    assert "******" in page.locator(".io").inner_text()
    assert "do-not-show" not in page.content()
    for task in ("extract", "both", "transform", "publish"):
        done = page.locator(f".tl-row[data-state='SUCCESS'] .tl-task:text-is('{task}')")
        assert done.count() == 1
    depth = page.locator(".tl-row", has=page.locator(".tl-task:text-is('transform')"))
    assert depth.evaluate("row => getComputedStyle(row).getPropertyValue('--depth')").strip() == "1"
    page.locator("#log-view").get_by_text("extracting 42 rows for apac").wait_for()
    shot(page, screenshots, "execution", full=True)


def test_open_a_failed_execution_find_the_error_in_the_logs_and_restart_it(
        page: Any, harrier_server: HarrierServer, screenshots: Path, tmp_path: Path) -> None:
    harrier_server.push(FAILING_FLOW)
    marker = tmp_path / "upstream.ready"
    execution = harrier_server.execute("ui.test", "flaky-load", {"marker": str(marker)})
    harrier_server.wait_state(execution["id"], "FAILED")

    page.goto("/ui/executions?state=FAILED&namespace=ui.test")
    page.get_by_role("link", name=execution["id"][:8]).click()
    page.locator("#exec-state").filter(has_text="FAILED").wait_for()
    # The failed task is one click away; its logs are filtered to it.
    page.locator(".tl-row[data-state='FAILED'] .tl-name").click()
    assert page.locator("#log-task").input_value() != ""
    assert "exit" in page.locator("#taskrun-body").inner_text().lower()
    page.get_by_label("Find").fill("boom")
    page.locator("#log-status", has_text=re.compile(r"^2 of \d+ lines")).wait_for()
    # The task's own stderr line, and the ERROR line that says why it failed.
    rows = "#log-view .log-row:not([hidden])"
    page.locator(f"{rows}[data-level='INFO']", has_text="boom: the upstream").wait_for()
    error = page.locator(f"{rows}[data-level='ERROR']", has_text="exited with code 3")
    assert "boom: the upstream file is missing" in error.get_attribute("title")
    shot(page, screenshots, "execution-failed")

    marker.write_text("ready")
    page.get_by_role("button", name="Restart").click()
    page.locator("#exec-state").filter(has_text="SUCCESS").wait_for(timeout=30_000)
    assert harrier_server.execution(execution["id"])["state"]["current"] == "SUCCESS"


def test_kill_a_running_execution(page: Any, harrier_server: HarrierServer,
                                  screenshots: Path) -> None:
    harrier_server.push(SLOW_FLOW)
    execution = harrier_server.execute("ui.test", "long-job")
    harrier_server.wait_state(execution["id"], "RUNNING")
    page.goto(f"/ui/executions/{execution['id']}")
    page.locator("#log-view").get_by_text("started").wait_for()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Kill", exact=True).click()
    page.locator("#exec-state").filter(has_text="KILLED").wait_for(timeout=20_000)
    assert page.get_by_role("button", name="Kill", exact=True).is_hidden()
    shot(page, screenshots, "execution-killed")


def test_resume_a_paused_execution_from_its_page_with_typed_inputs(
        page: Any, harrier_server: HarrierServer, screenshots: Path, tmp_path: Path) -> None:
    harrier_server.push(APPROVAL_FLOW)
    marker = tmp_path / "compacted"
    execution = harrier_server.execute("ui.test", "approve-purge", {"marker": str(marker)})
    # Opened while it runs: the Resume form appears once the Pause is reached.
    page.goto(f"/ui/executions/{execution['id']}")
    page.locator("#exec-state").filter(has_text="RUNNING").wait_for()
    assert page.locator("#resume-panel").count() == 0
    marker.write_text("done")
    resume = page.get_by_role("button", name="Resume", exact=True)
    resume.wait_for(timeout=30_000)
    assert page.locator("#exec-state").inner_text() == "PAUSED"
    assert page.get_by_label("keepDays").input_value() == "7"
    # A bad value: shown next to its field, the execution stays paused.
    page.get_by_label("keepDays").fill("0")
    resume.click()
    error = page.locator("#resume-err-keepDays")
    assert "input 'keepDays'" in error.inner_text(), error.inner_text()
    assert harrier_server.execution(execution["id"])["state"]["current"] == "PAUSED"
    shot(page, screenshots, "execution-resume-errors")

    evidence = tmp_path / "evidence.txt"
    evidence.write_text("row counts match\n")
    page.get_by_label("keepDays").fill("30")
    page.get_by_role("checkbox", name="purge").check()
    page.get_by_label("evidence").set_input_files(str(evidence))
    page.get_by_role("button", name="Resume", exact=True).click()
    page.locator("#exec-state").filter(has_text="SUCCESS").wait_for(timeout=30_000)
    assert page.locator("#resume-panel").is_hidden()
    page.locator("#log-view").get_by_text(
        "purge=true keep=30 evidence=row counts match").wait_for()
    done = harrier_server.execution(execution["id"])
    [approve] = [r for r in done["taskRunList"] if r["taskId"] == "approve"]
    assert approve["outputs"]["onResume"]["purge"] is True
    shot(page, screenshots, "execution-resumed")


def test_an_invalid_yaml_edit_shows_its_line_and_column_and_a_valid_one_saves(
        page: Any, harrier_server: HarrierServer, screenshots: Path) -> None:
    harrier_server.push(SCHEDULED_FLOW)
    page.goto("/ui/flows/ui.test/nightly#source")
    editor = page.get_by_label("Flow YAML source")
    page.locator("#editor-status").filter(has_text="Valid").wait_for()
    broken = SCHEDULED_FLOW.replace("    message:", "    mesage:")
    editor.fill(broken)
    problem = page.locator("#problems .problem", has_text="mesage")
    problem.wait_for()
    text = problem.inner_text()
    expected = r"ui\.test\.nightly\.yaml:6:5: tasks\[0\]\.mesage: unknown property"
    assert re.match(expected, text), text
    assert page.get_by_role("button", name="Save").is_disabled()
    shot(page, screenshots, "flow-editor-error")
    # Clicking the problem puts the caret on that line and column.
    problem.get_by_role("button").click()
    caret = editor.evaluate("t => t.value.slice(0, t.selectionStart).split('\\n')")
    assert (len(caret), len(caret[-1]) + 1) == (6, 5)

    editor.fill(SCHEDULED_FLOW.replace("tick {{", "midnight tick {{"))
    page.locator("#editor-status").filter(has_text="Valid, not saved").wait_for()
    page.get_by_role("button", name="Save").click()
    page.locator("#editor-status").filter(has_text=re.compile(r"Saved as revision \d+")).wait_for()
    with harrier_server.api() as client:
        stored = client.get("/api/v1/flows/ui.test/nightly").json()
    assert "midnight tick" in stored["source"]


def test_a_backfill_creates_its_executions_and_a_trigger_can_be_switched_off(
        page: Any, harrier_server: HarrierServer, screenshots: Path) -> None:
    harrier_server.push(SCHEDULED_FLOW.replace("id: nightly", "id: nightly-backfill"))
    page.goto("/ui/flows/ui.test/nightly-backfill#backfill")
    page.get_by_label("Start (UTC)").fill("2024-01-01T00:00:00")
    page.get_by_label("End (UTC, empty for now)").fill("2024-01-03T00:00:00")
    page.get_by_role("button", name="Backfill").click()
    result = page.locator("#backfill-result")
    assert result.inner_text().startswith("3 executions created, 0 ticks already run")
    shot(page, screenshots, "flow", full=True)
    # Again: nothing new, every tick already ran.
    page.get_by_role("button", name="Backfill").click()
    assert page.locator("#backfill-result").inner_text().startswith(
        "0 executions created, 3 ticks already run")

    page.goto("/ui/executions?namespace=ui.test&flowId=nightly-backfill&window=all")
    assert page.locator("p.count").inner_text().startswith("3 executions")
    triggers = page.locator("#executions-table tbody tr td:nth-child(6)").all_inner_texts()
    assert triggers == ["backfill"] * 3
    shot(page, screenshots, "executions")

    page.goto("/ui/flows/ui.test/nightly-backfill#triggers")
    switch = page.get_by_role("switch", name="Trigger midnight enabled")
    assert switch.get_attribute("aria-checked") == "true"
    switch.click()
    switch = page.get_by_role("switch", name="Trigger midnight enabled")
    assert switch.get_attribute("aria-checked") == "false"
    with harrier_server.api() as client:
        triggers = client.get("/api/v1/triggers/ui.test/nightly-backfill").json()["results"]
    assert triggers[0]["disabled"] is True and triggers[0]["nextExecutionDate"] is None


def test_the_workers_page_shows_queues_and_the_live_worker_with_its_running_task(
        page: Any, harrier_server: HarrierServer, screenshots: Path) -> None:
    harrier_server.push(SLOW_FLOW.replace("id: long-job", "id: long-job-2"))
    execution = harrier_server.execute("ui.test", "long-job-2")
    harrier_server.wait_state(execution["id"], "RUNNING")
    page.goto("/ui/workers")
    worker = page.locator("tr[data-worker='ui1@harrier-test']")
    worker.get_by_role("link", name="wait").wait_for(timeout=10_000)
    assert "default" in worker.inner_text()
    assert page.locator("tr[data-queue='default']").count() == 1
    shot(page, screenshots, "workers")
    with harrier_server.api() as client:
        client.delete(f"/api/v1/executions/{execution['id']}/kill")


def test_every_page_fits_a_narrow_window_and_names_its_controls(
        browser: Any, harrier_server: HarrierServer, screenshots: Path) -> None:
    harrier_server.push(FORM_FLOW)
    execution = harrier_server.execute("ui.test", "daily-report")
    harrier_server.wait_state(execution["id"], "SUCCESS")
    context = browser.new_context(
        base_url=harrier_server.url, viewport={"width": 360, "height": 740},
        http_credentials={"username": "operator", "password": "s3cret-pass"})
    page = context.new_page()
    try:
        for path in ("/ui/executions", f"/ui/executions/{execution['id']}", "/ui/flows",
                     "/ui/flows/ui.test/daily-report", "/ui/workers"):
            page.goto(path)
            page.wait_for_load_state("networkidle") if "executions/" not in path else \
                page.locator(".tl-row").first.wait_for()
            overflow = page.evaluate("document.documentElement.scrollWidth - innerWidth")
            assert overflow <= 1, f"{path} scrolls sideways by {overflow}px at 360px wide"
            unnamed = page.evaluate("""() => [...document.querySelectorAll(
                'input:not([type=hidden]), select, textarea, button, a[href]')]
                .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                    && !e.getAttribute('aria-labelledby') && !e.textContent.trim()
                    && !e.getAttribute('title'))
                .map(e => e.outerHTML.slice(0, 120))""")
            assert unnamed == [], f"{path}: controls without a name: {unnamed}"
            if path.startswith("/ui/executions/"):
                shot(page, screenshots, "execution-narrow", full=True)
    finally:
        context.close()


def test_without_credentials_the_ui_is_refused(browser: Any,
                                               harrier_server: HarrierServer) -> None:
    from playwright.sync_api import Error as PlaywrightError

    context = browser.new_context(base_url=harrier_server.url)
    page = context.new_page()
    try:
        for path in ("/ui/executions", "/ui/flows", "/ui/workers", "/ui/static/harrier.css"):
            # Headless Chromium has no one to ask for the password: the page fails.
            with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
                page.goto(path)
            response = context.request.get(path)
            assert response.status == 401, path
            assert "Basic" in response.headers["www-authenticate"]
            assert "ui.test" not in response.text()
    finally:
        context.close()
    wrong = httpx.get(f"{harrier_server.url}/ui/executions", auth=("operator", "wrong"))
    assert wrong.status_code == 401
    # A form posted from another site is refused even with the browser's credentials.
    forged = httpx.post(f"{harrier_server.url}/ui/flows/ui.test/nightly/backfill",
                        auth=("operator", "s3cret-pass"),
                        headers={"Origin": "https://attacker.example"},
                        data={"trigger": "midnight", "start": "2024-01-01T00:00"})
    assert forged.status_code == 403
