"""The Dockerfile and .dockerignore, read as text (no image is built: no registry here)."""

from __future__ import annotations

import fnmatch
import json
import re

from tests.deploy.conftest import DOCKERFILE, REPO


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a continuation"
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def args_of(name: str) -> list[str]:
    return [value for instruction, value in instructions() if instruction == name]


def test_base_is_python_311_slim_on_a_debian_with_java_17() -> None:
    (base_arg,) = [a for a in args_of("ARG") if a.startswith("PYTHON_IMAGE=")]
    # Debian 12: openjdk-17-jre-headless exists there, not in Debian 13.
    assert base_arg == "PYTHON_IMAGE=python:3.11-slim-bookworm"
    assert args_of("FROM") == ["${PYTHON_IMAGE}"]


def test_spark_version_is_a_build_argument_used_for_pyspark() -> None:
    assert "SPARK_VERSION=3.5.5" in args_of("ARG")
    runs = " ".join(args_of("RUN"))
    assert 'pip install "pyspark==${SPARK_VERSION}"' in runs
    env = " ".join(args_of("ENV"))
    assert "SPARK_HOME=/opt/spark" in env
    assert re.search(r"PATH=/opt/spark/bin:\$\{PATH\}", env)


def test_java_17_headless_jre_is_installed() -> None:
    runs = " ".join(args_of("RUN"))
    assert re.search(r"apt-get install -y --no-install-recommends .*openjdk-17-jre-headless", runs)
    assert "rm -rf /var/lib/apt/lists/*" in runs


def test_runs_as_a_non_root_user() -> None:
    users = args_of("USER")
    assert users, "no USER instruction: the image would run as root"
    assert users[-1] not in ("root", "0", "0:0")
    runs = " ".join(args_of("RUN"))
    assert f"useradd --system --uid \"${{HARRIER_UID}}\" --gid {users[-1]}" in runs
    # USER comes after every RUN, so nothing after it needs root.
    order = [instruction for instruction, _ in instructions()]
    assert max(i for i, name in enumerate(order) if name == "RUN") < order.index("USER")


def test_harrier_is_installed_from_the_build_context_with_flows_in_app() -> None:
    runs = " ".join(args_of("RUN"))
    assert "pip install /src" in runs
    assert "cp -R /src/flows/. /app/flows/" in runs
    assert "HARRIER_FLOWS_DIR=/app/flows" in " ".join(args_of("ENV"))
    assert args_of("WORKDIR")[-1] == "/app"


def test_entrypoint_is_harrier_and_default_command_the_scheduler() -> None:
    assert [json.loads(v) for v in args_of("ENTRYPOINT")] == [["harrier"]]
    assert [json.loads(v) for v in args_of("CMD")] == [["scheduler"]]
    assert args_of("EXPOSE") == ["8080"]
    (healthcheck,) = args_of("HEALTHCHECK")
    assert "/healthz" in healthcheck


def dockerignore_allows(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; '!' re-includes."""
    allowed = True
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        candidates = [path] + ["/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 1)]
        glob = pattern.replace("**/", "*")
        if any(fnmatch.fnmatch(c, pattern) or fnmatch.fnmatch(c, glob) for c in candidates):
            allowed = negate
    return allowed


def test_dockerignore_sends_only_what_the_build_uses() -> None:
    for needed in ("pyproject.toml", "README.md", "harrier/cli/run.py", "harrier/common",
                   "common/flow.py", "common/lua/put_flow.lua", "scheduler/api/app.py",
                   "worker/runners/process.py", "flows/daily.yaml"):
        assert dockerignore_allows(needed), needed
    for excluded in (".venv/bin/python", ".git/HEAD", "tests/conftest.py",
                     "helm/harrier/Chart.yaml", "common/__pycache__/flow.cpython-311.pyc",
                     "bench/run.py"):
        assert not dockerignore_allows(excluded), excluded
