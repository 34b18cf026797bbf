"""Queue lengths and the oldest waiting message's age, read from a real Redis
broker that real Celery publishing filled."""

from __future__ import annotations

import time

import redis

from harrier.common.celery_app import configure_app
from harrier.common.settings import Settings
from harrier.scheduler.queue_status import queue_status
from tests.fixtures.redis_server import RedisServer


def test_a_queue_nobody_consumes_shows_its_length_and_oldest_age(
        redis_server: RedisServer, redis_client: redis.Redis) -> None:
    app = configure_app(Settings(broker_url=redis_server.url, store_url=redis_server.url))
    try:
        sent = time.time()
        for _ in range(3):
            app.send_task("harrier.run_task", args=["execution", "task"], queue="spark-big")
        later = sent + 42.0
        (spark, empty) = queue_status(redis_client, ["spark-big", "idle"], now=later)
        assert spark.length == 3
        assert spark.oldest_age is not None and 41.0 <= spark.oldest_age <= 42.5
        assert (empty.length, empty.oldest_age) == (0, None)
    finally:
        configure_app(Settings())
