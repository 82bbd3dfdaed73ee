"""Package layout, read from the source with `ast` (nothing is imported): imports inside src/bnopt go one
way (no cycles, also through imports inside functions), and no module imports another's private names."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "bnopt"


def modules(src: Path = SRC, package: str = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """{dotted module name: (file, is a package __init__)} of every module of the package."""
    out = {}
    for f in sorted((src / package).rglob("*.py")):
        parts = list(f.relative_to(src).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    return out


def _runtime_nodes(tree: ast.AST):
    """Every node except those under `if TYPE_CHECKING:` (never executed, so no import at run time)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def imports(src: Path = SRC, package: str = PACKAGE) -> list[tuple[str, str, str]]:
    """(importing module, imported module, imported name or '') for every import of a package module,
    relative or absolute, at module level or inside functions."""
    mods = modules(src, package)
    out = []
    for name, (f, is_pkg) in mods.items():
        here = name.split(".") if is_pkg else name.split(".")[:-1]
        for node in _runtime_nodes(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target != package and not target.startswith(package + "."):
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    out.append((name, sub if sub in mods else target, alias.name))
            elif isinstance(node, ast.Import):
                out += [(name, a.name, "") for a in node.names if a.name.split(".")[0] == package]
    return out


def import_cycles(src: Path = SRC, package: str = PACKAGE) -> list[list[str]]:
    """The import cycles among the package's modules (strongly connected components of more than one
    module), each sorted. A module importing itself is no cycle: cli_train.py does it on purpose when run
    as __main__, to call the importable copy."""
    mods = modules(src, package)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for a, b, _ in imports(src, package):
        if b in mods and b != a:
            graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def private_imports(src: Path = SRC, package: str = PACKAGE) -> list[str]:
    """`from x import _name` inside the package ("module: from target import _name")."""
    return [
        f"{a}: from {b} import {n}" for a, b, n in imports(src, package) if n.startswith("_") and not n.startswith("__")
    ]


def test_the_layout_reader_sees_the_package():
    mods = modules()
    assert {"bnopt.train", "bnopt.bench", "bnopt.probes", "bnopt.bench.probe_costs", "bnopt.figures.catalog"} <= set(
        mods
    )
    edges = {(a, b) for a, b, _ in imports()}
    assert ("bnopt.figures.catalog", "bnopt.results") in edges  # relative: from ..results import ...
    assert ("bnopt.bench", "bnopt.bench.probe_costs") in edges


def test_no_import_cycles_in_the_package():
    assert import_cycles() == []


def test_no_module_imports_private_names_of_another():
    assert private_imports() == []


def test_the_checks_catch_a_cycle_and_a_private_import(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .sub.b import g\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("from ..a import f\nfrom .c import _helper\n")
    (pkg / "sub" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import f\n")
    assert import_cycles(tmp_path, "pkg") == [["pkg.a", "pkg.sub.b"]]
    assert private_imports(tmp_path, "pkg") == ["pkg.sub.b: from pkg.sub.c import _helper"]


READERS = {"load", "loads", "read_parquet", "read_csv", "read_json", "read_text", "read_bytes", "open"}


def test_figures_read_records_only_through_results():
    """No figure module opens a run file (status.json, *.parquet, activations.npz) itself, nor imports the
    records writer: they see runs only through a `bnopt.results.Results` (or the W&B reader's subclass)."""
    calls = []
    for f in sorted((SRC / PACKAGE / "figures").glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
                if name in READERS:
                    calls.append(f"{f.name}:{node.lineno}: {ast.unparse(fn)}(...)")
    assert calls == []
    figure_imports = {b for a, b, _ in imports() if a.startswith("bnopt.figures")}
    assert "bnopt.records" not in figure_imports and "bnopt.results" in figure_imports


WRITERS = {"savez", "savez_compressed", "save", "to_parquet", "write_text", "write_bytes", "atomic_write_bytes"}


def test_only_records_writes_run_files():
    """Probes, the train loop and the loaders hand data to the records layer; none writes a file itself.
    That layer is `bnopt.records` (schema, atomic writes), `bnopt.run_folder` (a run's folder while it
    trains) and `bnopt.archive` (copies of finished runs). Figures are left out: they write images
    (panels.save), never run files (they cannot import records)."""
    calls = []
    for f in sorted((SRC / PACKAGE).rglob("*.py")):
        if f.name in ("records.py", "run_folder.py", "archive.py") or "figures" in f.parts:
            continue
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
                if name in WRITERS and not ast.unparse(fn).startswith(("fig.", "torch.save")):
                    calls.append(f"{f.relative_to(SRC)}:{node.lineno}: {ast.unparse(fn)}(...)")
    assert calls == []


def reachable(start: str) -> set[str]:
    """Every package module `start` imports, directly or through others."""
    graph: dict[str, set[str]] = {}
    for a, b, _ in imports():
        graph.setdefault(a, set()).add(b)
    seen, todo = set(), [start]
    while todo:
        for b in graph.get(todo.pop(), ()):
            if b.startswith(PACKAGE) and b not in seen:
                seen.add(b)
                todo.append(b)
    return seen


def test_plots_never_train_and_training_never_plots():
    """Data flows one way: config -> train -> records -> results -> figures/report."""
    for reader in ("bnopt.figures.catalog", "bnopt.report", "bnopt.studies", "bnopt.results"):
        assert not {"bnopt.train", "bnopt.tasks"} & reachable(reader), reader  # (config may name probes)
    assert not any(m.startswith(("bnopt.figures", "bnopt.report", "bnopt.studies")) for m in reachable("bnopt.train"))


CLI_NAMES = {"main", "hydra_main", "precheck", "fail", "hydra_error_line", "GROUPS", "REFUSED", "JobLogsNotice"}


def test_the_training_loop_reads_top_to_bottom():
    """Issue 23 item 4: train.py's loop was one 160-line function closing over ten locals, beside the
    command line. Its functions are short now, and the command line (Hydra included) is bnopt.cli_train."""
    tree = ast.parse((SRC / PACKAGE / "train.py").read_text())
    lengths = {n.name: n.end_lineno - n.lineno + 1 for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert {name: n for name, n in lengths.items() if n > 60} == {}
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    defined |= {
        t.id
        for n in tree.body
        if isinstance(n, ast.Assign | ast.AnnAssign)
        for t in ast.walk(n)
        if isinstance(t, ast.Name)
    }
    assert CLI_NAMES & defined == set()
    assert not any(b.split(".")[0] == "hydra" for b in external_imports(tree))


def external_imports(tree: ast.AST) -> set[str]:
    out = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return out | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and not n.level and n.module}


def test_checkpoint_keys_are_declared_once():
    """The checkpoint's keys are records.Checkpoint's fields; no module spells them as strings (train.py's
    dict and records.py's CKPT_KEYS did)."""
    spelled = [
        f"{f.relative_to(SRC)}:{node.lineno}"
        for f in sorted((SRC / PACKAGE).rglob("*.py"))
        for node in ast.walk(ast.parse(f.read_text()))
        if isinstance(node, ast.Constant) and node.value in ("noise_gen", "torch_rng", "probe_rows")
    ]
    assert spelled == []


def test_the_speed_code_lives_outside_the_code_it_times():
    """Issue 23 item 5: probes/bench.py imported the train loop from inside probes/. The benchmark is one
    package, bnopt.bench, that imports the loop and the probes; nothing it times imports it."""
    assert not [m for m in modules() if m.startswith("bnopt.probes.") and "bench" in m]
    assert not {m for m in modules() if m.startswith("bnopt.bench")} & reachable("bnopt.train")
    assert not [(a, b) for a, b, _ in imports() if b.startswith("bnopt.bench") and not a.startswith("bnopt.bench")]


# Imports inside functions that stay, with why: each is an optional or heavy library that only one path needs,
# or a module another engineer owns (named, to be moved when they restructure it). Anything else is imported at
# the top of its module, where a reader sees the dependency.
FUNCTION_IMPORTS_ALLOWED = {
    ("bnopt.probes.activations", "wandb"): "W&B histograms, only with logger=wandb (wandb takes seconds to import)",
    ("bnopt.wandb_mirror", "wandb"): "the W&B logger, only with logger=wandb",
    ("bnopt.wandb_source", "wandb"): "the W&B reader, only for --from-wandb",
    ("bnopt.figures.panels", "IPython.display"): "show() in a notebook; IPython is a dev dependency only",
    ("bnopt.cli_train", "bnopt.cli_train"): "run as __main__, call the importable module's main (pickling)",
    ("bnopt.data", "torchvision.datasets"): "data.py: the torchvision CIFAR-10 download path only",
    ("bnopt.sweeps", "hydra"): "sweeps.py: Hydra's compose inside a running Hydra app",
}


def function_level_imports(src: Path = SRC, package: str = PACKAGE) -> set[tuple[str, str]]:
    """(module, imported module) of every import inside a function of the package (its name as written:
    `from ..probes import x` in bnopt.resolvers is bnopt.probes)."""
    mods = modules(src, package)
    out = set()
    for name, (f, is_pkg) in mods.items():
        here = name.split(".") if is_pkg else name.split(".")[:-1]
        for fn in ast.walk(ast.parse(f.read_text(), str(f))):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    out |= {(name, a.name) for a in node.names}
                elif isinstance(node, ast.ImportFrom):
                    base = here[: len(here) - (node.level - 1)] if node.level else []
                    out.add((name, ".".join(base + ([node.module] if node.module else []))))
    return out


def test_no_function_level_imports_hide_dependencies():
    """Issue 23 item 5: imports inside functions hid edges of the graph (config -> probes, resolvers -> probes,
    report -> figures, ...). They are at the top of their modules now, except the allow-list's."""
    assert function_level_imports() - set(FUNCTION_IMPORTS_ALLOWED) == set()


def test_the_function_import_check_sees_relative_and_absolute_imports(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import os\n")
    (pkg / "a.py").write_text("def f():\n    from . import b\n    import json\n\ndef g():\n    from .b import h\n")
    (pkg / "b.py").write_text("class C:\n    def m(self):\n        from pkg.a import f\n")
    assert function_level_imports(tmp_path, "pkg") == {
        ("pkg.a", "pkg"),
        ("pkg.a", "json"),
        ("pkg.a", "pkg.b"),
        ("pkg.b", "pkg.a"),
    }
