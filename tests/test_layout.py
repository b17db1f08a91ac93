"""The architecture, held by the import graph.

Data flows one way: blueprint → IR → analysis → Keras model (``builder``) → run directory
(``train``) → ONNX bundle (``export``) → server (``serve``). The files between stages are typed
records in ``contract``; a stage reads the previous stage's artifacts through ``contract``,
never through that stage's code (``export`` does not import ``train``, ``serve`` does not import
``export``). Besides the flow:

- ``builder`` is the library that turns a (resolved) blueprint into the net: every stage may
  use it to rebuild the model a run or bundle records;
- ``report`` draws the pages and figures every artifact gets: ``train``, ``export`` and
  ``search`` call it for theirs, and it reads runs and bundles through ``contract`` only;
- ``search`` orchestrates the pipeline: it trains candidates (``train``), measures their ONNX
  latency (``export``) and charts them (``report``);
- ``commands`` (one module per subcommand) may use every stage; ``cli`` only assembles the
  commands and maps the ``contract`` error kinds to exit codes.

``ALLOWED`` below is that list; the README's Layout section says the same. Every import counts
— at module level or inside a function, absolute or relative at any level —, no module of the
package may take part in an import cycle, none takes another module's private (``_name``) names,
and every module is imported by some test.
"""
from __future__ import annotations

import ast
import configparser
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = "cnnbp"

# unit → the other units its modules may import. A unit is a subpackage (``builder``), the
# top-level module ``cli``, or the package's own ``__init__`` (``cnnbp``).
ALLOWED = {
    "cnnbp": set(),
    "contract": set(),
    "builder": {"contract"},
    "report": {"contract", "builder"},
    "train": {"contract", "builder", "report"},
    "export": {"contract", "builder", "report"},
    "serve": {"contract"},
    "search": {"contract", "builder", "report", "train", "export"},
    "commands": {"contract", "builder", "report", "train", "export", "serve", "search"},
    "cli": {"contract", "commands"},
}
TENSORFLOW_FREE = {"contract", "serve"}  # report: explain and probe load Keras, lazily
# builder: only these build or import Keras; check/show/draw never import them
BUILDER_KERAS = {"keras_builder.py", "keras_layers.py", "tf_env.py"}
HEAVY = ("tensorflow", "keras", "tf2onnx")


@dataclass(frozen=True)
class Import:
    """One imported module: its dotted name and the line that imports it."""
    target: str
    line: int


def module_files(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name → file, for the package rooted at ``root`` (a folder whose
    ``__init__.py`` makes it ``package``) and every subpackage with an ``__init__.py``;
    ``tests`` is not part of the package."""
    found = {}
    folders = [(root, (package,))]
    while folders:
        folder, parts = folders.pop()
        for path in sorted(folder.iterdir()):
            if path.suffix == ".py":
                found[".".join(parts + (() if path.name == "__init__.py" else (path.stem,)))] = path
            elif path.is_dir() and (path / "__init__.py").is_file() and \
                    (folder, path.name) != (root, "tests"):
                folders.append((path, parts + (path.name,)))
    return dict(sorted(found.items()))


def imports(path: Path, name: str, known: set[str] | frozenset[str] = frozenset()) -> set[Import]:
    """Every module ``path`` (the module ``name``) imports, anywhere in the file.

    Relative imports are resolved against ``name``'s package at any level; ``from A import b``
    is the module ``A.b`` when that is one of ``known``, else ``A`` (``b`` is a name in it).
    """
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {Import(a.name, node.lineno) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = _source(node, path, name)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(Import(sub if sub in known else base, node.lineno))
    return found


def _source(node: ast.ImportFrom, path: Path, name: str) -> str:
    """The absolute name of the module ``from ... import`` reads, in the module ``name``."""
    if not node.level:
        return node.module or ""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    parts = package.split(".")
    assert node.level <= len(parts), f"{path}:{node.lineno} goes above {PACKAGE}"
    base = ".".join(parts[:len(parts) - node.level + 1])
    return f"{base}.{node.module}" if node.module else base


def private_names(root: Path, package: str = PACKAGE) -> list[str]:
    """"module:line takes other._name" for every private name a module of the package takes
    from another one (a private submodule of its own package is no such name)."""
    files = module_files(root, package)
    taken = []
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = _source(node, path, name)
                taken += [f"{name}:{node.lineno} takes {base}.{a.name}" for a in node.names
                          if base.split(".")[0] == package and a.name.startswith("_")
                          and f"{base}.{a.name}" not in files]
    return taken


def graph(root: Path, package: str = PACKAGE) -> dict[str, dict[str, int]]:
    """Module → {module of the package it imports → first line}, for every module."""
    files = module_files(root, package)
    known = set(files)
    edges: dict[str, dict[str, int]] = {}
    for name, path in files.items():
        edges[name] = {}
        for imp in sorted(imports(path, name, known), key=lambda i: i.line):
            target = _owner(imp.target, known)
            if target is not None and target != name:
                edges[name].setdefault(target, imp.line)
    return edges


def _owner(target: str, known: set[str]) -> str | None:
    """The module of the package that ``import target`` loads last (``cnnbp.x.y`` for
    ``cnnbp.x.y.z`` when ``z`` is a name), or None outside the package."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Every import cycle, one per knot of modules that reach each other, as a shortest path
    that starts and ends at the knot's first module."""
    return [_loop(c[0], set(c), edges) for c in knots(edges)]


def knots(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(set(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(sorted(c) for c in components)


def _loop(start: str, component: set[str], edges) -> list[str]:
    """A shortest import path from ``start`` back to itself inside ``component`` (BFS)."""
    came = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges[v]):
            if w == start:
                path = [v]
                while came[path[-1]] is not None:
                    path.append(came[path[-1]])
                return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, v, start]
            if w in component and w not in came:
                came[w] = v
                queue.append(w)
    raise AssertionError(f"{start} is in a cycle but no path leads back to it")


def unit(module: str) -> str:
    """The unit of the ALLOWED table a module belongs to: ``cnnbp.builder.schema`` → builder,
    ``cnnbp.cli`` → cli, ``cnnbp`` → cnnbp."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def forbidden(edges, allowed: dict[str, set[str]]) -> dict[str, list[str]]:
    """Unit → "module:line imports target" for every import the table does not allow."""
    wrong: dict[str, list[str]] = {}
    for module, targets in sorted(edges.items()):
        for target, line in sorted(targets.items()):
            here, there = unit(module), unit(target)
            if here != there and there not in allowed[here]:
                wrong.setdefault(here, []).append(f"{module}:{line} imports {target}")
    return wrong


def _describe(loop: list[str], edges) -> str:
    return " → ".join(f"{a} (line {edges[a][b]})" for a, b in zip(loop, loop[1:])) + \
        f" → {loop[-1]}"


EDGES = graph(ROOT)
UNITS = sorted({unit(m) for m in EDGES})


def test_the_table_names_every_unit_of_the_package():
    """A new subpackage (or top-level module) has to be placed in the data flow."""
    assert set(UNITS) == set(ALLOWED), f"units without a row: {set(UNITS) - set(ALLOWED)}; " \
        f"rows without a unit: {set(ALLOWED) - set(UNITS)}"


def test_the_layout_sees_every_installed_package():
    """The modules checked here are the ones pip installs (setup.cfg's ``packages``)."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    installed = {p.strip() for p in cfg["options"]["packages"].split() if p.strip()}
    with_code = {p for p in installed if any((ROOT / "/".join(p.split(".")[1:])).glob("*.py"))}
    seen = {m for m, path in module_files(ROOT).items() if path.name == "__init__.py"}
    assert seen == with_code


@pytest.mark.parametrize("name", UNITS)
def test_a_unit_imports_only_what_the_data_flow_allows(name):
    wrong = forbidden({m: t for m, t in EDGES.items() if unit(m) == name}, ALLOWED)
    assert not wrong, f"{name} may import {sorted(ALLOWED[name]) or 'nothing else'}, " \
        f"but: {wrong[name]}"


@pytest.mark.parametrize("name", UNITS)
def test_no_import_cycle_passes_through(name):
    found = [knot for knot in knots(EDGES) if any(unit(m) == name for m in knot)]
    assert not found, "import cycles: " + "; ".join(
        f"{_describe(_loop(k[0], set(k), EDGES), EDGES)} (all of {', '.join(k)} reach each "
        "other)" for k in found)


def test_no_module_takes_another_modules_private_names():
    """A leading underscore says "internal": what another module needs is made public (or
    moved to a module both may import)."""
    assert private_names(ROOT) == []


@pytest.mark.parametrize("package", sorted(TENSORFLOW_FREE | {"builder"}))
def test_tensorflow_stays_where_it_belongs(package):
    files = {m: p for m, p in module_files(ROOT).items() if unit(m) == package}
    heavy = sorted(p.name for m, p in files.items()
                   if not (package == "builder" and p.name in BUILDER_KERAS)
                   and any(i.target.split(".")[0] in HEAVY for i in imports(p, m)))
    assert not heavy, f"{package}/ imports TensorFlow or Keras in {heavy}"


def imported_by_tests(modules: set[str], tests: Path) -> set[str]:
    """The ``modules`` some file under ``tests`` imports (or names as a whole string, as
    ``importlib.import_module("cnnbp.builder.shapes")`` does), and the packages above them,
    which Python imports first."""
    seen = set()
    for name, path in module_files(tests, "tests").items():
        seen |= {_owner(i.target, modules) for i in imports(path, name, modules)}
        seen |= {node.value for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                 if isinstance(node, ast.Constant) and node.value in modules}
    return {".".join(m.split(".")[:i]) for m in seen - {None} for i in range(1, m.count(".") + 2)}


TESTED = imported_by_tests(set(EDGES), ROOT / "tests")


@pytest.mark.parametrize("module", sorted(EDGES))
def test_every_module_is_imported_by_some_test(module):
    assert module in TESTED, f"no test imports {module}: give it a test of its own"


# --- The checker itself can fail: each rule on a fabricated package ----------------------------


def fabricate(tmp_path: Path, files: dict[str, str]) -> Path:
    """A package ``cnnbp`` at ``tmp_path/cnnbp`` with the given files (``train/fit.py``: text);
    every folder gets an ``__init__.py``."""
    root = tmp_path / PACKAGE
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for folder in [path.parent, *path.parent.parents]:
            (folder / "__init__.py").touch()
            if folder == root:
                break
        path.write_text(text, encoding="utf-8")
    return root


FORMS = {
    "import cnnbp.train.fit": "cnnbp.train.fit",
    "import cnnbp.train.fit as f": "cnnbp.train.fit",
    "from cnnbp import train": "cnnbp.train",
    "from cnnbp.train import fit": "cnnbp.train.fit",
    "from cnnbp.train.fit import run": "cnnbp.train.fit",
    "from cnnbp.train import run": "cnnbp.train",
    "from .. import train": "cnnbp.train",
    "from ..train import fit": "cnnbp.train.fit",
    "from ..train.fit import run": "cnnbp.train.fit",
    "from . import parity": "cnnbp.export.parity",
    "from .parity import check": "cnnbp.export.parity",
    "from . import check": "cnnbp.export",
    "def f():\n    from ..train import fit": "cnnbp.train.fit",
    "if True:\n    import cnnbp.train.fit": "cnnbp.train.fit",
}


@pytest.mark.parametrize("line", FORMS, ids=list(range(len(FORMS))))
def test_every_import_form_is_read(tmp_path, line):
    root = fabricate(tmp_path, {"train/fit.py": "", "export/parity.py": "",
                                "export/leak.py": line + "\n"})
    assert graph(root)["cnnbp.export.leak"] == {FORMS[line]: line.count("\n") + 1}


def test_relative_imports_resolve_at_any_level(tmp_path):
    root = fabricate(tmp_path, {"serve/http/deep/leaf.py": "from ... import app\n"
                                "from ....contract import records\nfrom . import x\n",
                                "serve/app.py": "", "contract/records.py": "",
                                "serve/http/deep/x.py": ""})
    assert set(graph(root)["cnnbp.serve.http.deep.leaf"]) == {
        "cnnbp.serve.app", "cnnbp.contract.records", "cnnbp.serve.http.deep.x"}


def test_the_table_check_sees_a_forbidden_import(tmp_path):
    root = fabricate(tmp_path, {"train/fit.py": "", "export/leak.py": "x = 1\n"
                                "def f():\n    from ..train import fit\n"})
    assert forbidden(graph(root), ALLOWED) == {
        "export": ["cnnbp.export.leak:3 imports cnnbp.train.fit"]}


def test_the_table_check_covers_cli_and_commands(tmp_path):
    root = fabricate(tmp_path, {"cli.py": "from cnnbp.builder.tokens import suggest\n"
                                "from cnnbp.commands import MODULES\n",
                                "builder/tokens.py": "", "commands/__init__.py": "MODULES = ()\n",
                                "commands/go.py": "from cnnbp.serve import app\n",
                                "serve/app.py": "",
                                "serve/x.py": "from cnnbp.commands import go\n"})
    assert forbidden(graph(root), ALLOWED) == {
        "cli": ["cnnbp.cli:1 imports cnnbp.builder.tokens"],
        "serve": ["cnnbp.serve.x:1 imports cnnbp.commands.go"]}


def test_the_cycle_check_sees_a_cycle_closed_inside_a_function(tmp_path):
    root = fabricate(tmp_path, {
        "builder/schema.py": "from .search_space import schema\n",
        "builder/search_space.py": "def check():\n    from .schema import validate\n",
        "builder/leaf.py": "from . import schema\n"})
    edges = graph(root)
    assert cycles(edges) == [["cnnbp.builder.schema", "cnnbp.builder.search_space",
                              "cnnbp.builder.schema"]]
    assert _describe(cycles(edges)[0], edges) == (
        "cnnbp.builder.schema (line 1) → cnnbp.builder.search_space (line 2) → "
        "cnnbp.builder.schema")


def test_the_cycle_check_sees_a_long_cycle_across_packages(tmp_path):
    root = fabricate(tmp_path, {"a/x.py": "from cnnbp.b import y\n",
                                "b/y.py": "import cnnbp.c.z\n",
                                "c/z.py": "from ..a import x\n",
                                "c/w.py": "from ..a import x\n"})
    assert cycles(graph(root)) == [["cnnbp.a.x", "cnnbp.b.y", "cnnbp.c.z", "cnnbp.a.x"]]
    assert knots(graph(root)) == [["cnnbp.a.x", "cnnbp.b.y", "cnnbp.c.z"]]  # w only imports


def test_no_cycle_is_reported_for_a_tree(tmp_path):
    root = fabricate(tmp_path, {"a/x.py": "from cnnbp.b import y\nfrom ..c import z\n",
                                "b/y.py": "import cnnbp.c.z\n", "c/z.py": ""})
    assert cycles(graph(root)) == []


def test_the_tensorflow_check_reads_function_level_imports(tmp_path):
    root = fabricate(tmp_path, {"serve/app.py": "def f():\n    import tensorflow as tf\n"})
    assert Import("tensorflow", 2) in imports(root / "serve" / "app.py", "cnnbp.serve.app")


def test_the_coverage_check_sees_a_module_no_test_imports(tmp_path):
    root = fabricate(tmp_path, {"a/x.py": "", "a/y.py": "", "b/z.py": "", "b/w.py": "",
                                "c/v.py": "", "c/u.py": ""})
    tests = tmp_path / "tests"
    (tests / "sub").mkdir(parents=True)
    for folder in (tests, tests / "sub"):
        (folder / "__init__.py").touch()
    (tests / "test_a.py").write_text("def test():\n    from cnnbp.a import x\n")
    (tests / "sub" / "test_b.py").write_text("import cnnbp.b.z as z\n"
                                             "M = 'cnnbp.c.v'\nN = 'not cnnbp.c.u'\n")
    assert imported_by_tests(set(graph(root)), tests) == {
        "cnnbp", "cnnbp.a", "cnnbp.a.x", "cnnbp.b", "cnnbp.b.z", "cnnbp.c", "cnnbp.c.v"}


def test_the_private_name_check_sees_one_taken(tmp_path):
    root = fabricate(tmp_path, {"train/pipeline.py": "def _decoded(): pass\n",
                                "train/_helpers.py": "def f(): pass\n",
                                "train/tfrecords.py": "from .pipeline import _decoded\n"
                                "from ._helpers import f\nfrom . import _helpers\n"
                                "from os import _exit\n"})
    assert private_names(root) == ["cnnbp.train.tfrecords:1 takes cnnbp.train.pipeline._decoded"]
