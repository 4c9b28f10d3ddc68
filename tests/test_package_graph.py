"""The import graphs, read from the source (every import statement, also those inside functions): no cycle between
packages, no cycle between modules (every file of codes/ and persona_extractor/, the entry scripts included), and
palkit (the infrastructure) imports none of the project's other packages."""
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


def test_the_automatic_evaluation_uses_the_human_study_never_the_reverse():
    graph = package_graph()
    assert "human_eval" in graph["auto_eval"] and "auto_eval" not in graph["human_eval"]


def test_palkit_imports_no_project_package():
    assert package_graph()["palkit"] == {}


def test_the_model_package_does_not_import_the_extractor():
    """The chat session's live persona comes in through pal.chat.LivePersona, which the extractor fills."""
    assert "persona_extractor" not in package_graph()["pal"]


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}, "c": {"a": 1}}) is None


# ------------------------------------------------------------------------------------------------ modules



def project_modules():
    """{module name: its file} for every .py file of the packages (`pkg.mod`, `pkg` for __init__.py) and every entry
    script outside them (named by its path, e.g. `codes/train.py`: nothing imports a script)."""
    modules = {}
    for name, folder in project_packages().items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            modules[".".join((name, *parts)) if parts[-1] != "__init__" else ".".join((name, *parts[:-1]))] = path
    owned = set(modules.values())
    for path in sorted([*REPO_ROOT.glob("codes/**/*.py"), *REPO_ROOT.glob("persona_extractor/*.py")]):
        if path not in owned:
            modules[str(path.relative_to(REPO_ROOT))] = path
    return modules


def imported_modules(name, path, modules):
    """The project's modules that one file imports (the most specific module each import names)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(filter(None, [package.rsplit(".", node.level - 1)[0] if node.level > 1 else package,
                                              node.module]))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def module_graph():
    modules = project_modules()
    return {name: {other: [] for other in imported_modules(name, path, modules)} for name, path in modules.items()}


def module_cycles(graph):
    """Every cycle's set of modules (strongly connected components of more than one module, and self-loops)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_the_module_graph_covers_every_file():
    modules = project_modules()
    assert {"pal.variants", "pal.model", "palkit.entry", "metric.result_folders", "codes/train.py",
            "persona_extractor.train_bart", "codes/_reformat/process.py"} <= set(modules)
    assert "pal.model" in module_graph()["pal.generation"]


def test_no_import_cycle_between_modules():
    cycles = module_cycles(module_graph())
    assert not cycles, "; ".join(" <-> ".join(sorted(c)) for c in cycles)


def test_module_cycles_finds_one():
    assert module_cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [frozenset("abc")]
    assert module_cycles({"a": {"b": 1}, "b": {}, "c": {"a": 1}}) == []


def test_no_search_path_edits():
    """Every module is imported by package name: no file changes sys.path."""
    edits = [str(path.relative_to(REPO_ROOT)) for path in project_modules().values()
             if "sys.path" in path.read_text(encoding="utf-8")]
    assert not edits, edits


def test_no_library_function_takes_a_command_lines_namespace():
    """Command lines (modules defining `main`) parse once and pass typed options: no function of the library packages
    has a parameter named `args`."""
    found = []
    for name, path in project_modules().items():
        if name.split(".")[0] not in ("pal", "palkit", "metric", "persona_extractor", "chat_systems", "auto_eval"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                params = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                if any(p.arg == "args" for p in params):
                    found.append(f"{name}.{node.name}")
    assert not found, found
