"""The `harrier` command line: one group, a module per family of commands.

Each command's module is imported only when that command runs, so
`harrier run` does not pay for the API server or the scheduler it does not use."""

from __future__ import annotations

import importlib

import click

# command name -> "module:attribute" of its click command
_COMMANDS = {
    "validate": "harrier.cli.run:validate_command",
    "run": "harrier.cli.run:run_command",
    "worker": "harrier.cli.worker:worker_command",
    "health": "harrier.cli.worker:health_command",
    "scheduler": "harrier.cli.scheduler:scheduler_command",
    "backfill": "harrier.cli.scheduler:backfill_command",
    "api": "harrier.cli.api:api_command",
    "executions": "harrier.cli.executions:executions_group",
    "flows": "harrier.cli.flows:flows_group",
    "kv": "harrier.cli.kv:kv_group",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="harrier")
def main() -> None:
    """Harrier: Kestra-compatible YAML flows on Celery, for Spark pipelines."""
