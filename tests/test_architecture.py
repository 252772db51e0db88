"""The import rules of the package layout (DESIGN section 2), checked by walking the source with `ast`.

- no import cycle between subpackages (module-level imports: what runs when a module is imported);
- nothing outside `stages/` imports `nemotron.stages`, at any level, except the entry point `nemotron.cli`
  (the pipeline stage, inside `stages/`, may run the other stages);
- backends never import `nemotron.stages` (the neutral job layer is `nemotron.job`);
- `artifacts/` imports nothing else of the project at module level but the error types (its seed-API methods
  may call the public tracking API inside the method);
- the operations in `artcli/` are the CLI's own: nothing but the entry points imports `artcli` or `cli`;
- the store sits below job integration: `store/` imports only the data model and the error types.

A "subpackage" is the first name below `nemotron` (`nemotron.store.records` -> `store`, `nemotron.job` ->
`job`). Imports under `if TYPE_CHECKING:` are not run and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import nemotron

pytestmark = pytest.mark.unit

PACKAGE_DIR = Path(nemotron.__file__).resolve().parent
STAGE_IMPORTERS = {"cli"}  # the entry point: it runs the stage a config names
ARTIFACTS_MAY_IMPORT = {"artifacts", "errors"}
CLI_PACKAGES = {"artcli", "cli", "__main__"}  # the entry points: `nemotron-art`, `python -m nemotron`
STORE_MAY_IMPORT = {"store", "artifacts", "errors"}


def module_name(path: Path, package_dir: Path) -> str:
    parts = path.relative_to(package_dir.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(path: Path, package_dir: Path) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every import of a project module in `path`."""
    module = module_name(path, package_dir)
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((alias.name, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = _absolute(child, module, path.name == "__init__.py")
                # `from nemotron.tracking import report` imports the submodule `nemotron.tracking.report`
                found.extend((f"{base}.{alias.name}", top) for alias in child.names)
            in_function = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            type_only = isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
            visit(child, top and not in_function and not type_only)

    visit(ast.parse(path.read_text(), str(path)), True)
    return [(name, top) for name, top in found if name == "nemotron" or name.startswith("nemotron.")]


def subpackage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def import_table(package_dir: Path) -> dict[str, list[tuple[str, bool]]]:
    return {module_name(p, package_dir): imports(p, package_dir) for p in sorted(package_dir.rglob("*.py"))}


def subpackage_cycles(table: dict[str, list[tuple[str, bool]]]) -> list[list[str]]:
    """Cycles in the graph of module-level imports between subpackages (one per strongly connected group)."""
    graph: dict[str, set[str]] = {}
    for module, found in table.items():
        source = subpackage(module)
        for name, top in found:
            target = subpackage(name)
            if top and source and target and target != source:
                graph.setdefault(source, set()).add(target)
    cycles, done = [], set()
    for start in sorted(graph):
        path = _cycle_from(start, graph, [start], done)
        if path:
            cycles.append(path)
            done.update(path)
    return cycles


def _cycle_from(node: str, graph: dict[str, set[str]], path: list[str], done: set[str]) -> list[str] | None:
    for nxt in sorted(graph.get(node, ())):
        if nxt == path[0]:
            return [*path, nxt]
        if nxt not in path and nxt not in done:
            found = _cycle_from(nxt, graph, [*path, nxt], done)
            if found:
                return found
    return None


def stage_imports_outside_stages(table: dict[str, list[tuple[str, bool]]]) -> list[str]:
    return [
        f"{module} imports {name}"
        for module, found in table.items()
        for name, _ in found
        if subpackage(name) == "stages" and subpackage(module) not in {"stages", *STAGE_IMPORTERS}
    ]


def backend_stage_imports(table: dict[str, list[tuple[str, bool]]]) -> list[str]:
    return [
        f"{module} imports {name}"
        for module, found in table.items()
        if subpackage(module) == "backends"
        for name, _ in found
        if subpackage(name) == "stages"
    ]


def artifacts_module_level_imports(table: dict[str, list[tuple[str, bool]]]) -> list[str]:
    return [
        f"{module} imports {name} at module level"
        for module, found in table.items()
        if subpackage(module) == "artifacts"
        for name, top in found
        if top and subpackage(name) not in ARTIFACTS_MAY_IMPORT
    ]


def cli_imports_outside_cli(table: dict[str, list[tuple[str, bool]]]) -> list[str]:
    return [
        f"{module} imports {name}"
        for module, found in table.items()
        if subpackage(module) not in CLI_PACKAGES
        for name, _ in found
        if subpackage(name) in CLI_PACKAGES
    ]


def store_imports_above_it(table: dict[str, list[tuple[str, bool]]]) -> list[str]:
    return [
        f"{module} imports {name}"
        for module, found in table.items()
        if subpackage(module) == "store"
        for name, _ in found
        if subpackage(name) not in STORE_MAY_IMPORT
    ]


TABLE = import_table(PACKAGE_DIR)


def test_the_walk_sees_the_package():
    assert {"nemotron.job", "nemotron.stages.pretrain", "nemotron.store.manifest_store"} <= TABLE.keys()
    assert ("nemotron.job.stage_params", True) in TABLE["nemotron.stages.pretrain"]


def test_no_import_cycle_between_subpackages():
    assert subpackage_cycles(TABLE) == []


def test_nothing_outside_stages_imports_stages():
    assert stage_imports_outside_stages(TABLE) == []


def test_backends_never_import_stages():
    assert backend_stage_imports(TABLE) == []


def test_artifacts_import_nothing_else_of_the_project_at_module_level():
    assert artifacts_module_level_imports(TABLE) == []


def test_only_the_entry_points_import_the_cli_and_its_operations():
    assert cli_imports_outside_cli(TABLE) == []


def test_the_store_imports_only_the_data_model_and_the_errors():
    assert store_imports_above_it(TABLE) == []


def test_each_rule_finds_a_breach():
    table = {
        "nemotron.tracking.session": [("nemotron.artcli.lineage", False)],
        "nemotron.store.records": [("nemotron.tracking.api", False)],
        "nemotron.artifacts.base": [("nemotron.store.records", True), ("nemotron.tracking.api", False)],
        "nemotron.backends.nemo_rl": [("nemotron.stages.rl", False)],
    }
    assert cli_imports_outside_cli(table) == ["nemotron.tracking.session imports nemotron.artcli.lineage"]
    assert store_imports_above_it(table) == ["nemotron.store.records imports nemotron.tracking.api"]
    assert artifacts_module_level_imports(table) == [
        "nemotron.artifacts.base imports nemotron.store.records at module level"
    ]
    assert (
        backend_stage_imports(table)
        == stage_imports_outside_stages(table)
        == ["nemotron.backends.nemo_rl imports nemotron.stages.rl"]
    )


def test_pyproject_lists_every_package_the_wheel_needs():
    """The packages are listed in pyproject.toml (the conf/ -> nemotron.conf mapping needs a list): every
    directory of modules under nemotron/ and hydra_plugins/ is listed, and so is the mapped config package."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    root = PACKAGE_DIR.parent
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {".".join(p.parent.relative_to(root).parts) for top in ("nemotron", "hydra_plugins")
             for p in (root / top).rglob("*.py")}  # fmt: skip
    assert found - set(setuptools["packages"]) == set()
    assert setuptools["package-dir"] == {"nemotron.conf": "conf"} and (root / "conf" / "__init__.py").is_file()


def test_a_cycle_is_found():
    table = {
        "nemotron.a.x": [("nemotron.b.y", True)],
        "nemotron.b.y": [("nemotron.c", True)],
        "nemotron.c": [("nemotron.a.x", True), ("nemotron.b", False)],
    }
    assert subpackage_cycles(table) == [["a", "b", "c", "a"]]
    assert subpackage_cycles({**table, "nemotron.c": [("nemotron.a.x", False)]}) == []
