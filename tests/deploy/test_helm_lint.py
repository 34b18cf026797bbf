"""`helm lint` with Helm's own engine (helm-sdkpy's libhelm), on the chart and variants.

Lint renders every template with the chart's values (schema checked first) and
parses the output as YAML; variants are chart copies with another values.yaml.
helm-sdkpy does not return the text of template errors, only their file.
"""

from __future__ import annotations

import pytest

from tests.deploy import helm_lint
from tests.deploy.conftest import CHART, missing_tool, seed_flows


@pytest.fixture(scope="module", autouse=True)
def helm_available() -> None:
    if helm_lint.library_path() is None:
        missing_tool("helm-sdkpy not installed: pip install --ignore-requires-python helm-sdkpy")


def assert_lints_clean(chart) -> None:
    result = helm_lint.lint(chart)
    assert result.errors == (), result.report()


def test_chart_lints_clean_with_default_values() -> None:
    assert_lints_clean(CHART)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="defaults-copy"),
        pytest.param({
            "redis": {"enabled": False, "external": {"url": "rediss://user:s3cret@cache:6380/3"}},
            "worker": {"keda": {"enabled": True}, "queues": ["default", "spark"]},
        }, id="keda-external-redis-with-password"),
        pytest.param({"worker": {"keda": {"enabled": True}}}, id="keda-bundled-redis"),
        pytest.param({
            "ingress": {"enabled": True, "className": "nginx",
                        "annotations": {"a": "b"},
                        "tls": [{"secretName": "harrier-tls", "hosts": ["harrier.local"]}]},
            "auth": {"username": "admin", "password": "pw", "token": "tok"},
            "secrets": {"WEBHOOK_KEY": "k3y", "RETRIES": 3},
            "existingSecret": "mine",
            "config": {"dockerHost": "tcp://dind:2375", "storeUrl": "redis://other:6379/1",
                       "extraEnv": [{"name": "A", "value": "1"}]},
            "scheduler": {"extraEnv": [{"name": "B", "value": "2"}],
                          "nodeSelector": {"pool": "system"},
                          "tolerations": [{"key": "k", "operator": "Exists"}],
                          "affinity": {"podAntiAffinity": {}},
                          "podAnnotations": {"prometheus.io/scrape": "true"}},
            "serviceAccount": {"create": False, "name": "existing"},
            "imagePullSecrets": [{"name": "regcred"}],
        }, id="everything-optional-on"),
        pytest.param({
            "worker": {"autoscaling": {"enabled": False}, "replicas": 3,
                       "podDisruptionBudget": {"enabled": False}},
            "redis": {"persistence": {"enabled": False}},
        }, id="fixed-replicas-no-pdb-no-pvc"),
        pytest.param({"metrics": {"dashboard": {"enabled": True}}}, id="grafana-dashboard"),
        pytest.param({"worker": {"keda": {"enabled": True, "prometheus": {
            "serverAddress": "http://prometheus:9090", "oldestAgeSeconds": 30}},
            "queues": ["default", "spark"]}}, id="keda-on-queue-age"),
        pytest.param({"metrics": {"enabled": False}}, id="no-metrics"),
    ],
)
def test_chart_variants_lint_clean(chart_copy, overrides) -> None:
    assert_lints_clean(chart_copy(overrides))


def test_chart_lints_clean_with_the_seed_flows_in_its_configmap(chart_copy) -> None:
    assert_lints_clean(chart_copy({"flows": seed_flows()}))


def test_lint_reports_values_the_schema_rejects(chart_copy) -> None:
    result = helm_lint.lint(chart_copy({"worker": {"pool": "gevent"}}))
    assert "values.yaml" in [m.path for m in result.errors], result.report()


def test_lint_reports_a_missing_external_redis_url(chart_copy) -> None:
    result = helm_lint.lint(chart_copy({"redis": {"enabled": False}}))
    assert result.errors, result.report()


def test_lint_renders_templates_so_a_broken_one_is_reported(chart_copy) -> None:
    # Proves the clean results above come from rendering, not from a no-op.
    chart = chart_copy()
    service = chart / "templates" / "service.yaml"
    service.write_text(service.read_text() + "  extra: {{ .Values.service.nope.deeper }}\n")
    result = helm_lint.lint(chart)
    assert [m.path for m in result.errors] == ["templates/"], result.report()
