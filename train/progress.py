"""What ``cnnbp train`` shows while it works: a bar within each epoch on a terminal (steps,
images/s, time left), the per-epoch lines printed without breaking it, and a line for the test
evaluation and report at the end.

Off a terminal (a CI log, a pipe) there is no bar: the per-epoch lines are the progress, as a
stream of ``\\r`` redraws would only fill the log. ``--quiet`` turns all of it off.
"""
from __future__ import annotations

import sys
import time

REDRAW_SECONDS = 0.1  # tqdm's own shortest interval between redraws


def on_terminal() -> bool:
    """Whether stderr, where the bar is drawn, is a terminal."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without a descriptor, closed
        return False


def width() -> dict:
    """tqdm's size arguments: the terminal's, followed as it is resized; or a fixed size where
    the terminal reports none (a pty made without one, as some CI runners make): tqdm would
    draw nothing at 0 columns, and hides a bar below the last of 0 rows (re-reading the
    size, so a fixed row count only holds without ``dynamic_ncols``)."""
    import os
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (AttributeError, ValueError, OSError):
        size = os.terminal_size((0, 0))
    if size.columns > 0 and size.lines > 0:
        return {"dynamic_ncols": True}
    return {"ncols": size.columns or 80, "nrows": size.lines or 24}


def say(line: str) -> None:
    """Print one line on stdout; a bar on screen is lifted first and redrawn below it (the
    epoch lines come from the checkpoint thread while the next epoch's bar runs)."""
    from tqdm import tqdm
    tqdm.write(line, file=sys.stdout)
    sys.stdout.flush()


def EpochBar(train_size: int, batch_size: int, epochs: int):
    """A Keras callback: on a terminal, a bar over each epoch's steps, with the time the
    epoch and (from the second epoch) the run have left.

    Built lazily (Keras loads with the backend), as the run-directory callback is.
    """
    import keras
    from tqdm import tqdm

    steps = max(1, -(-train_size // batch_size))
    drawn = on_terminal()

    class _EpochBar(keras.callbacks.Callback):
        bar = None
        shown = 0.0  # when the bar was last redrawn
        last: float | None = None  # the previous epoch's seconds, validation included

        def on_epoch_begin(self, epoch, logs=None):
            self.started, self.epoch = time.perf_counter(), epoch
            if drawn:
                self.bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{epochs}", unit="step",
                                leave=False, file=sys.stderr, **width(),
                                bar_format="{desc} {bar} {n_fmt}/{total_fmt} steps "
                                           "[{elapsed}<{remaining}{postfix}]")

        def on_train_batch_end(self, batch, logs=None):
            if self.bar is None:
                return
            # with steps_per_execution > 1 Keras calls this once per chunk, ``batch`` its last
            done = min(batch + 1, steps)
            now = time.perf_counter()
            if now - self.shown < REDRAW_SECONDS and done < steps:
                return  # reading the loss waits for the device: not on every step
            self.shown, seconds = now, now - self.started
            loss = (logs or {}).get("loss")
            figures = []  # most wanted first: a narrow terminal cuts the end of the line
            if self.last is not None and self.epoch + 1 < epochs:  # the run's, at this pace
                left = (steps - done) * seconds / done + (epochs - self.epoch - 1) * self.last
                figures.append(f"run about {tqdm.format_interval(left)} left")
            figures += [f"{done * batch_size / seconds:,.0f} images/s"] if seconds > 0 else []
            figures += [f"loss {float(loss):.4f}"] if loss is not None else []
            self.bar.set_postfix_str(", ".join(figures), refresh=False)  # tqdm adds ", "
            self.bar.update(done - self.bar.n)

        def on_test_begin(self, logs=None):  # fit's validation pass, after the last step
            if self.bar is not None:
                self.bar.set_postfix_str("validating")

        def on_epoch_end(self, epoch, logs=None):
            self.last = time.perf_counter() - self.started
            self._close()

        def on_train_end(self, logs=None):
            self._close()

        def _close(self):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return _EpochBar()
