"""io.kestra.plugin.core.http.Request: one HTTP call; the answer's code,
headers and body become outputs."""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field, field_validator

from harrier.common.errors import HttpTaskError
from harrier.common.task import register_task
from harrier.worker.context import TaskContext
from harrier.worker.http_call import exchange
from harrier.worker.tasks.http_base import HttpTask

# Kestra's limit on a body kept as an output (options.maxContentLength raises it).
MAX_BODY_BYTES = 10 * 1024 * 1024


@register_task("io.kestra.plugin.core.http.Request", "io.kestra.plugin.fs.http.Request",
               "io.kestra.core.tasks.http.Request")
class Request(HttpTask):
    encrypt_body: bool = Field(False, alias="encryptBody")

    @field_validator("encrypt_body")
    @classmethod
    def _no_encryption(cls, value: bool) -> bool:
        if value:
            raise ValueError("encryptBody: Harrier does not encrypt outputs; leave it false "
                             "and keep secrets out of the answer")
        return value

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        call = self.http_call(ctx)
        if call.max_bytes is None:
            call.max_bytes = MAX_BODY_BYTES
        started = time.monotonic()
        answer = exchange(call, cancel=ctx.cancel, deadline=self.deadline())
        charset = _charset(answer.headers) or self.options.default_charset
        try:
            body = answer.body.decode(charset) if answer.body else None
        except (UnicodeDecodeError, LookupError):
            raise HttpTaskError(f"{call.method} {ctx.mask(call.url)}: the answer is not "
                                f"{charset} text; use io.kestra.plugin.core.http.Download for "
                                "binary answers", retryable=False) from None
        ctx.log("INFO", f"{call.method} {call.url}: {answer.code} {answer.reason} "
                        f"({answer.size} bytes in {time.monotonic() - started:.3f} s)")
        # A server that echoes the request would put the secrets this task sent
        # into its outputs, which the API and the UI show: they are masked there too.
        return {"uri": ctx.mask(call.url), "code": answer.code, "headers": answer.headers,
                "body": ctx.mask(body) if body is not None else None}


def _charset(headers: dict[str, list[str]]) -> str | None:
    for name, values in headers.items():
        if name.lower() == "content-type":
            for part in values[0].split(";")[1:]:
                key, _, value = part.strip().partition("=")
                if key.lower() == "charset" and value:
                    return value.strip('"')
    return None
