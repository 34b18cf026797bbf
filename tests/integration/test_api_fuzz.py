"""The whole HTTP API fuzzed from its own OpenAPI document with schemathesis,
against a real `harrier scheduler` process on a real Redis: valid and invalid
requests alike must never answer 5xx nor leak a traceback. Derandomized and
bounded (a few examples per operation), so it costs well under a minute."""

from __future__ import annotations

import base64
from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.fixtures.api_server import ApiServer

FLOW = """
id: fuzzed
namespace: fuzz
inputs:
  - id: name
    type: STRING
    defaults: x
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: fuzzkey
tasks:
  - id: hi
    type: io.kestra.plugin.core.log.Log
    message: "{{ inputs.name }}"
"""

EXAMPLES_PER_OPERATION = 25


@pytest.fixture(scope="module")
def api_schema(api_server: ApiServer) -> schemathesis.BaseSchema:
    with api_server.client() as client:
        pushed = client.post("/api/v1/flows", content=FLOW,
                             headers={"Content-Type": "application/x-yaml"})
        assert pushed.status_code in (200, 409), pushed.text
        document = client.get("/api/v1/openapi.json").json()
    # Server-Sent Events never end by themselves; their routes are tested elsewhere.
    return schemathesis.openapi.from_dict(document).exclude(path_regex=r"/follow$")


def problem_of(case: schemathesis.Case, api_server: ApiServer,
               statuses: Counter[int]) -> str | None:
    if case.query and "wait" in case.query:
        case.query["wait"] = "false"  # no worker here: an execution would never end
    credentials = "Basic " + base64.b64encode(":".join(api_server.auth).encode()).decode()
    response = case.call(base_url=api_server.url, headers={"Authorization": credentials},
                         timeout=30)
    statuses[response.status_code] += 1
    described = f"{case.method} {case.formatted_path} {case.query or ''} -> " \
                f"{response.status_code}: {response.text[:300]}"
    if response.status_code >= 500 or "Traceback" in response.text \
            or 'File "' in response.text:
        return described
    return None


# Driven with hypothesis directly rather than through schemathesis' pytest
# plugin, which does not support pytest 9 yet.
def test_no_request_gets_a_server_error_or_a_traceback(api_schema: schemathesis.BaseSchema,
                                                       api_server: ApiServer) -> None:
    problems: list[str] = []
    statuses: Counter[int] = Counter()
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 20
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None,
                      database=None, suppress_health_check=list(HealthCheck))
            @given(operation.as_strategy(generation_mode=mode))
            def fuzz(case: schemathesis.Case) -> None:
                problem = problem_of(case, api_server, statuses)
                if problem is not None:
                    problems.append(problem)

            try:
                fuzz()
            except Unsatisfiable:
                continue  # nothing invalid to generate for this operation
    assert not problems, "\n".join(dict.fromkeys(problems))
    # The fuzzing reached the routes (authenticated), not only the door.
    assert statuses[401] == 0, statuses
    assert sum(n for status, n in statuses.items() if status < 300) > 50, statuses
    print(f"fuzzed {len(operations)} operations: {sorted(statuses.items())}")
    assert httpx.get(f"{api_server.url}/healthz", timeout=30).status_code == 200
