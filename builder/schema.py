"""The blueprint JSON Schema, generated from the token table, and validation against it.

``blueprints/blueprint.schema.json`` is this schema written out for editors; a test keeps
the file and the generator equal (regenerate with ``make schema``).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import Problem
from .search_schema import schema as search_schema
from .tokens import TOKENS, suggest
from .training import schema as training_schema

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "blueprints" / "blueprint.schema.json"

_NAME = "^[A-Za-z_][A-Za-z0-9_]*$"
# Keras initializer names that build without extra arguments (tests build each one).
INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
                "lecun_normal", "random_normal", "random_uniform", "truncated_normal",
                "orthogonal", "variance_scaling", "zeros", "ones")
BIAS_INITIALIZERS = ("zeros", "ones", "random_normal", "random_uniform", "truncated_normal")
_SIZE = {"anyOf": [{"type": "integer", "minimum": 0},
                   {"type": "string", "pattern": r"^\d+(x\d+)*$"}]}
_SCALARS = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "size": _SIZE,
    "padding": {"anyOf": [{"enum": ["valid", "same"]}, *_SIZE["anyOf"]]},
    "shape": {"type": "string"},
}
_WHAT = {"int": "a whole number", "float": "a number", "bool": "true or false",
         "size": "a size like 3 or 3x3", "padding": "valid, same, or a pad like 1 or 2x1"}


def _per_repeat(scalar: dict, what: str) -> dict:
    """A value, or a list of them (nested once per enclosing repeat)."""
    return {"description": f"{what}, or a list giving one per repetition",
            "anyOf": [scalar, {"type": "array", "minItems": 1}]}


def _arg_schema(arg, anchor: str) -> dict:
    if arg.kind == "choice":
        scalar = {"enum": list(arg.choices)}
        what = "one of " + ", ".join(arg.choices)
    else:
        scalar = dict(_SCALARS[arg.kind])
        what = _WHAT[arg.kind]
        if arg.minimum is not None and arg.kind in ("int", "float"):
            scalar["minimum"] = arg.minimum
        if arg.maximum is not None and arg.kind in ("int", "float"):
            scalar["maximum"] = arg.maximum
    body = _per_repeat(scalar, what)
    # "$ref": "#" inside the list would point at the whole blueprint: use a local anchor.
    body["$anchor"] = anchor
    body["anyOf"][1]["items"] = {"$ref": f"#{anchor}"}
    if arg.doc:
        body["description"] = f"{arg.doc} — {body['description']}"
    return body


def generate() -> dict:
    """Build the schema from the vocabulary."""
    layer_props = {}
    for tok in TOKENS.values():
        if tok.name in ("INPUT", "SOFTMAX") or not tok.args:
            continue
        props = {a.name: _arg_schema(a, f"{tok.name}_{a.name}") for a in tok.args}
        layer_props[tok.name] = {"type": "object", "description": tok.doc,
                                 "additionalProperties": False, "properties": props}
    var_value = {"$anchor": "var", "anyOf": [
        {"type": "integer", "minimum": 0}, {"type": "boolean"}, {"type": "number"},
        {"type": "string"}, {"type": "array", "minItems": 1, "items": {"$ref": "#var"}}]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://cnn-blueprint.dev/blueprint.schema.json",
        "title": "CNN Blueprint",
        "description": "A declarative classic CNN: [(CONV-RELU)*N-POOL?]*M-(FC-RELU)*K-SOFTMAX",
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "pattern"],
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$"},
            "description": {"type": "string"},
            "input": {"description": "channels-last input shape without the batch axis: "
                      "[height, width, channels] or [length, channels], or 32x32x3",
                      "anyOf": [{"type": "array", "minItems": 2, "maxItems": 3,
                                 "items": {"type": "integer", "minimum": 1}},
                                {"type": "string", "pattern": r"^\d+(x\d+){1,2}$"}]},
            "classes": {"type": "integer", "minimum": 2},
            "class_names": {"type": "array", "items": {"type": "string"}},
            "pattern": {"type": "string", "minLength": 1,
                        "description": "e.g. [(CONV-RELU)*N-POOL?]*M-(FC-RELU)*K-SOFTMAX"},
            "vars": {"type": "object", "propertyNames": {"pattern": _NAME},
                     "additionalProperties": var_value,
                     "description": "repeat counts (N, M, K), flags of optional items "
                     "(POOL: true) and values used in the pattern"},
            "layers": {"type": "object", "additionalProperties": False,
                       "description": "arguments for every occurrence of a token",
                       "properties": layer_props},
            "weights": {"type": "object", "additionalProperties": False, "properties": {
                "init": {"enum": list(INITIALIZERS), "description": "a Keras initializer name"},
                "bias_init": {"enum": list(BIAS_INITIALIZERS)},
                "l2": {"type": "number", "minimum": 0, "description": "L2 weight decay"},
                "seed": {"type": "integer", "minimum": 0},
                "from": {"type": "string", "minLength": 1,
                         "description": "start from the weights in this .keras, .weights.h5, "
                                        ".h5 or .onnx file (relative to the blueprint file)"},
                "channel_order": {"enum": ["rgb", "bgr"],
                                  "description": "the channel order the weights' source "
                                                 "expects (bgr: the first CONV is flipped so "
                                                 "the net takes RGB); default rgb"},
                "normalize": {
                    "type": "object", "additionalProperties": False,
                    "required": ["mean", "std"],
                    "description": "the normalisation the weights were trained with, used by "
                                   "training and serving instead of fitting one: x = (pixel - "
                                   "mean) / std, pixels 0..255, one value per input channel in "
                                   "the net's (RGB) order",
                    "properties": {
                        "mean": {"type": "array", "minItems": 1, "items": {"type": "number"}},
                        "std": {"type": "array", "minItems": 1,
                                "items": {"type": "number", "exclusiveMinimum": 0}}}}}},
            "training": training_schema(),
            "strict": {"type": "boolean", "description": "refuse windows that do not tile "
                       "their input unless the layer sets rounding (default true)"},
            "search": search_schema(),
        },
    }


@lru_cache(maxsize=1)
def _validator():
    from jsonschema import Draft202012Validator
    return Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


def validate(data: Any) -> list[Problem]:
    """Every schema violation as a Problem with its key path."""
    if not isinstance(data, dict):
        return [Problem("", f"a blueprint must be a mapping of keys (name, input, classes, "
                        f"pattern, ...), got {type(data).__name__}")]
    problems = []
    by_path = lambda e: list(map(str, e.absolute_path))
    for err in sorted(_validator().iter_errors(data), key=by_path):
        problems.append(_explain(err))
    return problems


def _path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _explain(err) -> Problem:
    path = _path(err.absolute_path)
    schema = err.schema if isinstance(err.schema, dict) else {}
    if err.validator == "additionalProperties":
        known = list(schema.get("properties", {}))
        extra = [k for k in err.instance if k not in known]
        hint = suggest(extra[0], known) if extra else ""
        valid = ", ".join(known) if known else "none"
        return Problem(_path(list(err.absolute_path) + extra[:1]),
                       f"unknown key{hint}; valid keys here: {valid}")
    if err.validator == "required":
        return Problem(path, err.message.replace("'", "`"))
    if err.validator == "anyOf" and "description" in schema:
        return Problem(path, f"must be {schema['description']}, got {err.instance!r}")
    if err.validator == "enum":  # the values as a blueprint writes them: true, not True
        valid = [v if isinstance(v, str) else json.dumps(v) for v in err.validator_value]
        hint = suggest(str(err.instance), valid)
        return Problem(path, f"{err.instance!r} is not one of {', '.join(valid)}{hint}")
    if err.validator in ("type", "minimum", "maximum", "pattern", "minItems", "maxItems"):
        return Problem(path, f"{err.message}")
    return Problem(path, err.message)


def write() -> None:
    """Regenerate ``blueprints/blueprint.schema.json`` (``make schema``)."""
    SCHEMA_FILE.write_text(json.dumps(generate(), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")
