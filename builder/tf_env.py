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


M_ARENA_MAX = -8  # glibc's malloc.h


def malloc_arenas() -> int:
    """How many malloc arenas this process is allowed: one per core it may run on."""
    return max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 2)


def _fewer_malloc_arenas() -> None:
    """Cap glibc's malloc arenas at one per core (its default is eight per core), before the
    backend starts its threads.

    Each thread that meets a locked arena gets a new one, and what is freed there stays with
    the process: tf.data's, the backend's and Pillow's threads made 11 arenas in a 2-core
    process, and a 3-epoch run on an image folder peaked 77-160 MB lower with 2, no slower
    (docs/benchmarks.md). A user's own ``MALLOC_ARENA_MAX`` or ``GLIBC_TUNABLES`` arena_max
    wins; elsewhere than glibc this does nothing.
    """
    if "MALLOC_ARENA_MAX" in os.environ or "arena_max" in os.environ.get("GLIBC_TUNABLES", "") \
            or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, malloc_arenas())
    except (OSError, AttributeError):  # no mallopt: not glibc
        pass


def import_tensorflow():
    """Import and return ``tensorflow`` with the known start-up noise removed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    _fewer_malloc_arenas()
    with _quiet_stderr():
        # TensorFlow first, then Keras's backend on top of it, as always
        import tensorflow  # isort: skip
        import keras  # noqa: F401  (its backend import prints through the same path)
    return tensorflow


TRAINING_BACKENDS = ("tensorflow", "jax")


def import_keras():
    """Import and return ``keras``; TensorFlow too (quietly) only when it is Keras's backend
    (``KERAS_BACKEND`` or ~/.keras/keras.json), so training on JAX needs no TensorFlow. On JAX,
    the persistent compilation cache is switched on (``jax_cache``)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "keras" not in sys.modules:
        _fewer_malloc_arenas()
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
    if name == "jax":  # before JAX compiles anything
        from cnnbp.builder import jax_cache
        jax_cache.enable()
    if name not in TRAINING_BACKENDS:
        from cnnbp.contract.errors import UsageError
        raise UsageError(f"KERAS_BACKEND={name}: cnnbp trains with the tensorflow (default) or "
                         "jax backend; set KERAS_BACKEND=tensorflow or jax")
    return sys.modules["keras"]


# Keras seeds TensorFlow and checks saved objects against TensorFlow's types whenever it is
# installed, which imports it: 2.3-2.9 s of a KERAS_BACKEND=jax run that never runs a
# TensorFlow op (issue 28, docs/benchmarks.md). The two below keep it unimported there.

def set_random_seed(seed: int) -> None:
    """``keras.utils.set_random_seed(seed)``, without TensorFlow's seed unless TensorFlow is
    the backend or already imported.

    What Keras's function sets besides (its global seed, a fresh global ``SeedGenerator``,
    Python's and NumPy's seeds) is set the same way, so the same weights are drawn; a test
    holds the two to the same initial weights.
    """
    keras = import_keras()
    if keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        keras.utils.set_random_seed(seed)
        return
    import random

    import numpy as np
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils
    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)


@contextmanager
def tensorflow_left_unimported():
    """While TensorFlow is not imported, Keras's ``tf.available`` checks answer False instead
    of importing it: no object in this process can be a TensorFlow type (``model.save``
    asks of every object it serialises)."""
    from keras.src.utils import module_utils
    lazy = module_utils.tensorflow
    if "tensorflow" in sys.modules or lazy._available is not None:
        yield
        return
    lazy._available = False
    try:
        yield
    finally:
        lazy._available = None
