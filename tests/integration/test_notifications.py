"""Kestra's alert tasks (Slack and Teams incoming webhooks, a generic webhook
with http.Request, e-mail with MailSend) as `errors` handlers, against a real
local HTTP server and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from harrier.common.settings import Settings
from harrier.common.state import State
from harrier.worker.embedded import EmbeddedRuntime
from tests.fixtures.http_server import CSV
from tests.fixtures.smtp_server import PASSWORD, USER
from tests.integration.embedded import logs, run_flow_text, task_run

HOOK_SECRET = "B0123/XoXoSecretPart"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A server that accepts connections and never says a word (no SMTP
    banner): a listening socket nobody accepts on."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory, http_server):
    settings = Settings(
        work_root=tmp_path_factory.mktemp("work"), embedded_concurrency=4,
        secrets={"SLACK_WEBHOOK": f"{http_server.url}/echo/slack/T0/{HOOK_SECRET}",
                 "EMAIL_PASSWORD": PASSWORD},
        url="https://harrier.example.com")
    with EmbeddedRuntime(settings) as runtime:
        yield runtime


def test_errors_handlers_alert_slack_teams_a_webhook_and_by_mail(embedded, http_server,
                                                                 smtp_server):
    execution = run_flow_text(embedded, f"""
id: nightly
namespace: prod.etl
tasks:
  - id: report
    type: io.kestra.plugin.core.http.Download
    uri: "{http_server.url}/file/report.csv"
  - id: spark_job
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["exit 3"]
errors:
  - id: slack
    type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
    url: "{{{{ secret('SLACK_WEBHOOK') }}}}"
    payload: |
      {{
        "text": "Failure alert for flow {{{{ flow.namespace }}}}.{{{{ flow.id }}}} \
with ID {{{{ execution.id }}}}"
      }}
  - id: teams
    type: io.kestra.plugin.notifications.teams.TeamsIncomingWebhook
    url: "{http_server.url}/echo/teams"
    payload: |
      {{"@type": "MessageCard", "summary": "{{{{ flow.id }}}} failed"}}
  - id: webhook
    type: io.kestra.plugin.core.http.Request
    uri: "{http_server.url}/echo/generic"
    method: POST
    body:
      flow: "{{{{ flow.id }}}}"
      execution: "{{{{ execution.id }}}}"
  - id: mail
    type: io.kestra.plugin.notifications.mail.MailSend
    host: 127.0.0.1
    port: {smtp_server.port}
    transportStrategy: SMTP
    username: {USER}
    password: "{{{{ secret('EMAIL_PASSWORD') }}}}"
    from: harrier@example.com
    to: oncall@example.com; data@example.com
    cc: lead@example.com
    subject: "{{{{ flow.id }}}} failed"
    htmlTextContent: "<p>Flow <b>{{{{ flow.namespace }}}}.{{{{ flow.id }}}}</b> failed</p>"
    attachments:
      - name: report.csv
        uri: "{{{{ outputs.report.uri }}}}"
        contentType: text/csv
""")
    assert execution.state.current == State.FAILED
    for handler in ("slack", "teams", "webhook", "mail"):
        assert task_run(execution, handler).state.current == State.SUCCESS, \
            task_run(execution, handler).error

    slack = http_server.received("/echo/slack")[-1]
    assert slack.method == "POST" and slack.headers["Content-Type"] == "application/json"
    assert slack.json() == {"text": f"Failure alert for flow prod.etl.nightly with ID "
                                    f"{execution.id}"}
    assert http_server.received("/echo/teams")[-1].json() == {
        "@type": "MessageCard", "summary": "nightly failed"}
    assert http_server.received("/echo/generic")[-1].json() == {
        "flow": "nightly", "execution": execution.id}
    # The webhook URL is a secret: the log says where without saying it.
    assert logs(embedded, execution, "slack") == ["Slack message sent to ****** (200)"]

    mail = smtp_server.messages[-1]
    assert mail.sender == "harrier@example.com"
    assert sorted(mail.recipients) == ["data@example.com", "lead@example.com",
                                       "oncall@example.com"]
    assert mail.message["Subject"] == "nightly failed"
    assert smtp_server.logins == [USER]
    html = mail.message.get_body(("html",))
    assert html is not None and "<b>prod.etl.nightly</b>" in html.get_content()
    (attachment,) = list(mail.message.iter_attachments())
    assert attachment.get_filename() == "report.csv"
    assert attachment.get_content_type() == "text/csv"
    assert attachment.get_content().encode() == CSV
    everything = "\n".join(logs(embedded, execution))
    assert HOOK_SECRET not in everything and PASSWORD not in everything


def test_a_webhook_answering_500_is_retried_and_a_slow_one_times_out(embedded, http_server):
    execution = run_flow_text(embedded, f"""
id: alerts
namespace: test
tasks:
  - id: flaky
    type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
    url: "{http_server.url}/flaky/slack/1"
    payload: '{{"text": "hi"}}'
    retry: {{type: constant, interval: PT0.1S, maxAttempts: 2}}
  - id: slow
    type: io.kestra.plugin.notifications.teams.TeamsIncomingWebhook
    url: "{http_server.url}/slow/3"
    payload: '{{"text": "hi"}}'
    options:
      readTimeout: PT0.3S
""")
    assert execution.state.current == State.FAILED
    flaky = task_run(execution, "flaky")
    assert flaky.state.current == State.SUCCESS and len(flaky.attempts) == 2
    assert "answered 500 Internal Server Error" in flaky.attempts[0].error
    assert task_run(execution, "slow").error == (
        f"POST {http_server.url}/slow/3: waiting for the answer (readTimeout) timed out")


def test_a_payload_that_is_not_json_fails_without_retrying(embedded, http_server):
    execution = run_flow_text(embedded, f"""
id: alerts
namespace: test
tasks:
  - id: broken
    type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
    url: "{http_server.url}/echo/never"
    payload: '{{"text": "{{{{ flow.id }}}}"'
    retry: {{type: constant, interval: PT0.1S, maxAttempts: 3}}
""")
    run = task_run(execution, "broken")
    assert run.state.current == State.FAILED and len(run.attempts) == 1
    assert run.error.startswith("payload: the rendered payload is not JSON")
    assert http_server.received("/echo/never") == []


def test_mail_with_a_wrong_password_or_no_server_fails_clearly(embedded, smtp_server):
    from tests.fixtures.redis_server import free_port

    closed = free_port()
    execution = run_flow_text(embedded, f"""
id: mail
namespace: test
tasks:
  - id: wrong_password
    type: io.kestra.plugin.notifications.mail.MailSend
    allowFailure: true
    host: 127.0.0.1
    port: {smtp_server.port}
    transportStrategy: SMTP
    username: {USER}
    password: nope
    from: a@example.com
    to: b@example.com
  - id: no_server
    type: io.kestra.plugin.notifications.mail.MailSend
    host: 127.0.0.1
    port: {closed}
    transportStrategy: SMTP_TLS
    from: a@example.com
    to: b@example.com
""")
    assert task_run(execution, "wrong_password").error.startswith(
        f"smtp 127.0.0.1:{smtp_server.port}: login refused (535")
    assert task_run(execution, "no_server").error.startswith(
        f"smtp_tls 127.0.0.1:{closed}: ConnectionRefusedError")


def test_mail_embeds_images_the_html_refers_to(embedded, http_server, smtp_server):
    execution = run_flow_text(embedded, f"""
id: mail
namespace: test
tasks:
  - id: logo
    type: io.kestra.plugin.core.http.Download
    uri: "{http_server.url}/file/logo.png"
  - id: send
    type: io.kestra.plugin.notifications.mail.MailSend
    host: 127.0.0.1
    port: {smtp_server.port}
    transportStrategy: SMTP
    from: a@example.com
    to: [b@example.com]
    htmlTextContent: '<img src="cid:logo.png">'
    plainTextContent: see the logo
    embeddedImages: '[{{"name": "logo.png", "uri": "{{{{ outputs.logo.uri }}}}",
                       "contentType": "image/png"}}]'
""")
    assert execution.state.current == State.SUCCESS, task_run(execution, "send").error
    message = smtp_server.messages[-1].message
    assert message.get_body(("plain",)).get_content().strip() == "see the logo"
    (image,) = [part for part in message.walk() if part.get_content_type() == "image/png"]
    assert image["Content-ID"] == "<logo.png>"
    assert image.get_content() == CSV


def test_slack_execution_sums_up_the_failed_execution(embedded, http_server):
    execution = run_flow_text(embedded, f"""
id: nightly
namespace: prod.etl
tasks:
  - id: extract
    type: io.kestra.plugin.core.log.Log
    message: ok
  - id: spark_job
    type: io.kestra.plugin.core.execution.Fail
errors:
  - id: summary
    type: io.kestra.plugin.notifications.slack.SlackExecution
    url: "{http_server.url}/echo/slack-execution"
    channel: "#data-alerts"
    username: Harrier
    customMessage: "Nightly ingest of {{{{ flow.namespace }}}}"
    customFields:
      Team: data
""")
    assert task_run(execution, "summary").state.current == State.SUCCESS, \
        task_run(execution, "summary").error
    message = http_server.received("/echo/slack-execution")[-1].json()
    link = f"https://harrier.example.com/ui/executions/{execution.id}"
    assert message["text"].startswith(
        f"*<{link}|[prod.etl] nightly ➛ FAILED>*\n> Failed on task `spark_job` after ")
    assert message["channel"] == "#data-alerts" and message["username"] == "Harrier"
    assert message["blocks"][0]["text"]["text"] == "Nightly ingest of prod.etl"
    assert message["blocks"][1]["accessory"]["url"] == link
    (attachment,) = message["attachments"]
    assert attachment["color"] == "danger"
    assert {f["title"]: f["value"] for f in attachment["fields"]} == {
        "Namespace": "prod.etl", "Job": "nightly", "Execution": execution.id,
        "Status": "FAILED", "Team": "data"}


def test_webhook_options_headers_timeouts_size_and_charset(embedded, http_server):
    execution = run_flow_text(embedded, f"""
id: alerts
namespace: test
tasks:
  - id: with_headers
    type: io.kestra.plugin.notifications.teams.TeamsIncomingWebhook
    url: "{http_server.url}/echo/teams-headers"
    payload: '{{"text": "café"}}'
    options:
      headers: {{X-Team: data}}
      defaultCharset: UTF-16
      connectionPoolIdleTimeout: PT5S
  - id: idle
    type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
    url: "{http_server.url}/slow/3"
    payload: '{{"text": "hi"}}'
    allowFailure: true
    options: {{readIdleTimeout: PT0.3S}}
  - id: too_big
    type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
    url: "{http_server.url}/file/answer.csv"
    payload: '{{"text": "hi"}}'
    options: {{maxContentLength: 4}}
""")
    received = http_server.received("/echo/teams-headers")[-1]
    assert received.headers["X-Team"] == "data"
    assert received.body.decode("utf-16") == '{"text": "caf\\u00e9"}'
    assert task_run(execution, "idle").error.endswith("(readTimeout) timed out")
    assert "larger than 4 bytes" in task_run(execution, "too_big").error


def test_webhook_connect_timeout(embedded, unanswered):
    execution = run_flow_text(embedded, f"""
id: alerts
namespace: test
tasks:
  - id: nobody_answers
    type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
    url: "http://127.0.0.1:{unanswered}/hook"
    payload: '{{"text": "hi"}}'
    options: {{connectTimeout: PT0.3S}}
""")
    assert task_run(execution, "nobody_answers").error == (
        f"POST http://127.0.0.1:{unanswered}/hook: connecting (connectTimeout) timed out")


def test_mail_session_timeout_bounds_a_silent_server(embedded, silent_port):
    execution = run_flow_text(embedded, f"""
id: mail
namespace: test
tasks:
  - id: silent
    type: io.kestra.plugin.notifications.mail.MailSend
    host: 127.0.0.1
    port: {silent_port}
    transportStrategy: SMTP
    sessionTimeout: 300
    from: a@example.com
    to: b@example.com
""")
    error = task_run(execution, "silent").error
    assert error.startswith(f"smtp 127.0.0.1:{silent_port}: ") and "timed out" in error


def test_slack_execution_of_another_execution_with_icons(embedded, http_server):
    earlier = run_flow_text(embedded, """
id: earlier
namespace: prod.etl
tasks:
  - id: fine
    type: io.kestra.plugin.core.log.Log
    message: ok
""")
    execution = run_flow_text(embedded, f"""
id: reporter
namespace: prod.alerts
inputs:
  - id: about
    type: STRING
tasks:
  - id: report
    type: io.kestra.plugin.notifications.slack.SlackExecution
    url: "{http_server.url}/echo/slack-other"
    executionId: "{{{{ inputs.about }}}}"
    iconUrl: https://example.com/harrier.png
    iconEmoji: ":bird:"
""", {"about": earlier.id})
    assert execution.state.current == State.SUCCESS, task_run(execution, "report").error
    message = http_server.received("/echo/slack-other")[-1].json()
    assert message["icon_url"] == "https://example.com/harrier.png"
    assert message["icon_emoji"] == ":bird:"
    assert "[prod.etl] earlier ➛ SUCCESS>*\n> Succeeded after " in message["text"]
    assert message["attachments"][0]["color"] == "good"
