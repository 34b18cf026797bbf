"""The web app (API, webhooks, UI) built from the environment, for uvicorn's
worker processes when HARRIER_API_WORKERS > 1: each process builds its own
store and Celery app from HARRIER_* variables, as `harrier api` does."""

from __future__ import annotations

from fastapi import FastAPI

from harrier.common.celery_app import configure_app
from harrier.common.redis_store import RedisStore
from harrier.common.settings import Settings
from harrier.scheduler.ui import create_web_app


def app_from_env() -> FastAPI:
    """uvicorn factory (`harrier.scheduler.served_app:app_from_env`)."""
    settings = Settings.from_env()
    return create_web_app(settings, RedisStore.from_settings(settings), configure_app(settings))
