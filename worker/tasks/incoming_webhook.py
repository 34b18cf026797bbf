"""What Kestra's notification tasks that post to an incoming webhook share
(Slack, Microsoft Teams): a secret `url`, a JSON `payload` rendered once, and
`options` for timeouts and extra headers."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any, ClassVar

from pydantic import Field

from harrier.common.errors import TaskFailed
from harrier.common.task import Task
from harrier.worker.context import TaskContext
from harrier.worker.http_call import HttpCall, exchange
from harrier.worker.tasks.http_base import CONNECT_TIMEOUT, Duration, _Options

READ_TIMEOUT = timedelta(seconds=10)  # Kestra's RequestOptions.readTimeout default


class RequestOptions(_Options):
    """Kestra's AbstractHttpOptionsTask.RequestOptions."""

    connect_timeout: Duration | None = Field(None, alias="connectTimeout")
    read_timeout: Duration | None = Field(None, alias="readTimeout")
    read_idle_timeout: Duration | None = Field(None, alias="readIdleTimeout")
    # One connection per message: no pool to keep idle connections in.
    connection_pool_idle_timeout: Duration | None = Field(None,
                                                          alias="connectionPoolIdleTimeout")
    max_content_length: int = Field(10 * 1024 * 1024, alias="maxContentLength", ge=1)
    default_charset: str = Field("UTF-8", alias="defaultCharset")
    headers: dict[str, str] = Field(default_factory=dict)


class IncomingWebhook(Task):
    url: str
    payload: str | dict[str, Any] | list[Any] | None = None
    options: RequestOptions = Field(default_factory=lambda: RequestOptions.model_validate({}))

    service: ClassVar[str] = "webhook"  # named in logs and errors

    def message(self, ctx: TaskContext) -> Any:
        """The JSON document to post. Rendered once: Kestra renders the payload
        twice, which would also evaluate `{{ }}` found in inputs or outputs."""
        if self.payload is None:
            raise TaskFailed("payload: the message to send is missing", retryable=False)
        rendered = ctx.render(self.payload, "payload")
        if not isinstance(rendered, str):
            return rendered
        try:
            return json.loads(rendered)
        except json.JSONDecodeError as exc:
            raise TaskFailed(f"payload: the rendered payload is not JSON ({exc.msg} at line "
                             f"{exc.lineno}, column {exc.colno}): {rendered[:200]!r}",
                             retryable=False) from None

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        document = self.message(ctx)
        url = str(ctx.render(self.url, "url")).strip()
        options = self.options
        headers = {"Content-Type": "application/json",
                   **{str(k): str(v) for k, v in ctx.render(options.headers, "options.headers")
                      .items()}}
        read = options.read_timeout or options.read_idle_timeout or READ_TIMEOUT
        call = HttpCall(method="POST", url=url, headers=headers, describe=ctx.mask,
                        content=json.dumps(document).encode(options.default_charset),
                        connect_timeout=(options.connect_timeout or CONNECT_TIMEOUT)
                        .total_seconds(), read_timeout=read.total_seconds(),
                        max_bytes=options.max_content_length)
        deadline = time.monotonic() + self.timeout.total_seconds() if self.timeout else None
        answer = exchange(call, cancel=ctx.cancel, deadline=deadline)
        ctx.log("INFO", f"{self.service} message sent to {url} ({answer.code})")
        return {}
