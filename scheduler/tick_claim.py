"""Exactly-once cron firing across scheduler replicas: a replica may fire a
tick only after winning its Redis claim (SET NX with an expiry), and records
the latest fired tick per trigger so a restarted scheduler knows what it missed.
A claim also records its fire as pending (the execution id it will create)
until the execution is created and enqueued: if the claimant dies in between,
another replica completes the fire, so a claimed tick is never lost."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from harrier.common.errors import StoreUnavailable
from harrier.common.lua import lua_script

CLAIM_PREFIX = "harrier:tick:"
LAST_FIRED_KEY = "harrier:triggers:last_fired"  # hash: trigger key -> epoch microseconds
PENDING_KEY = "harrier:tick:pending"  # hash: claim key -> pending fire JSON
# A claim only has to outlive the window in which another replica could still
# try the same tick (clock skew, a slow loop, recovery racing the live loop);
# after that, last_fired keeps recovery from replaying it.
DEFAULT_CLAIM_TTL_SECONDS = 24 * 3600


# Monotonic max: never moves last_fired backwards, whatever order replicas report in.
_RECORD_FIRED = lua_script("harrier.scheduler", "record_fired")
_CLAIM_TICK = lua_script("harrier.scheduler", "claim_tick")
_TAKE_PENDING = lua_script("harrier.scheduler", "take_pending_fire")

_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def tick_iso(tick: datetime) -> str:
    """The UTC ISO-8601 spelling of a tick used in keys: 2024-01-01T00:00:00Z."""
    if tick.tzinfo is None or tick.utcoffset() is None:
        raise ValueError(f"tick must be a timezone-aware datetime, got naive {tick!r}")
    return tick.astimezone(UTC).isoformat().replace("+00:00", "Z")


def claim_key(trigger_key: str, tick: datetime) -> str:
    return f"{CLAIM_PREFIX}{trigger_key}:{tick_iso(tick)}"


@dataclass(frozen=True)
class PendingFire:
    """A claimed tick whose execution may not exist yet: what completing it needs."""

    trigger_key: str
    tick: datetime
    execution_id: str
    owner: str
    claimed_at: float  # epoch seconds
    details: dict[str, Any]  # why, record, inputs, labels: as fire_tick was called

    def to_json(self) -> str:
        return json.dumps({"trigger": self.trigger_key, "tick": tick_iso(self.tick),
                           "executionId": self.execution_id, "owner": self.owner,
                           "at": self.claimed_at, **self.details}, sort_keys=True)

    @classmethod
    def from_json(cls, raw: bytes | str) -> PendingFire:
        data = json.loads(raw)
        tick = datetime.fromisoformat(data.pop("tick").replace("Z", "+00:00"))
        return cls(data.pop("trigger"), tick, data.pop("executionId"), data.pop("owner"),
                   float(data.pop("at")), data)


def claim_tick(redis_client: redis.Redis, trigger_key: str, tick: datetime,
               ttl_seconds: int = DEFAULT_CLAIM_TTL_SECONDS, *,
               owner: str = "1", pending: PendingFire | None = None) -> bool:
    """True for exactly one caller per (trigger_key, tick) within the TTL.

    `trigger_key` names the trigger, e.g. "namespace/flow_id/trigger_id";
    `owner` (e.g. a replica id) is stored as the value, for operators.
    `pending`: recorded in the same step when the claim is won, until
    fire_done(); another replica completes it if this one dies first.
    Raises StoreUnavailable if Redis cannot be reached: not firing is the
    safe answer, the tick will be recovered once Redis is back.
    """
    if ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
    key = claim_key(trigger_key, tick)
    try:
        return bool(redis_client.eval(_CLAIM_TICK, 2, key, PENDING_KEY, owner, ttl_seconds,
                                      pending.to_json() if pending is not None else ""))
    except _REDIS_DOWN as exc:
        raise StoreUnavailable(f"cannot claim tick {key}: Redis unreachable ({exc})") from exc


def fire_done(redis_client: redis.Redis, trigger_key: str, tick: datetime) -> None:
    """The claimed tick's execution exists and was enqueued: nothing is pending."""
    try:
        redis_client.hdel(PENDING_KEY, claim_key(trigger_key, tick))
    except _REDIS_DOWN as exc:
        raise StoreUnavailable(f"cannot clear the pending fire of {trigger_key}: "
                               f"Redis unreachable ({exc})") from exc


def take_stale_pending_fires(redis_client: redis.Redis, older_than: float, owner: str
                             ) -> list[PendingFire]:
    """Pending fires claimed more than `older_than` seconds ago (their claimant
    died, or could not reach Redis): each is taken by exactly one caller, which
    must complete it (it becomes pending under `owner`, from now)."""
    try:
        entries = redis_client.hgetall(PENDING_KEY)
        taken = []
        moment = time.time()
        for field, raw in entries.items():
            fire = PendingFire.from_json(raw)
            if moment - fire.claimed_at < older_than:
                continue
            mine = PendingFire(fire.trigger_key, fire.tick, fire.execution_id, owner, moment,
                               fire.details)
            if redis_client.eval(_TAKE_PENDING, 1, PENDING_KEY, field, raw, mine.to_json()):
                taken.append(mine)
        return taken
    except _REDIS_DOWN as exc:
        raise StoreUnavailable(f"cannot read pending fires: Redis unreachable ({exc})") from exc


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
