"""Fixtures shared by the whole suite: real servers started on free ports."""

pytest_plugins = [
    "tests.fixtures.redis_server",
    "tests.fixtures.docker",
    "tests.fixtures.spark",
    "tests.fixtures.workers",
]


import pytest  # noqa: E402

from common.settings import Settings  # noqa: E402


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory):
    """A whole embedded Harrier (in-memory transport, store and worker threads)."""
    from worker.embedded import EmbeddedRuntime

    settings = Settings(work_root=tmp_path_factory.mktemp("work"), embedded_concurrency=8)
    with EmbeddedRuntime(settings, queues=["default", "spark"]) as runtime:
        yield runtime
