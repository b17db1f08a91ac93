"""The run directory: what a trained run leaves behind, each file written atomically.

    model.keras      the trained model (best weights when early stopping restored them)
    best.keras       the checkpoint with the lowest validation loss
    blueprint.yaml   the resolved blueprint, every override applied
    preprocess.json  input normalization, shape and class names needed at inference
    labels.txt       class names, one a line
    samples.npz      held-out rows with labels and calibration rows, already normalized: what
                     export checks parity and calibrates int8 on, without the data source
    history.csv      one row an epoch
    metrics.json     test loss/accuracy, per-class precision/recall, confusion matrix, speed
    curves.png, confusion.png
    state/           what --resume needs: epoch-N.npz (weights, optimizer with its step, and
                     best weights, or ``best_is_w`` when they are this epoch's) and state.json
                     (``RunState``), which names it and is written last. No random state: an
                     epoch's shuffle, augmentation and dropout are drawn from the blueprint's
                     seeds and the epoch's number, so a resumed run draws what it would
                     have drawn uninterrupted; .lock, held (flock) by the process training
                     the run, so a second --resume beside it is refused

A new run's fixed files and its first ``state.json`` are written into a temporary folder that
is renamed into place, so a run folder either holds a ``state.json`` or was never made.
"""
from __future__ import annotations

import csv
import io
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pydantic import field_validator, model_validator

from . import records
from .atomic import atomic_path, recover, write_text
from .errors import ArtifactError
from .labels import write_labels

STATE = "state"
LOCK = ".lock"  # in state/: held by the process training the run
SAMPLES = "samples.npz"
SAMPLE_ROWS, SAMPLE_BYTES = 512, 32 << 20  # per array: bounded whatever the data's size
CHECKPOINT = re.compile(r"^state/epoch-([1-9][0-9]*)\.npz$")
# What a run folder holds before its first epoch: the files written before state.json was,
# when a run is made in place (runs from before the folder was made atomically).
PRELUDE = {"blueprint.yaml", "labels.txt", "preprocess.json", SAMPLES, STATE}
# everything a run folder holds once training and `cnnbp explain` have written to it
RUN_ENTRIES = PRELUDE | {"history.csv", "metrics.json", "model.keras", "best.keras", "curves.png",
                         "confusion.png", "report.html", "explain", "tensorboard"}


class RunState(records.Record):
    """``state/state.json``: where a run stands, rewritten at the end of every epoch."""

    data: str                                   # the --data spec, to reload on resume
    data_source: str = ""                       # its description, for the report
    epoch: int = 0                              # completed epochs
    history: list[dict[str, int | float]] = []  # one row an epoch
    best: float | None = None                   # lowest watched loss so far
    wait: int = 0                               # epochs since it improved
    checkpoint: str | None = None               # state/epoch-N.npz of the last epoch
    train_seconds: float = 0.0
    samples_seen: int = 0
    stopped_early: bool = False
    normalization: str | None = None            # what mean/std were fitted on (runs since
                                                # streaming input; older runs lack it)

    @field_validator("epoch", "wait", "samples_seen")
    @classmethod
    def _not_negative(cls, v: int) -> int:
        if v < 0:
            raise ValueError("must be 0 or more")
        return v

    @field_validator("checkpoint")
    @classmethod
    def _inside_state(cls, v: str | None) -> str | None:
        # The path is joined to the run folder: only this one shape may be, so a state file
        # can never point the loader outside the run.
        if v is not None and not CHECKPOINT.match(v):
            raise ValueError(f"must be state/epoch-N.npz inside the run folder, not {v!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        if len(self.history) != self.epoch:
            raise ValueError(f"epoch is {self.epoch} but history has {len(self.history)} rows")
        if (self.checkpoint is None) != (self.epoch == 0):
            raise ValueError(f"after {self.epoch} epochs the checkpoint cannot be "
                             f"{self.checkpoint!r}")
        if self.checkpoint and int(CHECKPOINT.match(self.checkpoint)[1]) != self.epoch:
            raise ValueError(f"checkpoint {self.checkpoint} is not the one of epoch {self.epoch}")
        return self


class RunDir:
    """A run folder: its files by name, and its typed state."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def state_file(self) -> Path:
        """The path of ``state/state.json``."""
        return self.path / STATE / "state.json"

    def status(self) -> str:
        """``absent``, ``empty``, ``run`` (has a state), ``unstarted`` (only a run's first files,
        left by a kill before its first state was written) or ``foreign`` (other files)."""
        if not self.path.exists() and not self.path.is_symlink():
            return "absent"
        if not self.path.is_dir():
            return "foreign"
        if self.state_file.is_file():
            return "run"
        names = {p.name for p in self.path.iterdir()}
        if not names:
            return "empty"
        state_dir = self.path / STATE
        if names <= PRELUDE and (not state_dir.is_dir() or
                                 all(p.name.startswith(".") for p in state_dir.iterdir())):
            return "unstarted"
        return "foreign"

    def hold(self) -> int | None:
        """Take this run for the calling process until it closes the returned descriptor (or
        ends); another process training it is an ``ArtifactError`` naming its pid. A lock
        (``state/.lock``, flock) rather than a pid file, so a SIGKILL never leaves it taken."""
        try:
            import fcntl
        except ImportError:  # not POSIX: unguarded, as before
            return None
        fd = os.open(self.path / STATE / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise ArtifactError(self.path, f"is being trained by another cnnbp process (pid "
                                           f"{holder}); wait for it to end, or stop it and "
                                           "resume") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        return fd

    def read_state(self) -> RunState:
        """The validated state; a damaged or foreign file is an ``ArtifactError``."""
        return records.read(RunState, self.state_file, "run state")

    def write_state(self, state: RunState) -> None:
        """Write ``state/state.json`` atomically."""
        state.write(self.state_file)

    def checkpoint_file(self, state: RunState) -> Path:
        """The path of the checkpoint ``state`` names (kept inside the run by ``RunState``'s
        check)."""
        return self.path / state.checkpoint

    def write_blueprint(self, resolved: dict) -> None:
        """Write the resolved blueprint as ``blueprint.yaml`` atomically; its one reader is
        ``cnnbp.builder.load_resolved`` (contract cannot import the builder)."""
        from ruamel.yaml import YAML
        buf = io.StringIO()
        yaml = YAML(typ="safe", pure=True)
        yaml.default_flow_style = None
        yaml.dump(resolved, buf)
        write_text(self / "blueprint.yaml", buf.getvalue())

    def write_labels(self, names) -> None:
        """Write ``labels.txt``: one class name a line, in output order."""
        write_labels(self / "labels.txt", names)

    def write_history(self, rows: list[dict]) -> None:
        """Write ``history.csv``, one row per epoch (nothing when there is no epoch yet)."""
        if not rows:
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text(self / "history.csv", buf.getvalue())

    def write_samples(self, x_test, y_test, x_calibration) -> None:
        """Keep a bounded, already-normalized sample of held-out and training rows."""
        import numpy as np
        rows = max(1, min(SAMPLE_ROWS, SAMPLE_BYTES // max(1, x_test[:1].nbytes)))
        with atomic_path(self / SAMPLES) as tmp, open(tmp, "wb") as f:
            np.savez(f, x_test=x_test[:rows], y_test=y_test[:rows],
                     x_calibration=x_calibration[:rows])

    def read_samples(self, input_shape):
        """``(x_test, y_test, x_calibration)`` from ``samples.npz``; ``None`` for runs made
        before it existed. A damaged file or one of another shape is an ``ArtifactError``."""
        import numpy as np
        path = self / SAMPLES
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                x, y, cal = z["x_test"], z["y_test"], z["x_calibration"]
        except Exception as exc:  # zipfile, format and missing-key errors: a damaged file
            raise ArtifactError(path, f"the held-out samples cannot be read "
                                      f"({type(exc).__name__}: {exc})") from None
        shape = tuple(input_shape)
        if x.shape[1:] != shape or cal.shape[1:] != shape or y.shape != x.shape[:1] \
                or x.dtype != np.float32:
            raise ArtifactError(path, f"the held-out samples do not fit the net's input "
                                      f"{list(shape)} (x_test {list(x.shape)}, y_test "
                                      f"{list(y.shape)}): they belong to another run")
        return x, y.astype("int64"), cal

    def save_model(self, model, name: str) -> None:
        """Save ``model`` (a Keras model) as ``name`` in the run, atomically."""
        with atomic_path(self.path / name, suffix=".keras") as tmp:
            model.save(tmp)


def check_new(run: RunDir, replace: bool = False) -> None:
    """Refuse a ``-o`` that holds a run (unless ``replace``) or other files, before any work
    starts."""
    recover(run.path)
    status = run.status()
    if status == "run" and not replace:
        if (run.path / "metrics.json").is_file():  # written once the last epoch is evaluated
            raise ArtifactError(run.path, f"already holds a finished run; train it further "
                                          f"with `cnnbp train --resume {run.path} --epochs N`, "
                                          "add --force to replace it, or pick another -o")
        raise ArtifactError(run.path, f"already holds a run; resume it with `cnnbp train "
                                      f"--resume {run.path}`, add --force to replace it, or "
                                      "pick another -o")
    if status == "run":  # --force replaces this tool's files, never a user's
        others = sorted(p.name for p in run.path.iterdir()
                        if p.name not in RUN_ENTRIES and not p.name.startswith("."))
        if others:
            listed = ", ".join(others[:5])
            raise ArtifactError(run.path, f"holds files a run does not write ({listed}): "
                                          "--force replaces only cnnbp's own files; move those "
                                          "out first")
    if status == "foreign":
        raise ArtifactError(run.path, "holds files that are not a cnnbp run; pick a new or "
                                      "empty folder for -o (nothing was changed)")


@contextmanager
def creating(path: str | os.PathLike, replace: bool = False) -> Iterator[RunDir]:
    """Make a new run folder atomically: yield a temporary ``RunDir`` to fill (its first
    ``state.json`` last), then rename it to ``path``.

    ``path`` must be absent, empty, or ``unstarted`` (those files are this tool's, and no
    epoch had been recorded in them), or with ``replace`` an earlier run, which the rename
    swaps out; anything else raises ``ArtifactError`` untouched.
    """
    run = RunDir(path)
    check_new(run, replace)
    with atomic_path(run.path) as tmp:
        tmp.mkdir(parents=True)
        (tmp / STATE).mkdir()
        fresh = RunDir(tmp)
        yield fresh
        if not fresh.state_file.is_file():
            raise RuntimeError("a new run folder needs its state.json before it is renamed")


def resumable(path: str | os.PathLike) -> RunDir:
    """The run at ``path`` for ``--resume``; anything else is an ``ArtifactError`` that says why."""
    run = RunDir(path)
    recover(run.path)
    status = run.status()
    if status == "run":
        return run
    if status == "unstarted":
        raise ArtifactError(run.path, "was interrupted before its first epoch was recorded "
                                      "(no state/state.json): there is nothing to resume; start "
                                      "it again with `cnnbp train BLUEPRINT --data SOURCE -o "
                                      f"{run.path}`, which reuses the folder")
    if status in ("absent", "empty"):
        raise ArtifactError(run.path, "holds no run to resume (no state/state.json); start one "
                                      f"with `cnnbp train BLUEPRINT --data SOURCE -o {run.path}`")
    raise ArtifactError(run.path, "is not a run directory (no state/state.json)")
