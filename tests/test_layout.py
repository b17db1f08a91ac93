"""The architecture, held by the import graph: data flows one way, blueprint → IR → analysis →
Keras model → run directory → ONNX bundle → server, and a stage reads the artifacts of the
stage before it through ``cnnbp.contract``, never that stage's code."""
from __future__ import annotations

import ast

import pytest

from tests.conftest import ROOT

# package → the cnnbp packages its modules may import (besides itself)
ALLOWED = {
    "contract": set(),
    "builder": {"contract"},
    "train": {"contract", "builder", "report"},  # report: the page each run and bundle gets
    "export": {"contract", "builder", "report"},
    "serve": {"contract"},
    "report": {"contract", "builder"},
    "search": {"contract", "builder", "train", "export", "report"},  # trials; ONNX latency; charts
}
TENSORFLOW_FREE = {"contract", "serve"}  # report: explain and probe load Keras, lazily  # builder: all but keras_builder, keras_layers, tf_env


def imports(path) -> set[str]:
    """Every module name ``path`` imports, relative imports resolved inside cnnbp."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = path.parent.name
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 1:
                found.add(f"cnnbp.{package}.{node.module or ''}".rstrip("."))
            elif node.level == 2:
                found.add(f"cnnbp.{node.module or ''}".rstrip("."))
            else:
                found.add(node.module or "")
    return found


def modules(package):
    return sorted((ROOT / package).glob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_stage_imports_only_the_stages_before_it(package):
    wrong = {}
    for path in modules(package):
        used = {name.split(".")[1] for name in imports(path)
                if name.startswith("cnnbp.") and name.count(".") >= 1}
        bad = used - ALLOWED[package] - {package}
        if bad:
            wrong[path.name] = sorted(bad)
    assert not wrong, f"{package}/ reaches into {wrong}"


@pytest.mark.parametrize("package", sorted(TENSORFLOW_FREE | {"builder"}))
def test_tensorflow_stays_where_it_belongs(package):
    allowed = {"keras_builder.py", "keras_layers.py", "tf_env.py"} if package == "builder" else set()
    heavy = {path.name for path in modules(package) if path.name not in allowed
             and any(n.split(".")[0] in ("tensorflow", "keras", "tf2onnx") for n in imports(path))}
    assert not heavy, f"{package}/ imports TensorFlow or Keras in {sorted(heavy)}"


def test_the_import_check_sees_a_violation(tmp_path):
    """The checker itself can fail: a module that imports train from export is caught."""
    bad = tmp_path / "export" / "leak.py"
    bad.parent.mkdir()
    bad.write_text("from cnnbp.train.sources import load_source\nfrom ..train import fit\n")
    assert {"cnnbp.train.sources", "cnnbp.train"} <= imports(bad)
