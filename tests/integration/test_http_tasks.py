"""io.kestra.plugin.core.http.Request and Download against a real local HTTP
server (tests/fixtures/http_server.py), run by an embedded Harrier."""

from __future__ import annotations

import base64
import logging

import pytest

from harrier.common.errors import FlowValidationError
from harrier.common.flow import parse_flow
from harrier.common.settings import Settings
from harrier.common.state import State
from harrier.worker.embedded import EmbeddedRuntime
from tests.fixtures.http_server import CSV
from tests.integration.embedded import logs, run_flow_text, stored_bytes, task_run

SECRET = "s3cr3t/k3y+42"  # '/' and '+' change when percent-encoded in a URL


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory):
    settings = Settings(work_root=tmp_path_factory.mktemp("work"), embedded_concurrency=4,
                        secrets={"API_KEY": SECRET})
    with EmbeddedRuntime(settings) as runtime:
        yield runtime


def flow(tasks: str) -> str:
    return f"id: http\nnamespace: test\ntasks:\n{tasks}"


def test_get_returns_code_headers_and_body_as_outputs(embedded, http_server):
    execution = run_flow_text(embedded, flow(f"""
  - id: call
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/echo/items?page=2"
    headers:
      X-Team: data
  - id: show
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ outputs.call.code }}}} {{{{ fromJson(outputs.call.body).query.page[0] }}}}"
"""))
    assert execution.state.current == State.SUCCESS
    outputs = task_run(execution, "call").outputs
    assert outputs["code"] == 200
    assert outputs["headers"]["X-Echo"] == ["yes"]
    assert outputs["uri"] == f"{http_server.url}/echo/items?page=2"
    received = http_server.received("/echo/items")[-1]
    assert received.method == "GET" and received.headers["X-Team"] == "data"
    assert logs(embedded, execution, "show") == ["200 2"]


def test_post_sends_the_rendered_body_with_its_content_type(embedded, http_server):
    execution = run_flow_text(embedded, flow(f"""
  - id: post
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/echo/post"
    method: POST
    contentType: application/json
    body: |
      {{{{ {{"flow": flow.id, "n": 3}} | toJson }}}}
"""))
    assert execution.state.current == State.SUCCESS
    received = http_server.received("/echo/post")[-1]
    assert received.method == "POST"
    assert received.headers["Content-Type"] == "application/json"
    assert received.json() == {"flow": "http", "n": 3}


def test_form_data_is_url_encoded_or_multipart_with_a_downloaded_file(embedded, http_server):
    execution = run_flow_text(embedded, flow(f"""
  - id: form
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/echo/form"
    method: POST
    formData:
      user: Ada Lovelace
      count: 2
  - id: fetch
    type: io.kestra.plugin.core.http.Download
    uri: "{http_server.url}/file/orders.csv"
  - id: upload
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/echo/upload"
    method: POST
    contentType: multipart/form-data
    formData:
      data: "{{{{ outputs.fetch.uri }}}}"
      note: /etc/hostname
"""))
    assert execution.state.current == State.SUCCESS, [r.error for r in execution.task_runs]
    form = http_server.received("/echo/form")[-1]
    assert form.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form.body == b"user=Ada+Lovelace&count=2"
    upload = http_server.received("/echo/upload")[-1]
    assert upload.headers["Content-Type"].startswith("multipart/form-data")
    assert b'name="data"; filename="orders.csv"' in upload.body and CSV in upload.body
    # A path outside this execution's files is sent as text, never read.
    assert b'name="note"\r\n\r\n/etc/hostname' in upload.body


def test_an_error_answer_fails_the_task_unless_allow_failed(embedded, http_server):
    execution = run_flow_text(embedded, flow(f"""
  - id: broken
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/status/503"
"""))
    assert execution.state.current == State.FAILED
    error = task_run(execution, "broken").error
    assert error == f"GET {http_server.url}/status/503: answered 503 Service Unavailable: " \
                    "status 503"
    execution = run_flow_text(embedded, flow(f"""
  - id: tolerated
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/status/404"
    options:
      allowFailed: true
  - id: old_style
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/status/500"
    allowFailed: true
"""))
    assert execution.state.current == State.SUCCESS
    assert task_run(execution, "tolerated").outputs["code"] == 404
    assert task_run(execution, "tolerated").outputs["body"] == "status 404"
    assert task_run(execution, "old_style").outputs["code"] == 500


def test_a_500_answer_is_retried_by_the_retry_policy(embedded, http_server):
    execution = run_flow_text(embedded, flow(f"""
  - id: flaky
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/flaky/retry-test/2"
    retry:
      type: constant
      interval: PT0.1S
      maxAttempts: 3
"""))
    assert execution.state.current == State.SUCCESS
    run = task_run(execution, "flaky")
    assert [a.state.current for a in run.attempts] == [State.FAILED, State.FAILED,
                                                       State.SUCCESS]
    assert "answered 500 Internal Server Error: try again later" in run.attempts[0].error
    assert run.outputs["body"] == "ok"
    assert len(http_server.received("/flaky/retry-test")) == 3


def test_read_timeout_and_task_timeout_fail_the_task(embedded, http_server):
    execution = run_flow_text(embedded, flow(f"""
  - id: slow_answer
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/slow/3"
    options:
      timeout:
        readIdleTimeout: PT0.3S
"""))
    assert execution.state.current == State.FAILED
    assert task_run(execution, "slow_answer").error == (
        f"GET {http_server.url}/slow/3: waiting for the answer (readTimeout) timed out")
    execution = run_flow_text(embedded, flow(f"""
  - id: whole_task
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/slow/4"
    timeout: PT0.5S
"""))
    assert execution.state.current == State.FAILED
    assert "the task's timeout passed" in task_run(execution, "whole_task").error


def test_a_refused_connection_names_the_url(embedded):
    from tests.fixtures.redis_server import free_port

    url = f"http://127.0.0.1:{free_port()}/nothing"
    execution = run_flow_text(embedded, flow(f"""
  - id: nobody
    type: io.kestra.plugin.core.http.Request
    uri: "{url}"
"""))
    assert execution.state.current == State.FAILED
    assert task_run(execution, "nobody").error.startswith(f"GET {url}: ConnectError")


def test_a_secret_in_the_url_never_reaches_logs_errors_or_outputs(embedded, http_server,
                                                                   caplog):
    caplog.set_level(logging.DEBUG)
    execution = run_flow_text(embedded, flow(f"""
  - id: ok
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/echo/secret?api_key={{{{ secret('API_KEY') }}}}"
    headers:
      X-Api-Key: "{{{{ secret('API_KEY') }}}}"
  - id: refused
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/status/500?api_key={{{{ secret('API_KEY') }}}}"
"""))
    assert execution.state.current == State.FAILED
    # The server did get the key: it was sent, only hidden from everyone else.
    assert http_server.received("/echo/secret")[-1].target.endswith(f"?api_key={SECRET}")
    ok, refused = task_run(execution, "ok"), task_run(execution, "refused")
    assert ok.outputs["uri"] == f"{http_server.url}/echo/secret?api_key=******"
    # The echo server answers with the headers it got: the key is masked in the body output.
    assert '"X-Api-Key": "******"' in ok.outputs["body"]
    assert refused.error == (f"GET {http_server.url}/status/500?api_key=******: "
                             "answered 500 Internal Server Error: status 500")
    seen = "\n".join([*logs(embedded, execution), str(ok.outputs), str(refused.error),
                      caplog.text])
    assert "******" in seen
    for form in (SECRET, "s3cr3t%2Fk3y%2B42", "s3cr3t/k3y%2B42"):
        assert form not in seen


def test_download_writes_the_answer_to_a_file_output(embedded, http_server):
    execution = run_flow_text(embedded, flow(f"""
  - id: fetch
    type: io.kestra.plugin.core.http.Download
    uri: "{http_server.url}/file/..%2F..%2Fescape.csv"
  - id: count
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - wc -l < {{{{ outputs.fetch.uri }}}}
"""))
    assert execution.state.current == State.SUCCESS
    outputs = task_run(execution, "fetch").outputs
    uri = outputs["uri"]
    assert stored_bytes(embedded.settings, uri) == CSV and outputs["length"] == len(CSV)
    assert outputs["code"] == 200 and outputs["headers"]["Content-Type"] == ["text/csv"]
    # The server's name is kept to its last component: no writing elsewhere.
    fetch = task_run(execution, "fetch")
    assert uri == (f"kestra:///test/{execution.flow_id}/executions/{execution.id}/tasks/fetch/"
                   f"{fetch.id}/escape.csv")
    assert logs(embedded, execution, "count") == ["3"]


def test_download_of_an_empty_answer_fails_unless_told_otherwise(embedded, http_server):
    execution = run_flow_text(embedded, flow(f"""
  - id: nothing
    type: io.kestra.plugin.core.http.Download
    uri: "{http_server.url}/empty"
"""))
    assert execution.state.current == State.FAILED
    assert "empty body" in task_run(execution, "nothing").error
    execution = run_flow_text(embedded, flow(f"""
  - id: nothing
    type: io.kestra.plugin.core.http.Download
    uri: "{http_server.url}/empty"
    failOnEmptyResponse: false
"""))
    assert execution.state.current == State.SUCCESS
    assert task_run(execution, "nothing").outputs["length"] == 0


def test_request_refuses_a_binary_answer(embedded, http_server):
    execution = run_flow_text(embedded, flow(f"""
  - id: binary
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/binary"
"""))
    binary = task_run(execution, "binary")
    assert binary.state.current == State.FAILED
    assert "not UTF-8 text; use io.kestra.plugin.core.http.Download" in binary.error


def test_max_content_length_bounds_the_body(embedded, http_server):
    execution = run_flow_text(embedded, flow(f"""
  - id: big
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/file/a.csv"
    options:
      maxContentLength: 5
"""))
    assert execution.state.current == State.FAILED
    assert "larger than 5 bytes (options.maxContentLength)" in task_run(execution, "big").error


def test_basic_and_bearer_auth_send_the_authorization_header(embedded, http_server):
    execution = run_flow_text(embedded, flow(f"""
  - id: basic
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/echo/basic"
    options:
      auth:
        type: BASIC
        username: ada
        password: "{{{{ secret('API_KEY') }}}}"
  - id: bearer
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/echo/bearer"
    options:
      auth: {{type: BEARER, token: abc}}
"""))
    assert execution.state.current == State.SUCCESS
    expected = "Basic " + base64.b64encode(f"ada:{SECRET}".encode()).decode()
    assert http_server.received("/echo/basic")[-1].headers["Authorization"] == expected
    assert http_server.received("/echo/bearer")[-1].headers["Authorization"] == "Bearer abc"


@pytest.mark.parametrize(("extra", "message"), [
    ("options:\n      proxy: {address: p}", "unknown property 'proxy'"),
    ("encryptBody: true", "Harrier does not encrypt outputs"),
    ("options:\n      auth: {type: BEARER}", "auth type BEARER needs `token`"),
    ("options:\n      timeout: {connectTimeout: soon}", "'soon' is not an ISO-8601 duration"),
])
def test_unsupported_or_bad_properties_are_rejected_at_validation(extra, message):
    with pytest.raises(FlowValidationError) as error:
        parse_flow(flow(f"""
  - id: call
    type: io.kestra.plugin.core.http.Request
    uri: http://example.invalid/
    {extra}
"""), "flows/http.yaml")
    assert message in str(error.value)
    assert str(error.value).startswith("flows/http.yaml:")


def test_killing_the_execution_interrupts_a_waiting_request(embedded, http_server):
    from harrier.scheduler.control import kill_execution
    from harrier.scheduler.executions import create_execution, start_execution
    from tests.integration.embedded import wait_for

    parsed = parse_flow(flow(f"""
  - id: long_poll
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/slow/60"
"""), "test.yaml")
    execution = create_execution(embedded.store, parsed, {})
    start_execution(embedded.app, parsed, execution, store=embedded.store)
    wait_for(lambda: http_server.received("/slow/60"), timeout=30)
    kill_execution(embedded.store, execution.id)
    # Well before the server's 60 s answer (or the 5 min read timeout).
    done = embedded.store.wait_terminal(execution.id, 30)
    assert done.state.current == State.KILLED
    assert task_run(done, "long_poll").state.current == State.KILLED


def test_connect_timeouts_in_both_of_kestras_places(embedded, unanswered):
    execution = run_flow_text(embedded, flow(f"""
  - id: nested
    type: io.kestra.plugin.core.http.Request
    uri: "http://127.0.0.1:{unanswered}/"
    allowFailure: true
    options:
      timeout: {{connectTimeout: PT0.3S}}
  - id: flat
    type: io.kestra.plugin.core.http.Request
    uri: "http://127.0.0.1:{unanswered}/"
    options:
      connectTimeout: PT0.3S
"""))
    for task in ("nested", "flat"):
        assert task_run(execution, task).error == (
            f"GET http://127.0.0.1:{unanswered}/: connecting (connectTimeout) timed out")


def test_the_older_flat_read_timeouts_and_basic_auth_names_work(embedded, http_server):
    execution = run_flow_text(embedded, flow(f"""
  - id: read_timeout
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/slow/3"
    allowFailure: true
    options: {{readTimeout: PT0.3S}}
  - id: read_idle_timeout
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/slow/3"
    allowFailure: true
    options: {{readIdleTimeout: PT0.3S}}
  - id: old_auth
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/echo/old-auth"
    options:
      basicAuthUser: ada
      basicAuthPassword: lovelace
      # Kestra's own timeout example sets this; each call has its own
      # connection, so there is no pool to keep (Kestra ignores it too).
      connectionPoolIdleTimeout: PT10S
"""))
    for task in ("read_timeout", "read_idle_timeout"):
        assert task_run(execution, task).error.endswith("(readTimeout) timed out")
    assert task_run(execution, "old_auth").state.current == State.SUCCESS
    expected = "Basic " + base64.b64encode(b"ada:lovelace").decode()
    assert http_server.received("/echo/old-auth")[-1].headers["Authorization"] == expected


def test_redirects_are_followed_unless_told_not_to(embedded, http_server):
    execution = run_flow_text(embedded, flow(f"""
  - id: follows
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/redirect"
  - id: stays
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/redirect"
    options: {{followRedirects: false}}
"""))
    assert execution.state.current == State.SUCCESS
    assert task_run(execution, "follows").outputs["code"] == 200
    assert '"path": "/echo/redirected"' in task_run(execution, "follows").outputs["body"]
    stays = task_run(execution, "stays").outputs
    assert stays["code"] == 302 and stays["headers"]["Location"] == ["/echo/redirected"]


def test_default_charset_encodes_the_body(embedded, http_server):
    execution = run_flow_text(embedded, flow(f"""
  - id: latin
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/echo/latin"
    method: PUT
    contentType: text/plain
    body: "café"
    options: {{defaultCharset: ISO-8859-1}}
"""))
    assert execution.state.current == State.SUCCESS
    assert http_server.received("/echo/latin")[-1].body == "café".encode("latin-1")
