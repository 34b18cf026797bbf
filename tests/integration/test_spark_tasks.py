"""SparkCLI, JarSubmit and PythonSubmit end to end in embedded mode against a real standalone
master (REST enabled) and worker: following drivers, failures, kills, re-attachment, the seed
flows and the example flows."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from harrier.common.execution import Execution
from harrier.common.flow import parse_flow
from harrier.common.metrics import enable_metrics
from harrier.common.state import State
from harrier.scheduler.control import kill_execution
from harrier.scheduler.executions import create_execution, start_execution
from harrier.worker.runtime import Runtime
from harrier.worker.spark.rest import SparkRestClient
from tests.fixtures.spark import (
    SMALL_JOB_CONF,
    SparkCluster,
    SparkJobs,
    free_port,
    start_spark_cluster,
)
from tests.integration.embedded import logs, run_flow_text, task_run, wait_for

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SEED_FLOWS = Path("/work/shared/seed/flows")
SMALL = " ".join(f"--conf {k}={v}" for k, v in SMALL_JOB_CONF.items())
CONFIGURATIONS = json.dumps(SMALL_JOB_CONF)
TIMEOUT = 240  # seconds for one flow; the 2-core machine is slow when busy

PYSPARK_SCRIPT = """
from pyspark.sql import SparkSession
who = "{{ inputs.who }}"  # an input: Python data, never code
spark = SparkSession.builder.appName("harrier-python").getOrCreate()
print("HARRIER-PY-RESULT", spark.range(7).count(), len(who), flush=True)
spark.stop()
"""


def cli_flow(cluster: SparkCluster, job_class: str, jar: Path, *extra_args: str,
             task_props: str = "", master: str | None = None) -> str:
    args = " ".join(extra_args)
    return f"""
id: spark-cli
namespace: test
tasks:
  - id: submit
    type: io.kestra.plugin.spark.SparkCLI
    masterWebUrl: {cluster.master_web_url}
{task_props}
    commands:
      - >-
        spark-submit --master {master or cluster.rest_master_url} --deploy-mode cluster
        --conf spark.master.rest.enabled=true {SMALL}
        --class {job_class} {jar} {args}
"""


def start(runtime: Runtime, text: str, inputs: dict[str, Any] | None = None) -> Execution:
    flow = parse_flow(text, "test.yaml")
    execution = create_execution(runtime.store, flow, inputs or {})
    start_execution(runtime.app, flow, execution, store=runtime.store)
    return execution




def checkpointed_id(runtime: Runtime, execution_id: str) -> str | None:
    for run in runtime.store.task_runs(execution_id):
        submission_id = (run.outputs.get("_checkpoint") or {}).get("submissionId")
        if submission_id:
            return str(submission_id)
    return None


@pytest.fixture(scope="module")
def rest(spark_cluster: SparkCluster) -> Iterator[SparkRestClient]:
    with SparkRestClient(spark_cluster.rest_master_url,
                         master_web_url=spark_cluster.master_web_url) as client:
        yield client


def test_spark_cli_cluster_mode_follows_the_driver_to_success(
        embedded: Runtime, spark_cluster: SparkCluster, spark_jobs: SparkJobs) -> None:
    done = run_flow_text(embedded, cli_flow(spark_cluster, spark_jobs.count_class,
                                            spark_jobs.jar, "count=42"), timeout=TIMEOUT)
    run = task_run(done, "submit")
    assert done.state.current == State.SUCCESS, run.error
    assert run.outputs["submissionId"].startswith("driver-")
    assert run.outputs["driverState"] == "FINISHED"
    assert run.outputs["workerId"].startswith("worker-")
    assert run.outputs["exitCode"] == 0
    lines = logs(embedded, done, "submit")
    assert "[driver stdout] HARRIER-JOB-RESULT count=42 args=" in lines
    assert any(line.startswith(f"driver {run.outputs['submissionId']} RUNNING")
               for line in lines)


def test_failing_driver_fails_the_task_with_its_exception_line_after_every_attempt(
        embedded: Runtime, spark_cluster: SparkCluster, spark_jobs: SparkJobs) -> None:
    retry = "    retry: {type: constant, interval: PT1S, maxAttempt: 2}"
    done = run_flow_text(embedded, cli_flow(spark_cluster, spark_jobs.fail_class,
                                            spark_jobs.jar, task_props=retry),
                         timeout=TIMEOUT)
    run = task_run(done, "submit")
    assert done.state.current == State.FAILED
    assert len(run.attempts) == 2
    assert re.match(r"driver driver-\S+ FAILED: .*IllegalStateException: HARRIER-JOB-FAILURE",
                    run.error), run.error
    assert all("HARRIER-JOB-FAILURE" in (a.error or "") for a in run.attempts)


def test_killing_the_execution_kills_the_running_driver(
        embedded: Runtime, spark_cluster: SparkCluster, spark_jobs: SparkJobs,
        rest: SparkRestClient) -> None:
    execution = start(embedded, cli_flow(spark_cluster, spark_jobs.count_class,
                                         spark_jobs.jar, "sleep=300"))
    submission_id = wait_for(lambda: checkpointed_id(embedded, execution.id), timeout=180)
    wait_for(lambda: rest.status(submission_id).state == "RUNNING", timeout=180)
    kill_execution(embedded.store, execution.id)
    done = embedded.store.wait_terminal(execution.id, 120)
    assert done.state.current == State.KILLED
    assert task_run(done, "submit").state.current == State.KILLED
    # The master confirms the kill asynchronously (its worker reports back).
    wait_for(lambda: rest.status(submission_id).state == "KILLED", timeout=60)


INJECTION = """a;touch {marker} `touch {marker}` $(touch {marker}) 'q" \\ *"""


@pytest.mark.parametrize("submitter", ["cli", "rest"])
def test_jar_submit_succeeds_and_args_reach_the_job_verbatim(
        embedded: Runtime, spark_cluster: SparkCluster, spark_jobs: SparkJobs,
        submitter: str, tmp_path: Path) -> None:
    marker = tmp_path / "injected"
    evil = INJECTION.format(marker=marker)
    enable_metrics()  # what `harrier worker --metrics-port` does
    submitted = metric("harrier_spark_submission_duration_seconds_count", submitter=submitter)
    finished = metric("harrier_spark_driver_ended_count_total", state="FINISHED")
    done = run_flow_text(embedded, f"""
id: jar-submit
namespace: test
inputs:
  - id: evil
    type: STRING
tasks:
  - id: submit
    type: io.kestra.plugin.spark.JarSubmit
    submitter: {submitter}
    master: {spark_cluster.rest_master_url}
    masterWebUrl: {spark_cluster.master_web_url}
    deployMode: CLUSTER
    name: harrier-jar-{submitter}
    mainResource: {spark_jobs.jar}
    mainClass: {spark_jobs.count_class}
    configurations: {CONFIGURATIONS}
    args: ["count=5", "{{{{ inputs.evil }}}}"]
""", {"evil": evil}, timeout=TIMEOUT)
    run = task_run(done, "submit")
    assert done.state.current == State.SUCCESS, run.error
    assert run.outputs["driverState"] == "FINISHED"
    assert f"[driver stdout] HARRIER-JOB-RESULT count=5 args={evil}" in logs(
        embedded, done, "submit")
    assert not marker.exists()
    # Submission time by submitter and the driver's end state are metrics.
    assert metric("harrier_spark_submission_duration_seconds_count",
                  submitter=submitter) == submitted + 1
    assert metric("harrier_spark_driver_ended_count_total", state="FINISHED") == finished + 1


def metric(name: str, **labels: str) -> float:
    return sum(s.value for family in REGISTRY.collect() for s in family.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


WHO = '"; import sys; print("HARRIER-PY-RESULT 7 0"); sys.exit(0); x="'


def test_python_submit_in_client_mode_streams_its_output(embedded: Runtime) -> None:
    indented = "\n".join("      " + line for line in PYSPARK_SCRIPT.strip().splitlines())
    done = run_flow_text(embedded, f"""
id: python-submit
namespace: test
inputs:
  - id: who
    type: STRING
tasks:
  - id: submit
    type: io.kestra.plugin.spark.PythonSubmit
    master: local[1]
    configurations: {{spark.ui.enabled: "false"}}
    mainScript: |
{indented}
""", {"who": WHO}, timeout=TIMEOUT)
    run = task_run(done, "submit")
    assert done.state.current == State.SUCCESS, run.error
    assert f"HARRIER-PY-RESULT 7 {len(WHO)}" in logs(embedded, done, "submit")
    assert "submissionId" not in run.outputs


def test_python_submit_takes_stored_files_for_python_files_and_args(embedded: Runtime) -> None:
    """A pipeline's files through storage: a task writes a helper module and a
    CSV (outputFiles); PythonSubmit gets the module by pythonFiles and the CSV's
    kestra:// URI in args, both local files of spark-submit by then."""
    done = run_flow_text(embedded, """
id: python-submit-files
namespace: test
tasks:
  - id: prepare
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: ["helpers.py", "sales.csv"]
    commands:
      - printf 'def total(rows):\\n    return sum(int(r[2:]) for r in rows)\\n' > helpers.py
      - printf 'a,3\\nb,4\\n' > sales.csv
  - id: aggregate
    type: io.kestra.plugin.spark.PythonSubmit
    master: local[1]
    configurations: {spark.ui.enabled: "false"}
    pythonFiles:
      helpers.py: "{{ outputs.prepare.outputFiles['helpers.py'] }}"
    args: ["{{ outputs.prepare.outputFiles['sales.csv'] }}"]
    mainScript: |
      import sys
      from pyspark.sql import SparkSession
      from helpers import total
      spark = SparkSession.builder.appName("harrier-files").getOrCreate()
      rows = spark.sparkContext.textFile("file://" + sys.argv[1]).collect()
      print("HARRIER-FILES-RESULT", total(rows), flush=True)
      spark.stop()
""", timeout=TIMEOUT)
    run = task_run(done, "aggregate")
    assert done.state.current == State.SUCCESS, run.error
    assert "HARRIER-FILES-RESULT 7" in logs(embedded, done, "aggregate")


def test_rest_submitter_refuses_a_stored_file_the_cluster_cannot_read(embedded: Runtime) -> None:
    done = run_flow_text(embedded, """
id: rest-stored-jar
namespace: test
tasks:
  - id: build
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: ["job.jar"]
    commands: ["echo not-a-jar > job.jar"]
  - id: submit
    type: io.kestra.plugin.spark.JarSubmit
    submitter: rest
    master: spark://127.0.0.1:9
    mainClass: com.example.Job
    mainResource: "{{ outputs.build.outputFiles['job.jar'] }}"
""", timeout=TIMEOUT)
    assert done.state.current == State.FAILED
    assert "cannot read Harrier's storage" in (task_run(done, "submit").error or "")


def test_spark_cli_runs_a_local_pyspark_job_and_its_output_is_in_the_logs(
        embedded: Runtime) -> None:
    text = (REPO / "flows" / "spark-local.yaml").read_text()
    done = run_flow_text(embedded, text, {"rows": 12}, timeout=TIMEOUT)
    run = task_run(done, "count")
    assert done.state.current == State.SUCCESS, run.error
    assert "HARRIER-LOCAL-RESULT rows=12" in logs(embedded, done, "count")
    assert run.outputs["vars"] == {"rows": 12}


@pytest.mark.parametrize("submitter", ["cli", "rest"])
def test_unreachable_master_fails_quickly_with_a_clear_message(
        embedded: Runtime, spark_jobs: SparkJobs, submitter: str) -> None:
    master = f"spark://127.0.0.1:{free_port()}"
    done = run_flow_text(embedded, f"""
id: unreachable
namespace: test
tasks:
  - id: submit
    type: io.kestra.plugin.spark.JarSubmit
    submitter: {submitter}
    master: {master}
    deployMode: CLUSTER
    mainResource: {spark_jobs.jar}
    mainClass: {spark_jobs.count_class}
""", timeout=TIMEOUT)
    run = task_run(done, "submit")
    assert done.state.current == State.FAILED
    assert master in run.error
    assert re.search(r"connect|Connection refused", run.error), run.error


def test_spark_submit_speaking_the_legacy_protocol_to_a_rest_port_fails_instead_of_hanging(
        embedded: Runtime, spark_cluster: SparkCluster, spark_jobs: SparkJobs) -> None:
    text = cli_flow(spark_cluster, spark_jobs.count_class, spark_jobs.jar).replace(
        "--conf spark.master.rest.enabled=true", "--conf spark.ui.showConsoleProgress=false")
    done = run_flow_text(embedded, text, timeout=TIMEOUT)
    run = task_run(done, "submit")
    assert done.state.current == State.FAILED
    assert "spark.master.rest.enabled=true" in run.error
    assert spark_cluster.rest_master_url in run.error


def test_wait_for_completion_false_returns_once_the_driver_is_submitted(
        embedded: Runtime, spark_cluster: SparkCluster, spark_jobs: SparkJobs,
        rest: SparkRestClient) -> None:
    done = run_flow_text(embedded, cli_flow(
        spark_cluster, spark_jobs.count_class, spark_jobs.jar, "sleep=300",
        task_props="    waitForCompletion: false"), timeout=TIMEOUT)
    run = task_run(done, "submit")
    try:
        assert done.state.current == State.SUCCESS, run.error
        assert run.outputs["driverState"] == "SUBMITTED"
        # The driver sleeps 300 s; the task ended while it was still queued or running.
        assert rest.status(run.outputs["submissionId"]).state in ("SUBMITTED", "RUNNING")
    finally:
        rest.kill(run.outputs["submissionId"])


def test_a_lost_attempts_driver_is_re_attached_not_submitted_again(
        embedded: Runtime, spark_cluster: SparkCluster, spark_jobs: SparkJobs,
        rest: SparkRestClient, tmp_path: Path) -> None:
    """The worker-loss path without killing a process (test_spark_crash.py does that): the
    previous attempt's checkpoint names a driver already submitted over REST, and spark-submit
    is a command that would fail, so success proves it was never run."""
    from harrier.worker.spark.submit_args import SparkSubmitSpec, build_rest_request
    from tests.fixtures.spark import SMALL_JOB_CONF as conf

    spec = SparkSubmitSpec(master=spark_cluster.rest_master_url, main_resource=str(
        spark_jobs.jar), main_class=spark_jobs.count_class, args=["count=3", "reattached"],
        deploy_mode="CLUSTER", configurations=dict(conf))
    submission_id = rest.create(build_rest_request(spec))
    flow_text = cli_flow(spark_cluster, spark_jobs.count_class, Path("/nonexistent.jar"))
    flow = parse_flow(flow_text, "test.yaml")
    execution = create_execution(embedded.store, flow, {})
    _plant_lost_attempt(embedded, execution, flow, {
        "submissionId": submission_id, "master": spark_cluster.rest_master_url,
        "masterWebUrl": spark_cluster.master_web_url})
    start_execution(embedded.app, flow, execution, store=embedded.store)
    done = embedded.store.wait_terminal(execution.id, TIMEOUT)
    run = task_run(done, "submit")
    assert done.state.current == State.SUCCESS, run.error
    assert run.outputs["submissionId"] == submission_id
    assert len(run.attempts) == 2
    lines = logs(embedded, done, "submit")
    assert any("re-attaching to driver " + submission_id in line for line in lines)
    assert "[driver stdout] HARRIER-JOB-RESULT count=3 args=reattached" in lines


def _plant_lost_attempt(runtime: Runtime, execution: Execution, flow: Any,
                        checkpoint: dict[str, Any]) -> None:
    """What a worker that died mid-attempt leaves in the store: a RUNNING attempt and its
    checkpoint (a fake of the crash; the real crash is in test_spark_crash.py)."""
    from harrier.common.execution import Attempt, TaskRun, new_id
    from harrier.common.state import State, StateRecord

    run, _, _ = runtime.store.begin_task_run(execution.id, TaskRun(
        id=new_id(), execution_id=execution.id, namespace=execution.namespace,
        flow_id=execution.flow_id, task_id="submit", task_path="submit",
        state=StateRecord.start(State.CREATED)))
    run.attempts.append(Attempt(worker_id="lost-worker"))
    run.outputs["_checkpoint"] = checkpoint
    runtime.store.save_task_run(run)


# --- the seed flows and the example flows --------------------------------------------------

@pytest.fixture(scope="module")
def roomy_spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    """The seed flows size drivers and executors for production (1 GB default drivers, 4 GB
    executors, two drivers at once), more than the shared 2 GB test worker offers; a worker
    that advertises 16 GB runs them unchanged (the tiny job uses a fraction of it)."""
    cluster = start_spark_cluster(tmp_path_factory.mktemp("roomy-spark"), memory="16g")
    try:
        yield cluster
    finally:
        cluster.stop()


SEED_JARS = re.compile(r"s3a://\S+\.jar")
SEED_CLASSES = re.compile(r"--class (com\.[\w.]+)")


def seed_text(name: str, cluster: SparkCluster, jobs: SparkJobs) -> str:
    """The seed flow with its master address changed; hard-coded s3a:// jars and classes
    pointed at the test job (flows with inputs get those through their inputs instead)."""
    text = (SEED_FLOWS / name).read_text().replace("spark://ilum-core:9888",
                                                   cluster.rest_master_url)
    text = SEED_JARS.sub(str(jobs.jar), text)
    return SEED_CLASSES.sub(f"--class {jobs.count_class}", text)


SEED_INPUTS: dict[str, Callable[[SparkJobs], dict[str, str]]] = {
    "daily-aggregation.yaml": lambda jobs: {},
    "low-latency-submission.yaml": lambda jobs: {"YourMainClass": jobs.count_class,
                                                 "YourSparkJar": str(jobs.jar)},
    "parallel-processing.yaml": lambda jobs: {},
    "resilient-spark-job.yaml": lambda jobs: {},
    "spark-data-ingestion.yaml": lambda jobs: {"jar_location": str(jobs.jar),
                                               "main_class": jobs.count_class},
}


@pytest.mark.parametrize("name", sorted(SEED_INPUTS))
def test_seed_flow_runs_against_a_real_master_with_only_the_address_changed(
        embedded: Runtime, roomy_spark_cluster: SparkCluster, spark_jobs: SparkJobs,
        name: str) -> None:
    text = seed_text(name, roomy_spark_cluster, spark_jobs)
    done = run_flow_text(embedded, text, SEED_INPUTS[name](spark_jobs), timeout=TIMEOUT)
    leaves = [r for r in done.task_runs if "submissionId" in r.outputs]
    assert done.state.current == State.SUCCESS, [r.error for r in done.task_runs]
    assert leaves and all(r.outputs["driverState"] == "FINISHED" for r in leaves)
    for run in leaves:
        # Live driver logs need the master's web UI (masterWebUrl; Spark's default port 8080
        # is not this test master's), so look at what the driver wrote on its worker.
        stdout = roomy_spark_cluster.work_dir / run.outputs["submissionId"] / "stdout"
        assert "HARRIER-JOB-RESULT count=1000" in stdout.read_text()


def test_example_cluster_flow_runs_against_a_real_master(
        embedded: Runtime, spark_cluster: SparkCluster, spark_jobs: SparkJobs) -> None:
    text = (REPO / "flows" / "spark-cluster.yaml").read_text()
    done = run_flow_text(embedded, text, {
        "master": spark_cluster.rest_master_url, "masterWebUrl": spark_cluster.master_web_url,
        "jar": str(spark_jobs.jar), "mainClass": spark_jobs.count_class,
        "driverMemory": "512m", "executorMemory": "512m"}, timeout=TIMEOUT)
    assert done.state.current == State.SUCCESS, [r.error for r in done.task_runs]
    assert any(line.startswith("[driver stdout] HARRIER-JOB-RESULT")
               for line in logs(embedded, done))


def test_master_json_lists_no_leftover_drivers(spark_cluster: SparkCluster) -> None:
    """Every driver these tests started has ended (none left to starve later tests)."""
    def active() -> list[Any]:
        state = httpx.get(f"{spark_cluster.master_web_url}/json/", timeout=10).json()
        return list(state.get("activedrivers", []))

    wait_for(lambda: not active(), timeout=60)
