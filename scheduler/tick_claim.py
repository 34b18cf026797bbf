"""Exactly-once cron firing across scheduler replicas: a replica may fire a
tick only after winning its Redis claim (SET NX with an expiry), and records
the latest fired tick per trigger so a restarted scheduler knows what it missed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import redis

from harrier.common.errors import StoreUnavailable
from harrier.common.lua import lua_script

CLAIM_PREFIX = "harrier:tick:"
LAST_FIRED_KEY = "harrier:triggers:last_fired"  # hash: trigger key -> epoch microseconds
# A claim only has to outlive the window in which another replica could still
# try the same tick (clock skew, a slow loop, recovery racing the live loop);
# after that, last_fired keeps recovery from replaying it.
DEFAULT_CLAIM_TTL_SECONDS = 24 * 3600


# Monotonic max: never moves last_fired backwards, whatever order replicas report in.
_RECORD_FIRED = lua_script("harrier.scheduler", "record_fired")

_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def tick_iso(tick: datetime) -> str:
    """The UTC ISO-8601 spelling of a tick used in keys: 2024-01-01T00:00:00Z."""
    if tick.tzinfo is None or tick.utcoffset() is None:
        raise ValueError(f"tick must be a timezone-aware datetime, got naive {tick!r}")
    return tick.astimezone(UTC).isoformat().replace("+00:00", "Z")


def claim_key(trigger_key: str, tick: datetime) -> str:
    return f"{CLAIM_PREFIX}{trigger_key}:{tick_iso(tick)}"


def claim_tick(redis_client: redis.Redis, trigger_key: str, tick: datetime,
               ttl_seconds: int = DEFAULT_CLAIM_TTL_SECONDS, *,
               owner: str = "1") -> bool:
    """True for exactly one caller per (trigger_key, tick) within the TTL.

    `trigger_key` names the trigger, e.g. "namespace/flow_id/trigger_id";
    `owner` (e.g. a replica id) is stored as the value, for operators.
    Raises StoreUnavailable if Redis cannot be reached: not firing is the
    safe answer, the tick will be recovered once Redis is back.
    """
    if ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
    key = claim_key(trigger_key, tick)
    try:
        return bool(redis_client.set(key, owner, nx=True, ex=ttl_seconds))
    except _REDIS_DOWN as exc:
        raise StoreUnavailable(f"cannot claim tick {key}: Redis unreachable ({exc})") from exc


def claim_owner(redis_client: redis.Redis, trigger_key: str, tick: datetime) -> str | None:
    """Who claimed a tick (the `owner` given to claim_tick), or None."""
    key = claim_key(trigger_key, tick)
    try:
        value = redis_client.get(key)
    except _REDIS_DOWN as exc:
        raise StoreUnavailable(f"cannot read claim {key}: Redis unreachable ({exc})") from exc
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _to_micros(tick: datetime) -> int:
    tick_iso(tick)  # validates awareness
    delta = tick.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_micros(raw: bytes | str | int) -> datetime:
    micros = int(raw)
    seconds, rest = divmod(micros, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest)


def record_fired(redis_client: redis.Redis, trigger_key: str, tick: datetime) -> datetime:
    """Raise the trigger's last fired tick to `tick` (never lowers it);
    returns the stored value afterwards. Atomic: one Lua script."""
    try:
        stored = redis_client.eval(_RECORD_FIRED, 1, LAST_FIRED_KEY, trigger_key,
                                   _to_micros(tick))
    except _REDIS_DOWN as exc:
        raise StoreUnavailable(f"cannot record fired tick of {trigger_key}: "
                               f"Redis unreachable ({exc})") from exc
    return _from_micros(stored)


def last_fired(redis_client: redis.Redis, trigger_key: str) -> datetime | None:
    """The latest tick recorded for a trigger, or None if it never fired."""
    try:
        raw = redis_client.hget(LAST_FIRED_KEY, trigger_key)
    except _REDIS_DOWN as exc:
        raise StoreUnavailable(f"cannot read last fired tick of {trigger_key}: "
                               f"Redis unreachable ({exc})") from exc
    return None if raw is None else _from_micros(raw)


def last_fired_many(redis_client: redis.Redis,
                    trigger_keys: Iterable[str]) -> dict[str, datetime | None]:
    """last_fired for many triggers in one round trip (scheduler start-up)."""
    keys = list(trigger_keys)
    if not keys:
        return {}
    try:
        values = redis_client.hmget(LAST_FIRED_KEY, keys)
    except _REDIS_DOWN as exc:
        raise StoreUnavailable(f"cannot read last fired ticks: Redis unreachable ({exc})"
                               ) from exc
    return {key: None if raw is None else _from_micros(raw)
            for key, raw in zip(keys, values, strict=True)}


def forget_trigger(redis_client: redis.Redis, trigger_key: str) -> None:
    """Drop a trigger's last fired tick (trigger deleted; a new one starts from now)."""
    try:
        redis_client.hdel(LAST_FIRED_KEY, trigger_key)
    except _REDIS_DOWN as exc:
        raise StoreUnavailable(f"cannot forget trigger {trigger_key}: "
                               f"Redis unreachable ({exc})") from exc
