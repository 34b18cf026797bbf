"""io.kestra.plugin.spark.SparkCLI: spark-submit commands run by the task runner; in cluster
mode against a REST master the task follows the driver to its end (waitForCompletion)."""

from __future__ import annotations

import re
import shlex
from typing import Any

from pydantic import Field

from harrier.common.task import register_task
from harrier.worker.context import TaskContext
from harrier.worker.spark.java_options import JAVA17_OPTIONS, JAVA_OPTION_KEYS
from harrier.worker.tasks.script import ScriptTask
from harrier.worker.tasks.spark_follow import submit_and_follow

# --master spark://h:p or --master=spark://h:p in the rendered commands, maybe quoted.
MASTER_OPTION = re.compile(r"--master(?:\s+|=)['\"]?(spark://[^\s'\",]+)")


def java17_submit_opts() -> str:
    """SPARK_SUBMIT_OPTS making spark-submit's JVM carry the Java 17 options as spark.*
    system properties: SparkConf reads them as defaults, so spark-defaults.conf and --conf
    still win, and spark-submit sends them along with a cluster-mode submission."""
    # spark-class's launcher splits this string itself, honouring double quotes.
    return " ".join(f'-D{key}="{JAVA17_OPTIONS}"' for key in JAVA_OPTION_KEYS)


@register_task("io.kestra.plugin.spark.SparkCLI")
class SparkCLI(ScriptTask):
    commands: list[str] = Field(min_length=1)
    # Kestra's SparkCLI returns once spark-submit exits; in cluster mode that is
    # when the driver is *submitted*. Harrier waits for the driver by default.
    wait_for_completion: bool = Field(True, alias="waitForCompletion")
    # The master's web UI (driver logs come through it); default http://<master host>:8080.
    master_web_url: str | None = Field(None, alias="masterWebUrl")
    java17_options: bool = Field(True, alias="java17Options")

    def script_lines(self, ctx: TaskContext) -> list[str]:
        lines = [str(c) for c in ctx.render(self.commands, "commands", shell=True)]
        if self.java17_options and self.interpreter[0].endswith("sh"):
            lines.insert(0, 'export SPARK_SUBMIT_OPTS="${SPARK_SUBMIT_OPTS:+$SPARK_SUBMIT_OPTS }"'
                         + shlex.quote(java17_submit_opts()))
        return lines

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        web_url = (str(ctx.render(self.master_web_url, "masterWebUrl"))
                   if self.master_web_url else None)
        commands = "\n".join(str(c) for c in ctx.render(self.commands, "commands", shell=True))
        match = MASTER_OPTION.search(commands)
        return submit_and_follow(self, ctx, master=match.group(1) if match else None,
                                 master_web_url=web_url, wait=self.wait_for_completion)
