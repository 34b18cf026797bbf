"""Kestra's execution and task-run states, the transitions between them, and
the one function every state change goes through."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from harrier.common.errors import IllegalTransition


class State(StrEnum):
    CREATED = "CREATED"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    RETRYING = "RETRYING"
    RESTARTED = "RESTARTED"
    RETRIED = "RETRIED"  # ended; a new execution makes the next attempt (CREATE_NEW_EXECUTION)
    SUCCESS = "SUCCESS"
    WARNING = "WARNING"
    FAILED = "FAILED"
    KILLING = "KILLING"
    KILLED = "KILLED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"

    @property
    def terminated(self) -> bool:
        return self in TERMINAL

    @property
    def failed(self) -> bool:
        return self in (State.FAILED, State.KILLED, State.CANCELLED)


# An execution a kill or a cancel is stopping or has stopped: nothing more of
# it starts.
STOPPING = frozenset({State.KILLING, State.KILLED, State.CANCELLED})
TERMINAL = frozenset(
    {State.SUCCESS, State.WARNING, State.FAILED, State.KILLED, State.CANCELLED, State.SKIPPED,
     State.RETRIED}
)

# Which states may follow which. RESTARTED re-opens a finished execution
# (Kestra's restart); KILLING may interrupt anything still alive.
_ALLOWED: dict[State, frozenset[State]] = {
    State.CREATED: frozenset({State.QUEUED, State.RUNNING, State.KILLING, State.KILLED,
                              State.CANCELLED, State.FAILED, State.SKIPPED}),
    State.QUEUED: frozenset({State.RUNNING, State.KILLING, State.KILLED, State.CANCELLED,
                             State.FAILED}),
    State.RUNNING: frozenset({State.SUCCESS, State.WARNING, State.FAILED, State.RETRYING,
                              State.PAUSED, State.KILLING, State.KILLED, State.RETRIED}),
    State.RETRYING: frozenset({State.RUNNING, State.FAILED, State.KILLING, State.KILLED,
                               State.RETRIED}),
    State.PAUSED: frozenset({State.RUNNING, State.KILLING, State.KILLED, State.FAILED,
                             State.CANCELLED}),
    State.RESTARTED: frozenset({State.RUNNING, State.KILLING, State.KILLED, State.FAILED}),
    State.KILLING: frozenset({State.KILLED}),
    State.SUCCESS: frozenset({State.RESTARTED}),
    State.WARNING: frozenset({State.RESTARTED}),
    State.FAILED: frozenset({State.RESTARTED}),
    State.KILLED: frozenset({State.RESTARTED}),
    State.CANCELLED: frozenset(),
    State.SKIPPED: frozenset(),
    State.RETRIED: frozenset(),
}


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """Kestra's timestamp format: ISO-8601 in UTC with a Z and milliseconds."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class StateHistory:
    state: State
    date: datetime

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state.value, "date": iso(self.date)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StateHistory:
        return cls(State(data["state"]), parse_iso(data["date"]))


@dataclass
class StateRecord:
    """Kestra's `state` object: the current state and every change before it."""

    current: State = State.CREATED
    histories: list[StateHistory] = field(default_factory=list)

    def clone(self) -> StateRecord:
        # History entries are never changed once appended: sharing them is safe.
        return StateRecord(self.current, list(self.histories))

    @classmethod
    def start(cls, state: State = State.CREATED, at: datetime | None = None) -> StateRecord:
        return cls(state, [StateHistory(state, at or now())])

    @property
    def start_date(self) -> datetime | None:
        return self.histories[0].date if self.histories else None

    @property
    def end_date(self) -> datetime | None:
        return self.histories[-1].date if self.current.terminated and self.histories else None

    def duration_seconds(self) -> float | None:
        if not self.histories:
            return None
        end = self.end_date or now()
        return (end - self.histories[0].date).total_seconds()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "current": self.current.value,
            "histories": [h.to_json() for h in self.histories],
            "startDate": iso(self.start_date) if self.start_date else None,
        }
        if self.end_date:
            data["endDate"] = iso(self.end_date)
            data["duration"] = f"PT{self.duration_seconds():.3f}S"
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StateRecord:
        return cls(State(data["current"]), [StateHistory.from_json(h) for h in data["histories"]])


def can_transition(current: State, new: State) -> bool:
    return new in _ALLOWED[current]


def transition(record: StateRecord, new: State, *, at: datetime | None = None,
               what: str = "execution") -> None:
    """Move `record` to `new`, appending to its history; the only way states change."""
    if record.current == new:
        return
    if not can_transition(record.current, new):
        raise IllegalTransition(f"{what} cannot go from {record.current} to {new}")
    record.current = new
    record.histories.append(StateHistory(new, at or now()))
