"""values.yaml against values.schema.json (JSON Schema draft-07), with jsonschema."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft7Validator

from tests.deploy.conftest import deep_merge, seed_flows

EXTERNAL_REDIS = {"redis": {"enabled": False, "external": {"url": "redis://:pw@cache:6379/2"}}}


def errors_for(schema: dict[str, Any], values: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in Draft7Validator(schema).iter_errors(values)
    ]


def test_schema_is_valid_draft7(values_schema: dict[str, Any]) -> None:
    assert values_schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    Draft7Validator.check_schema(values_schema)


def test_default_values_validate(values_schema, default_values) -> None:
    assert errors_for(values_schema, default_values) == []


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(EXTERNAL_REDIS, id="external-redis"),
        pytest.param(deep_merge(EXTERNAL_REDIS, {"worker": {"keda": {"enabled": True}}}),
                     id="keda-on-external-redis"),
        pytest.param({"worker": {"keda": {"enabled": True}}}, id="keda-on-bundled-redis"),
        pytest.param({"ingress": {"enabled": True, "className": "nginx",
                                  "tls": [{"secretName": "t", "hosts": ["h"]}]}}, id="ingress"),
        pytest.param({"auth": {"username": "u", "password": "p", "token": "t"},
                      "secrets": {"WEBHOOK_KEY": "k", "PORT": 5}}, id="credentials"),
        pytest.param({"worker": {"podDisruptionBudget": {"maxUnavailable": "25%"}}},
                     id="pdb-percentage"),
        pytest.param({"redis": {"enabled": False, "external": {"url": "amqp://mq:5672//"}},
                      "config": {"storeUrl": "redis://cache:6379/0"}}, id="rabbitmq-broker"),
    ],
)
def test_supported_configurations_validate(values_schema, default_values, overrides) -> None:
    assert errors_for(values_schema, deep_merge(default_values, overrides)) == []


def test_seed_flows_fit_the_flows_map(values_schema, default_values) -> None:
    values = deep_merge(default_values, {"flows": seed_flows()})
    assert errors_for(values_schema, values) == []


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        pytest.param({"worker": {"pool": "gevent"}}, "worker.pool", id="unknown-pool"),
        pytest.param({"worker": {"concurrency": 0}}, "worker.concurrency", id="zero-concurrency"),
        pytest.param({"worker": {"queues": []}}, "worker.queues", id="no-queues"),
        pytest.param({"redis": {"enabled": False}}, "redis", id="external-redis-without-url"),
        pytest.param({"redis": {"enabled": False, "external": {"url": "amqp://mq//"}},
                      "worker": {"keda": {"enabled": True}}}, "<root>", id="keda-on-amqp"),
        pytest.param({"redis": {"external": {"url": "localhost:6379"}}},
                     "redis.external.url", id="url-without-scheme"),
        pytest.param({"flows": {"../etc/passwd.yaml": "id: x"}}, "flows", id="flow-path"),
        pytest.param({"flows": {"a.yaml": ""}}, "flows.a.yaml", id="empty-flow"),
        pytest.param({"config": {"executionRetention": "7 days"}},
                     "config.executionRetention", id="retention-not-iso"),
        pytest.param({"config": {"defaultTaskRunner": "kubernetes"}},
                     "config.defaultTaskRunner", id="unknown-runner"),
        pytest.param({"service": {"port": 70000}}, "service.port", id="port-out-of-range"),
        pytest.param({"secrets": {"bad-name": "x"}}, "secrets", id="secret-name"),
        pytest.param({"replicaCount": 3}, "<root>", id="unknown-top-level-key"),
        pytest.param({"worker": {"terminationGracePeriod": 600}}, "worker", id="typo-in-key"),
        pytest.param({"scheduler": {"replicas": "two"}}, "scheduler.replicas", id="replicas-type"),
    ],
)
def test_invalid_values_are_rejected_at_the_right_place(
    values_schema, default_values, overrides, where
) -> None:
    errors = errors_for(values_schema, deep_merge(default_values, overrides))
    assert errors, f"{overrides} should be rejected"
    assert any(e.startswith(f"{where}:") or e.startswith(f"{where}.") for e in errors), errors
