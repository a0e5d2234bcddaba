"""The dependency rule of docs/ARCHITECTURE.md, enforced: which app may import which, and no import circle.

Every import counts, wherever it is written: at the top, inside a function (a lazy import is still an arrow)
or under `if TYPE_CHECKING:`. Tests, migrations, fakes (`testing/`) and bench/ are outside the rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("inventiv", "catalog", "providers", "monitoring", "instances", "router", "autoscaling", "finops",
        "worker_agent")
OUTSIDE_THE_RULE = frozenset({"tests", "migrations", "testing"})
# The project package's wiring (URLs, the API router, the ASGI entry, the dashboard home, commands) sits
# above every app; the rest of `inventiv` (settings helpers, crypto, page and API helpers) sits below them.
WIRING = ("inventiv.urls", "inventiv.api", "inventiv.asgi", "inventiv.wsgi", "inventiv.views",
          "inventiv.celery", "inventiv.management")
KERNEL = "inventiv"
# app -> the apps it may import (the kernel is allowed to all but worker_agent). docs/ARCHITECTURE.md,
# "Which part may use which", says why each arrow exists.
ALLOWED = {
    "providers": set(),
    "monitoring": set(),
    "catalog": {"providers", "monitoring"},
    "instances": {"catalog", "providers", "monitoring"},
    "router": {"instances", "catalog", "monitoring"},
    "autoscaling": {"instances", "catalog", "monitoring"},
    "finops": {"instances", "catalog", "monitoring", "router", "autoscaling"},
    KERNEL: set(),
}
MAX_MODULE_LINES = 450


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if OUTSIDE_THE_RULE.intersection(path.relative_to(ROOT).parts):
                continue
            modules[_module_name(path)] = path
    return modules


def imported_modules(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The project modules `path` imports, resolved to the module (not the package) where possible."""

    def resolve(dotted: str) -> str | None:
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in modules:
                return candidate
        return None

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # `from pkg import name` is an arrow to the module pkg.name when there is one, else to pkg.
            submodules = [f"{base}.{alias.name}" for alias in node.names]
            targets = [t for t in submodules if resolve(t) == t] or [base]
        else:
            continue
        for target in targets:
            resolved = resolve(target)
            if resolved is not None and resolved != name:
                found.add(resolved)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imported_modules(path, name, modules) for name, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def app_of(module: str) -> str:
    return module.split(".")[0]


def is_wiring(module: str) -> bool:
    return any(module == top or module.startswith(top + ".") for top in WIRING)


def forbidden_arrows(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, imports in sorted(graph.items()):
        source = app_of(module)
        if is_wiring(module):
            continue  # wiring may use any app
        for target in sorted(imports):
            destination = app_of(target)
            if destination == source:
                continue
            if source == "worker_agent" or destination == "worker_agent":
                problems.append(f"{module} -> {target}: the worker agent and the control plane share no code")
            elif destination == KERNEL and is_wiring(target):
                problems.append(f"{module} -> {target}: the project's wiring sits above every app")
            elif destination != KERNEL and destination not in ALLOWED.get(source, set()):
                problems.append(f"{module} -> {target}: {source} may not import {destination}")
    return problems


def test_no_module_imports_another_that_imports_it_back():
    assert circles(import_graph()) == []


def test_every_import_between_apps_follows_the_dependency_rule():
    assert forbidden_arrows(import_graph()) == []


def test_the_worker_agent_imports_nothing_of_django():
    offenders = []
    for path in (ROOT / "worker_agent").rglob("*.py"):
        if "tests" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(ROOT)}: {name}" for name in names if name.split(".")[0] == "django"]
    assert offenders == []


def test_no_module_outside_tests_is_longer_than_a_reader_can_hold():
    long = {name: lines for name, path in project_modules().items()
            if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


# --- The rule's own checks: it fails when someone adds a forbidden arrow or a circle -----------------


def test_a_circle_of_three_modules_is_found():
    graph = {"a.x": {"a.y"}, "a.y": {"a.z"}, "a.z": {"a.x"}, "a.w": {"a.x"}}
    assert circles(graph) == [["a.x", "a.y", "a.z"]]


@pytest.mark.parametrize("source, target", [
    ("router.selectors", "finops.traffic"),
    ("instances.services", "router.table"),
    ("catalog.services", "instances.models"),
    ("providers.mock", "instances.models"),
    ("worker_agent.agent", "inventiv.env"),
    ("catalog.models", "inventiv.urls"),
])
def test_a_forbidden_arrow_is_reported(source, target):
    assert forbidden_arrows({source: {target}}) != []


def test_a_lazy_import_inside_a_function_is_an_arrow(tmp_path):
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from router import table\n")
    assert imported_modules(module, "instances.lazy", {"router.table": module, "instances.lazy": module}) == {
        "router.table"
    }
