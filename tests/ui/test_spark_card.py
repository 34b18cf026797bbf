"""The Spark card of the execution page against a real standalone master and
worker: the driver a JarSubmit task submitted over REST is shown with its
submission id and master, and Kill driver kills it on the master without
killing the execution first (the task then fails as the driver did)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from harrier.worker.spark.rest import SparkRestClient
from tests.fixtures.browser import HarrierServer
from tests.fixtures.spark import SMALL_JOB_CONF, SparkCluster, SparkJobs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def test_the_spark_card_shows_the_driver_and_kills_it(
        page: Any, harrier_server: HarrierServer, spark_cluster: SparkCluster,
        spark_jobs: SparkJobs, screenshots: Path) -> None:
    harrier_server.push(f"""id: spark-long
namespace: ui.test
tasks:
  - id: aggregate
    type: io.kestra.plugin.spark.JarSubmit
    submitter: rest
    master: {spark_cluster.rest_master_url}
    masterWebUrl: {spark_cluster.master_web_url}
    deployMode: CLUSTER
    mainResource: {spark_jobs.jar}
    mainClass: {spark_jobs.count_class}
    configurations: {json.dumps(SMALL_JOB_CONF)}
    args: ["count=5", "sleep=300"]
""")
    execution = harrier_server.execute("ui.test", "spark-long")
    page.goto(f"/ui/executions/{execution['id']}")
    page.locator(".tl-row[data-state='RUNNING'] .tl-name").click()
    card = page.locator("#spark-card")
    submission = card.locator("dt:text-is('Submission') + dd")
    deadline = time.monotonic() + 180
    while not submission.is_visible() or not submission.inner_text().startswith("driver-"):
        assert time.monotonic() < deadline, "no submission id on the card"
        page.wait_for_timeout(250)
    submission_id = submission.inner_text()
    assert card.locator("dt:text-is('Master') + dd").inner_text() == \
        spark_cluster.rest_master_url
    assert card.locator("dt:text-is('Submitter') + dd").inner_text() == "rest"
    link = card.get_by_role("link", name="Spark master UI")
    assert link.get_attribute("href") == spark_cluster.master_web_url
    with SparkRestClient(spark_cluster.rest_master_url) as rest:
        deadline = time.monotonic() + 180
        while rest.status(submission_id).state != "RUNNING":
            assert time.monotonic() < deadline, "driver never ran"
            time.sleep(0.5)
        shot(page, screenshots)
        page.once("dialog", lambda dialog: dialog.accept())
        card.get_by_role("button", name="Kill driver").click()
        page.locator("#action-message", has_text=f"Driver {submission_id} killed").wait_for()
        deadline = time.monotonic() + 60
        while rest.status(submission_id).state != "KILLED":
            assert time.monotonic() < deadline, "the master did not kill the driver"
            time.sleep(0.5)
    # The task ends as its driver did; the execution was not killed by us.
    page.locator(".tl-row .tl-task:text-is('aggregate')").wait_for()
    done = harrier_server.wait_state(execution["id"], "FAILED", timeout=120)
    assert "KILLED" in (done["taskRunList"][0]["error"] or "")


def shot(page: Any, screenshots: Path) -> None:
    page.screenshot(path=str(screenshots / "execution-spark.png"), full_page=True)
