"""A ``.keras`` or ``.onnx`` classifier → blueprint text (``cnnbp import``).

The file's reader gives the layers, ``fold`` writes them as a blueprint, and the blueprint is
compiled back and held against the layers read: what is written builds the same net, or the
import fails as a bug, never silently.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

from . import ir
from .blueprint import compile_data
from .errors import BlueprintError, Problem
from .fold import fold
from .imported import Imported
from .schema import validate

SUFFIXES = (".keras", ".onnx")


def read_model(path: str | Path) -> Imported:
    """The layers of a ``.keras`` or ``.onnx`` file, by its suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".keras":
        from .import_keras import read
        return read(path)
    if suffix == ".onnx":
        from .import_onnx import read as read_onnx
        return read_onnx(path)
    raise BlueprintError(Problem("MODEL", f"{str(path)!r} is neither a .keras nor an .onnx "
                                 "file; cnnbp import reads those two"))


def blueprint_for(model: str | Path, output: str | Path | None = None,
                  with_weights: bool = True) -> dict:
    """The checked blueprint data for ``model``; ``weights.from`` names the model relative to
    ``output``'s folder (where the blueprint will be), when ``with_weights``."""
    net = read_model(model)
    where = Path(output).parent if output is not None else Path(".")
    weights = os.path.relpath(Path(model).resolve(), where.resolve()) if with_weights else None
    doc = fold(net, weights)
    _check(doc, net)
    return doc


def _check(doc: dict, net: Imported) -> None:
    """Compile ``doc`` and hold its layers against ``net``'s (names and origins aside)."""
    plain = {k: v for k, v in doc.items() if k != "weights"}
    problems = validate(plain)
    assert not problems, problems  # fold writes only what the schema takes
    compiled = compile_data(plain).network.layers
    strip = lambda layers: [dataclasses.replace(la, name="", origin="") for la in layers]
    assert strip(compiled) == strip(net.layers), (doc, compiled, net.layers)


_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = {"yes", "no", "on", "off", "true", "false", "null", "y", "n", "~"}


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_value(x)}" for k, x in v.items()) + "}"
    s = str(v)
    return s if _PLAIN.match(s) and s.lower() not in _RESERVED else json.dumps(s)


def to_yaml(doc: dict) -> str:
    """Blueprint text in the shipped files' layout: one key a line, ``layers:`` one token a
    line, values in flow style."""
    lines = []
    for key, value in doc.items():
        if key == "layers":
            lines.append("layers:")
            lines += [f"  {token}: {_value(args)}" for token, args in value.items()]
        else:
            lines.append(f"{key}: {_value(value)}")
    return "\n".join(lines) + "\n"


def network_of(doc: dict) -> ir.Network:
    """The net ``doc`` compiles to (``weights`` aside): what a test compares."""
    return compile_data({k: v for k, v in doc.items() if k != "weights"}).network
