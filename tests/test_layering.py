"""The packages' dependencies (under the `cce_tune` namespace) point one way (`tuner` ->
`models`, `kernels`, `search_spaces`; `models` -> `kernels`) and no module imports itself in a
circle, lazily or not. Imports under `if TYPE_CHECKING:` are annotations only and do not
count."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kernels", "models", "search_spaces", "tuner")
ALLOWED = {"kernels": set(), "models": {"kernels"}, "search_spaces": set(),
           "tuner": {"kernels", "models", "search_spaces"}}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found["cce_tune." + name.removesuffix(".__init__")] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules `path` imports anywhere in it (functions included)."""
    tree = ast.parse(path.read_text())
    skipped = {id(node) for statement in ast.walk(tree) if isinstance(statement, ast.If)
               and "TYPE_CHECKING" in ast.unparse(statement.test)
               for child in statement.body for node in ast.walk(child)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return {name for name in out if name in known}


GRAPH = {name: imports(path, modules()) for name, path in modules().items()}


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_imports_point_down_the_layers(name):
    package = name.split(".")[1]
    outside = {dep.split(".")[1] for dep in GRAPH[name]} - {package}
    assert outside <= ALLOWED[package], f"{name} imports {outside - ALLOWED[package]}"


def test_no_module_imports_itself_in_a_circle():
    cycles, index, low, stack, on_stack = [], {}, {}, [], set()

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in GRAPH[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    assert cycles == []


def test_the_search_does_not_import_the_reports():
    """Reports read a run directory; the search writes one and knows nothing of them."""
    reports = {"cce_tune.tuner.report", "cce_tune.tuner.report_html"}
    assert not GRAPH["cce_tune.tuner.search"] & reports


def test_every_package_folder_is_installed():
    """pyproject.toml lists the packages by hand (the namespace needs it): none left out."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    folders = {".".join(("cce_tune", *init.parent.relative_to(ROOT).parts))
               for package in PACKAGES for init in (ROOT / package).rglob("__init__.py")}
    assert listed == folders
