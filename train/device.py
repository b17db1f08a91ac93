"""Per-device speed settings, chosen by measurement (see docs/benchmarks.md)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

# On the 2-core CPU, XLA made a small CNN ~2x slower (issue 3) and bench/train_speed.py found
# the step overhead dominated until several steps ran per call.
CPU_STEPS_PER_EXECUTION = 16


@dataclass(frozen=True)
class Device:
    name: str                 # what metrics.json reports
    gpus: int
    strategy: object          # a tf.distribute strategy
    steps_per_execution: int
    jit_compile: bool
    mixed_precision: bool


def configure(allow_mixed_precision: bool = True) -> Device:
    """Pick the strategy and settings for this machine; call before building the model."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return Device("CPU", 0, tf.distribute.get_strategy(), CPU_STEPS_PER_EXECUTION, False, False)
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    if allow_mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")  # output layer stays float32
    strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    details = tf.config.experimental.get_device_details(gpus[0])
    name = f"{len(gpus)} x GPU {details.get('device_name', '')}".strip()
    log.info("training on %s, mixed precision %s", name, allow_mixed_precision)
    return Device(name, len(gpus), strategy, 1, False, allow_mixed_precision)
