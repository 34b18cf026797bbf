"""io.kestra.plugin.notifications.slack.SlackExecution: a Slack message
summing up an execution (flow, state, the task that failed, duration, a link),
built the way Kestra's slack-template.peb builds it."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from harrier.common.errors import ExecutionNotFound, TaskFailed
from harrier.common.execution import Execution
from harrier.common.state import State, now
from harrier.common.task import register_task
from harrier.worker.context import TaskContext
from harrier.worker.tasks.incoming_webhook import IncomingWebhook

COLORS = {State.SUCCESS: "good", State.WARNING: "warning"}


@register_task("io.kestra.plugin.notifications.slack.SlackExecution")
class SlackExecution(IncomingWebhook):
    service: ClassVar[str] = "Slack"

    execution_id: str = Field("{{ execution.id }}", alias="executionId")
    custom_message: str | None = Field(None, alias="customMessage")
    custom_fields: dict[str, Any] | None = Field(None, alias="customFields")
    channel: str | None = None
    username: str | None = None
    icon_url: str | None = Field(None, alias="iconUrl")
    icon_emoji: str | None = Field(None, alias="iconEmoji")

    def message(self, ctx: TaskContext) -> Any:
        if self.payload is not None:
            raise TaskFailed("payload: SlackExecution builds its own message; use "
                             "SlackIncomingWebhook to send a payload", retryable=False)
        wanted = str(ctx.render(self.execution_id, "executionId"))
        try:
            execution = ctx.store.get_execution(wanted)
        except ExecutionNotFound:
            raise TaskFailed(f"executionId: no execution {wanted!r}", retryable=False) from None
        document = summary(execution, ctx.settings.url,
                           ctx.render(self.custom_message, "customMessage")
                           if self.custom_message is not None else None,
                           ctx.render(self.custom_fields or {}, "customFields"))
        for key, value, field in (("channel", self.channel, "channel"),
                                  ("username", self.username, "username"),
                                  ("icon_url", self.icon_url, "iconUrl"),
                                  ("icon_emoji", self.icon_emoji, "iconEmoji")):
            if value is not None:
                document[key] = str(ctx.render(value, field))
        return document


def summary(execution: Execution, base_url: str, custom_message: Any,
            custom_fields: dict[str, Any]) -> dict[str, Any]:
    """The message. An execution still running (this task is one of its
    `errors` handlers) is reported FAILED when a task of it failed, not RUNNING."""
    failed = [r for r in execution.task_runs if r.state.current == State.FAILED]
    state = execution.state.current
    if not state.terminated and failed:
        state = State.FAILED
    started = execution.state.start_date or now()
    seconds = ((execution.state.end_date or now()) - started).total_seconds()
    outcome = f"Failed on task `{failed[-1].task_id}`" if failed else "Succeeded"
    title = f"[{execution.namespace}] {execution.flow_id} ➛ {state.value}"
    link = f"{base_url}/ui/executions/{execution.id}" if base_url else None
    headline = (f"*<{link}|{title}>*" if link else f"*{title}*") + \
        f"\n> {outcome} after {human_duration(seconds)}"
    button: dict[str, Any] = {"type": "button",
                              "text": {"type": "plain_text", "text": "Details"}}
    if link:
        button["url"] = link
    blocks: list[dict[str, Any]] = []
    if custom_message is not None:
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": str(custom_message)}})
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": headline},
                   "accessory": button})
    fields = [{"title": title, "value": value, "short": True} for title, value in (
        ("Namespace", execution.namespace), ("Job", execution.flow_id),
        ("Execution", execution.id), ("Status", state.value))]
    fields += [{"title": str(key), "value": value, "short": True}
               for key, value in custom_fields.items()]
    return {"text": headline, "blocks": blocks, "attachments": [{
        "color": COLORS.get(state, "danger"), "fields": fields,
        "ts": int(started.timestamp())}]}


def human_duration(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m"
