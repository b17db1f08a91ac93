"""A deployment bundle as files: its ``validation.json`` (``ParityReport``), its labels, its
preprocessing, and the metadata stored inside ``model.onnx``.

    model.onnx  pixels.onnx  blueprint.yaml  labels.txt  preprocess.json  validation.json  README.md

``pixels.onnx`` is ``model.onnx`` with the preprocessing in the graph (input ``pixels``: the
source's raw values in ``Preprocessing.raw_dtype``); bundles written before it existed lack it.

Serving also reads Triton model folders (``config.pbtxt``, ``labels.txt``, ``1/model.onnx``),
which carry the preprocessing only in the ONNX metadata; ``served`` reads both the same way.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from . import records
from .errors import ArtifactError
from .labels import read_labels
from .preprocessing import Preprocessing

MODEL = "model.onnx"
PIXELS_MODEL = "pixels.onnx"
REPORT = "validation.json"
PREPROCESS = "preprocess.json"
LABELS = "labels.txt"


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class ParityCase(_Strict):
    """One parity case: a kind of input at one batch size, and how closely the outputs agreed."""

    inputs: Literal["random", "held-out"]
    batch: int = Field(ge=1)
    max_abs: float
    max_rel: float
    top1_agreement: float
    passed: bool


class VariantResult(_Strict):
    """One optimized/fp16/int8 copy, judged like the main model; kept only if it passed."""

    passed: bool
    kept: bool = True
    file: str | None = None
    error: str | None = None
    atol: float | None = None
    min_top1_agreement: float | None = None
    max_abs: float | None = None
    top1_agreement: float | None = None
    test_accuracy: float | None = None
    fp32_test_accuracy: float | None = None
    accuracy_change_points: float | None = None
    note: str | None = None  # what a figure was measured on, where the bar is not parity

    def __str__(self) -> str:
        """kept or dropped (why), and the figures it was judged on."""
        extra = f", accuracy change {self.accuracy_change_points:+.2f} points" \
            if self.accuracy_change_points is not None else ""
        if self.note:  # measured against training's resize, not held to a bar
            extra += f", top-1 agreement {self.top1_agreement:.4f} on sample photos"
        state = "kept" if self.kept else f"dropped ({self.error or 'failed its bar'})"
        return state + (f", max |diff| {self.max_abs:.2g}{extra}"
                        if self.max_abs is not None else "")


class DivergingLayer(_Strict):
    """The first layer whose ONNX output differs from Keras's by more than the bar."""

    layer: str
    onnx_tensor: str
    max_abs: float


class PixelsParity(_Strict):
    """``pixels.onnx`` on raw rows against Keras on a normalisation made apart from the graph's
    constants (the stored held-out rows, or ``Preprocessing.apply``)."""

    file: str
    input_dtype: Literal["uint8", "float32"]
    passed: bool  # max_abs <= atol and every case's top-1 agreement 100%
    atol: float = Field(ge=0)
    max_abs: float
    top1_agreement: float
    cases: list[ParityCase]

    def __str__(self) -> str:
        return (f"pixels.onnx (raw {self.input_dtype} input): max |diff| vs Keras "
                f"{self.max_abs:.2g}, top-1 agreement {self.top1_agreement:.4f}")


class ParityReport(records.Record):
    """``validation.json``: ONNX Runtime against Keras on the same inputs, and what was shipped."""

    model_config = ConfigDict(frozen=True)  # with Record's strict, extra="forbid"

    passed: bool
    atol: float = Field(ge=0)
    min_top1_agreement: float
    cases: list[ParityCase]
    max_abs: float
    top1_agreement: float
    opset: int
    source: str
    weights_sha256: str
    keras_untouched: bool
    providers: list[str]
    max_batch: int = Field(ge=1)
    input_shape: list[int]
    classes: int = Field(ge=1)
    variants: dict[str, VariantResult] = {}
    test_accuracy: float | None = None
    first_diverging_layer: DivergingLayer | None = None  # set only when parity failed
    pixels: PixelsParity | None = None  # bundles from before pixels.onnx lack it

    def __str__(self) -> str:
        """What ``cnnbp export`` prints: the parity line, pixels.onnx's, one per variant."""
        lines = [f"ONNX opset {self.opset}, max |diff| vs Keras {self.max_abs:.2g} (bar "
                 f"{self.atol:g}), top-1 agreement {self.top1_agreement:.4f} over "
                 f"{len(self.cases)} checks"]
        if self.pixels:
            lines.append(f"  {self.pixels}")
        lines += [f"  variant {name}: {v}" for name, v in self.variants.items()]
        return "\n".join(lines)


def metadata(prep: Preprocessing, **fields) -> dict[str, str]:
    """The key/value strings stored in ``model.onnx``'s ``metadata_props``."""
    props = {"class_names": json.dumps(prep.class_names, ensure_ascii=False),
             "preprocess": json.dumps(prep.to_json(), ensure_ascii=False)}
    props |= {k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
              for k, v in fields.items()}
    return props


def served(props: dict[str, str], path: str | Path, input_shape: list[int],
           classes: int) -> Preprocessing:
    """The preprocessing a server applies to ``model.onnx`` at ``path``, from its metadata.

    A model without cnnbp metadata (exported elsewhere) gets identity preprocessing and
    numbered classes; metadata that disagrees with the graph is refused.
    """
    if "preprocess" not in props:
        return Preprocessing.identity(input_shape, classes)
    try:
        doc = json.loads(props["preprocess"])
    except ValueError as exc:
        raise ArtifactError(path, f"the model's preprocess metadata is not JSON ({exc})") \
            from None
    if isinstance(doc, dict) and "class_names" not in doc and "class_names" in props:
        doc["class_names"] = json.loads(props["class_names"])  # written before they were joined
    prep = records.parse(Preprocessing, doc, path, "model's preprocess metadata")
    if prep.input_shape != list(input_shape) or len(prep.class_names) != classes:
        raise ArtifactError(path, f"the model's metadata describes input {prep.input_shape} and "
                                  f"{len(prep.class_names)} classes, but its graph takes "
                                  f"{list(input_shape)} and gives {classes}")
    return prep


class Bundle:
    """The folder ``cnnbp export -o`` wrote."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / MODEL).is_file():
            raise ArtifactError(self.path, f"is not a bundle (no {MODEL}); give the folder that "
                                           "`cnnbp export -o` wrote")

    @property
    def model(self) -> Path:
        """The path of the bundle's ``model.onnx``."""
        return self.path / MODEL

    def report(self) -> ParityReport:
        """The validated ``validation.json``; a damaged or foreign file is an ``ArtifactError``."""
        return records.read(ParityReport, self.path / REPORT, "validation report")

    def preprocessing(self) -> Preprocessing:
        """The validated ``preprocess.json``, its class names checked against ``labels.txt``."""
        prep = records.read(Preprocessing, self.path / PREPROCESS, "preprocessing record")
        labels = read_labels(self.path / LABELS)
        if labels != prep.class_names:
            raise ArtifactError(self.path / LABELS, f"lists {len(labels)} classes that differ "
                                                    f"from the {len(prep.class_names)} of "
                                                    f"{PREPROCESS}: the files are from different "
                                                    "exports")
        return prep
