"""What Kestra's HTTP tasks share (AbstractHttp): uri, method, body or
formData, contentType, headers and `options` (timeouts, auth, allowFailed,
followRedirects), turned into one worker.http_call exchange."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from harrier.common.durations import parse_duration
from harrier.common.errors import HttpTaskError
from harrier.common.task import Task
from harrier.worker.context import TaskContext
from harrier.worker.execution_files import execution_file, require_execution_file
from harrier.worker.http_call import HttpCall

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
CONNECT_TIMEOUT = timedelta(seconds=30)  # Kestra sets none; a dead host should not hang a slot
READ_TIMEOUT = timedelta(minutes=5)  # Kestra's readIdleTimeout default


def _duration(value: object) -> object:
    return parse_duration(value) if isinstance(value, str) else value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class _Options(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", populate_by_name=True)


class TimeoutOptions(_Options):
    connect_timeout: Duration | None = Field(None, alias="connectTimeout")
    read_idle_timeout: Duration | None = Field(None, alias="readIdleTimeout")


class AuthOptions(_Options):
    type: Literal["BASIC", "BEARER"]
    username: str | None = None
    password: str | None = None
    token: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> AuthOptions:
        if self.type == "BASIC" and self.username is None:
            raise ValueError("auth type BASIC needs `username` (and `password`)")
        if self.type == "BEARER" and self.token is None:
            raise ValueError("auth type BEARER needs `token`")
        return self


class HttpOptions(_Options):
    """Kestra's HttpConfiguration: what it supports. proxy, ssl and logs are
    not supported (unknown properties, a validation error)."""

    timeout: TimeoutOptions | None = None
    auth: AuthOptions | None = None
    follow_redirects: bool = Field(True, alias="followRedirects")
    allow_failed: bool = Field(False, alias="allowFailed")
    default_charset: str = Field("UTF-8", alias="defaultCharset")
    max_content_length: int | None = Field(None, alias="maxContentLength", ge=1)
    # Kestra's older flat names, still in its examples.
    connect_timeout: Duration | None = Field(None, alias="connectTimeout")
    read_timeout: Duration | None = Field(None, alias="readTimeout")
    read_idle_timeout: Duration | None = Field(None, alias="readIdleTimeout")
    # Each exchange opens its own connection, so there is no pool to keep idle
    # connections in: accepted (Kestra's examples set it) with nothing to do.
    connection_pool_idle_timeout: Duration | None = Field(None,
                                                          alias="connectionPoolIdleTimeout")
    basic_auth_user: str | None = Field(None, alias="basicAuthUser")
    basic_auth_password: str | None = Field(None, alias="basicAuthPassword")

    def connect_seconds(self) -> float:
        value = (self.timeout.connect_timeout if self.timeout else None) or self.connect_timeout
        return (value or CONNECT_TIMEOUT).total_seconds()

    def read_seconds(self) -> float:
        value = ((self.timeout.read_idle_timeout if self.timeout else None)
                 or self.read_timeout or self.read_idle_timeout)
        return (value or READ_TIMEOUT).total_seconds()


class HttpTask(Task):
    uri: str
    method: str = "GET"
    body: str | dict[str, Any] | list[Any] | None = None
    form_data: dict[str, Any] | None = Field(None, alias="formData")
    content_type: str = Field("application/json", alias="contentType")
    headers: dict[str, str] | None = None
    options: HttpOptions = Field(default_factory=lambda: HttpOptions.model_validate({}))
    # Deprecated in Kestra for options.allowFailed; both work.
    allow_failed: bool | None = Field(None, alias="allowFailed")

    def http_call(self, ctx: TaskContext) -> HttpCall:
        """The rendered request."""
        method = str(ctx.render(self.method, "method")).upper()
        if method not in METHODS:
            raise HttpTaskError(f"method: {method!r} is not an HTTP method; expected one of "
                                f"{', '.join(METHODS)}", retryable=False)
        # Kestra encodes spaces in the URI and nothing else; so do we.
        url = str(ctx.render(self.uri, "uri")).strip().replace(" ", "%20")
        content_type = str(ctx.render(self.content_type, "contentType"))
        call = HttpCall(method=method, url=url, describe=ctx.mask,
                        connect_timeout=self.options.connect_seconds(),
                        read_timeout=self.options.read_seconds(),
                        follow_redirects=self.options.follow_redirects,
                        allow_failed=bool(self.options.allow_failed or self.allow_failed),
                        max_bytes=self.options.max_content_length)
        if self.form_data:
            form = ctx.render(self.form_data, "formData")
            if content_type.split(";")[0].strip().lower() == "multipart/form-data":
                call.files = _multipart(ctx, form)
            else:
                call.data = {str(k): _form_text(v) for k, v in form.items()}
        elif self.body is not None:
            body = ctx.render(self.body, "body")
            text = body if isinstance(body, str) else json.dumps(body)
            call.content = text.encode(self.options.default_charset)
            call.headers["Content-Type"] = content_type
        elif content_type:
            call.headers["Content-Type"] = content_type
        for name, value in (ctx.render(self.headers or {}, "headers")).items():
            call.headers[str(name)] = str(value)
        call.auth = self._basic_auth(ctx)
        if self.options.auth is not None and self.options.auth.type == "BEARER":
            token = ctx.render(self.options.auth.token, "options.auth.token")
            call.headers["Authorization"] = f"Bearer {token}"
        return call

    def deadline(self) -> float | None:
        """The task's `timeout` bounds the whole exchange."""
        return time.monotonic() + self.timeout.total_seconds() if self.timeout else None

    def _basic_auth(self, ctx: TaskContext) -> tuple[str, str] | None:
        auth = self.options.auth
        if auth is not None and auth.type == "BASIC":
            return (str(ctx.render(auth.username, "options.auth.username")),
                    str(ctx.render(auth.password or "", "options.auth.password")))
        if self.options.basic_auth_user is not None:
            return (str(ctx.render(self.options.basic_auth_user, "options.basicAuthUser")),
                    str(ctx.render(self.options.basic_auth_password or "",
                                   "options.basicAuthPassword")))
        return None


def _form_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _multipart(ctx: TaskContext, form: dict[str, Any]
               ) -> dict[str, tuple[str | None, bytes | str]]:
    """Kestra's multipart rules: a value naming a file of this execution (a
    Download's `uri`, an outputFiles path) is sent as that file; {name, content}
    sends the file `content` under the name `name`; anything else as text."""
    parts: dict[str, tuple[str | None, bytes | str]] = {}
    for key, value in form.items():
        if isinstance(value, dict) and {"name", "content"} <= value.keys():
            named = require_execution_file(ctx, str(value["content"]),
                                           f"formData.{key}.content")
            parts[str(key)] = (str(value["name"]), named.read_bytes())
        elif isinstance(value, str) and (found := execution_file(ctx, value)):
            parts[str(key)] = (found.name, found.read_bytes())
        else:
            parts[str(key)] = (None, _form_text(value))  # a text part
    return parts
