"""The Dag tests of test_dag.py on a real Redis with real prefork worker processes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration import test_dag
from tests.integration.modes import Runner, flow_tests

pytestmark = pytest.mark.slow

globals().update(flow_tests(test_dag))


@pytest.fixture
def run(cluster: Any) -> Runner:
    return Runner("distributed", cluster=cluster)
