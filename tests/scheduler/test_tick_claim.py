"""Tick claims and last-fired records against a real redis-server: one winner
per tick whatever the number of threads or processes racing for it."""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from harrier.common.errors import StoreUnavailable
from harrier.scheduler.tick_claim import (
    claim_key,
    claim_owner,
    claim_tick,
    forget_trigger,
    last_fired,
    last_fired_many,
    record_fired,
)
from tests.fixtures.redis_server import RedisServer, free_port

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TICKS = [T0 + timedelta(seconds=s) for s in range(60)]


def test_first_claim_wins_and_later_claims_lose(redis_client: redis.Redis) -> None:
    assert claim_tick(redis_client, "ns/flow/schedule", T0, owner="replica-a") is True
    assert claim_tick(redis_client, "ns/flow/schedule", T0, owner="replica-b") is False
    assert claim_owner(redis_client, "ns/flow/schedule", T0) == "replica-a"
    # Other ticks and other triggers are independent.
    assert claim_tick(redis_client, "ns/flow/schedule", T0 + timedelta(seconds=1)) is True
    assert claim_tick(redis_client, "ns/other/schedule", T0) is True


def test_claim_key_is_utc_iso_whatever_the_tick_timezone(redis_client: redis.Redis) -> None:
    paris = T0.astimezone(ZoneInfo("Europe/Paris"))
    assert claim_key("ns/f/t", paris) == "harrier:tick:ns/f/t:2024-01-01T00:00:00Z"
    assert claim_tick(redis_client, "ns/f/t", T0) is True
    assert claim_tick(redis_client, "ns/f/t", paris) is False


def test_claim_expires_after_its_ttl(redis_client: redis.Redis) -> None:
    claim_tick(redis_client, "ns/f/t", T0, ttl_seconds=120)
    ttl = redis_client.ttl(claim_key("ns/f/t", T0))
    assert 0 < ttl <= 120


def test_bad_arguments_are_refused(redis_client: redis.Redis) -> None:
    with pytest.raises(ValueError, match="ttl_seconds must be positive"):
        claim_tick(redis_client, "ns/f/t", T0, ttl_seconds=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        claim_tick(redis_client, "ns/f/t", datetime(2024, 1, 1))


def test_threads_racing_on_the_same_ticks_get_one_winner_each(
        redis_server: RedisServer, redis_client: redis.Redis) -> None:
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    wins: list[list[datetime]] = [[] for _ in range(threads_count)]

    def race(index: int) -> None:
        client = redis_server.client()
        ticks = TICKS[:]
        random.Random(index).shuffle(ticks)
        barrier.wait()
        for tick in ticks:
            if claim_tick(client, "ns/flow/race", tick, owner=f"thread-{index}"):
                wins[index].append(tick)
        client.close()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    all_wins = [tick for won in wins for tick in won]
    assert sorted(all_wins) == TICKS


def _race_in_process(url: str, start_at: float, seed: int) -> list[str]:
    client = redis.Redis.from_url(url)
    ticks = TICKS[:]
    random.Random(seed).shuffle(ticks)
    time.sleep(max(0.0, start_at - time.time()))  # line the processes up
    won = [tick.isoformat() for tick in ticks
           if claim_tick(client, "ns/flow/process-race", tick, owner=f"process-{seed}")]
    client.close()
    return won


def test_processes_racing_on_the_same_ticks_get_one_winner_each(
        redis_server: RedisServer, redis_client: redis.Redis) -> None:
    processes = 4
    start_at = time.time() + 3.0  # spawned interpreters need a moment to import
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        results = pool.starmap(_race_in_process,
                               [(redis_server.url, start_at, seed) for seed in range(processes)])
    all_wins = sorted(datetime.fromisoformat(t) for won in results for t in won)
    assert all_wins == TICKS
    # Each tick's claim names the one process that fired it.
    owners = {claim_owner(redis_client, "ns/flow/process-race", t) for t in TICKS}
    assert owners <= {f"process-{seed}" for seed in range(processes)}


def test_last_fired_is_none_until_recorded_then_only_moves_forward(
        redis_client: redis.Redis) -> None:
    assert last_fired(redis_client, "ns/f/t") is None
    assert record_fired(redis_client, "ns/f/t", T0 + timedelta(minutes=5)) == \
        T0 + timedelta(minutes=5)
    assert record_fired(redis_client, "ns/f/t", T0) == T0 + timedelta(minutes=5)
    assert last_fired(redis_client, "ns/f/t") == T0 + timedelta(minutes=5)
    tick = T0 + timedelta(minutes=6, microseconds=123456)
    record_fired(redis_client, "ns/f/t", tick)
    assert last_fired(redis_client, "ns/f/t") == tick
    assert last_fired_many(redis_client, ["ns/f/t", "ns/f/never"]) == {
        "ns/f/t": tick, "ns/f/never": None}
    forget_trigger(redis_client, "ns/f/t")
    assert last_fired(redis_client, "ns/f/t") is None


def test_concurrent_records_keep_the_maximum(redis_server: RedisServer,
                                             redis_client: redis.Redis) -> None:
    def record(seed: int) -> None:
        client = redis_server.client()
        ticks = TICKS[:]
        random.Random(seed).shuffle(ticks)
        for tick in ticks:
            record_fired(client, "ns/f/max", tick)
        client.close()

    threads = [threading.Thread(target=record, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert last_fired(redis_client, "ns/f/max") == TICKS[-1]


def test_unreachable_redis_raises_store_unavailable() -> None:
    # No server listens on a fresh free port; no retries, to fail fast.
    client = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1,
                         retry=Retry(NoBackoff(), 0))
    with pytest.raises(StoreUnavailable, match="Redis unreachable"):
        claim_tick(client, "ns/f/t", T0)
    with pytest.raises(StoreUnavailable, match="Redis unreachable"):
        record_fired(client, "ns/f/t", T0)
    with pytest.raises(StoreUnavailable, match="Redis unreachable"):
        last_fired(client, "ns/f/t")


def test_restart_keeps_the_port_and_loses_the_data(redis_server: RedisServer,
                                                   redis_client: redis.Redis) -> None:
    port = redis_server.port
    assert claim_tick(redis_client, "ns/f/restart", T0) is True
    redis_server.restart()
    assert redis_server.port == port
    # No persistence: a restarted Redis forgets claims (recovery relies on last_fired,
    # which a production Redis persists).
    assert claim_tick(redis_server.client(), "ns/f/restart", T0) is True
