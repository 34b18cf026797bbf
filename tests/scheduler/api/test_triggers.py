"""/api/v1/triggers: a flow's triggers with their next fire time, disabling
and enabling them at run time (a disabled webhook answers 404), and the
refusals of bad requests. Backfills need Redis: see tests/ui."""

from __future__ import annotations

from harrier.common.state import parse_iso
from tests.scheduler.api.conftest import Api, unique

FLOW = """
id: {id}
namespace: api.triggers
tasks:
  - id: hi
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 2 * * *"
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: k3y
"""


def _disable(api: Api, flow_id: str, trigger_id: str, disabled: bool) -> int:
    response = api.client.post("/api/v1/triggers/set-disabled/by-triggers", json={
        "triggers": [{"namespace": "api.triggers", "flowId": flow_id,
                      "triggerId": trigger_id}], "disabled": disabled})
    return response.status_code


def test_a_flows_triggers_show_their_next_fire_time(api: Api) -> None:
    flow_id = unique()
    api.push(FLOW.format(id=flow_id))
    found = api.client.get(f"/api/v1/triggers/api.triggers/{flow_id}").json()
    by_id = {t["triggerId"]: t for t in found["results"]}
    assert found["total"] == 2 and not by_id["nightly"]["disabled"]
    nxt = parse_iso(by_id["nightly"]["nextExecutionDate"])
    assert (nxt.hour, nxt.minute) == (2, 0)
    assert by_id["hook"]["nextExecutionDate"] is None


def test_a_disabled_webhook_answers_404_until_enabled_again(api: Api) -> None:
    flow_id = unique()
    api.push(FLOW.format(id=flow_id))
    hook = f"/api/v1/executions/webhook/api.triggers/{flow_id}/k3y"
    assert _disable(api, flow_id, "hook", True) == 200
    assert api.client.post(hook).status_code == 404
    listed = api.client.get(f"/api/v1/triggers/api.triggers/{flow_id}").json()["results"]
    assert [t["disabled"] for t in listed] == [False, True]
    assert _disable(api, flow_id, "hook", False) == 200
    assert api.client.post(hook).status_code == 200


def test_disabling_an_unknown_trigger_is_404_and_changes_nothing(api: Api) -> None:
    flow_id = unique()
    api.push(FLOW.format(id=flow_id))
    response = api.client.post("/api/v1/triggers/set-disabled/by-triggers", json={
        "triggers": [{"namespace": "api.triggers", "flowId": flow_id, "triggerId": "hook"},
                     {"namespace": "api.triggers", "flowId": flow_id, "triggerId": "nope"}],
        "disabled": True})
    assert response.status_code == 404 and "nope" in response.json()["message"]
    hook = f"/api/v1/executions/webhook/api.triggers/{flow_id}/k3y"
    assert api.client.post(hook).status_code == 200


def test_a_backfill_without_redis_is_refused_with_the_reason(api: Api) -> None:
    flow_id = unique()
    api.push(FLOW.format(id=flow_id))
    response = api.client.put("/api/v1/triggers", json={
        "namespace": "api.triggers", "flowId": flow_id, "triggerId": "nightly",
        "backfill": {"start": "2024-01-01T00:00:00Z", "end": "2024-01-03T00:00:00Z"}})
    assert response.status_code == 409 and "Redis" in response.json()["message"]
