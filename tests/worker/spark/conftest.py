"""The Spark tests share one real cluster and one build of the test jobs per session:
spark_cluster and spark_jobs come from tests.fixtures.spark, a plugin of tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harrier.worker.spark.rest import SparkRestClient
from tests.fixtures.spark import SparkCluster


@pytest.fixture(scope="session")
def rest_client(spark_cluster: SparkCluster) -> Iterator[SparkRestClient]:
    with SparkRestClient(spark_cluster.rest_master_url,
                         master_web_url=spark_cluster.master_web_url) as client:
        yield client
