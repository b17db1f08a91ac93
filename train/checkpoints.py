"""One epoch's weights, optimizer state and best weights ⇄ ``RUN/state/epoch-N.npz``; the
commit that writes a checkpoint and then the state naming it, so a kill at any point leaves
a resumable run.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnbp.contract.errors import ArtifactError
from cnnbp.contract.rundir import RunDir, RunState

from .progress import say


def checkpoint_arrays(model, weights: list, best_weights: list | None) -> dict:
    """One epoch's checkpoint as named arrays: ``weights``, the optimizer's variables and the
    best weights, which are stored once when they are this epoch's (then ``best_is_w``)."""
    import keras
    arrays = {f"w{i}": w for i, w in enumerate(weights)}
    arrays.update({f"o{i}": keras.ops.convert_to_numpy(v)
                   for i, v in enumerate(model.optimizer.variables)})
    if best_weights is weights:
        arrays["best_is_w"] = np.array(True)
    else:
        arrays.update({f"b{i}": w for i, w in enumerate(best_weights or [])})
    return arrays


def write_checkpoint(run: RunDir, name: str, arrays: dict) -> None:
    """``arrays`` as ``RUN/name`` (an .npz), whole or not at all."""
    from cnnbp.contract.atomic import atomic_path
    with atomic_path(run.path / name) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def restore_state(path: Path, model) -> list | None:
    """Put the checkpoint ``path``'s weights and optimizer state back into ``model`` (see
    ``checkpoint_arrays``) and return its best weights (None: the weights are the best).

    A checkpoint that is missing, cut short, or not this net's is an ``ArtifactError``.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            pick = lambda prefix: [z[f"{prefix}{i}"] for i in range(
                sum(1 for k in z.files if k[0] == prefix and k[1:].isdigit()))]
            weights, optimizer, best = pick("w"), pick("o"), pick("b")
            if "best_is_w" in z.files:
                best = weights
    except FileNotFoundError:
        raise ArtifactError(path, "the checkpoint that state/state.json names is missing") \
            from None
    except Exception as exc:  # zipfile, pickle and format errors all mean a damaged file
        raise ArtifactError(path, f"the checkpoint cannot be read ({type(exc).__name__}: "
                                  f"{exc}); it is damaged") from None
    expected = [tuple(w.shape) for w in model.weights]
    for name, arrays in (("weights", weights), ("best weights", best or weights)):
        shapes = [tuple(a.shape) for a in arrays]
        if shapes != expected:
            i = next((i for i, (a, b) in enumerate(zip(shapes, expected)) if a != b), None)
            differ = f"{len(arrays)} arrays, the net has {len(expected)}" if i is None else \
                f"array {i} is {list(shapes[i])}, the net's is {list(expected[i])}"
            raise ArtifactError(path, f"the checkpoint's {name} do not fit this run's net "
                                      f"({differ}): it belongs to another run")
    model.set_weights(weights)
    model.optimizer.build(model.trainable_variables)
    if len(optimizer) != len(model.optimizer.variables) or any(
            tuple(v.shape) != a.shape for v, a in zip(model.optimizer.variables, optimizer)):
        raise ArtifactError(path, "the checkpoint's optimizer state does not fit this run's "
                                  "optimizer: it belongs to another run")
    for variable, value in zip(model.optimizer.variables, optimizer):
        variable.assign(value)
    return best or None


def commit(run: RunDir, checkpoint: str, arrays: dict, state: RunState,
            line: str | None) -> None:
    """One epoch's checkpoint, then the state naming it: resume starts from here. ``line``,
    the epoch's echo, is printed once it has been saved."""
    write_checkpoint(run, checkpoint, arrays)
    run.write_state(state)
    run.write_history(state.history)
    for stale in (run.path / "state").glob("epoch-*.npz"):  # a kill may have left some
        if stale.name != Path(checkpoint).name:
            stale.unlink(missing_ok=True)
    if line:
        try:
            say(line)
        except BrokenPipeError:  # the checkpoint is saved; the CLI meets the closed pipe next
            pass
