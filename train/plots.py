"""The run directory's pictures: training curves and the confusion matrix.

They are the report's own charts (``report.figures``), drawn once here and handed to the page.
"""
from __future__ import annotations

from cnnbp.contract.atomic import atomic_path
from cnnbp.contract.rundir import RunDir


def write_plots(run: RunDir, history: list[dict], confusion, class_names
                ) -> tuple[bytes | None, bytes]:
    """``curves.png`` (when an epoch ran) and ``confusion.png``; returns their PNG bytes."""
    from cnnbp.report import figures
    curves = figures.curves(history) if history else None
    matrix = figures.confusion(confusion, list(class_names))
    for name, data in (("curves.png", curves), ("confusion.png", matrix)):
        if data is not None:
            with atomic_path(run / name, suffix=".png") as tmp:
                tmp.write_bytes(data)
    return curves, matrix
