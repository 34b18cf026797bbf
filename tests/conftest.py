"""Fixtures shared by the whole suite: real servers started on free ports."""

# Imported up front: when hypothesis's pytest plugin first imports it at the end
# of a run, CPython 3.11.7's compiler can fail with "AST constructor recursion
# depth mismatch" (a CPython bug, fixed in 3.11.8).
import os

import hypothesis

# CI runs the same examples every time (a new counterexample found on a
# developer's machine becomes a fix, not a random red CI run).
hypothesis.settings.register_profile("ci", derandomize=True, deadline=None)
hypothesis.settings.register_profile("dev", deadline=None)
hypothesis.settings.load_profile("ci" if os.environ.get("CI") else "dev")

pytest_plugins = [
    "tests.fixtures.redis_server",
    "tests.fixtures.docker",
    "tests.fixtures.spark",
    "tests.fixtures.workers",
    "tests.fixtures.rabbitmq",
    "tests.fixtures.browser",
    "tests.fixtures.http_server",
    "tests.fixtures.smtp_server",
    "tests.fixtures.api_server",
    "tests.fixtures.modes",
]


import pytest  # noqa: E402

from harrier.common.settings import Settings  # noqa: E402


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory):
    """A whole embedded Harrier (in-memory transport, store and worker threads)."""
    from harrier.worker.embedded import EmbeddedRuntime

    settings = Settings(work_root=tmp_path_factory.mktemp("work"), embedded_concurrency=8)
    with EmbeddedRuntime(settings, queues=["default", "spark"]) as runtime:
        yield runtime
