"""`harrier kv list|get|set|delete`: a namespace's KV store in the Redis store
(the values kv() and the kv.* tasks read and write)."""

from __future__ import annotations

import json

import click

from harrier.cli.executions import connect
from harrier.cli.output import print_json, table
from harrier.common.durations import parse_duration
from harrier.common.errors import HarrierError
from harrier.common.kv import check_key, check_namespace, new_entry


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (HarrierError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None


@click.group("kv", cls=_Group)
def kv_group() -> None:
    """Read and write a namespace's KV store."""


@kv_group.command("list")
@click.argument("namespace")
@click.option("--json", "as_json", is_flag=True, help="Print Kestra's JSON entries.")
def list_command(namespace: str, as_json: bool) -> None:
    """The keys of NAMESPACE with their dates."""
    _, store = connect()
    entries = store.kv_list(check_namespace(namespace))
    if as_json:
        print_json([e.to_json() for e in entries])
        return
    click.echo(table(["key", "updated", "expires"],
                     [[e.key, e.to_json()["updateDate"] or "",
                       e.to_json()["expirationDate"] or ""] for e in entries]))


@kv_group.command("get")
@click.argument("namespace")
@click.argument("key")
def get_command(namespace: str, key: str) -> None:
    """Print the value of KEY as JSON (exit 1 when absent)."""
    _, store = connect()
    entry = store.kv_get(check_namespace(namespace), check_key(key))
    if entry is None:
        raise click.ClickException(f"no value for key {key!r} in namespace {namespace!r}")
    click.echo(json.dumps(entry.value))


@kv_group.command("set")
@click.argument("namespace")
@click.argument("key")
@click.argument("value")
@click.option("--ttl", default=None, help="Expire after this ISO-8601 duration (e.g. P1D).")
@click.option("--string", "as_string", is_flag=True,
              help="Store VALUE as a string even if it reads as JSON.")
def set_command(namespace: str, key: str, value: str, ttl: str | None,
                as_string: bool) -> None:
    """Store VALUE (JSON, or text) under KEY."""
    _, store = connect()
    parsed: object = value
    if not as_string:
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
    previous = store.kv_get(check_namespace(namespace), check_key(key))
    store.kv_put(new_entry(namespace, key, parsed, previous=previous,
                           ttl=parse_duration(ttl) if ttl else None))
    click.echo(f"{namespace} {key}: set")


@kv_group.command("delete")
@click.argument("namespace")
@click.argument("key")
def delete_command(namespace: str, key: str) -> None:
    """Remove KEY (exit 1 when it did not exist)."""
    _, store = connect()
    if not store.kv_delete(check_namespace(namespace), check_key(key)):
        raise click.ClickException(f"no key {key!r} in namespace {namespace!r}")
    click.echo(f"{namespace} {key}: deleted")
