"""A trained run, opened for explaining: its model, preprocessing and inputs, and the layers
the figures probe (each stage's output, the last convolution). Loads TensorFlow."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnbp.builder import ir
from cnnbp.contract import records
from cnnbp.contract.errors import ArtifactError, UsageError
from cnnbp.contract.preprocessing import Preprocessing
from cnnbp.contract.rundir import RunDir


@dataclass
class Context:
    """What every figure needs: the run's net, model, preprocessing and inputs."""

    analysis: object
    model: object
    prep: Preprocessing
    x: np.ndarray            # the inputs to explain, normalised
    names: list[str]         # their captions
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    held_out: tuple | None = None  # (last stage's maps, probabilities) for x_test, once

    @property
    def one_d(self) -> bool:
        """Whether the net takes 1-D signals (curves instead of images)."""
        return self.analysis.network.spatial_rank == 1

    def display(self, x: np.ndarray) -> np.ndarray:
        """A normalised input → 0..1 for showing (per-input min-max, channels kept)."""
        raw = x * np.float32(self.prep.std) + np.float32(self.prep.mean)
        lo, hi = raw.min(), raw.max()
        return (raw - lo) / (hi - lo) if hi > lo else raw * 0


def load(run_path, images=(), samples: int = 4) -> Context:
    """Open a run's model and pick the inputs: ``images`` files, else held-out rows."""
    from cnnbp.builder import load_resolved
    from cnnbp.builder.tf_env import import_tensorflow
    run = RunDir(run_path)
    if run.status() != "run" or not (run / "model.keras").is_file():
        raise ArtifactError(run.path, "is not a finished run directory (no state/state.json or "
                                      "model.keras); give the folder `cnnbp train -o` wrote")
    compiled = load_resolved(run.path)
    prep = records.read(Preprocessing, run / "preprocess.json", "preprocessing record")
    import_tensorflow()
    import keras

    from cnnbp.builder import keras_layers  # noqa: F401  (registers the custom layers)
    model = keras.models.load_model(run / "model.keras", safe_mode=True)
    held = run.read_samples(prep.input_shape)
    x_test, y_test = (held[0], held[1]) if held else (None, None)
    if images:
        x = np.concatenate([_read_input(prep, Path(p)) for p in images])
        names = [Path(p).name for p in images]
    elif x_test is not None:
        x = x_test[:samples]
        names = [f"test row {i} ({prep.class_names[y]})" for i, y in enumerate(y_test[:samples])]
    else:
        raise UsageError(f"{run.path} has no samples.npz (a run from an older cnnbp): give "
                         "input files to explain, e.g. `cnnbp explain RUN digit.png`")
    return Context(compiled.analysis, model, prep, x, names, x_test, y_test)


def _read_input(prep: Preprocessing, path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npy":
            raw = np.load(path, allow_pickle=False).astype("float32")
            return prep.apply(raw.reshape(prep.input_shape))[None]
        if not prep.takes_images:
            raise UsageError(f"{path}: this net reads {prep.domain}s of shape "
                             f"{prep.input_shape}; give .npy files")
        return prep.from_image_bytes(path.read_bytes())
    except UsageError:
        raise
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot be read as an input of shape {prep.input_shape} "
                         f"({type(exc).__name__}: {exc})") from None


# -- which layers --------------------------------------------------------------------------------
def stage_outputs(analysis) -> list[str]:
    """The last spatial layer of every stage (``stage2_pool``, or its last activation)."""
    last: dict[str, str] = {}
    for layer, s in zip(analysis.network.layers, analysis.layers):
        # dropout is the identity at inference: its stage ends at what it follows
        if len(s.output_shape) > 1 and s.name.startswith("stage") \
                and not isinstance(layer, ir.Dropout):
            last[s.name.split("_")[0]] = s.name
    return list(last.values())


def last_conv_output(analysis) -> str:
    """Grad-CAM's layer: what the last convolution feeds on (after its activation), before any
    pooling."""
    net = analysis.network
    index = max(i for i, layer in enumerate(net.layers) if isinstance(layer, ir.Conv))
    name = net.layers[index].name
    for layer in net.layers[index + 1:]:
        if not isinstance(layer, (ir.Activation, ir.BatchNorm, ir.LRN)):
            break
        name = layer.name
    return name


def call(model, x: np.ndarray, batch: int = 64) -> list[np.ndarray]:
    """The model's outputs for ``x`` in batches; called eagerly, since ``predict`` would trace a
    new function for every probe model and TensorFlow warns about each."""
    parts = []
    for i in range(0, len(x), batch):
        out = model(x[i:i + batch], training=False)
        parts.append([np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])])
    return [np.concatenate(column) for column in zip(*parts)]


def held_out(ctx: Context) -> tuple[np.ndarray | None, np.ndarray]:
    """The last stage's maps (None for a net of FC layers) and the class probabilities of the
    held-out rows, from one pass: two figures need them, and the pass is most of their cost."""
    if ctx.held_out is None:
        import keras
        stages = stage_outputs(ctx.analysis)
        maps = [ctx.model.get_layer(stages[-1]).output] if stages else []
        found = call(keras.Model(ctx.model.input, [*maps, ctx.model.output]), ctx.x_test)
        ctx.held_out = (found[0] if stages else None, found[-1])
    return ctx.held_out


def outputs(ctx: Context, names: list[str], x: np.ndarray) -> list[np.ndarray]:
    """The outputs of the named layers for ``x``, through one probe model."""
    import keras
    probe = keras.Model(ctx.model.input, [ctx.model.get_layer(n).output for n in names])
    return call(probe, x)
