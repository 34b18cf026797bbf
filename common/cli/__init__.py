"""The `harrier` command line: one group, a module per family of commands."""

from __future__ import annotations

import click

from common.cli.api import api_command
from common.cli.executions import executions_group
from common.cli.flows import flows_group
from common.cli.run import run_command, validate_command
from common.cli.scheduler import backfill_command, scheduler_command
from common.cli.worker import health_command, worker_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="harrier")
def main() -> None:
    """Harrier: Kestra-compatible YAML flows on Celery, for Spark pipelines."""


main.add_command(validate_command)
main.add_command(run_command)
main.add_command(worker_command)
main.add_command(health_command)
main.add_command(scheduler_command)
main.add_command(backfill_command)
main.add_command(api_command)
main.add_command(executions_group)
main.add_command(flows_group)
