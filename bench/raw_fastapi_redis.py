"""The baseline of bench/webhook.py: a minimal FastAPI endpoint that writes
the request body under one new Redis key and answers its id, served by
uvicorn like Harrier's API.

    BENCH_REDIS_URL=redis://127.0.0.1:6379/0 uvicorn bench.raw_fastapi_redis:app
"""

from __future__ import annotations

import os
import uuid

import redis
from fastapi import FastAPI, Request

client = redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
app = FastAPI()


@app.post("/api/v1/executions/webhook/bench/hook/{key}")
async def webhook(key: str, request: Request) -> dict[str, str]:
    ident = uuid.uuid4().hex
    client.set(f"raw:{ident}", await request.body())
    return {"id": ident}
