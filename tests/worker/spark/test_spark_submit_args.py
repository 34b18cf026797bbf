"""Pure pieces of the Spark layer: argv and REST request building, Java 17 options, parsing
spark-submit's output and the driver's error line."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harrier.common.errors import SparkSubmissionError
from harrier.worker.spark.driver_logs import ErrorLineTracker, cluster_exception_line
from harrier.worker.spark.java_options import JAVA17_OPTIONS, with_java17_options
from harrier.worker.spark.rest import rest_base_url
from harrier.worker.spark.submit_args import SparkSubmitSpec, build_rest_request, build_submit_argv
from harrier.worker.spark.submit_output import SubmitOutputScanner, parse_submission_id


def conf_items(argv: list[str]) -> dict[str, str]:
    pairs = [argv[i + 1] for i, item in enumerate(argv) if item == "--conf"]
    return dict(pair.split("=", 1) for pair in pairs)


def test_jar_submit_argv_follows_spark_submit_option_order() -> None:
    spec = SparkSubmitSpec.from_properties({
        "master": "spark://m:7077", "name": "daily", "mainResource": "app.jar",
        "mainClass": "com.acme.Daily", "jars": {"dep.jar": "kestra:///dep.jar"},
        "appFiles": {"lookup.csv": "kestra:///lookup.csv"}, "args": ["--date", "2024-01-01"],
        "verbose": True, "java17Options": False,
    })
    assert build_submit_argv(spec) == [
        "spark-submit", "--master", "spark://m:7077", "--deploy-mode", "client",
        "--name", "daily", "--class", "com.acme.Daily", "--jars", "dep.jar",
        "--files", "lookup.csv", "--verbose", "app.jar", "--date", "2024-01-01",
    ]


def test_python_submit_argv_passes_py_files_and_script() -> None:
    spec = SparkSubmitSpec.from_properties({
        "master": "local[2]", "mainScript": "main.py", "pythonFiles": ["lib.zip", "util.py"],
        "sparkSubmitPath": "/opt/spark/bin/spark-submit",
    })
    argv = build_submit_argv(spec)
    assert argv[0] == "/opt/spark/bin/spark-submit"
    assert argv[argv.index("--py-files") + 1] == "lib.zip,util.py"
    assert argv[-1] == "main.py"
    assert "--class" not in argv


def test_java17_options_are_added_by_default_and_user_values_win() -> None:
    spec = SparkSubmitSpec(master="local", main_resource="a.jar", main_class="A",
                           configurations={"spark.driver.extraJavaOptions": "-Dmine=1"})
    conf = conf_items(build_submit_argv(spec))
    assert conf["spark.driver.extraJavaOptions"] == "-Dmine=1"
    assert conf["spark.executor.extraJavaOptions"] == JAVA17_OPTIONS
    assert "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED" in JAVA17_OPTIONS


def test_java17_options_can_be_turned_off() -> None:
    spec = SparkSubmitSpec(master="local", main_resource="a.jar", java17_options=False)
    assert conf_items(build_submit_argv(spec)) == {}


def test_with_java17_options_keeps_an_explicitly_empty_user_value() -> None:
    conf = with_java17_options({"spark.executor.extraJavaOptions": ""})
    assert conf["spark.executor.extraJavaOptions"] == ""
    assert conf["spark.driver.extraJavaOptions"] == JAVA17_OPTIONS


def test_cluster_mode_on_a_standalone_master_enables_the_rest_gateway() -> None:
    spec = SparkSubmitSpec(master="spark://m:6066", deploy_mode="cluster",
                           main_resource="a.jar", main_class="A")
    argv = build_submit_argv(spec)
    assert argv[argv.index("--deploy-mode") + 1] == "cluster"
    assert conf_items(argv)["spark.master.rest.enabled"] == "true"


def test_rest_gateway_setting_of_the_user_is_kept_and_client_mode_gets_none() -> None:
    user = SparkSubmitSpec(master="spark://m:7077", deploy_mode="CLUSTER", main_resource="a.jar",
                           configurations={"spark.master.rest.enabled": "false"})
    assert conf_items(build_submit_argv(user))["spark.master.rest.enabled"] == "false"
    client = SparkSubmitSpec(master="spark://m:7077", main_resource="a.jar")
    assert "spark.master.rest.enabled" not in conf_items(build_submit_argv(client))


@given(st.lists(st.text(min_size=1).filter(lambda s: "\x00" not in s), max_size=5))
def test_argv_carries_arguments_verbatim_so_no_shell_can_interpret_them(args: list[str]) -> None:
    spec = SparkSubmitSpec(master="local", main_resource="a.jar", args=args)
    argv = build_submit_argv(spec)
    assert argv[len(argv) - len(args):] == args


def test_unknown_deploy_mode_is_a_clear_error() -> None:
    spec = SparkSubmitSpec(master="local", main_resource="a.jar", deploy_mode="remote")
    with pytest.raises(SparkSubmissionError, match="deployMode: expected CLIENT or CLUSTER"):
        build_submit_argv(spec)


def test_missing_main_resource_is_a_clear_error() -> None:
    with pytest.raises(SparkSubmissionError, match="mainResource"):
        build_submit_argv(SparkSubmitSpec(master="local"))


def test_rest_request_is_cluster_mode_with_file_uris_and_spark_jars() -> None:
    spec = SparkSubmitSpec(master="spark://m:6066", name="daily", main_resource="app.jar",
                           main_class="com.acme.Daily", jars=["hdfs:///dep.jar"],
                           args=["x"], configurations={"spark.executor.memory": "1g"},
                           env={"SPARK_FOO": "1"})
    request = build_rest_request(spec, workdir="/work/task")
    body = request.to_json()
    assert body["action"] == "CreateSubmissionRequest"
    assert body["appResource"] == "file:/work/task/app.jar"
    assert body["mainClass"] == "com.acme.Daily"
    assert body["appArgs"] == ["x"]
    assert body["environmentVariables"] == {"SPARK_FOO": "1"}
    props = body["sparkProperties"]
    assert props["spark.master"] == "spark://m:6066"
    assert props["spark.submit.deployMode"] == "cluster"
    assert props["spark.app.name"] == "daily"
    assert props["spark.jars"] == "file:/work/task/app.jar,hdfs:///dep.jar"
    assert props["spark.executor.memory"] == "1g"
    assert props["spark.driver.extraJavaOptions"] == JAVA17_OPTIONS
    assert "spark.master.rest.enabled" not in props


def test_rest_request_refuses_python_applications_with_the_reason() -> None:
    spec = SparkSubmitSpec(master="spark://m:6066", main_script="main.py")
    with pytest.raises(SparkSubmissionError, match="Python"):
        build_rest_request(spec)


@pytest.mark.parametrize(("master", "url"), [
    ("spark://127.0.0.1:6066", "http://127.0.0.1:6066"),
    ("spark://spark-master", "http://spark-master:6066"),
    ("spark://ilum-core:9888", "http://ilum-core:9888"),
])
def test_rest_base_url_maps_spark_urls_to_http(master: str, url: str) -> None:
    assert rest_base_url(master) == url


@pytest.mark.parametrize("master", ["yarn", "local[2]", "http://m:6066", "k8s://https://k:443",
                                    "spark://a:6066,b:6066"])
def test_rest_base_url_rejects_what_is_not_one_standalone_master(master: str) -> None:
    with pytest.raises(SparkSubmissionError, match="master"):
        rest_base_url(master)


REST_OUTPUT = """\
Running Spark using the REST application submission protocol.
26/11/25 15:13:54 INFO RestSubmissionClient: Submitting a request to launch an application in spark://127.0.0.1:56559.
26/11/25 15:13:55 INFO RestSubmissionClient: Submission successfully created as driver-20261125151355-0009. Polling submission state...
26/11/25 15:13:55 INFO RestSubmissionClient: Server responded with CreateSubmissionResponse:
{
  "action" : "CreateSubmissionResponse",
  "submissionId" : "driver-20261125151355-0009",
  "success" : true
}
"""  # noqa: E501


def test_submission_id_is_read_from_spark_submit_rest_output() -> None:
    assert parse_submission_id(REST_OUTPUT.splitlines()) == "driver-20261125151355-0009"


def test_submission_id_is_read_from_the_json_alone_and_from_the_legacy_gateway() -> None:
    assert parse_submission_id(['  "submissionId" : "driver-1-0002",']) == "driver-1-0002"
    legacy = "26/11/25 INFO ClientEndpoint: Driver successfully submitted as driver-2-0003"
    assert parse_submission_id([legacy]) == "driver-2-0003"


def test_client_mode_output_has_no_submission_id() -> None:
    assert parse_submission_id(["INFO SparkContext: Running Spark version 3.5.5"]) is None


def test_scanner_flags_the_legacy_protocol_hang_signature() -> None:
    scanner = SubmitOutputScanner()
    scanner.feed("WARN TransportChannelHandler: Exception in connection")
    assert not scanner.legacy_protocol_mismatch
    scanner.feed("java.lang.IllegalArgumentException: Too large frame: 5135603447292250196")
    assert scanner.legacy_protocol_mismatch


def test_error_line_is_the_root_cause_of_the_uncaught_exception() -> None:
    tracker = ErrorLineTracker()
    for line in [
        "25/11/25 WARN Utils: Your hostname resolves to a loopback address",
        'Exception in thread "main" java.lang.reflect.InvocationTargetException',
        "\tat java.base/jdk.internal.reflect.NativeMethodAccessorImpl.invoke0(Native Method)",
        "Caused by: java.lang.IllegalStateException: boom",
        "\tat harrier.Job.main(Job.java:9)",
        "25/11/25 INFO ShutdownHookManager: Shutdown hook called",
    ]:
        tracker.feed(line)
    assert tracker.best() == "java.lang.IllegalStateException: boom"


def test_error_line_without_causes_is_the_exception_itself() -> None:
    tracker = ErrorLineTracker()
    tracker.feed('Exception in thread "main" java.lang.ClassNotFoundException: a.B')
    assert tracker.best() == "java.lang.ClassNotFoundException: a.B"
    assert ErrorLineTracker().best() is None


def test_cluster_exception_line_drops_the_prefix_and_stack() -> None:
    message = ("Exception from the cluster:\njava.nio.file.NoSuchFileException: /x.jar\n"
               "\tjava.base/sun.nio.fs.UnixException.translateToIOException(...)")
    assert cluster_exception_line(message) == "java.nio.file.NoSuchFileException: /x.jar"
    assert cluster_exception_line(None) is None
