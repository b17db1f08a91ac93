"""A run directory or .keras file (read by ``export.source``) → a validated deployment bundle,
written atomically.

    model.onnx  pixels.onnx  blueprint.yaml  labels.txt  preprocess.json  validation.json
    README.md  report.html
    model.onnx.data                             (only for weights over 256 MiB; both models
                                                 read it)
    test_data_set_0/input_0.pb, output_0.pb     (ONNX model-zoo test vectors)
    variants/model.optimized.onnx, model.fp16.onnx, model.int8.onnx, pixels.anysize.onnx
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnbp.contract.atomic import atomic_path, write_text
from cnnbp.contract.bundle import ParityReport, PixelsParity, metadata
from cnnbp.contract.errors import RefusedError
from cnnbp.contract.labels import write_labels
from cnnbp.report.card import model_card

from . import anysize, destination, memory, parity, pixels, variants
from .onnx_export import DEFAULT_OPSET, INPUT, OUTPUT, save_checked, to_onnx, weights_sha256
from .source import Source, load_source


class ExportRefused(RefusedError):
    """The ONNX model does not compute what Keras computes; no bundle was written."""

    def __init__(self, message: str, report: ParityReport | None):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Exported:
    """A written bundle's parity report, and where ``--force`` moved what ``-o`` held before."""

    report: ParityReport
    moved_aside: Path | None  # where --force put what the output folder held before


def export_bundle(ref: str | Path, out: str | Path, opset: int = DEFAULT_OPSET,
                  max_batch: int = 64, atol: float = parity.FLOAT32_ATOL,
                  with_variants: bool = True, force: bool = False,
                  phase=lambda what: None) -> Exported:
    """Export, validate, and write the bundle; raise ExportRefused when parity fails.
    ``phase(what)`` is called as each phase starts (convert, parity, variants, write).

    ``out`` may be new, empty, or an earlier bundle (replaced atomically); a folder of other
    files is refused, or moved aside with ``force`` (the report says where).
    """
    import keras
    import onnx
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    moved_to = destination.prepare(out, [ref], force)
    src = load_source(ref)
    memory.ensure_fits(src.model, max_batch)
    before = weights_sha256(src.model)
    props = metadata(src.preprocess, blueprint=src.blueprint_text or "", weights_sha256=before,
                     versions={"tensorflow": tf.__version__, "keras": keras.__version__,
                               "tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__,
                               "onnxruntime": ort.__version__},
                     source=str(src.path.resolve()))
    with atomic_path(out, keep_old=moved_to) as tmp:
        tmp.mkdir(parents=True)
        model_path = tmp / "model.onnx"
        phase(f"converting to ONNX (opset {opset})")
        try:
            save_checked(to_onnx(src.model, opset, props), model_path)
        except Exception as exc:  # converter or checker: the model cannot be exported as is
            raise ExportRefused(f"{ref}: tf2onnx could not produce a valid ONNX model at opset "
                                f"{opset}: {str(exc).splitlines()[0]}; no bundle written",
                                None) from None
        phase(f"checking ONNX Runtime against Keras (batches of 1, 7 and {max_batch})")
        found = parity.measure(src.model, str(model_path), src.x_test, (1, 7, max_batch), atol)
        diverging = found.first_diverging_layer
        if not found.passed and found.worst_input is not None:
            diverging = parity.first_diverging_layer(src.model, onnx.load(str(model_path)),
                                                     found.worst_input, atol)
        report = ParityReport(passed=found.passed, atol=found.atol,
                              min_top1_agreement=found.min_top1_agreement,
                              cases=list(found.cases), max_abs=found.max_abs,
                              top1_agreement=found.top1_agreement,
                              first_diverging_layer=diverging, opset=opset,
                              source=str(src.path.resolve()), weights_sha256=before,
                              keras_untouched=weights_sha256(src.model) == before,
                              providers=["CPUExecutionProvider"], max_batch=max_batch,
                              input_shape=list(src.preprocess.input_shape),
                              classes=len(src.class_names))
        if not report.passed:
            where = report.first_diverging_layer
            raise ExportRefused(
                f"{ref}: ONNX Runtime disagrees with Keras: max |diff| {report.max_abs:.3g} (bar "
                f"{atol:g}), top-1 agreement {report.top1_agreement:.4f}"
                + (f"; first diverging layer {where.layer} (|diff| {where.max_abs:.3g})"
                   if where else "") + "; no bundle written", report)
        made: dict = {"pixels": _pixels_model(tmp, src, max_batch, atol, ref)}
        write_labels(tmp / "labels.txt", src.class_names)
        src.preprocess.write(tmp / "preprocess.json")
        if src.blueprint_text:
            write_text(tmp / "blueprint.yaml", src.blueprint_text)
        _test_vectors(tmp, src)
        if with_variants:
            phase("making and measuring the variants (optimized, fp16, int8)")
            made["variants"] = variants.make_all(tmp, src, max_batch)
            if anysize.offered(src.preprocess):  # never the default: a variant, measured
                made["variants"]["pixels_anysize"] = anysize.make(tmp, src.preprocess)
        phase("writing the bundle, its model card and report")
        if src.x_test is not None:
            made["test_accuracy"] = variants.accuracy(tmp / "model.onnx", src.x_test, src.y_test)
        report = report.model_copy(update=made)
        report.write(tmp / "validation.json")
        write_text(tmp / "README.md", model_card(Path(out).resolve().name, report,
                                                 src.preprocess, src.compiled, src.run))
    # After the rename: a report's title names the bundle's folder, not the temporary one.
    from cnnbp.report import write_bundle_report, write_run_report
    if src.blueprint_text:
        write_bundle_report(out)
    if src.run:
        write_run_report(src.run, out)  # the run's page gains this export's parity and variants
    return Exported(report, moved_to)


def _pixels_model(folder: Path, src: Source, max_batch: int, atol: float,
                  ref: str | Path) -> PixelsParity:
    """Write ``pixels.onnx`` (model.onnx with the preprocessing in front) and hold it to the
    same bar on raw rows; an ``ExportRefused`` when it misses."""
    import onnx
    target = folder / pixels.FILE
    try:
        # Weights kept in model.onnx.data (large models) stay there: pixels.onnx refers to the
        # same file, so they are neither loaded here nor stored twice.
        save_checked(pixels.build(onnx.load(str(folder / "model.onnx"), load_external_data=False),
                                  src.preprocess), target)
    except Exception as exc:  # the checker refusing the composed graph
        raise ExportRefused(f"{ref}: the raw-input model pixels.onnx is not a valid ONNX model "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0]}); no bundle "
                            "written", None) from None
    found = pixels.measure(src.model, str(target), src.preprocess, src.x_test,
                           (1, 7, max_batch), atol)
    if not found.passed:
        raise ExportRefused(f"{ref}: pixels.onnx on raw inputs disagrees with Keras on the "
                            f"training pipeline's normalisation of them: max |diff| "
                            f"{found.max_abs:.3g} (bar {atol:g}), top-1 agreement "
                            f"{found.top1_agreement:.4f}; no bundle written", None)
    return found


def _test_vectors(folder: Path, src: Source) -> None:
    """``test_data_set_0/``: one input and Keras's output, as ONNX model-zoo test vectors."""
    from onnx import numpy_helper
    x = parity.inputs_for("held-out" if src.x_test is not None else "random", 1,
                          tuple(src.model.input_shape[1:]), src.x_test)
    y = np.asarray(src.model(x, training=False))
    vectors = folder / "test_data_set_0"
    vectors.mkdir()
    (vectors / "input_0.pb").write_bytes(numpy_helper.from_array(x, INPUT).SerializeToString())
    (vectors / "output_0.pb").write_bytes(numpy_helper.from_array(y, OUTPUT).SerializeToString())
