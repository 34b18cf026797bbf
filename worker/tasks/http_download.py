"""io.kestra.plugin.core.http.Download: stream an HTTP answer into a file,
stored in internal storage; its kestra:// URI is the `uri` output."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import Field

from harrier.common.errors import HttpTaskError
from harrier.common.task import register_task
from harrier.worker.context import TaskContext
from harrier.worker.execution_files import store_task_files
from harrier.worker.http_call import exchange
from harrier.worker.tasks.http_base import HttpTask

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


@register_task("io.kestra.plugin.core.http.Download", "io.kestra.plugin.fs.http.Download",
               "io.kestra.core.tasks.http.Download")
class Download(HttpTask):
    fail_on_empty_response: bool = Field(True, alias="failOnEmptyResponse")

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        call = self.http_call(ctx)
        partial = ctx.workdir / ".download"
        with partial.open("wb") as sink:
            answer = exchange(call, cancel=ctx.cancel, deadline=self.deadline(),
                              sink=sink.write)
        if answer.size == 0:
            if self.fail_on_empty_response and not call.allow_failed:
                raise HttpTaskError(f"{call.method} {ctx.mask(call.url)}: answered "
                                    f"{answer.code} with an empty body "
                                    "(failOnEmptyResponse: false accepts it)")
            ctx.log("WARN", f"{call.url}: the file is empty")
        expected = _header(answer.headers, "content-length")
        if expected is not None and expected.isdigit() and int(expected) != answer.size \
                and _header(answer.headers, "content-encoding") is None:
            raise HttpTaskError(f"{call.method} {ctx.mask(call.url)}: received {answer.size} "
                                f"bytes, Content-Length said {expected}")
        target = partial.with_name(_file_name(answer.headers, call.url))
        partial.rename(target)
        uri = store_task_files(ctx, {target.name: target})[target.name]
        ctx.log("INFO", f"downloaded {call.url} ({answer.size} bytes) to {uri}")
        return {"uri": uri, "code": answer.code, "length": answer.size,
                "headers": answer.headers}


def _header(headers: dict[str, list[str]], wanted: str) -> str | None:
    for name, values in headers.items():
        if name.lower() == wanted:
            return values[0]
    return None


def _file_name(headers: dict[str, list[str]], url: str) -> str:
    """Content-Disposition's file name, else the URL's last path segment; only
    the last component, in safe characters (a server cannot write elsewhere)."""
    name = ""
    disposition = _header(headers, "content-disposition") or ""
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename*" and "''" in value:
            name = unquote(value.split("''", 1)[1])
            break
        if key.lower() == "filename":
            name = value.strip('"')
    if not name:
        name = unquote(PurePosixPath(urlsplit(url).path).name)
    name = _SAFE_NAME.sub("_", PurePosixPath(name.replace("\\", "/")).name).lstrip(".")
    return name or "download"
