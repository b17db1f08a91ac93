"""``Imported`` layers → blueprint data, folded as a person writes a net.

Stages split where ``lower`` names them (a stage begins at the first CONV after a POOL). When
every stage is ``(unit)*N`` followed by the same tail, the body folds to
``[(CONV-RELU)*N-POOL]*M`` with per-stage lists (``filters: [64, 128, ...]``,
``N: [2, 2, 3, 3, 3]``); a last stage without its POOL becomes ``POOL?``, a layer only some
stages' units have ``TOKEN?``, and a different unit ending some stages ``(...)?EXTRA``, each
with a flag per stage. The head folds to ``(FC-RELU-DROPOUT)*K-SOFTMAX``. A net that does not
fold (units that differ inside a stage, as in AlexNet) is written token by token with inline
arguments, identical neighbours as ``(...)*n``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import ir
from .imported import Imported, breaks
from .written import Written, call, is_default, written

_LIST = object()  # ``layers:`` holds a per-repetition list for another slot


class NoFold(Exception):
    """The net is written token by token instead."""


@dataclass(eq=False)  # slots are places: two with equal values are still two
class _Slot:
    """A place in the folded pattern where a token stands, with its value per repetition."""
    token: str
    values: list[Written]      # one per repetition of the repeat enclosing it (1 if none)
    text: str = ""             # filled in when ``layers:`` is settled
    trailer: bool = False      # after the stages, before the head


def fold(net: Imported, weights_from: str | None = None, folded: bool = True) -> dict:
    """The blueprint data for ``net``: folded when it fits (and ``folded``), token by token
    otherwise."""
    body, head = _split(net)
    doc: dict[str, Any] = {"name": net.name,
                           "description": f"imported from {net.kind} file {net.source}",
                           "input": list(net.input_shape), "classes": net.classes}
    try:
        if not folded:
            raise NoFold
        doc.update(_folded(body, head))
    except NoFold:
        doc["pattern"] = _explicit(body + head)
    if weights_from is not None:
        doc["weights"] = {"from": weights_from}
    return doc


def _split(net: Imported) -> tuple[list[ir.Layer], list[ir.Layer]]:
    """(layers before the net goes flat, the rest); refuse what the grammar cannot hold."""
    flat = next((i for i, la in enumerate(net.layers)
                 if isinstance(la, (ir.Flatten, ir.GlobalPool, ir.Dense))), None)
    assert flat is not None  # the readers end every net with its classifier Dense
    # the readers give only CONV, POOL, activations, BN, LRN and DROPOUT before it
    for layer in net.layers[flat + 1:]:
        if not isinstance(layer, (ir.Dense, ir.Activation, ir.Dropout, ir.BatchNorm)):
            raise breaks(net.source, layer.name, layer.kind, "needs positions to work over, "
                         f"but the net is already flat here (after {net.layers[flat].name}); "
                         "the pattern puts every CONV, POOL and LRN before the first FC")
    return list(net.layers[:flat]), list(net.layers[flat:])


def _stages(body: list[ir.Layer]) -> list[list[ir.Layer]]:
    stages: list[list[ir.Layer]] = [[]]
    pooled = False
    for layer in body:
        if isinstance(layer, ir.Conv) and pooled:
            stages.append([])
            pooled = False
        pooled |= isinstance(layer, ir.Pool)
        stages[-1].append(layer)
    return stages


def _units(layers: list[ir.Layer], starts) -> tuple[list[list[Written]], list[Written]]:
    """Split ``layers`` into units (each begins with a ``starts`` layer) and what follows the
    first layer that is neither (a stage's POOL onward); a stage must begin with a unit."""
    units: list[list[Written]] = []
    for i, layer in enumerate(layers):
        if isinstance(layer, starts):
            units.append([written(layer)])
        elif isinstance(layer, (ir.Pool, ir.Flatten, ir.GlobalPool)) or not units:
            return units, [written(la) for la in layers[i:]]
        else:
            units[-1].append(written(layer))
    return units, []


def _folded(body: list[ir.Layer], head: list[ir.Layer]) -> dict:
    """``pattern``, ``vars`` and ``layers`` of the folded form; NoFold when it does not fit."""
    slots: list[_Slot] = []
    vars_: dict[str, Any] = {}
    parts = []
    if body:
        parts.append(_fold_body(_stages(body), slots, vars_))
    parts.append(_fold_head(head, slots, vars_))
    layers = _settle(slots)
    pattern = "-".join(p for p in parts if p)
    for slot in slots:
        pattern = pattern.replace(f"{{{id(slot)}}}", slot.text, 1)
    out: dict[str, Any] = {"pattern": pattern}
    if vars_:
        out["vars"] = vars_
    if layers:
        out["layers"] = layers
    return out


def _same(items: list) -> bool:
    return all(item == items[0] for item in items)


def _fold_body(stages: list[list[ir.Layer]], slots: list[_Slot], vars_: dict) -> str:
    split = [_units(stage, ir.Conv) for stage in stages]
    if any(not units for units, _ in split):
        raise NoFold  # a stage that begins with something other than a CONV
    mains, counts, extras = [], [], []
    for units, _ in split:
        keys = [[w.key() for w in u] for u in units]
        n = next((i for i, k in enumerate(keys) if k != keys[0]), len(units))
        if len(units) - n > 1:
            raise NoFold  # units that differ inside a stage (AlexNet's third)
        mains.append(units[0])
        counts.append(n)
        extras.append(units[n] if n < len(units) else None)
    sig = [w.token for w in max(mains, key=len)]
    aligned = [_align(sig, unit) for unit in mains]
    optional = [j for j in range(len(sig)) if any(a[j] is None for a in aligned)]
    flags = [sig[j] for j in optional]
    if len(set(flags)) != len(flags) or set(flags) & {"N", "M", "K", "POOL", "EXTRA"}:
        raise NoFold
    unit_slots = [_Slot(token, _fill([a[j] for a in aligned])) for j, token in enumerate(sig)]
    slots.extend(unit_slots)
    vars_["M"] = len(stages)
    unit = "-".join(f"{{{id(s)}}}" + ("?" if j in optional else "")
                    for j, s in enumerate(unit_slots))
    for j in optional:
        vars_[sig[j]] = [a[j] is not None for a in aligned]
    if counts != [1] * len(counts):
        unit = f"({unit})*N"
        vars_["N"] = counts[0] if _same(counts) else counts
    if any(extras) and len(stages) == 1:
        raise NoFold  # one stage: nothing to fold, and (...)?EXTRA would only obscure it
    if any(extras):
        unit += "-" + _extra(extras, unit_slots, sig, slots, vars_)
    tail = _fold_tails([tail for _, tail in split], slots, vars_)
    return f"[{unit}{'-' if tail else ''}{tail}]*M" + \
        "".join(f"-{{{id(s)}}}" for s in slots if s.trailer)


def _align(sig: list[str], unit: list[Written]) -> list[Written | None]:
    """``unit`` against the fullest unit's tokens: None where it leaves one out."""
    out, p = [], 0
    for token in sig:
        if p < len(unit) and unit[p].token == token:
            out.append(unit[p])
            p += 1
        else:
            out.append(None)
    if p != len(unit):
        raise NoFold  # not the fullest unit with tokens left out
    return out


def _fill(values: list[Written | None], like: list[Written] | None = None) -> list[Written]:
    """One value per stage: a stage without the layer takes, argument by argument, what the
    others agree on, else ``like``'s value there (so two slots can share one list)."""
    present = [v for v in values if v is not None]
    filled = []
    for i, v in enumerate(values):
        if v is not None:
            filled.append(v)
            continue
        args = []
        for key, _ in present[0].args:
            seen = [dict(p.args)[key] for p in present]
            args.append((key, seen[0] if _same(seen) or like is None
                         else dict(like[i].args).get(key, seen[0])))
        filled.append(Written(present[0].token, tuple(args)))
    return filled


def _extra(extras: list, unit_slots: list[_Slot], sig: list[str], slots: list[_Slot],
           vars_: dict) -> str:
    """A unit of its own that ends some stages (VGG-16 C's 1x1 convolution): ``(...)?EXTRA``."""
    present = [e for e in extras if e is not None]
    if not _same([[w.token for w in e] for e in present]):
        raise NoFold
    group = []
    for j, w in enumerate(present[0]):
        like = unit_slots[sig.index(w.token)].values if w.token in sig else None
        group.append(_Slot(w.token, _fill([e[j] if e else None for e in extras], like)))
    slots.extend(group)
    vars_["EXTRA"] = [e is not None for e in extras]
    return "(" + "-".join(f"{{{id(s)}}}" for s in group) + ")?EXTRA"


def _fold_tails(tails: list[list[Written]], slots: list[_Slot], vars_: dict) -> str:
    """Every stage's tail (its POOL onward) alike; a missing POOL is ``POOL?``; what only the
    last stage adds after it (a DROPOUT before the head) follows the stages."""
    tokens = [[w.token for w in tail] for tail in tails]
    if not any(tokens):
        return ""  # a net without pooling
    common = tokens[0] if tokens[0] else ["POOL"]
    optional = False
    for i, tail in enumerate(tokens):
        if tail == common or (i == len(tokens) - 1 and tail[:len(common)] == common):
            continue
        if tail or common != ["POOL"]:
            raise NoFold
        optional = True
    group = [_Slot(token, _fill([tail[j] if tail else None for tail in tails]))
             for j, token in enumerate(common)]
    slots.extend(group)
    for w in tails[-1][len(common):]:
        slots.append(_Slot(w.token, [w], trailer=True))
    if optional:
        vars_["POOL"] = [bool(t) for t in tails]
    return "-".join(f"{{{id(s)}}}" for s in group) + ("?" if optional else "")


def _fold_head(head: list[ir.Layer], slots: list[_Slot], vars_: dict) -> str:
    units, before = [], []
    for layer in head:
        if isinstance(layer, ir.Dense):
            units.append([written(layer)])
        elif units:
            units[-1].append(written(layer))
        else:
            before.append(written(layer))
    hidden, classifier = units[:-1], units[-1]
    assert len(classifier) == 1  # the softmax Dense is the last layer
    if before and before[0].token == "FLATTEN" and len(before) == 1:
        before = []   # implicit before the first FC
    if not _same([[w.token for w in u] for u in hidden]):
        raise NoFold
    text = []
    for w in before:
        slots.append(_Slot(w.token, [w]))
        text.append(f"{{{id(slots[-1])}}}")
    if hidden:
        unit_slots = [_Slot(w.token, [u[j] for u in hidden]) for j, w in enumerate(hidden[0])]
        slots.extend(unit_slots)
        text.append("(" + "-".join(f"{{{id(s)}}}" for s in unit_slots) + ")*K")
        vars_["K"] = len(hidden)
    text.append(call(classifier[0]))
    return "-".join(text)


def _settle(slots: list[_Slot]) -> dict:
    """``layers:`` for every token, and each slot's inline text for what ``layers:`` cannot
    give it: a per-repetition list serves one slot only; the other slots write theirs."""
    layers: dict[str, dict] = {}
    for token in dict.fromkeys(s.token for s in slots):
        mine = [s for s in slots if s.token == token]
        entry: dict[str, Any] = {}
        owner: dict[str, list[_Slot]] = {}
        for key, _ in mine[0].values[0].args:
            per_slot = [[dict(w.args)[key] for w in s.values] for s in mine]
            varying = [(s, v) for s, v in zip(mine, per_slot) if not _same(v)]
            if not _same([v for _, v in varying]):
                raise NoFold  # two lists for one key: layers: holds one
            if varying:
                owner[key] = [s for s, _ in varying]
                entry[key] = varying[0][1]
                continue
            first = per_slot[0][0]
            if not (is_default(token, key, first, dict(mine[0].values[0].args))
                    and _same([v[0] for v in per_slot])):
                entry[key] = first
        for s in mine:
            given = {k: (_LIST if k in owner and s not in owner[k] else v)
                     for k, v in entry.items()}
            s.text = call(s.values[0], given, frozenset(k for k in owner if s in owner[k]))
        if entry:
            layers[token] = entry
    return layers


def _explicit(layers: list[ir.Layer]) -> str:
    """Token by token with inline arguments; identical neighbouring units as ``(...)*n``."""
    ws = [written(la) for la in layers]
    ws = [w for i, w in enumerate(ws)  # a FLATTEN right before an FC is implied
          if not (w.token == "FLATTEN" and i + 1 < len(ws) and ws[i + 1].token == "FC")]
    units: list[list[Written]] = []
    for w in ws:
        if w.token in ("CONV", "FC", "POOL", "FLATTEN", "GLOBAL_POOL", "SOFTMAX") or not units:
            units.append([w])
        else:
            units[-1].append(w)
    parts: list[str] = []
    i = 0
    while i < len(units):
        n = 1
        while i + n < len(units) and units[i + n] == units[i]:
            n += 1
        text = "-".join(call(w) for w in units[i])
        parts.append(f"({text})*{n}" if n > 1 else text)
        i += n
    return "-".join(parts)
