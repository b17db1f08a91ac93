"""The run-directory callback both drivers train with: each epoch's history row, best weights,
early stopping, dropout reseeded from the epoch, and the epoch's commit on a writer thread.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import finetune
from .checkpoints import checkpoint_arrays, commit
from .session import Session

log = logging.getLogger(__name__)

MIN_DELTA = 1e-4  # a smaller fall in the watched loss does not count as an improvement


def layer_seeds(model) -> list:
    """(state variable, first seed) of each random layer's generator (dropout's): the state
    is (seed, draws so far), the model's variables beside its weights, never checkpointed."""
    import keras
    weights = {id(v) for v in model.weights}
    return [(v, int(keras.ops.convert_to_numpy(v)[0])) for v in model.variables
            if id(v) not in weights and v.name == "seed_generator_state"]


def reseed(seeds: list, epoch: int) -> None:
    """Start each generator of ``layer_seeds`` on a state made of its seed and ``epoch``, so
    what an epoch's dropout draws does not depend on how many steps ran before it in this
    process: a resumed process draws what the uninterrupted one did."""
    import keras
    for variable, seed in seeds:
        start = np.random.SeedSequence([seed & 0xFFFFFFFF, epoch]).generate_state(1)[0]
        variable.assign(np.array([start & 0x7FFFFFFF, 0],
                                 keras.backend.standardize_dtype(variable.dtype)))


def make_callback(session: Session, model, echo: bool = False, seeds: list | None = None):
    """The run-directory callback: epoch state, history, best weights, early stopping; with
    ``echo``, one line per epoch (Keras's bar counts steps in chunks of steps_per_execution,
    so it can show 48/41). ``seeds``: ``layer_seeds`` read before any epoch ran (a later
    fit of the same model, after an epoch reseeded its generators, passes the first's)."""
    import keras

    run, state = session.run, session.state
    t = session.compiled.network.training
    patience = t.early_stopping
    seeds = layer_seeds(model) if seeds is None else seeds

    class RunCallback(keras.callbacks.Callback):
        """Each epoch's checkpoint, then its state (the commit point), are written on one
        thread, in order, while the next epoch trains: a VGG-11 checkpoint (weights, Adam's
        two moments, best weights: 1.5-2 GB) took 6.5 s to write here, several GPU epochs.
        One commit is in flight at most; ``flush`` waits for it and raises its error."""

        def __init__(self):
            super().__init__()
            self.writer = ThreadPoolExecutor(1, thread_name_prefix="checkpoint")
            self.pending = None

        def flush(self):
            """Wait for the commit in flight, raising its error."""
            if self.pending is not None:
                self.pending.result()  # interrupted here (Ctrl-C), it is still pending
                self.pending = None

        def close(self):
            """The last commit, then the writer's thread let go."""
            try:
                self.flush()
            finally:
                self.writer.shutdown(wait=False)

        def on_train_end(self, logs=None):
            """The last epoch's commit is on disk before ``fit`` returns."""
            self.close()

        def on_epoch_begin(self, epoch, logs=None):
            """Draw the epoch's order, augmentation and dropout from the seed and ``epoch``."""
            self.started = time.perf_counter()
            # what this epoch draws, from the seed and the epoch alone (a resume draws alike)
            session.pipelines.start_epoch(epoch)
            reseed(seeds, epoch)
            # the rate the epoch starts training with; read at its end, a cosine schedule's
            # last epoch would show 0.0
            self.rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))

        def on_epoch_end(self, epoch, logs=None):
            """The epoch's history row, best weights and early stopping; its commit handed to
            the writer thread."""
            logs = {k: float(v) for k, v in (logs or {}).items()}
            row = {"epoch": epoch + 1, **logs, "learning_rate": self.rate,
                   "seconds": round(time.perf_counter() - self.started, 3)}
            watched = logs.get("val_loss", logs.get("loss"))
            weights = model.get_weights()  # host copies: training on does not change them
            if state.best is None or watched < state.best - MIN_DELTA:
                state.best, state.wait = watched, 0
                session.best_weights = weights
            else:
                state.wait += 1
            unfreezes = finetune.unfreezes_at(t, epoch)
            if unfreezes:  # unfreezing makes the loss jump: patience counts from here
                state.wait = 0
            self.flush()  # the previous epoch's commit, before this one's
            arrays = checkpoint_arrays(model, weights, session.best_weights)
            checkpoint = f"state/epoch-{epoch + 1}.npz"
            state.history.append(row)
            state.train_seconds += row["seconds"]
            state.samples_seen += session.pipelines.train_size
            state.checkpoint, state.epoch = checkpoint, epoch + 1
            if patience and state.wait >= patience:
                state.stopped_early = True
                model.stop_training = True
            line = None
            if echo:
                figures = ", ".join(f"{k} {v:.4f}" for k, v in logs.items())
                line = (f"epoch {epoch + 1}/{t.epochs}: "
                        f"{figures}, learning rate {self.rate:.3g}, {row['seconds']:.1f} s"
                        + (f" — {', '.join(t.freeze)} unfrozen" if unfreezes else "")
                        + (" — stopping early" if state.stopped_early else ""))
            self.pending = self.writer.submit(commit, run, checkpoint, arrays,
                                              state.model_copy(deep=True), line)

    return RunCallback()


def flush_beside(callback) -> None:
    """Let the last completed epoch's commit finish while another error is on its way out;
    a failure of the commit itself is logged, not raised over that error."""
    try:
        callback.close()
    except Exception as exc:  # noqa: BLE001  (the error being raised is the one to report)
        log.warning("the last epoch's checkpoint was not written: %s", exc)
