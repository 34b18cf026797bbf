"""The loop tests of test_loops.py on a real Redis with real prefork worker
processes (the `cluster` fixture)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration import test_loops
from tests.integration.test_loops import Runner

pytestmark = pytest.mark.slow

# Every test of test_loops.py that runs a flow, run here by the cluster.
globals().update({name: test for name, test in vars(test_loops).items()
                  if name.startswith("test_") and "run" in test.__code__.co_varnames[
                      :test.__code__.co_argcount]})


@pytest.fixture
def run(cluster: Any) -> Runner:
    return Runner("distributed", cluster=cluster)
