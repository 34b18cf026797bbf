"""`harrier flows list|push|show`: the flows in the Redis store, by revision
(read and written directly, without going through the HTTP API)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from harrier.cli.executions import _Group, connect
from harrier.cli.output import print_json, table
from harrier.cli.run import _expand
from harrier.common.errors import FlowValidationError
from harrier.common.flow import Flow, load_flow_file
from harrier.common.state import iso
from harrier.scheduler.api.flow_json import flow_json


@click.group("flows", cls=_Group)
def flows_group() -> None:
    """List, push and show flows in the Redis store (the ones the API and the
    scheduler run)."""


@flows_group.command("list")
@click.option("--namespace", "-n", default=None, help="Only this namespace.")
@click.option("--json", "as_json", is_flag=True, help="Print the flows as JSON.")
def list_command(namespace: str | None, as_json: bool) -> None:
    """Every flow's latest revision."""

    _, store = connect()
    records = sorted((r for r in store.list_flows() if not namespace or r.namespace == namespace),
                     key=lambda r: (r.namespace, r.flow_id))
    if as_json:
        print_json([flow_json(r) for r in records])
        return
    click.echo(table(["namespace", "id", "revision", "updated"],
                     [[r.namespace, r.flow_id, r.revision, iso(r.updated)] for r in records]))


@flows_group.command("push")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def push_command(files: tuple[Path, ...]) -> None:
    """Validate flow files (or directories of them), then store each as a new
    revision. If any file is invalid, nothing is pushed."""
    flows: list[Flow] = []
    invalid = False
    for path in _expand(files):
        try:
            flows.append(load_flow_file(path))
        except FlowValidationError as exc:
            invalid = True
            click.echo(f"{click.style('invalid', fg='red')}  {path}", err=True)
            for problem in exc.problems:
                click.echo(f"  {problem}", err=True)
    if invalid:
        click.echo("nothing pushed", err=True)
        sys.exit(1)
    _, store = connect()
    for flow in flows:
        record = store.put_flow(flow.namespace, flow.id, flow.source)
        click.echo(f"{click.style('pushed', fg='green')}  {flow.namespace}.{flow.id} "
                   f"revision {record.revision}")


@flows_group.command("show")
@click.argument("namespace")
@click.argument("flow_id")
@click.option("--revision", "-r", type=click.IntRange(1), default=None,
              help="This revision instead of the latest.")
@click.option("--json", "as_json", is_flag=True, help="Print Kestra's flow JSON.")
def show_command(namespace: str, flow_id: str, revision: int | None, as_json: bool) -> None:
    """A flow's YAML source as pushed."""

    _, store = connect()
    record = store.get_flow(namespace, flow_id, revision)
    if as_json:
        print_json(flow_json(record))
        return
    click.echo(f"# {namespace}.{flow_id} revision {record.revision}, updated "
               f"{iso(record.updated)}")
    click.echo(record.source.rstrip("\n"))
