"""Reading request bodies with a size limit enforced while reading, so a
missing or lying Content-Length cannot push a huge body into memory."""

from __future__ import annotations

from fastapi import Request

from harrier.scheduler.api.errors import ApiError


async def read_limited(request: Request, limit: int, what: str = "request body") -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"{what} is {int(declared)} bytes; the limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"{what} is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_text(data: bytes, what: str = "request body") -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"{what} is not UTF-8 text (byte {exc.start})") from None
