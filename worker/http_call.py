"""One HTTP exchange of a task (Request, Download, the notification tasks):
sent with httpx, bounded in time and size, interrupted by a kill or the
task's `timeout`, and described in errors without the secrets in its URL."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from harrier.common.errors import HttpTaskError, TaskKilled, TaskTimeout

# httpx logs every request line, query string included, at INFO; a URL may
# carry a secret (Kestra's own examples put API keys there) and a worker logs
# at INFO, so its request log stays quiet. Harrier logs the call itself, masked.
logging.getLogger("httpx").setLevel(logging.WARNING)

_POLL_SECONDS = 0.05  # how often a running exchange looks at the kill signal
ERROR_BODY_CHARS = 500  # how much of a refused answer's body an error quotes


@dataclass
class HttpCall:
    """What to send; `content`, `data` and `files` as httpx takes them."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    data: dict[str, Any] | None = None
    files: dict[str, Any] | None = None
    auth: tuple[str, str] | None = None
    connect_timeout: float | None = 30.0
    read_timeout: float | None = 300.0
    follow_redirects: bool = True
    allow_failed: bool = False  # answers >= 400 are outputs, not failures
    max_bytes: int | None = None  # the most of the body to accept
    describe: Callable[[str], str] = lambda url: url  # masks secrets in the URL


@dataclass
class HttpAnswer:
    code: int
    reason: str
    headers: dict[str, list[str]]
    size: int
    body: bytes | None  # None when the body went to a sink


def exchange(call: HttpCall, *, cancel: threading.Event, deadline: float | None = None,
             sink: Callable[[bytes], object] | None = None) -> HttpAnswer:
    """Send `call` and read its answer (into `sink`, chunk by chunk, when given).
    Raises TaskKilled when `cancel` is set, TaskTimeout past `deadline`
    (time.monotonic()), HttpTaskError when the server cannot be reached, does
    not answer in time, or answers >= 400 without allow_failed."""
    return asyncio.run(_race(_send(call, sink), call, cancel, deadline))


async def _race(work: Any, call: HttpCall, cancel: threading.Event,
                deadline: float | None) -> HttpAnswer:
    running = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({running}, timeout=_POLL_SECONDS)
            if done:
                return running.result()
            if cancel.is_set():
                raise TaskKilled()
            if deadline is not None and time.monotonic() > deadline:
                raise TaskTimeout(f"{call.method} {call.describe(call.url)}: the task's "
                                  "timeout passed before the exchange ended")
    finally:
        if not running.done():
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)


async def _send(call: HttpCall, sink: Callable[[bytes], object] | None) -> HttpAnswer:
    where = f"{call.method} {call.describe(call.url)}"
    timeout = httpx.Timeout(connect=call.connect_timeout, read=call.read_timeout,
                            write=call.read_timeout, pool=call.connect_timeout)
    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=call.follow_redirects,
                                     auth=call.auth, trust_env=True) as client:
            request = client.build_request(call.method, call.url, headers=call.headers,
                                           content=call.content, data=call.data,
                                           files=call.files)
            response = await client.send(request, stream=True)
            try:
                return await _read(call, response, sink, where)
            finally:
                await response.aclose()
    except httpx.TimeoutException as exc:
        raise HttpTaskError(f"{where}: {_timeout_kind(exc)} timed out") from None
    except httpx.InvalidURL as exc:
        raise HttpTaskError(f"{where}: invalid URL: {call.describe(str(exc))}",
                            retryable=False) from None
    except httpx.UnsupportedProtocol:
        raise HttpTaskError(f"{where}: only http:// and https:// URLs are supported",
                            retryable=False) from None
    except httpx.HTTPError as exc:
        raise HttpTaskError(f"{where}: {type(exc).__name__}: "
                            f"{call.describe(str(exc)) or 'no answer'}") from None


async def _read(call: HttpCall, response: httpx.Response,
                sink: Callable[[bytes], object] | None, where: str) -> HttpAnswer:
    failed = response.status_code >= 400 and not call.allow_failed
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if failed:
            chunks.append(chunk)
            if size > ERROR_BODY_CHARS:
                break
            continue
        if call.max_bytes is not None and size > call.max_bytes:
            raise HttpTaskError(f"{where}: the answer is larger than {call.max_bytes} bytes "
                                "(options.maxContentLength); use io.kestra.plugin.core.http."
                                "Download for large answers", retryable=False)
        if sink is not None:
            sink(chunk)
        else:
            chunks.append(chunk)
    headers: dict[str, list[str]] = {}
    for name, value in response.headers.raw:
        headers.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
    if failed:
        text = b"".join(chunks)[:ERROR_BODY_CHARS].decode("utf-8", errors="replace").strip()
        raise HttpTaskError(f"{where}: answered {response.status_code} "
                            f"{response.reason_phrase}" + (f": {text}" if text else ""))
    return HttpAnswer(response.status_code, response.reason_phrase, headers, size,
                      None if sink is not None else b"".join(chunks))


def _timeout_kind(exc: httpx.TimeoutException) -> str:
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return "connecting (connectTimeout)"
    if isinstance(exc, httpx.ReadTimeout):
        return "waiting for the answer (readTimeout)"
    return "sending the request"
