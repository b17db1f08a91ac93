"""A written bundle → its checks re-run: the test vectors, ``pixels.onnx`` against
``model.onnx`` and the preprocessing record, and full parity when the source model still exists
(``cnnbp validate``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnbp.contract.bundle import Bundle
from cnnbp.contract.errors import ArtifactError

from . import parity, pixels
from .onnx_export import INPUT, weights_sha256


def validate_bundle(folder: str | Path, atol: float | None = None) -> dict:
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
    vectors = {}
    for name in ("input_0.pb", "output_0.pb"):
        path = folder / "test_data_set_0" / name
        try:
            vectors[name] = numpy_helper.to_array(onnx.load_tensor(str(path)))
        except Exception as exc:
            raise ArtifactError(path, f"the test vector cannot be read ({type(exc).__name__}: "
                                      f"{_first_line(exc)})") from None
    x, y = vectors["input_0.pb"], vectors["output_0.pb"]
    try:
        got = parity.session(str(model_path)).run(None, {INPUT: x})[0]
        vectors = parity.compare(y, got)
    except Exception as exc:  # a vector of the wrong shape or type for the model
        raise ArtifactError(folder / "test_data_set_0", f"the test vectors do not fit the model "
                                                        f"({type(exc).__name__}: "
                                                        f"{_first_line(exc)})") from None
    report = {"test_vectors": vectors | {"passed": vectors["max_abs"] <= atol},
              "weights_sha256": meta.get("weights_sha256")}
    source = Path(meta.get("source", ""))
    if meta.get("source") and source.is_file():
        import keras
        import cnnbp.builder.keras_layers  # noqa: F401
        try:
            model = keras.models.load_model(source, safe_mode=True)
        except Exception as exc:
            raise ArtifactError(source, f"the bundle's source model cannot be loaded "
                                        f"({type(exc).__name__}: {_first_line(exc)})") from None
        report["source_unchanged"] = weights_sha256(model) == meta.get("weights_sha256")
        report["parity"] = parity.check(model, proto, None, (1, 7, saved.max_batch), atol)
    else:
        model = None
        report["parity"] = None
        report["note"] = f"source model {source} not found: checked the test vectors only"
    report["pixels"] = _validate_pixels(bundle, x, atol, model, saved.max_batch,
                                        saved.pixels is not None)
    report["passed"] = report["test_vectors"]["passed"] and \
        (report["parity"] is None or (report["parity"]["passed"] and report["source_unchanged"])) \
        and (report["pixels"] is None or report["pixels"]["passed"])
    return report


def _validate_pixels(bundle: Bundle, x: np.ndarray, atol: float, model,
                     max_batch: int, recorded: bool) -> dict | None:
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
        found = {"vectors": pixels.against_model(str(path), str(bundle.model), prep, x)}
    except Exception as exc:  # protobuf, checker, or a graph whose input is not the record's
        raise ArtifactError(path, f"is not a valid raw-input model for this bundle "
                                  f"({type(exc).__name__}: {_first_line(exc)})") from None
    v = found["vectors"]
    found["passed"] = v["max_abs"] <= atol and v["top1_agreement"] == 1.0 and \
        v["label_index_matches"]
    if model is not None:
        found["parity"] = pixels.check(model, str(path), prep, None, (1, 7, max_batch), atol)
        found["passed"] = found["passed"] and found["parity"]["passed"]
    found["max_abs"] = max(v["max_abs"], found.get("parity", {}).get("max_abs", 0.0))
    return found



def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else "no detail"
