"""Cron schedules as Kestra's Schedule trigger understands them (5 fields, 6 with
`withSeconds`, nicknames, an IANA `timezone`), evaluated to UTC instants with
cron's daylight-saving rules. Pure functions: no clock, no I/O."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

RecoverPolicy = Literal["ALL", "LAST", "NONE"]
RECOVER_POLICIES: tuple[str, ...] = ("ALL", "LAST", "NONE")

# Kestra's nicknames (cron-utils withSupportedNickname*); @reboot is not one of them.
NICKNAMES: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_FIVE = "'minute hour day-of-month month day-of-week'"
_SIX = "'second minute hour day-of-month month day-of-week'"
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# (name, low, high, names usable instead of numbers)
_FIELDS: dict[str, tuple[int, int, tuple[str, ...]]] = {
    "second": (0, 59, ()),
    "minute": (0, 59, ()),
    "hour": (0, 23, ()),
    "day-of-month": (1, 31, ()),
    "month": (1, 12, _MONTHS),
    "day-of-week": (0, 7, _DAYS),  # 0 and 7 are both Sunday, as in Kestra
}
_PART = re.compile(r"^(?P<range>\*|\?|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:/(?P<step>[0-9]+))?$")
# Backward offset jumps (fall-back) larger than this do not occur in tzdata since 1970.
_MAX_JUMP = timedelta(hours=6)
_MICRO = timedelta(microseconds=1)


@dataclass(frozen=True)
class CronSchedule:
    """A validated cron expression bound to a timezone; build it with parse_cron."""

    expression: str  # as the user wrote it
    with_seconds: bool
    timezone: str  # IANA name
    # croniter syntax: 5 fields, or 6 with seconds LAST (croniter's default order)
    normalized: str = field(repr=False)
    # True when every hour matches: such schedules follow the real clock across DST
    # (cron's "jobs that run more frequently than hourly are scheduled normally").
    hourly_or_finer: bool = field(repr=False)
    _zone: ZoneInfo = field(repr=False, compare=False)
    _iter: croniter = field(repr=False, compare=False)
    _lock: threading.Lock = field(repr=False, compare=False)

    def __reduce__(self) -> tuple[Callable[..., CronSchedule], tuple[str, bool, str]]:
        # The lock and the croniter cache cannot be pickled; rebuild from the text.
        return _rebuild, (self.expression, self.with_seconds, self.timezone)

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    def _wall_step(self, wall: datetime, forward: bool) -> datetime:
        """Next (or previous) naive wall-clock time matching the fields, strictly."""
        with self._lock:
            self._iter.set_current(wall, force=True)
            nxt = self._iter.get_next(datetime) if forward else self._iter.get_prev(datetime)
        assert isinstance(nxt, datetime)
        return nxt


def _rebuild(expression: str, with_seconds: bool, timezone: str) -> CronSchedule:
    return parse_cron(expression, with_seconds=with_seconds, timezone=timezone)


def parse_cron(expression: str, *, with_seconds: bool = False,
               timezone: str = "UTC") -> CronSchedule:
    """Validate a Kestra cron expression; raise ValueError saying what is wrong.

    With `with_seconds` the expression has 6 fields and the seconds field comes
    FIRST, as in Kestra (cron-utils orders fields second, minute, hour, ...):
    "*/5 * * * * *" fires every 5 seconds.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError(f"{expression!r}: empty cron expression; expected "
                         f"{_SIX if with_seconds else _FIVE} or a nickname such as @daily")
    text = " ".join(expression.split())
    zone = _zone(timezone)
    if text.startswith("@"):
        fields = _nickname_fields(expression, text, with_seconds)
    else:
        fields = text.split(" ")
        names = ["second", *_FIVE_NAMES] if with_seconds else list(_FIVE_NAMES)
        if len(fields) != len(names):
            hint = ""
            if not with_seconds and len(fields) == 6:
                hint = " (a 6-field expression with seconds needs withSeconds: true)"
            elif with_seconds and len(fields) == 5:
                hint = " (withSeconds: true expects the seconds field first)"
            raise ValueError(
                f"{expression!r}: expected {len(names)} fields "
                f"{_SIX if with_seconds else _FIVE}, found {len(fields)}{hint}")
        for name, value in zip(names, fields, strict=True):
            _check_field(expression, name, value)
    # croniter wants the seconds field last unless told otherwise; we move it.
    normalized = " ".join(fields[1:] + fields[:1]) if with_seconds else " ".join(fields)
    try:
        it = croniter(normalized, datetime(2000, 1, 1))
        it.get_next(datetime)
    except CroniterBadDateError as exc:
        raise ValueError(f"{expression!r}: never matches a date (e.g. 30 February)") from exc
    except CroniterError as exc:
        raise ValueError(f"{expression!r}: invalid cron expression ({exc}); expected "
                         f"{_SIX if with_seconds else _FIVE}") from exc
    hours = it.expanded[1]
    hourly_or_finer = hours == ["*"] or len(set(hours)) == 24
    return CronSchedule(expression=expression, with_seconds=with_seconds, timezone=timezone,
                        normalized=normalized, hourly_or_finer=hourly_or_finer,
                        _zone=zone, _iter=it, _lock=threading.Lock())


_FIVE_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(f"timezone {timezone!r} is not a known IANA time zone "
                         "(expected e.g. 'UTC' or 'Europe/Paris')") from exc


def _nickname_fields(expression: str, text: str, with_seconds: bool) -> list[str]:
    base = NICKNAMES.get(text.lower())
    if base is None:
        raise ValueError(f"{expression!r}: unknown nickname; expected one of "
                         f"{', '.join(NICKNAMES)}")
    fields = base.split(" ")
    return ["0", *fields] if with_seconds else fields


def _check_field(expression: str, name: str, value: str) -> None:
    low, high, names = _FIELDS[name]
    for part in value.split(","):
        # L, W and # (last day, weekday, nth weekday) are left to croniter to judge.
        if any(c in part.upper() for c in "LW#"):
            continue
        match = _PART.match(part)
        if match is None:
            raise ValueError(f"{expression!r}: {name} field {value!r} is not valid cron "
                             "syntax (expected *, N, N-M, lists with ',' and steps with '/')")
        rng = match["range"]
        if rng == "?" and name not in ("day-of-month", "day-of-week"):
            raise ValueError(f"{expression!r}: '?' is only allowed in day-of-month or "
                             f"day-of-week, not in {name}")
        step = match["step"]
        if step is not None and int(step) == 0:
            raise ValueError(f"{expression!r}: {name} step must be at least 1, found 0")
        if rng in ("*", "?"):
            continue
        for bound in rng.split("-"):
            number = _field_number(bound, names)
            if number is None:
                allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
                raise ValueError(f"{expression!r}: {name} must be {allowed}, found {bound!r}")
            if not low <= number <= high:
                raise ValueError(f"{expression!r}: {name} must be {low}-{high}, "
                                 f"found {number}")


def _field_number(token: str, names: tuple[str, ...]) -> int | None:
    if token.isdigit():
        return int(token)
    upper = token.upper()
    if upper in names:
        # Month names count from 1, day names from 0 (SUN).
        return names.index(upper) + (1 if names is _MONTHS else 0)
    return None


# --- evaluation -------------------------------------------------------------


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {value!r}")


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def _offset(instant: datetime, zone: ZoneInfo) -> timedelta:
    off = instant.astimezone(zone).utcoffset()
    assert off is not None
    return off


def _jump_after(instant: datetime, zone: ZoneInfo) -> timedelta:
    """Size of a fall-back shortly after `instant` (0 if none)."""
    return max(timedelta(0), _offset(instant, zone) - _offset(instant + _MAX_JUMP, zone))


def _jump_before(instant: datetime, zone: ZoneInfo) -> timedelta:
    """Size of a fall-back shortly before `instant` (0 if none)."""
    return max(timedelta(0), _offset(instant - _MAX_JUMP, zone) - _offset(instant, zone))


def _transition(earlier: datetime, later: datetime, zone: ZoneInfo) -> datetime:
    """First instant in (earlier, later] whose offset differs from `earlier`'s."""
    before = _offset(earlier, zone)
    lo, hi = earlier, later  # offset(lo) == before, offset(hi) != before
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid <= lo:
            mid = lo + timedelta(seconds=1)
        if _offset(mid, zone) == before:
            lo = mid
        else:
            hi = mid
    return hi


def _instants(schedule: CronSchedule, wall: datetime) -> list[datetime]:
    """The UTC instants at which a matching wall-clock time fires.

    - normal time: one instant;
    - repeated by a fall-back: both for hourly-or-finer schedules (every real
      hour still fires), only the first for the others (never twice a day);
    - skipped by a spring-forward: nothing for hourly-or-finer schedules, the
      transition instant for the others (cron runs skipped jobs right away).
    """
    zone = schedule.zone
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    valid_first = _wall(first, zone) == wall
    if first == second:
        return [first] if valid_first else []
    if valid_first:  # ambiguous wall time
        return sorted({first, second}) if schedule.hourly_or_finer else [min(first, second)]
    if schedule.hourly_or_finer:
        return []
    return [_transition(min(first, second), max(first, second), zone)]


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def next_after(schedule: CronSchedule, after: datetime) -> datetime:
    """The first tick strictly after `after` (aware), as an aware UTC datetime."""
    _require_aware("after", after)
    after = _to_utc(after)
    zone = schedule.zone
    if schedule.timezone == "UTC":
        return schedule._wall_step(after.replace(tzinfo=None), True).replace(tzinfo=UTC)
    # Wall-clock order equals instant order except inside a fall-back overlap,
    # so start early by the size of a coming fall-back and stop once no later
    # wall time can map to an earlier instant.
    wall = _wall(after, zone) - _jump_after(after, zone)
    best: datetime | None = None
    limit: datetime | None = None
    while True:
        wall = schedule._wall_step(wall, True)
        if limit is not None and wall > limit:
            break
        for instant in _instants(schedule, wall):
            if instant > after and (best is None or instant < best):
                best = instant
                limit = _wall(best, zone) + _jump_before(best, zone)
        if limit is not None and wall >= limit:
            break  # the next wall time would be past the limit: save a croniter step
    assert best is not None
    return best


def previous_before(schedule: CronSchedule, before: datetime) -> datetime:
    """The last tick strictly before `before` (aware), as an aware UTC datetime."""
    _require_aware("before", before)
    before = _to_utc(before)
    zone = schedule.zone
    if schedule.timezone == "UTC":
        return schedule._wall_step(before.replace(tzinfo=None), False).replace(tzinfo=UTC)
    wall = _wall(before, zone) + _jump_before(before, zone)
    # get_prev is strict; nudge so a tick exactly at the start wall time is seen.
    wall = wall + _MICRO
    best: datetime | None = None
    limit: datetime | None = None
    while True:
        wall = schedule._wall_step(wall, False)
        if limit is not None and wall < limit:
            break
        for instant in _instants(schedule, wall):
            if instant < before and (best is None or instant > best):
                best = instant
                limit = _wall(best, zone) - _jump_after(best, zone)
        if limit is not None and wall <= limit:
            break
    assert best is not None
    return best


def ticks_between(schedule: CronSchedule, start: datetime, end: datetime,
                  limit: int | None = None) -> list[datetime]:
    """Ticks in (start, end], oldest first, at most `limit` of them (the earliest)."""
    _require_aware("start", start)
    _require_aware("end", end)
    ticks: list[datetime] = []
    tick = _to_utc(start)
    while limit is None or len(ticks) < limit:
        tick = next_after(schedule, tick)
        if tick > end:
            break
        ticks.append(tick)
    return ticks


def missed_ticks(schedule: CronSchedule, last_fired: datetime | None, now: datetime,
                 policy: RecoverPolicy | str = "ALL", *,
                 limit: int | None = None) -> list[datetime]:
    """Ticks to fire on recovery: those in (last_fired, now] per the policy.

    ALL (Kestra's default) returns every missed tick, oldest first (at most
    `limit`, the earliest, so a caller can recover in pages); LAST only the most
    recent; NONE nothing. A trigger that never fired (`last_fired` None) has
    missed nothing: it starts from now, as Kestra does.
    """
    if policy not in RECOVER_POLICIES:
        raise ValueError(f"recoverMissedSchedules must be one of "
                         f"{', '.join(RECOVER_POLICIES)}, found {policy!r}")
    _require_aware("now", now)
    if last_fired is None or policy == "NONE":
        return []
    _require_aware("last_fired", last_fired)
    if policy == "LAST":
        latest = previous_before(schedule, now + _MICRO)
        return [latest] if latest > last_fired else []
    return ticks_between(schedule, last_fired, now, limit)
