"""`harrier scheduler` (the HTTP API, webhooks and the trigger loop in one
process; run as many replicas as you like) and `harrier backfill` (fire a
Schedule trigger's past ticks once)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import click
import redis
import uvicorn

from harrier.cli.output import print_json
from harrier.cli.worker import _distributed_settings
from harrier.common.celery_app import configure_app
from harrier.common.errors import FlowNotFound, FlowValidationError, HarrierError
from harrier.common.flow import Flow, parse_flow
from harrier.common.redis_store import RedisStore
from harrier.common.settings import Settings
from harrier.common.triggers import ScheduleTrigger
from harrier.scheduler.api.auth import check_exposure
from harrier.scheduler.backfill import BackfillError, backfill_ticks, pick_trigger
from harrier.scheduler.firing import FireContext, fire_tick, schedule_of
from harrier.scheduler.flow_catalog import FlowCatalog, ScheduledTrigger
from harrier.scheduler.flow_triggers import FlowTriggerLoop
from harrier.scheduler.pause_sweep import PauseSweep
from harrier.scheduler.storage_sweep import sweep_forever
from harrier.scheduler.task_rescue import TaskRescue
from harrier.scheduler.triggers import TriggerLoop
from harrier.scheduler.ui import create_web_app

log = logging.getLogger("harrier.scheduler")
SERVED_APP = "harrier.scheduler.served_app:app_from_env"


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _fire_context(settings: Settings) -> FireContext:
    store = RedisStore.from_settings(settings)
    app = configure_app(settings)
    return FireContext(store, app, store.redis, replica=f"{socket.gethostname()}:{os.getpid()}",
                       secrets=settings.secrets)


def _load_api(settings: Settings, context: FireContext) -> Any:
    return create_web_app(settings, context.store, context.app)


@click.command("scheduler")
@click.option("--no-api", is_flag=True,
              help="Run the trigger loop only: no HTTP API and no webhook endpoint.")
@click.option("--host", default=None, help="API address; default HARRIER_API_HOST.")
@click.option("--port", type=int, default=None, help="API port; default HARRIER_API_PORT.")
def scheduler_command(no_api: bool, host: str | None, port: int | None) -> None:
    """Run a scheduler replica: the API and webhooks, and the trigger loops that
    fire Schedule and Flow triggers of the flows in HARRIER_FLOWS_DIR and in the
    store. Replicas share the work: each tick, and each end of an execution,
    fires exactly once."""

    settings = _distributed_settings()
    _configure_logging(settings)
    host = host or settings.api_host
    port = port or settings.api_port
    try:
        if not no_api:
            check_exposure(settings, host, port)
        context = _fire_context(settings)
        context.store.ping()
    except HarrierError as exc:
        raise click.ClickException(str(exc)) from None
    api = None if no_api or settings.api_workers > 1 else _load_api(settings, context)
    catalog = FlowCatalog(settings.flows_dir, context.store)
    catalog.refresh()  # load before the first step, so recovery starts at once
    loop = TriggerLoop(catalog, context)
    stop = threading.Event()
    failure: list[BaseException] = []
    server: Any = None

    def run_loop() -> None:
        try:
            loop.run(stop)
        except BaseException as exc:
            log.exception("the trigger loop crashed; stopping this scheduler")
            failure.append(exc)
            stop.set()
            if server is not None:
                server.should_exit = True
            elif not no_api and settings.api_workers > 1:
                os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's supervisor stops its workers

    thread = threading.Thread(target=run_loop, name="harrier-trigger-loop")
    # Flow triggers: executions started when executions of other flows end.
    flow_loop = FlowTriggerLoop(catalog, context, claim_idle=settings.flow_trigger_claim_idle)
    flow_thread = threading.Thread(target=flow_loop.run, args=(stop,),
                                   name="harrier-flow-triggers", daemon=True)
    # Next to the cron ticks: task runs whose worker died are sent again.
    rescue = TaskRescue(RedisStore.from_settings(settings), context.app, settings)
    rescuer = threading.Thread(target=rescue.run, args=(stop,), name="harrier-task-rescue",
                               daemon=True)
    # Files of executions that expired by retention (scheduler/storage_sweep.py).
    sweeper = threading.Thread(target=sweep_forever, name="harrier-storage-sweep", daemon=True,
                               args=(settings, RedisStore.from_settings(settings), stop))
    sweeper.start()
    # Pauses whose pauseDuration passed but whose expiry message was lost.
    pause_sweep = PauseSweep(RedisStore.from_settings(settings), context.app, settings)
    pauses = threading.Thread(target=pause_sweep.run, args=(stop,), name="harrier-pauses",
                              daemon=True)
    log.info("scheduler %s: flows from %s, %d schedule(s)%s", context.replica,
             settings.flows_dir, len(catalog.schedules()),
             "" if no_api else f", API on {host}:{port}")
    if no_api:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d: stopping", signum)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        thread.start()
        flow_thread.start()
        rescuer.start()
        pauses.start()
        while not stop.wait(0.5):
            pass
    elif settings.api_workers > 1:
        # Several API processes (HARRIER_API_WORKERS), each building its app
        # from the environment; this process keeps the trigger loop.
        thread.start()
        rescuer.start()
        pauses.start()
        flow_thread.start()
        uvicorn.run(SERVED_APP, factory=True, host=host, port=port,
                    workers=settings.api_workers, log_level=settings.log_level.lower())
        stop.set()
    else:
        assert api is not None
        config = uvicorn.Config(api, host=host, port=port,
                                log_level=settings.log_level.lower(), lifespan="on")
        server = uvicorn.Server(config)
        thread.start()
        flow_thread.start()
        rescuer.start()
        pauses.start()
        server.run()  # handles SIGTERM and SIGINT itself, in the main thread
        stop.set()
    thread.join(30)
    sys.exit(1 if failure else 0)


def _parse_moment(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO-8601 date-time "
                                 "(e.g. 2024-01-31T00:00:00Z)", param_hint=option) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _find_flow(settings: Settings, context: Any, namespace: str, flow_id: str) -> Flow:
    try:
        record = context.store.get_flow(namespace, flow_id)
        return parse_flow(record.source, f"{namespace}.{flow_id}@{record.revision}")
    except FlowNotFound:
        catalog = FlowCatalog(settings.flows_dir, context.store)
        catalog.refresh()
        flow = catalog.flow(namespace, flow_id)
        if flow is None:
            raise click.ClickException(f"flow {namespace}.{flow_id} is neither in the store "
                                       f"nor in {settings.flows_dir}") from None
        return flow


@click.command("backfill")
@click.argument("namespace")
@click.argument("flow_id")
@click.option("--trigger", "trigger_id", default=None,
              help="The Schedule trigger's id (needed when the flow has several).")
@click.option("--start", required=True, help="First date-time to fire (ISO-8601, UTC if "
              "no offset), inclusive.")
@click.option("--end", default=None, help="Last date-time, inclusive; default now.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def backfill_command(namespace: str, flow_id: str, trigger_id: str | None, start: str,
                     end: str | None, as_json: bool) -> None:
    """Fire every tick of a flow's Schedule trigger between --start and --end.
    Ticks that already fired (by a scheduler or an earlier backfill) are skipped."""

    settings = _distributed_settings()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    start_at = _parse_moment(start, "--start")
    end_at = _parse_moment(end, "--end") if end else datetime.now(UTC)
    try:
        context = _fire_context(settings)
        flow = _find_flow(settings, context, namespace, flow_id)
        entries = [ScheduledTrigger(flow, t) for t in flow.triggers_of(ScheduleTrigger)
                   if isinstance(t, ScheduleTrigger)]
        entry = pick_trigger(entries, trigger_id, f"{namespace}.{flow_id}")
        fired: list[dict[str, str]] = []
        skipped: list[str] = []
        for tick in backfill_ticks(schedule_of(entry.trigger), start_at, end_at):
            execution_id = fire_tick(context, entry, tick, why="backfill", record=False)
            tick_text = tick.isoformat().replace("+00:00", "Z")
            if execution_id is None:
                skipped.append(tick_text)
                if not as_json:
                    click.echo(f"{tick_text}  already fired, skipped")
            else:
                fired.append({"tick": tick_text, "executionId": execution_id})
                if not as_json:
                    click.echo(f"{tick_text}  -> execution {execution_id}")
    except (BackfillError, FlowValidationError, HarrierError, redis.RedisError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        print_json({"namespace": namespace, "flowId": flow_id, "trigger": entry.trigger.id,
                    "executions": fired, "alreadyFired": skipped})
    else:
        click.echo(f"{len(fired)} execution(s) created, {len(skipped)} tick(s) already fired")

