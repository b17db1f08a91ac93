"""How ``cnnbp search`` runs: the settings one search (or one worker of a shared one) is given."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """How ``cnnbp search`` runs: data, output folder, trial count and storage."""
    data: str
    out: Path
    trials: int                 # trained trials wanted (static exclusions do not count)
    timeout: float | None = None
    storage: str | None = None  # an RDB URL; default sqlite:///OUT/study.db
    study_name: str = "search"
    seed: int = 0
    quiet: bool = True
    keep: bool = False          # every trial a full run directory (`cnnbp train`'s)
    final_epochs: int | None = None  # retrain the best on training + validation data
