"""Harrier's HTTP API (FastAPI) with Kestra's paths and JSON shapes."""

from __future__ import annotations

from harrier.scheduler.api.app import create_api

__all__ = ["create_api"]
