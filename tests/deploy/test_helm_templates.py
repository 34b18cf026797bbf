"""Static checks of the chart's templates, for machines without a helm binary.

`gotemplate.to_yaml_skeleton` documents how actions are replaced before YAML
parsing; the real rendering check is test_helm_lint.py (Helm's own engine).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import gotemplate
from tests.deploy.conftest import CHART

TEMPLATES = sorted((CHART / "templates").iterdir())
MANIFESTS = [p for p in TEMPLATES if p.suffix == ".yaml"]
COMPONENT = re.compile(r"'component' '([a-z]+)'")


def skeleton_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(gotemplate.to_yaml_skeleton(path.read_text())) if d]


def all_docs() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, d) for p in MANIFESTS for d in skeleton_docs(p)]


def placeholder(mapping: dict[str, Any]) -> str:
    """The single include action a labels/selector block was replaced by."""
    texts = [v for k, v in mapping.items() if k.startswith("__action_")]
    assert len(texts) == 1, mapping
    return str(texts[0])


def component_of(include_text: str) -> str:
    match = COMPONENT.search(include_text)
    assert match, include_text
    return match.group(1)


def by_kind(kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [(name, doc) for name, doc in all_docs() if doc.get("kind") == kind]


def leaf_paths(values: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(values, dict) and values:
        return [p for k, v in values.items() for p in leaf_paths(v, (*prefix, k))]
    return [prefix]


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_actions_are_balanced_and_blocks_closed(path: Path) -> None:
    found = gotemplate.actions(path.read_text(), path.name)
    gotemplate.check_blocks(found, path.name)


def test_block_checker_catches_unclosed_and_stray_blocks() -> None:
    with pytest.raises(gotemplate.TemplateSyntaxError, match="never closed"):
        gotemplate.check_blocks(gotemplate.actions("{{ if .Values.a }}x"))
    with pytest.raises(gotemplate.TemplateSyntaxError, match="without an opening"):
        gotemplate.check_blocks(gotemplate.actions("x{{ end }}"))
    with pytest.raises(gotemplate.TemplateSyntaxError, match="unterminated"):
        gotemplate.actions("a: {{ .Values.a ")


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_templates_read_only_values_that_exist(path: Path, default_values) -> None:
    for line, keys in gotemplate.values_paths(gotemplate.actions(path.read_text())):
        node: Any = default_values
        for depth, key in enumerate(keys):
            assert isinstance(node, dict) and key in node, (
                f"{path.name}:{line}: .Values.{'.'.join(keys)} is not in values.yaml "
                f"(missing at '{'.'.join(keys[: depth + 1])}')"
            )
            node = node[key]


def test_every_value_is_read_by_some_template(default_values) -> None:
    read = {
        keys
        for path in TEMPLATES
        for _, keys in gotemplate.values_paths(gotemplate.actions(path.read_text()))
    }
    unused = [
        ".".join(leaf)
        for leaf in leaf_paths(default_values)
        if not any(leaf[: len(r)] == r or r[: len(leaf)] == leaf for r in read)
    ]
    assert unused == []


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_skeleton_is_yaml_with_kind_and_name(path: Path) -> None:
    docs = skeleton_docs(path)
    assert docs, f"{path.name} yields no document"
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), doc
        assert doc["metadata"]["name"], doc
        assert "labels" in doc["metadata"], f"{path.name}: {doc['kind']} has no labels"


def test_chart_has_every_resource_the_deployment_needs() -> None:
    kinds = sorted(doc["kind"] for _, doc in all_docs())
    assert kinds == sorted([
        "ConfigMap", "ConfigMap", "Deployment", "Deployment", "HorizontalPodAutoscaler",
        "Ingress", "PodDisruptionBudget", "ScaledObject", "Secret", "Service", "Service",
        "ServiceAccount", "StatefulSet", "TriggerAuthentication",
    ])


def test_workload_selectors_match_their_pod_labels() -> None:
    workloads = by_kind("Deployment") + by_kind("StatefulSet")
    components = set()
    for name, doc in workloads:
        selector = placeholder(doc["spec"]["selector"]["matchLabels"])
        pod_labels = placeholder(doc["spec"]["template"]["metadata"]["labels"])
        assert "harrier.componentSelectorLabels" in selector, name
        assert "harrier.componentLabels" in pod_labels, name
        assert component_of(selector) == component_of(pod_labels), name
        components.add(component_of(selector))
    assert components == {"scheduler", "worker", "redis"}


def test_component_labels_contain_the_selector_labels() -> None:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    define = re.compile(r'\{\{-? define "([^"]+)" -?\}\}(.*?)\{\{-? end -?\}\}', re.DOTALL)
    bodies = {m.group(1): m.group(2) for m in define.finditer(helpers)}
    assert 'include "harrier.selectorLabels"' in bodies["harrier.labels"]
    assert 'include "harrier.labels" .ctx' in bodies["harrier.componentLabels"]
    assert 'include "harrier.selectorLabels" .ctx' in bodies["harrier.componentSelectorLabels"]
    for name in ("harrier.componentLabels", "harrier.componentSelectorLabels"):
        assert "app.kubernetes.io/component: {{ .component }}" in bodies[name]


def test_services_select_a_workload_exposing_the_target_port() -> None:
    ports_by_component = {}
    for _, doc in by_kind("Deployment") + by_kind("StatefulSet"):
        component = component_of(placeholder(doc["spec"]["selector"]["matchLabels"]))
        ports_by_component[component] = {
            port["name"]
            for container in doc["spec"]["template"]["spec"]["containers"]
            for port in container.get("ports", [])
        }
    for name, service in by_kind("Service"):
        component = component_of(placeholder(service["spec"]["selector"]))
        assert "harrier.componentSelectorLabels" in placeholder(service["spec"]["selector"])
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports_by_component[component], (name, port)


def test_api_service_and_ingress_point_at_the_scheduler() -> None:
    service = next(doc for name, doc in by_kind("Service") if name == "service.yaml")
    assert component_of(placeholder(service["spec"]["selector"])) == "scheduler"
    ingress_text = (CHART / "templates" / "ingress.yaml").read_text()
    assert '$fullname := include "harrier.fullname" .' in ingress_text
    assert "name: {{ $fullname }}\n" in ingress_text  # the Service's name
    service_text = (CHART / "templates" / "service.yaml").read_text()
    assert 'name: {{ include "harrier.fullname" . }}\n' in service_text


def test_autoscalers_and_pdb_target_the_worker_deployment() -> None:
    (_, worker), = [(n, d) for n, d in by_kind("Deployment") if n == "worker-deployment.yaml"]
    worker_name = worker["metadata"]["name"]
    (_, hpa), = by_kind("HorizontalPodAutoscaler")
    (_, scaled), = by_kind("ScaledObject")
    (_, pdb), = by_kind("PodDisruptionBudget")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": worker_name}
    assert scaled["spec"]["scaleTargetRef"]["name"] == worker_name
    assert component_of(placeholder(pdb["spec"]["selector"]["matchLabels"])) == "worker"
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "redis"
    keda_text = (CHART / "templates" / "worker-keda.yaml").read_text()
    assert "{{- range $queue := .Values.worker.queues }}" in keda_text
    assert "listName: {{ $queue | quote }}" in keda_text
    # Optionally a second trigger per queue on its oldest task's age.
    assert "harrier_queue_oldest_age_seconds{worker_group=%q}" in keda_text


def test_hpa_and_keda_are_never_rendered_together() -> None:
    hpa = (CHART / "templates" / "worker-hpa.yaml").read_text()
    assert hpa.startswith(
        "{{- if and .Values.worker.autoscaling.enabled (not .Values.worker.keda.enabled) }}")
    worker = (CHART / "templates" / "worker-deployment.yaml").read_text()
    # Fixed replicas would fight the autoscaler.
    assert "{{- if not (or .Values.worker.autoscaling.enabled .Values.worker.keda.enabled) }}" \
        in worker


def test_probes_and_grace_periods(default_values) -> None:
    deployments = {name: doc for name, doc in by_kind("Deployment")}
    scheduler = deployments["scheduler-deployment.yaml"]["spec"]["template"]["spec"]
    worker = deployments["worker-deployment.yaml"]["spec"]["template"]["spec"]
    (sched_container,) = scheduler["containers"]
    (worker_container,) = worker["containers"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert sched_container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert worker_container[probe]["exec"] == {"command": ["harrier", "health"]}
    worker_text = (CHART / "templates" / "worker-deployment.yaml").read_text()
    assert "terminationGracePeriodSeconds: {{ .Values.worker.terminationGracePeriodSeconds }}" \
        in worker_text
    # Warm shutdown lets a running spark-submit finish: minutes, not Kubernetes' 30 s.
    assert default_values["worker"]["terminationGracePeriodSeconds"] >= 300
    assert sched_container["args"] == ["scheduler"]
    assert worker_container["args"][0] == "worker"


def test_flows_configmap_is_mounted_read_only_in_scheduler_and_workers() -> None:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert "mountPath: /app/flows\n  readOnly: true" in helpers
    assert 'name: {{ include "harrier.fullname" . }}-flows' in helpers
    for name in ("scheduler-deployment.yaml", "worker-deployment.yaml"):
        text = (CHART / "templates" / name).read_text()
        assert 'include "harrier.flowsVolumeMounts"' in text
        assert 'include "harrier.flowsVolume"' in text
        assert 'include "harrier.envFrom"' in text  # the Secret: broker URL, API auth, SECRET_*


def test_storage_is_mounted_in_scheduler_and_workers_from_a_shared_claim() -> None:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert "- name: storage\n  mountPath: /app/storage" in helpers
    assert "claimName: {{ .Values.storage.existingClaim }}" in helpers


def test_skeleton_heuristic_keeps_structure() -> None:
    text = (
        "spec:\n  containers:\n    - name: a\n      env:\n        - name: X\n"
        "          value: {{ .Values.x | quote }}\n"
        "        {{- include \"env\" . | nindent 8 }}\n"
        "      {{- with .Values.r }}\n      resources:\n        {{- toYaml . | nindent 8 }}\n"
        "      {{- end }}\n"
    )
    doc = yaml.safe_load(gotemplate.to_yaml_skeleton(text))
    env = doc["spec"]["containers"][0]["env"]
    assert env[0] == {"name": "X", "value": "__action__"}
    assert list(env[1]) == ["__action_1__"]
    assert list(doc["spec"]["containers"][0]["resources"]) == ["__action_2__"]


def test_the_api_always_gets_credentials_with_a_generated_password_by_default(
        default_values) -> None:
    """An install without auth values must not serve an open API: the Secret
    always holds a username and a password, generated when none is given and
    kept across upgrades (read back with `lookup`)."""
    assert default_values["auth"]["password"] == ""
    secret = (CHART / "templates" / "secret.yaml").read_text()
    assert 'HARRIER_API_USERNAME: {{ .Values.auth.username | default "admin"' in secret
    assert 'HARRIER_API_PASSWORD: {{ include "harrier.apiPassword" .' in secret
    assert "with .Values.auth.password" not in secret  # never left out
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    body = helpers[helpers.index('define "harrier.apiPassword"'):]
    body = body[:body.index("{{- end -}}\n{{- end -}}")]
    assert "randAlphaNum 32" in body
    assert 'lookup "v1" "Secret"' in body and "HARRIER_API_PASSWORD" in body
    assert ".Values.auth.password" in body
    scheduler = (CHART / "templates" / "scheduler-deployment.yaml").read_text()
    assert 'include "harrier.envFrom"' in scheduler
    assert "HARRIER_API_AUTH" not in scheduler
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    assert "HARRIER_API_PASSWORD" in notes
