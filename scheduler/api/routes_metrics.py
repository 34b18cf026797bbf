"""GET /metrics: the process's Prometheus metrics (executions started,
triggers fired, webhook requests, and, in embedded mode, the in-process
worker's), plus each worker group's queue length and oldest message age read
from the broker at scrape time (the signal an autoscaler such as KEDA needs)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import redis
from fastapi import APIRouter, Depends, Request, Response

from harrier.common.errors import HarrierError
from harrier.common.metrics import exposition, recorder
from harrier.scheduler.api.auth import require_auth
from harrier.scheduler.api.context import ApiContext, Ctx
from harrier.scheduler.queue_status import flow_worker_groups, queue_status
from harrier.worker.presence import live_workers

log = logging.getLogger("harrier.scheduler.metrics")
router = APIRouter(tags=["metrics"], dependencies=[Depends(require_auth)])

WEBHOOK_PATH = "/executions/webhook/"


@router.get("/metrics", summary="Prometheus metrics (text format)")
def metrics(request: Request, ctx: Ctx) -> Response:
    _observe_queues(request, ctx)
    body, content_type = exposition()
    return Response(body, media_type=content_type)


def _observe_queues(request: Request, ctx: ApiContext) -> None:
    url = ctx.settings.broker_url or ""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return  # embedded mode, or a broker that is not Redis: no lists to look into
    client: redis.Redis | None = getattr(request.app.state, "metrics_broker", None)
    if client is None:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
        request.app.state.metrics_broker = client
    now = time.time()
    try:
        store_redis = getattr(ctx.store, "redis", None)
        workers = live_workers(store_redis, now) if isinstance(store_redis, redis.Redis) \
            else []
        names = {"default"} | flow_worker_groups(ctx.store) | {
            q for w in workers for q in w.queues}
        statuses = queue_status(client, sorted(names), now)
    except (redis.RedisError, HarrierError) as exc:
        # The other metrics are still worth a scrape; the queue gauges keep their last values.
        log.warning("metrics: could not read the queues from the broker: %s", exc)
        return
    for status in statuses:
        recorder().queue_observed(status.name, status.length, status.oldest_age)


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class WebhookMetrics:
    """ASGI middleware counting webhook trigger requests by answer status
    (whatever answered: the route, or an error handler)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or WEBHOOK_PATH not in scope.get("path", ""):
            await self.app(scope, receive, send)
            return

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                recorder().webhook_request(int(message["status"]))
            await send(message)

        await self.app(scope, receive, sending)
