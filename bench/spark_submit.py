"""Submission latency of a cluster-mode driver, spark-submit (a JVM) against the REST protocol
over httpx, and time to completion of the small test job through each; medians and ratios.

    .venv/bin/python bench/spark_submit.py [--runs 5] [--completion-runs 3]

Starts its own standalone master + worker (tests/fixtures/spark.py) and stops them after."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harrier.worker.spark.follow import follow_driver
from harrier.worker.spark.rest import SparkRestClient
from harrier.worker.spark.submit_args import SparkSubmitSpec, build_rest_request, build_submit_argv
from harrier.worker.spark.submit_output import parse_submission_id
from tests.fixtures.spark import (
    SMALL_JOB_CONF,
    SparkCluster,
    SparkJobs,
    build_spark_jobs,
    spark_env,
    start_spark_cluster,
)


def spec(cluster: SparkCluster, jobs: SparkJobs, *args: str) -> SparkSubmitSpec:
    return SparkSubmitSpec(master=cluster.rest_master_url, main_resource=str(jobs.jar),
                           main_class=jobs.count_class, args=list(args), deploy_mode="CLUSTER",
                           configurations=dict(SMALL_JOB_CONF),
                           spark_submit_path=str(cluster.spark_submit))


def submit_cli(cluster: SparkCluster, jobs: SparkJobs, *args: str) -> str:
    result = subprocess.run(build_submit_argv(spec(cluster, jobs, *args)), capture_output=True,
                            text=True, env=spark_env(), timeout=300, check=False)
    submission_id = parse_submission_id((result.stdout + result.stderr).splitlines())
    if result.returncode != 0 or submission_id is None:
        raise RuntimeError(f"spark-submit failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return submission_id


def submit_rest(client: SparkRestClient, cluster: SparkCluster, jobs: SparkJobs,
                *args: str) -> str:
    return client.create(build_rest_request(spec(cluster, jobs, *args)))


def timed(submit: Callable[[], str]) -> tuple[float, str]:
    start = time.perf_counter()
    submission_id = submit()
    return time.perf_counter() - start, submission_id


def settle(client: SparkRestClient, submission_id: str, *, kill: bool) -> None:
    """End the driver before the next measurement so runs do not compete for the 2 cores."""
    if kill:
        client.kill(submission_id)
    follow_driver(client, submission_id, poll_interval=0.2, read_logs=False)
    time.sleep(1.0)


def submission_latencies(runs: int, submit: Callable[[], str],
                         client: SparkRestClient) -> list[float]:
    latencies = []
    for _ in range(runs):
        # A driver that sleeps first, killed at once: we time the submission only.
        latency, submission_id = timed(submit)
        latencies.append(latency)
        settle(client, submission_id, kill=True)
    return latencies


def completion_times(runs: int, submit: Callable[[], str],
                     client: SparkRestClient) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        submission_id = submit()
        final = follow_driver(client, submission_id, poll_interval=0.2, read_logs=False)
        times.append(time.perf_counter() - start)
        if final.state != "FINISHED":
            raise RuntimeError(f"{submission_id} ended {final.state}: {final.message}")
        time.sleep(1.0)
    return times


def row(label: str, values: list[float]) -> str:
    return (f"{label:<44} {statistics.median(values):>9.3f} {min(values):>9.3f} "
            f"{max(values):>9.3f} {len(values):>3}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--completion-runs", type=int, default=3)
    options = parser.parse_args()
    jobs = build_spark_jobs()
    with tempfile.TemporaryDirectory(prefix="harrier-bench-spark-") as tmp:
        started = time.perf_counter()
        cluster = start_spark_cluster(Path(tmp))
        ready = time.perf_counter() - started
        try:
            with SparkRestClient(cluster.rest_master_url,
                                 master_web_url=cluster.master_web_url) as client:
                cli = submission_latencies(
                    options.runs, lambda: submit_cli(cluster, jobs, "sleep=600"), client)
                rest = submission_latencies(
                    options.runs, lambda: submit_rest(client, cluster, jobs, "sleep=600"),
                    client)
                done_rest = completion_times(
                    options.completion_runs, lambda: submit_rest(client, cluster, jobs), client)
                done_cli = completion_times(
                    options.completion_runs, lambda: submit_cli(cluster, jobs), client)
        finally:
            cluster.stop()
    print(f"cluster (master + worker) ready in {ready:.1f} s")
    print(f"{'seconds':<44} {'median':>9} {'min':>9} {'max':>9} {'n':>3}")
    print(row("submission: spark-submit --deploy-mode cluster", cli))
    print(row("submission: REST create (httpx)", rest))
    print(row("small job to FINISHED: REST create + follow", done_rest))
    print(row("small job to FINISHED: spark-submit + follow", done_cli))
    print(f"submission ratio spark-submit / REST: "
          f"{statistics.median(cli) / statistics.median(rest):.0f}x")
    print(f"completion ratio spark-submit / REST: "
          f"{statistics.median(done_cli) / statistics.median(done_rest):.2f}x")


if __name__ == "__main__":
    main()
