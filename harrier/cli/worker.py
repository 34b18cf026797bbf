"""`harrier worker` (a Celery worker running Harrier's task bodies) and
`harrier health` (are the broker and the store reachable?)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import click
from celery.signals import (
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from harrier.cli.output import print_json
from harrier.common.celery_app import broker_problem, configure_app
from harrier.common.errors import DockerError, HarrierError
from harrier.common.metrics import (
    process_ended,
    remove_dead_multiprocess_dirs,
    remove_multiprocess_dir,
    serve_metrics,
    use_multiprocess_dir,
)
from harrier.common.redis_store import RedisStore
from harrier.common.settings import Settings
from harrier.worker.kill_watch import LEASE_SECONDS
from harrier.worker.presence import PresenceBeat
from harrier.worker.runtime import Runtime, install
from harrier.worker.workdirs import remove_crashed


def _distributed_settings() -> Settings:
    settings = Settings.from_env()
    if settings.embedded:
        raise click.UsageError("this command needs a broker: set HARRIER_BROKER_URL "
                               "(e.g. redis://localhost:6379/0). `harrier run` works without.")
    return settings


@click.command("worker")
@click.option("--concurrency", "-c", type=int, default=None,
              help="Processes (or threads) running tasks; default HARRIER_WORKER_CONCURRENCY "
                   "or the number of CPUs.")
@click.option("--pool", type=click.Choice(["prefork", "threads", "solo"]), default="prefork",
              show_default=True)
@click.option("--queues", "-Q", default=None,
              help="Comma-separated queues (worker groups); default HARRIER_WORKER_QUEUES.")
@click.option("--hostname", "-n", default=None, help="Worker node name.")
@click.option("--metrics-port", type=int, default=None,
              help="Serve Prometheus metrics (GET /metrics) on this port. The prefork pool's "
                   "processes share them through PROMETHEUS_MULTIPROC_DIR (a temporary "
                   "directory unless set).")
@click.option("--metrics-host", default="0.0.0.0", show_default=True,
              help="Address the metrics endpoint listens on.")
@click.option("--events", "-E", is_flag=True,
              help="Send Celery task events, for Flower and `celery events`.")
def worker_command(concurrency: int | None, pool: str, queues: str | None,
                   hostname: str | None, metrics_port: int | None, metrics_host: str,
                   events: bool) -> None:
    """Run a worker: picks tasks from Redis (or RabbitMQ) and runs them."""

    settings = _distributed_settings()
    _remove_dead_metrics_dirs()
    metrics_dir = _serve_metrics(metrics_port, metrics_host) if metrics_port else None
    # Patient: a task that ends while Redis restarts waits to record its result.
    store = RedisStore.from_settings(settings, patience=settings.store_patience)
    app = configure_app(settings)
    install(Runtime(settings, store, app))
    queue_list = [q.strip() for q in queues.split(",")] if queues else list(
        settings.worker_queues)
    if "default" not in queue_list:
        click.echo("note: this worker does not serve the 'default' queue; flowable steps "
                   "(Parallel joins, If/Switch, finishing) need at least one worker that does",
                   err=True)
    _remove_docker_orphans(settings)
    _remove_crashed_workdirs(settings, store)

    presence: list[PresenceBeat] = []

    @worker_ready.connect(weak=False)
    def announce(sender: object = None, **_: object) -> None:
        # Heartbeats for the UI's workers page: queues, concurrency, running tasks.
        beat = PresenceBeat(store.redis, worker.hostname, queue_list,
                            int(worker.concurrency or 0), pool)
        beat.start()
        presence.append(beat)
        click.echo(f"harrier worker {hostname or socket.gethostname()} ready "
                   f"(queues: {', '.join(queue_list)})", err=True)

    @worker_shutdown.connect(weak=False)
    def goodbye(sender: object = None, **_: object) -> None:
        for beat in presence:
            beat.stop()
        if metrics_dir is not None and metrics_dir[1]:
            remove_multiprocess_dir(metrics_dir[0])

    worker = app.Worker(
        concurrency=concurrency or settings.worker_concurrency or None, pool_cls=pool,
        queues=queue_list, loglevel=settings.log_level,
        hostname=hostname or f"harrier@{socket.gethostname()}",
        without_gossip=True, without_mingle=True, optimization="fair", task_events=events)
    worker.start()
    sys.exit(worker.exitcode or 0)


def _serve_metrics(port: int, host: str) -> tuple[Path, bool]:
    """Record metrics into files every pool process shares, and serve them."""
    directory = use_multiprocess_dir(None)

    @worker_process_shutdown.connect(weak=False)
    def retire(sender: object = None, pid: int | None = None, **_: object) -> None:
        process_ended(pid or os.getpid())  # its running task runs no longer count

    try:
        serve_metrics(port, host)
    except OSError as exc:
        if directory[1]:
            remove_multiprocess_dir(directory[0])
        raise click.ClickException(f"--metrics-port {port}: cannot listen: {exc}") from None
    click.echo(f"metrics on http://{host}:{port}/metrics", err=True)
    return directory


def _remove_dead_metrics_dirs() -> None:
    """Metrics directories of previous workers on this host killed before they
    could remove theirs (a worker removes its own at exit)."""
    removed = remove_dead_multiprocess_dirs()
    if removed:
        click.echo(f"removed {len(removed)} metrics director{'y' if len(removed) == 1 else 'ies'}"
                   " of workers no longer running", err=True)


def _remove_crashed_workdirs(settings: Settings, store: RedisStore) -> None:
    """Working directories of attempts a previous worker on this host crashed in."""
    try:
        removed = remove_crashed(settings.work_root, store, lease=LEASE_SECONDS)
    except HarrierError as exc:
        click.echo(f"note: could not check for working directories of crashed attempts: "
                   f"{exc}", err=True)
        return
    if removed:
        click.echo(f"removed {len(removed)} working director{'y' if len(removed) == 1 else 'ies'}"
                   " of crashed attempts", err=True)


def _remove_docker_orphans(settings: Settings) -> None:
    """Containers a previous worker on this host left behind (it died mid-task)."""
    socket_path = settings.docker_host.removeprefix("unix://")
    if settings.docker_host.startswith("unix://") and not Path(socket_path).exists():
        return  # no engine here: nothing can have been left behind
    # lazy: only hosts with a Docker engine pay for the Docker client
    from harrier.worker.runners.docker import DockerRunner, remove_orphans

    runner = DockerRunner(host=settings.docker_host)
    try:
        removed = remove_orphans(runner.engine(), worker=runner.worker_name)
    except DockerError as exc:
        click.echo(f"note: could not check for orphaned task containers: {exc}", err=True)
        return
    finally:
        runner.close()
    if removed:
        click.echo(f"removed {len(removed)} task container(s) left by a previous worker",
                   err=True)


@click.command("health")
@click.option("--json", "as_json", is_flag=True, help="Print details as JSON.")
def health_command(as_json: bool) -> None:
    """Exit 0 when the broker and the store answer, 1 otherwise (for probes)."""
    settings = Settings.from_env()
    report: dict[str, object] = {"mode": "embedded" if settings.embedded else "distributed"}
    healthy = True
    if not settings.embedded:
        problem = broker_problem(configure_app(settings))
        report["broker"] = "UP" if problem is None else f"DOWN: {problem}"
        healthy = problem is None
        try:
            RedisStore.from_settings(settings).ping()
            report["store"] = "UP"
        except HarrierError as exc:
            report["store"] = f"DOWN: {exc}"
            healthy = False
    report["status"] = "UP" if healthy else "DOWN"
    if as_json:
        print_json(report)
    else:
        for key, value in report.items():
            click.echo(f"{key}: {value}")
    sys.exit(0 if healthy else 1)
