"""The tests of test_kestra2_dialect.py on a real Redis with real prefork workers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration import test_kestra2_dialect
from tests.integration.modes import Runner, flow_tests

pytestmark = pytest.mark.slow

globals().update(flow_tests(test_kestra2_dialect))


@pytest.fixture
def run(cluster: Any) -> Runner:
    return Runner("distributed", cluster=cluster)
