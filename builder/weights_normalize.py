"""A blueprint's ``weights.normalize`` (the source's own preprocessing, pixels 0..255) in place
of the mean and std training fits: the preprocessing record with the source's figures."""
from __future__ import annotations

from .errors import BlueprintError, Problem
from .weights_source import channel_problems


def fixed_normalization(prep, note: str, resolved: dict):
    """``(prep, note)`` with the mean and std of the blueprint's ``weights.normalize`` (pixels
    0..255, the source's own preprocessing) in place of the fitted ones; unchanged without it.

    The record holds them in its fitted units (raw / scale), where a pixel is
    raw * 255 / raw_max, hence the factor raw_max / (255 * scale)."""
    fixed = (resolved.get("weights") or {}).get("normalize")
    if fixed is None:
        return prep, note
    problems = channel_problems(resolved["weights"], prep.input_shape[-1])  # a backstop
    if prep.domain != "image":
        problems.append(Problem("weights.normalize", f"is in pixels (0..255) but this data is "
                                f"no image ({prep.domain}): drop it and let training fit the "
                                "mean and std"))
    if problems:
        raise BlueprintError(problems)
    factor = prep.raw_max / (255.0 * prep.scale)
    prep = prep.model_copy(update={"mean": [float(m) * factor for m in fixed["mean"]],
                                   "std": [float(s) * factor for s in fixed["std"]]})
    return prep, (f"mean {fixed['mean']} and std {fixed['std']} (pixels 0..255) from "
                  "weights.normalize, not fitted")
