"""``metrics.json`` of a run: what training measured on the held-out test set, and how."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator

from .records import Record


class ClassFigures(BaseModel):
    """One class's precision, recall (and F1) on the test rows, and how many there were."""

    model_config = ConfigDict(strict=True, extra="forbid")

    precision: float
    recall: float
    support: int
    f1: float | None = None  # absent from runs written before it was recorded


class Averages(BaseModel):
    """Macro- or support-weighted averages of the per-class figures."""

    model_config = ConfigDict(strict=True, extra="forbid")

    precision: float
    recall: float
    f1: float


class TrainMetrics(Record):
    """Test-set figures of the final model, and the run that produced them."""

    test_loss: float
    test_accuracy: float
    test_samples: int
    per_class: dict[str, ClassFigures]
    macro_avg: Averages | None = None     # every class counts the same
    weighted_avg: Averages | None = None  # each class weighted by its test samples
    confusion_matrix: list[list[int]]  # rows: true class, columns: predicted, labels.txt order
    blueprint: str
    run_dir: str
    data: str
    epochs: int
    stopped_early: bool
    train_samples: int
    train_seconds: float
    images_per_second: float | None       # over every epoch, compiling included
    wall_seconds: float           # from loading the data to metrics.json (not report.html)
    device: str
    mixed_precision: bool
    versions: dict[str, str]
    # Since streaming input (absent from older runs' files, which still load):
    skipped_images: int = 0             # undecodable files skipped (training.skip_bad_images)
    skipped_files: list[str] = []       # the first of them, by path
    cache: str | None = None            # where decoded inputs were kept: memory, disk, none
    normalization: str | None = None    # what the mean/std were fitted on
    deterministic: bool | None = None   # whether op determinism was on
    backend: str = "tensorflow"         # the Keras backend that trained (KERAS_BACKEND)
    xla: bool | None = None             # whether the training steps were XLA-compiled
    compile_cache: str | None = None    # JAX's persistent compilation cache folder, when on
    precision: str | None = None        # the Keras dtype policy it trained under
    # training rows over the median epoch after the first (which compiles; so may a resumed or
    # unfrozen one, which the median leaves out): what the machine sustains. None under 2 epochs
    steady_images_per_second: float | None = None

    @model_validator(mode="after")
    def _square(self):
        k = len(self.per_class)
        if len(self.confusion_matrix) != k or any(len(row) != k for row in self.confusion_matrix):
            raise ValueError(f"confusion_matrix must be {k}x{k} (one row and column per class)")
        if not 0.0 <= self.test_accuracy <= 1.0:
            raise ValueError(f"test_accuracy {self.test_accuracy} is not within 0..1")
        return self
