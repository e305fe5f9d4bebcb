"""The package layout is the pipeline: a stage imports only the stages before it.

The rule (README, "Development"): foundation modules (errors, flows, labels, selectors,
safe_yaml, _kernels, _memory, _compat, _text, _faults) import no stage; then ingest, cluster,
resolve, reduce, identity, policy, engine, generator, check, explore, the public API
(``netpolgen/__init__.py``), and the command line (a thin layer over that API) last. Every
import counts, deferred ones inside functions too, so a lazy import cannot hide a dependency
on a later stage.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "netpolgen"

STAGES = (
    "foundation",
    "ingest",
    "cluster",
    "resolve",
    "reduce",
    "identity",
    "policy",
    "engine",
    "generator",
    "check",
    "explore",
    "api",
    "cli",
)
FOUNDATION = frozenset(
    {
        "errors",
        "flows",
        "labels",
        "selectors",
        "safe_yaml",
        "_kernels",
        "_memory",
        "_compat",
        "_text",
        "_workers",
        "_faults",
    }
)
MAX_MODULE_LINES = 600
# Modules still over the limit, each with what splits it. Empty this as they are split.
SPLIT_PENDING: dict[str, str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def stage(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "api"
    if parts[1] == "__main__":
        return "cli"
    return "foundation" if parts[1] in FOUNDATION else parts[1]


def imports(
    path: Path, module: str, *, top_level_only: bool = False
) -> Iterator[tuple[str, str, int]]:
    """``(imported module, imported name, line)`` for every netpolgen import in ``path``."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "netpolgen":
                continue
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                yield (target if target in MODULES else node.module), alias.name, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "netpolgen":
                    yield alias.name, "", node.lineno


def test_every_module_belongs_to_a_known_stage() -> None:
    unknown = sorted(m for m in MODULES if stage(m) not in STAGES)
    assert not unknown, f"modules outside the pipeline's stages: {unknown}"


def test_no_stage_imports_a_later_stage() -> None:
    wrong = []
    for module, path in MODULES.items():
        own = STAGES.index(stage(module))
        for target, _, line in imports(path, module):
            if STAGES.index(stage(target)) > own:
                wrong.append(f"{path.name}:{line}: {module} ({stage(module)}) imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_private_name_is_used_outside_its_module() -> None:
    wrong = []
    for module, path in MODULES.items():
        for target, name, line in imports(path, module):
            if name.startswith("_") and not name.startswith("__") and target != module:
                wrong.append(f"{module}:{line} imports {target}.{name}")
        # Attribute access on an imported netpolgen module: ``hubble._forget()``.
        tree = ast.parse(path.read_text())
        aliases = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("netpolgen")
            for alias in node.names
            if f"{node.module}.{alias.name}" in MODULES
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                wrong.append(f"{module}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles() -> None:
    graph = {
        module: {target for target, _, _ in imports(path, module, top_level_only=True)}
        for module, path in MODULES.items()
    }
    # A package's __init__ is imported before its modules: importing the package is an edge
    # to it, so ``a.b`` -> ``a`` is not followed back into ``a``'s own modules.
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, trail: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == node or node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                cycle.extend([*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, [*trail, nxt]):
                return True
        state[node] = 2
        return False

    for module in sorted(graph):
        if state.get(module) is None and visit(module, [module]):
            break
    assert not cycle, " -> ".join(cycle)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    if module in SPLIT_PENDING:
        assert lines > MAX_MODULE_LINES, f"{module} is small now: drop it from SPLIT_PENDING"
        pytest.skip(SPLIT_PENDING[module])
    assert lines <= MAX_MODULE_LINES, f"{module}: {lines} lines; split it by concern"
