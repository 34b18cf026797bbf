"""`harrier validate` and `harrier run`: check flows, and run one to the end
with live logs (embedded when no broker is configured)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from harrier.cli.output import log_line, print_json, summary
from harrier.common.celery_app import configure_app
from harrier.common.errors import FlowValidationError, HarrierError, InputError
from harrier.common.execution import Execution, new_id
from harrier.common.flow import Flow, load_flow_file
from harrier.common.inputs import InputType, coerce_inputs
from harrier.common.settings import Settings
from harrier.common.storage import input_file_path, is_uri, storage_for
from harrier.common.store import ExecutionStore
from harrier.scheduler.executions import create_execution, start_execution

EXIT_OK, EXIT_FAILED = 0, 1


@click.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def validate_command(files: tuple[Path, ...], as_json: bool) -> None:
    """Validate flow files; exit 1 if any is invalid."""
    results: list[dict[str, Any]] = []
    for path in _expand(files):
        try:
            flow = load_flow_file(path)
            results.append({"file": str(path), "valid": True, "namespace": flow.namespace,
                            "id": flow.id, "tasks": sum(1 for _ in flow.all_tasks())})
        except FlowValidationError as exc:
            results.append({"file": str(path), "valid": False,
                            "problems": [str(p) for p in exc.problems]})
    if as_json:
        print_json(results)
    else:
        for result in results:
            if result["valid"]:
                click.echo(f"{click.style('ok', fg='green')}  {result['file']} "
                           f"({result['namespace']}.{result['id']}, {result['tasks']} tasks)")
            else:
                click.echo(f"{click.style('invalid', fg='red')}  {result['file']}")
                for problem in result["problems"]:
                    click.echo(f"  {problem}")
    sys.exit(EXIT_OK if all(r["valid"] for r in results) else EXIT_FAILED)


def _expand(paths: tuple[Path, ...]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted([*path.glob("*.yaml"), *path.glob("*.yml")]))
        else:
            found.append(path)
    return found


def parse_input_options(pairs: tuple[str, ...], inputs_file: Path | None) -> dict[str, Any]:
    given: dict[str, Any] = {}
    if inputs_file is not None:
        try:
            data = json.loads(inputs_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise click.BadParameter(f"{inputs_file}: {exc}", param_hint="--inputs-file"
                                     ) from None
        if not isinstance(data, dict):
            raise click.BadParameter(f"{inputs_file}: expected a JSON object of input values",
                                     param_hint="--inputs-file")
        given.update(data)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: expected key=value", param_hint="--input")
        given[key.strip()] = value
    return given


@click.command("run")
@click.argument("flow_file", type=click.Path(path_type=Path))
@click.option("--input", "-i", "inputs", multiple=True, metavar="KEY=VALUE",
              help="An input value (repeatable).")
@click.option("--inputs-file", type=click.Path(path_type=Path),
              help="A JSON object of input values.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Execution label.")
@click.option("--json", "as_json", is_flag=True, help="Print the final execution as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="Do not print live logs.")
@click.option("--timeout", type=float, default=None, help="Give up waiting after N seconds.")
def run_command(flow_file: Path, inputs: tuple[str, ...], inputs_file: Path | None,
                labels: tuple[str, ...], as_json: bool, quiet: bool,
                timeout: float | None) -> None:
    """Run a flow to the end and print its logs and a summary.

    With no HARRIER_BROKER_URL this runs embedded: an in-process Celery worker
    on the in-memory transport, no Redis or cluster needed.
    """
    try:
        settings = Settings.from_env()
        flow = load_flow_file(flow_file)
        given = parse_input_options(inputs, inputs_file)
        label_map = dict(parse_input_options(labels, None))

        coerce_inputs(flow.inputs, given)  # fail before starting anything
    except (FlowValidationError, InputError) as exc:
        click.echo(click.style("error: ", fg="red", bold=True) + str(exc), err=True)
        sys.exit(EXIT_FAILED)
    except HarrierError as exc:
        click.echo(click.style("error: ", fg="red", bold=True) + str(exc), err=True)
        sys.exit(EXIT_FAILED)
    execution = run_flow(settings, flow, given, label_map, live=not (quiet or as_json),
                         timeout=timeout)
    if as_json:
        print_json(execution.to_json())
    else:
        click.echo(summary(execution))
    sys.exit(EXIT_OK if execution.state.current.value in ("SUCCESS", "WARNING") else EXIT_FAILED)


def store_local_files(settings: Settings, flow: Flow, execution_id: str,
                      given: dict[str, Any]) -> dict[str, Any]:
    """A FILE input given as a path of this machine is uploaded into storage, as
    the API stores a multipart file (the caller of the CLI owns the file)."""
    values = dict(given)
    storage = storage_for(settings.storage_root)
    for spec in flow.inputs:
        value = values.get(spec.id)
        if spec.type == InputType.FILE and isinstance(value, str) and not is_uri(value) \
                and "://" not in value and Path(value).is_file():
            values[spec.id] = storage.put_file(input_file_path(
                flow.namespace, flow.id, execution_id, spec.id, Path(value).name), Path(value))
    return values


def run_flow(settings: Settings, flow: Flow, given: dict[str, Any], labels: dict[str, str],
             *, live: bool, timeout: float | None) -> Execution:
    execution_id = new_id()
    given = store_local_files(settings, flow, execution_id, given)
    if settings.embedded:
        # lazy: each mode imports only what it runs (the worker, or the Redis client)
        from harrier.worker.embedded import EmbeddedRuntime

        queues = sorted({t.worker_group.key for t in flow.all_tasks() if t.worker_group}
                        | {"default"})
        with EmbeddedRuntime(settings, queues=queues) as runtime:
            execution = create_execution(runtime.store, flow, given, labels=labels,
                                         trigger={"type": "cli"}, deploy=False,
                                         execution_id=execution_id)
            start_execution(runtime.app, flow, execution, store=runtime.store)
            return follow(runtime.store, execution.id, live=live, timeout=timeout)
    from harrier.common.redis_store import RedisStore  # lazy: see above

    store = RedisStore.from_settings(settings)
    app = configure_app(settings)
    # A one-off run: the file's source stays with the execution; the stored flow
    # (what the scheduler runs and arms) is not replaced.
    execution = create_execution(store, flow, given, labels=labels, trigger={"type": "cli"},
                                 deploy=False, execution_id=execution_id)
    start_execution(app, flow, execution, store=store)
    return follow(store, execution.id, live=live, timeout=timeout)


def follow(store: ExecutionStore, execution_id: str, *, live: bool,
           timeout: float | None) -> Execution:
    """Print log lines as they arrive until the execution ends; return it."""
    deadline = None if timeout is None else time.monotonic() + timeout
    after: str | None = None
    width = 0
    while True:
        entries = store.read_logs(execution_id, after, block=0.1)
        for entry in entries:
            after = entry.id
            if live:
                width = max(width, len(entry.task_id or "execution"))
                click.echo(log_line(entry, width))
        if not entries:
            state = store.execution_state(execution_id)
            if state.terminated:
                # Drain what arrived between the last read and the end.
                for entry in store.read_logs(execution_id, after):
                    if live:
                        click.echo(log_line(entry, width))
                return store.get_execution(execution_id)
        if deadline is not None and time.monotonic() > deadline:
            click.echo(click.style(f"gave up waiting after {timeout} s; the execution "
                                   f"{execution_id} goes on", fg="yellow"), err=True)
            return store.get_execution(execution_id)
