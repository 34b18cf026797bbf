"""The Celery app object and all of its configuration, for both modes:
embedded (in-memory transport, tuned to poll in milliseconds) and distributed."""

from __future__ import annotations

import threading
import time
from typing import Any

from celery import Celery
from celery.signals import before_task_publish
from kombu import pools as kombu_pools

from harrier.common.settings import Settings

app = Celery("harrier", include=["harrier.worker.celery_tasks"])
app.conf.update(_configured=False)

# Celery's messages carry no send time; the queue view shows the oldest
# waiting message's age from this header.
SENT_AT_HEADER = "harrier_sent_at"


@before_task_publish.connect(weak=False)
def _stamp_sent_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None:
        headers.setdefault(SENT_AT_HEADER, time.time())


def celery_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "broker_url": settings.broker_url or "memory://",
        "broker_transport": None,  # the URL's scheme, except in embedded mode (below)
        "result_backend": settings.effective_result_backend,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": "default",
        # A task whose worker dies is delivered again: acknowledge only when the
        # body returned, and reject (requeue) on worker loss.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": False,
        "result_expires": int(settings.execution_retention.total_seconds()),
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,  # keep reconnecting while Redis is down
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "enable_utc": True,
        "timezone": "UTC",
    }
    if settings.embedded:
        # Celery's in-memory transport polls once a second, and its worker loop
        # leaves only after a 2 s drain timeout; ours wakes on every message.
        config["broker_transport"] = "harrier.common.embedded_transport:Transport"
        # Chord joins retry every second by default: a 10-task chain would take
        # seconds instead of milliseconds.
        config["result_chord_retry_interval"] = 0.01
    else:
        options: dict[str, Any] = {"visibility_timeout": settings.visibility_timeout}
        if settings.broker_url.startswith(("redis://", "rediss://")):
            # A worker that dies holding a task leaves it "unacked"; surviving
            # workers sweep for such tasks older than the visibility timeout.
            # Kombu's default sweeps every ~100 s; sweep a few times per timeout.
            options["unacked_restore_interval"] = max(1, min(10, settings.visibility_timeout // 4))
            options["unacked_restore_throttle"] = 1
            # Queue priorities are not used; fanout prefixes keep several Harrier
            # deployments on one Redis db apart.
            options["fanout_prefix"] = True
            options["fanout_patterns"] = True
        config["broker_transport_options"] = options
        # Ride out a broker or backend restart: keep retrying publishes (the next
        # step of a chain) and result writes as long as the store is waited for
        # (HARRIER_STORE_PATIENCE, two minutes by default).
        patience = max(1, settings.store_patience)
        config["result_backend_transport_options"] = {"retry_policy": {
            "timeout": float(patience)}}
        config["task_publish_retry_policy"] = {
            "max_retries": patience, "interval_start": 0.1, "interval_step": 0.5,
            "interval_max": 1.0}
        config["redis_socket_keepalive"] = True
        # Remote control (pidbox) uses an auto-delete fanout queue whose clean-up
        # crashes Celery 5.7's worker when the Redis connection drops (kombu
        # creates a client on a closed connection). Harrier does not use it:
        # kills go through the store, readiness through `harrier health`.
        config["worker_enable_remote_control"] = False
        config["result_chord_join_timeout"] = 10.0
    return config


def configure_app(settings: Settings) -> Celery:
    """Apply `settings` to the one app object (before any worker starts).

    Reconfiguring (tests switch between embedded and Redis in one process)
    drops the connections and the result backend Celery cached for the old one.
    """
    config = celery_config(settings)
    if app.conf.get("_configured") and (
            app.conf.broker_url != config["broker_url"]
            or app.conf.result_backend != config["result_backend"]):
        kombu_pools.reset()  # kombu's process-wide producer pools keep old connections
        app._pool = None
        # The result backend is cached per app (or per thread): forget both.
        app._backend_cache = None
        app._local = threading.local()
        for cached in ("amqp", "control", "events"):  # they hold the old producer pool
            app.__dict__.pop(cached, None)
    app.conf.update(config)
    app.conf.update(_configured=True)
    # Celery's "current app" is thread-local; worker pool threads would fall back
    # to a default app speaking AMQP to localhost. Make ours the default.
    app.set_default()
    return app


def broker_problem(celery_app: Celery, timeout: float = 3.0) -> str | None:
    """Why the broker cannot be used right now, or None when it answers.

    Opens a connection of the configured transport, so a transport that cannot
    even be imported (a missing dependency) is reported too, not only a broker
    that is down."""
    try:
        with celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:  # kombu raises transport-specific types, and ImportError
        return f"{type(exc).__name__}: {exc}"
    return None

