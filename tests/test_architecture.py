"""The shape of the package: imports run one way, and reading configs or listing things needs no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "kompete"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path, known: set[str], module_level: bool = False) -> set[str]:
    """Every kompete module `path` imports, anywhere in the file (function-level imports count too:
    they hide a cycle, they do not remove it), or only those run on import (`module_level`)."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    tree = ast.parse(path.read_text())
    if module_level:
        tree.body = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                   for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in typing_only:  # annotations only: never executed
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("kompete")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if not base.startswith("kompete"):
                continue
            subs = {f"{base}.{a.name}" for a in node.names} & known
            found |= subs or {base}
    return found & known


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(path, known) - {name} for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_kompete():
    graph = import_graph()
    assert "kompete.config" in graph and graph["kompete.generate"]  # the walk sees the package
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_training_does_not_import_the_later_stages():
    graph = import_graph()
    later = {"kompete.generate", "kompete.archive", "kompete.metrics", "kompete.kernel", "kompete.ledger",
             "kompete.pipeline", "kompete.cli"}
    for name, deps in graph.items():
        if name.startswith(("kompete.train", "kompete.algorithms", "kompete.models", "kompete.losses")):
            bad = {d for d in deps if any(d == s or d.startswith(s + ".") for s in later)}
            assert not bad, f"{name} imports {bad}"


@pytest.mark.parametrize("args", [["competitions"], ["config", "sample-dogs"], ["config", "--keys"],
                                  ["--help"], ["train", "--help"], ["validate", "sample-dogs", "missing.zip"],
                                  ["init", "x", "--images", ".", "--dry-run"]])
def test_listing_and_config_commands_load_no_torch(args, tmp_path):
    code = ("import sys\nfrom kompete.cli import main\n"
            f"try:\n    main({args!r}, standalone_mode=False)\nexcept BaseException:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip().splitlines()[-1] == "NO-TORCH", out.stdout + out.stderr


# The data flow, earliest first: a module imports only from its own stage or earlier ones. The shared
# pieces (errors, registry, schema, paths) sit below everything; the torch-free specs (the __init__ of
# kompete.algorithms, of each algorithm and of kompete.losses; every module of kompete.layouts) are read by
# config, and import their implementation (a later stage) only inside a function, when it is needed. generate and archive are
# one stage (generate writes through archive's zip writer); the ledger is a leaf store the recording
# stages call, and pipeline and cli reach across the whole chain.
SHARED = ("kompete.errors", "kompete.registry", "kompete.schema", "kompete.paths", "kompete.memorization")
STAGES = (
    ("config", ("kompete.config", "kompete.layouts")),
    ("data", ("kompete.data", "kompete.init")),
    ("runtime", ("kompete.runtime", "kompete.device")),
    ("algorithm", ("kompete.algorithms", "kompete.models", "kompete.losses", "kompete.penalties")),
    ("train", ("kompete.train",)),
    ("generate", ("kompete.generate", "kompete.archive")),
    ("metrics", ("kompete.metrics",)),
    ("kernel", ("kompete.kernel", "kompete.ledger", "kompete.pipeline", "kompete.cli", "kompete.__main__")),
)


def is_spec(module: str) -> bool:
    parts = module.split(".")
    return module in ("kompete.algorithms", "kompete.losses") or parts[:2] == ["kompete", "layouts"] or (
        len(parts) == 3 and parts[1] == "algorithms" and (PACKAGE / "algorithms" / parts[2] / "__init__.py").is_file())


def stage_of(module: str) -> int:
    """The index of the stage `module` belongs to (-1: a shared piece)."""
    if module in SHARED:
        return -1
    if is_spec(module):
        return 0
    if module == "kompete":
        return len(STAGES) - 1
    for i, (_, roots) in enumerate(STAGES):
        if any(module == r or module.startswith(r + ".") for r in roots):
            return i
    raise AssertionError(f"{module} belongs to no stage: add it to STAGES")


def test_every_import_runs_with_the_data_flow():
    graph = import_graph()
    mods = modules()
    for name in graph:
        if is_spec(name):  # a spec's task_class() / implementation() / load() import lazily: allowed
            graph[name] = imports_of(mods[name], set(mods), module_level=True) - {name}
    top = len(STAGES) - 1  # kernel, campaign, pipeline, cli: may import anything
    backwards = [f"{name} ({STAGES[stage_of(name)][0]}) imports {dep} ({STAGES[stage_of(dep)][0]})"
                 for name, deps in graph.items() for dep in deps
                 if stage_of(name) < top and stage_of(dep) > stage_of(name)]
    assert not backwards, "\n".join(sorted(backwards))


def test_the_stage_order_is_what_the_house_says():
    assert [s for s, _ in STAGES] == ["config", "data", "runtime", "algorithm", "train", "generate", "metrics",
                                      "kernel"]
    assert stage_of("kompete.algorithms.gan") == 0 and stage_of("kompete.algorithms.gan.task") == 3
    assert stage_of("kompete.losses") == 0 and stage_of("kompete.losses.adversarial") == 3
    assert stage_of("kompete.runtime.context") == 2 < stage_of("kompete.algorithms.base")
    assert stage_of("kompete.train.context") == 4  # the alias left for old imports
    assert stage_of("kompete.layouts.dogs") == 0 < stage_of("kompete.data.dogs")




def test_no_function_is_over_fifty_lines():
    long = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 50:
                long.add(f"{path.relative_to(REPO)}::{node.name}")
    assert not long, sorted(long)
