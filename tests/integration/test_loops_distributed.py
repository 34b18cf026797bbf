"""The loop tests of test_loops.py on a real Redis with real prefork worker
processes (the `cluster` fixture)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration import test_loops
from tests.integration.modes import Runner, flow_tests

pytestmark = pytest.mark.slow

# Every test of test_loops.py that runs a flow, run here by the cluster.
globals().update(flow_tests(test_loops))


@pytest.fixture
def run(cluster: Any) -> Runner:
    return Runner("distributed", cluster=cluster)
