"""A Spark task whose worker is killed with kill -9 while it follows a driver: the task is
redelivered to the other worker, which re-attaches to the same driver instead of submitting
a second one (real Redis, real prefork workers, real Spark master)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from harrier.common.flow import parse_flow
from harrier.common.state import State
from harrier.scheduler.executions import create_execution, start_execution
from harrier.worker.spark.rest import SparkRestClient
from tests.fixtures.spark import SMALL_JOB_CONF, SparkCluster, SparkJobs
from tests.fixtures.workers import Cluster
from tests.integration.embedded import wait_for

pytestmark = pytest.mark.slow




def driver_ids(spark: SparkCluster) -> set[str]:
    state = httpx.get(f"{spark.master_web_url}/json/", timeout=10).json()
    return {d["id"] for d in state.get("activedrivers", []) + state.get("completeddrivers", [])}


def test_a_redelivered_spark_task_re_attaches_to_its_driver_instead_of_submitting_again(
        cluster: Cluster, spark_cluster: SparkCluster, spark_jobs: SparkJobs) -> None:
    before = driver_ids(spark_cluster)
    flow = parse_flow(f"""
id: spark-crash
namespace: test
tasks:
  - id: submit
    type: io.kestra.plugin.spark.JarSubmit
    master: {spark_cluster.rest_master_url}
    masterWebUrl: {spark_cluster.master_web_url}
    deployMode: CLUSTER
    mainResource: {spark_jobs.jar}
    mainClass: {spark_jobs.count_class}
    configurations: {json.dumps(SMALL_JOB_CONF)}
    args: ["count=9", "sleep=25", "survived"]
""", "test.yaml")
    execution = create_execution(cluster.store, flow, {})
    from harrier.common.celery_app import app

    start_execution(app, flow, execution, store=cluster.store)

    def checkpointed() -> Any:
        for run in cluster.store.task_runs(execution.id):
            if (run.outputs.get("_checkpoint") or {}).get("submissionId"):
                return run
        return None

    run = wait_for(checkpointed, timeout=180)
    submission_id = run.outputs["_checkpoint"]["submissionId"]
    with SparkRestClient(spark_cluster.rest_master_url) as rest:
        wait_for(lambda: rest.status(submission_id).state == "RUNNING", timeout=180)
    victim = next(w for w in cluster.workers if w.hostname == run.attempts[-1].worker_id)
    cluster.kill(victim)  # the whole worker, parent and prefork children, as a crashed host
    try:
        done = cluster.store.wait_terminal(execution.id, 240)
        [run] = done.task_runs
        assert done.state.current == State.SUCCESS, run.error
        # More than two attempts when the fixture's 5 s visibility timeout redelivers the
        # message while the second worker still follows the driver; each re-attaches.
        assert len(run.attempts) >= 2
        assert run.attempts[0].error == "worker lost while running this attempt"
        assert all(a.worker_id != victim.hostname for a in run.attempts[1:])
        assert run.outputs["submissionId"] == submission_id
        assert run.outputs["driverState"] == "FINISHED"
        assert driver_ids(spark_cluster) - before == {submission_id}
        messages = [e.message for e in cluster.store.read_logs(execution.id)]
        assert any(f"re-attaching to driver {submission_id}" in m for m in messages)
    finally:
        cluster.workers.remove(victim)
        cluster.start_worker(victim.name)
