"""The house rules, checked on the source itself (every import, lazy ones inside functions too):
imports point one way (runtime <- train <- export <- benchmarks) and, inside runtime/, train/,
export/ and benchmarks/, from a room only to the rooms below it; nothing imports an entry module (a `cli`); no
import cycle; no source file over 300 lines."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("runtime", "train", "export", "benchmarks")  # each may import only those before it
# runtime's rooms, and the rooms each may import (besides itself). Entry modules (cli) import
# anything; nothing imports them.
ROOMS = {
    "spine": set(),
    "engine": {"spine"},
    "live": {"spine", "engine"},
    "scale": {"spine", "engine", "live"},  # its own ScaleOptions, never options.py's RunOptions
    "serve": {"spine", "engine", "live"},  # its own ServeOptions, likewise
    "options": {"spine"},
    "run": {"spine", "engine", "live", "options", "scale", "serve"},
    "assets": set(),
}
# train's, export's and benchmarks' rooms (a folder, or a single module at the stage's top), lowest
# first: each may import only the rooms before it (and itself). Entry modules (cli) import anything.
# benchmarks' rooms are by what they measure: common (config, env, schema, timing, report, charts)
# < grid (artifacts' latency) < run (catdog-bench run's sections) < scale; doctor, int8, serve and
# live are each one command's own.
ORDER = {
    "train": ("plumbing", "recipe", "options", "presets", "models", "data", "loop", "studies", "run"),
    "export": ("options", "builders", "int8", "artifacts", "verify", "output", "pipeline"),
    "benchmarks": ("common", "grid", "run", "scale", "doctor", "int8", "serve", "live"),
}
ENTRIES = ("cli", "__main__")  # entry modules: `catdog.<stage>.cli` (a module or a package) and __main__
MAX_LINES = 300


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return "catdog." + ".".join(parts)


def _sources() -> dict[str, Path]:
    return {_module(p): p for stage in STAGES for p in sorted((REPO / stage).rglob("*.py"))}


def _imports(path: Path, module: str) -> set[str]:
    """Every catdog module `path` imports, at any depth (a lazy import counts as much as a top one)."""
    out = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("catdog.")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # a relative import: resolve it against the package
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            if base.startswith("catdog."):
                out.add(base)
                out |= {f"{base}.{a.name}" for a in node.names}  # `from catdog.runtime.engine import trt`
    return out


def _graph() -> dict[str, set[str]]:
    mods = _sources()
    return {m: {i for i in _imports(p, m) if i in mods and i != m} for m, p in mods.items()}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 else ""


def test_stages_import_downward_only():
    bad = []
    for mod, deps in _graph().items():
        stage = STAGES.index(mod.split(".")[1])
        bad += [f"{mod} -> {d}" for d in deps if STAGES.index(d.split(".")[1]) > stage]
    assert not bad, bad


def test_runtime_rooms_import_only_the_rooms_below():
    bad = []
    for mod, deps in _graph().items():
        if not mod.startswith("catdog.runtime.") or _room(mod) in ENTRIES:
            continue
        room = _room(mod)
        assert room in ROOMS, f"{mod}: runtime/{room} is not a known room; add it to ROOMS with what it may import"
        for d in deps:
            if d.startswith("catdog.runtime.") and _room(d) != room and _room(d) not in ROOMS[room]:
                bad.append(f"{mod} -> {d}")
    assert not bad, bad


def test_train_export_and_benchmarks_rooms_import_only_the_rooms_below():
    bad = []
    for mod, deps in _graph().items():
        stage = mod.split(".")[1]
        if stage not in ORDER or _room(mod) in ENTRIES or not _room(mod):
            continue
        order, room = ORDER[stage], _room(mod)
        assert room in order, f"{mod}: {stage}/{room} is not a known room; add it to ORDER[{stage!r}] in its place"
        below = set(order[: order.index(room) + 1])
        bad += [f"{mod} -> {d}" for d in deps
                if d.split(".")[1] == stage and _room(d) and _room(d) not in below]
    assert not bad, bad


def test_nothing_imports_an_entry_module():
    graph = _graph()
    def entry(m: str) -> bool:
        return any(part in ENTRIES for part in m.split(".")[1:])

    bad = [f"{m} -> {d}" for m, deps in graph.items() for d in deps
           if entry(d) and not (entry(m) and m.split(".")[:2] == d.split(".")[:2])]
    assert not bad, bad


def test_no_import_cycle():
    graph, state, cycles = _graph(), {}, []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = "open"
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                cycles.append(" -> ".join(stack[stack.index(d):] + [m, d]) if d in stack else f"{m} -> {d}")
            elif d not in state:
                visit(d, stack + [m])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert not cycles, cycles


def test_no_source_file_over_300_lines():
    files = [*_sources().values(), *sorted((REPO / "scripts").glob("*.py"))]
    long = {str(p.relative_to(REPO)): n for p in files if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_scripts_never_import_the_tests():
    bad = [str(p.relative_to(REPO)) for p in sorted((REPO / "scripts").glob("*.py"))
           if "sys.path" in p.read_text() and "tests" in p.read_text()]
    assert not bad, bad


def test_test_file_names_are_unique():
    """pytest's default import mode imports test modules by their file name: two test_x.py in
    different folders stop the whole suite at collection ("import file mismatch")."""
    seen: dict[str, list[str]] = {}
    for p in sorted((REPO / "tests").rglob("test_*.py")):
        seen.setdefault(p.name, []).append(str(p.relative_to(REPO)))
    assert not {k: v for k, v in seen.items() if len(v) > 1}


def test_every_product_module_is_used_by_the_product():
    """Issue 33: no product module is there only for the tests (test helpers live in tests/testkit,
    and what scripts share with the tests in scripts/). Each module is reached from an entry module
    through imports, or is a script the product runs by path (its file name, a string in a module
    that is reached: `HERE / "rtsp_camera.py"`)."""
    graph, sources = _graph(), _sources()
    reached, todo = set(), [m for m in graph if m.rpartition(".")[2] in ENTRIES]
    while todo:
        m = todo.pop()
        if m in reached:
            continue
        reached.add(m)
        parts = m.split(".")
        todo += [*graph[m], *(".".join(parts[:i]) for i in range(2, len(parts)))]  # its packages load too
    named = {n.value for m in reached for n in ast.walk(ast.parse(sources[m].read_text()))
             if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.endswith(".py")}
    unused = [m for m, p in sources.items() if m not in reached and p.name not in named]
    assert not unused, f"product modules nothing in the product imports or runs: {unused}"


def test_the_runtime_tests_import_no_benchmarks_but_the_fault_clients():
    """tests/runtime runs in the torch-free venv and tests the runtime alone: its helpers come from
    tests/testkit and scripts/, not catdog.benchmarks. The one exception is the fault mix's raw-socket
    clients (benchmarks/serve/faults.py), one home shared by catdog-bench serve's fault soak and the
    server's fault tests; that module imports nothing heavy."""
    allowed = {"catdog.benchmarks.serve.faults"}
    files = sorted((REPO / "tests" / "runtime").rglob("*.py"))
    for p in files:  # and the testkit modules they use, and those those use
        kit = REPO / "tests" / "testkit"
        files += [q for i in sorted(_names(p)) if i.startswith("testkit.")
                  and (q := kit / f"{i.split('.')[1]}.py") not in files]
    bad = sorted({f"{p.relative_to(REPO)} -> {i}" for p in files if p.exists() for i in _names(p)
                  if i.startswith("catdog.benchmarks") and i not in allowed})
    assert not bad, bad


def _names(path: Path) -> set[str]:
    """The modules `path` imports from (absolute imports, at any depth)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
    return out
