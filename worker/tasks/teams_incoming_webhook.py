"""io.kestra.plugin.notifications.teams.TeamsIncomingWebhook: post a message
card (`payload`) to a Microsoft Teams incoming webhook."""

from __future__ import annotations

from typing import ClassVar

from harrier.common.task import register_task
from harrier.worker.tasks.incoming_webhook import IncomingWebhook


@register_task("io.kestra.plugin.notifications.teams.TeamsIncomingWebhook")
class TeamsIncomingWebhook(IncomingWebhook):
    service: ClassVar[str] = "Microsoft Teams"
