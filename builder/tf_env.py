"""Import TensorFlow (or Keras on another backend) without its start-up chatter on stderr.

On a machine without CUDA, TensorFlow prints "Could not find cuda drivers" and a cuInit
error before its logging can be configured; those lines are filtered, anything else it
prints during import is passed through.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import contextmanager

_NOISE = re.compile(r"cudart_stub|could not find cuda drivers|All log messages before absl"
                    r"|cuInit|oneDNN custom operations|computation placer already registered"
                    r"|Unable to register cu(DNN|FFT|BLAS) factory|TF-TRT Warning", re.I)


@contextmanager
def _quiet_stderr():
    """Hold back what is written to file descriptor 2 and pass on all but the known noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as buf:
        os.dup2(buf.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            buf.seek(0)
            for line in buf.read().decode(errors="replace").splitlines():
                if line.strip() and not _NOISE.search(line):
                    print(line, file=sys.stderr)


def import_tensorflow():
    """Import and return ``tensorflow`` with the known start-up noise removed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with _quiet_stderr():
        import tensorflow
        import keras  # noqa: F401  (its backend import prints through the same path)
    return tensorflow


TRAINING_BACKENDS = ("tensorflow", "jax")


def import_keras():
    """Import and return ``keras``; TensorFlow too (quietly) only when it is Keras's backend
    (``KERAS_BACKEND`` or ~/.keras/keras.json), so training on JAX needs no TensorFlow."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "keras" not in sys.modules:
        with _quiet_stderr():
            try:
                import keras
            except ImportError as exc:  # the backend's package is missing
                from cnnbp.contract.errors import UsageError
                raise UsageError(f"KERAS_BACKEND={os.environ.get('KERAS_BACKEND', '')}: Keras "
                                 f"cannot load this backend ({exc}); install it, or train with "
                                 "KERAS_BACKEND=tensorflow (the default) or jax") from None
            if keras.backend.backend() == "tensorflow":
                import tensorflow  # noqa: F401
    name = sys.modules["keras"].backend.backend()
    if name not in TRAINING_BACKENDS:
        from cnnbp.contract.errors import UsageError
        raise UsageError(f"KERAS_BACKEND={name}: cnnbp trains with the tensorflow (default) or "
                         "jax backend; set KERAS_BACKEND=tensorflow or jax")
    return sys.modules["keras"]
