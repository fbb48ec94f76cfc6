"""The import architecture: no import cycle among the project's modules, no private name imported from another module.

The layers and forbidden imports are import-linter contracts (pyproject's ``[tool.importlinter]``,
``make lint``); these two checks are what its contracts cannot say. grimp counts every import,
module-level or inside a function.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("churn", "components", "pipelines")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, include_external_packages=False)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = []
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work.append((root, iter(sorted(graph.find_modules_directly_imported_by(root)))))
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph.find_modules_directly_imported_by(successor)))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def _one_cycle(graph: grimp.ImportGraph, component: list[str]) -> list[str]:
    """One import cycle through the first module of ``component``: ``a -> b -> ... -> a``."""
    start = component[0]
    members = set(component)
    back = min(
        (
            chain
            for importer in members & graph.find_modules_that_directly_import(start)
            if (chain := graph.find_shortest_chain(importer=start, imported=importer)) is not None
        ),
        key=len,
    )
    return [*back, start]


def test_no_import_cycle_among_the_projects_modules(graph: grimp.ImportGraph) -> None:
    cycles = _cycles(graph)
    described = [
        f"{' -> '.join(_one_cycle(graph, component))} (modules of the cycle: {', '.join(component)})"
        for component in cycles
    ]
    assert not cycles, "import cycles:\n" + "\n".join(described)


def _private_imports(path: Path, module: str, modules: set[str]) -> Iterator[str]:
    """``file:line: name`` for each private name ``module`` takes from another project module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    aliases: dict[str, str] = {}  # local name -> project module it is bound to

    def private(name: str) -> bool:
        return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            if base.split(".")[0] not in PACKAGES or base == module:
                continue
            for alias in node.names:
                if any(private(part) for part in base.split(".")) or private(alias.name):
                    yield f"{path.relative_to(ROOT)}:{node.lineno}: {alias.name} from {base}"
                elif f"{base}.{alias.name}" in modules:
                    aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] not in PACKAGES:
                    continue
                if any(private(part) for part in alias.name.split(".")):
                    yield f"{path.relative_to(ROOT)}:{node.lineno}: {alias.name}"
                if alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and aliases[node.value.id] != module
            and private(node.attr)
        ):
            yield f"{path.relative_to(ROOT)}:{node.lineno}: {node.attr} of {aliases[node.value.id]}"


def test_no_module_imports_a_private_name_from_another(graph: grimp.ImportGraph) -> None:
    source = ROOT / "src"
    found = []
    for path in sorted((source / "churn").rglob("*.py")):
        module = ".".join(path.relative_to(source).with_suffix("").parts).removesuffix(".__init__")
        found += _private_imports(path, module, set(graph.modules))
    assert not found, "private names imported from another module:\n" + "\n".join(found)


def _arrow_filesystem_imports(path: Path) -> list[str]:
    """``import pyarrow.fs``, ``from pyarrow import fs``, ``from pyarrow.fs import ...`` in one file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.name.startswith("pyarrow.fs")]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = [module] if module.startswith("pyarrow.fs") else []
            names += [f"{module}.fs" for alias in node.names if module == "pyarrow" and alias.name == "fs"]
        else:
            continue
        found += [f"{path.relative_to(ROOT)}:{node.lineno} imports {name}" for name in names]
    return found


def test_only_the_storage_layer_imports_arrows_filesystems() -> None:
    """import-linter cannot name a subpackage of an external package (pyarrow.fs) in a contract: checked here."""
    storage = ROOT / "src" / "churn" / "storage"
    found = [
        hit
        for path in sorted((ROOT / "src" / "churn").rglob("*.py"))
        if storage not in path.parents
        for hit in _arrow_filesystem_imports(path)
    ]
    assert not found, "pyarrow.fs outside churn.storage:\n" + "\n".join(found)
    # The check can fail: the storage layer itself does import it.
    assert [hit for path in sorted(storage.rglob("*.py")) for hit in _arrow_filesystem_imports(path)]
