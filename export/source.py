"""A run directory or a ``.keras`` file → the ``Source`` an export reads: the Keras model, its
preprocessing and class names, the run's resolved blueprint (compiled, and its text to copy
into the bundle) and the held-out rows for parity and int8 calibration.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnbp.builder import Compiled, load_resolved
from cnnbp.contract import records
from cnnbp.contract.errors import ArtifactError
from cnnbp.contract.preprocessing import Preprocessing
from cnnbp.contract.rundir import RunDir


@dataclass
class Source:
    """What an export reads; ``run``, ``compiled`` and ``blueprint_text`` are None for a bare
    ``.keras`` file, the arrays None for a run made before ``samples.npz`` existed."""

    model: object
    path: Path
    run: Path | None
    preprocess: Preprocessing
    class_names: list[str]
    blueprint_text: str | None  # the run's, copied into the bundle (less weights.from)
    compiled: Compiled | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    x_calibration: np.ndarray | None = None


def locate_source(ref: str | Path) -> tuple[Path, Path | None, Path]:
    """``ref`` as (path, run directory or None, model file), or an ``ArtifactError``; it needs
    no TensorFlow, so the CLI refuses a wrong path before starting it."""
    path = Path(ref)
    run = path if (path / "model.keras").is_file() else None
    model_file = path / "model.keras" if run else path
    if not path.exists():
        raise ArtifactError(ref, "does not exist; give a run directory (runs/NAME) or a saved "
                                 ".keras model")
    if not model_file.is_file() or model_file.suffix != ".keras":
        raise ArtifactError(ref, "is neither a finished run directory (with model.keras) nor a "
                                 "saved .keras model")
    return path, run, model_file


def load_source(ref: str | Path) -> Source:
    """A run directory (preferred: it brings data for parity and int8) or a .keras file."""
    import keras

    import cnnbp.builder.keras_layers  # noqa: F401  (registers LRN and padding layers)
    path, run, model_file = locate_source(ref)
    try:
        model = keras.models.load_model(model_file, safe_mode=True)
    except Exception as exc:  # Keras raises many kinds for a damaged or foreign archive
        raise ArtifactError(model_file, f"Keras cannot load the model ({type(exc).__name__}: "
                                        f"{str(exc).splitlines()[0] if str(exc) else ''}); "
                                        "the file is damaged or not a Keras 3 model") from None
    classes = int(model.output_shape[-1])
    shape = [int(d) for d in model.input_shape[1:]]
    if run is None:  # a bare model: identity preprocessing, numbered classes
        prep = Preprocessing.identity(shape, classes)
        return Source(model, model_file, None, prep, prep.class_names, None)
    prep = records.read(Preprocessing, run / "preprocess.json", "preprocessing record")
    if prep.input_shape != shape or len(prep.class_names) != classes:
        raise ArtifactError(run / "preprocess.json", f"the preprocessing record is for input "
                                                     f"{prep.input_shape} and "
                                                     f"{len(prep.class_names)} classes, but "
                                                     f"model.keras takes {shape} and gives "
                                                     f"{classes}: the files are from "
                                                     "different runs")
    compiled = load_resolved(run)  # the one reader: refuses a missing or damaged blueprint
    # load_resolved has read it as UTF-8 already; the bundle gets the same bytes.
    blueprint = _shippable((run / "blueprint.yaml").read_text(encoding="utf-8"), compiled)
    src = Source(model, model_file, run, prep, prep.class_names, blueprint, compiled)
    RunDir(run).read_state()  # a run's state must be sound before its model is shipped
    samples = RunDir(run).read_samples(shape)
    if samples is not None:
        src.x_test, src.y_test, src.x_calibration = samples
    return src


def _shippable(text: str, compiled: Compiled) -> str:
    """The run's blueprint text for a bundle: byte for byte, except that ``weights.from`` (the
    absolute path of a file on the training machine, whose weights model.onnx now holds) is
    dropped and named by its file name in a comment. channel_order and normalize stay: the
    first is already in the model's first CONV, the second in preprocess.json."""
    weights = compiled.resolved.get("weights") or {}
    if "from" not in weights:
        return text
    import io

    from ruamel.yaml import YAML
    rest = {k: v for k, v in weights.items() if k != "from"}
    doc = {k: v for k, v in compiled.resolved.items() if k != "weights"}
    if rest:
        doc["weights"] = rest
    buf = io.StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = None  # as the run's own blueprint.yaml is written
    yaml.dump(doc, buf)
    return (f"# trained from the weights in {Path(weights['from']).name}; model.onnx holds "
            "them, the file is not shipped\n" + buf.getvalue())
