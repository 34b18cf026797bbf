"""The Spark tests share one real cluster and one build of the test jobs per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.spark import SparkCluster, spark_cluster, spark_jobs  # noqa: F401
from worker.spark.rest import SparkRestClient


@pytest.fixture(scope="session")
def rest_client(spark_cluster: SparkCluster) -> Iterator[SparkRestClient]:  # noqa: F811
    with SparkRestClient(spark_cluster.rest_master_url,
                         master_web_url=spark_cluster.master_web_url) as client:
        yield client
