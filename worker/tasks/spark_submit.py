"""io.kestra.plugin.spark.JarSubmit and PythonSubmit: the Kestra Spark plugin's structured
properties turned into a spark-submit argv (never parsed by a shell) run by the task runner,
or, with `submitter: rest`, a REST submission that needs no JVM on the worker."""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import time
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator

from harrier.common.errors import SparkSubmissionError
from harrier.common.metrics import recorder
from harrier.common.storage import is_uri
from harrier.common.task import register_task
from harrier.worker.context import TaskContext
from harrier.worker.execution_files import copy_stored_file
from harrier.worker.spark.rest import SparkRestClient
from harrier.worker.spark.submit_args import (
    SparkSubmitSpec,
    build_rest_request,
    build_submit_argv,
    deploy_mode,
)
from harrier.worker.tasks.script import ScriptTask
from harrier.worker.tasks.spark_follow import (
    Submission,
    follow_submission,
    reattach,
    remaining_timeout,
    submit_and_follow,
    submitted_outputs,
)

FileList = dict[str, str] | list[str]
PYTHON_SCRIPT_NAME = "main.py"


class SparkSubmitTask(ScriptTask):
    """The properties JarSubmit and PythonSubmit share (Kestra's AbstractSubmit), plus
    Harrier's submitter, waitForCompletion, masterWebUrl and java17Options."""

    shell_properties = frozenset({"beforeCommands"})

    master: str
    name: str | None = None
    args: list[str] = Field(default_factory=list)
    app_files: FileList | None = Field(None, alias="appFiles")
    verbose: bool = False
    configurations: dict[str, str] = Field(default_factory=dict)
    deploy_mode: str = Field("CLIENT", alias="deployMode")
    spark_submit_path: str = Field("spark-submit", alias="sparkSubmitPath")
    submitter: Literal["cli", "rest"] = "cli"
    wait_for_completion: bool = Field(True, alias="waitForCompletion")
    master_web_url: str | None = Field(None, alias="masterWebUrl")
    java17_options: bool = Field(True, alias="java17Options")

    @field_validator("deploy_mode")
    @classmethod
    def _deploy_mode(cls, value: str) -> str:
        if value.upper() not in ("CLIENT", "CLUSTER"):
            raise ValueError(f"expected CLIENT or CLUSTER, found {value!r}")
        return value.upper()

    def application_properties(self, ctx: TaskContext) -> dict[str, Any]:
        """The rendered properties only the subclass knows (mainResource, mainScript ...)."""
        raise NotImplementedError

    def submit_spec(self, ctx: TaskContext) -> SparkSubmitSpec:
        """Rendered properties as a spec; file maps copied into the working directory."""
        props: dict[str, Any] = {
            "master": ctx.render(self.master, "master"),
            "name": ctx.render(self.name, "name") if self.name else None,
            "args": [str(a) for a in ctx.render(self.args, "args")],
            "appFiles": materialize(ctx, self.app_files, "appFiles"),
            "verbose": self.verbose,
            "configurations": ctx.render(self.configurations, "configurations"),
            "deployMode": self.deploy_mode,
            "sparkSubmitPath": ctx.render(self.spark_submit_path, "sparkSubmitPath"),
            "env": ctx.render(self.env, "env"),
            "java17Options": self.java17_options,
            **self.application_properties(ctx),
        }
        return SparkSubmitSpec.from_properties(props)

    def script_lines(self, ctx: TaskContext) -> list[str]:
        # One argv, quoted item by item: rendered values can never become shell syntax.
        return [shlex.join(build_submit_argv(self.submit_spec(ctx)))]

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        spec = self.submit_spec(ctx)
        web_url = (str(ctx.render(self.master_web_url, "masterWebUrl"))
                   if self.master_web_url else None)
        if self.submitter == "rest":
            return self.run_rest(ctx, spec, web_url)
        master = spec.master if deploy_mode(spec) == "CLUSTER" else None
        return submit_and_follow(self, ctx, master=master, master_web_url=web_url,
                                 wait=self.wait_for_completion)

    def run_rest(self, ctx: TaskContext, spec: SparkSubmitSpec,
                 web_url: str | None) -> dict[str, Any]:
        started = time.monotonic()
        timeout = remaining_timeout(self.timeout, started)
        resumed = reattach(ctx) if self.wait_for_completion else None
        if resumed is not None:
            return follow_submission(ctx, resumed, timeout=timeout)
        if deploy_mode(spec) == "CLIENT":
            ctx.log("INFO", "submitter: rest always runs the driver on the cluster "
                    "(deployMode CLUSTER)")
        if "kestra:///" in json.dumps(dataclasses.asdict(spec), default=str):
            raise SparkSubmissionError(
                "submitter: rest sends paths to the cluster, which cannot read Harrier's "
                "storage: pass kestra:// files with submitter: cli (they become local "
                "files of spark-submit), or give the job s3a://, hdfs:// or https:// URIs",
                retryable=False)
        request = build_rest_request(spec, workdir=ctx.workdir)
        with SparkRestClient(spec.master, master_web_url=web_url) as client:
            submitting = time.monotonic()
            submission_id = client.create(request)
            recorder().spark_submitted("rest", time.monotonic() - submitting)
        submission = Submission(submission_id, spec.master, web_url)
        ctx.log("INFO", f"submitted driver {submission_id} to {spec.master} over REST")
        if not self.wait_for_completion:
            return submitted_outputs(submission)
        ctx.checkpoint(submission.to_checkpoint())
        return follow_submission(ctx, submission,
                                 timeout=remaining_timeout(self.timeout, started))


@register_task("io.kestra.plugin.spark.JarSubmit")
class JarSubmit(SparkSubmitTask):
    main_resource: str = Field(alias="mainResource")
    main_class: str = Field(alias="mainClass")
    jars: FileList | None = None

    def application_properties(self, ctx: TaskContext) -> dict[str, Any]:
        return {"mainResource": ctx.render(self.main_resource, "mainResource"),
                "mainClass": ctx.render(self.main_class, "mainClass"),
                "jars": materialize(ctx, self.jars, "jars")}


@register_task("io.kestra.plugin.spark.PythonSubmit")
class PythonSubmit(SparkSubmitTask):
    main_script: str = Field(alias="mainScript")  # the script's content, as in Kestra
    python_files: FileList | None = Field(None, alias="pythonFiles")

    def application_properties(self, ctx: TaskContext) -> dict[str, Any]:
        script = ctx.workdir / PYTHON_SCRIPT_NAME
        script.parent.mkdir(parents=True, exist_ok=True)
        # Python source: values land as literals or escaped text, never as code.
        source = ctx.render(self.main_script, "mainScript", python=True)
        script.write_text(str(source), encoding="utf-8")
        # Relative to the working directory, which is the runner's cwd (also in a container).
        return {"mainScript": PYTHON_SCRIPT_NAME,
                "pythonFiles": materialize(ctx, self.python_files, "pythonFiles")}


def materialize(ctx: TaskContext, files: FileList | None, field: str) -> list[str]:
    """Kestra's `{fileName: uri}` maps become files of that name in the working directory when
    the uri is a kestra:// URI, a local path or file: URI, and stay URIs (s3a://, hdfs://,
    https://) otherwise. Lists are paths or URIs usable where spark-submit runs; a kestra://
    URI in them (or in mainResource, args) becomes a local copy when the command is built."""
    if files is None:
        return []
    rendered = ctx.render(files, field)
    if isinstance(rendered, list):
        return [str(item) for item in rendered]
    result = []
    for name, source in rendered.items():
        parts = urlsplit(str(source))
        if is_uri(str(source)):  # a file of Harrier's storage (an outputFiles value)
            if Path(str(name)).is_absolute() or ".." in Path(str(name)).parts:
                raise SparkSubmissionError(f"{field}: file name {name!r} must stay inside the "
                                           "working directory", retryable=False)
            copy_stored_file(ctx, str(source), ctx.workdir / str(name), f"{field}.{name}")
            result.append(str(name))
            continue
        if parts.scheme not in ("", "file"):
            result.append(str(source))
            continue
        origin = Path(unquote(parts.path) if parts.scheme == "file" else str(source))
        if Path(str(name)).is_absolute() or ".." in Path(str(name)).parts:
            raise SparkSubmissionError(f"{field}: file name {name!r} must stay inside the "
                                       "working directory", retryable=False)
        if not origin.is_file():
            raise SparkSubmissionError(f"{field}.{name}: no file at {origin}", retryable=False)
        target = ctx.workdir / str(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(origin, target)
        result.append(str(name))
    return result
