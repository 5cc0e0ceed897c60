"""The library's shape, read from its source (ast): packages depend one way (core <- the
experiments <- report <- the planning of the workflow), no import circle, no TYPE_CHECKING
guard, small modules, narrow signatures, and thin Snakemake scripts."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "memloc"
SCRIPTS = ROOT / "workflow" / "scripts"

# Layers, lowest first: a module imports modules of its own layer or of lower ones only.
EXPERIMENTS = ("runs", "layers", "flipping", "dropout", "atypical", "localize")
LAYERS = {"core": 0, **dict.fromkeys(EXPERIMENTS, 1), "report": 2, "atlas": 2}
PLANNING = 3  # memloc.config, memloc.config_settings, memloc.plan: the workflow's view of everything
MAX_MODULE_LINES = 300
MAX_PARAMETERS = 7
MAX_SCRIPT_LINES = 50
SNAKEMAKE_FIELDS = {"input", "output", "params", "wildcards", "threads", "log"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.get(parts[1], PLANNING) if len(parts) > 1 else PLANNING


def imports(path: Path) -> set[str]:
    """The memloc modules a module imports, at any depth of its code (a function's own
    imports count: they are dependencies all the same)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("memloc")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("memloc"):
            for a in node.names:  # `from memloc.core import paths` imports the module memloc.core.paths
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in MODULES else node.module)
    return {m for m in found if m in MODULES}


GRAPH = {name: imports(path) - {name} for name, path in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph` (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def parameters(node: ast.FunctionDef) -> int:
    """Parameters a caller passes (self / cls of a method not counted; *args and **kwargs count one each)."""
    a = node.args
    names = [x.arg for x in a.posonlyargs + a.args]
    count = len(names) + len(a.kwonlyargs) + (a.vararg is not None) + (a.kwarg is not None)
    return count - (bool(names) and names[0] in ("self", "cls"))


def test_find_cycle_finds_a_circle_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_packages_depend_one_way():
    names = {0: "core", 1: "an experiment package", 2: "report", PLANNING: "the workflow's planning"}
    wrong = [f"{m} ({names[layer(m)]}) imports {d} ({names[layer(d)]})"
             for m, deps in GRAPH.items() for d in sorted(deps) if layer(d) > layer(m)]
    assert not wrong, "\n".join(wrong)


def test_no_type_checking_guard():
    guarded = [name for name, path in MODULES.items() if "TYPE_CHECKING" in path.read_text()]
    assert not guarded, f"TYPE_CHECKING (an import circle held together) in {guarded}"


def test_no_module_over_300_lines():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


@pytest.mark.parametrize("folder", ["memloc", "workflow/scripts", "bench"])
def test_no_function_takes_more_than_7_parameters(folder):
    wide = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({parameters(node)})"
            for path in sorted((ROOT / folder).rglob("*.py")) for node in functions(ast.parse(path.read_text()))
            if parameters(node) > MAX_PARAMETERS]
    assert not wide, f"functions with more than {MAX_PARAMETERS} parameters:\n" + "\n".join(wide)


@pytest.mark.parametrize("script", sorted(SCRIPTS.glob("*.py")), ids=lambda p: p.name)
def test_scripts_are_thin(script):
    text = script.read_text()
    assert len(text.splitlines()) <= MAX_SCRIPT_LINES, f"{script.name}: over {MAX_SCRIPT_LINES} lines"
    read = {node.attr for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "snakemake"}
    assert read <= SNAKEMAKE_FIELDS, f"{script.name} reads snakemake.{sorted(read - SNAKEMAKE_FIELDS)}"
