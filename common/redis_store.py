"""The Redis execution store of distributed mode: executions and task runs as
JSON documents (one key per task run), logs in Redis Streams, indexes by flow
and time, retention by TTL, state changes in optimistic transactions."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from harrier.common.errors import (
    ExecutionNotFound,
    FlowNotFound,
    IllegalTransition,
    StoreUnavailable,
)
from harrier.common.execution import WAITING, Execution, LogEntry, TaskRun, run_key
from harrier.common.kv import KVEntry
from harrier.common.lua import lua_script
from harrier.common.settings import Settings
from harrier.common.state import State, StateHistory, StateRecord, can_transition, now
from harrier.common.store import BlockProgress, BlockRef, ExecutionQuery, FlowRecord

T = TypeVar("T")
_LOG_MAXLEN = 200_000

# The keys of one execution, all expired together by the retention TTL. The
# Lua scripts rely on the order: the hash first, the state history last.
_EXECUTION_KEYS: tuple[tuple[str, ...], ...] = (
    (), ("runs",), ("runkeys",), ("logs",), ("beats",), ("blocks",), ("ended",),
    ("history",))
# Executions that ended, newest last (read by the Flow triggers of the
# scheduler replicas); capped, trimmed in whole nodes (MAXLEN ~).
ENDED_STREAM_MAXLEN = 100_000
_COUNTED = (State.SUCCESS, State.WARNING, State.FAILED, State.KILLED, State.SKIPPED)


class RedisStore:
    def __init__(self, client: redis.Redis, *, prefix: str = "harrier",
                 retention_seconds: int = 7 * 24 * 3600) -> None:
        # redis-py's return types are unions of bytes, str, lists...: we know
        # which each call returns (decode_responses is off), so it is untyped here.
        self.redis: Any = client
        self.prefix = prefix
        self.retention = retention_seconds
        self._put_flow = client.register_script(lua_script("harrier.common", "put_flow"))
        self._get_latest_flow = client.register_script(
            lua_script("harrier.common", "get_latest_flow"))
        # The scripts that change an execution's state keep its state indexes in step.
        state_index = lua_script("harrier.common", "state_index")
        self._task_run = client.register_script(
            state_index + lua_script("harrier.common", "get_or_create_task_run"))
        self._change_state = client.register_script(
            state_index + lua_script("harrier.common", "change_execution_state"))
        self._begin_run = client.register_script(
            state_index + lua_script("harrier.common", "begin_task_run"))
        self._end_run = client.register_script(
            state_index + lua_script("harrier.common", "end_task_run"))
        self._start_block = client.register_script(lua_script("harrier.common", "start_block"))
        self._find_run = client.register_script(lua_script("harrier.common", "find_task_run"))
        self._claim_lost = client.register_script(
            lua_script("harrier.common", "claim_lost_task_run"))
        # Revisions never change once written: remember the ones we have read.
        self._known_flows: dict[tuple[str, str, int], FlowRecord] = {}

    @classmethod
    def from_url(cls, url: str, *, patience: float = 0.0, **kwargs: Any) -> RedisStore:
        """`patience`: seconds to keep retrying a command while Redis is down.

        Workers are patient (a task that finished while Redis restarts still gets
        recorded); the API is not (it answers 503 at once).
        """
        retries = max(0, int(patience))  # backoff capped at 1 s: about 1 retry a second
        retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries)
        client = redis.Redis.from_url(
            url, socket_connect_timeout=3, socket_timeout=10, health_check_interval=30,
            retry=retry, retry_on_error=[redis.ConnectionError, redis.TimeoutError])
        return cls(client, **kwargs)

    @classmethod
    def from_settings(cls, settings: Settings, *, patience: float = 0.0) -> RedisStore:
        url = settings.effective_store_url
        if not url:
            raise StoreUnavailable("no Redis store configured: set HARRIER_STORE_URL "
                                   "(or a redis:// HARRIER_BROKER_URL)")
        return cls.from_url(url, patience=patience, retention_seconds=int(
            settings.execution_retention.total_seconds()))

    # -- keys
    @property
    def ended_stream(self) -> str:
        """The Redis stream every execution that ends is appended to (its id and state)."""
        return self._k("stream", "ended")

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _execution_keys(self, execution_id: str) -> list[str]:
        return [self._k("exec", execution_id, *suffix) for suffix in _EXECUTION_KEYS]

    # Live attempts of every execution, scored by their last heartbeat: what a
    # scheduler reads to find the task runs whose worker died (scheduler/task_rescue).
    @property
    def _live(self) -> str:
        return self._k("live")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"the Redis store is unreachable: {exc}") from exc

    # -- flows
    def put_flow(self, namespace: str, flow_id: str, source: str) -> FlowRecord:
        updated = datetime.now(UTC)
        document = json.dumps({"source": source, "updated": updated.isoformat()})
        with self._errors():
            revision = int(self._put_flow(
                keys=[self._k("flow", namespace, flow_id, "latest"),
                      self._k("flow", namespace, flow_id, "revisions"), self._k("flows"),
                      self._k("flow", namespace, flow_id, "deleted")],
                args=[source, document, f"{namespace}\x00{flow_id}"]))
        known = self._known_flows.get((namespace, flow_id, revision))
        if known is not None and known.source == source:
            return known
        record = self.get_flow(namespace, flow_id, revision)
        self._known_flows[(namespace, flow_id, revision)] = record
        return record

    def keep_flow_source(self, namespace: str, flow_id: str, source: str) -> FlowRecord:
        try:
            current = self.get_flow(namespace, flow_id)
        except FlowNotFound:
            current = None
        if current is not None and current.source == source:
            return current
        document = json.dumps({"source": source, "updated": datetime.now(UTC).isoformat()})
        with self._errors():
            # Its own counter: the flow's `latest` and the set of deployed flows
            # (what the scheduler arms) stay as they are.
            revision = -int(self.redis.incr(self._k("flow", namespace, flow_id, "one-off")))
            self.redis.hset(self._k("flow", namespace, flow_id, "revisions"), str(revision),
                            document)
        return self.get_flow(namespace, flow_id, revision)

    def get_flow(self, namespace: str, flow_id: str, revision: int | None = None) -> FlowRecord:
        with self._errors():
            if revision is None:
                # One round trip: every webhook call and execution request reads this.
                found = self._get_latest_flow(keys=[
                    self._k("flow", namespace, flow_id, "latest"),
                    self._k("flow", namespace, flow_id, "deleted"),
                    self._k("flow", namespace, flow_id, "revisions")])
                if found is None:
                    raise FlowNotFound(f"flow {namespace}.{flow_id} not found")
                revision, raw = int(found[0]), found[1]
            else:
                raw = self.redis.hget(self._k("flow", namespace, flow_id, "revisions"),
                                      str(revision))
        if raw is None:
            raise FlowNotFound(f"flow {namespace}.{flow_id} has no revision {revision}")
        data = json.loads(raw)
        return FlowRecord(namespace, flow_id, revision, data["source"],
                          datetime.fromisoformat(data["updated"]))

    def list_flows(self) -> list[FlowRecord]:
        with self._errors():
            members = sorted(m.decode() for m in self.redis.smembers(self._k("flows")))
        records = []
        for member in members:
            namespace, _, flow_id = member.partition("\x00")
            try:
                records.append(self.get_flow(namespace, flow_id))
            except FlowNotFound:
                continue  # deleted between the two reads
        return records

    def flow_revisions(self, namespace: str, flow_id: str) -> list[FlowRecord]:
        with self._errors():
            raw = self.redis.hgetall(self._k("flow", namespace, flow_id, "revisions"))
        records = []
        for revision, value in raw.items():
            if int(revision) < 0:
                continue  # a one-off run's source, not a revision of the flow
            data = json.loads(value)
            records.append(FlowRecord(namespace, flow_id, int(revision), data["source"],
                                      datetime.fromisoformat(data["updated"])))
        return sorted(records, key=lambda r: r.revision)

    def delete_flow(self, namespace: str, flow_id: str) -> None:
        with self._errors():
            removed = self.redis.srem(self._k("flows"), f"{namespace}\x00{flow_id}")
            # Revisions and the revision counter stay: executions created from
            # them must still run, and a re-created flow continues the numbering.
            self.redis.set(self._k("flow", namespace, flow_id, "deleted"), "1")
        if not removed:
            raise FlowNotFound(f"flow {namespace}.{flow_id} not found")

    # -- executions
    # An execution is a hash: `doc` (the JSON written at creation), and the parts
    # that change, each in its own field so no change rewrites the document:
    # `state`, `error`, `outputs`, `halted`; its state history is a list.
    def create_execution(self, execution: Execution) -> None:
        score = execution.start_date.timestamp()
        data = execution.to_json(reveal=True)
        data.pop("taskRunList")
        state = execution.state.current.value
        prefixes = self._state_prefixes(execution.namespace, execution.flow_id)
        with self._errors():
            pipe = self.redis.pipeline()
            pipe.hset(self._k("exec", execution.id), mapping={
                "doc": json.dumps(data), "state": state, "score": repr(score),
                "sidx": "\n".join(prefixes)})
            pipe.rpush(self._k("exec", execution.id, "history"),
                       *(_history_entry(h.state, h.date) for h in execution.state.histories))
            for index in self._scope_indexes(execution.namespace, execution.flow_id):
                pipe.zadd(index, {execution.id: score})
            for prefix in prefixes:
                pipe.zadd(f"{prefix}|{state}", {execution.id: score})
            for key, value in execution.labels.items():
                pipe.zadd(self._label_index(key, value), {execution.id: score})
            pipe.execute()

    # -- search indexes: sorted sets of execution ids scored by start time, by
    # scope (all, namespace, flow), by scope and state (moved by the Lua scripts
    # that change states, see state_index.lua) and by label. A search reads one
    # window of one index (or merges a few), so it never scans all history.
    def _scope_indexes(self, namespace: str, flow_id: str) -> tuple[str, str, str]:
        return (self._k("execs"), self._k("execs", namespace),
                self._k("execs", namespace, flow_id))

    def _state_prefixes(self, namespace: str, flow_id: str) -> tuple[str, str, str]:
        return (self._k("sx"), self._k("sx", namespace), self._k("sx", namespace, flow_id))

    def _label_index(self, key: str, value: str) -> str:
        return self._k("lx", f"{key}\x00{value}")

    def get_execution(self, execution_id: str) -> Execution:
        # One round trip: the document, the live fields, the history, the task runs.
        with self._errors():
            pipe = self.redis.pipeline(transaction=False)
            self._queue_execution_read(pipe, execution_id)
            execution = self._execution_from(*pipe.execute())
        if execution is None:
            raise ExecutionNotFound(f"execution {execution_id} not found")
        return execution

    def _queue_execution_read(self, pipe: Any, execution_id: str) -> None:
        pipe.hmget(self._k("exec", execution_id), "doc", "state", "halted", "error", "outputs")
        pipe.lrange(self._k("exec", execution_id, "history"), 0, -1)
        pipe.hvals(self._k("exec", execution_id, "runs"))

    @staticmethod
    def _execution_from(fields: list[Any], history: list[bytes],
                        runs: list[bytes]) -> Execution | None:
        doc, state, halted, error, outputs = fields
        if doc is None:
            return None
        data = json.loads(doc)
        data["taskRunList"] = []
        execution = Execution.from_json(data)
        histories = [_parse_history(entry) for entry in history]
        execution.state = StateRecord(State(state.decode()), histories)
        execution.halted = halted.decode() if halted is not None else None
        if error is not None:
            execution.error = error.decode()
        if outputs is not None:
            execution.outputs = json.loads(outputs)
        execution.task_runs = _sorted_runs(TaskRun.from_json(json.loads(r)) for r in runs)
        return execution

    def execution_head(self, execution_id: str) -> Execution:
        with self._errors():
            doc, state, halted, error = self.redis.hmget(
                self._k("exec", execution_id), "doc", "state", "halted", "error")
        if doc is None:
            raise ExecutionNotFound(f"execution {execution_id} not found")
        return _head(doc, state, error, halted)

    def execution_state(self, execution_id: str) -> State:
        with self._errors():
            raw = self.redis.hget(self._k("exec", execution_id), "state")
        if raw is None:
            raise ExecutionNotFound(f"execution {execution_id} not found")
        return State(raw.decode())

    def gate(self, execution_id: str) -> tuple[State, bool]:
        with self._errors():
            state, halted = self.redis.hmget(self._k("exec", execution_id), "state", "halted")
        if state is None:
            raise ExecutionNotFound(f"execution {execution_id} not found")
        return State(state.decode()), halted is not None

    def halt_execution(self, execution_id: str, reason: str) -> None:
        with self._errors():
            self.redis.hsetnx(self._k("exec", execution_id), "halted", reason)

    def change_execution_state(self, execution_id: str, new: State, *, error: str | None = None,
                               only_from: tuple[State, ...] = (),
                               task_run: TaskRun | None = None) -> bool:
        """Compare-and-set in one Lua call: safe when parallel branches of one
        execution, a kill and the finisher all change it at the same moment.
        `task_run` (ended, so in no heartbeat index) is saved in the same call
        if the state changes."""
        allowed = [s for s in State if can_transition(s, new)]
        if only_from:
            allowed = [s for s in allowed if s in only_from]
        keys = [self._k("exec", execution_id, *suffix) for suffix in _EXECUTION_KEYS]
        keys.append(self._k("exec", execution_id, "done"))
        keys.append(self.ended_stream)
        with self._errors():
            code, current = self._change_state(keys=keys, args=[
                new.value, ",".join(s.value for s in allowed), _history_entry(new, now()),
                error or "", "1" if new.terminated else "0", self.retention,
                "1" if new == State.RESTARTED else "0", ENDED_STREAM_MAXLEN,
                *_saved_run(task_run)])
        if code == -1:
            raise ExecutionNotFound(f"execution {execution_id} not found")
        if code == -2:
            state = State(current.decode())
            if only_from and state not in only_from:
                return False
            raise IllegalTransition(f"execution cannot go from {state} to {new}")
        return code == 1

    def set_execution_outputs(self, execution_id: str, outputs: dict) -> None:
        with self._errors():
            self.redis.hset(self._k("exec", execution_id), "outputs", json.dumps(outputs))

    def set_execution_labels(self, execution_id: str, labels: dict[str, str]) -> None:
        # Rare (a Labels task): the document is rewritten under WATCH, so two
        # Labels tasks at once both land.
        key = self._k("exec", execution_id)
        with self._errors(), self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    doc, score = pipe.hmget(key, "doc", "score")
                    if doc is None:
                        raise ExecutionNotFound(f"execution {execution_id} not found")
                    data = json.loads(doc)
                    current = {item["key"]: item["value"] for item in data.get("labels") or []}
                    merged = {**current, **labels}
                    data["labels"] = [{"key": k, "value": v} for k, v in merged.items()]
                    pipe.multi()
                    pipe.hset(key, "doc", json.dumps(data))
                    for name, value in labels.items():
                        if name in current and current[name] != value:
                            pipe.zrem(self._label_index(name, current[name]), execution_id)
                        pipe.zadd(self._label_index(name, value), {execution_id: float(score)})
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue

    def search_executions(self, query: ExecutionQuery) -> tuple[list[Execution], int]:
        low = query.start_after.timestamp() if query.start_after else "-inf"
        high = f"({query.start_before.timestamp()}" if query.start_before else "+inf"
        scope = 2 if query.namespace and query.flow_id else 1 if query.namespace else 0
        only_label = len(query.labels) == 1 and not (query.namespace or query.flow_id
                                                     or query.states)
        if query.labels and not only_label:
            # Labels are selective: walk the first label's window.
            return self._search_scan(query, self._label_index(*query.labels[0]), low, high)
        if query.flow_id and not query.namespace:
            # Flow ids are per namespace: no index for a flow id alone.
            single = len(query.states) == 1
            index = f"{self._k('sx')}|{query.states[0].value}" if single else self._k("execs")
            return self._search_scan(query, index, low, high)
        if only_label:
            indexes = [self._label_index(*query.labels[0])]
        elif query.states:
            prefix = self._state_prefixes(query.namespace or "", query.flow_id or "")[scope]
            indexes = [f"{prefix}|{state.value}" for state in dict.fromkeys(query.states)]
        else:
            indexes = [self._scope_indexes(query.namespace or "", query.flow_id or "")[scope]]
        end = query.offset + query.limit
        with self._errors():
            pipe = self.redis.pipeline(transaction=False)
            for index in indexes:
                pipe.zcount(index, low, high)
            for index in indexes:
                # One index: the page itself; several: each one's first `end`, merged.
                start = query.offset if len(indexes) == 1 else 0
                count = query.limit if len(indexes) == 1 else end
                pipe.zrevrangebyscore(index, high, low, start=start, num=count,
                                      withscores=True)
            replies = pipe.execute()
        total = sum(replies[:len(indexes)])
        hits = [(score, member.decode(), index)
                for index, found in zip(indexes, replies[len(indexes):], strict=True)
                for member, score in found]
        if len(indexes) > 1:
            hits.sort(key=lambda hit: (hit[0], hit[1]), reverse=True)
            hits = hits[query.offset:end]
        found = self._get_many([(execution_id, index) for _, execution_id, index in hits])
        return found, total

    def _search_scan(self, query: ExecutionQuery, index: str, low: float | str,
                     high: float | str) -> tuple[list[Execution], int]:
        """Walk one index's window and check the whole query on each candidate."""
        others = query.labels
        wanted_states = {s.value for s in query.states}
        matches: list[str] = []
        chunk, start = 2000, 0
        while True:
            with self._errors():
                ids = [m.decode() for m in self.redis.zrevrangebyscore(
                    index, high, low, start=start, num=chunk)]
                pipe = self.redis.pipeline(transaction=False)
                for execution_id in ids:
                    pipe.hmget(self._k("exec", execution_id), "doc", "state")
                fields = pipe.execute()
            for execution_id, (doc, state) in zip(ids, fields, strict=True):
                if doc is None:
                    self._forget(execution_id, [index])
                    continue
                data = json.loads(doc)
                labels = {lab["key"]: lab["value"] for lab in data.get("labels") or []}
                if ((query.namespace and data["namespace"] != query.namespace)
                        or (query.flow_id and data["flowId"] != query.flow_id)
                        or (wanted_states and state.decode() not in wanted_states)
                        or any(labels.get(k) != v for k, v in others)):
                    continue
                matches.append(execution_id)
            if len(ids) < chunk:
                break
            start += chunk
        page = matches[query.offset:query.offset + query.limit]
        return self._get_many([(execution_id, index) for execution_id in page]), len(matches)

    def _get_many(self, wanted: list[tuple[str, str]]) -> list[Execution]:
        """Executions in one round trip; (id, index it was found in) pairs, so an
        execution expired by retention is dropped from that index."""
        if not wanted:
            return []
        with self._errors():
            pipe = self.redis.pipeline(transaction=False)
            for execution_id, _ in wanted:
                self._queue_execution_read(pipe, execution_id)
            replies = pipe.execute()
        found: list[Execution] = []
        for position, (execution_id, index) in enumerate(wanted):
            parts = replies[position * 3:position * 3 + 3]
            execution = self._execution_from(*parts)
            if execution is None:
                self._forget(execution_id, [index])
            else:
                found.append(execution)
        return found

    def _forget(self, execution_id: str, indexes: list[str]) -> None:
        with self._errors():
            for index in indexes:
                self.redis.zrem(index, execution_id)

    def delete_execution(self, execution_id: str) -> None:
        execution = self.get_execution(execution_id)
        state = execution.state.current.value
        with self._errors():
            pipe = self.redis.pipeline()
            for suffix in (*_EXECUTION_KEYS, ("done",)):
                pipe.delete(self._k("exec", execution_id, *suffix))
            for index in self._scope_indexes(execution.namespace, execution.flow_id):
                pipe.zrem(index, execution_id)
            for prefix in self._state_prefixes(execution.namespace, execution.flow_id):
                pipe.zrem(f"{prefix}|{state}", execution_id)
            for key, value in execution.labels.items():
                pipe.zrem(self._label_index(key, value), execution_id)
            for run in execution.task_runs:
                pipe.zrem(self._live, _live_member(run))
            pipe.execute()

    def wait_terminal(self, execution_id: str, timeout: float) -> Execution:
        deadline = time.monotonic() + timeout
        done = self._k("exec", execution_id, "done")
        while True:
            if self.execution_state(execution_id).terminated:
                return self.get_execution(execution_id)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self.get_execution(execution_id)
            with self._errors():
                # Woken by the terminal transition; a short cap covers other waiters.
                self.redis.blpop([done], timeout=min(remaining, 0.5))

    # -- task runs
    def get_or_create_task_run(self, execution_id: str, task_run: TaskRun, *,
                               start_execution: bool = False) -> TaskRun:
        beat = str(time.time()) if task_run.state.current == State.RUNNING else ""
        history = _history_entry(State.RUNNING, now()) if start_execution else ""
        with self._errors():
            raw = self._task_run(
                keys=self._execution_keys(execution_id),
                args=[task_run.key, task_run.id,
                      json.dumps(task_run.to_json()), beat, history])
        return TaskRun.from_json(json.loads(raw))

    def begin_task_run(self, execution_id: str, task_run: TaskRun
                       ) -> tuple[TaskRun, bool, Execution]:
        beat = str(time.time()) if task_run.state.current == State.RUNNING else ""
        with self._errors():
            found = self._begin_run(
                keys=[*self._execution_keys(execution_id), self._live],
                args=[task_run.key, task_run.id, json.dumps(task_run.to_json()), beat,
                      _history_entry(State.RUNNING, now()),
                      _live_member(task_run) if _is_live(task_run) else "",
                      task_run.latest_key or "", repr(time.time())])
        if not found:
            raise ExecutionNotFound(f"execution {execution_id} not found")
        raw, created, state, doc, error = found
        head = _head(doc, state, error or None, None)
        # An ended execution creates nothing: hand back the run as asked, not stored.
        run = TaskRun.from_json(json.loads(raw)) if raw else task_run
        return run, bool(created), head

    def task_run(self, execution_id: str, task_run_id: str) -> TaskRun:
        with self._errors():
            raw = self.redis.hget(self._k("exec", execution_id, "runs"), task_run_id)
        if raw is None:
            raise ExecutionNotFound(f"task run {task_run_id} of execution {execution_id} "
                                    "not found")
        return TaskRun.from_json(json.loads(raw))

    def find_task_run(self, execution_id: str, task_id: str,
                      values: tuple[str, ...] = ()) -> TaskRun | None:
        with self._errors():
            raw = self._find_run(keys=[self._k("exec", execution_id, "runkeys"),
                                       self._k("exec", execution_id, "runs")],
                                 args=[run_key(task_id, values)])
        return TaskRun.from_json(json.loads(raw)) if raw else None

    def save_task_run(self, task_run: TaskRun) -> None:
        with self._errors():
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(self._k("exec", task_run.execution_id, "runs"), task_run.id,
                      json.dumps(task_run.to_json()))
            if not task_run.state.current.terminated:
                # Only end_task_run ends a run; a save of a live run reopens it.
                pipe.hdel(self._k("exec", task_run.execution_id, "ended"), task_run.id)
            beat = time.time()
            if task_run.state.current == State.RUNNING:
                pipe.hset(self._k("exec", task_run.execution_id, "beats"), task_run.id,
                          str(beat))
            if _is_live(task_run):
                pipe.zadd(self._live, {_live_member(task_run): beat})
            else:  # ended, retrying, waiting or a flowable: no heartbeat comes from it
                pipe.zrem(self._live, _live_member(task_run))
            pipe.execute()

    def task_runs(self, execution_id: str) -> list[TaskRun]:
        with self._errors():
            raw = self.redis.hvals(self._k("exec", execution_id, "runs"))
        return _sorted_runs(TaskRun.from_json(json.loads(r)) for r in raw)

    def reset_task_runs(self, execution_id: str, task_run_ids: list[str]) -> None:
        if not task_run_ids:
            return
        runs = {r.id: r for r in self.task_runs(execution_id)}
        with self._errors():
            pipe = self.redis.pipeline()
            for run_id in task_run_ids:
                # Also the end markers of a loop's iterations (end_block_item).
                pipe.hdel(self._k("exec", execution_id, "ended"), run_id)
                run = runs.get(run_id)
                if run is None:
                    continue
                pipe.hdel(self._k("exec", execution_id, "runs"), run_id)
                pipe.hdel(self._k("exec", execution_id, "runkeys"), run.key)
            pipe.execute()

    # -- blocks
    def start_block(self, block: BlockRef, total: int, window: int) -> BlockProgress:
        with self._errors():
            raw = self._start_block(keys=[self._k("exec", block.execution_id, "blocks")],
                                    args=[block.key, total, window])
        return _progress(raw, tuple(range(int(raw[4]))))

    def end_task_run(self, task_run: TaskRun, block: BlockRef, *, may_continue: bool,
                     finish: bool = False) -> BlockProgress | None:
        execution_id = task_run.execution_id
        with self._errors():
            raw = self._end_run(
                keys=[*self._execution_keys(execution_id), self._k("exec", execution_id, "done"),
                      self._live, self.ended_stream],
                args=[task_run.id, json.dumps(task_run.to_json()), task_run.state.current.value,
                      block.key, "1" if may_continue else "0", "1" if finish else "0",
                      repr(now().timestamp()), self.retention, _live_member(task_run),
                      ENDED_STREAM_MAXLEN])
        if not raw:
            return None
        claimed = int(raw[4])
        progress = _progress(raw, () if claimed < 0 else (claimed,))
        if raw[10]:
            progress = replace(progress, finished=State(raw[10].decode()))
        return progress

    def end_block_item(self, block: BlockRef, marker: str, state: State, *,
                       may_continue: bool) -> BlockProgress | None:
        execution_id = block.execution_id
        with self._errors():
            raw = self._end_run(
                keys=[*self._execution_keys(execution_id), self._k("exec", execution_id, "done"),
                      self._live, self.ended_stream],
                args=[marker, "", state.value, block.key, "1" if may_continue else "0", "0",
                      repr(now().timestamp()), self.retention, "", ENDED_STREAM_MAXLEN])
        if not raw:
            return None
        claimed = int(raw[4])
        return _progress(raw, () if claimed < 0 else (claimed,))

    def put_loop_values(self, execution_id: str, run_id: str, values: list[str]) -> None:
        # In the blocks hash, so they expire and go with the execution's other keys.
        key = self._k("exec", execution_id, "blocks")
        with self._errors():
            pipe = self.redis.pipeline(transaction=False)
            for start in range(0, len(values), _LOOP_VALUES_CHUNK):
                chunk = values[start:start + _LOOP_VALUES_CHUNK]
                pipe.hset(key, mapping={f"{run_id}\x1evalue\x1f{start + i}": value
                                        for i, value in enumerate(chunk)})
            pipe.execute()

    def loop_value(self, execution_id: str, run_id: str, index: int) -> str:
        with self._errors():
            raw = self.redis.hget(self._k("exec", execution_id, "blocks"),
                                  f"{run_id}\x1evalue\x1f{index}")
        if raw is None:
            raise ExecutionNotFound(f"value {index} of loop run {run_id} not found")
        return raw.decode()

    def block_progress(self, block: BlockRef) -> BlockProgress | None:
        prefix = f"{block.key}\x1f"
        fields = ["total", "next", "ended", "stopped", *(s.value for s in _COUNTED)]
        with self._errors():
            values = self.redis.hmget(self._k("exec", block.execution_id, "blocks"),
                                      [prefix + name for name in fields])
        if values[0] is None:
            return None
        return _progress([values[0], values[1], values[2], 1 if values[3] == b"1" else 0, 0,
                          *values[4:]], ())

    def set_block_progress(self, block: BlockRef, progress: BlockProgress | None) -> None:
        prefix = f"{block.key}\x1f"
        key = self._k("exec", block.execution_id, "blocks")
        if progress is None:
            with self._errors():
                fields = [f for f in self.redis.hkeys(key) if f.startswith(prefix.encode())]
                if fields:
                    self.redis.hdel(key, *fields)
            return
        mapping: dict[str, Any] = {prefix + "total": progress.total,
                                   prefix + "next": progress.next,
                                   prefix + "ended": progress.ended}
        mapping.update({prefix + s.value: progress.counts.get(s.value, 0) for s in _COUNTED})
        with self._errors():
            pipe = self.redis.pipeline()
            pipe.hset(key, mapping=mapping)
            if progress.stopped:
                pipe.hset(key, prefix + "stopped", "1")
            else:
                pipe.hdel(key, prefix + "stopped")
            pipe.execute()

    def beat(self, execution_id: str, task_run_id: str) -> None:
        moment = time.time()
        with self._errors():
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(self._k("exec", execution_id, "beats"), task_run_id, str(moment))
            # XX: a late beat of a run that just ended does not bring it back.
            pipe.zadd(self._live, {f"{execution_id}:{task_run_id}": moment}, xx=True)
            pipe.execute()

    def silent_task_runs(self, before: float, limit: int = 100) -> list[tuple[str, str]]:
        """(execution id, task run id) of live attempts whose last heartbeat is
        older than `before` (epoch seconds), oldest first."""
        with self._errors():
            members = self.redis.zrangebyscore(self._live, "-inf", before, start=0, num=limit)
        found = []
        for member in members:
            execution_id, _, run_id = member.decode().partition(":")
            found.append((execution_id, run_id))
        return found

    def claim_lost_task_run(self, execution_id: str, task_run_id: str, *, before: float,
                            hold_until: float) -> tuple[State, TaskRun] | None:
        """Take charge of a run whose heartbeats stopped before `before`: True for
        exactly one caller (compare-and-set on its heartbeat score, which moves to
        `hold_until`). Returns the execution's state and the run, or None."""
        with self._errors():
            found = self._claim_lost(
                keys=[self._live, self._k("exec", execution_id),
                      self._k("exec", execution_id, "ended"),
                      self._k("exec", execution_id, "runs")],
                args=[f"{execution_id}:{task_run_id}", task_run_id, repr(before),
                      repr(hold_until)])
        if not found:
            return None
        state, raw = found
        return State(state.decode()), TaskRun.from_json(json.loads(raw))

    def unmoved_executions(self, state: State, before: float, chunk: int = 2000
                           ) -> Iterator[str]:
        """Executions in `state` that have not moved on (no task run began or
        ended) since `before` (epoch seconds), by start time: the candidates for
        an execution whose next message was lost."""
        index = f"{self._k('sx')}|{state.value}"
        start = 0
        while True:
            with self._errors():
                ids = [m.decode() for m in self.redis.zrangebyscore(
                    index, "-inf", before, start=start, num=chunk)]
                pipe = self.redis.pipeline(transaction=False)
                for execution_id in ids:
                    pipe.hmget(self._k("exec", execution_id), "moved", "score")
                stamps = pipe.execute()
            for execution_id, (moved, score) in zip(ids, stamps, strict=True):
                if (moved or score) is not None and float(moved or score) < before:
                    yield execution_id
            if len(ids) < chunk:
                return
            start += chunk

    def moved_at(self, execution_id: str) -> float:
        """When the execution last moved on (a task run began or ended), or was
        created; epoch seconds."""
        with self._errors():
            moved, score = self.redis.hmget(self._k("exec", execution_id), "moved", "score")
        if moved is None and score is None:
            raise ExecutionNotFound(f"execution {execution_id} not found")
        return float(moved or score)

    def forget_live(self, execution_id: str, task_run_id: str) -> None:
        """Drop a run from the live index (its attempt was dealt with otherwise)."""
        with self._errors():
            self.redis.zrem(self._live, f"{execution_id}:{task_run_id}")

    def last_beat(self, execution_id: str, task_run_id: str) -> datetime | None:
        with self._errors():
            raw = self.redis.hget(self._k("exec", execution_id, "beats"), task_run_id)
        return None if raw is None else datetime.fromtimestamp(float(raw), UTC)

    # -- logs
    def append_log(self, entry: LogEntry) -> str:
        with self._errors():
            entry_id = self.redis.xadd(self._k("exec", entry.execution_id, "logs"),
                                       {"e": json.dumps(entry.to_json())},
                                       maxlen=_LOG_MAXLEN, approximate=True)
        return entry_id.decode()

    def read_logs(self, execution_id: str, after: str | None = None, *, limit: int = 1000,
                  block: float | None = None) -> list[LogEntry]:
        key = self._k("exec", execution_id, "logs")
        with self._errors():
            if block:
                found = self.redis.xread({key: after or "0-0"}, count=limit,
                                         block=max(1, int(block * 1000)))
                items = found[0][1] if found else []
            else:
                low = f"({after}" if after else "-"
                items = self.redis.xrange(key, low, "+", count=limit)
        return [LogEntry.from_json(json.loads(fields[b"e"]), id=entry_id.decode())
                for entry_id, fields in items]

    def read_logs_before(self, execution_id: str, before: str | None = None, *,
                         limit: int = 1000) -> list[LogEntry]:
        key = self._k("exec", execution_id, "logs")
        with self._errors():
            items = self.redis.xrevrange(key, f"({before}" if before else "+", "-", count=limit)
        return [LogEntry.from_json(json.loads(fields[b"e"]), id=entry_id.decode())
                for entry_id, fields in reversed(items)]

    def count_logs(self, execution_id: str) -> int:
        with self._errors():
            return int(self.redis.xlen(self._k("exec", execution_id, "logs")))

    # -- the KV store: one string per entry (expiring with its ttl) and a set of
    # a namespace's keys, pruned of expired ones when listed
    def kv_put(self, entry: KVEntry) -> None:
        with self._errors():
            pipe = self.redis.pipeline()
            doc = json.dumps(entry.to_doc())
            key = self._k("kv", entry.namespace, entry.key)
            if entry.expires is not None:
                pipe.set(key, doc, pxat=int(entry.expires.timestamp() * 1000))
            else:
                pipe.set(key, doc)
            pipe.sadd(self._k("kvkeys", entry.namespace), entry.key)
            pipe.execute()

    def kv_get(self, namespace: str, key: str) -> KVEntry | None:
        with self._errors():
            raw = self.redis.get(self._k("kv", namespace, key))
        if raw is None:
            return None
        entry = KVEntry.from_doc(json.loads(raw))
        return None if entry.expired else entry

    def kv_list(self, namespace: str) -> list[KVEntry]:
        with self._errors():
            keys = sorted(k.decode() for k in self.redis.smembers(self._k("kvkeys", namespace)))
            if not keys:
                return []
            docs = self.redis.mget([self._k("kv", namespace, k) for k in keys])
            gone = [k for k, doc in zip(keys, docs, strict=True) if doc is None]
            if gone:
                self.redis.srem(self._k("kvkeys", namespace), *gone)
        entries = [KVEntry.from_doc(json.loads(doc)) for doc in docs if doc is not None]
        return [e for e in entries if not e.expired]

    def kv_delete(self, namespace: str, key: str) -> bool:
        with self._errors():
            pipe = self.redis.pipeline()
            pipe.delete(self._k("kv", namespace, key))
            pipe.srem(self._k("kvkeys", namespace), key)
            deleted, _ = pipe.execute()
        return bool(deleted)

    def ping(self) -> None:
        with self._errors():
            self.redis.ping()

    def close(self) -> None:
        self.redis.close()


def _saved_run(run: TaskRun | None) -> list[str]:
    """change_execution_state.lua's optional arguments: a run to save with it."""
    if run is None:
        return []
    if not run.state.current.terminated:
        raise ValueError(f"task run {run.id} is {run.state.current}: only an ended run "
                         "is saved with its execution's state")
    return [run.id, json.dumps(run.to_json())]


def _is_live(run: TaskRun) -> bool:
    """A task's attempt runs in a worker process, which sends heartbeats (not a
    flowable, which has no process, nor a waiting run)."""
    return (run.state.current == State.RUNNING and bool(run.attempts)
            and run.attempts[-1].state.current == State.RUNNING
            and WAITING not in run.outputs)


def _live_member(run: TaskRun) -> str:
    return f"{run.execution_id}:{run.id}"


_LOOP_VALUES_CHUNK = 1000


def _head(doc: bytes, state: bytes, error: bytes | None, halted: bytes | None) -> Execution:
    data = json.loads(doc)
    data["taskRunList"] = []
    execution = Execution.from_json(data)
    execution.state.current = State(state.decode())
    execution.error = error.decode() if isinstance(error, bytes) else error
    execution.halted = halted.decode() if halted is not None else None
    return execution


def _progress(raw: list[Any], claimed: tuple[int, ...]) -> BlockProgress:
    counts = {state.value: int(raw[5 + i] or 0) for i, state in enumerate(_COUNTED)}
    return BlockProgress(total=int(raw[0] or 0), next=int(raw[1] or 0), ended=int(raw[2] or 0),
                         stopped=bool(int(raw[3] or 0)), counts=counts, claimed=claimed)


def _sorted_runs(runs: Iterable[TaskRun]) -> list[TaskRun]:
    latest = datetime.max.replace(tzinfo=UTC)
    return sorted(runs, key=lambda r: (r.state.start_date or latest, r.id))


def _history_entry(state: State, moment: datetime) -> str:
    return f"{state.value}|{moment.timestamp()!r}"


def _parse_history(entry: bytes) -> StateHistory:
    state, _, stamp = entry.decode().partition("|")
    return StateHistory(State(state), datetime.fromtimestamp(float(stamp), UTC))
