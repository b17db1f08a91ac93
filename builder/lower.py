"""Unrolled token occurrences → typed IR layers with stable names.

Structure rules checked here: INPUT only first, SOFTMAX exactly once and last, no
CONV/POOL/LRN after the net is flattened, the classifier FC has ``classes`` units, and
the strides do not multiply past 64 bits. A FLATTEN is implied before the first FC;
SOFTMAX folds into the FC right before it, or adds one of ``classes`` units. Names:
stage k begins at the first CONV after the (k-1)-th POOL (``stage2_conv1``,
``stage2_relu1``, ``stage2_pool``); the head is ``flatten``, ``fc1``, ``fc1_relu``,
``fc1_dropout``, …, ``predictions``.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from . import ir
from .errors import BlueprintError, Problem
from .expand import Occurrence
from .source import MAX_INT
from .tokens import ACTIVATIONS, REQUIRED, TOKENS
from .values import ValueProblem, convert

_SPATIAL = ("CONV", "POOL", "LRN", "GLOBAL_POOL")
_HEAD_START = ("FC", "FLATTEN", "GLOBAL_POOL")


def lower(occurrences: list[Occurrence], rank: int, classes: int | None
          ) -> tuple[tuple[ir.Layer, ...], int, tuple[int, ...] | None]:
    """Return (layers, classes, input shape given by an INPUT token or None)."""
    problems: list[Problem] = []
    occ, input_shape = _take_input(occurrences, rank, problems)
    if input_shape is not None:
        rank = len(input_shape) - 1
    occ = _structure(occ, problems)
    if problems:
        raise BlueprintError(problems)
    occ = occ[:-1]  # SOFTMAX lives on as the classifier FC's softmax
    names = _names([o.token for o in occ])
    args = [_typed(o, n, rank, problems) for o, n in zip(occ, names)]
    if problems:
        raise BlueprintError(problems)
    classes = _classes(occ, args, classes, problems)
    if problems:
        raise BlueprintError(problems)
    layers = tuple(_layer(o.token, n, a, classes, o.origin) for o, n, a in zip(occ, names, args))
    _check_strides(layers)
    return layers, classes, input_shape


def _take_input(occ, rank, problems):
    shape = None
    for i, o in enumerate(occ):
        if o.token != "INPUT":
            continue
        if i:
            problems.append(Problem("pattern", f"{o.origin}: INPUT may only be the first token"))
            continue
        raw, src = o.values.get("shape", (None, "pattern"))
        try:
            shape = convert(TOKENS["INPUT"].arg("shape"), raw, 0)
        except ValueProblem as exc:
            problems.append(Problem(src, f"INPUT shape {exc}"))
    return [o for o in occ if o.token != "INPUT"], shape


def _structure(occ: list[Occurrence], problems: list[Problem]) -> list[Occurrence]:
    softmax = [i for i, o in enumerate(occ) if o.token == "SOFTMAX"]
    if not softmax:
        problems.append(Problem("pattern", "must end with SOFTMAX, the classifier "
                                "(e.g. ...-FC-RELU-SOFTMAX)"))
    elif len(softmax) > 1 or softmax[0] != len(occ) - 1:
        problems.append(Problem("pattern", f"{occ[softmax[0]].origin}: SOFTMAX must appear "
                                f"once, as the last token; found {len(softmax)} SOFTMAX with "
                                f"{len(occ) - 1 - softmax[-1]} token(s) after the last"))
    flat_at = None
    for i, o in enumerate(occ):
        if o.token in ("FLATTEN", "GLOBAL_POOL", "FC") and flat_at is None:
            flat_at = i
            if o.token == "FC":
                flatten = Occurrence("FLATTEN", {}, "implicit before the first FC")
                occ = occ[:i] + [flatten] + occ[i:]
        elif o.token in _SPATIAL + ("FLATTEN",) and flat_at is not None:
            problems.append(Problem("pattern", f"{o.origin}: {o.token} needs positions to work "
                                    f"over, but the net is already flat here (after "
                                    f"{occ[flat_at].token}); move it before the first "
                                    "FC / FLATTEN / GLOBAL_POOL"))
    if softmax and occ[-1].token == "SOFTMAX" and (len(occ) < 2 or occ[-2].token != "FC"):
        occ = occ[:-1] + [Occurrence("FC", {}, "implicit classifier before SOFTMAX"), occ[-1]]
        if flat_at is None:
            occ = occ[:-2] + [Occurrence("FLATTEN", {}, "implicit before the first FC")] + occ[-2:]
    return occ


def _key(token: str) -> str:
    return {"GLOBAL_POOL": "global_pool"}.get(token, token.lower())


def stage_of(layer_name: str) -> str | None:
    """The stage a layer is in (``stage2`` for ``stage2_conv1``, as ``_names`` makes them);
    None for the head's layers (``flatten``, ``fc1``, ..., ``predictions``)."""
    return layer_name.split("_")[0] if layer_name.startswith("stage") else None


def _names(tokens: list[str]) -> list[str]:
    head = next(i for i, t in enumerate(tokens) if t in _HEAD_START)
    names: list[str] = []
    stages: list[list[int]] = [[]]
    seen_pool = False
    for i, t in enumerate(tokens[:head]):
        if t == "CONV" and seen_pool:
            stages.append([])
            seen_pool = False
        seen_pool |= t == "POOL"
        stages[-1].append(i)
    for s, members in enumerate(stages, 1):
        counts = Counter(tokens[i] for i in members)
        running: Counter = Counter()
        for i in members:
            t = tokens[i]
            running[t] += 1
            n = str(running[t]) if counts[t] > 1 or t == "CONV" else ""
            names.append(f"stage{s}_{_key(t)}{n}")
    anchor, fc, suffixes = "", 0, Counter()
    for i, t in enumerate(tokens[head:], head):
        if t == "FC":
            fc += 1
            anchor = "predictions" if i == len(tokens) - 1 else f"fc{fc}"
            suffixes = Counter()
            names.append(anchor)
        elif t in ("FLATTEN", "GLOBAL_POOL") and not anchor:
            anchor = _key(t)
            names.append(anchor)
        else:
            suffixes[t] += 1
            n = str(suffixes[t]) if suffixes[t] > 1 else ""
            names.append(f"{anchor}_{_key(t)}{n}")
    return names


def _typed(o: Occurrence, name: str, rank: int, problems: list[Problem]) -> dict[str, Any]:
    token = TOKENS[o.token]
    out: dict[str, Any] = {}
    for arg in token.args:
        if arg.name in o.values:
            raw, source = o.values[arg.name]
            if raw is None:  # already reported while picking
                continue
            try:
                out[arg.name] = convert(arg, raw, rank)
            except ValueProblem as exc:
                problems.append(Problem(source, f"{name}.{arg.name} {exc}"))
        elif arg.default is REQUIRED:
            if not (o.token == "FC" and name == "predictions"):
                problems.append(Problem(f"layers.{o.token}.{arg.name}",
                                        f"{name} (pattern {o.origin}) needs {arg.name}: "
                                        "set it inline, "
                                        f"e.g. {o.token}({arg.name}=...), or under "
                                        f"layers.{o.token}.{arg.name}"))
        else:
            out[arg.name] = arg.default if arg.default is None else convert(arg, arg.default, rank)
    return out


def _classes(occ, args, classes, problems) -> int:
    units = args[-1].get("units")
    source = occ[-1].values.get("units", (None, "layers."))[1]
    explicit = not source.startswith("layers.")
    if classes is None:
        if units is None or not explicit:
            problems.append(Problem("classes", "is not set: add `classes: N` to the blueprint, "
                                    "or give the last FC its units, e.g. FC(10)-SOFTMAX"))
        return units or 0
    if units is not None and units != classes and explicit:
        problems.append(Problem("pattern", f"the last FC before SOFTMAX has {units} units "
                                f"but the blueprint has classes: {classes}; make them equal "
                                f"(or drop the FC's units to take {classes})"))
    return classes


def _check_strides(layers: tuple[ir.Layer, ...]) -> None:
    """Refuse strides whose product passes 64 bits, before the analysis multiplies them.

    No input is that large, and the receptive field's arithmetic would otherwise grow to
    thousands of digits (one more digit per layer of stride 10).
    """
    jump: tuple[int, ...] | None = None
    for layer in layers:
        if isinstance(layer, (ir.Conv, ir.Pool)):
            jump = tuple(j * s for j, s in zip(jump or (1,) * len(layer.stride), layer.stride))
            if max(jump) > MAX_INT:
                raise BlueprintError(Problem(layer.name, f"({layer.kind}; pattern "
                                             f"{layer.origin}) the "
                                             "strides up to here multiply to more than "
                                             f"{MAX_INT:,} (64 bits), far beyond any input's "
                                             "size; lower the strides"))


def _layer(token: str, name: str, a: dict[str, Any], classes: int, origin: str) -> ir.Layer:
    if token == "CONV":
        return ir.Conv(name, a["filters"], a["kernel"], a["stride"], a["padding"],
                       a["dilation"], a["groups"], a["bias"], a["rounding"], origin)
    if token == "POOL":
        stride = a["stride"] if a["stride"] is not None else a["size"]
        return ir.Pool(name, a["type"], a["size"], stride, a["padding"], a["rounding"], origin)
    if token == "GLOBAL_POOL":
        return ir.GlobalPool(name, a["type"], origin)
    if token in ACTIVATIONS:
        return ir.Activation(name, token, a.get("alpha"), origin)
    if token == "BN":
        return ir.BatchNorm(name, a["momentum"], a["epsilon"], origin)
    if token == "LRN":
        return ir.LRN(name, a["size"], a["alpha"], a["beta"], a["bias"], origin)
    if token == "DROPOUT":
        return ir.Dropout(name, a["rate"], origin)
    if token == "FLATTEN":
        return ir.Flatten(name, origin)
    if token == "FC":
        if name == "predictions":
            return ir.Dense(name, classes, a["bias"], True, origin)
        return ir.Dense(name, a["units"], a["bias"], False, origin)
    raise AssertionError(token)
