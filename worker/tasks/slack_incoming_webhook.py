"""io.kestra.plugin.notifications.slack.SlackIncomingWebhook: post a message
(`payload`, Slack's JSON) to a Slack incoming webhook."""

from __future__ import annotations

from typing import ClassVar

from harrier.common.task import register_task
from harrier.worker.tasks.incoming_webhook import IncomingWebhook


@register_task("io.kestra.plugin.notifications.slack.SlackIncomingWebhook")
class SlackIncomingWebhook(IncomingWebhook):
    service: ClassVar[str] = "Slack"
