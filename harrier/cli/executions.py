"""`harrier executions list|show|logs|kill|restart|resume`: operate on executions in
the Redis store directly (HARRIER_STORE_URL or a redis:// HARRIER_BROKER_URL),
without going through the HTTP API."""

from __future__ import annotations

from pathlib import Path

import click

from harrier.cli.output import duration_text, log_line, print_json, state_text, summary, table
from harrier.cli.run import follow as follow_logs
from harrier.cli.run import parse_input_options
from harrier.common.celery_app import configure_app
from harrier.common.errors import HarrierError
from harrier.common.redis_store import RedisStore
from harrier.common.settings import Settings
from harrier.common.state import State, iso
from harrier.common.store import ExecutionQuery, ExecutionStore
from harrier.scheduler.control import kill_execution, restart_execution, resume_execution


def connect() -> tuple[Settings, ExecutionStore]:
    """The distributed store these commands read and change."""

    settings = Settings.from_env()
    if not settings.effective_store_url:
        raise click.UsageError("this command reads the Redis store: set HARRIER_STORE_URL or "
                               "a redis:// HARRIER_BROKER_URL (embedded runs keep nothing)")
    return settings, RedisStore.from_settings(settings)


class _Group(click.Group):
    """Turn Harrier's errors (not found, store down, conflicts) into one clear line."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except HarrierError as exc:
            raise click.ClickException(str(exc)) from None


@click.group("executions", cls=_Group)
def executions_group() -> None:
    """List, inspect, follow, kill, restart and resume executions (reads the Redis store)."""


@executions_group.command("list")
@click.option("--namespace", "-n", default=None, help="Only this namespace.")
@click.option("--flow", "-f", "flow_id", default=None, help="Only this flow id.")
@click.option("--state", "-s", "states", multiple=True,
              type=click.Choice([s.value for s in State], case_sensitive=False),
              help="Only these states (repeatable).")
@click.option("--limit", type=click.IntRange(1, 10000), default=25, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print {results, total} as JSON.")
def list_command(namespace: str | None, flow_id: str | None, states: tuple[str, ...],
                 limit: int, as_json: bool) -> None:
    """The most recent executions first."""
    _, store = connect()
    found, total = store.search_executions(ExecutionQuery(
        namespace=namespace, flow_id=flow_id, states=tuple(State(s.upper()) for s in states),
        limit=limit))
    if as_json:
        print_json({"results": [e.to_json() for e in found], "total": total})
        return
    rows = [[e.id, f"{e.namespace}.{e.flow_id}", state_text(e.state.current),
             iso(e.start_date), duration_text(e.state.duration_seconds())] for e in found]
    click.echo(table(["id", "flow", "state", "started", "duration"], rows))
    if total > len(found):
        click.echo(f"({len(found)} of {total}; use --limit for more)")


@executions_group.command("show")
@click.argument("execution_id")
@click.option("--json", "as_json", is_flag=True, help="Print the execution as Kestra's JSON.")
def show_command(execution_id: str, as_json: bool) -> None:
    """An execution's state, inputs and task runs."""
    _, store = connect()
    execution = store.get_execution(execution_id)
    if as_json:
        print_json(execution.to_json())
        return
    click.echo(summary(execution))
    if execution.inputs:
        click.echo("inputs: " + ", ".join(f"{k}={v}"
                                          for k, v in execution.shown_inputs().items()))
    if execution.labels:
        click.echo("labels: " + ", ".join(f"{k}:{v}" for k, v in execution.labels.items()))


@executions_group.command("logs")
@click.argument("execution_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the execution ends.")
def logs_command(execution_id: str, follow: bool) -> None:
    """An execution's log lines, prefixed by task id."""

    _, store = connect()
    store.execution_state(execution_id)  # unknown id: a clear error, not silence
    if follow:
        follow_logs(store, execution_id, live=True, timeout=None)
        return
    entries = store.read_logs(execution_id, limit=100_000)
    width = max((len(e.task_id or "execution") for e in entries), default=0)
    for entry in entries:
        click.echo(log_line(entry, width))


@executions_group.command("resume")
@click.argument("execution_id")
@click.option("--input", "-i", "inputs", multiple=True, metavar="KEY=VALUE",
              help="An onResume input of the Pause (repeatable).")
@click.option("--inputs-file", type=click.Path(path_type=Path),
              help="A JSON object of onResume inputs.")
def resume_command(execution_id: str, inputs: tuple[str, ...],
                   inputs_file: Path | None) -> None:
    """Resume a PAUSED execution: its Pause tasks end with these inputs."""
    settings, store = connect()
    given = parse_input_options(inputs, inputs_file)
    execution = resume_execution(store, configure_app(settings), execution_id, given,
                                 settings=settings)
    click.echo(f"{execution_id}: {state_text(execution.state.current)}")


@executions_group.command("kill")
@click.argument("execution_id")
def kill_command(execution_id: str) -> None:
    """Kill an execution: KILLING, then KILLED once its running tasks stop."""
    settings, store = connect()
    execution = kill_execution(store, execution_id, app=configure_app(settings),
                               settings=settings)
    click.echo(f"{execution_id}: {state_text(execution.state.current)}")


@executions_group.command("restart")
@click.argument("execution_id")
def restart_command(execution_id: str) -> None:
    """Re-run a FAILED or KILLED execution from its failed tasks (needs a broker)."""
    settings, store = connect()
    if settings.embedded:
        raise click.UsageError("restart sends tasks to workers: set HARRIER_BROKER_URL")
    execution = restart_execution(store, configure_app(settings), execution_id,
                                  settings=settings)
    click.echo(f"{execution_id}: {state_text(execution.state.current)}")
