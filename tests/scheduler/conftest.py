"""TEMPORARY: makes the Redis fixtures visible to tests/scheduler until
tests/conftest.py lists "tests.fixtures.redis_server" in pytest_plugins;
delete this file then."""

from __future__ import annotations

from tests.fixtures.redis_server import redis_client, redis_server

__all__ = ["redis_client", "redis_server"]
