"""The workers and queues page: per worker group (Celery queue) its length and
the age of its oldest waiting message, and the live workers with their
concurrency and running task runs, from their heartbeats."""

from __future__ import annotations

import time
from typing import Any

import redis
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from harrier.scheduler.api.context import ApiContext, Ctx
from harrier.scheduler.queue_status import queue_status
from harrier.scheduler.ui.flow_tree import parsed
from harrier.scheduler.ui.rendering import page
from harrier.worker.presence import live_workers

router = APIRouter()


def broker_client(request: Request, ctx: ApiContext) -> redis.Redis | None:
    """A Redis client on the broker (cached on the app); None for other brokers
    and embedded mode, where there are no queues to look into."""
    url = ctx.settings.broker_url or ""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    client: redis.Redis | None = getattr(request.app.state, "ui_broker", None)
    if client is None:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
        request.app.state.ui_broker = client
    return client


def worker_groups(ctx: ApiContext) -> set[str]:
    """Queues named by the flows' workerGroup keys."""
    groups = set()
    for record in ctx.store.list_flows():
        flow = parsed(record)
        if flow is None:
            continue
        for task in flow.all_tasks():
            if task.worker_group is not None:
                groups.add(task.worker_group.key)
    return groups


@router.get("/workers", response_class=HTMLResponse, summary="Workers and queues (UI)")
def workers_page(request: Request, ctx: Ctx, partial: bool = False) -> HTMLResponse:
    now = time.time()
    client = broker_client(request, ctx)
    store_redis = getattr(ctx.store, "redis", None)
    workers = live_workers(store_redis, now) if isinstance(store_redis, redis.Redis) else []
    names = {"default"} | worker_groups(ctx) | {q for w in workers for q in w.queues}
    queues: list[dict[str, Any]] = []
    if client is not None:
        for status in queue_status(client, sorted(names), now):
            consumers = [w.hostname for w in workers if status.name in w.queues]
            queues.append({"name": status.name, "length": status.length,
                           "oldest": status.oldest_age, "consumers": consumers})
    return page(request, "_workers_body.html" if partial else "workers.html",
                queues=queues, workers=workers, now=now, embedded=ctx.settings.embedded,
                broker_readable=client is not None, nav="workers", title="Workers and queues")
