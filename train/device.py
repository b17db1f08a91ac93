"""Per-device speed settings for the Keras backend in use, chosen by measurement (see
docs/benchmarks.md).

TensorFlow is the default backend (and the one ``cnnbp export`` converts from); JAX runs the
same builder and ``fit`` on in-memory arrays, so a GPU machine with JAX and CUDA but no
TensorFlow can train.
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

from cnnbp.contract.errors import UsageError

log = logging.getLogger(__name__)

# On the 2-core CPU, XLA made a small CNN ~2x slower (issue 3) and bench/train_speed.py found
# the step overhead dominated until several steps ran per call.
CPU_STEPS_PER_EXECUTION = 16
# On a GPU a step of a classic CNN takes well under a millisecond for small inputs, so the
# host's per-call overhead dominates unless several steps run per call: 16 keeps the CPU's
# setting. Under JAX, Keras runs them as a Python loop of single steps; with it cnnbp trained
# cifar10_small on an H200 at 1.15-1.17x a hand-written fit at 1 (docs/benchmarks.md). 16
# against 1 alone was not compared on a GPU, nor anything on a TensorFlow GPU.
GPU_STEPS_PER_EXECUTION = 16
# ``training.mixed_precision`` -> the Keras dtype policy it trains under. bfloat16 keeps
# float32's exponent range, so Keras adds no loss scaling to it (it does to mixed_float16).
POLICIES = {False: "float32", True: "mixed_float16", "float16": "mixed_float16",
            "bfloat16": "mixed_bfloat16"}
# ``auto`` is bfloat16 under JAX on GPUs with bfloat16 tensor cores (compute capability 8.0
# and up), float32 elsewhere. On an H200 (docs/benchmarks.md, issue 28) bfloat16 trained
# VGG-11 at 224x224 1.81x as fast as float32 (6,230 against 3,445 images/s; float16 1.77x),
# and cifar10_small, whose small steps leave the GPU waiting on the host, at 0.99x. On a
# TensorFlow GPU it was never measured, so auto stays float32 there.
AUTO_BF16_COMPUTE_CAPABILITY = (8, 0)


class _OneDevice:
    """Stands in for a tf.distribute strategy where there is none to enter."""

    def scope(self):
        return contextlib.nullcontext()


@dataclass(frozen=True)
class Device:
    """Where and how the run trains: what ``device.configure`` chose for this machine."""

    name: str                 # what metrics.json reports
    gpus: int
    strategy: object          # a tf.distribute strategy, or one with a no-op scope()
    steps_per_execution: int
    jit_compile: bool
    policy: str               # the Keras dtype policy it trains under
    deterministic: bool = False
    backend: str = "tensorflow"

    @property
    def mixed_precision(self) -> bool:
        """Whether it computes in a 16-bit float."""
        return self.policy != "float32"


def resolve(setting: bool | str, on_gpu: bool) -> bool:
    """``training.deterministic``: ``auto`` means on for a CPU (cheap there), off on GPUs;
    ``true``/``false`` as given."""
    return bool(setting) if setting != "auto" else on_gpu


def policy(setting: bool | str, bf16_gpus: bool = False) -> str:
    """``training.mixed_precision`` as a Keras dtype policy: ``auto`` is mixed_bfloat16 on
    ``bf16_gpus`` (JAX on GPUs with bfloat16 tensor cores, by measurement) and float32
    elsewhere; ``true``/``float16`` is mixed_float16 and ``bfloat16`` mixed_bfloat16 on any
    device, a CPU too (for tests)."""
    if setting == "auto":
        return "mixed_bfloat16" if bf16_gpus else "float32"
    return POLICIES[setting]


def has_bf16_cores(device) -> bool:
    """Whether a JAX device is a CUDA GPU of compute capability 8.0 or up (Ampere, Hopper and
    later), whose tensor cores multiply bfloat16; anything else (a CPU, ROCm) says no."""
    found = str(getattr(device, "compute_capability", "") or "")
    try:
        return tuple(int(v) for v in found.split(".")[:2]) >= AUTO_BF16_COMPUTE_CAPABILITY
    except ValueError:
        return False


def configure(mixed_precision: bool | str = "auto", deterministic: bool | str = "auto",
              xla: bool | str = "auto") -> Device:
    """Pick the strategy and settings for this machine and backend; call before building the
    model.

    Op determinism (``auto``: on for CPU, off for GPU, where deterministic kernels are slower),
    mixed precision (``auto``: bfloat16 under JAX on GPUs that have bfloat16 tensor cores,
    else off, see ``policy``; ``True``, ``"float16"`` or ``"bfloat16"`` turns it on) and XLA
    (``auto``: off for TensorFlow on a CPU, where it measured 2x slower, on for GPUs; JAX
    always compiles with XLA).
    """
    import keras
    if keras.backend.backend() == "jax":
        return _configure_jax(keras, mixed_precision, deterministic, xla)
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    dtypes = policy(mixed_precision)
    exact = resolve(deterministic, not gpus)
    if xla is True and exact:
        raise UsageError("training.xla: true: Keras does not compile XLA steps while TensorFlow "
                         "op determinism is on (training.deterministic is on"
                         + (" by default on a CPU" if deterministic == "auto" else "")
                         + "); set training.deterministic: false as well")
    jit = resolve(xla, bool(gpus)) and not exact  # Keras drops XLA under determinism anyway
    if exact:
        tf.config.experimental.enable_op_determinism()
    else:  # process-wide: undo an earlier run's setting in this process (tests, notebooks)
        from tensorflow.python.framework import config as tf_config
        getattr(tf_config, "disable_op_determinism", lambda: None)()
    keras.mixed_precision.set_global_policy(dtypes)
    if not gpus:
        return Device("CPU", 0, tf.distribute.get_strategy(), CPU_STEPS_PER_EXECUTION, jit,
                      dtypes, exact)
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process
            pass
    strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    details = tf.config.experimental.get_device_details(gpus[0])
    name = f"{len(gpus)} x GPU {details.get('device_name', '')}".strip()
    log.info("training on %s, %s, deterministic %s", name, dtypes, exact)
    return Device(name, len(gpus), strategy, GPU_STEPS_PER_EXECUTION, jit, dtypes, exact)


def _configure_jax(keras, mixed_precision, deterministic, xla) -> Device:
    """JAX: XLA always (Keras runs JAX steps jitted; ``xla: false`` would run them op by op),
    data parallel over several GPUs, and XLA's deterministic GPU kernels on request."""
    if xla is False:
        raise UsageError("training.xla: false: with KERAS_BACKEND=jax every step is compiled "
                         "by XLA; use auto or true, or the tensorflow backend")
    if deterministic is True and "xla_gpu_deterministic_ops" not in os.environ.get("XLA_FLAGS", ""):
        # read once, when JAX first starts its GPU backend; CPU kernels are deterministic
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_gpu_deterministic_ops=true").strip()
    import jax
    gpus = [d for d in jax.devices() if d.platform in ("gpu", "cuda", "rocm")]
    dtypes = policy(mixed_precision, bool(gpus) and all(map(has_bf16_cores, gpus)))
    exact = resolve(deterministic, not gpus)
    keras.mixed_precision.set_global_policy(dtypes)
    if len(gpus) > 1:  # untested: no machine with several GPUs was at hand
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=keras.distribution.list_devices("gpu")))
    name = f"{len(gpus)} x GPU {gpus[0].device_kind} (jax)" if gpus else "CPU (jax)"
    log.info("training on %s, %s, deterministic %s", name, dtypes, exact)
    return Device(name, len(gpus), _OneDevice(),
                  GPU_STEPS_PER_EXECUTION if gpus else CPU_STEPS_PER_EXECUTION, True, dtypes,
                  exact, "jax")
