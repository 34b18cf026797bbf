"""`harrier validate` and `harrier run`: check flows, and run one to the end
with live logs (embedded when no broker is configured)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from harrier.cli.output import (
    duration_text,
    log_line,
    print_json,
    state_text,
    summary,
    table,
)
from harrier.common.celery_app import configure_app
from harrier.common.errors import (
    ExecutionNotFound,
    FlowValidationError,
    HarrierError,
    InputError,
)
from harrier.common.execution import Execution, LogEntry, new_id
from harrier.common.flow import Flow, load_flow_file
from harrier.common.inputs import InputType, coerce_inputs
from harrier.common.memory_store import MemoryStore
from harrier.common.settings import Settings
from harrier.common.storage import input_file_path, is_uri, storage_for
from harrier.common.store import ExecutionStore
from harrier.scheduler.executions import create_execution, start_execution
from harrier.worker.loop_runs import iteration_id

if TYPE_CHECKING:
    from harrier.scheduler.embedded_triggers import TriggeredExecution

EXIT_OK, EXIT_FAILED = 0, 1
# Flows triggering each other forever would keep `harrier run` going: stop there.
DEFAULT_MAX_TRIGGERED = 100


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
@click.option("--flows-dir", type=click.Path(path_type=Path, file_okay=False, exists=True),
              default=None, metavar="DIR",
              help="Embedded: when an execution ends, fire the Flow triggers of the flows "
              "in DIR and run what they start, to the end of the chain.")
@click.option("--max-triggered", type=click.IntRange(min=0), default=DEFAULT_MAX_TRIGGERED,
              show_default=True, metavar="N", help="With --flows-dir: start at most N triggered "
              "executions (flows triggering each other in a loop).")
def run_command(flow_file: Path, inputs: tuple[str, ...], inputs_file: Path | None,
                labels: tuple[str, ...], as_json: bool, quiet: bool,
                timeout: float | None, flows_dir: Path | None, max_triggered: int) -> None:
    """Run a flow to the end and print its logs and a summary.

    With no HARRIER_BROKER_URL this runs embedded: an in-process Celery worker
    on the in-memory transport, no Redis or cluster needed. With --flows-dir,
    the flows there that a Flow trigger starts after it run too; the exit code
    is the flow's own (0: SUCCESS or WARNING), 1 also when --max-triggered cut
    the chain.
    """
    try:
        settings = Settings.from_env()
        if flows_dir is not None and not settings.embedded:
            raise click.UsageError("--flows-dir is for embedded mode (no HARRIER_BROKER_URL); "
                                   "with a broker, `harrier scheduler` fires Flow triggers "
                                   "of the flows in its HARRIER_FLOWS_DIR")
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
    if flows_dir is not None:
        chain = run_chain(settings, flow, given, label_map, flows_dir,
                          max_triggered=max_triggered, live=not (quiet or as_json),
                          timeout=timeout)
        execution = chain.execution
    else:
        execution = run_flow(settings, flow, given, label_map, live=not (quiet or as_json),
                             timeout=timeout)
    if as_json:
        data = execution.to_json()
        if flows_dir is not None:
            data["triggeredExecutions"] = [
                {"id": e.id, "namespace": e.namespace, "flowId": e.flow_id,
                 "state": e.state.current.value, "triggerId": t.trigger_id,
                 "upstreamExecutionId": t.upstream_id}
                for t, e in chain.triggered]
            if chain.refused:
                data["triggerBoundReached"] = chain.refused
        print_json(data)
    else:
        click.echo(summary(execution))
        if flows_dir is not None:
            click.echo(chain_summary(chain))
    if flows_dir is not None and chain.refused:
        click.echo(click.style("error: ", fg="red", bold=True) + chain.refused, err=True)
        sys.exit(EXIT_FAILED)
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


@dataclass
class Chain:
    """The execution `harrier run` started and those Flow triggers started after it."""

    execution: Execution
    triggered: list[tuple[TriggeredExecution, Execution]] = field(default_factory=list)
    refused: str | None = None  # the bound on triggered executions stopped the chain


def run_chain(settings: Settings, flow: Flow, given: dict[str, Any], labels: dict[str, str],
              flows_dir: Path, *, max_triggered: int, live: bool,
              timeout: float | None) -> Chain:
    """Run a flow embedded with the Flow triggers of `flows_dir` armed; follow
    every execution they start (and those these start) to the end."""
    # lazy: start-up time; a plain `harrier run` loads neither the worker nor the
    # scheduler's Flow trigger modules (and the Redis client they import)
    from harrier.scheduler.embedded_triggers import EmbeddedFlowTriggers  # lazy: see above
    from harrier.scheduler.flow_catalog import FlowCatalog, MemoryOrigins  # lazy: see above
    from harrier.worker.embedded import EmbeddedRuntime  # lazy: see above

    deadline = None if timeout is None else time.monotonic() + timeout

    def left() -> float | None:
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    store = MemoryStore()
    catalog = FlowCatalog(flows_dir, store, origins=MemoryOrigins())
    catalog.refresh()  # loads (and reports) every flow file once
    flows = [flow, *(f for f, _ in catalog.flow_triggers())]
    queues = sorted({t.worker_group.key for f in flows for t in f.all_tasks()
                     if t.worker_group} | {"default"})
    execution_id = new_id()
    given = store_local_files(settings, flow, execution_id, given)
    with EmbeddedRuntime(settings, queues=queues, store=store) as runtime, \
            EmbeddedFlowTriggers(catalog, store, runtime.app, max_triggered=max_triggered,
                                 secrets=settings.secrets) as triggers:
        execution = create_execution(store, flow, given, labels=labels,
                                     trigger={"type": "cli"}, deploy=False,
                                     execution_id=execution_id)
        start_execution(runtime.app, flow, execution, store=store)
        chain = Chain(follow(store, execution.id, live=live, timeout=left()))
        while deadline is None or time.monotonic() < deadline:
            if not triggers.wait_idle(left()):
                break
            started = triggers.triggered()[len(chain.triggered):]
            if not started:
                break
            for fired in started:
                if live:
                    click.echo(click.style(
                        f"--- {fired.namespace}.{fired.flow_id} execution {fired.id}: "
                        f"trigger {fired.trigger_id} after {fired.upstream_flow} "
                        f"{fired.upstream_state}", bold=True))
                chain.triggered.append(
                    (fired, follow(store, fired.id, live=live, timeout=left())))
        chain.refused = triggers.refused
        return chain


def chain_summary(chain: Chain) -> str:
    if not chain.triggered:
        return "Flow triggers: no execution triggered"
    rows = [[f"{e.namespace}.{e.flow_id}", e.id, state_text(e.state.current),
             f"{t.trigger_id} after {t.upstream_flow} {t.upstream_state}",
             duration_text(e.state.duration_seconds())] for t, e in chain.triggered]
    return "Triggered executions:\n" + table(
        ["flow", "execution", "state", "trigger", "duration"], rows)


def follow(store: ExecutionStore, execution_id: str, *, live: bool,
           timeout: float | None) -> Execution:
    """Print log lines as they arrive until the execution ends; return it.
    The logs of its Loop iterations and Subflow children (executions of their
    own) are printed too, in time order, each line led by the iteration or
    Subflow task (`[days#2 aggregate]`, `[ingest load]`)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    after: str | None = None
    width = 0
    iterations = _IterationLogs(store, execution_id) if live else None

    def show(entries: list[LogEntry], final: bool = False) -> None:
        nonlocal width
        if iterations is not None:
            entries = sorted([*entries, *iterations.new_entries(final=final)],
                             key=lambda e: e.timestamp)
        for entry in entries:
            width = max(width, len(entry.task_id or "execution"))
            click.echo(log_line(entry, width))

    while True:
        entries = store.read_logs(execution_id, after, block=0.1)
        if entries:
            after = entries[-1].id
        if live:
            show(entries)
        if not entries:
            state = store.execution_state(execution_id)
            if state.terminated:
                # Drain what arrived between the last read and the end.
                rest = store.read_logs(execution_id, after)
                if live:
                    show(rest, final=True)
                return store.get_execution(execution_id)
        if deadline is not None and time.monotonic() > deadline:
            click.echo(click.style(f"gave up waiting after {timeout} s; the execution "
                                   f"{execution_id} goes on", fg="yellow"), err=True)
            return store.get_execution(execution_id)


class _IterationLogs:
    """The log lines of an execution's Loop iterations and Subflow children,
    read as they come.
    In embedded mode nothing is kept after `harrier run`: this is the only
    place a person sees what an iteration's tasks said."""

    def __init__(self, store: ExecutionStore, execution_id: str) -> None:
        self._store = store
        self._execution_id = execution_id
        self._known: set[str] = set()  # Loop runs whose iterations are followed
        self._cursors: dict[str, str | None] = {}  # iteration id -> last log read
        self._labels: dict[str, str] = {}
        self._done: set[str] = set()
        self._next_poll = 0.0  # monotonic
        self._none: bool | None = None  # the flow starts no execution: nothing to follow

    def new_entries(self, *, final: bool = False) -> list[LogEntry]:
        """The iterations' log lines not shown yet, their task ids led by the
        iteration."""
        found: list[LogEntry] = []
        if self._none is None:
            self._none = not self._may_have_children()
        if self._none or (not final and time.monotonic() < self._next_poll):
            return found
        self._discover(self._execution_id, "")
        for child_id in list(self._cursors):
            if child_id in self._done:
                continue
            self._discover(child_id, self._labels[child_id])  # nested Loops
            try:
                ended = self._store.execution_state(child_id).terminated
            except ExecutionNotFound:
                continue
            for entry in self._store.read_logs(child_id, self._cursors[child_id]):
                self._cursors[child_id] = entry.id
                found.append(replace(
                    entry, task_id=f"{self._labels[child_id]} {entry.task_id or 'execution'}"))
            if ended and not final:
                self._done.add(child_id)  # read once more after its end, then no more
        # Each look reads every running child: with many, look less often (the
        # last look, at the end, reads what is left of all of them).
        active = len(self._cursors) - len(self._done)
        self._next_poll = time.monotonic() + max(0.1, active / 200)
        return found

    def _may_have_children(self) -> bool:
        """Whether the flow has a task that starts executions (so a flow of
        thousands of tasks is not read again and again for nothing)."""
        try:
            head = self._store.execution_head(self._execution_id)
            source = self._store.get_flow(head.namespace, head.flow_id,
                                          head.flow_revision).source
        except HarrierError:
            return True
        return any(name in source for name in ("flow.Loop", "Subflow", "ForEachItem"))

    def _discover(self, execution_id: str, prefix: str) -> None:
        for run in self._store.task_runs(execution_id):
            child = run.outputs.get("executionId")  # a Subflow's child
            if isinstance(child, str) and child != execution_id and child not in self._cursors:
                self._cursors[child] = None
                self._labels[child] = f"{prefix} {run.task_id}".strip() + (
                    f"[{run.value}]" if run.value is not None else "")
            count = run.outputs.get("iterationCount")
            if not isinstance(count, int) or run.id in self._known:
                continue
            found = [iteration_id(run.id, index) for index in range(count)]
            try:
                if found:
                    self._store.execution_state(found[0])
            except ExecutionNotFound:
                continue  # a LoopUntil's count, not a Loop's iterations
            self._known.add(run.id)
            for index, child_id in enumerate(found):
                self._cursors[child_id] = None
                self._labels[child_id] = f"{prefix} {run.task_id}#{index}".strip()
