"""The Spark layer against a real standalone master and worker (tests/fixtures/spark.py):
REST submission, following drivers with their logs, kill, spark-submit in cluster mode, and
the errors of masters that cannot take a submission."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from harrier.common.errors import SparkSubmissionError
from harrier.worker.spark.follow import follow_driver
from harrier.worker.spark.rest import DriverStatus, SparkRestClient, SubmissionRequest
from harrier.worker.spark.submit_args import SparkSubmitSpec, build_rest_request, build_submit_argv
from harrier.worker.spark.submit_output import SubmitOutputScanner
from tests.fixtures.spark import (
    SMALL_JOB_CONF,
    SparkCluster,
    SparkJobs,
    free_port,
    spark_env,
    stop_process_group,
)

pytestmark = pytest.mark.slow


def job_spec(cluster: SparkCluster, jar: Path | str, main_class: str, *args: str,
             deploy_mode: str = "CLUSTER") -> SparkSubmitSpec:
    return SparkSubmitSpec(master=cluster.rest_master_url, main_resource=str(jar),
                           main_class=main_class, args=list(args), deploy_mode=deploy_mode,
                           configurations=dict(SMALL_JOB_CONF),
                           spark_submit_path=str(cluster.spark_submit))


class Recorder:
    """Collects what follow_driver reports."""

    def __init__(self) -> None:
        self.states: list[str] = []
        self.lines: list[tuple[str, str]] = []
        self.first_line = threading.Event()

    def on_state(self, status: DriverStatus) -> None:
        self.states.append(status.state)

    def on_log_line(self, stream: str, line: str) -> None:
        self.lines.append((stream, line))
        if stream == "stdout":
            self.first_line.set()

    def stdout(self) -> list[str]:
        return [line for stream, line in self.lines if stream == "stdout"]


def follow(client: SparkRestClient, submission_id: str, recorder: Recorder,
           cancel: threading.Event | None = None) -> DriverStatus:
    return follow_driver(client, submission_id, on_state=recorder.on_state,
                         on_log_line=recorder.on_log_line, cancel=cancel, poll_interval=0.3)


def test_rest_submitted_job_finishes_and_its_stdout_streams_back(
        spark_cluster: SparkCluster, spark_jobs: SparkJobs, rest_client: SparkRestClient) -> None:
    request = build_rest_request(job_spec(spark_cluster, spark_jobs.jar, spark_jobs.count_class,
                                          "count=1234", "hello world"))
    submission_id = rest_client.create(request)
    assert submission_id.startswith("driver-")
    recorder = Recorder()
    final = follow(rest_client, submission_id, recorder)
    assert final.state == "FINISHED"
    assert final.succeeded
    assert final.worker_id
    assert recorder.states[-1] == "FINISHED"
    assert "HARRIER-JOB-RESULT count=1234 args=hello world" in recorder.stdout()
    assert any(stream == "stderr" for stream, _ in recorder.lines)
    # The final status is the master's own view too.
    assert rest_client.status(submission_id).state == "FINISHED"


def test_failing_driver_ends_failed_with_its_exception_line(
        spark_cluster: SparkCluster, spark_jobs: SparkJobs, rest_client: SparkRestClient) -> None:
    request = build_rest_request(job_spec(spark_cluster, spark_jobs.jar, spark_jobs.fail_class))
    recorder = Recorder()
    final = follow(rest_client, rest_client.create(request), recorder)
    assert final.state == "FAILED"
    assert final.message == (
        "java.lang.IllegalStateException: HARRIER-JOB-FAILURE: deliberate failure for tests")
    assert "HARRIER-JOB-STARTING" in recorder.stdout()


def test_unknown_main_class_ends_failed_naming_the_class(
        spark_cluster: SparkCluster, spark_jobs: SparkJobs, rest_client: SparkRestClient) -> None:
    request = build_rest_request(job_spec(spark_cluster, spark_jobs.jar, "harrier.testjobs.Nope"))
    final = follow(rest_client, rest_client.create(request), Recorder())
    assert final.state == "FAILED"
    assert final.message == "java.lang.ClassNotFoundException: harrier.testjobs.Nope"


def test_missing_jar_ends_in_error_naming_the_file(
        spark_cluster: SparkCluster, rest_client: SparkRestClient, tmp_path: Path) -> None:
    missing = tmp_path / "missing.jar"
    request = build_rest_request(job_spec(spark_cluster, missing, "a.B"))
    final = follow(rest_client, rest_client.create(request), Recorder())
    assert final.state == "ERROR"
    assert final.message is not None
    assert str(missing) in final.message
    assert "NoSuchFileException" in final.message


def test_cancel_kills_a_running_driver(
        spark_cluster: SparkCluster, spark_jobs: SparkJobs, rest_client: SparkRestClient) -> None:
    request = build_rest_request(job_spec(spark_cluster, spark_jobs.jar, spark_jobs.count_class,
                                          "sleep=300"))
    submission_id = rest_client.create(request)
    recorder = Recorder()
    cancel = threading.Event()

    def cancel_once_running() -> None:
        # Kill only after the driver printed, so it is really RUNNING user code.
        recorder.first_line.wait(120)
        cancel.set()

    canceller = threading.Thread(target=cancel_once_running, daemon=True)
    canceller.start()
    final = follow(rest_client, submission_id, recorder, cancel)
    canceller.join(5)
    assert final.state == "KILLED"
    assert "HARRIER-JOB-SLEEPING seconds=300" in recorder.stdout()
    assert rest_client.status(submission_id).state == "KILLED"
    assert rest_client.kill(submission_id) is False  # already ended: not an error


def test_spark_submit_cluster_mode_prints_an_id_that_leads_to_the_driver(
        spark_cluster: SparkCluster, spark_jobs: SparkJobs, rest_client: SparkRestClient) -> None:
    argv = build_submit_argv(job_spec(spark_cluster, spark_jobs.jar, spark_jobs.fail_class))
    result = subprocess.run(argv, capture_output=True, text=True, env=spark_env(), timeout=180,
                            check=False)
    # Exit 0 only means SUBMITTED: the driver below fails.
    assert result.returncode == 0, result.stderr[-3000:]
    scanner = SubmitOutputScanner()
    for line in (result.stdout + result.stderr).splitlines():
        scanner.feed(line)
    assert scanner.submission_id is not None
    assert not scanner.legacy_protocol_mismatch
    final = follow(rest_client, scanner.submission_id, Recorder())
    assert final.state == "FAILED"
    assert "HARRIER-JOB-FAILURE" in (final.message or "")


def test_spark_submit_speaking_legacy_protocol_to_the_rest_port_is_detected_early(
        spark_cluster: SparkCluster, spark_jobs: SparkJobs) -> None:
    spec = job_spec(spark_cluster, spark_jobs.jar, spark_jobs.fail_class)
    spec.configurations["spark.master.rest.enabled"] = "false"
    scanner = SubmitOutputScanner()
    detected = threading.Event()
    process = subprocess.Popen(build_submit_argv(spec), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=spark_env(),
                               start_new_session=True)

    def scan() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            scanner.feed(line)
            if scanner.legacy_protocol_mismatch:
                detected.set()

    reader = threading.Thread(target=scan, daemon=True)
    reader.start()
    try:
        # What a SparkCLI task does: stop spark-submit as soon as the signature shows, since
        # depending on timing it may hang instead of exiting.
        detected.wait(120)
    finally:
        stop_process_group(process)
        reader.join(10)
    assert scanner.legacy_protocol_mismatch
    assert scanner.submission_id is None


def test_unreachable_master_is_a_clear_error(tmp_path: Path) -> None:
    master = f"spark://127.0.0.1:{free_port()}"
    with SparkRestClient(master) as client, pytest.raises(SparkSubmissionError) as caught:
        client.create(SubmissionRequest(app_resource="file:/x.jar", main_class="A"))
    assert master in str(caught.value)
    assert "cannot connect" in str(caught.value)


def test_legacy_rpc_port_is_recognised_instead_of_hanging(spark_cluster: SparkCluster) -> None:
    with SparkRestClient(spark_cluster.master_url) as client, \
            pytest.raises(SparkSubmissionError) as caught:
        client.status("driver-20240101000000-0000")
    assert spark_cluster.master_url in str(caught.value)
    assert "legacy RPC port" in str(caught.value)


def test_web_ui_port_is_recognised_as_not_the_rest_protocol(spark_cluster: SparkCluster) -> None:
    web_port = spark_cluster.master_web_url.rsplit(":", 1)[1]
    with SparkRestClient(f"spark://127.0.0.1:{web_port}") as client, \
            pytest.raises(SparkSubmissionError, match="not the Spark REST submission protocol"):
        client.create(SubmissionRequest(app_resource="file:/x.jar", main_class="A"))


def test_unknown_submission_id_is_none_for_find_and_an_error_for_status(
        rest_client: SparkRestClient) -> None:
    assert rest_client.find("driver-20240101000000-9999") is None
    with pytest.raises(SparkSubmissionError, match="knows no driver"):
        rest_client.status("driver-20240101000000-9999")


def test_malformed_submission_is_refused_with_the_server_message(
        rest_client: SparkRestClient) -> None:
    request = SubmissionRequest(app_resource="", main_class="")
    with pytest.raises(SparkSubmissionError, match=r"HTTP 4\d\d|refused") as caught:
        rest_client.create(request)
    assert rest_client.master in str(caught.value)
