"""Fixtures shared by the whole suite: real servers started on free ports."""

pytest_plugins = [
    "tests.fixtures.redis_server",
    "tests.fixtures.docker",
    "tests.fixtures.spark",
]
