"""Blueprint file text → plain data with the line and column of every key, plus overrides.

A blueprint is a page of plain YAML, so the loader refuses what no blueprint needs before it
can cost time or memory: files over ``MAX_FILE_BYTES``, lists and mappings nested deeper than
``MAX_DEPTH``, more than ``MAX_VALUES`` values once aliases are expanded ("billion laughs"),
an alias inside what it names, tags other than YAML's plain ones (``!!python/object`` and
the like are never constructed), and whole numbers beyond 64 bits.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import BlueprintError, Problem

SHIPPED = Path(__file__).resolve().parent.parent / "blueprints"
TOP_KEYS = ("name", "description", "input", "classes", "class_names", "pattern", "vars",
            "search", "layers", "weights", "training", "strict")

MAX_FILE_BYTES = 256 << 10  # pure-Python YAML parses 15-250 KB/s; blueprints are ~1 KB
MAX_DEPTH = 100             # lists and mappings inside each other
MAX_VALUES = 100_000        # values in a document (or a --set value), aliases expanded
MAX_INT = 2**63 - 1         # TensorFlow's sizes and seeds are 64-bit
_SIZE_TEXT = re.compile(r"\s*\d+(\s*[xX]\s*\d+)*\s*")  # "224x224x3": whole numbers as text
_PLAIN_TAGS = frozenset({"!"} | {f"tag:yaml.org,2002:{t}" for t in
                                 ("str", "int", "float", "bool", "null", "seq", "map")})


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
        """``exc`` with every problem located at its line and column in this file."""
        return BlueprintError([self.locate(p) for p in exc.problems], self.name)


def resolve_path(ref: str) -> Path:
    """A file path, a run directory or bundle (its resolved ``blueprint.yaml``), or the name of
    a shipped blueprint (``vgg16``)."""
    path = Path(ref)
    if path.is_file():
        return path
    if path.is_dir() and (path / "blueprint.yaml").is_file():  # runs/NAME, bundles/NAME
        return path / "blueprint.yaml"
    shipped = SHIPPED / f"{ref}.yaml"
    if not path.suffix and shipped.is_file():
        return shipped
    names = sorted(p.stem for p in SHIPPED.glob("*.yaml"))
    if path.is_dir():
        raise BlueprintError(Problem("", f"{ref} is a folder without blueprint.yaml: give a "
                                     "blueprint file, a run directory or bundle (they hold the "
                                     f"resolved blueprint), or a shipped name: {', '.join(names)}"),
                             ref)
    from .tokens import suggest
    raise BlueprintError(Problem("", f"no blueprint file {ref!r}{suggest(ref, names)}; give a "
                                 f"path to a .yaml file or a shipped name: {', '.join(names)}"),
                         ref)


def read(ref: str) -> Source:
    """Read a blueprint file; YAML errors and refused documents become a located BlueprintError."""
    from ruamel.yaml.error import YAMLError

    path = resolve_path(ref)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)  # never read more than the limit, however large
        if len(raw) > MAX_FILE_BYTES:
            raise BlueprintError(Problem("", f"the file is larger than {MAX_FILE_BYTES:,} "
                                         f"bytes ({MAX_FILE_BYTES >> 10} KiB), the limit for a "
                                         "blueprint"), str(path))
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BlueprintError(Problem("", f"cannot read the file: {exc}"), str(path)) from None
    positions: dict[str, tuple[int, int]] = {}
    try:
        data = _plain(_yaml("rt").load(text), positions)
    except YAMLError as exc:
        raise BlueprintError(_yaml_problem(exc, text), str(path)) from None
    except _Refused as exc:
        line, col = (exc.mark.line + 1, exc.mark.column + 1) if exc.mark is not None else \
            positions.get(exc.path, (None, None))
        raise BlueprintError(Problem(exc.path, exc.message, line, col), str(path)) from None
    return Source(data, str(path), positions)


def from_expression(pattern: str) -> Source:
    """A one-line net given on the command line: ``INPUT(32x32x3)-CONV(10,5)-...``."""
    return Source({"name": "expression", "pattern": pattern}, "<expression>")


def apply_overrides(src: Source, overrides: list[str]) -> Source:
    """Apply ``KEY=VALUE`` settings: a dotted key path, a top-level key, or a variable."""
    from ruamel.yaml.error import YAMLError

    if not isinstance(src.data, dict):
        return src
    data = _copy(src.data)
    overridden = dict(src.overridden)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BlueprintError(Problem("--set", f"{shown_item(item)} must look like KEY=VALUE, "
                                         "e.g. N=3, classes=10 or layers.CONV.kernel=5"),
                                 src.name)
        try:
            value = _plain(_yaml("safe").load(text)) if text.strip() else ""
        except YAMLError as exc:
            raise BlueprintError(Problem("--set", f"{shown_item(item)}: the value is "
                                         f"{_yaml_problem(exc, text).message}"),
                                 src.name) from None
        except _Refused as exc:
            raise BlueprintError(Problem("--set", f"{shown_item(item)}: {exc.message}"),
                                 src.name) from None
        path = key if ("." in key or key in TOP_KEYS) else f"vars.{key}"
        parts = path.split(".")
        if len(parts) > MAX_DEPTH:
            raise BlueprintError(Problem("--set", f"{shown_item(item)}: the key path has "
                                         f"{len(parts):,} parts; the limit is {MAX_DEPTH}"),
                                 src.name)
        node = data
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
        overridden[path] = f"--set {shown_item(item, quote=False)}"
    return Source(data, src.name, src.positions, overridden)


def shown_item(item: str, quote: bool = True) -> str:
    """``item`` for a message: whole when short, else its start and its length."""
    if len(item) > 80:
        return f"{item[:60]!r}… ({len(item):,} characters)" if quote else \
            f"{item[:60]}… ({len(item):,} characters)"
    return repr(item) if quote else item


class _Refused(Exception):
    """A document the loader will not build: where (a YAML mark, or a key path) and why."""

    def __init__(self, message: str, mark: Any = None, path: str = ""):
        super().__init__(message)
        self.message, self.mark, self.path = message, mark, path


def _yaml(typ: str):
    from ruamel.yaml import YAML
    yaml = YAML(typ=typ, pure=True)
    yaml.Composer = _guarded_composer()
    return yaml


@lru_cache(maxsize=1)
def _guarded_composer():
    """ruamel's Composer, refusing tags, depth and self-reference as it builds the node graph.

    The composer is the one place that sees explicit tags, nesting and anchors before anything
    is constructed, and it sees them with their line and column.
    """
    from ruamel.yaml.composer import Composer
    from ruamel.yaml.events import AliasEvent, MappingStartEvent, ScalarEvent, SequenceStartEvent
    from ruamel.yaml.nodes import ScalarNode

    class GuardedComposer(Composer):
        _nesting = 0
        _values = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.parser.peek_event()
            if isinstance(event, AliasEvent):
                target = self.anchors.get(event.anchor)
                # A list or mapping still being composed has no end mark yet.
                if target is not None and isinstance(target.value, list) and \
                        target.end_mark is None:
                    raise _Refused(f"the alias *{event.anchor} is inside the list or mapping "
                                   f"&{event.anchor} that it names, so it would contain itself "
                                   "forever; a blueprint cannot refer to itself", event.start_mark)
                return super().compose_node(parent, index)
            self._values += 1  # stop a huge document early; aliases are counted in _plain
            if self._values > MAX_VALUES:
                raise _Refused(f"the blueprint holds more than {MAX_VALUES:,} values; the "
                               f"limit is {MAX_VALUES:,}", event.start_mark)
            tag = getattr(event, "tag", None)
            if tag is not None and str(tag) != "!":
                self._check_tag(event, str(tag))
            if not isinstance(event, (SequenceStartEvent, MappingStartEvent)):
                return super().compose_node(parent, index)
            self._nesting += 1
            try:
                if self._nesting > MAX_DEPTH:
                    raise _Refused(f"lists and mappings nest more than {MAX_DEPTH} levels deep "
                                   f"here; the limit is {MAX_DEPTH}", event.start_mark)
                return super().compose_node(parent, index)
            finally:
                self._nesting -= 1

        def _check_tag(self, event: Any, tag: str) -> None:
            """Refuse a tag that is not plain YAML, or that its value does not fit.

            ruamel's constructors fail with IndexError, KeyError or ValueError on ``!!int``
            without digits or ``!!bool maybe``; the resolver tells the same in advance.
            """
            shown = tag.replace("tag:yaml.org,2002:", "!!")
            if tag not in _PLAIN_TAGS:
                raise _Refused(f"the tag {shown} is not allowed: a blueprint holds only plain "
                               "values (text, numbers, true/false, null, lists and mappings); "
                               "remove the tag", event.start_mark)
            kind = tag.rsplit(":", 1)[1]
            if isinstance(event, ScalarEvent):
                if kind in ("seq", "map"):
                    what = "list" if kind == "seq" else "mapping"
                    raise _Refused(f"the tag {shown} needs a {what}, not {event.value!r}",
                                   event.start_mark)
                if kind == "str":
                    return
                plain = str(self.resolver.resolve(ScalarNode, event.value, (True, False)))
                if plain.rsplit(":", 1)[1] not in (kind, "int" if kind == "float" else kind):
                    raise _Refused(f"{event.value!r} is not a valid {shown}; remove the tag or "
                                   "fix the value", event.start_mark)
            elif kind != ("seq" if isinstance(event, SequenceStartEvent) else "map"):
                what = "list" if isinstance(event, SequenceStartEvent) else "mapping"
                raise _Refused(f"the tag {shown} does not fit a {what}; remove it",
                               event.start_mark)

        def compose_scalar_node(self, anchor: Any) -> Any:
            node = super().compose_scalar_node(anchor)
            # Python refuses to convert more than 4,300 digits; no blueprint needs 100.
            if str(node.tag).endswith(":int") and len(node.value) > 100:
                raise _Refused(f"a whole number written with {len(node.value):,} characters "
                               "does not fit in 64 bits; whole numbers may be at most "
                               f"{MAX_INT:,} in size", node.start_mark)
            return node

    return GuardedComposer


def _yaml_problem(exc: Exception, text: str) -> Problem:
    """A ruamel error as a Problem at its line and column, whatever its kind."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return Problem("", f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
                       mark.line + 1, mark.column + 1)
    position = getattr(exc, "position", None)  # a ReaderError: a character YAML forbids
    if isinstance(position, int) and 0 <= position <= len(text):
        line = text.count("\n", 0, position) + 1
        col = position - (text.rfind("\n", 0, position) + 1) + 1
        char = getattr(exc, "character", None)
        what = f"the character #x{char:04x}" + (" (a NUL byte)" if char == 0 else "") \
            if isinstance(char, int) else "a character"
        return Problem("", f"not valid YAML: {what} is not allowed in YAML text; a blueprint "
                       "is printable UTF-8 text", line, col)
    return Problem("", f"not valid YAML: {exc}")


def _plain(node: Any, positions: dict[str, tuple[int, int]] | None = None) -> Any:
    """Loaded YAML as plain dicts, lists and scalars, with each key's position in ``positions``.

    Aliases share one object in the loaded document and copying expands them, so this is
    where an alias bomb would explode: count the values and stop at ``MAX_VALUES``.
    """
    from ruamel.yaml.comments import TaggedScalar

    count = 0

    def walk(node: Any, path: str, depth: int) -> Any:
        nonlocal count
        count += 1
        if count > MAX_VALUES:
            top = re.split(r"[.\[]", path, maxsplit=1)[0]
            raise _Refused(f"the blueprint holds more than {MAX_VALUES:,} values once its "
                           "aliases are expanded (each *name copies all that its &name marks); "
                           f"the limit is {MAX_VALUES:,}", path=top)
        if depth > MAX_DEPTH:  # only reachable by data built in Python, not by YAML
            raise _Refused(f"nests more than {MAX_DEPTH} levels deep; the limit is {MAX_DEPTH}",
                           path=path)
        if isinstance(node, dict):
            lc = getattr(node, "lc", None)
            out = {}
            for k, v in node.items():
                sub = f"{path}.{k}" if path else str(k)
                # Keys merged in with `<<:` have no position of their own.
                where = lc.data.get(k) if positions is not None and lc and lc.data else None
                if where:
                    line, col = where[:2] if isinstance(v, (dict, list)) else where[2:4]
                    positions[sub] = (line + 1, col + 1)
                out[str(k)] = walk(v, sub, depth + 1)
            return out
        if isinstance(node, list):
            lc = getattr(node, "lc", None)
            out_list = []
            for i, v in enumerate(node):
                sub = f"{path}[{i}]"
                where = lc.data.get(i) if positions is not None and lc and lc.data else None
                if where:
                    positions[sub] = (where[0] + 1, where[1] + 1)
                out_list.append(walk(v, sub, depth + 1))
            return out_list
        if isinstance(node, TaggedScalar):  # how round-trip loading keeps an explicit !!str
            node = str(node.value)
        if isinstance(node, str):
            if len(node) > 19 and _SIZE_TEXT.fullmatch(node):
                for digits in re.findall(r"\d+", node):
                    _whole(digits, path)
            return str(node)
        if isinstance(node, bool):
            return bool(node)
        if isinstance(node, int):
            _whole(str(node), path)
            return int(node)
        if isinstance(node, float):
            return float(node)
        return node

    return walk(node, "", 0)


def _whole(text: str, path: str) -> None:
    """Refuse a whole number beyond 64 bits (int() itself refuses more than 4,300 digits)."""
    digits = text.lstrip("-").lstrip("0")
    if len(digits) > 19 or (digits and int(digits) > MAX_INT):
        shown = text if len(text) <= 40 else f"{text[:20]}… ({len(digits):,} digits)"
        raise _Refused(f"{shown} does not fit in 64 bits; whole numbers may be at most "
                       f"{MAX_INT:,} in size", path=path)


def _copy(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node
