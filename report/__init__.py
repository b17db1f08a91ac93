"""See the network: ``report.html`` for a run or a bundle, the ``explain`` figures, the volume
diagram (``draw``, no TensorFlow or matplotlib) and a bundle's model card (``card``).

``write_run_report`` and ``write_bundle_report`` are what training and export call; the
``draw``, ``explain`` and ``report`` commands live in ``cnnbp.commands``.
"""
from __future__ import annotations


def write_run_report(run_dir, bundle_dir=None, explain: bool = True, drawn=None):
    """Write ``RUN/report.html``; see ``cnnbp.report.html.write_run_report``."""
    from .html import write_run_report as _write
    return _write(run_dir, bundle_dir, explain, drawn)


def write_bundle_report(bundle_dir):
    """Write ``BUNDLE/report.html``; see ``cnnbp.report.html.write_bundle_report``."""
    from .html import write_bundle_report as _write
    return _write(bundle_dir)


__all__ = ["write_bundle_report", "write_run_report"]
