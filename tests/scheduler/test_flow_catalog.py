"""The flow catalog: flows from a directory (pushed to the store) and from the
store, changes picked up on refresh, invalid files reported and skipped."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import redis

from harrier.common.memory_store import MemoryStore
from harrier.scheduler.flow_catalog import FlowCatalog, MemoryOrigins, RedisOrigins


def _flow(flow_id: str, cron: str = "0 * * * *", *, disabled: str = "false",
          namespace: str = "cat.test") -> str:
    return f"""id: {flow_id}
namespace: {namespace}
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: hourly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "{cron}"
    disabled: {disabled}
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    # Make the change visible even on file systems with coarse timestamps.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def _ids(catalog: FlowCatalog) -> set[str]:
    return {f"{ns}.{flow}.{trigger}" for ns, flow, trigger in catalog.schedules()}


def test_flows_load_recursively_and_are_pushed_once_to_the_store(tmp_path: Path) -> None:
    store = MemoryStore()
    _write(tmp_path / "a.yaml", _flow("a"))
    _write(tmp_path / "team" / "b.yml", _flow("b"))
    _write(tmp_path / "notes.txt", "not a flow")
    catalog = FlowCatalog(tmp_path, store)
    assert catalog.refresh()
    assert _ids(catalog) == {"cat.test.a.hourly", "cat.test.b.hourly"}
    assert [r.revision for r in store.list_flows()] == [1, 1]
    restarted = FlowCatalog(tmp_path, store)
    restarted.refresh()
    assert [r.revision for r in store.list_flows()] == [1, 1]


def test_an_invalid_file_is_reported_with_its_line_and_the_others_still_fire(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write(tmp_path / "good.yaml", _flow("good"))
    _write(tmp_path / "bad.yaml", _flow("bad", cron="61 * * * *"))
    catalog = FlowCatalog(tmp_path, MemoryStore())
    with caplog.at_level(logging.ERROR, logger="harrier.scheduler.catalog"):
        catalog.refresh()
    assert _ids(catalog) == {"cat.test.good.hourly"}
    assert any("bad.yaml:" in r.getMessage() and "triggers[0]" in r.getMessage()
               for r in caplog.records)


def test_a_changed_file_replaces_its_schedule_on_the_next_refresh(tmp_path: Path) -> None:
    store = MemoryStore()
    _write(tmp_path / "a.yaml", _flow("a"))
    catalog = FlowCatalog(tmp_path, store)
    catalog.refresh()
    version = catalog.version
    assert not catalog.refresh()  # nothing changed: nothing re-read
    _write(tmp_path / "a.yaml", _flow("a", cron="*/5 * * * *"))
    assert catalog.refresh()
    assert catalog.version == version + 1
    (entry,) = catalog.schedules().values()
    assert entry.trigger.cron == "*/5 * * * *"
    assert store.get_flow("cat.test", "a").revision == 2


def test_an_invalid_edit_keeps_the_last_valid_version_firing(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", _flow("a"))
    catalog = FlowCatalog(tmp_path, MemoryStore())
    catalog.refresh()
    _write(tmp_path / "a.yaml", "id: a\nnamespace: cat.test\ntasks: nope\n")
    catalog.refresh()
    (entry,) = catalog.schedules().values()
    assert entry.trigger.cron == "0 * * * *"


def test_disabled_flows_and_triggers_do_not_fire(tmp_path: Path) -> None:
    _write(tmp_path / "off.yaml", _flow("off", disabled="true"))
    _write(tmp_path / "flow_off.yaml", "disabled: true\n" + _flow("flow_off"))
    # Kestra's export marks deleted flows `deleted: true`: they do not fire either.
    _write(tmp_path / "gone.yaml", "deleted: true\n" + _flow("gone"))
    catalog = FlowCatalog(tmp_path, MemoryStore())
    catalog.refresh()
    assert _ids(catalog) == set()


def test_a_flow_pushed_to_the_store_fires_too(tmp_path: Path) -> None:
    store = MemoryStore()
    catalog = FlowCatalog(tmp_path, store, store_poll_seconds=0)
    catalog.refresh()
    assert _ids(catalog) == set()
    store.put_flow("cat.test", "api", _flow("api"))
    assert catalog.refresh()
    assert _ids(catalog) == {"cat.test.api.hourly"}


def test_a_file_removed_from_the_directory_stops_firing_even_after_a_restart(
        tmp_path: Path, redis_client: redis.Redis) -> None:
    store = MemoryStore()
    _write(tmp_path / "gone.yaml", _flow("gone"))
    _write(tmp_path / "kept.yaml", _flow("kept"))
    catalog = FlowCatalog(tmp_path, store, origins=RedisOrigins(redis_client),
                          store_poll_seconds=0)
    catalog.refresh()
    (tmp_path / "gone.yaml").unlink()
    assert catalog.refresh()
    assert _ids(catalog) == {"cat.test.kept.hourly"}
    # The store still holds the flow; the origins record says it came from a file.
    restarted = FlowCatalog(tmp_path, store, origins=RedisOrigins(redis_client))
    restarted.refresh()
    assert _ids(restarted) == {"cat.test.kept.hourly"}
    # Pushed again through the API with another source, it is an API flow and fires.
    store.put_flow("cat.test", "gone", _flow("gone", cron="*/10 * * * *"))
    restarted = FlowCatalog(tmp_path, store, origins=RedisOrigins(redis_client))
    restarted.refresh()
    assert _ids(restarted) == {"cat.test.kept.hourly", "cat.test.gone.hourly"}


def test_a_missing_flows_directory_is_an_empty_catalog(tmp_path: Path) -> None:
    catalog = FlowCatalog(tmp_path / "absent", MemoryStore(), origins=MemoryOrigins())
    catalog.refresh()
    assert catalog.schedules() == {}
