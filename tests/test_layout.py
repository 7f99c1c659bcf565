"""The package layout: config/ only wires, the API layer (api/) sits below the apps.

Read from the source with `ast` (every import, also those inside functions), not by importing.
"""

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = {"tenants", "tokens", "licensing", "webhooks", "monitoring"}


def first_party() -> set[str]:
    """The top-level packages the project installs (pyproject's package list)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    return {pattern.rstrip("*") for pattern in patterns if (ROOT / pattern.rstrip("*")).is_dir()}


def modules(package: str):
    for path in sorted((ROOT / package).rglob("*.py")):
        yield path.relative_to(ROOT).as_posix(), path


def imported(path: Path, relative_name: str) -> set[str]:
    """The top-level names of everything the module at `path` imports."""
    package_parts = relative_name.removesuffix(".py").split("/")[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the module's own package
                base = package_parts[: len(package_parts) - node.level + 1]
                names.add(base[0] if base else (node.module or "").split(".")[0])
            elif node.module:
                names.add(node.module.split(".")[0])
    return names


def package_graph(*, skip=frozenset()) -> dict[str, set[str]]:
    """First-party package -> the other first-party packages its modules import."""
    packages = first_party()
    graph = {package: set() for package in packages}
    for package in packages:
        for name, path in modules(package):
            if name not in skip:
                graph[package] |= (imported(path, name) & packages) - {package}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one package (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_config_imports_no_app():
    offending = {
        name: sorted(imported(path, name) & APPS)
        for name, path in modules("config")
        if imported(path, name) & APPS
    }
    assert offending == {}


def test_the_api_layer_imports_neither_the_apps_nor_config():
    offending = {
        name: sorted(imported(path, name) & (APPS | {"config"}))
        for name, path in modules("api")
        if imported(path, name) & (APPS | {"config"})
    }
    assert offending == {}


def test_no_import_cycle_through_config_or_api():
    graph = package_graph()
    assert {"api", "config"} <= set(graph)
    through = [sorted(component) for component in cycles(graph) if component & {"api", "config"}]
    assert through == []


def test_the_cycle_check_finds_cycles():
    # The check itself, on a graph with a known cycle: it must not pass vacuously.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [{"a", "b", "c"}]


def test_the_app_image_copies_every_package():
    # deploy/Dockerfile installs the checkout's packages one COPY at a time (not built in CI):
    # a package missing there would only fail on a real deployment.
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    copied = {line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")}
    assert first_party() - copied == set()
