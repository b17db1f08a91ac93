"""A user's weights (``weights: {from: PATH}`` or ``--weights PATH``) matched to a blueprint's
net and loaded into its built model.

Layers are matched in the order of their weight-bearing layers, one kind at a time (CONV, FC,
BATCHNORM): a Keras 3 ``.weights.h5`` keeps each kind's order but not how the kinds interleave.
The file's arrays come in Keras's layout (``weights_read``). No Keras import here: the shapes
come from the IR and its analysis (so a file that does not fit is refused before TensorFlow
starts), and the model is filled through its layers' ``set_weights``.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnbp.contract.errors import ArtifactError

from . import ir
from .weights_read import read_layers
from .weights_source import source_of


@dataclass(frozen=True)
class Loaded:
    """What ``load_into`` did: the layers filled, the ones re-initialised on purpose."""

    path: str
    layers: int
    reinitialised: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class _Target:
    name: str
    kind: str
    shapes: tuple[tuple[int, ...], ...]    # its weights' shapes, in Keras's layout
    flatten_shape: tuple[int, ...] | None  # the feature map a first FC after Flatten reads


def _targets(compiled) -> list[_Target]:
    """The net's weight-bearing layers and their weights' shapes, from the IR and the
    analysis (no Keras): the Keras model's layers have the same names."""
    net = compiled.network
    found, flat, shape = [], None, tuple(net.input_shape)
    for layer, stats in zip(net.layers, compiled.analysis.layers, strict=True):
        if isinstance(layer, ir.Flatten):
            flat = shape
        elif isinstance(layer, ir.Conv):
            kernel = (*layer.kernel, shape[-1] // layer.groups, layer.filters)
            bias = ((layer.filters,),) if layer.bias else ()
            found.append(_Target(layer.name, "CONV", (kernel, *bias), None))
        elif isinstance(layer, ir.Dense):
            bias = ((layer.units,),) if layer.bias else ()
            found.append(_Target(layer.name, "FC", ((shape[-1], layer.units), *bias), flat))
            flat = None
        elif isinstance(layer, ir.BatchNorm):
            found.append(_Target(layer.name, "BATCHNORM", ((shape[-1],),) * 4, None))
        shape = tuple(stats.output_shape)
    return found


def _shape(shape) -> str:
    return "x".join(map(str, shape)) or "scalar"


def _chw_rows(kernel: np.ndarray, feature: tuple[int, ...]) -> np.ndarray:
    """A first FC's kernel whose rows follow a (C, *spatial) flatten, reordered to our
    (*spatial, C) flatten."""
    c, spatial = feature[-1], feature[:-1]
    k = kernel.reshape(c, *spatial, kernel.shape[-1])
    return np.moveaxis(k, 0, -2).reshape(kernel.shape)


@dataclass(frozen=True)
class Plan:
    """The file's arrays for each of our layers, every shape checked (``match``)."""

    path: str
    layers: tuple[tuple[str, tuple[np.ndarray, ...]], ...]  # our layer name → its arrays
    reinitialised: tuple[str, ...]
    notes: tuple[str, ...]       # what differs on purpose, for stderr

    def line(self) -> str:
        """One line for the user: the file, the layers it fills, the ones left fresh."""
        fresh = f", {len(self.reinitialised)} re-initialised ({', '.join(self.reinitialised)})" \
            if self.reinitialised else ""
        return f"weights from {self.path}: {len(self.layers)} layers loaded{fresh}"


def match(compiled) -> Plan | None:
    """Read the blueprint's ``weights.from`` and pair its layers with the net's (None when
    the blueprint has none), without Keras: ``cnnbp build`` and ``train`` call it before
    TensorFlow starts or a run folder is made.

    Raises ArtifactError naming our layer, the source layer and both shapes at the first
    mismatch. A last FC whose class count differs, and every FC when the file has none (a
    feature extractor), keep their fresh initialisation, said in ``notes``.
    """
    source = source_of(compiled.resolved)
    if source is None:
        return None
    path, order = source.path, source.channel_order
    src, chw = read_layers(Path(path))
    ours = _targets(compiled)
    plan, reinit, notes = [], [], []
    last_fc = ([t.name for t in ours if t.kind == "FC"] or [None])[-1]
    for kind in ("CONV", "BATCHNORM", "FC"):
        mine = [t for t in ours if t.kind == kind]
        theirs = [s for s in src if s.kind == kind]
        if kind == "FC" and mine and not theirs and plan:  # a feature extractor's file
            reinit += [t.name for t in mine]
            notes.append(f"note: {path} has no FC layers (a feature extractor, as "
                         f"include_top=False writes): the {len(mine)} FC layers "
                         f"({', '.join(reinit)}) keep their fresh initialisation, to be trained")
            continue
        if len(mine) != len(theirs):
            _count_error(path, kind, mine, theirs)
        for n, (t, s) in enumerate(zip(mine, theirs)):
            arrays = list(s.arrays)
            if kind == "FC" and chw and t.flatten_shape and len(t.flatten_shape) > 1 and \
                    arrays[0].shape == t.shapes[0]:
                arrays[0] = _chw_rows(arrays[0], t.flatten_shape)
            if kind == "CONV" and order == "bgr" and n == 0:
                arrays[0] = arrays[0][..., ::-1, :]  # the source took BGR; ours takes RGB
            want, got = list(t.shapes), [tuple(a.shape) for a in arrays]
            if want == got:
                plan.append((t.name, tuple(arrays)))
            elif t.name == last_fc and len(want) == len(got) and want[0][:-1] == got[0][:-1]:
                reinit.append(t.name)
                notes.append(f"note: {t.name} has {want[0][-1]} classes and {s.name} in "
                             f"{path} {got[0][-1]}: the classifier keeps its fresh "
                             "initialisation, to be trained; every other layer takes the "
                             "file's weights")
            else:
                raise ArtifactError(path, f"its weights do not fit this net: our {kind} "
                                    f"layer {t.name} has weights {', '.join(map(_shape, want))}"
                                    f" but the source's layer {s.name} (its {kind} layer "
                                    f"{n + 1}) has {', '.join(map(_shape, got))} (in Keras's "
                                    f"layout); {t.name} is the first layer that failed. "
                                    "Layers are matched in order, one kind at a time: check "
                                    "that the blueprint and the file describe the same net")
    return Plan(path, tuple(plan), tuple(reinit), tuple(notes))


def load_into(model, compiled, say=None, plan: Plan | None = None) -> Loaded | None:
    """Fill ``model`` (built from ``compiled``) from its blueprint's ``weights.from``; nothing
    when it has none. ``plan`` is ``match(compiled)`` when the caller has it already; its
    notes go to ``say`` (stderr by default). Nothing changes unless every layer fits."""
    start = time.perf_counter()
    plan = plan or match(compiled)
    if plan is None:
        return None
    for note in plan.notes:
        (say or (lambda line: print(line, file=sys.stderr)))(note)
    for name, arrays in plan.layers:
        model.get_layer(name).set_weights(list(arrays))
    return Loaded(plan.path, len(plan.layers), plan.reinitialised, time.perf_counter() - start)


def _count_error(path: str, kind: str, mine, theirs) -> None:
    n = min(len(mine), len(theirs))
    first = f"our {mine[n].name}" if n < len(mine) else f"the source's {theirs[n].name}"
    raise ArtifactError(path, f"its weights do not fit this net: this net has {len(mine)} "
                        f"{kind} layers with weights and the file {len(theirs)}; {first} is "
                        f"the first {kind} layer without a partner (layers are matched in "
                        "order, one kind at a time)")
