"""Webhook triggers: the key decides (404 and nothing created otherwise),
bodies over the limit are 413, and body, headers and query string reach the
execution as data, never as templates."""

from __future__ import annotations

from tests.scheduler.api.conftest import Api, unique

HOOK = """
id: {id}
namespace: api.hooks
inputs:
  - id: name
    type: STRING
    defaults: nobody
tasks:
  - id: echo
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ inputs.name }}}}|{{{{ trigger.body.name ?? trigger.body }}}}"
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: {key}
    inputs:
      name: "{{{{ trigger.body.name ?? 'plain' }}}}"
  - id: off
    type: io.kestra.plugin.core.trigger.Webhook
    key: disabledkey
    disabled: true
"""


def _hook(api: Api) -> tuple[str, str]:
    flow_id, key = unique(), unique("k")
    api.push(HOOK.format(id=flow_id, key=key))
    return flow_id, key


def _messages(api: Api, execution_id: str) -> list[str]:
    api.runtime.store.wait_terminal(execution_id, 30)
    return [e["message"] for e in api.client.get(f"/api/v1/logs/{execution_id}").json()]


def test_post_with_the_key_starts_an_execution_with_body_headers_and_parameters(
        api: Api) -> None:
    flow_id, key = _hook(api)
    response = api.client.post(f"/api/v1/executions/webhook/api.hooks/{flow_id}/{key}",
                               json={"name": "Ada"}, params={"day": ["mon", "tue"]},
                               headers={"X-Source": "tests", "Authorization": "Bearer s3cret"})
    assert response.status_code == 200
    execution = response.json()
    trigger = execution["trigger"]
    assert trigger["body"] == {"name": "Ada"}
    assert trigger["headers"]["x-source"] == ["tests"]
    assert "authorization" not in trigger["headers"]
    assert trigger["parameters"] == {"day": ["mon", "tue"]}
    assert trigger["id"] == "hook"
    assert execution["inputs"] == {"name": "Ada"}
    assert _messages(api, execution["id"]) == ["Ada|Ada"]


def test_get_and_put_work_and_text_bodies_stay_text(api: Api) -> None:
    flow_id, key = _hook(api)
    url = f"/api/v1/executions/webhook/api.hooks/{flow_id}/{key}"
    got = api.client.get(url)
    assert got.status_code == 200 and got.json()["trigger"]["body"] is None
    put = api.client.put(url, content=b"just text, not json")
    assert put.status_code == 200
    assert put.json()["trigger"]["body"] == "just text, not json"
    assert _messages(api, put.json()["id"]) == ["plain|just text, not json"]


def test_webhook_with_wrong_key_is_404_and_creates_nothing(api: Api) -> None:
    flow_id, key = _hook(api)
    for path in (f"api.hooks/{flow_id}/{key}x", f"api.hooks/{flow_id}/disabledkey",
                 f"api.hooks/nosuchflow/{key}", f"other/{flow_id}/{key}"):
        response = api.client.post(f"/api/v1/executions/webhook/{path}", json={})
        assert response.status_code == 404, path
    assert api.count("api.hooks", flow_id) == 0


def test_a_disabled_flow_does_not_answer_its_webhook(api: Api) -> None:
    flow_id, key = unique(), unique("k")
    api.push(HOOK.format(id=flow_id, key=key) + "disabled: true\n")
    response = api.client.post(f"/api/v1/executions/webhook/api.hooks/{flow_id}/{key}")
    assert response.status_code == 404
    assert api.count("api.hooks", flow_id) == 0


def test_bodies_over_the_limit_are_413_even_without_content_length(api: Api) -> None:
    flow_id, key = _hook(api)
    url = f"/api/v1/executions/webhook/api.hooks/{flow_id}/{key}"
    limit = api.runtime.settings.webhook_max_body
    declared = api.client.post(url, content=b"x" * (limit + 1))
    assert declared.status_code == 413

    def chunks():  # streamed: chunked transfer encoding, no Content-Length
        for _ in range(limit // 65536 + 2):
            yield b"y" * 65536

    streamed = api.client.post(url, content=chunks())
    assert streamed.status_code == 413
    assert api.count("api.hooks", flow_id) == 0
    at_limit = api.client.post(url, content=b"z" * limit)
    assert at_limit.status_code == 200


def test_template_syntax_in_a_body_is_data_not_a_template(api: Api) -> None:
    flow_id, key = _hook(api)
    payload = "{{ 7 * 7 }}{% for x in range(3) %}x{% endfor %}"
    response = api.client.post(f"/api/v1/executions/webhook/api.hooks/{flow_id}/{key}",
                               json={"name": payload})
    assert response.status_code == 200
    assert response.json()["inputs"] == {"name": payload}
    assert _messages(api, response.json()["id"]) == [f"{payload}|{payload}"]



def test_the_answer_is_the_created_execution_pinned_to_the_latest_revision(api: Api) -> None:
    flow_id, key = _hook(api)
    updated = HOOK.format(id=flow_id, key=key).replace("nobody", "somebody")
    api.client.put(f"/api/v1/flows/api.hooks/{flow_id}", content=updated,
                   headers={"Content-Type": "application/x-yaml"}).raise_for_status()
    answer = api.client.post(f"/api/v1/executions/webhook/api.hooks/{flow_id}/{key}").json()
    assert answer["state"]["current"] == "CREATED"
    assert answer["flowRevision"] == 2
    stored = api.runtime.store.wait_terminal(answer["id"], 30)
    assert stored.flow_revision == 2 and stored.inputs == {"name": "plain"}
