"""Kestra's KV API (/api/v1/namespaces/{namespace}/kv) over an embedded
Harrier, and `harrier kv` on a real Redis; a value put through the API is
what a flow's kv() reads."""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner

from harrier.cli.kv import kv_group
from harrier.common.redis_store import RedisStore
from tests.fixtures.redis_server import RedisServer
from tests.scheduler.api.conftest import Api, unique


def test_put_get_list_and_delete_like_kestra(api: Api) -> None:
    ns = unique("kv")
    base = f"/api/v1/namespaces/{ns}/kv"
    c = api.client
    assert c.put(f"{base}/conf", content='{"executors": 4}',
                 headers={"Content-Type": "application/json", "ttl": "P1D",
                          "description": "spark settings"}).status_code == 204
    assert c.put(f"{base}/greeting", content="hello there",
                 headers={"Content-Type": "text/plain"}).status_code == 204
    assert c.get(f"{base}/conf").json() == {"type": "JSON", "value": {"executors": 4}}
    assert c.get(f"{base}/greeting").json() == {"type": "STRING", "value": "hello there"}
    listed = {e["key"]: e for e in c.get(base).json()}
    assert set(listed) == {"conf", "greeting"}
    assert listed["conf"]["description"] == "spark settings"
    assert listed["conf"]["expirationDate"] and not listed["greeting"]["expirationDate"]

    api.push(f"""
id: reads_kv
namespace: {ns}
tasks:
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ kv('greeting') }}}} x{{{{ kv('conf').executors }}}}"
""")
    done = api.run(ns, "reads_kv")
    assert done["state"]["current"] == "SUCCESS"
    assert done["taskRunList"][0]["outputs"]["value"] == "hello there x4"

    assert c.delete(f"{base}/greeting").json() is True
    assert c.delete(f"{base}/greeting").json() is False
    assert c.get(f"{base}/greeting").status_code == 404
    assert c.request("DELETE", base, json={"keys": ["conf", "nope"]}).json() == \
        {"keys": ["conf"]}
    assert c.get(base).json() == []


def test_bad_keys_and_bodies_are_refused(api: Api) -> None:
    base = "/api/v1/namespaces/ns/kv"
    assert api.client.put(f"{base}/bad%20key", content="1").status_code == 400
    assert api.client.put(f"{base}/k", content="1", headers={"ttl": "soon"}).status_code == 400
    assert api.client.put(f"{base}/k", content="x" * (1024 * 1024 + 1)).status_code == 413


def test_cli_sets_gets_lists_and_deletes(redis_server: RedisServer, tmp_path: Path) -> None:
    @click.group()
    def harrier() -> None:
        """`harrier kv` as the CLI registers it."""

    harrier.add_command(kv_group)
    env = {"HARRIER_BROKER_URL": redis_server.url, "HARRIER_STORE_URL": "",
           "HARRIER_WORK_DIR": str(tmp_path)}

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(harrier, ["kv", *args], env=env)
        return result.exit_code, result.output

    assert run("set", "team", "rows", "42", "--ttl", "PT1H")[0] == 0
    assert run("set", "team", "name", "42", "--string")[0] == 0
    assert run("get", "team", "rows") == (0, "42\n")
    assert run("get", "team", "name") == (0, '"42"\n')
    code, listing = run("list", "team")
    assert code == 0 and "rows" in listing and "name" in listing
    store = RedisStore.from_url(redis_server.url)
    try:
        assert store.kv_get("team", "rows").value == 42  # type: ignore[union-attr]
    finally:
        store.close()
    assert run("delete", "team", "rows")[0] == 0
    code, output = run("get", "team", "rows")
    assert code == 1 and "no value for key 'rows'" in output
    code, output = run("set", "team", "bad key", "1")
    assert code == 1 and "invalid" in output


def test_a_value_set_with_a_kv_type_is_answered_with_that_type(api: Api) -> None:
    ns = unique("kv")
    api.push(f"""
id: sets_typed
namespace: {ns}
tasks:
  - id: when
    type: io.kestra.plugin.core.kv.Set
    key: last_run
    value: "2024-01-31T10:00:00Z"
    kvType: DATETIME
""")
    assert api.run(ns, "sets_typed")["state"]["current"] == "SUCCESS"
    assert api.client.get(f"/api/v1/namespaces/{ns}/kv/last_run").json() == \
        {"type": "DATETIME", "value": "2024-01-31T10:00:00Z"}
