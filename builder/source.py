"""Blueprint file text → plain data with the line and column of every key, plus overrides."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BlueprintError, Problem

SHIPPED = Path(__file__).resolve().parent.parent / "blueprints"
TOP_KEYS = ("name", "description", "input", "classes", "class_names", "pattern", "vars",
            "layers", "weights", "training", "strict")


@dataclass
class Source:
    """A blueprint document: its data, where it came from, and where each key stands."""

    data: Any
    name: str                                   # file path or "<expression>"
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)
    overridden: dict[str, str] = field(default_factory=dict)  # key path -> "--set K=V"

    def locate(self, problem: Problem) -> Problem:
        """Attach the line and column of the longest key path that prefixes the problem's."""
        if problem.line is not None:
            return problem
        path = problem.path
        while path:
            if path in self.overridden:
                return Problem(problem.path, f"(from {self.overridden[path]}) {problem.message}")
            if path in self.positions:
                line, col = self.positions[path]
                return Problem(problem.path, problem.message, line, col)
            path = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", path) if re.search(r"[.\[]", path) else ""
        if "pattern" in self.positions and not problem.path.startswith(("vars", "layers")):
            line, col = self.positions["pattern"]
            return Problem(problem.path, problem.message, line, col)
        return problem

    def error(self, exc: BlueprintError) -> BlueprintError:
        return BlueprintError([self.locate(p) for p in exc.problems], self.name)


def resolve_path(ref: str) -> Path:
    """A file path, or the name of a shipped blueprint (``vgg16``)."""
    path = Path(ref)
    if path.is_file():
        return path
    shipped = SHIPPED / f"{ref}.yaml"
    if not path.suffix and shipped.is_file():
        return shipped
    names = sorted(p.stem for p in SHIPPED.glob("*.yaml"))
    from .tokens import suggest
    raise BlueprintError(Problem("", f"no blueprint file {ref!r}{suggest(ref, names)}; give a "
                                 f"path to a .yaml file or a shipped name: {', '.join(names)}"),
                         ref)


def read(ref: str) -> Source:
    """Read a blueprint file; YAML syntax errors become a BlueprintError with the line."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError

    path = resolve_path(ref)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BlueprintError(Problem("", f"cannot read the file: {exc}"), str(path)) from None
    yaml = YAML(typ="rt", pure=True)
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise BlueprintError(Problem("", f"not valid YAML: {exc.problem}",
                                     mark.line + 1 if mark else None,
                                     mark.column + 1 if mark else None), str(path)) from None
    src = Source(_plain(data), str(path))
    _positions(data, "", src.positions)
    return src


def from_expression(pattern: str) -> Source:
    """A one-line net given on the command line: ``INPUT(32x32x3)-CONV(10,5)-...``."""
    return Source({"name": "expression", "pattern": pattern}, "<expression>")


def apply_overrides(src: Source, overrides: list[str]) -> Source:
    """Apply ``KEY=VALUE`` settings: a dotted key path, a top-level key, or a variable."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    if not isinstance(src.data, dict):
        return src
    data = _copy(src.data)
    overridden = dict(src.overridden)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BlueprintError(Problem("--set", f"{item!r} must look like KEY=VALUE, e.g. "
                                         "N=3, classes=10 or layers.CONV.kernel=5"), src.name)
        try:
            value = YAML(typ="safe", pure=True).load(text) if text.strip() else ""
        except YAMLError:
            raise BlueprintError(Problem("--set", f"{item!r}: the value is not valid YAML"),
                                 src.name) from None
        path = key if ("." in key or key in TOP_KEYS) else f"vars.{key}"
        parts = path.split(".")
        node = data
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
        overridden[path] = f"--set {item}"
    return Source(data, src.name, src.positions, overridden)


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def _copy(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node


def _positions(node: Any, prefix: str, out: dict[str, tuple[int, int]]) -> None:
    lc = getattr(node, "lc", None)
    if isinstance(node, dict) and lc is not None:
        for k, v in node.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            line, col = lc.value(k) if not isinstance(v, (dict, list)) else lc.key(k)
            out[path] = (line + 1, col + 1)
            _positions(v, path, out)
    elif isinstance(node, list) and lc is not None:
        for i, v in enumerate(node):
            line, col = lc.item(i)
            out[f"{prefix}[{i}]"] = (line + 1, col + 1)
            _positions(v, f"{prefix}[{i}]", out)
