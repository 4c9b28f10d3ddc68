"""The packages' import graph, read from the source (every import statement, also those inside functions):
no cycle between packages, and palkit (the infrastructure) imports none of the project's other packages."""
import ast
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def project_packages():
    """{import name: its folder} from pyproject.toml (a package added there is checked too)."""
    setuptools = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    folders = setuptools.get("package-dir", {})
    return {name: REPO_ROOT / folders.get(name, name) for name in setuptools["packages"]}


def imported_top_names(path):
    """The first component of every absolute import in one file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def package_graph():
    """{package: {package it imports: [files that do]}} between the project's packages."""
    packages = project_packages()
    graph = {name: {} for name in packages}
    for name, folder in packages.items():
        for path in sorted(folder.rglob("*.py")):
            for other in imported_top_names(path) & set(packages) - {name}:
                graph[name].setdefault(other, []).append(str(path.relative_to(REPO_ROOT)))
    return graph


def find_cycle(graph):
    """One cycle as a list of packages, or None."""
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return trail[trail.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt, trail + [nxt])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


def test_the_graph_covers_the_packages():
    packages = project_packages()
    assert {"palkit", "pal", "metric", "persona_extractor", "human_eval"} <= set(packages)
    assert all((folder / "__init__.py").is_file() for folder in packages.values())


def test_no_import_cycle_between_packages():
    graph = package_graph()
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle) + "; " + "; ".join(
        f"{a} -> {b}: {', '.join(graph[a][b])}" for a, b in zip(cycle, cycle[1:]))


def test_palkit_imports_no_project_package():
    assert package_graph()["palkit"] == {}


def test_the_model_package_does_not_import_the_extractor():
    """The chat session's live persona comes in through pal.chat.LivePersona, which the extractor fills."""
    assert "persona_extractor" not in package_graph()["pal"]


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}, "c": {"a": 1}}) is None
