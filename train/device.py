"""Per-device speed settings, chosen by measurement (see docs/benchmarks.md)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

# On the 2-core CPU, XLA made a small CNN ~2x slower (issue 3) and bench/train_speed.py found
# the step overhead dominated until several steps ran per call.
CPU_STEPS_PER_EXECUTION = 16
# On a GPU a step of a classic CNN takes well under a millisecond for small inputs, so the
# host's per-call overhead dominates unless several steps run per call. Not yet measured on a
# GPU (none was available while this was written): 16 keeps the CPU's setting.
GPU_STEPS_PER_EXECUTION = 16


@dataclass(frozen=True)
class Device:
    name: str                 # what metrics.json reports
    gpus: int
    strategy: object          # a tf.distribute strategy
    steps_per_execution: int
    jit_compile: bool
    mixed_precision: bool
    deterministic: bool = False


def resolve(setting: bool | str, on_gpu: bool) -> bool:
    """``training.deterministic`` / ``training.mixed_precision``: ``auto`` means off on a CPU
    for mixed precision, on a CPU for determinism (cheap there), and the reverse on GPUs."""
    return bool(setting) if setting != "auto" else on_gpu


def configure(mixed_precision: bool | str = "auto", deterministic: bool | str = "auto") -> Device:
    """Pick the strategy and settings for this machine; call before building the model.

    Op determinism (``auto``: on for CPU, off for GPU, where deterministic kernels are slower)
    and mixed precision (``auto``: on for GPU only; ``True`` forces it on a CPU, for tests).
    """
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    mixed = resolve(mixed_precision, bool(gpus))
    exact = resolve(deterministic, not gpus)
    if exact:
        tf.config.experimental.enable_op_determinism()
    else:  # process-wide: undo an earlier run's setting in this process (tests, notebooks)
        from tensorflow.python.framework import config as tf_config
        getattr(tf_config, "disable_op_determinism", lambda: None)()
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    if not gpus:
        return Device("CPU", 0, tf.distribute.get_strategy(), CPU_STEPS_PER_EXECUTION, False,
                      mixed, exact)
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process
            pass
    strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    details = tf.config.experimental.get_device_details(gpus[0])
    name = f"{len(gpus)} x GPU {details.get('device_name', '')}".strip()
    log.info("training on %s, mixed precision %s, deterministic %s", name, mixed, exact)
    return Device(name, len(gpus), strategy, GPU_STEPS_PER_EXECUTION, False, mixed, exact)
