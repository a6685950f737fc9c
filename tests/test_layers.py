"""The package's layers import only downward, module-level imports form no cycle, modules stay small."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "accel"
#: Each layer may import its own and lower layers (lower number), never a higher one.
LAYERS = {
    0: (
        "accel.errors",
        "accel.validation",
        "accel.memory",
        "accel.atomic",
        "accel.progress",
        "accel.backends",
    ),
    1: ("accel.data",),
    2: ("accel.serving", "accel.model_folder"),
    3: ("accel.models",),
    4: ("accel.metrics", "accel.tuning", "accel.plots", "accel.distributed", "accel.bench", "accel.cli"),
}
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer(name: str) -> int | None:
    for rank, prefixes in LAYERS.items():
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return rank
    return None


def imports(name: str, module_level_only: bool) -> set[str]:
    """accel modules that ``name`` imports (``TYPE_CHECKING`` blocks left out)."""
    found: set[str] = set()

    def visit(node: ast.AST, top: bool) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        counted = top or not module_level_only
        if isinstance(node, ast.Import) and counted:
            found.update(a.name for a in node.names if a.name.startswith("accel"))
        elif isinstance(node, ast.ImportFrom) and counted and (node.module or "").startswith("accel"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else str(node.module))
        inside_function = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, top and not inside_function)

    visit(ast.parse(MODULES[name].read_text()), True)
    return found - {"accel"}


@pytest.mark.parametrize("name", [n for n in MODULES if layer(n) is not None])
def test_no_import_from_a_higher_layer(name):
    own = layer(name)
    upward = sorted(i for i in imports(name, module_level_only=False) if (layer(i) or 0) > own)
    assert not upward, f"{name} (layer {own}) imports {upward}"


def test_every_module_has_a_layer():
    assert [n for n in MODULES if n not in ("accel", "accel.__main__") and layer(n) is None] == []


def test_no_import_cycle():
    graph = {name: imports(name, module_level_only=True) & set(MODULES) for name in MODULES}
    state: dict[str, int] = {}

    def walk(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path[path.index(target) :], target]))
            if target not in state:
                walk(target, [*path, target])
        state[name] = 2

    for name in MODULES:
        if name not in state:
            walk(name, [name])


def test_no_module_is_over_the_size_limit():
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert {n: s for n, s in sizes.items() if s > MAX_LINES} == {}


def test_importing_the_models_does_not_import_pandas():
    code = "import sys, accel.models; assert 'pandas' not in sys.modules, 'pandas was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
