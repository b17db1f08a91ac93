"""Import TensorFlow without its CPU-only start-up chatter on stderr.

On a machine without CUDA, TensorFlow prints "Could not find cuda drivers" and a cuInit
error before its logging can be configured; those lines are filtered, anything else it
prints during import is passed through.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile

_NOISE = re.compile(r"cudart_stub|could not find cuda drivers|All log messages before absl"
                    r"|cuInit|oneDNN custom operations|computation placer already registered"
                    r"|Unable to register cu(DNN|FFT|BLAS) factory|TF-TRT Warning", re.I)


def import_tensorflow():
    """Import and return ``tensorflow`` with the known start-up noise removed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as buf:
        os.dup2(buf.fileno(), 2)
        try:
            import tensorflow
            import keras  # noqa: F401  (its backend import prints through the same path)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            buf.seek(0)
            for line in buf.read().decode(errors="replace").splitlines():
                if line.strip() and not _NOISE.search(line):
                    print(line, file=sys.stderr)
    return tensorflow
