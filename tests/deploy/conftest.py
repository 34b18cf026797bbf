"""Paths and helpers shared by the deployment-artefact tests."""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "harrier"
COMPOSE = REPO / "compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
# CI clones main into its own folder with a copy of shared/ beside it.
SEED_FLOWS = REPO.parent / "shared" / "seed" / "flows"


def missing_tool(message: str) -> NoReturn:
    """Skip on a developer machine, fail in CI: CI must have every tool installed."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (required in CI)")
    pytest.skip(message)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@pytest.fixture(scope="session")
def default_values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


@pytest.fixture(scope="session")
def values_schema() -> dict[str, Any]:
    return json.loads((CHART / "values.schema.json").read_text())


@pytest.fixture
def chart_copy(tmp_path: Path, default_values: dict[str, Any]):
    """Factory: a copy of the chart whose values.yaml is the defaults merged with overrides."""

    def make(overrides: dict[str, Any] | None = None) -> Path:
        target = tmp_path / f"harrier-{len(list(tmp_path.iterdir()))}" / "harrier"
        shutil.copytree(CHART, target)
        values = deep_merge(default_values, overrides or {})
        (target / "values.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
        return target

    return make


def seed_flows() -> dict[str, str]:
    if not SEED_FLOWS.is_dir():
        missing_tool(f"seed flows not found at {SEED_FLOWS}")
    return {p.name: p.read_text() for p in sorted(SEED_FLOWS.glob("*.yaml"))}
