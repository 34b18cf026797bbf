"""The tests of test_working_directory.py on a real Redis with real prefork workers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration import test_working_directory
from tests.integration.modes import Runner, flow_tests

pytestmark = pytest.mark.slow

globals().update(flow_tests(test_working_directory))


@pytest.fixture
def run(cluster: Any) -> Runner:
    return Runner("distributed", cluster=cluster)
