"""The blueprint's ``weights:`` keys that name a user's file: where it is (``weights.from`` or
``--weights``), its channel order and normalisation, checked against the net's input."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from cnnbp.contract.errors import ArtifactError

from .errors import Problem

SUFFIXES = (".keras", ".weights.h5", ".h5", ".onnx")


@dataclass(frozen=True)
class WeightsSource:
    """A resolved blueprint's ``weights.from`` and the channel order its source took."""

    path: str
    channel_order: str    # rgb or bgr


def source_of(resolved: dict) -> WeightsSource | None:
    """The resolved blueprint's weights file, or None when it names none."""
    w = resolved.get("weights") or {}
    return WeightsSource(w["from"], w.get("channel_order", "rgb")) if "from" in w else None


def channel_problems(weights: dict, channels: int) -> list[Problem]:
    """What in ``weights.normalize`` and ``weights.channel_order`` does not fit an input of
    ``channels`` channels (blueprint compilation asks, so the problems carry file and line)."""
    problems = []
    fixed = weights.get("normalize") or {}
    for key in ("mean", "std"):
        if key in fixed and len(fixed[key]) != channels:
            problems.append(Problem(f"weights.normalize.{key}", f"has {len(fixed[key])} values "
                                    f"but the net's input has {channels} channels: give one "
                                    "per channel"))
    if weights.get("channel_order") == "bgr" and channels != 3:
        problems.append(Problem("weights.channel_order", f"is bgr, but the net's input has "
                                f"{channels} channels: bgr reverses three colour channels "
                                "(the first CONV's), so drop it or set rgb"))
    return problems


def blueprint_folder(blueprint_ref: str | None) -> Path:
    """The folder a blueprint's own ``weights.from`` is relative to: the blueprint file's (the
    working folder for an expression or a shipped name). ``--set weights.from=PATH`` is part of
    the blueprint, so it is relative to the same folder."""
    if blueprint_ref and Path(blueprint_ref).is_file():
        return Path(blueprint_ref).resolve().parent
    return Path.cwd()


def with_source(compiled, blueprint_ref: str | None, given: str | None = None):
    """``compiled`` with ``weights.from`` made absolute (``given`` is a ``--weights`` path,
    relative to the working folder; a blueprint's own is relative to the blueprint file), so
    the resolved blueprint a run or bundle keeps still finds the file. Checks that it exists."""
    resolved = compiled.resolved
    w = dict(resolved.get("weights") or {})
    if given is not None:
        w["from"], key = str(Path(given).resolve()), "--weights"
        where = f"--weights is relative to the working folder, {Path.cwd()}"
    elif "from" in w:
        folder = blueprint_folder(blueprint_ref)
        w["from"], key = str((folder / w["from"]).resolve()), "weights.from"
        where = f"a blueprint's weights.from is relative to the blueprint's folder, {folder}"
    else:
        return compiled
    path = Path(w["from"])
    if not path.name.endswith(SUFFIXES):
        raise ArtifactError(path, f"{key} must name a {', '.join(SUFFIXES)} file")
    if not path.is_file():
        raise ArtifactError(path, f"{key} names no file here ({where})")
    return replace(compiled, resolved=dict(resolved, weights=w))
