"""A ``.keras`` or ``.onnx`` classifier → blueprint text (``cnnbp import``).

The file's reader gives the layers, ``fold`` writes them as a blueprint, and the blueprint is
compiled back and held against the layers read: what is written builds the same net, or the
import fails as a bug, never silently.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from cnnbp.contract.errors import ArtifactError

from . import ir
from .blueprint import compile_data
from .errors import BlueprintError
from .fold import fold
from .imported import Imported
from .schema import validate

log = logging.getLogger(__name__)


def read_model(path: str | Path) -> Imported:
    """The layers of a ``.keras`` or ``.onnx`` file, by its suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".keras":
        from .import_keras import read
        return read(path)
    if suffix == ".onnx":
        from .import_onnx import read as read_onnx
        return read_onnx(path)
    if str(path).lower().endswith(".h5"):
        raise ArtifactError(path, "holds weights but no architecture, so there is no net to "
                            "import from it; write (or import) the blueprint, then load these "
                            "weights with `cnnbp build BLUEPRINT --weights FILE` or the "
                            "blueprint's weights.from")
    raise ArtifactError(path, "is neither a .keras nor an .onnx file; cnnbp import reads "
                        "those two")


def blueprint_for(model: str | Path, output: str | Path | None = None,
                  with_weights: bool = True) -> dict:
    """The checked blueprint data for ``model``; ``weights.from`` names the model relative to
    ``output``'s folder (where the blueprint will be), when ``with_weights``."""
    net = read_model(model)
    where = Path(output).parent if output is not None else Path(".")
    weights = os.path.relpath(Path(model).resolve(), where.resolve()) if with_weights else None
    folded = fold(net, weights)
    if _reproduces(folded, net):
        return folded
    # a folding this module did not foresee: the token-by-token form says the same plainly
    log.warning("%s: the folded blueprint did not reproduce the model's layers; writing it "
                "token by token", model)
    doc = fold(net, weights, folded=False)
    if not _reproduces(doc, net, located=True):
        raise ArtifactError(model, "cnnbp import could not write a blueprint that rebuilds "
                            "this model's layers exactly (neither folded nor token by token); "
                            "this is a limit of the importer, not of the file: please report "
                            "it with the file")
    return doc


def _reproduces(doc: dict, net: Imported, located: bool = False) -> bool:
    """Whether ``doc`` compiles to ``net``'s layers (names and origins aside). A value the
    blueprint's ranges refuse (a Dropout rate of 0.995) is the model's: said when ``located``."""
    plain = {k: v for k, v in doc.items() if k != "weights"}
    try:
        problems = validate(plain)
        if problems:
            raise BlueprintError(problems)
        compiled = compile_data(plain).network.layers
    except BlueprintError as exc:
        if located:
            raise BlueprintError(exc.problems, net.source) from None
        return False
    strip = lambda layers: [dataclasses.replace(la, name="", origin="") for la in layers]
    return strip(compiled) == strip(net.layers)


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
