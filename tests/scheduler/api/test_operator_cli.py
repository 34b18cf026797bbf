"""`harrier executions ...` and `harrier flows ...` with click's CliRunner
against a real Redis store."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from harrier.cli.executions import executions_group
from harrier.cli.flows import flows_group
from harrier.common.execution import Attempt, LogEntry, TaskRun, new_id
from harrier.common.flow import parse_flow
from harrier.common.redis_store import RedisStore
from harrier.common.state import State, StateRecord, transition
from harrier.scheduler.executions import create_execution
from tests.fixtures.redis_server import RedisServer

FLOW = """id: nightly
namespace: ops
tasks:
  - id: work
    type: io.kestra.plugin.core.log.Log
    message: working
"""


@click.group()
def harrier() -> None:
    """The two groups as `harrier` registers them."""


harrier.add_command(executions_group)
harrier.add_command(flows_group)


@pytest.fixture
def store(redis_server: RedisServer, redis_client: object) -> Iterator[RedisStore]:
    made = RedisStore.from_url(redis_server.url)
    yield made
    made.close()


@pytest.fixture
def cli(redis_server: RedisServer, tmp_path: Path):
    env = {"HARRIER_BROKER_URL": redis_server.url, "HARRIER_STORE_URL": "",
           "HARRIER_WORK_DIR": str(tmp_path)}

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(harrier, list(args), env=env, catch_exceptions=False)

    return invoke


def finished_execution(store: RedisStore, state: State = State.SUCCESS) -> str:
    """An execution as a worker leaves it: one task run with an attempt, logs."""
    flow = parse_flow(FLOW, "nightly.yaml")
    execution = create_execution(store, flow, {}, labels={"team": "ops"})
    run = TaskRun(id=new_id(), execution_id=execution.id, namespace="ops", flow_id="nightly",
                  task_id="work", task_path="tasks.0",
                  state=StateRecord.start(State.RUNNING), attempts=[Attempt()])
    store.get_or_create_task_run(execution.id, run)
    store.change_execution_state(execution.id, State.RUNNING)
    store.append_log(LogEntry(execution.id, run.id, "work", "INFO", "working"))
    transition(run.state, State.SUCCESS if state == State.SUCCESS else State.FAILED)
    store.save_task_run(run)
    store.change_execution_state(execution.id, state)
    return execution.id


def test_flows_push_validates_then_stores_revisions(cli, store: RedisStore,
                                                     tmp_path: Path) -> None:
    good = tmp_path / "nightly.yaml"
    good.write_text(FLOW)
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nnamespace: ops\ntasks: []\n")
    refused = cli("flows", "push", str(good), str(bad))
    assert refused.exit_code == 1
    assert "bad.yaml" in refused.output and "nothing pushed" in refused.output
    assert store.list_flows() == []
    pushed = cli("flows", "push", str(good))
    assert pushed.exit_code == 0 and "ops.nightly revision 1" in pushed.output
    good.write_text(FLOW.replace("working", "harder"))
    assert "revision 2" in cli("flows", "push", str(tmp_path / "nightly.yaml")).output
    listed = cli("flows", "list")
    assert "nightly" in listed.output and " 2 " in listed.output
    shown = cli("flows", "show", "ops", "nightly", "--revision", "1")
    assert "revision 1" in shown.output and "message: working" in shown.output
    as_json = json.loads(cli("flows", "show", "ops", "nightly", "--json").output)
    assert as_json["revision"] == 2 and as_json["tasks"][0]["message"] == "harder"
    missing = cli("flows", "show", "ops", "absent")
    assert missing.exit_code == 1 and "not found" in missing.output


def test_executions_list_show_and_logs(cli, store: RedisStore) -> None:
    ok = finished_execution(store)
    failed = finished_execution(store, State.FAILED)
    listed = cli("executions", "list")
    assert listed.exit_code == 0 and ok in listed.output and failed in listed.output
    only_failed = json.loads(cli("executions", "list", "--state", "failed", "--json").output)
    assert [e["id"] for e in only_failed["results"]] == [failed]
    shown = cli("executions", "show", ok)
    assert "SUCCESS" in shown.output and "work" in shown.output and "team:ops" in shown.output
    assert json.loads(cli("executions", "show", ok, "--json").output)["id"] == ok
    assert "[work] working" in cli("executions", "logs", ok).output
    assert "[work] working" in cli("executions", "logs", ok, "--follow").output
    unknown = cli("executions", "show", "nope")
    assert unknown.exit_code == 1 and "nope not found" in unknown.output


def test_executions_kill_ends_a_waiting_execution(cli, store: RedisStore) -> None:
    flow = parse_flow(FLOW, "nightly.yaml")
    waiting = create_execution(store, flow, {})
    killed = cli("executions", "kill", waiting.id)
    assert killed.exit_code == 0 and "KILLED" in killed.output
    assert store.execution_state(waiting.id) == State.KILLED
    again = cli("executions", "kill", waiting.id)
    assert again.exit_code == 1 and "already ended" in again.output


def test_executions_restart_reopens_a_failed_execution(redis_server: RedisServer,
                                                       store: RedisStore,
                                                       tmp_path: Path) -> None:
    failed = finished_execution(store, State.FAILED)
    # A subprocess: restart configures the process's Celery app for the Redis
    # broker, which must not leak into the embedded tests sharing this process.
    env = {"HARRIER_BROKER_URL": redis_server.url, "HARRIER_WORK_DIR": str(tmp_path),
           "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    code = "from harrier.cli.executions import executions_group; executions_group()"
    done = subprocess.run([sys.executable, "-c", code, "restart", failed], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "RESTARTED" in done.stdout
    assert store.execution_state(failed) == State.RESTARTED
    refused = subprocess.run([sys.executable, "-c", code, "restart", failed], env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "must be terminated to be restarted" in refused.stderr


def test_commands_without_a_store_say_what_to_set() -> None:
    result = CliRunner().invoke(harrier, ["executions", "list"],
                                env={"HARRIER_BROKER_URL": "", "HARRIER_STORE_URL": ""})
    assert result.exit_code == 2 and "HARRIER_STORE_URL" in result.output
