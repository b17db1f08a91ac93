"""A written bundle → its checks re-run: the test vectors, ``pixels.onnx`` against
``model.onnx`` and the preprocessing record, and full parity when the source model still exists
(``cnnbp validate``)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnbp.contract.bundle import Bundle, PixelsParity
from cnnbp.contract.errors import ArtifactError

from . import parity, pixels
from .onnx_export import INPUT, weights_sha256


@dataclass(frozen=True)
class VectorsCheck:
    """``model.onnx`` in ONNX Runtime against the stored ``test_data_set_0`` output."""

    agreement: parity.Agreement
    passed: bool  # max_abs <= atol


@dataclass(frozen=True)
class PixelsCheck:
    """``pixels.onnx`` against ``model.onnx`` on the test vector's raw form, and against the
    source model when it still exists."""

    vectors: pixels.RawAgreement
    parity: PixelsParity | None
    passed: bool
    max_abs: float  # the larger of the two comparisons'


@dataclass(frozen=True)
class Validation:
    """What ``cnnbp validate`` found in a bundle; ``parity`` and ``source_unchanged`` are None
    when the source model is gone (``note`` says so), ``pixels`` None for a bundle made before
    pixels.onnx existed."""

    test_vectors: VectorsCheck
    weights_sha256: str | None
    parity: parity.ParityResult | None
    source_unchanged: bool | None
    note: str | None
    pixels: PixelsCheck | None
    passed: bool

    def __str__(self) -> str:
        """One line: each check's figures, then passed or FAILED."""
        source = (f"parity vs source model max |diff| {self.parity.max_abs:.2g}, top-1 "
                  f"agreement {self.parity.top1_agreement:.4f}, source weights "
                  f"{'unchanged' if self.source_unchanged else 'CHANGED'}"
                  if self.parity else self.note)
        raw = f"pixels.onnx max |diff| {self.pixels.max_abs:.2g}" if self.pixels else \
            "no pixels.onnx (a bundle from before it existed)"
        return (f"test vectors max |diff| {self.test_vectors.agreement.max_abs:.2g}; {source}; "
                f"{raw} — {'passed' if self.passed else 'FAILED'}")


def validate_bundle(folder: str | Path, atol: float | None = None) -> Validation:
    """Re-run the bundle's checks: test vectors, metadata, and full parity if the source exists.

    A bundle whose files are missing or damaged is an ``ArtifactError`` naming the file.
    """
    import onnx
    from onnx import numpy_helper
    bundle = Bundle(folder)
    folder = bundle.path
    saved = bundle.report()
    atol = atol if atol is not None else saved.atol
    model_path = folder / "model.onnx"
    try:
        proto = onnx.load(str(model_path))
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:  # protobuf DecodeError, checker and shape-inference errors
        raise ArtifactError(model_path, f"is not a valid ONNX model ({type(exc).__name__}: "
                                        f"{_first_line(exc)}); the file is damaged") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    tensors = {}
    for name in ("input_0.pb", "output_0.pb"):
        path = folder / "test_data_set_0" / name
        try:
            tensors[name] = numpy_helper.to_array(onnx.load_tensor(str(path)))
        except Exception as exc:
            raise ArtifactError(path, f"the test vector cannot be read ({type(exc).__name__}: "
                                      f"{_first_line(exc)})") from None
    x, y = tensors["input_0.pb"], tensors["output_0.pb"]
    try:
        got = parity.session(str(model_path)).run(None, {INPUT: x})[0]
        agreement = parity.compare(y, got)
    except Exception as exc:  # a vector of the wrong shape or type for the model
        raise ArtifactError(folder / "test_data_set_0", f"the test vectors do not fit the model "
                                                        f"({type(exc).__name__}: "
                                                        f"{_first_line(exc)})") from None
    tested = VectorsCheck(agreement, agreement.max_abs <= atol)
    sha = meta.get("weights_sha256")
    source = Path(meta.get("source", ""))
    found, unchanged, note, model = None, None, None, None
    if meta.get("source") and source.is_file():
        import keras

        import cnnbp.builder.keras_layers  # noqa: F401  (registers LRN and padding layers)
        try:
            model = keras.models.load_model(source, safe_mode=True)
        except Exception as exc:
            raise ArtifactError(source, f"the bundle's source model cannot be loaded "
                                        f"({type(exc).__name__}: {_first_line(exc)})") from None
        unchanged = weights_sha256(model) == sha
        found = parity.measure(model, proto, None, (1, 7, saved.max_batch), atol)
    else:
        note = f"source model {source} not found: checked the test vectors only"
    raw = _validate_pixels(bundle, x, atol, model, saved.max_batch, saved.pixels is not None)
    passed = tested.passed and (found is None or (found.passed and unchanged)) \
        and (raw is None or raw.passed)
    return Validation(tested, sha, found, unchanged, note, raw, bool(passed))


def _validate_pixels(bundle: Bundle, x: np.ndarray, atol: float, model,
                     max_batch: int, recorded: bool) -> PixelsCheck | None:
    """pixels.onnx against model.onnx on the raw form of the test vector, and against the
    source model when it exists; None for a bundle made before pixels.onnx existed (whose
    validation.json has no ``pixels`` result)."""
    import onnx
    path = bundle.path / pixels.FILE
    if not path.is_file():
        if recorded:
            raise ArtifactError(path, "is missing, but the bundle's validation.json records "
                                      "its parity result: the bundle is incomplete; export it "
                                      "again (cnnbp export RUN -o FOLDER)")
        return None
    prep = bundle.preprocessing()
    try:
        onnx.checker.check_model(str(path), full_check=True)
        vectors = pixels.against_model(str(path), str(bundle.model), prep, x)
    except Exception as exc:  # protobuf, checker, or a graph whose input is not the record's
        raise ArtifactError(path, f"is not a valid raw-input model for this bundle "
                                  f"({type(exc).__name__}: {_first_line(exc)})") from None
    v = vectors.agreement
    passed = v.max_abs <= atol and v.top1_agreement == 1.0 and vectors.label_index_matches
    found = None
    if model is not None:
        found = pixels.measure(model, str(path), prep, None, (1, 7, max_batch), atol)
        passed = passed and found.passed
    return PixelsCheck(vectors, found, passed, max(v.max_abs, found.max_abs if found else 0.0))


def _first_line(exc: Exception) -> str:
    """An exception's first line, at most 200 characters, for a one-paragraph error."""
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else "no detail"
