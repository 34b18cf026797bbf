"""The KV store in embedded mode and on a real Redis with real workers: the
kv.* tasks and kv() in templates, ttl expiry, missing keys; the stores alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from harrier.common.kv import KVError, new_entry, typed_value
from harrier.common.memory_store import MemoryStore
from harrier.common.redis_store import RedisStore
from harrier.common.state import State
from harrier.common.store import ExecutionStore
from tests.fixtures.modes import Harrier
from tests.fixtures.redis_server import RedisServer
from tests.integration.embedded import task_run, wait_for

PIPELINE = """
id: kv_pipeline
namespace: team.spark
tasks:
  - id: last_run
    type: io.kestra.plugin.core.kv.Set
    key: last_partition
    value: "2024-01-0{{ 1 + 1 }}"
  - id: config
    type: io.kestra.plugin.core.kv.Set
    key: spark_conf
    namespace: shared
    value:
      executors: 4
      memory: 2g
    ttl: P1D
  - id: keep
    type: io.kestra.plugin.core.kv.Set
    key: last_partition
    value: never written
    overwrite: false
    allowFailure: true
  - id: read_back
    type: io.kestra.plugin.core.kv.Get
    key: last_partition
  - id: use
    type: io.kestra.plugin.core.debug.Return
    format: "{{ kv('last_partition') }} {{ kv('spark_conf', 'shared').executors }}"
  - id: missing
    type: io.kestra.plugin.core.kv.Get
    key: nothing_here
  - id: keys
    type: io.kestra.plugin.core.kv.GetKeys
    prefix: last
  - id: drop
    type: io.kestra.plugin.core.kv.Delete
    key: last_partition
  - id: drop_again
    type: io.kestra.plugin.core.kv.Delete
    key: last_partition
"""


def test_kv_tasks_and_the_kv_function(harrier: Harrier) -> None:
    done = harrier.run(PIPELINE)
    assert done.state.current == State.WARNING  # `keep`: overwrite false, allowed to fail
    assert "overwrite" in (task_run(done, "keep").error or "")
    assert task_run(done, "read_back").outputs["value"] == "2024-01-02"
    assert task_run(done, "use").outputs["value"] == "2024-01-02 4"
    assert task_run(done, "missing").outputs["value"] is None
    assert task_run(done, "keys").outputs["keys"] == ["last_partition"]
    assert task_run(done, "drop").outputs["deleted"] is True
    assert task_run(done, "drop_again").outputs["deleted"] is False
    assert harrier.store.kv_get("team.spark", "last_partition") is None
    conf = harrier.store.kv_get("shared", "spark_conf")
    assert conf is not None and conf.value == {"executors": 4, "memory": "2g"}
    assert conf.expires is not None and conf.created is not None
    assert timedelta(hours=23) < conf.expires - conf.created <= timedelta(days=1)


def test_missing_keys_fail_where_kestra_fails(harrier: Harrier) -> None:
    done = harrier.run("""
id: kv_missing
namespace: team
tasks:
  - id: strict_get
    type: io.kestra.plugin.core.kv.Get
    key: absent
    errorOnMissing: true
    allowFailure: true
  - id: strict_delete
    type: io.kestra.plugin.core.kv.Delete
    key: absent
    errorOnMissing: true
    allowFailure: true
  - id: lenient
    type: io.kestra.plugin.core.debug.Return
    format: "[{{ kv('absent', errorOnMissing=false) }}]"
  - id: fallback
    type: io.kestra.plugin.core.debug.Return
    format: "{{ kv('absent', errorOnMissing=false) ?? '2024-01-01' }}"
  - id: template
    type: io.kestra.plugin.core.debug.Return
    format: "{{ kv('absent') }}"
""")
    assert done.state.current == State.FAILED
    assert "absent" in (task_run(done, "strict_get").error or "")
    assert task_run(done, "strict_delete").state.current == State.WARNING
    assert task_run(done, "lenient").outputs["value"] == "[]"  # null prints nothing
    assert task_run(done, "fallback").outputs["value"] == "2024-01-01"
    assert "no KV value for key 'absent'" in (task_run(done, "template").error or "")


def test_kv_type_converts_the_value_and_kv_returns_it_typed(harrier: Harrier) -> None:
    done = harrier.run("""
id: kv_typed
namespace: team.typed
tasks:
  - {id: n, type: io.kestra.plugin.core.kv.Set, key: n, value: "4{{ 1 + 1 }}", kvType: NUMBER}
  - {id: f, type: io.kestra.plugin.core.kv.Set, key: f, value: "3.5", kvType: NUMBER}
  - {id: b, type: io.kestra.plugin.core.kv.Set, key: b, value: " TRUE ", kvType: BOOLEAN}
  - id: dt
    type: io.kestra.plugin.core.kv.Set
    key: dt
    value: "2024-01-31T10:00:00+02:00"
    kvType: DATETIME
  - {id: d, type: io.kestra.plugin.core.kv.Set, key: d, value: "2024-01-31", kvType: DATE}
  - {id: dur, type: io.kestra.plugin.core.kv.Set, key: dur, value: PT90M, kvType: DURATION}
  - id: j
    type: io.kestra.plugin.core.kv.Set
    key: j
    value: '{"a": [1, 2]}'
    kvType: JSON
  - {id: s, type: io.kestra.plugin.core.kv.Set, key: s, value: 42, kvType: STRING}
  - id: bad
    type: io.kestra.plugin.core.kv.Set
    key: bad
    value: forty-two
    kvType: NUMBER
    allowFailure: true
  - id: use
    type: io.kestra.plugin.core.debug.Return
    format: "{{ kv('n') + 1 }} {{ kv('f') * 2 }} {{ kv('b') }} {{ kv('j').a[1] }}"
  - {id: get, type: io.kestra.plugin.core.kv.Get, key: n}
""")
    assert done.state.current == State.WARNING, done.error
    bad = task_run(done, "bad")
    assert bad.state.current == State.WARNING
    assert "is not of kvType NUMBER: expected a number" in (bad.error or "")
    assert "'forty-two'" in (bad.error or "")
    assert harrier.store.kv_get("team.typed", "bad") is None  # nothing stored
    assert task_run(done, "use").outputs["value"] == "43 7.0 true 2"
    assert task_run(done, "get").outputs["value"] == 42
    stored = {key: harrier.store.kv_get("team.typed", key)
              for key in ("n", "f", "b", "dt", "d", "dur", "j", "s")}
    assert {k: e.value for k, e in stored.items() if e is not None} == {
        "n": 42, "f": 3.5, "b": True, "dt": "2024-01-31T08:00:00Z", "d": "2024-01-31",
        "dur": "PT1H30M", "j": {"a": [1, 2]}, "s": "42"}
    # The type it was set with is kept (the API's GET answers it).
    assert {k: e.type for k, e in stored.items() if e is not None} == {
        "n": "NUMBER", "f": "NUMBER", "b": "BOOLEAN", "dt": "DATETIME", "d": "DATE",
        "dur": "DURATION", "j": "JSON", "s": "STRING"}


@pytest.mark.parametrize(("kind", "value"), [
    ("NUMBER", "1,5"), ("NUMBER", "true"), ("BOOLEAN", "yes"), ("DATETIME", "yesterday"),
    ("DATE", "31/01/2024"), ("DURATION", "90 minutes"), ("JSON", "{a: 1"), ("STRING", None)])
def test_a_value_that_does_not_fit_its_kv_type_is_refused(kind: str, value: object) -> None:
    with pytest.raises(KVError, match=f"is not of kvType {kind}: expected"):
        typed_value(kind, value, "k")


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[ExecutionStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    if not server.running:
        server.start()
    server.client().flushall()
    made = RedisStore.from_url(server.url)
    yield made
    made.close()


def test_a_value_with_a_ttl_expires(store: ExecutionStore) -> None:
    store.kv_put(new_entry("ns", "short", "v", ttl=timedelta(milliseconds=200)))
    store.kv_put(new_entry("ns", "long", [1, 2]))
    assert store.kv_get("ns", "short") is not None
    wait_for(lambda: store.kv_get("ns", "short") is None, timeout=30)
    assert [e.key for e in store.kv_list("ns")] == ["long"]
    assert store.kv_get("ns", "long").value == [1, 2]  # type: ignore[union-attr]


def test_bad_keys_and_values_are_refused() -> None:
    with pytest.raises(KVError, match=r"key '\.\./etc'"):
        new_entry("ns", "../etc", 1)
    with pytest.raises(KVError, match="namespace"):
        new_entry("a:b", "k", 1)
    with pytest.raises(KVError, match="bytes"):
        new_entry("ns", "k", "x" * (1024 * 1024 + 1))
