"""Turning the Kestra Spark plugin's properties (master, name, args, appFiles, configurations,
deployMode, mainResource, mainClass, jars, mainScript, pythonFiles ...) into a spark-submit
argv (no shell) or a REST SubmissionRequest."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from harrier.common.errors import SparkSubmissionError
from harrier.worker.spark.java_options import with_java17_options
from harrier.worker.spark.rest import CLIENT_SPARK_VERSION, SubmissionRequest

DEPLOY_MODES = ("CLIENT", "CLUSTER")
REST_ENABLED_KEY = "spark.master.rest.enabled"


@dataclass
class SparkSubmitSpec:
    """One submission. File lists hold paths or URIs already present where spark-submit runs
    (the task materializes Kestra's name -> storage URI maps into its working directory)."""

    master: str
    name: str | None = None
    args: list[str] = field(default_factory=list)
    app_files: list[str] = field(default_factory=list)  # appFiles -> --files
    verbose: bool = False
    configurations: dict[str, str] = field(default_factory=dict)  # -> --conf k=v
    deploy_mode: str = "CLIENT"
    spark_submit_path: str = "spark-submit"
    main_resource: str | None = None  # JarSubmit: the application jar
    main_class: str | None = None
    jars: list[str] = field(default_factory=list)  # -> --jars
    main_script: str | None = None  # PythonSubmit: path of the script file
    python_files: list[str] = field(default_factory=list)  # -> --py-files
    env: dict[str, str] = field(default_factory=dict)
    java17_options: bool = True  # add JAVA17_OPTIONS unless configurations set them

    @classmethod
    def from_properties(cls, props: Mapping[str, Any]) -> SparkSubmitSpec:
        """From rendered task properties with the plugin's names. Map-valued file properties
        (Kestra's `{fileName: uri}`) contribute their file names."""

        def names(value: Any) -> list[str]:
            if value is None:
                return []
            if isinstance(value, Mapping):
                return [str(k) for k in value]
            return [str(v) for v in value]

        return cls(
            master=str(props["master"]),
            name=props.get("name"),
            args=[str(a) for a in props.get("args") or []],
            app_files=names(props.get("appFiles")),
            verbose=bool(props.get("verbose", False)),
            configurations={str(k): str(v)
                            for k, v in (props.get("configurations") or {}).items()},
            deploy_mode=str(props.get("deployMode") or "CLIENT"),
            spark_submit_path=str(props.get("sparkSubmitPath") or "spark-submit"),
            main_resource=props.get("mainResource"),
            main_class=props.get("mainClass"),
            jars=names(props.get("jars")),
            main_script=props.get("mainScript"),
            python_files=names(props.get("pythonFiles")),
            env={str(k): str(v) for k, v in (props.get("env") or {}).items()},
            java17_options=bool(props.get("java17Options", True)),
        )


def deploy_mode(spec: SparkSubmitSpec) -> str:
    mode = spec.deploy_mode.upper()
    if mode not in DEPLOY_MODES:
        raise SparkSubmissionError(
            f"deployMode: expected CLIENT or CLUSTER, found {spec.deploy_mode!r}",
            retryable=False)
    return mode


def effective_configurations(spec: SparkSubmitSpec) -> dict[str, str]:
    """The user's configurations plus Harrier's defaults (Java 17 options, REST gateway)."""
    conf = dict(spec.configurations)
    if spec.java17_options:
        conf = with_java17_options(conf)
    if deploy_mode(spec) == "CLUSTER" and urlsplit(spec.master).scheme == "spark":
        # Without it spark-submit speaks the legacy protocol to a REST port and hangs; with it
        # spark-submit falls back to the legacy gateway by itself on a non-REST master.
        conf.setdefault(REST_ENABLED_KEY, "true")
    return conf


def main_resource(spec: SparkSubmitSpec) -> str:
    if spec.main_script and spec.main_resource:
        raise SparkSubmissionError("give mainResource (a jar) or mainScript (Python), not both",
                                   retryable=False)
    resource = spec.main_script or spec.main_resource
    if not resource:
        raise SparkSubmissionError("mainResource (JarSubmit) or mainScript (PythonSubmit) is "
                                   "required", retryable=False)
    return resource


def build_submit_argv(spec: SparkSubmitSpec) -> list[str]:
    """spark-submit's argv, in spark-submit's own option order. Every value is one argv item,
    so nothing in it is ever interpreted by a shell."""
    argv = [spec.spark_submit_path, "--master", spec.master,
            "--deploy-mode", deploy_mode(spec).lower()]
    if spec.name:
        argv += ["--name", spec.name]
    for key, value in effective_configurations(spec).items():
        argv += ["--conf", f"{key}={value}"]
    if spec.main_class:
        argv += ["--class", spec.main_class]
    if spec.jars:
        argv += ["--jars", ",".join(spec.jars)]
    if spec.app_files:
        argv += ["--files", ",".join(spec.app_files)]
    if spec.python_files:
        argv += ["--py-files", ",".join(spec.python_files)]
    if spec.verbose:
        argv.append("--verbose")
    argv.append(main_resource(spec))
    argv += spec.args
    return argv


def to_uri(path_or_uri: str, workdir: str | os.PathLike[str] | None = None) -> str:
    """A URI the worker can fetch: URIs unchanged, local paths made absolute file: URIs."""
    if urlsplit(path_or_uri).scheme not in ("", "file") or path_or_uri.startswith("file:"):
        return path_or_uri
    path = os.path.join(os.fspath(workdir), path_or_uri) if workdir else path_or_uri
    return "file:" + os.path.abspath(path)


def build_rest_request(spec: SparkSubmitSpec, *,
                       workdir: str | os.PathLike[str] | None = None,
                       client_spark_version: str = CLIENT_SPARK_VERSION) -> SubmissionRequest:
    """The REST CreateSubmissionRequest for a JarSubmit (always cluster mode: the driver runs
    on a worker, so local paths must exist there too, e.g. on a shared volume)."""
    if spec.main_script:
        raise SparkSubmissionError(
            "submitter: rest cannot run a Python application: Spark standalone runs Python "
            "drivers in client mode only; use the spark-submit submitter with "
            "deployMode: CLIENT", retryable=False)
    if not spec.main_class:
        raise SparkSubmissionError("mainClass is required for a REST submission",
                                   retryable=False)
    resource = to_uri(main_resource(spec), workdir)
    conf = effective_configurations(spec)
    conf.pop(REST_ENABLED_KEY, None)  # a spark-submit client setting, meaningless here
    # The master rewrites its REST port in spark.master to its RPC port for the driver.
    conf["spark.master"] = spec.master
    conf["spark.submit.deployMode"] = "cluster"
    conf.setdefault("spark.app.name", spec.name or spec.main_class)
    conf.setdefault("spark.driver.supervise", "false")
    conf["spark.jars"] = ",".join([resource, *(to_uri(j, workdir) for j in spec.jars)])
    if spec.app_files:
        conf["spark.files"] = ",".join(to_uri(f, workdir) for f in spec.app_files)
    return SubmissionRequest(
        app_resource=resource,
        main_class=spec.main_class,
        app_args=list(spec.args),
        spark_properties=conf,
        environment_variables=dict(spec.env),
        client_spark_version=client_spark_version,
    )
