"""Prometheus metrics of executions, task runs, queues and triggers, named
after Kestra's (`kestra_worker_ended_count_total`, ...) so its dashboards
port. Off until a process enables them (`harrier worker --metrics-port`, the
API): until then every record call is a no-op costing one method call."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own variable
# The temporary directory a worker records into: harrier-metrics-<its pid>-<random>
# (mkdtemp's random part has no '-'), so a later worker can tell whose it was.
_DIR_PREFIX = "harrier-metrics-"
_OWNED_DIR = re.compile(re.escape(_DIR_PREFIX) + r"(\d+)-[^-]*")
# Seconds: from a few milliseconds of orchestration to an hours-long Spark job.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
                    300, 600, 1800, 3600, 7200, 14400, float("inf"))
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                   30, 60, 300, float("inf"))


class Recorder:
    """What Harrier records; this base records nothing (metrics disabled)."""

    def execution_started(self, namespace: str, flow_id: str,
                          trigger: Mapping[str, Any] | None) -> None:
        pass

    def execution_ended(self, namespace: str, flow_id: str, state: str,
                        seconds: float | None) -> None:
        pass

    def task_started(self, worker_group: str, queued_seconds: float | None) -> None:
        pass

    @contextmanager
    def running(self, worker_group: str) -> Iterator[None]:
        yield

    def task_ended(self, task_type: str, worker_group: str, state: str,
                   seconds: float | None) -> None:
        pass

    def task_retried(self, task_type: str, worker_group: str) -> None:
        pass

    def trigger_fired(self, trigger_type: str, reason: str, lag_seconds: float) -> None:
        pass

    def webhook_request(self, status: int) -> None:
        pass

    def queue_observed(self, worker_group: str, length: int, oldest_age: float | None) -> None:
        pass

    def spark_submitted(self, submitter: str, seconds: float) -> None:
        pass

    def spark_driver_ended(self, state: str) -> None:
        pass


class PrometheusRecorder(Recorder):
    def __init__(self) -> None:
        # prometheus-client picks its value store (in memory, or files shared by
        # the prefork pool) when first imported: after PROMETHEUS_MULTIPROC_DIR is set.
        # lazy: imported once metrics are enabled, never before (see above)
        from prometheus_client import Counter, Gauge, Histogram

        self.executions_started = Counter(
            "kestra_executor_execution_started_count", "Executions started",
            ["namespace_id", "flow_id", "trigger_type"])
        self.executions_ended = Counter(
            "kestra_executor_execution_end_count", "Executions ended",
            ["namespace_id", "flow_id", "state"])
        self.execution_duration = Histogram(
            "kestra_executor_execution_duration_seconds", "Execution duration, creation to end",
            ["namespace_id", "flow_id", "state"], buckets=DURATION_BUCKETS)
        self.tasks_ended = Counter(
            "kestra_worker_ended_count", "Task runs ended by a worker",
            ["task_type", "worker_group", "state"])
        self.task_duration = Histogram(
            "kestra_worker_ended_duration_seconds", "Task run duration (every attempt)",
            ["task_type", "worker_group", "state"], buckets=DURATION_BUCKETS)
        self.queued = Histogram(
            "kestra_worker_queued_duration_seconds",
            "Time from enqueue (or the end of a retry's delay) to a worker starting the task",
            ["worker_group"], buckets=LATENCY_BUCKETS)
        self.running_count = Gauge(
            "kestra_worker_running_count", "Task runs running now",
            ["worker_group"], multiprocess_mode="livesum")
        self.retries = Counter(
            "harrier_task_retries", "Failed attempts retried by their retry policy",
            ["task_type", "worker_group"])
        self.trigger_fires = Counter(
            "kestra_scheduler_trigger_count", "Executions fired by Schedule triggers",
            ["trigger_type", "reason"])
        self.trigger_delay = Histogram(
            "kestra_scheduler_trigger_delay_duration_seconds",
            "Delay between a tick's time and its firing",
            ["trigger_type", "reason"], buckets=LATENCY_BUCKETS)
        self.webhooks = Counter(
            "harrier_webhook_requests", "Webhook trigger requests by HTTP status", ["status"])
        self.spark_submission = Histogram(
            "harrier_spark_submission_duration_seconds",
            "Time to submit a Spark application in cluster mode (cli: spark-submit's run)",
            ["submitter"], buckets=LATENCY_BUCKETS)
        self.spark_drivers = Counter(
            "harrier_spark_driver_ended_count", "Spark drivers followed to an end state",
            ["state"])
        # Set when the API is scraped, from the broker (see scheduler/api/routes_metrics.py).
        self.queue_length = Gauge(
            "harrier_queue_length", "Messages waiting in a worker group's queue",
            ["worker_group"], multiprocess_mode="mostrecent")
        self.queue_oldest_age = Gauge(
            "harrier_queue_oldest_age_seconds",
            "Age of the oldest message waiting in a worker group's queue (0 when empty)",
            ["worker_group"], multiprocess_mode="mostrecent")

    def execution_started(self, namespace: str, flow_id: str,
                          trigger: Mapping[str, Any] | None) -> None:
        kind = str((trigger or {}).get("type") or "api")
        self.executions_started.labels(namespace, flow_id, kind).inc()

    def execution_ended(self, namespace: str, flow_id: str, state: str,
                        seconds: float | None) -> None:
        self.executions_ended.labels(namespace, flow_id, state).inc()
        if seconds is not None:
            self.execution_duration.labels(namespace, flow_id, state).observe(seconds)

    def task_started(self, worker_group: str, queued_seconds: float | None) -> None:
        if queued_seconds is not None:
            self.queued.labels(worker_group).observe(max(0.0, queued_seconds))

    @contextmanager
    def running(self, worker_group: str) -> Iterator[None]:
        gauge = self.running_count.labels(worker_group)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    def task_ended(self, task_type: str, worker_group: str, state: str,
                   seconds: float | None) -> None:
        self.tasks_ended.labels(task_type, worker_group, state).inc()
        if seconds is not None:
            self.task_duration.labels(task_type, worker_group, state).observe(seconds)

    def task_retried(self, task_type: str, worker_group: str) -> None:
        self.retries.labels(task_type, worker_group).inc()

    def trigger_fired(self, trigger_type: str, reason: str, lag_seconds: float) -> None:
        self.trigger_fires.labels(trigger_type, reason).inc()
        self.trigger_delay.labels(trigger_type, reason).observe(max(0.0, lag_seconds))

    def webhook_request(self, status: int) -> None:
        self.webhooks.labels(str(status)).inc()

    def spark_submitted(self, submitter: str, seconds: float) -> None:
        self.spark_submission.labels(submitter).observe(seconds)

    def spark_driver_ended(self, state: str) -> None:
        self.spark_drivers.labels(state).inc()

    def queue_observed(self, worker_group: str, length: int, oldest_age: float | None) -> None:
        self.queue_length.labels(worker_group).set(length)
        self.queue_oldest_age.labels(worker_group).set(oldest_age or 0.0)


_recorder: Recorder = Recorder()
_lock = threading.Lock()


def recorder() -> Recorder:
    return _recorder


def enabled() -> bool:
    return isinstance(_recorder, PrometheusRecorder)


def enable_metrics() -> Recorder:
    """Start recording in this process (idempotent). Honours
    PROMETHEUS_MULTIPROC_DIR when set (see use_multiprocess_dir)."""
    global _recorder
    with _lock:
        if not isinstance(_recorder, PrometheusRecorder):
            _recorder = PrometheusRecorder()
    return _recorder


def use_multiprocess_dir(directory: str | None) -> tuple[Path, bool]:
    """Before enable_metrics in a process that forks workers: record into
    files in `directory` (PROMETHEUS_MULTIPROC_DIR if None, else a new temporary
    directory), emptied first as prometheus-client requires. Returns the
    directory and whether Harrier created it (and so removes it at exit)."""
    chosen = directory or os.environ.get(MULTIPROC_ENV)
    created = not chosen
    path = Path(chosen) if chosen else Path(
        tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{os.getpid()}-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)
    return path, created


def process_ended(pid: int) -> None:
    """A forked child exited: its live gauges (running task runs) stop counting."""
    if os.environ.get(MULTIPROC_ENV) and enabled():
        # lazy: after PROMETHEUS_MULTIPROC_DIR is set (see PrometheusRecorder)
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def remove_multiprocess_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def remove_dead_multiprocess_dirs(root: Path | None = None) -> list[Path]:
    """The temporary directories (use_multiprocess_dir) of workers that died
    without removing theirs (killed -9), in `root` (the temporary directory if
    None): those whose owner pid no longer runs. A live worker's is kept."""
    removed = []
    for path in Path(root or tempfile.gettempdir()).glob(f"{_DIR_PREFIX}*"):
        owner = _OWNED_DIR.fullmatch(path.name)
        if owner is None or not path.is_dir() or _running(int(owner[1])):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def exposition() -> tuple[bytes, str]:
    """This process's metrics in the Prometheus text format (all processes'
    when recording into a multiprocess directory), and its content type."""
    # lazy: after PROMETHEUS_MULTIPROC_DIR is set (see PrometheusRecorder)
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
        multiprocess,
    )

    enable_metrics()
    registry = REGISTRY
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def serve_metrics(port: int, host: str = "0.0.0.0") -> Any:
    """GET /metrics on `port` in a background thread (the worker's endpoint)."""
    # lazy: after PROMETHEUS_MULTIPROC_DIR is set (see PrometheusRecorder)
    from prometheus_client import CollectorRegistry, start_http_server

    enable_metrics()
    registry: Any = None
    if os.environ.get(MULTIPROC_ENV):
        # lazy: after PROMETHEUS_MULTIPROC_DIR is set (see PrometheusRecorder)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return start_http_server(port, addr=host, **({"registry": registry} if registry else {}))
