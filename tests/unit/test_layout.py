"""The layout's rules, read from the import statements of every .py file in the tree.

Layers, bottom to top: ``deepseek_node`` (node/, what runs on the nodes) < ``deepseek_infra``
(the controller library) < ``roles`` < ``fleet`` < the entry points (deploy/, inventories/,
bench/). Every import arrow points down or stays in its layer. ``lab`` (the simulated fleet)
stands beside ``fleet``: it uses the three lowest layers, and no layer below the entry points
may use it. Imports inside functions count: deferring an import hides an arrow, it does not
remove it.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import setuptools

REPO = Path(__file__).resolve().parents[2]
NODE_ROOT = REPO / "node"  # deepseek_node's import root (its own distribution)
SKIPPED_DIRS = {"__pycache__", "build", "out"}

#: what each layer may import from the tree (its own layer included)
ALLOWED = {
    "deepseek_node": {"deepseek_node"},
    "deepseek_infra": {"deepseek_node", "deepseek_infra"},
    "roles": {"deepseek_node", "deepseek_infra", "roles"},
    "fleet": {"deepseek_node", "deepseek_infra", "roles", "fleet"},
    "lab": {"deepseek_node", "deepseek_infra", "roles", "lab"},
}
#: import name -> distribution, where they differ or the import name is ambiguous
DISTRIBUTIONS = {
    "yaml": "pyyaml", "prometheus_client": "prometheus-client", "psycopg": "psycopg", "torch": "torch",
    "transformers": "transformers", "accelerate": "accelerate", "safetensors": "safetensors",
    "tokenizers": "tokenizers", "starlette": "starlette", "uvicorn": "uvicorn", "httpx": "httpx",
    "cryptography": "cryptography",
}
#: names too generic to install: only the checkout may provide them
CHECKOUT_ONLY = ("roles", "fleet", "lab", "deploy", "inventories", "bench")


@dataclass(frozen=True)
class Import:
    source: str  # importing module, e.g. "roles.base.tasks"
    path: Path
    line: int
    target: str  # imported module (or the package a name was taken from)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def _python_files() -> list[Path]:
    found = []
    for directory, subdirs, files in os.walk(REPO):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d not in SKIPPED_DIRS
                            and not d.endswith(".egg-info"))
        found += [Path(directory, name) for name in sorted(files) if name.endswith(".py")]
    return found


def module_name(path: Path) -> str:
    relative = path.relative_to(NODE_ROOT if path.is_relative_to(NODE_ROOT) else REPO)
    parts = list(relative.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in _python_files()}


def _imports_of(path: Path) -> list[Import]:
    source = module_name(path)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    known = modules()
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(source, path, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module
            for alias in node.names:
                name = f"{base}.{alias.name}"
                found.append(Import(source, path, node.lineno, name if name in known else base))
    return found


@cache
def all_imports() -> tuple[Import, ...]:
    return tuple(found for path in modules().values() for found in _imports_of(path))


def top(name: str) -> str:
    return name.split(".")[0]


def test_the_walk_sees_every_layer():
    tops = {top(name) for name in modules()}
    assert set(ALLOWED) | {"deploy", "inventories", "bench", "tests"} <= tops, sorted(tops)
    assert "deepseek_node.weights.manifest" in modules()  # node/ is its own import root
    assert "roles.base" in modules() and "lab.mirror.catalog" in modules()


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_point_down_the_layers(layer):
    first_party = {top(name) for name in modules()}
    wrong = [f"{i.where}: imports {i.target}" for i in all_imports()
             if top(i.source) == layer and top(i.target) in first_party and top(i.target) not in ALLOWED[layer]]
    assert not wrong, f"{layer} may import only {sorted(ALLOWED[layer])}:\n" + "\n".join(wrong)


def test_nothing_imports_a_deploy_file():
    """deploy/ files are what pyinfra runs; shared code lives in roles/ or below."""
    wrong = [f"{i.where}: imports {i.target}" for i in all_imports() if top(i.target) == "deploy"]
    assert not wrong, "\n".join(wrong)


def _declared(pyproject: Path) -> set[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return {re.match(r"[A-Za-z0-9._-]+", r).group().lower().replace("_", "-") for r in requirements}


def test_node_imports_only_the_standard_library_and_its_declared_distributions():
    """The node wheel is installed into bare venvs: an undeclared import fails there, not here."""
    declared = _declared(NODE_ROOT / "pyproject.toml")
    assert {"cryptography", "starlette", "torch"} <= declared  # the extras were read
    wrong = []
    for i in all_imports():
        name = top(i.target)
        if top(i.source) != "deepseek_node" or name in sys.stdlib_module_names or name == "deepseek_node":
            continue
        if name in ("pyinfra", "deepseek_infra", "roles", "fleet", "lab"):
            wrong.append(f"{i.where}: imports {i.target} (controller code)")
        elif DISTRIBUTIONS.get(name, name) not in declared:
            wrong.append(f"{i.where}: imports {name}, which node/pyproject.toml does not declare")
    assert not wrong, "\n".join(wrong)


def test_every_import_names_something_that_exists():
    """An import of a moved or deleted module (``modules``) fails only when its file runs."""
    first_party = {top(name) for name in modules()}
    missing = {}
    for i in all_imports():
        name = top(i.target)
        if top(i.source) == "tests" or name in sys.stdlib_module_names or name in first_party:
            continue  # a test may import what it built (a wheel on a temporary sys.path)
        if i.where.startswith("lab/oracles/"):
            continue  # run by lab/engine_oracles.py inside an engine's own venv (vLLM, SGLang)
        if name not in missing:
            missing[name] = importlib.util.find_spec(name) is None and i.where
    missing = {name: where for name, where in missing.items() if where}
    assert not missing, "imports of nothing installed or in the tree (name: first place): " + repr(missing)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a path that returns to its start), or None."""
    done: set[str] = set()
    for start in sorted(set(graph) - done):
        stack, path = [(start, iter(sorted(graph[start])))], [start]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                done.add(node)
                stack.pop()
                path.pop()
            elif child in path:
                return path[path.index(child):] + [child]
            elif child not in done:
                stack.append((child, iter(sorted(graph.get(child, ())))))
                path.append(child)
    return None


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def _graph(package: str) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in modules() if top(name) == package}
    for i in all_imports():
        if i.source in graph and i.target in graph and i.target != i.source:
            graph[i.source].add(i.target)
    return graph


def test_lab_modules_import_each_other_without_a_cycle():
    """lab/constants.py is the leaf the fleet, mirrors, tiny model and wheelhouses share."""
    graph = _graph("lab")
    assert graph["lab.constants"] == set() and "lab.constants" in graph["lab.fleet"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


@pytest.mark.parametrize("package", sorted(set(ALLOWED) - {"lab"}))
def test_package_modules_import_each_other_without_a_cycle(package):
    """The layers keep cycles between packages out; this keeps them out inside one."""
    graph = _graph(package)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_role_settings_load_without_the_roles_deploys():
    """Validating host data imports each role's defaults only: no operations, no tasks."""
    script = "import json, sys, roles.settings; print(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(NODE_ROOT)])}
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    roles = {path.parent.name for path in (REPO / "roles").glob("*/defaults.py")}
    assert {f"roles.{role}.defaults" for role in roles} <= loaded  # it did read every role
    assert not sorted(name for name in loaded if name.startswith("pyinfra.operations."))
    assert not sorted(name for name in loaded if re.fullmatch(r"roles\.\w+\.tasks", name))


def _packages(pyproject: Path) -> set[str]:
    find = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["packages"]["find"]
    finder = setuptools.find_namespace_packages if find.get("namespaces", True) else setuptools.find_packages
    return set(finder(where=str(pyproject.parent / find.get("where", ["."])[0]),
                      include=find.get("include", ("*",)), exclude=find.get("exclude", ())))


def test_the_distributions_install_only_their_own_package():
    """roles, fleet, lab ... are read from the checkout: installed, they could shadow another
    distribution's package of that name or be shadowed by it."""
    controller = _packages(REPO / "pyproject.toml")
    assert {top(name) for name in controller} == {"deepseek_infra"}
    assert {"deepseek_infra.facts", "deepseek_infra.operations"} <= controller
    assert {top(name) for name in _packages(NODE_ROOT / "pyproject.toml")} == {"deepseek_node"}
    installed = importlib.metadata.packages_distributions()
    assert not {name: installed[name] for name in CHECKOUT_ONLY if name in installed}


def test_unit_test_directories_mirror_source_packages():
    unit = REPO / "tests" / "unit"
    packages = {path.parent for path in modules().values()}
    strays = []
    for directory in sorted(p for p in unit.rglob("*") if p.is_dir() and p.name not in SKIPPED_DIRS):
        relative = directory.relative_to(unit)
        if REPO / relative not in packages and NODE_ROOT / relative not in packages:
            strays.append(str(relative))
    assert not strays, f"tests/unit/<dir> without a source package <dir>: {strays}"
