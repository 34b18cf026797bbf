"""The package's layers import one way: common <- worker <- scheduler <- cli.

Read from the source (every import, at any depth), so a cycle-dodging import
inside a function is caught as surely as one at the top of a module; and
checked at run time, by importing each layer alone in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Where each layer's source lives in the repository, lowest layer first.
LAYERS = {"common": ROOT / "common", "worker": ROOT / "worker",
          "scheduler": ROOT / "scheduler", "cli": ROOT / "harrier" / "cli"}
RANK = {name: rank for rank, name in enumerate(LAYERS)}


def _modules() -> list[tuple[str, Path]]:
    return [(layer, path) for layer, folder in LAYERS.items()
            for path in sorted(folder.rglob("*.py"))]


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "harrier" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in RANK else None


def _imports(path: Path) -> list[tuple[ast.stmt, str, bool]]:
    """(node, module imported, inside a function?) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[ast.stmt, str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((child, alias.name, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                assert child.level == 0, f"{path}:{child.lineno}: use absolute imports"
                found.append((child, child.module or "", in_function))
            visit(child, nested)

    visit(tree, False)
    return found


@pytest.mark.parametrize(("layer", "path"), _modules(),
                         ids=[str(p.relative_to(ROOT)) for _, p in _modules()])
def test_no_module_imports_a_layer_above_its_own(layer: str, path: Path) -> None:
    for node, module, _ in _imports(path):
        target = _layer_of(module)
        assert target is None or RANK[target] <= RANK[layer], (
            f"{path.relative_to(ROOT)}:{node.lineno}: the {layer} layer imports {module} "
            f"from the {target} layer above it (layers: {' <- '.join(LAYERS)})")


@pytest.mark.parametrize(("layer", "path"), _modules(),
                         ids=[str(p.relative_to(ROOT)) for _, p in _modules()])
def test_imports_inside_functions_say_why_they_are_lazy(layer: str, path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    for node, module, in_function in _imports(path):
        if not in_function:
            continue
        here, above = lines[node.lineno - 1], lines[node.lineno - 2]
        assert "lazy" in here or "lazy" in above, (
            f"{path.relative_to(ROOT)}:{node.lineno}: `import {module}` inside a function: "
            "import at the top of the module, or say in a `# lazy: ...` comment why this "
            "one must wait (start-up time), never to dodge an import cycle")


def test_nothing_imports_the_folders_as_top_level_packages() -> None:
    # They install as harrier.common, harrier.worker, harrier.scheduler only.
    for path in [*ROOT.joinpath("tests").rglob("*.py"), *ROOT.joinpath("bench").rglob("*.py"),
                 *(p for _, p in _modules())]:
        for node, module, _ in _imports(path):
            assert module.split(".")[0] not in ("common", "worker", "scheduler", "cli"), (
                f"{path.relative_to(ROOT)}:{node.lineno}: import harrier.{module}, "
                f"not {module}")


@pytest.mark.parametrize("layer", ["common", "worker", "scheduler"])
def test_importing_a_layer_loads_nothing_from_the_layers_above(layer: str) -> None:
    modules = sorted(
        "harrier." + ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(
            ".__init__")
        for layer_name, path in _modules() if layer_name == layer)
    above = [name for name in LAYERS if RANK[name] > RANK[layer]]
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[:2] in "
            f"{[['harrier', name] for name in above]!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]", (
        f"importing harrier.{layer} loaded modules of the layers above it: {result.stdout}")
