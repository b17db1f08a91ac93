"""Where an export may write. It replaces only what an earlier export wrote; it never touches
its own source or the folder the user stands in, and moves anything else aside only when asked.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from cnnbp.contract.atomic import recover
from cnnbp.contract.errors import UsageError

# Every entry an export writes at a bundle's top level.
BUNDLE_ENTRIES = {"model.onnx", "model.onnx.data", "pixels.onnx", "pixels.onnx.data",
                  "blueprint.yaml", "labels.txt",
                  "preprocess.json", "validation.json", "README.md", "report.html",
                  "test_data_set_0", "variants"}


def is_bundle(folder: Path) -> bool:
    """A folder an export wrote: its model and report, and nothing an export does not write."""
    names = {p.name for p in folder.iterdir()}
    return {"model.onnx", "validation.json"} <= names and names <= BUNDLE_ENTRIES


def is_triton_model(folder: Path) -> bool:
    """A model folder that ``--triton`` wrote: config.pbtxt, labels.txt and version folders."""
    names = {p.name for p in folder.iterdir()}
    return "config.pbtxt" in names and all(n in ("config.pbtxt", "labels.txt") or n.isdigit()
                                           for n in names)


def prepare(out: str | Path, sources: list[str | Path], force: bool, what: str = "bundle",
            ours: Callable[[Path], bool] = is_bundle, flag: str = "-o") -> Path | None:
    """Make ``out`` ready for an atomic write: first finish (``contract.atomic.recover``) a
    swap an earlier export was killed in the middle of — this may rename folders on disk —
    then refuse an ``out`` that would destroy something; return where ``--force`` moves an
    existing folder of other files (``None`` when nothing needs moving aside).

    Raises ``UsageError`` naming the path and what to do instead; nothing else is changed then.
    """
    given = Path(out)
    target, here = given.resolve(), Path.cwd().resolve()
    for source in sources:
        src = Path(source).resolve()
        if target == src or target in src.parents:
            relation = "is" if target == src else "contains"
            raise UsageError(f"{flag} {given} {relation} {source}, which this export reads: "
                             f"writing the {what} there would delete it; pick another folder")
    if target == here or target in here.parents:
        raise UsageError(f"{flag} {given} is{'' if target == here else ' above'} the current "
                         f"folder ({here}): writing the {what} there would replace it; name a "
                         f"new folder")
    recover(target)  # a swap an earlier export was killed in the middle of
    if not target.exists():
        return None
    if not target.is_dir():
        raise UsageError(f"{flag} {given} is a file, not a folder: name the folder to write the "
                         f"{what} into")
    if not any(target.iterdir()):
        return None
    if ours(target):  # one rule with `train -o`: an earlier result is replaced only when asked
        if not force:
            raise UsageError(f"{flag} {given} already holds a {what}; add --force to replace it "
                             f"(atomically: the old one stays until the new one is complete), "
                             f"or pick a new folder")
        return None
    if not force:
        others = sorted(p.name for p in target.iterdir())
        listed = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise UsageError(f"{flag} {given} holds files that an export did not write ({listed}); "
                         f"export never deletes them: pick a new or empty folder, or add "
                         f"--force to move them aside to {given.name}.replaced-<time> first")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = target.with_name(f"{target.name}.replaced-{stamp}")
    n = 1
    while backup.exists():
        n += 1
        backup = target.with_name(f"{target.name}.replaced-{stamp}-{n}")
    return backup
